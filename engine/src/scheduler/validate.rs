//! Scheduler validation: the gate every scheduler passes before the engine accepts it.
//!
//! The rules follow Maestro Next's struct validation (`entities.Scheduler` and
//! `autoscaling`), plus checks upstream only makes later or not at all: the
//! Kubernetes converter's rejection of `sctp`, request/limit quantities, the
//! port range rule, label syntax and the reserved name `info`. Catching them
//! here means a bad scheduler is refused when it is sent rather than leaving
//! its rooms failing afterwards.
//!
//! Every error is reported, in field order, with the path of the JSON field
//! the user wrote (`spec.containers[0].ports[1].protocol`), so that one
//! round trip is enough to fix a scheduler.

use std::collections::BTreeMap;
use std::fmt;

use super::quantity::parse_quantity;
use super::{
    Autoscaling, Container, ContainerPort, EnvVar, FixedBufferParams, Forwarder, MaxSurge,
    POLICY_FIXED_BUFFER, POLICY_ROOM_OCCUPANCY, PortRange, RoomOccupancyParams, Scheduler,
};
use crate::version::Version;

/// Our own ceiling on `roomsReplicas`: far above any real fleet, low enough
/// that a typo cannot ask the runtime for millions of pods.
const MAX_ROOMS_REPLICAS: i64 = 100_000;
/// Kubernetes limits container port names to 15 characters.
const MAX_PORT_NAME_LEN: usize = 15;
/// A Kubernetes resource name (a DNS label) is at most 63 characters.
const MAX_KUBE_NAME_LEN: usize = 63;
/// Label and annotation keys are at most 253 characters (prefix included).
const MAX_KEY_LEN: usize = 253;
/// The name part of a key, and a label value, are at most 63 characters.
const MAX_KEY_NAME_LEN: usize = 63;
/// Upstream's bound on `matchAllocation.maxMatches`.
const MAX_MATCHES: i64 = 35;
const MAX_PORT: i64 = 65_535;

const PULL_POLICIES: [&str; 3] = ["Always", "Never", "IfNotPresent"];
const RESTART_POLICIES: [&str; 3] = ["Always", "OnFailure", "Never"];
const FORWARD_TYPE_GRPC: &str = "gRPC";

const ROOM_OCCUPANCY_PATH: &str = "autoscaling.policy.parameters.roomOccupancy";
const FIXED_BUFFER_PATH: &str = "autoscaling.policy.parameters.fixedBuffer";

/// One invalid field: where it is and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FieldError {
    /// The JSON path of the field, e.g. `spec.containers[0].requests.cpu`.
    pub path: String,
    /// Written to follow the path, e.g. `is required`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a scheduler, in field order. `validate` only
/// returns it with at least one error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    /// One error per line, so that the whole list can be shown to the user.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Collects errors as the checks go, so that none stops the others.
#[derive(Default)]
struct Errors {
    list: Vec<FieldError>,
}

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Reports `is required` when `value` is empty or only whitespace.
    fn require(&mut self, path: impl Into<String>, value: &str) {
        if value.trim().is_empty() {
            self.push(path, "is required");
        }
    }

    /// Reports `must be one of …` when `value` is not exactly one of `allowed`.
    fn one_of(&mut self, path: impl Into<String>, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            self.push(path, format!("must be one of {}", allowed.join(", ")));
        }
    }
}

/// Checks a whole scheduler and returns every error, in field order.
pub fn validate(s: &Scheduler) -> Result<(), ValidationErrors> {
    let mut errors = Errors::default();

    if let Err(message) = validate_name(&s.name) {
        errors.push("name", message);
    }
    errors.require("game", &s.game);
    check_spec(&mut errors, s);
    check_port_range(&mut errors, s);
    check_rooms_replicas(&mut errors, s.rooms_replicas);
    if let Err(message) = MaxSurge::parse(&s.max_surge) {
        errors.push("maxSurge", message);
    }
    // A disabled block is still checked: enabling it later must not be the
    // moment its mistakes surface.
    if let Some(autoscaling) = &s.autoscaling {
        check_autoscaling(&mut errors, autoscaling);
    }
    for (i, forwarder) in s.forwarders.iter().enumerate() {
        check_forwarder(&mut errors, i, forwarder, &s.forwarders[..i]);
    }
    check_metadata(&mut errors, "annotations", &s.annotations, false);
    check_metadata(&mut errors, "labels", &s.labels, true);
    if !(1..=MAX_MATCHES).contains(&s.match_allocation.max_matches) {
        errors.push(
            "matchAllocation.maxMatches",
            format!("must be between 1 and {MAX_MATCHES}"),
        );
    }

    if errors.list.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors.list))
    }
}

/// Checks a scheduler name: a Kubernetes resource name, since it is also the
/// namespace of its rooms, and not `info`, which would make
/// `GET /schedulers/info` ambiguous.
pub fn validate_name(name: &str) -> Result<(), &'static str> {
    check_kube_name(name)?;
    if name == "info" {
        return Err("is reserved: it collides with the /schedulers/info route");
    }
    Ok(())
}

/// The Kubernetes resource name rule (a DNS label): 1–63 characters of lower
/// case letters, digits and `-`, starting and ending with a letter or digit.
fn check_kube_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is required");
    }
    if name.len() > MAX_KUBE_NAME_LEN {
        return Err("must be at most 63 characters");
    }
    if !is_token(name, is_kube_name_char) {
        return Err(
            "must consist of lower case letters, digits and '-', and start and end with a letter or digit",
        );
    }
    Ok(())
}

fn check_spec(errors: &mut Errors, s: &Scheduler) {
    let spec = &s.spec;
    if spec.version.is_empty() {
        errors.push("spec.version", "is required");
    } else if Version::parse(&spec.version).is_none() {
        errors.push("spec.version", "must be a semantic version such as v1.0.0");
    }
    if spec.termination_grace_period_secs <= 0 {
        errors.push("spec.terminationGracePeriod", "must be greater than 0");
    }
    if spec.containers.is_empty() {
        errors.push("spec.containers", "must have at least one container");
    }
    // Without a scheduler-wide range, one port with its own range means every
    // port needs one: the allocator has nowhere else to take host ports from.
    let port_ranges_required = s.port_range.is_none() && any_port_has_range(s);
    for (i, container) in spec.containers.iter().enumerate() {
        let path = format!("spec.containers[{i}]");
        check_container(
            errors,
            &path,
            container,
            &spec.containers[..i],
            port_ranges_required,
        );
    }
    errors.one_of(
        "spec.restartPolicy",
        &spec.restart_policy,
        &RESTART_POLICIES,
    );
}

