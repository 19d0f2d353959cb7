//! Maestro Next's scheduler YAML: the `yaml` column of its `schedulers` and
//! `scheduler_versions` tables (reference §7.1).
//!
//! Upstream writes it with ghodss/yaml from an internal struct
//! (`schedulerInfo`) whose fields have no JSON tags, so the keys are Go's
//! field names (`TerminationGracePeriod`, `Containers`, ...), durations are
//! integer nanoseconds, unset pointers and slices are `null`, and times are
//! RFC 3339 (the zero time for "never"). Go reads missing keys as zero
//! values; so does this reader. The name, game, state and version are
//! columns of the row, not part of the YAML.

use std::collections::BTreeMap;

use maestro_engine::Time;
use maestro_engine::scheduler::{
    Autoscaling, AutoscalingPolicy, Container, ContainerPort, EnvVar, EnvVarSource, FieldRef,
    FixedBufferParams, Forwarder, ForwarderOptions, MatchAllocation, PortRange, Resources,
    RoomOccupancyParams, Scheduler, SchedulerState, SecretKeyRef, Spec,
};
use serde::Deserialize;

/// The columns of one row that the YAML does not hold.
pub struct Row<'a> {
    pub name: &'a str,
    pub game: &'a str,
    pub state: &'a str,
    pub version: &'a str,
    pub rollback_version: &'a str,
    pub created_at: Time,
}

/// What went wrong reading a row: the field (a Go path such as
/// `Containers[0].Ports[1].Protocol`, or a column) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

impl FieldProblem {
    fn new(field: impl Into<String>, message: impl Into<String>) -> FieldProblem {
        FieldProblem {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Upstream writes no restart policy to PostgreSQL (a bug, reference
/// §2.1); its pods run with Kubernetes' `Never`, which maestro's API also
/// defaults to.
const RESTART_POLICY: &str = "Never";

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Reads one row into maestro's scheduler. It is not validated here: the
/// caller runs the engine's validation, which names maestro's fields.
pub fn scheduler(row: &Row<'_>, yaml: &str) -> Result<Scheduler, FieldProblem> {
    let value: serde_json::Value = serde_saphyr::from_str(yaml).map_err(|e| {
        // The parser's message quotes the document over several lines.
        let first = e.to_string();
        let first = first
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        FieldProblem::new("yaml", format!("is not YAML: {first}"))
    })?;
    let info: Info = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        FieldProblem::new(go_path(&path), e.into_inner().to_string())
    })?;
    let state = match row.state {
        "creating" => SchedulerState::Creating,
        "in-sync" => SchedulerState::InSync,
        "on-error" => SchedulerState::OnError,
        "terminating" => SchedulerState::Terminating,
        other => {
            return Err(FieldProblem::new(
                "state",
                format!("unknown scheduler state {other:?}"),
            ));
        }
    };
    let autoscaling = info.autoscaling.map(autoscaling).transpose()?;
    let last_downscale_at = match info.last_downscale_at.as_deref() {
        None => None,
        Some(text) => go_time(text)
            .map_err(|why| FieldProblem::new("LastDownscaleAt", why))?
            .filter(|t| *t > Time::ZERO),
    };
    Ok(Scheduler {
        name: row.name.to_string(),
        game: row.game.to_string(),
        state,
        spec: Spec {
            version: row.version.to_string(),
            termination_grace_period_secs: info.termination_grace_period.unwrap_or(0)
                / NANOS_PER_SEC,
            containers: info
                .containers
                .unwrap_or_default()
                .into_iter()
                .map(container)
                .collect(),
            toleration: info.toleration.unwrap_or_default(),
            affinity: info.affinity.unwrap_or_default(),
            restart_policy: RESTART_POLICY.to_string(),
        },
        port_range: info.port_range.map(range),
        rooms_replicas: info.rooms_replicas.unwrap_or(0),
        max_surge: info.max_surge.unwrap_or_default(),
        autoscaling,
        forwarders: info
            .forwarders
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .map(forwarder)
            .collect(),
        annotations: info.annotations.unwrap_or_default(),
        labels: info.labels.unwrap_or_default(),
        // Upstream's default for rows written before match allocation existed.
        match_allocation: MatchAllocation {
            max_matches: info
                .match_allocation
                .and_then(|m| m.max_matches)
                .unwrap_or(1),
        },
        created_at: row.created_at,
        last_downscale_at,
        rollback_version: Some(row.rollback_version.to_string()).filter(|v| !v.is_empty()),
    })
}

/// serde's path (`Containers[0].Ports`) already reads as Go's; the root is `yaml`.
fn go_path(path: &str) -> String {
    if path.is_empty() || path == "." {
        "yaml".to_string()
    } else {
        path.to_string()
    }
}

/// A Go `time.Time` as JSON writes it (RFC 3339 with any offset); the zero
/// time (year 1) and anything before 1970 read as `None`.
fn go_time(text: &str) -> Result<Option<Time>, String> {
    let ts: jiff::Timestamp = text
        .parse()
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))?;
    Ok(u64::try_from(ts.as_millisecond()).ok().map(Time))
}

