//! The protos' descriptors, indexed by name: the one schema the HTTP
//! API's JSON adapter (`crate::json`), the OpenAPI document and gRPC
//! reflection all read. They are compiled in (`build.rs` encodes them), so
//! what the service answers and what it documents come from one source.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::source_code_info::Location;
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet};

use crate::proto::FILE_DESCRIPTOR_SET;
use crate::rpc::Route;

/// Why the descriptors cannot serve: the protos and the route table
/// disagree, or a proto uses what a reader does not map.
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum SchemaError {
    #[error("the descriptor set does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("{0} is not in the descriptor set")]
    Missing(String),
    #[error("{0}: {1}")]
    Unsupported(String, &'static str),
}

/// The embedded descriptor set, decoded once.
pub(crate) fn protos() -> Result<&'static Protos<'static>, SchemaError> {
    static SET: OnceLock<Result<FileDescriptorSet, SchemaError>> = OnceLock::new();
    static PROTOS: OnceLock<Protos<'static>> = OnceLock::new();
    let set = SET
        .get_or_init(|| FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).map_err(SchemaError::from))
        .as_ref()
        .map_err(Clone::clone)?;
    Ok(PROTOS.get_or_init(|| Protos::new(set)))
}

/// A message with its comment and its fields' comments.
pub(crate) struct MessageInfo<'a> {
    pub proto: &'a DescriptorProto,
    pub comment: Option<String>,
    pub field_comments: Vec<Option<String>>,
}

/// An RPC's messages (fully qualified, `.api.v1.X`) and comment.
pub(crate) struct MethodInfo {
    pub input: String,
    pub output: String,
    pub comment: Option<String>,
}

/// The descriptor set, indexed by fully qualified name.
pub(crate) struct Protos<'a> {
    pub messages: HashMap<String, MessageInfo<'a>>,
    pub enums: HashMap<String, &'a EnumDescriptorProto>,
    /// By `package.Service/Method`.
    pub methods: HashMap<String, MethodInfo>,
    /// Service comments by `package.Service`.
    pub services: HashMap<String, Option<String>>,
}

impl<'a> Protos<'a> {
    pub fn new(set: &'a FileDescriptorSet) -> Protos<'a> {
        let mut protos = Protos {
            messages: HashMap::new(),
            enums: HashMap::new(),
            methods: HashMap::new(),
            services: HashMap::new(),
        };
        for file in &set.file {
            let comments: HashMap<&[i32], String> = file
                .source_code_info
                .iter()
                .flat_map(|info| &info.location)
                .filter_map(|l| comment(l).map(|c| (l.path.as_slice(), c)))
                .collect();
            let package = file.package();
            let scope = format!(".{package}");
            // Paths into the file, as `source_code_info` numbers them:
            // 4 = message_type, 5 = enum_type, 6 = service, 2 = method.
            for (i, message) in file.message_type.iter().enumerate() {
                protos.add_message(&scope, message, vec![4, i as i32], &comments);
            }
            for e in &file.enum_type {
                protos.enums.insert(format!("{scope}.{}", e.name()), e);
            }
            for (s, service) in file.service.iter().enumerate() {
                let name = format!("{package}.{}", service.name());
                let path = [6, s as i32];
                protos
                    .services
                    .insert(name.clone(), comments.get(&path[..]).cloned());
                for (m, method) in service.method.iter().enumerate() {
                    let path = [6, s as i32, 2, m as i32];
                    protos.methods.insert(
                        format!("{name}/{}", method.name()),
                        MethodInfo {
                            input: method.input_type().to_string(),
                            output: method.output_type().to_string(),
                            comment: comments.get(&path[..]).cloned(),
                        },
                    );
                }
            }
        }
        protos
    }

    fn add_message(
        &mut self,
        scope: &str,
        message: &'a DescriptorProto,
        path: Vec<i32>,
        comments: &HashMap<&[i32], String>,
    ) {
        let name = format!("{scope}.{}", message.name());
        let field_comments = (0..message.field.len())
            .map(|i| {
                let mut field_path = path.clone();
                field_path.extend([2, i as i32]);
                comments.get(field_path.as_slice()).cloned()
            })
            .collect();
        // 3 = nested_type, 4 = enum_type within a message.
        for (i, nested) in message.nested_type.iter().enumerate() {
            let mut nested_path = path.clone();
            nested_path.extend([3, i as i32]);
            self.add_message(&name, nested, nested_path, comments);
        }
        for e in &message.enum_type {
            self.enums.insert(format!("{name}.{}", e.name()), e);
        }
        self.messages.insert(
            name,
            MessageInfo {
                proto: message,
                comment: comments.get(path.as_slice()).cloned(),
                field_comments,
            },
        );
    }

    pub fn message(&self, name: &str) -> Result<&MessageInfo<'a>, SchemaError> {
        self.messages
            .get(name)
            .ok_or_else(|| SchemaError::Missing(format!("message {name}")))
    }

    pub fn method(&self, route: &Route) -> Result<&MethodInfo, SchemaError> {
        let key = format!("{}/{}", route.service, route.method);
        self.methods
            .get(&key)
            .ok_or(SchemaError::Missing(format!("RPC {key}")))
    }

    /// The entry message of a map field.
    pub fn map_entry(&self, field: &FieldDescriptorProto) -> Option<&'a DescriptorProto> {
        if field.r#type() != Type::Message || field.label() != Label::Repeated {
            return None;
        }
        let entry = self.messages.get(field.type_name())?.proto;
        entry
            .options
            .as_ref()
            .is_some_and(|o| o.map_entry())
            .then_some(entry)
    }
}

/// A comment as one paragraph per blank-line-separated block.
fn comment(location: &Location) -> Option<String> {
    let text = location
        .leading_comments
        .as_deref()
        .or(location.trailing_comments.as_deref())?;
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect();
    (!paragraphs.is_empty()).then(|| paragraphs.join("\n\n"))
}

/// Whether protojson leaves the field out when unset: a proto3 `optional`
/// field or a member of a oneof. Every other field is always written.
pub(crate) fn has_presence(field: &FieldDescriptorProto) -> bool {
    field.proto3_optional() || field.oneof_index.is_some()
}