fn any_port_has_range(s: &Scheduler) -> bool {
    s.spec
        .containers
        .iter()
        .flat_map(|c| &c.ports)
        .any(|p| p.host_port_range.is_some())
}

/// `earlier` holds the containers before this one, for the uniqueness check.
fn check_container(
    errors: &mut Errors,
    path: &str,
    container: &Container,
    earlier: &[Container],
    port_ranges_required: bool,
) {
    if let Err(message) = check_kube_name(&container.name) {
        errors.push(format!("{path}.name"), message);
    } else if let Some(j) = earlier.iter().position(|c| c.name == container.name) {
        errors.push(
            format!("{path}.name"),
            format!("must be unique (also used by spec.containers[{j}])"),
        );
    }
    errors.require(format!("{path}.image"), &container.image);
    errors.one_of(
        format!("{path}.imagePullPolicy"),
        &container.image_pull_policy,
        &PULL_POLICIES,
    );
    for (i, env) in container.environment.iter().enumerate() {
        check_env(errors, &format!("{path}.environment[{i}]"), env);
    }
    check_requests_and_limits(errors, path, container);
    for (i, port) in container.ports.iter().enumerate() {
        check_port(
            errors,
            path,
            i,
            port,
            &container.ports[..i],
            port_ranges_required,
        );
    }
}

fn check_env(errors: &mut Errors, path: &str, env: &EnvVar) {
    errors.require(format!("{path}.name"), &env.name);
    // An empty value is a value: `Some("")` sets the variable to "".
    if env.value.is_some() == env.value_from.is_some() {
        errors.push(path, "must set exactly one of value or valueFrom");
    }
    let Some(source) = &env.value_from else {
        return;
    };
    let path = format!("{path}.valueFrom");
    if source.field_ref.is_some() == source.secret_key_ref.is_some() {
        errors.push(&path, "must set exactly one of fieldRef or secretKeyRef");
    }
    if let Some(field_ref) = &source.field_ref {
        errors.require(format!("{path}.fieldRef.fieldPath"), &field_ref.field_path);
    }
    if let Some(secret) = &source.secret_key_ref {
        errors.require(format!("{path}.secretKeyRef.name"), &secret.name);
        errors.require(format!("{path}.secretKeyRef.key"), &secret.key);
    }
}

/// Requests and limits must be valid quantities, and a request above its
/// limit would be refused by Kubernetes when the pod is created. That error is
/// reported on the request, right after the request's own checks.
fn check_requests_and_limits(errors: &mut Errors, path: &str, container: &Container) {
    let (requests, limits) = (&container.requests, &container.limits);
    let pairs = [
        ("memory", &requests.memory, &limits.memory),
        ("cpu", &requests.cpu, &limits.cpu),
    ];
    for (resource, request, limit) in pairs {
        let request_path = format!("{path}.requests.{resource}");
        match parse_quantity(request) {
            Err(error) => errors.push(request_path, error.to_string()),
            Ok(request) => {
                if let Ok(limit) = parse_quantity(limit)
                    && request.value() > limit.value()
                {
                    errors.push(
                        request_path,
                        format!("must be less than or equal to {path}.limits.{resource}"),
                    );
                }
            }
        }
    }
    for (resource, limit) in [("memory", &limits.memory), ("cpu", &limits.cpu)] {
        if let Err(error) = parse_quantity(limit) {
            errors.push(format!("{path}.limits.{resource}"), error.to_string());
        }
    }
}

/// `earlier` holds the container's ports before this one, for the uniqueness check.
fn check_port(
    errors: &mut Errors,
    container_path: &str,
    index: usize,
    port: &ContainerPort,
    earlier: &[ContainerPort],
    range_required: bool,
) {
    let path = format!("{container_path}.ports[{index}]");
    if port.name.trim().is_empty() {
        errors.push(format!("{path}.name"), "is required");
    } else if port.name.chars().count() > MAX_PORT_NAME_LEN {
        errors.push(format!("{path}.name"), "must be at most 15 characters");
    } else if let Some(j) = earlier.iter().position(|p| p.name == port.name) {
        errors.push(
            format!("{path}.name"),
            format!(
                "must be unique within the container (also used by {container_path}.ports[{j}])"
            ),
        );
    }
    // Upstream accepts `sctp` and only fails when building the pod; saying so
    // explicitly avoids a message that looks like a typo.
    match port.protocol.as_str() {
        "tcp" | "udp" => {}
        "sctp" => errors.push(
            format!("{path}.protocol"),
            "sctp is not supported; must be one of tcp, udp",
        ),
        _ => errors.push(format!("{path}.protocol"), "must be one of tcp, udp"),
    }
    if !is_port(port.port) {
        errors.push(format!("{path}.port"), "must be between 1 and 65535");
    }
    if !(0..=MAX_PORT).contains(&port.host_port) {
        errors.push(format!("{path}.hostPort"), "must be between 0 and 65535");
    }
    let range_path = format!("{path}.hostPortRange");
    match &port.host_port_range {
        Some(range) => check_range(errors, &range_path, range),
        None if range_required => {
            errors.push(range_path, "is required when any container port has one")
        }
        None => {}
    }
}

/// Exactly one source of host ports: the scheduler's `portRange`, or a
/// `hostPortRange` on every container port (upstream
/// `HasValidPortRangeConfiguration`). The mixed case is reported on each port
/// missing its range, by `check_port`.
fn check_port_range(errors: &mut Errors, s: &Scheduler) {
    let any_port_range = any_port_has_range(s);
    match &s.port_range {
        Some(range) => {
            if any_port_range {
                errors.push(
                    "portRange",
                    "must not be set when container ports have hostPortRange",
                );
            }
            check_range(errors, "portRange", range);
        }
        None => {
            let has_ports = s.spec.containers.iter().any(|c| !c.ports.is_empty());
            if has_ports && !any_port_range {
                errors.push(
                    "portRange",
                    "is required when container ports have no hostPortRange",
                );
            }
        }
    }
}

