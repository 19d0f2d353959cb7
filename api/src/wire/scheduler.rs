//! Scheduler messages (`messages.proto`, `schedulers.proto`) and their
//! conversions to and from the engine's [`Scheduler`](engine::Scheduler).
//!
//! Shared messages derive both directions. On input every field may be
//! absent (protojson fills zero values), names are accepted in camelCase or
//! snake_case, unknown fields are ignored, and numbers may be strings. On
//! output every field is written, zero or not, except proto3 `optional`
//! ones that are unset, which are left out; non-optional message fields
//! that are unset are written as `null`, as protojson does.

use std::collections::BTreeMap;

use maestro_engine::Time;
use maestro_engine::VersionInfo;
use maestro_engine::room::FleetCounts;
use maestro_engine::room::RoomStatus;
use maestro_engine::scheduler as engine;
use maestro_engine::scheduler::patch::{
    AutoscalingPatch, ContainerPatch, SchedulerPatch, SpecPatch,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::codec;
use super::time::timestamp;

/// Upstream's request adapters create schedulers at this version; the
/// engine assigns it anyway.
pub const FIRST_VERSION: &str = "v1.0.0";
/// Upstream's default when a spec has no restart policy.
pub const DEFAULT_RESTART_POLICY: &str = "Never";
/// Upstream's default `downThreshold` when it is 0 or absent.
pub const DEFAULT_DOWN_THRESHOLD: f64 = 0.99;
/// Upstream's default forwarder timeout, in milliseconds, when a forwarder
/// has no options.
pub const DEFAULT_FORWARDER_TIMEOUT_MS: i64 = 1000;

// ----- shared messages ----------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortRange {
    #[serde(deserialize_with = "codec::int32::deserialize")]
    pub start: i64,
    #[serde(deserialize_with = "codec::int32::deserialize")]
    pub end: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerResources {
    pub memory: String,
    pub cpu: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerPort {
    pub name: String,
    pub protocol: String,
    #[serde(deserialize_with = "codec::int32::deserialize")]
    pub port: i64,
    #[serde(alias = "host_port", deserialize_with = "codec::int32::deserialize")]
    pub host_port: i64,
    #[serde(alias = "host_port_range", skip_serializing_if = "Option::is_none")]
    pub host_port_range: Option<PortRange>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerEnvironmentValueFromFieldRef {
    #[serde(alias = "field_path")]
    pub field_path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerEnvironmentValueFromSecretKeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerEnvironmentValueFrom {
    #[serde(alias = "field_ref", skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ContainerEnvironmentValueFromFieldRef>,
    #[serde(alias = "secret_key_ref", skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<ContainerEnvironmentValueFromSecretKeyRef>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerEnvironment {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(alias = "value_from", skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ContainerEnvironmentValueFrom>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(alias = "image_pull_policy")]
    pub image_pull_policy: String,
    pub command: Vec<String>,
    pub environment: Vec<ContainerEnvironment>,
    pub requests: ContainerResources,
    pub limits: ContainerResources,
    pub ports: Vec<ContainerPort>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Spec {
    /// Assigned by maestro; ignored on input.
    pub version: String,
    /// Whole seconds, written as `"100s"`.
    #[serde(alias = "termination_grace_period", with = "codec::duration")]
    pub termination_grace_period: i64,
    pub containers: Vec<Container>,
    pub toleration: String,
    pub affinity: String,
    /// Defaults to `Never` on input.
    #[serde(alias = "restart_policy", skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RoomOccupancy {
    #[serde(alias = "ready_target", deserialize_with = "codec::float::deserialize")]
    pub ready_target: f64,
    /// Defaults to 0.99 when 0 or absent.
    #[serde(
        alias = "down_threshold",
        deserialize_with = "codec::float::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub down_threshold: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FixedBuffer {
    #[serde(
        deserialize_with = "codec::int32::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub amount: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PolicyParameters {
    #[serde(alias = "room_occupancy", skip_serializing_if = "Option::is_none")]
    pub room_occupancy: Option<RoomOccupancy>,
    #[serde(alias = "fixed_buffer", skip_serializing_if = "Option::is_none")]
    pub fixed_buffer: Option<FixedBuffer>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoscalingPolicy {
    /// `roomOccupancy` or `fixedBuffer`.
    #[serde(rename = "type")]
    pub kind: String,
    pub parameters: Option<PolicyParameters>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Autoscaling {
    pub enabled: bool,
    #[serde(deserialize_with = "codec::int32::deserialize")]
    pub min: i64,
    #[serde(deserialize_with = "codec::int32::deserialize")]
    pub max: i64,
    pub policy: Option<AutoscalingPolicy>,
    /// Seconds between two downscales.
    #[serde(deserialize_with = "codec::int32::deserialize")]
    pub cooldown: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForwarderOptions {
    /// Milliseconds (an int64: written as a string).
    #[serde(with = "codec::int64")]
    pub timeout: i64,
    /// A `google.protobuf.Struct`.
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Forwarder {
    pub name: String,
    pub enable: bool,
    /// Only `gRPC` exists.
    #[serde(rename = "type")]
    pub kind: String,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<ForwarderOptions>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MatchAllocation {
    #[serde(alias = "max_matches", deserialize_with = "codec::int32::deserialize")]
    pub max_matches: i64,
}

// ----- output messages ------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scheduler {
    pub name: String,
    pub game: String,
    pub state: String,
    pub port_range: Option<PortRange>,
    pub created_at: String,
    pub max_surge: String,
    pub rooms_replicas: i64,
    pub spec: Spec,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    pub forwarders: Vec<Forwarder>,
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_allocation: Option<MatchAllocation>,
}

/// A list item of `GET /schedulers`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerWithoutSpec {
    pub name: String,
    pub game: String,
    pub state: String,
    pub version: String,
    pub port_range: Option<PortRange>,
    pub created_at: String,
    pub max_surge: String,
    pub rooms_replicas: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_allocation: Option<MatchAllocation>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AutoscalingInfo {
    pub enabled: bool,
    pub min: i64,
    pub max: i64,
    pub cooldown: i64,
}

/// A list item of `GET /schedulers/info`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerInfo {
    pub name: String,
    pub game: String,
    pub state: String,
    pub rooms_replicas: i64,
    /// Counts are int32 in the proto: larger ones are written as int32's largest.
    pub rooms_ready: i32,
    pub rooms_occupied: i32,
    pub rooms_pending: i32,
    pub rooms_terminating: i32,
    pub autoscaling: Option<AutoscalingInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_allocation: Option<MatchAllocation>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerVersion {
    pub version: String,
    pub is_active: bool,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ListSchedulersResponse {
    pub schedulers: Vec<SchedulerWithoutSpec>,
}

/// Answer of `GET /schedulers/{name}` and `POST /schedulers`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SchedulerResponse {
    pub scheduler: Scheduler,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GetSchedulerVersionsResponse {
    pub versions: Vec<SchedulerVersion>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GetSchedulersInfoResponse {
    pub schedulers: Vec<SchedulerInfo>,
}

/// Answer of every route that enqueues an operation.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationIdResponse {
    pub operation_id: String,
}

// ----- requests -------------------------------------------------------------

/// Body of `POST /schedulers` (create) and `POST /schedulers/{name}`
/// (new version; the path names the scheduler).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SchedulerRequest {
    pub name: String,
    pub game: String,
    pub spec: Option<Spec>,
    #[serde(alias = "port_range")]
    pub port_range: Option<PortRange>,
    #[serde(alias = "max_surge")]
    pub max_surge: String,
    #[serde(
        alias = "rooms_replicas",
        deserialize_with = "codec::int32::deserialize"
    )]
    pub rooms_replicas: i64,
    pub autoscaling: Option<Autoscaling>,
    pub forwarders: Vec<Forwarder>,
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    #[serde(alias = "match_allocation")]
    pub match_allocation: Option<MatchAllocation>,
}

/// Body of `PUT /schedulers/{name}`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SwitchActiveVersionRequest {
    pub version: String,
}

/// Body of `PATCH /schedulers/{name}`: only what is present changes.
///
/// As upstream (whose repeated and map fields cannot tell "absent" from
/// "empty"), an empty list or map means "no change".
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PatchSchedulerRequest {
    pub spec: Option<OptionalSpec>,
    #[serde(alias = "port_range")]
    pub port_range: Option<PortRange>,
    #[serde(alias = "max_surge")]
    pub max_surge: Option<String>,
    #[serde(alias = "rooms_replicas", deserialize_with = "codec::int32::option")]
    pub rooms_replicas: Option<i64>,
    pub autoscaling: Option<OptionalAutoscaling>,
    pub forwarders: Vec<Forwarder>,
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    #[serde(alias = "match_allocation")]
    pub match_allocation: Option<MatchAllocation>,
}

/// Upstream's `OptionalSpec`: there is no version and no restart policy.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OptionalSpec {
    #[serde(
        alias = "termination_grace_period",
        deserialize_with = "codec::duration::option"
    )]
    pub termination_grace_period: Option<i64>,
    /// Patched by index; containers past the end are added.
    pub containers: Vec<OptionalContainer>,
    pub toleration: Option<String>,
    pub affinity: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OptionalContainer {
    pub name: Option<String>,
    pub image: Option<String>,
    #[serde(alias = "image_pull_policy")]
    pub image_pull_policy: Option<String>,
    pub command: Vec<String>,
    pub environment: Vec<ContainerEnvironment>,
    pub requests: Option<ContainerResources>,
    pub limits: Option<ContainerResources>,
    pub ports: Vec<ContainerPort>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct OptionalAutoscaling {
    pub enabled: Option<bool>,
    #[serde(deserialize_with = "codec::int32::option")]
    pub min: Option<i64>,
    #[serde(deserialize_with = "codec::int32::option")]
    pub max: Option<i64>,
    /// Replaces the whole policy.
    pub policy: Option<AutoscalingPolicy>,
    #[serde(deserialize_with = "codec::int32::option")]
    pub cooldown: Option<i64>,
}

// ----- input → engine ------------------------------------------------------

impl SchedulerRequest {
    /// The engine's scheduler, with upstream's request-adapter defaults.
    /// `name` comes from the path for a new version.
    pub fn into_engine(self, name: String) -> engine::Scheduler {
        let spec = self.spec.unwrap_or_default();
        engine::Scheduler {
            name,
            game: self.game,
            state: engine::SchedulerState::Creating,
            spec: spec_to_engine(spec),
            port_range: self.port_range.map(port_range_to_engine),
            rooms_replicas: self.rooms_replicas,
            max_surge: self.max_surge,
            autoscaling: self.autoscaling.map(autoscaling_to_engine),
            forwarders: self
                .forwarders
                .into_iter()
                .map(forwarder_to_engine)
                .collect(),
            annotations: self.annotations,
            labels: self.labels,
            match_allocation: self
                .match_allocation
                .map(|m| engine::MatchAllocation {
                    max_matches: m.max_matches,
                })
                .unwrap_or_default(),
            created_at: Time::ZERO,
            last_downscale_at: None,
            rollback_version: None,
        }
    }
}

impl PatchSchedulerRequest {
    /// The engine's patch: an absent field, and as upstream an empty list
    /// or map, changes nothing.
    pub fn into_patch(self) -> SchedulerPatch {
        let non_empty_vec = |v: Vec<_>| (!v.is_empty()).then_some(v);
        SchedulerPatch {
            spec: self.spec.map(|spec| SpecPatch {
                termination_grace_period_secs: spec.termination_grace_period,
                containers: spec
                    .containers
                    .into_iter()
                    .map(|c| ContainerPatch {
                        name: c.name,
                        image: c.image,
                        image_pull_policy: c.image_pull_policy,
                        command: (!c.command.is_empty()).then_some(c.command),
                        environment: (!c.environment.is_empty())
                            .then(|| c.environment.into_iter().map(env_to_engine).collect()),
                        requests: c.requests.map(resources_to_engine),
                        limits: c.limits.map(resources_to_engine),
                        ports: (!c.ports.is_empty())
                            .then(|| c.ports.into_iter().map(port_to_engine).collect()),
                    })
                    .collect(),
                toleration: spec.toleration,
                affinity: spec.affinity,
            }),
            port_range: self.port_range.map(port_range_to_engine),
            max_surge: self.max_surge,
            rooms_replicas: self.rooms_replicas,
            autoscaling: self.autoscaling.map(|a| AutoscalingPatch {
                enabled: a.enabled,
                min: a.min,
                max: a.max,
                policy: a.policy.map(policy_to_engine),
                cooldown_secs: a.cooldown,
            }),
            forwarders: non_empty_vec(self.forwarders)
                .map(|f| f.into_iter().map(forwarder_to_engine).collect()),
            annotations: (!self.annotations.is_empty()).then_some(self.annotations),
            labels: (!self.labels.is_empty()).then_some(self.labels),
            match_allocation: self.match_allocation.map(|m| engine::MatchAllocation {
                max_matches: m.max_matches,
            }),
        }
    }
}

fn spec_to_engine(spec: Spec) -> engine::Spec {
    engine::Spec {
        version: if spec.version.is_empty() {
            FIRST_VERSION.to_string()
        } else {
            spec.version
        },
        termination_grace_period_secs: spec.termination_grace_period,
        containers: spec
            .containers
            .into_iter()
            .map(container_to_engine)
            .collect(),
        toleration: spec.toleration,
        affinity: spec.affinity,
        restart_policy: spec
            .restart_policy
            .unwrap_or_else(|| DEFAULT_RESTART_POLICY.to_string()),
    }
}

fn container_to_engine(c: Container) -> engine::Container {
    engine::Container {
        name: c.name,
        image: c.image,
        image_pull_policy: c.image_pull_policy,
        command: c.command,
        environment: c.environment.into_iter().map(env_to_engine).collect(),
        requests: resources_to_engine(c.requests),
        limits: resources_to_engine(c.limits),
        ports: c.ports.into_iter().map(port_to_engine).collect(),
    }
}

fn resources_to_engine(r: ContainerResources) -> engine::Resources {
    engine::Resources {
        memory: r.memory,
        cpu: r.cpu,
    }
}

fn env_to_engine(e: ContainerEnvironment) -> engine::EnvVar {
    engine::EnvVar {
        name: e.name,
        value: e.value,
        value_from: e.value_from.map(|v| engine::EnvVarSource {
            field_ref: v.field_ref.map(|f| engine::FieldRef {
                field_path: f.field_path,
            }),
            secret_key_ref: v.secret_key_ref.map(|s| engine::SecretKeyRef {
                name: s.name,
                key: s.key,
            }),
        }),
    }
}

fn port_to_engine(p: ContainerPort) -> engine::ContainerPort {
    engine::ContainerPort {
        name: p.name,
        protocol: p.protocol,
        port: p.port,
        host_port: p.host_port,
        host_port_range: p.host_port_range.map(port_range_to_engine),
    }
}

fn port_range_to_engine(r: PortRange) -> engine::PortRange {
    engine::PortRange {
        start: r.start,
        end: r.end,
    }
}

fn autoscaling_to_engine(a: Autoscaling) -> engine::Autoscaling {
    engine::Autoscaling {
        enabled: a.enabled,
        min: a.min,
        max: a.max,
        cooldown_secs: a.cooldown,
        policy: policy_to_engine(a.policy.unwrap_or_default()),
    }
}

fn policy_to_engine(p: AutoscalingPolicy) -> engine::AutoscalingPolicy {
    let parameters = p.parameters.unwrap_or_default();
    engine::AutoscalingPolicy {
        kind: p.kind,
        room_occupancy: parameters
            .room_occupancy
            .map(|r| engine::RoomOccupancyParams {
                ready_target: r.ready_target,
                down_threshold: match r.down_threshold {
                    Some(t) if t != 0.0 => t,
                    _ => DEFAULT_DOWN_THRESHOLD,
                },
            }),
        fixed_buffer: parameters.fixed_buffer.map(|f| engine::FixedBufferParams {
            amount: f.amount.unwrap_or(0),
        }),
    }
}

fn forwarder_to_engine(f: Forwarder) -> engine::Forwarder {
    let options = match f.options {
        None => engine::ForwarderOptions {
            timeout_ms: DEFAULT_FORWARDER_TIMEOUT_MS,
            metadata_json: "{}".to_string(),
        },
        Some(o) => engine::ForwarderOptions {
            timeout_ms: o.timeout,
            metadata_json: Value::Object(o.metadata.unwrap_or_default()).to_string(),
        },
    };
    engine::Forwarder {
        name: f.name,
        enabled: f.enable,
        forward_type: f.kind,
        address: f.address,
        options: Some(options),
    }
}

// ----- engine → output -----------------------------------------------------

impl From<&engine::Scheduler> for Scheduler {
    fn from(s: &engine::Scheduler) -> Self {
        Scheduler {
            name: s.name.clone(),
            game: s.game.clone(),
            state: s.state.as_str().to_string(),
            port_range: s.port_range.map(port_range_from_engine),
            created_at: timestamp(s.created_at),
            max_surge: s.max_surge.clone(),
            rooms_replicas: s.rooms_replicas,
            spec: spec_from_engine(&s.spec),
            autoscaling: s.autoscaling.as_ref().map(autoscaling_from_engine),
            forwarders: s.forwarders.iter().map(forwarder_from_engine).collect(),
            annotations: s.annotations.clone(),
            labels: s.labels.clone(),
            match_allocation: Some(match_allocation_from_engine(s.match_allocation)),
        }
    }
}

impl From<&engine::Scheduler> for SchedulerWithoutSpec {
    fn from(s: &engine::Scheduler) -> Self {
        SchedulerWithoutSpec {
            name: s.name.clone(),
            game: s.game.clone(),
            state: s.state.as_str().to_string(),
            version: s.spec.version.clone(),
            port_range: s.port_range.map(port_range_from_engine),
            created_at: timestamp(s.created_at),
            max_surge: s.max_surge.clone(),
            rooms_replicas: s.rooms_replicas,
            match_allocation: Some(match_allocation_from_engine(s.match_allocation)),
        }
    }
}

impl SchedulerInfo {
    /// Unlike upstream, the autoscaling cooldown and the match allocation are filled.
    pub fn new(s: &engine::Scheduler, counts: &FleetCounts) -> Self {
        SchedulerInfo {
            name: s.name.clone(),
            game: s.game.clone(),
            state: s.state.as_str().to_string(),
            rooms_replicas: s.rooms_replicas,
            rooms_ready: count_i32(counts.get(RoomStatus::Ready)),
            rooms_occupied: count_i32(counts.get(RoomStatus::Occupied)),
            rooms_pending: count_i32(counts.get(RoomStatus::Pending)),
            rooms_terminating: count_i32(counts.get(RoomStatus::Terminating)),
            autoscaling: s.autoscaling.as_ref().map(|a| AutoscalingInfo {
                enabled: a.enabled,
                min: a.min,
                max: a.max,
                cooldown: a.cooldown_secs,
            }),
            match_allocation: Some(match_allocation_from_engine(s.match_allocation)),
        }
    }
}

fn count_i32(count: u64) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

impl From<&VersionInfo> for SchedulerVersion {
    fn from(v: &VersionInfo) -> Self {
        SchedulerVersion {
            version: v.version.to_string(),
            is_active: v.is_active,
            created_at: timestamp(v.created_at),
        }
    }
}

fn match_allocation_from_engine(m: engine::MatchAllocation) -> MatchAllocation {
    MatchAllocation {
        max_matches: m.max_matches,
    }
}

fn spec_from_engine(spec: &engine::Spec) -> Spec {
    Spec {
        version: spec.version.clone(),
        termination_grace_period: spec.termination_grace_period_secs,
        containers: spec.containers.iter().map(container_from_engine).collect(),
        toleration: spec.toleration.clone(),
        affinity: spec.affinity.clone(),
        restart_policy: Some(spec.restart_policy.clone()),
    }
}

fn container_from_engine(c: &engine::Container) -> Container {
    Container {
        name: c.name.clone(),
        image: c.image.clone(),
        image_pull_policy: c.image_pull_policy.clone(),
        command: c.command.clone(),
        environment: c.environment.iter().map(env_from_engine).collect(),
        requests: resources_from_engine(&c.requests),
        limits: resources_from_engine(&c.limits),
        ports: c.ports.iter().map(port_from_engine).collect(),
    }
}

fn resources_from_engine(r: &engine::Resources) -> ContainerResources {
    ContainerResources {
        memory: r.memory.clone(),
        cpu: r.cpu.clone(),
    }
}

fn env_from_engine(e: &engine::EnvVar) -> ContainerEnvironment {
    ContainerEnvironment {
        name: e.name.clone(),
        value: e.value.clone(),
        value_from: e
            .value_from
            .as_ref()
            .map(|v| ContainerEnvironmentValueFrom {
                field_ref: v
                    .field_ref
                    .as_ref()
                    .map(|f| ContainerEnvironmentValueFromFieldRef {
                        field_path: f.field_path.clone(),
                    }),
                secret_key_ref: v.secret_key_ref.as_ref().map(|s| {
                    ContainerEnvironmentValueFromSecretKeyRef {
                        name: s.name.clone(),
                        key: s.key.clone(),
                    }
                }),
            }),
    }
}

fn port_from_engine(p: &engine::ContainerPort) -> ContainerPort {
    ContainerPort {
        name: p.name.clone(),
        protocol: p.protocol.clone(),
        port: p.port,
        host_port: p.host_port,
        host_port_range: p.host_port_range.map(port_range_from_engine),
    }
}

fn port_range_from_engine(r: engine::PortRange) -> PortRange {
    PortRange {
        start: r.start,
        end: r.end,
    }
}

fn autoscaling_from_engine(a: &engine::Autoscaling) -> Autoscaling {
    let p = &a.policy;
    Autoscaling {
        enabled: a.enabled,
        min: a.min,
        max: a.max,
        cooldown: a.cooldown_secs,
        policy: Some(AutoscalingPolicy {
            kind: p.kind.clone(),
            parameters: Some(PolicyParameters {
                room_occupancy: p.room_occupancy.map(|r| RoomOccupancy {
                    ready_target: r.ready_target,
                    down_threshold: Some(r.down_threshold),
                }),
                fixed_buffer: p.fixed_buffer.map(|f| FixedBuffer {
                    amount: Some(f.amount),
                }),
            }),
        }),
    }
}

fn forwarder_from_engine(f: &engine::Forwarder) -> Forwarder {
    Forwarder {
        name: f.name.clone(),
        enable: f.enabled,
        kind: f.forward_type.clone(),
        address: f.address.clone(),
        options: f.options.as_ref().map(|o| ForwarderOptions {
            timeout: o.timeout_ms,
            metadata: Some(json_object(&o.metadata_json)),
        }),
    }
}

/// An opaque JSON object the engine keeps as text; anything that is not an
/// object (it should never happen) reads as `{}`.
pub(crate) fn json_object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_upstream_adapters() {
        let request: SchedulerRequest = serde_json::from_value(serde_json::json!({
            "name": "s",
            "game": "g",
            "spec": {"terminationGracePeriod": "30s"},
            "autoscaling": {"policy": {"type": "roomOccupancy",
                "parameters": {"roomOccupancy": {"readyTarget": 0.5}}}},
            "forwarders": [{"name": "f", "enable": true, "type": "gRPC", "address": "a:1"}]
        }))
        .unwrap();
        let s = request.into_engine("s".to_string());
        assert_eq!(s.spec.version, FIRST_VERSION);
        assert_eq!(s.spec.restart_policy, "Never");
        assert_eq!(s.match_allocation.max_matches, 1);
        assert_eq!(s.spec.termination_grace_period_secs, 30);
        let policy = &s.autoscaling.as_ref().unwrap().policy;
        assert_eq!(policy.room_occupancy.unwrap().down_threshold, 0.99);
        let options = s.forwarders[0].options.as_ref().unwrap();
        assert_eq!(
            (options.timeout_ms, options.metadata_json.as_str()),
            (1000, "{}")
        );
    }

    #[test]
    fn patch_merges_by_field_and_container_index() {
        let base = SchedulerRequest {
            name: "s".into(),
            game: "g".into(),
            spec: Some(Spec {
                termination_grace_period: 30,
                containers: vec![Container {
                    name: "a".into(),
                    image: "a:1".into(),
                    ..Container::default()
                }],
                ..Spec::default()
            }),
            rooms_replicas: 2,
            ..SchedulerRequest::default()
        }
        .into_engine("s".into());
        let patch: PatchSchedulerRequest = serde_json::from_value(serde_json::json!({
            "rooms_replicas": "5",
            "spec": {"containers": [{"image": "a:2"}, {"name": "b"}]},
            "autoscaling": {"enabled": true, "min": 1}
        }))
        .unwrap();
        let patched = patch.into_patch().apply(&base).unwrap();
        assert_eq!(patched.rooms_replicas, 5);
        assert_eq!(patched.spec.containers[0].name, "a");
        assert_eq!(patched.spec.containers[0].image, "a:2");
        assert_eq!(patched.spec.containers[1].name, "b");
        assert_eq!(patched.spec.termination_grace_period_secs, 30);
        let autoscaling = patched.autoscaling.unwrap();
        assert!(autoscaling.enabled);
        assert_eq!((autoscaling.min, autoscaling.max), (1, 0));
        assert!(PatchSchedulerRequest::default().into_patch().is_empty());
        let empty_lists: PatchSchedulerRequest =
            serde_json::from_value(serde_json::json!({"forwarders": [], "labels": {}})).unwrap();
        assert!(
            empty_lists.into_patch().is_empty(),
            "an empty list changes nothing"
        );
    }
}