fn container(c: GoContainer) -> Container {
    Container {
        name: c.name.unwrap_or_default(),
        image: c.image.unwrap_or_default(),
        image_pull_policy: c.image_pull_policy.unwrap_or_default(),
        command: c.command.unwrap_or_default(),
        environment: c
            .environment
            .unwrap_or_default()
            .into_iter()
            .map(|e| EnvVar {
                name: e.name.unwrap_or_default(),
                value: e.value.filter(|v| !v.is_empty()),
                value_from: e.value_from.map(|v| EnvVarSource {
                    field_ref: v.field_ref.map(|f| FieldRef {
                        field_path: f.field_path.unwrap_or_default(),
                    }),
                    secret_key_ref: v.secret_key_ref.map(|s| SecretKeyRef {
                        name: s.name.unwrap_or_default(),
                        key: s.key.unwrap_or_default(),
                    }),
                }),
            })
            .collect(),
        requests: resources(c.requests),
        limits: resources(c.limits),
        ports: c
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| ContainerPort {
                name: p.name.unwrap_or_default(),
                protocol: p.protocol.unwrap_or_default(),
                port: p.port.unwrap_or(0),
                host_port: p.host_port.unwrap_or(0),
                host_port_range: p.host_port_range.map(range),
            })
            .collect(),
    }
}

fn resources(r: Option<GoResources>) -> Resources {
    let r = r.unwrap_or_default();
    Resources {
        memory: r.memory.unwrap_or_default(),
        cpu: r.cpu.unwrap_or_default(),
    }
}

fn range(r: GoRange) -> PortRange {
    PortRange {
        start: r.start.unwrap_or(0),
        end: r.end.unwrap_or(0),
    }
}

/// Upstream passes the API's millisecond timeout unconverted into a Go
/// `time.Duration`, so the stored number is the millisecond count.
fn forwarder(f: GoForwarder) -> Forwarder {
    Forwarder {
        name: f.name.unwrap_or_default(),
        enabled: f.enabled.unwrap_or(false),
        forward_type: f.forward_type.unwrap_or_default(),
        address: f.address.unwrap_or_default(),
        options: f.options.map(|o| ForwarderOptions {
            timeout_ms: o.timeout.unwrap_or(0),
            metadata_json: o.metadata.map_or_else(
                || "{}".to_string(),
                |m| serde_json::Value::Object(m).to_string(),
            ),
        }),
    }
}

fn autoscaling(a: GoAutoscaling) -> Result<Autoscaling, FieldProblem> {
    let policy = a.policy.unwrap_or_default();
    let kind = policy.kind.unwrap_or_default();
    let parameters = policy.parameters.unwrap_or_default();
    let known = [
        maestro_engine::scheduler::POLICY_ROOM_OCCUPANCY,
        maestro_engine::scheduler::POLICY_FIXED_BUFFER,
    ];
    if !known.contains(&kind.as_str()) {
        return Err(FieldProblem::new(
            "Autoscaling.Policy.Type",
            format!(
                "unknown autoscaling type {kind:?} (maestro knows {})",
                known.join(", ")
            ),
        ));
    }
    Ok(Autoscaling {
        enabled: a.enabled.unwrap_or(false),
        min: a.min.unwrap_or(0),
        max: a.max.unwrap_or(0),
        cooldown_secs: a.cooldown.unwrap_or(0),
        policy: AutoscalingPolicy {
            kind,
            room_occupancy: parameters.room_occupancy.map(|r| RoomOccupancyParams {
                ready_target: r.ready_target.unwrap_or(0.0),
                down_threshold: r.down_threshold.unwrap_or(0.0),
            }),
            fixed_buffer: parameters.fixed_buffer.map(|f| FixedBufferParams {
                amount: f.amount.unwrap_or(0),
            }),
        },
    })
}