/// Both ends are valid ports and `start < end`. The order is only checked
/// when both ends are valid, to avoid a redundant error.
fn check_range(errors: &mut Errors, path: &str, range: &PortRange) {
    let start_ok = is_port(range.start);
    let end_ok = is_port(range.end);
    if !start_ok {
        errors.push(format!("{path}.start"), "must be between 1 and 65535");
    }
    if !end_ok {
        errors.push(format!("{path}.end"), "must be between 1 and 65535");
    }
    if start_ok && end_ok && range.start >= range.end {
        errors.push(path, "start must be less than end");
    }
}

fn is_port(port: i64) -> bool {
    (1..=MAX_PORT).contains(&port)
}

fn check_rooms_replicas(errors: &mut Errors, replicas: i64) {
    if replicas < 0 {
        errors.push("roomsReplicas", "must be greater than or equal to 0");
    } else if replicas > MAX_ROOMS_REPLICAS {
        errors.push(
            "roomsReplicas",
            format!("must be at most {MAX_ROOMS_REPLICAS}"),
        );
    }
}

fn check_autoscaling(errors: &mut Errors, autoscaling: &Autoscaling) {
    let (min, max) = (autoscaling.min, autoscaling.max);
    // -1 means unlimited; 0 would make every fleet empty.
    let max_ok = max == -1 || max >= 1;
    if min < 1 {
        errors.push("autoscaling.min", "must be at least 1");
    } else if max_ok && max != -1 && min > max {
        errors.push(
            "autoscaling.min",
            "must be less than or equal to autoscaling.max",
        );
    }
    if !max_ok {
        errors.push("autoscaling.max", "must be -1 (unlimited) or at least 1");
    }
    if autoscaling.cooldown_secs < 0 {
        errors.push("autoscaling.cooldown", "must be greater than or equal to 0");
    }

    let policy = &autoscaling.policy;
    let kind = policy.kind.as_str();
    errors.one_of(
        "autoscaling.policy.type",
        kind,
        &[POLICY_ROOM_OCCUPANCY, POLICY_FIXED_BUFFER],
    );
    // Both parameter blocks may be present; the chosen one is required, and
    // any present one is checked so that switching policy later is safe.
    match &policy.room_occupancy {
        Some(params) => check_room_occupancy(errors, params),
        None if kind == POLICY_ROOM_OCCUPANCY => errors.push(
            ROOM_OCCUPANCY_PATH,
            "is required for the roomOccupancy policy",
        ),
        None => {}
    }
    match &policy.fixed_buffer {
        Some(params) => check_fixed_buffer(errors, params),
        None if kind == POLICY_FIXED_BUFFER => {
            errors.push(FIXED_BUFFER_PATH, "is required for the fixedBuffer policy")
        }
        None => {}
    }
}

/// `readyTarget` in (0, 1): at 1 the desired room count is infinite, at 0
/// nothing is kept free. `downThreshold` in (0, 1]: the API defaults a missing
/// one to 0.99, so a 0 here is a stored mistake. NaN fails both comparisons.
fn check_room_occupancy(errors: &mut Errors, params: &RoomOccupancyParams) {
    let ready = params.ready_target;
    if !(ready > 0.0 && ready < 1.0) {
        errors.push(
            format!("{ROOM_OCCUPANCY_PATH}.readyTarget"),
            "must be greater than 0 and less than 1",
        );
    }
    let down = params.down_threshold;
    if !(down > 0.0 && down <= 1.0) {
        errors.push(
            format!("{ROOM_OCCUPANCY_PATH}.downThreshold"),
            "must be greater than 0 and at most 1",
        );
    }
}

/// A buffer of zero rooms would leave no room ready for the next match.
fn check_fixed_buffer(errors: &mut Errors, params: &FixedBufferParams) {
    if params.amount <= 0 {
        errors.push(
            format!("{FIXED_BUFFER_PATH}.amount"),
            "must be greater than 0",
        );
    }
}

/// `earlier` holds the forwarders before this one, for the uniqueness check.
fn check_forwarder(
    errors: &mut Errors,
    index: usize,
    forwarder: &Forwarder,
    earlier: &[Forwarder],
) {
    let path = format!("forwarders[{index}]");
    if forwarder.name.trim().is_empty() {
        errors.push(format!("{path}.name"), "is required");
    } else if let Some(j) = earlier.iter().position(|f| f.name == forwarder.name) {
        errors.push(
            format!("{path}.name"),
            format!("must be unique (also used by forwarders[{j}])"),
        );
    }
    if forwarder.forward_type != FORWARD_TYPE_GRPC {
        errors.push(format!("{path}.forwardType"), "must be gRPC");
    }
    errors.require(format!("{path}.address"), &forwarder.address);
    match &forwarder.options {
        None => errors.push(format!("{path}.options"), "is required"),
        // The timeout bounds every forwarded call; 0 would fail them all.
        Some(options) if options.timeout_ms <= 0 => {
            errors.push(format!("{path}.options.timeout"), "must be greater than 0")
        }
        Some(_) => {}
    }
}

/// Annotation and label keys follow the Kubernetes qualified-name rule, since
/// they are copied onto the pods. Label values are checked too; annotation
/// values are free text.
fn check_metadata(
    errors: &mut Errors,
    field: &str,
    map: &BTreeMap<String, String>,
    check_values: bool,
) {
    for (key, value) in map {
        let path = format!("{field}[{key:?}]");
        if let Err(message) = check_key(key) {
            errors.push(&path, message);
        }
        if check_values && !is_label_value(value) {
            errors.push(
                path,
                "value must be empty or at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
            );
        }
    }
}

