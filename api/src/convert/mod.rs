//! The protos' messages to and from the engine's model. The messages are
//! the wire types (see `crate::json`); these conversions are the only place
//! that maps one to the other, with upstream's defaults on the way in.

pub mod operation;
pub(crate) mod room;
pub(crate) mod scheduler;
pub(crate) mod time;

use pbjson_types::Struct;
use serde_json::Value;

use crate::json::whole_numbers_as_integers;

/// An engine count or setting as a proto `int32`: the engine validated it
/// on the way in, so only a corrupt value saturates.
pub(crate) fn int32(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
}

/// A `Struct` as the JSON text the engine keeps (`{}` when unset), with
/// protojson's numbers (`2`, not `2.0`).
pub(crate) fn json_text(metadata: Option<&Struct>) -> String {
    let Some(metadata) = metadata else {
        return "{}".to_string();
    };
    match serde_json::to_value(metadata) {
        Ok(mut value) => {
            whole_numbers_as_integers(&mut value);
            value.to_string()
        }
        // A Struct is a JSON object by construction.
        Err(_) => "{}".to_string(),
    }
}

/// The engine's JSON text as a `Struct`; anything that is not an object
/// (it never is) reads as `{}`.
pub(crate) fn struct_from_text(text: &str) -> Struct {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => serde_json::from_value(value).unwrap_or_default(),
        _ => Struct::default(),
    }
}