// Go's shapes. Every field is optional: Go reads a missing key or `null`
// as the zero value.

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Info {
    termination_grace_period: Option<i64>,
    toleration: Option<String>,
    affinity: Option<String>,
    containers: Option<Vec<GoContainer>>,
    port_range: Option<GoRange>,
    max_surge: Option<String>,
    rooms_replicas: Option<i64>,
    forwarders: Option<Vec<Option<GoForwarder>>>,
    autoscaling: Option<GoAutoscaling>,
    annotations: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
    last_downscale_at: Option<String>,
    match_allocation: Option<GoMatchAllocation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoContainer {
    name: Option<String>,
    image: Option<String>,
    image_pull_policy: Option<String>,
    command: Option<Vec<String>>,
    environment: Option<Vec<GoEnv>>,
    requests: Option<GoResources>,
    limits: Option<GoResources>,
    ports: Option<Vec<GoPort>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoEnv {
    name: Option<String>,
    value: Option<String>,
    value_from: Option<GoValueFrom>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoValueFrom {
    field_ref: Option<GoFieldRef>,
    secret_key_ref: Option<GoSecretKeyRef>,
}

/// These two carry JSON tags upstream (`fieldPath`, `name`, `key`); Go's
/// decoder matches keys case-insensitively, so the Go names read too.
#[derive(Deserialize)]
struct GoFieldRef {
    #[serde(rename = "fieldPath", alias = "FieldPath")]
    field_path: Option<String>,
}

#[derive(Deserialize)]
struct GoSecretKeyRef {
    #[serde(alias = "Name")]
    name: Option<String>,
    #[serde(alias = "Key")]
    key: Option<String>,
}

#[derive(Default, Deserialize)]
struct GoResources {
    #[serde(rename = "Memory")]
    memory: Option<String>,
    #[serde(rename = "CPU")]
    cpu: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoPort {
    name: Option<String>,
    protocol: Option<String>,
    port: Option<i64>,
    host_port_range: Option<GoRange>,
    host_port: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoRange {
    start: Option<i64>,
    end: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoForwarder {
    name: Option<String>,
    enabled: Option<bool>,
    forward_type: Option<String>,
    address: Option<String>,
    options: Option<GoForwarderOptions>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoForwarderOptions {
    timeout: Option<i64>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoAutoscaling {
    enabled: Option<bool>,
    min: Option<i64>,
    max: Option<i64>,
    cooldown: Option<i64>,
    policy: Option<GoPolicy>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoPolicy {
    #[serde(rename = "Type")]
    kind: Option<String>,
    parameters: Option<GoParameters>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoParameters {
    room_occupancy: Option<GoRoomOccupancy>,
    fixed_buffer: Option<GoFixedBuffer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoRoomOccupancy {
    ready_target: Option<f64>,
    down_threshold: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoFixedBuffer {
    amount: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GoMatchAllocation {
    max_matches: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row<'static> {
        Row {
            name: "arena",
            game: "tennis",
            state: "in-sync",
            version: "v2.1.0",
            rollback_version: "v2.0.0",
            created_at: Time(1_700_000_000_000),
        }
    }

    /// A document as ghodss/yaml writes `schedulerInfo`: Go names, keys in
    /// alphabetical order, durations in nanoseconds, nil as null.
    const YAML: &str = r#"Affinity: ""
Annotations:
  team: pvp
Autoscaling:
  Cooldown: 60
  Enabled: true
  Max: 50
  Min: 2
  Policy:
    Parameters:
      FixedBuffer: null
      RoomOccupancy:
        DownThreshold: 0.9
        ReadyTarget: 0.4
    Type: roomOccupancy
Containers:
- Command:
  - ./run
  Environment:
  - Name: MODE
    Value: prod
    ValueFrom: null
  - Name: POD_IP
    Value: ""
    ValueFrom:
      FieldRef:
        fieldPath: status.podIP
      SecretKeyRef: null
  Image: registry.example/tennis:2
  ImagePullPolicy: IfNotPresent
  Limits:
    CPU: 200m
    Memory: 256Mi
  Name: game
  Ports:
  - HostPort: 0
    HostPortRange:
      End: 30000
      Start: 20000
    Name: game
    Port: 7777
    Protocol: udp
  Requests:
    CPU: 100m
    Memory: 128Mi
Forwarders:
- Address: forwarder.example:9090
  Enabled: true
  ForwardType: gRPC
  Name: events
  Options:
    Metadata:
      region: eu
    Timeout: 1000
Labels: null
LastDownscaleAt: "2024-05-01T10:00:00.5+02:00"
MatchAllocation:
  MaxMatches: 3
MaxSurge: 25%
PortRange: null
RoomsReplicas: 4
TerminationGracePeriod: 30000000000
Toleration: dedicated
"#;

    #[test]
    fn reads_upstreams_go_field_yaml() {
        let s = scheduler(&row(), YAML).unwrap();
        assert_eq!(s.name, "arena");
        assert_eq!(s.state, SchedulerState::InSync);
        assert_eq!(s.spec.version, "v2.1.0");
        assert_eq!(s.rollback_version.as_deref(), Some("v2.0.0"));
        assert_eq!(s.spec.termination_grace_period_secs, 30);
        assert_eq!(s.spec.toleration, "dedicated");
        assert_eq!(s.spec.restart_policy, "Never");
        let c = &s.spec.containers[0];
        assert_eq!(c.command, ["./run"]);
        assert_eq!(c.environment[0].value.as_deref(), Some("prod"));
        let from = c.environment[1].value_from.as_ref().unwrap();
        assert_eq!(from.field_ref.as_ref().unwrap().field_path, "status.podIP");
        assert_eq!(c.requests.cpu, "100m");
        assert_eq!(c.limits.memory, "256Mi");
        assert_eq!(c.ports[0].host_port_range.unwrap().end, 30000);
        assert_eq!(s.rooms_replicas, 4);
        assert_eq!(s.max_surge, "25%");
        let a = s.autoscaling.as_ref().unwrap();
        assert!(a.enabled);
        assert_eq!((a.min, a.max, a.cooldown_secs), (2, 50, 60));
        assert_eq!(a.policy.room_occupancy.unwrap().ready_target, 0.4);
        let f = &s.forwarders[0];
        assert_eq!(f.forward_type, "gRPC");
        let options = f.options.as_ref().unwrap();
        assert_eq!(options.timeout_ms, 1000);
        assert_eq!(options.metadata_json, r#"{"region":"eu"}"#);
        assert_eq!(s.annotations["team"], "pvp");
        assert!(s.labels.is_empty());
        assert_eq!(s.match_allocation.max_matches, 3);
        // 10:00:00.5 at +02:00 is 08:00:00.5 UTC.
        assert_eq!(s.last_downscale_at, Some(Time(1_714_550_400_500)));
        assert_eq!(maestro_engine::scheduler::validate(&s), Ok(()));
    }

    #[test]
    fn zero_values_read_as_go_reads_them() {
        let s = scheduler(
            &row(),
            "LastDownscaleAt: \"0001-01-01T00:00:00Z\"\nMatchAllocation: null\n",
        )
        .unwrap();
        assert_eq!(s.last_downscale_at, None);
        assert_eq!(s.match_allocation.max_matches, 1, "upstream's default");
        assert!(s.spec.containers.is_empty() && s.autoscaling.is_none());
    }

    #[test]
    fn problems_name_the_field() {
        let broken = scheduler(&row(), "Containers: [unclosed\n").unwrap_err();
        assert_eq!(broken.field, "yaml");
        let wrong = scheduler(&row(), "Containers:\n- Ports:\n  - Port: seven\n").unwrap_err();
        assert_eq!(wrong.field, "Containers[0].Ports[0].Port", "{wrong:?}");
        let policy = YAML.replace("Type: roomOccupancy", "Type: targetTracking");
        let unknown = scheduler(&row(), &policy).unwrap_err();
        assert_eq!(unknown.field, "Autoscaling.Policy.Type");
        assert!(unknown.message.contains("targetTracking"), "{unknown:?}");
        let state = Row {
            state: "paused",
            ..row()
        };
        assert_eq!(scheduler(&state, YAML).unwrap_err().field, "state");
        let time = YAML.replace("2024-05-01T10:00:00.5+02:00", "yesterday");
        assert_eq!(
            scheduler(&row(), &time).unwrap_err().field,
            "LastDownscaleAt"
        );
    }
}