/// `[prefix/]name`: an optional DNS subdomain prefix, then 1–63 characters of
/// letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit.
fn check_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("key must not be empty");
    }
    if key.len() > MAX_KEY_LEN {
        return Err("key must be at most 253 characters");
    }
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if !prefix
                .split('.')
                .all(|label| is_token(label, is_kube_name_char))
            {
                return Err(
                    "key prefix must be a DNS subdomain: lower case letters, digits, '-' and '.', starting and ending with a letter or digit",
                );
            }
            name
        }
        None => key,
    };
    if name.len() > MAX_KEY_NAME_LEN || !is_token(name, is_label_char) {
        return Err(
            "key name must be 1 to 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
        );
    }
    Ok(())
}

fn is_label_value(value: &str) -> bool {
    value.is_empty() || (value.len() <= MAX_KEY_NAME_LEN && is_token(value, is_label_char))
}

/// Non-empty, every byte `allowed`, and first and last bytes alphanumeric.
fn is_token(text: &str, allowed: fn(u8) -> bool) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes.iter().all(|b| allowed(*b))
        }
        _ => false,
    }
}

fn is_kube_name_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

fn is_label_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::{fixed_buffer, room_occupancy, scheduler};
    use crate::scheduler::{EnvVarSource, FieldRef, ForwarderOptions, SecretKeyRef};

    type Mutation = fn(&mut Scheduler);

    /// The errors of `s` as `"path: message"` strings; empty when valid.
    fn errors_of(s: &Scheduler) -> Vec<String> {
        match validate(s) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    /// Applies each mutation to a fresh valid fixture and compares the errors.
    fn check_table(table: &[(&str, Mutation, &[&str])]) {
        for (what, mutate, want) in table {
            let mut s = scheduler("game");
            mutate(&mut s);
            assert_eq!(errors_of(&s), *want, "{what}");
        }
    }

    fn port(name: &str, range: Option<PortRange>) -> ContainerPort {
        ContainerPort {
            name: name.to_string(),
            protocol: "tcp".to_string(),
            port: 8080,
            host_port: 0,
            host_port_range: range,
        }
    }

    fn range(start: i64, end: i64) -> Option<PortRange> {
        Some(PortRange { start, end })
    }

    fn env_from(source: EnvVarSource) -> EnvVar {
        EnvVar {
            name: "FROM".to_string(),
            value: None,
            value_from: Some(source),
        }
    }

    fn field_ref(path: &str) -> Option<FieldRef> {
        Some(FieldRef {
            field_path: path.to_string(),
        })
    }

    fn secret(name: &str, key: &str) -> Option<SecretKeyRef> {
        Some(SecretKeyRef {
            name: name.to_string(),
            key: key.to_string(),
        })
    }

    fn forwarder(name: &str) -> Forwarder {
        Forwarder {
            name: name.to_string(),
            enabled: true,
            forward_type: "gRPC".to_string(),
            address: "forwarder:9090".to_string(),
            options: Some(ForwarderOptions {
                timeout_ms: 1000,
                metadata_json: "{}".to_string(),
            }),
        }
    }

    fn label(s: &mut Scheduler, key: &str, value: &str) {
        s.labels.insert(key.to_string(), value.to_string());
    }

    #[test]
    fn fixture_is_valid() {
        assert_eq!(validate(&scheduler("game")), Ok(()));
    }

    #[test]
    fn validate_name_follows_the_kube_rule_and_reserves_info() {
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        let pattern = "must consist of lower case letters, digits and '-', and start and end with a letter or digit";
        let table: &[(&str, Result<(), &str>)] = &[
            ("game", Ok(())),
            ("a", Ok(())),
            ("0", Ok(())),
            ("my-game-2", Ok(())),
            (&long, Ok(())),
            ("infos", Ok(())),
            ("", Err("is required")),
            (&too_long, Err("must be at most 63 characters")),
            ("Game", Err(pattern)),
            ("game-", Err(pattern)),
            ("-game", Err(pattern)),
            ("my_game", Err(pattern)),
            ("my.game", Err(pattern)),
            ("gäme", Err(pattern)),
            (
                "info",
                Err("is reserved: it collides with the /schedulers/info route"),
            ),
        ];
        for (name, want) in table {
            assert_eq!(validate_name(name), *want, "{name:?}");
        }
    }

    #[test]
    fn top_level_and_spec_rules() {
        check_table(&[
            ("empty name", |s| s.name.clear(), &["name: is required"]),
            (
                "bad name",
                |s| s.name = "Game".into(),
                &[
                    "name: must consist of lower case letters, digits and '-', and start and end with a letter or digit",
                ],
            ),
            (
                "reserved name",
                |s| s.name = "info".into(),
                &["name: is reserved: it collides with the /schedulers/info route"],
            ),
            ("empty game", |s| s.game.clear(), &["game: is required"]),
            (
                "blank game",
                |s| s.game = "  ".into(),
                &["game: is required"],
            ),
            (
                "empty version",
                |s| s.spec.version.clear(),
                &["spec.version: is required"],
            ),
            (
                "version without v",
                |s| s.spec.version = "1.2.3".into(),
                &[],
            ),
            (
                "two-part version",
                |s| s.spec.version = "v1.0".into(),
                &["spec.version: must be a semantic version such as v1.0.0"],
            ),
            (
                "word version",
                |s| s.spec.version = "latest".into(),
                &["spec.version: must be a semantic version such as v1.0.0"],
            ),
            (
                "zero grace period",
                |s| s.spec.termination_grace_period_secs = 0,
                &["spec.terminationGracePeriod: must be greater than 0"],
            ),
            (
                "negative grace period",
                |s| s.spec.termination_grace_period_secs = -5,
                &["spec.terminationGracePeriod: must be greater than 0"],
            ),
            (
                "no containers",
                |s| s.spec.containers.clear(),
                &["spec.containers: must have at least one container"],
            ),
            (
                "restart policy",
                |s| s.spec.restart_policy = "never".into(),
                &["spec.restartPolicy: must be one of Always, OnFailure, Never"],
            ),
            (
                "restart policy OnFailure",
                |s| s.spec.restart_policy = "OnFailure".into(),
                &[],
            ),
            ("zero replicas", |s| s.rooms_replicas = 0, &[]),
            ("max replicas", |s| s.rooms_replicas = 100_000, &[]),
            (
                "negative replicas",
                |s| s.rooms_replicas = -1,
                &["roomsReplicas: must be greater than or equal to 0"],
            ),
            (
                "too many replicas",
                |s| s.rooms_replicas = 100_001,
                &["roomsReplicas: must be at most 100000"],
            ),
            ("absolute surge", |s| s.max_surge = "3".into(), &[]),
            (
                "empty surge",
                |s| s.max_surge.clear(),
                &["maxSurge: is required"],
            ),
            (
                "zero surge",
                |s| s.max_surge = "0".into(),
                &["maxSurge: must be at least 1 (or 1%)"],
            ),
            (
                "word surge",
                |s| s.max_surge = "many".into(),
                &["maxSurge: must be an integer ≥ 1 or a percentage such as 25%"],
            ),
            (
                "max matches 35",
                |s| s.match_allocation.max_matches = 35,
                &[],
            ),
            (
                "max matches 0",
                |s| s.match_allocation.max_matches = 0,
                &["matchAllocation.maxMatches: must be between 1 and 35"],
            ),
            (
                "max matches 36",
                |s| s.match_allocation.max_matches = 36,
                &["matchAllocation.maxMatches: must be between 1 and 35"],
            ),
        ]);
    }

    #[test]
    fn container_rules() {
        check_table(&[
            (
                "duplicate container",
                |s| {
                    let copy = s.spec.containers[0].clone();
                    s.spec.containers.push(copy);
                },
                &["spec.containers[1].name: must be unique (also used by spec.containers[0])"],
            ),
            (
                "empty container name",
                |s| s.spec.containers[0].name.clear(),
                &["spec.containers[0].name: is required"],
            ),
            (
                "bad container name",
                |s| s.spec.containers[0].name = "game-".into(),
                &[
                    "spec.containers[0].name: must consist of lower case letters, digits and '-', and start and end with a letter or digit",
                ],
            ),
            (
                "container named info",
                |s| s.spec.containers[0].name = "info".into(),
                &[],
            ),
            (
                "empty image",
                |s| s.spec.containers[0].image.clear(),
                &["spec.containers[0].image: is required"],
            ),
            (
                "pull policy",
                |s| s.spec.containers[0].image_pull_policy = "always".into(),
                &["spec.containers[0].imagePullPolicy: must be one of Always, Never, IfNotPresent"],
            ),
            (
                "pull policy Always",
                |s| s.spec.containers[0].image_pull_policy = "Always".into(),
                &[],
            ),
        ]);
    }

    #[test]
    fn environment_rules() {
        check_table(&[
            (
                "env without name",
                |s| s.spec.containers[0].environment[0].name.clear(),
                &["spec.containers[0].environment[0].name: is required"],
            ),
            (
                "env empty value",
                |s| s.spec.containers[0].environment[0].value = Some(String::new()),
                &[],
            ),
            (
                "env without value",
                |s| s.spec.containers[0].environment[0].value = None,
                &["spec.containers[0].environment[0]: must set exactly one of value or valueFrom"],
            ),
            (
                "env with value and valueFrom",
                |s| {
                    s.spec.containers[0].environment[0].value_from = Some(EnvVarSource {
                        field_ref: field_ref("metadata.name"),
                        secret_key_ref: None,
                    })
                },
                &["spec.containers[0].environment[0]: must set exactly one of value or valueFrom"],
            ),
            (
                "env from field",
                |s| {
                    let env = env_from(EnvVarSource {
                        field_ref: field_ref("metadata.name"),
                        secret_key_ref: None,
                    });
                    s.spec.containers[0].environment.push(env);
                },
                &[],
            ),
            (
                "env from secret",
                |s| {
                    let env = env_from(EnvVarSource {
                        field_ref: None,
                        secret_key_ref: secret("creds", "token"),
                    });
                    s.spec.containers[0].environment.push(env);
                },
                &[],
            ),
            (
                "env from nothing",
                |s| {
                    let env = env_from(EnvVarSource::default());
                    s.spec.containers[0].environment.push(env);
                },
                &[
                    "spec.containers[0].environment[1].valueFrom: must set exactly one of fieldRef or secretKeyRef",
                ],
            ),
            (
                "env from both",
                |s| {
                    let env = env_from(EnvVarSource {
                        field_ref: field_ref("metadata.name"),
                        secret_key_ref: secret("creds", "token"),
                    });
                    s.spec.containers[0].environment.push(env);
                },
                &[
                    "spec.containers[0].environment[1].valueFrom: must set exactly one of fieldRef or secretKeyRef",
                ],
            ),
            (
                "env from empty field path",
                |s| {
                    let env = env_from(EnvVarSource {
                        field_ref: field_ref(""),
                        secret_key_ref: None,
                    });
                    s.spec.containers[0].environment.push(env);
                },
                &["spec.containers[0].environment[1].valueFrom.fieldRef.fieldPath: is required"],
            ),
            (
                "env from incomplete secret",
                |s| {
                    let env = env_from(EnvVarSource {
                        field_ref: None,
                        secret_key_ref: secret("", ""),
                    });
                    s.spec.containers[0].environment.push(env);
                },
                &[
                    "spec.containers[0].environment[1].valueFrom.secretKeyRef.name: is required",
                    "spec.containers[0].environment[1].valueFrom.secretKeyRef.key: is required",
                ],
            ),
        ]);
    }

    #[test]
    fn resource_rules() {
        check_table(&[
            (
                "request equal to limit",
                |s| s.spec.containers[0].requests.cpu = "0.2".into(),
                &[],
            ),
            (
                "empty request",
                |s| s.spec.containers[0].requests.cpu.clear(),
                &["spec.containers[0].requests.cpu: is required"],
            ),
            (
                "empty limit",
                |s| s.spec.containers[0].limits.memory.clear(),
                &["spec.containers[0].limits.memory: is required"],
            ),
            (
                "bad request",
                |s| s.spec.containers[0].requests.memory = "lots".into(),
                &[
                    "spec.containers[0].requests.memory: must be a quantity such as 100m, 0.5, 128Mi or 1Gi",
                ],
            ),
            (
                "negative limit",
                |s| s.spec.containers[0].limits.cpu = "-1".into(),
                &["spec.containers[0].limits.cpu: must not be negative"],
            ),
            (
                "cpu request above limit",
                |s| s.spec.containers[0].requests.cpu = "300m".into(),
                &[
                    "spec.containers[0].requests.cpu: must be less than or equal to spec.containers[0].limits.cpu",
                ],
            ),
            (
                "memory request above limit",
                |s| s.spec.containers[0].requests.memory = "1Gi".into(),
                &[
                    "spec.containers[0].requests.memory: must be less than or equal to spec.containers[0].limits.memory",
                ],
            ),
            (
                "all resources empty",
                |s| {
                    s.spec.containers[0].requests = Default::default();
                    s.spec.containers[0].limits = Default::default();
                },
                &[
                    "spec.containers[0].requests.memory: is required",
                    "spec.containers[0].requests.cpu: is required",
                    "spec.containers[0].limits.memory: is required",
                    "spec.containers[0].limits.cpu: is required",
                ],
            ),
        ]);
    }

    #[test]
    fn port_rules() {
        check_table(&[
            (
                "empty port name",
                |s| s.spec.containers[0].ports[0].name.clear(),
                &["spec.containers[0].ports[0].name: is required"],
            ),
            (
                "15-character port name",
                |s| s.spec.containers[0].ports[0].name = "a".repeat(15),
                &[],
            ),
            (
                "16-character port name",
                |s| s.spec.containers[0].ports[0].name = "a".repeat(16),
                &["spec.containers[0].ports[0].name: must be at most 15 characters"],
            ),
            (
                "duplicate port name",
                |s| {
                    s.spec.containers[0]
                        .ports
                        .push(port("game", range(30001, 30100)))
                },
                &[
                    "spec.containers[0].ports[1].name: must be unique within the container (also used by spec.containers[0].ports[0])",
                ],
            ),
            (
                "same port name in two containers",
                |s| {
                    let mut other = s.spec.containers[0].clone();
                    other.name = "sidecar".into();
                    s.spec.containers.push(other);
                },
                &[],
            ),
            (
                "sctp protocol",
                |s| {
                    let mut p = port("signal", range(30001, 30100));
                    p.protocol = "sctp".into();
                    s.spec.containers[0].ports.push(p);
                },
                &[
                    "spec.containers[0].ports[1].protocol: sctp is not supported; must be one of tcp, udp",
                ],
            ),
            (
                "upper-case protocol",
                |s| s.spec.containers[0].ports[0].protocol = "UDP".into(),
                &["spec.containers[0].ports[0].protocol: must be one of tcp, udp"],
            ),
            (
                "empty protocol",
                |s| s.spec.containers[0].ports[0].protocol.clear(),
                &["spec.containers[0].ports[0].protocol: must be one of tcp, udp"],
            ),
            (
                "tcp protocol",
                |s| s.spec.containers[0].ports[0].protocol = "tcp".into(),
                &[],
            ),
            (
                "port 0",
                |s| s.spec.containers[0].ports[0].port = 0,
                &["spec.containers[0].ports[0].port: must be between 1 and 65535"],
            ),
            (
                "port 65536",
                |s| s.spec.containers[0].ports[0].port = 65_536,
                &["spec.containers[0].ports[0].port: must be between 1 and 65535"],
            ),
            (
                "port 65535",
                |s| s.spec.containers[0].ports[0].port = 65_535,
                &[],
            ),
            (
                "host port 65535",
                |s| s.spec.containers[0].ports[0].host_port = 65_535,
                &[],
            ),
            (
                "negative host port",
                |s| s.spec.containers[0].ports[0].host_port = -1,
                &["spec.containers[0].ports[0].hostPort: must be between 0 and 65535"],
            ),
            (
                "empty host port range",
                |s| s.spec.containers[0].ports[0].host_port_range = range(20000, 20000),
                &["spec.containers[0].ports[0].hostPortRange: start must be less than end"],
            ),
            (
                "host port range out of bounds",
                |s| s.spec.containers[0].ports[0].host_port_range = range(0, 70000),
                &[
                    "spec.containers[0].ports[0].hostPortRange.start: must be between 1 and 65535",
                    "spec.containers[0].ports[0].hostPortRange.end: must be between 1 and 65535",
                ],
            ),
        ]);
    }

    #[test]
    fn port_range_rule() {
        check_table(&[
            (
                "both configured",
                |s| s.port_range = range(40000, 41000),
                &["portRange: must not be set when container ports have hostPortRange"],
            ),
            (
                "neither configured",
                |s| s.spec.containers[0].ports[0].host_port_range = None,
                &["portRange: is required when container ports have no hostPortRange"],
            ),
            (
                "mixed",
                |s| s.spec.containers[0].ports.push(port("http", None)),
                &[
                    "spec.containers[0].ports[1].hostPortRange: is required when any container port has one",
                ],
            ),
            (
                "mixed across containers",
                |s| {
                    let mut other = s.spec.containers[0].clone();
                    other.name = "sidecar".into();
                    other.ports = vec![port("http", range(31000, 32000)), port("admin", None)];
                    s.spec.containers.push(other);
                },
                &[
                    "spec.containers[1].ports[1].hostPortRange: is required when any container port has one",
                ],
            ),
            (
                "scheduler range only",
                |s| {
                    s.spec.containers[0].ports[0].host_port_range = None;
                    s.spec.containers[0].ports.push(port("http", None));
                    s.port_range = range(40000, 41000);
                },
                &[],
            ),
            (
                "no ports at all",
                |s| s.spec.containers[0].ports.clear(),
                &[],
            ),
            (
                "no ports with a scheduler range",
                |s| {
                    s.spec.containers[0].ports.clear();
                    s.port_range = range(40000, 41000);
                },
                &[],
            ),
            (
                "inverted scheduler range",
                |s| {
                    s.spec.containers[0].ports[0].host_port_range = None;
                    s.port_range = range(41000, 40000);
                },
                &["portRange: start must be less than end"],
            ),
            (
                "scheduler range out of bounds",
                |s| {
                    s.spec.containers[0].ports[0].host_port_range = None;
                    s.port_range = range(-1, 65_536);
                },
                &[
                    "portRange.start: must be between 1 and 65535",
                    "portRange.end: must be between 1 and 65535",
                ],
            ),
        ]);
    }

    #[test]
    fn autoscaling_rules() {
        const READY: &str = "autoscaling.policy.parameters.roomOccupancy.readyTarget: must be greater than 0 and less than 1";
        const DOWN: &str = "autoscaling.policy.parameters.roomOccupancy.downThreshold: must be greater than 0 and at most 1";
        check_table(&[
            (
                "room occupancy",
                |s| s.autoscaling = Some(room_occupancy(1, 10, 0.5)),
                &[],
            ),
            (
                "unlimited max",
                |s| s.autoscaling = Some(room_occupancy(5, -1, 0.5)),
                &[],
            ),
            (
                "min equal to max",
                |s| s.autoscaling = Some(room_occupancy(10, 10, 0.5)),
                &[],
            ),
            (
                "fixed buffer",
                |s| s.autoscaling = Some(fixed_buffer(1, 10, 5)),
                &[],
            ),
            (
                "min above max",
                |s| s.autoscaling = Some(room_occupancy(11, 10, 0.5)),
                &["autoscaling.min: must be less than or equal to autoscaling.max"],
            ),
            (
                "min 0",
                |s| s.autoscaling = Some(room_occupancy(0, 10, 0.5)),
                &["autoscaling.min: must be at least 1"],
            ),
            (
                "max 0",
                |s| s.autoscaling = Some(room_occupancy(1, 0, 0.5)),
                &["autoscaling.max: must be -1 (unlimited) or at least 1"],
            ),
            (
                "max -2",
                |s| s.autoscaling = Some(room_occupancy(1, -2, 0.5)),
                &["autoscaling.max: must be -1 (unlimited) or at least 1"],
            ),
            (
                "negative cooldown",
                |s| {
                    let mut a = room_occupancy(1, 10, 0.5);
                    a.cooldown_secs = -1;
                    s.autoscaling = Some(a);
                },
                &["autoscaling.cooldown: must be greater than or equal to 0"],
            ),
            (
                "disabled is still checked",
                |s| {
                    let mut a = room_occupancy(0, 10, 0.5);
                    a.enabled = false;
                    s.autoscaling = Some(a);
                },
                &["autoscaling.min: must be at least 1"],
            ),
            (
                "unknown policy",
                |s| {
                    let mut a = room_occupancy(1, 10, 0.5);
                    a.policy.kind = "magic".into();
                    s.autoscaling = Some(a);
                },
                &["autoscaling.policy.type: must be one of roomOccupancy, fixedBuffer"],
            ),
            (
                "ready target 0",
                |s| s.autoscaling = Some(room_occupancy(1, 10, 0.0)),
                &[READY],
            ),
            (
                "ready target 1",
                |s| s.autoscaling = Some(room_occupancy(1, 10, 1.0)),
                &[READY],
            ),
            (
                "ready target NaN",
                |s| s.autoscaling = Some(room_occupancy(1, 10, f64::NAN)),
                &[READY],
            ),
            (
                "ready target 0.99",
                |s| s.autoscaling = Some(room_occupancy(1, 10, 0.99)),
                &[],
            ),
            (
                "down threshold 1",
                |s| {
                    let mut a = room_occupancy(1, 10, 0.5);
                    if let Some(p) = a.policy.room_occupancy.as_mut() {
                        p.down_threshold = 1.0;
                    }
                    s.autoscaling = Some(a);
                },
                &[],
            ),
            (
                "down threshold 0",
                |s| {
                    let mut a = room_occupancy(1, 10, 0.5);
                    if let Some(p) = a.policy.room_occupancy.as_mut() {
                        p.down_threshold = 0.0;
                    }
                    s.autoscaling = Some(a);
                },
                &[DOWN],
            ),
            (
                "down threshold 1.5",
                |s| {
                    let mut a = room_occupancy(1, 10, 0.5);
                    if let Some(p) = a.policy.room_occupancy.as_mut() {
                        p.down_threshold = 1.5;
                    }
                    s.autoscaling = Some(a);
                },
                &[DOWN],
            ),
            (
                "room occupancy without parameters",
                |s| {
                    let mut a = room_occupancy(1, 10, 0.5);
                    a.policy.room_occupancy = None;
                    s.autoscaling = Some(a);
                },
                &[
                    "autoscaling.policy.parameters.roomOccupancy: is required for the roomOccupancy policy",
                ],
            ),
            (
                "fixed buffer without parameters",
                |s| {
                    let mut a = fixed_buffer(1, 10, 5);
                    a.policy.fixed_buffer = None;
                    s.autoscaling = Some(a);
                },
                &[
                    "autoscaling.policy.parameters.fixedBuffer: is required for the fixedBuffer policy",
                ],
            ),
            (
                "fixed buffer amount 0",
                |s| s.autoscaling = Some(fixed_buffer(1, 10, 0)),
                &["autoscaling.policy.parameters.fixedBuffer.amount: must be greater than 0"],
            ),
            (
                "both blocks, the other one invalid",
                |s| {
                    let mut a = fixed_buffer(1, 10, 5);
                    a.policy.room_occupancy = room_occupancy(1, 10, 1.0).policy.room_occupancy;
                    s.autoscaling = Some(a);
                },
                &[READY],
            ),
            (
                "both blocks valid",
                |s| {
                    let mut a = room_occupancy(1, 10, 0.5);
                    a.policy.fixed_buffer = Some(FixedBufferParams { amount: 3 });
                    s.autoscaling = Some(a);
                },
                &[],
            ),
        ]);
    }

    #[test]
    fn forwarder_rules() {
        check_table(&[
            (
                "valid forwarder",
                |s| s.forwarders.push(forwarder("matchmaker")),
                &[],
            ),
            (
                "duplicate forwarder",
                |s| {
                    s.forwarders.push(forwarder("matchmaker"));
                    s.forwarders.push(forwarder("matchmaker"));
                },
                &["forwarders[1].name: must be unique (also used by forwarders[0])"],
            ),
            (
                "forwarder without name",
                |s| s.forwarders.push(forwarder("")),
                &["forwarders[0].name: is required"],
            ),
            (
                "forwarder type",
                |s| {
                    let mut f = forwarder("matchmaker");
                    f.forward_type = "grpc".into();
                    s.forwarders.push(f);
                },
                &["forwarders[0].forwardType: must be gRPC"],
            ),
            (
                "forwarder without address",
                |s| {
                    let mut f = forwarder("matchmaker");
                    f.address.clear();
                    s.forwarders.push(f);
                },
                &["forwarders[0].address: is required"],
            ),
            (
                "forwarder without options",
                |s| {
                    let mut f = forwarder("matchmaker");
                    f.options = None;
                    s.forwarders.push(f);
                },
                &["forwarders[0].options: is required"],
            ),
            (
                "forwarder timeout 0",
                |s| {
                    let mut f = forwarder("matchmaker");
                    if let Some(o) = f.options.as_mut() {
                        o.timeout_ms = 0;
                    }
                    s.forwarders.push(f);
                },
                &["forwarders[0].options.timeout: must be greater than 0"],
            ),
        ]);
    }

    #[test]
    fn label_and_annotation_rules() {
        const NAME: &str = "key name must be 1 to 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit";
        const PREFIX: &str = "key prefix must be a DNS subdomain: lower case letters, digits, '-' and '.', starting and ending with a letter or digit";
        const VALUE: &str = "value must be empty or at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit";
        let table: &[(&str, &str, Option<String>)] = &[
            ("app", "game", None),
            ("example.com/app", "v1.2_3-x", None),
            ("App.Name_1", "", None),
            ("", "x", Some(r#"labels[""]: key must not be empty"#.into())),
            ("my key", "x", Some(format!(r#"labels["my key"]: {NAME}"#))),
            ("app-", "x", Some(format!(r#"labels["app-"]: {NAME}"#))),
            ("a/b/c", "x", Some(format!(r#"labels["a/b/c"]: {NAME}"#))),
            (
                "example.com/",
                "x",
                Some(format!(r#"labels["example.com/"]: {NAME}"#)),
            ),
            ("/app", "x", Some(format!(r#"labels["/app"]: {PREFIX}"#))),
            (
                "Example.com/app",
                "x",
                Some(format!(r#"labels["Example.com/app"]: {PREFIX}"#)),
            ),
            (
                "example..com/app",
                "x",
                Some(format!(r#"labels["example..com/app"]: {PREFIX}"#)),
            ),
            ("app", "-x", Some(format!(r#"labels["app"]: {VALUE}"#))),
            ("app", "a b", Some(format!(r#"labels["app"]: {VALUE}"#))),
        ];
        for (key, value, want) in table {
            let mut s = scheduler("game");
            label(&mut s, key, value);
            let want: Vec<String> = want.iter().cloned().collect();
            assert_eq!(errors_of(&s), want, "{key:?} = {value:?}");
        }

        let mut s = scheduler("game");
        label(&mut s, &"a".repeat(63), &"b".repeat(63));
        assert_eq!(errors_of(&s), Vec::<String>::new());
        label(&mut s, &"a".repeat(64), &"b".repeat(64));
        let key = "a".repeat(64);
        assert_eq!(
            errors_of(&s),
            vec![
                format!(r#"labels["{key}"]: {NAME}"#),
                format!(r#"labels["{key}"]: {VALUE}"#),
            ]
        );

        let mut s = scheduler("game");
        let long_key = format!("{}/app", "a".repeat(250));
        label(&mut s, &long_key, "x");
        assert_eq!(
            errors_of(&s),
            vec![format!(
                r#"labels["{long_key}"]: key must be at most 253 characters"#
            )]
        );

        // Annotation values are free text; their keys follow the same rule.
        let mut s = scheduler("game");
        s.annotations
            .insert("description".into(), "Any text, even -this-".into());
        s.annotations.insert("my key".into(), String::new());
        assert_eq!(
            errors_of(&s),
            vec![format!(r#"annotations["my key"]: {NAME}"#)]
        );
    }

    #[test]
    fn reports_every_error_in_field_order() {
        let mut s = scheduler("game");
        s.name = "Bad_Name".into();
        s.game.clear();
        s.spec.version = "one".into();
        s.spec.termination_grace_period_secs = 0;
        s.spec.containers[0].image.clear();
        s.spec.containers[0].ports[0].protocol = "sctp".into();
        s.spec.containers[0].ports.push(port("http", None));
        s.spec.restart_policy.clear();
        s.rooms_replicas = -3;
        s.max_surge = "0%".into();
        s.autoscaling = Some(room_occupancy(20, 10, 1.0));
        s.forwarders.push(forwarder(""));
        s.labels.insert("bad key".into(), "ok".into());
        s.match_allocation.max_matches = 0;

        let want = [
            "name: must consist of lower case letters, digits and '-', and start and end with a letter or digit",
            "game: is required",
            "spec.version: must be a semantic version such as v1.0.0",
            "spec.terminationGracePeriod: must be greater than 0",
            "spec.containers[0].image: is required",
            "spec.containers[0].ports[0].protocol: sctp is not supported; must be one of tcp, udp",
            "spec.containers[0].ports[1].hostPortRange: is required when any container port has one",
            "spec.restartPolicy: must be one of Always, OnFailure, Never",
            "roomsReplicas: must be greater than or equal to 0",
            "maxSurge: must be at least 1 (or 1%)",
            "autoscaling.min: must be less than or equal to autoscaling.max",
            "autoscaling.policy.parameters.roomOccupancy.readyTarget: must be greater than 0 and less than 1",
            "forwarders[0].name: is required",
            r#"labels["bad key"]: key name must be 1 to 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"#,
            "matchAllocation.maxMatches: must be between 1 and 35",
        ];
        assert_eq!(errors_of(&s), want);

        let Err(errors) = validate(&s) else {
            panic!("expected errors");
        };
        assert_eq!(errors.to_string(), want.join("\n"));
        assert_eq!(
            errors.0[0],
            FieldError {
                path: "name".into(),
                message: want[0].trim_start_matches("name: ").into(),
            }
        );
    }
}
