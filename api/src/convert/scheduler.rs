//! Schedulers between the protos' messages and the engine's
//! [`Scheduler`](engine::Scheduler), with upstream's request-adapter
//! defaults on the way in.

use std::collections::{BTreeMap, HashMap};

use maestro_engine::room::{FleetCounts, RoomStatus};
use maestro_engine::scheduler as engine;
use maestro_engine::scheduler::patch::{
    AutoscalingPatch, ContainerPatch, SchedulerPatch, SpecPatch,
};
use maestro_engine::{Time, VersionInfo};
use pbjson_types::Duration;

use super::time::timestamp;
use super::{int32, json_text, struct_from_text};
use crate::error::ApiError;
use crate::proto::api::v1;

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

// ----- requests → engine ------------------------------------------------------

/// A new version carries the same fields as a creation (upstream keeps two
/// messages for two RPCs).
impl From<v1::NewSchedulerVersionRequest> for v1::CreateSchedulerRequest {
    fn from(r: v1::NewSchedulerVersionRequest) -> Self {
        v1::CreateSchedulerRequest {
            name: r.name,
            game: r.game,
            spec: r.spec,
            port_range: r.port_range,
            max_surge: r.max_surge,
            rooms_replicas: r.rooms_replicas,
            autoscaling: r.autoscaling,
            forwarders: r.forwarders,
            annotations: r.annotations,
            labels: r.labels,
            match_allocation: r.match_allocation,
        }
    }
}

/// The engine's scheduler, with upstream's request-adapter defaults. Only
/// a duration with a fraction of a second can be refused: the engine
/// holds whole seconds.
pub(crate) fn scheduler(
    request: v1::CreateSchedulerRequest,
) -> Result<engine::Scheduler, ApiError> {
    let spec = request.spec.unwrap_or_default();
    Ok(engine::Scheduler {
        name: request.name,
        game: request.game,
        state: engine::SchedulerState::Creating,
        spec: engine::Spec {
            version: if spec.version.is_empty() {
                FIRST_VERSION.to_string()
            } else {
                spec.version
            },
            termination_grace_period_secs: seconds(
                spec.termination_grace_period,
                "spec.terminationGracePeriod",
            )?,
            containers: spec.containers.into_iter().map(container).collect(),
            toleration: spec.toleration,
            affinity: spec.affinity,
            restart_policy: spec
                .restart_policy
                .unwrap_or_else(|| DEFAULT_RESTART_POLICY.to_string()),
        },
        port_range: request.port_range.map(port_range),
        rooms_replicas: i64::from(request.rooms_replicas),
        max_surge: request.max_surge,
        autoscaling: request.autoscaling.map(autoscaling),
        forwarders: request.forwarders.into_iter().map(forwarder).collect(),
        annotations: sorted(request.annotations),
        labels: sorted(request.labels),
        match_allocation: request
            .match_allocation
            .map(|m| engine::MatchAllocation {
                max_matches: i64::from(m.max_matches),
            })
            .unwrap_or_default(),
        created_at: Time::ZERO,
        last_downscale_at: None,
        rollback_version: None,
    })
}

/// The engine's patch: an absent field, and as upstream an empty list or
/// map, changes nothing.
pub(crate) fn patch(request: v1::PatchSchedulerRequest) -> Result<SchedulerPatch, ApiError> {
    let spec = match request.spec {
        None => None,
        Some(spec) => Some(SpecPatch {
            termination_grace_period_secs: match spec.termination_grace_period {
                None => None,
                some => Some(seconds(some, "spec.terminationGracePeriod")?),
            },
            containers: spec
                .containers
                .into_iter()
                .map(|c| ContainerPatch {
                    name: c.name,
                    image: c.image,
                    image_pull_policy: c.image_pull_policy,
                    command: non_empty(c.command),
                    environment: non_empty(c.environment).map(|e| e.into_iter().map(env).collect()),
                    requests: c.requests.map(resources),
                    limits: c.limits.map(resources),
                    ports: non_empty(c.ports).map(|p| p.into_iter().map(port).collect()),
                })
                .collect(),
            toleration: spec.toleration,
            affinity: spec.affinity,
        }),
    };
    Ok(SchedulerPatch {
        spec,
        port_range: request.port_range.map(port_range),
        max_surge: request.max_surge,
        rooms_replicas: request.rooms_replicas.map(i64::from),
        autoscaling: request.autoscaling.map(|a| AutoscalingPatch {
            enabled: a.enabled,
            min: a.min.map(i64::from),
            max: a.max.map(i64::from),
            policy: a.policy.map(policy),
            cooldown_secs: a.cooldown.map(i64::from),
        }),
        forwarders: non_empty(request.forwarders).map(|f| f.into_iter().map(forwarder).collect()),
        annotations: (!request.annotations.is_empty()).then(|| sorted(request.annotations)),
        labels: (!request.labels.is_empty()).then(|| sorted(request.labels)),
        match_allocation: request.match_allocation.map(|m| engine::MatchAllocation {
            max_matches: i64::from(m.max_matches),
        }),
    })
}

/// `Some` unless empty: as upstream, an empty list patches nothing.
fn non_empty<T>(list: Vec<T>) -> Option<Vec<T>> {
    (!list.is_empty()).then_some(list)
}

/// Whole seconds of a duration; unset is 0. `field` names it in the error.
fn seconds(duration: Option<Duration>, field: &str) -> Result<i64, ApiError> {
    let duration = duration.unwrap_or_default();
    if duration.nanos != 0 {
        return Err(ApiError::invalid_argument(format!(
            "{field}: must be whole seconds, such as \"30s\""
        )));
    }
    Ok(duration.seconds)
}

fn sorted(map: HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

fn container(c: v1::Container) -> engine::Container {
    engine::Container {
        name: c.name,
        image: c.image,
        image_pull_policy: c.image_pull_policy,
        command: c.command,
        environment: c.environment.into_iter().map(env).collect(),
        requests: resources(c.requests.unwrap_or_default()),
        limits: resources(c.limits.unwrap_or_default()),
        ports: c.ports.into_iter().map(port).collect(),
    }
}

fn resources(r: v1::ContainerResources) -> engine::Resources {
    engine::Resources {
        memory: r.memory,
        cpu: r.cpu,
    }
}

fn env(e: v1::ContainerEnvironment) -> engine::EnvVar {
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

fn port(p: v1::ContainerPort) -> engine::ContainerPort {
    engine::ContainerPort {
        name: p.name,
        protocol: p.protocol,
        port: i64::from(p.port),
        host_port: i64::from(p.host_port),
        host_port_range: p.host_port_range.map(port_range),
    }
}

fn port_range(r: v1::PortRange) -> engine::PortRange {
    engine::PortRange {
        start: i64::from(r.start),
        end: i64::from(r.end),
    }
}

fn autoscaling(a: v1::Autoscaling) -> engine::Autoscaling {
    engine::Autoscaling {
        enabled: a.enabled,
        min: i64::from(a.min),
        max: i64::from(a.max),
        cooldown_secs: i64::from(a.cooldown),
        policy: policy(a.policy.unwrap_or_default()),
    }
}

fn policy(p: v1::AutoscalingPolicy) -> engine::AutoscalingPolicy {
    let parameters = p.parameters.unwrap_or_default();
    engine::AutoscalingPolicy {
        kind: p.r#type,
        room_occupancy: parameters
            .room_occupancy
            .map(|r| engine::RoomOccupancyParams {
                ready_target: decimal(r.ready_target),
                down_threshold: match r.down_threshold {
                    Some(t) if t != 0.0 => decimal(t),
                    _ => DEFAULT_DOWN_THRESHOLD,
                },
            }),
        fixed_buffer: parameters.fixed_buffer.map(|f| engine::FixedBufferParams {
            amount: i64::from(f.amount.unwrap_or(0)),
        }),
    }
}

/// A proto `float` as the decimal it was written as: `0.7` stays 0.7, not
/// 0.699999988079071 (the f32's exact value), so the engine computes with
/// what the user wrote.
fn decimal(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

fn forwarder(f: v1::Forwarder) -> engine::Forwarder {
    let options = match f.options {
        None => engine::ForwarderOptions {
            timeout_ms: DEFAULT_FORWARDER_TIMEOUT_MS,
            metadata_json: "{}".to_string(),
        },
        Some(o) => engine::ForwarderOptions {
            timeout_ms: o.timeout,
            metadata_json: json_text(o.metadata.as_ref()),
        },
    };
    engine::Forwarder {
        name: f.name,
        enabled: f.enable,
        forward_type: f.r#type,
        address: f.address,
        options: Some(options),
    }
}

// ----- engine → answers ---------------------------------------------------------

impl From<&engine::Scheduler> for v1::Scheduler {
    fn from(s: &engine::Scheduler) -> Self {
        v1::Scheduler {
            name: s.name.clone(),
            game: s.game.clone(),
            state: s.state.as_str().to_string(),
            port_range: s.port_range.map(port_range_out),
            created_at: Some(timestamp(s.created_at)),
            max_surge: s.max_surge.clone(),
            rooms_replicas: int32(s.rooms_replicas),
            spec: Some(spec_out(&s.spec)),
            autoscaling: s.autoscaling.as_ref().map(autoscaling_out),
            forwarders: s.forwarders.iter().map(forwarder_out).collect(),
            annotations: s.annotations.clone().into_iter().collect(),
            labels: s.labels.clone().into_iter().collect(),
            match_allocation: Some(match_allocation_out(s.match_allocation)),
        }
    }
}

impl From<&engine::Scheduler> for v1::SchedulerWithoutSpec {
    fn from(s: &engine::Scheduler) -> Self {
        v1::SchedulerWithoutSpec {
            name: s.name.clone(),
            game: s.game.clone(),
            state: s.state.as_str().to_string(),
            version: s.spec.version.clone(),
            port_range: s.port_range.map(port_range_out),
            created_at: Some(timestamp(s.created_at)),
            max_surge: s.max_surge.clone(),
            rooms_replicas: int32(s.rooms_replicas),
            match_allocation: Some(match_allocation_out(s.match_allocation)),
        }
    }
}

/// A scheduler's line of `GET /schedulers/info`. Unlike upstream the
/// autoscaling cooldown and the match allocation are filled.
pub(crate) fn info(s: &engine::Scheduler, counts: &FleetCounts) -> v1::SchedulerInfo {
    let count = |status| int32(i64::try_from(counts.get(status)).unwrap_or(i64::MAX));
    v1::SchedulerInfo {
        name: s.name.clone(),
        game: s.game.clone(),
        state: s.state.as_str().to_string(),
        rooms_replicas: int32(s.rooms_replicas),
        rooms_ready: count(RoomStatus::Ready),
        rooms_occupied: count(RoomStatus::Occupied),
        rooms_pending: count(RoomStatus::Pending),
        rooms_terminating: count(RoomStatus::Terminating),
        autoscaling: s.autoscaling.as_ref().map(|a| v1::AutoscalingInfo {
            enabled: a.enabled,
            min: int32(a.min),
            max: int32(a.max),
            cooldown: int32(a.cooldown_secs),
        }),
        match_allocation: Some(match_allocation_out(s.match_allocation)),
    }
}

impl From<&VersionInfo> for v1::SchedulerVersion {
    fn from(v: &VersionInfo) -> Self {
        v1::SchedulerVersion {
            version: v.version.to_string(),
            is_active: v.is_active,
            created_at: Some(timestamp(v.created_at)),
        }
    }
}

fn match_allocation_out(m: engine::MatchAllocation) -> v1::MatchAllocation {
    v1::MatchAllocation {
        max_matches: int32(m.max_matches),
    }
}

fn spec_out(spec: &engine::Spec) -> v1::Spec {
    v1::Spec {
        version: spec.version.clone(),
        termination_grace_period: Some(Duration {
            seconds: spec.termination_grace_period_secs,
            nanos: 0,
        }),
        containers: spec.containers.iter().map(container_out).collect(),
        toleration: spec.toleration.clone(),
        affinity: spec.affinity.clone(),
        restart_policy: Some(spec.restart_policy.clone()),
    }
}

fn container_out(c: &engine::Container) -> v1::Container {
    v1::Container {
        name: c.name.clone(),
        image: c.image.clone(),
        image_pull_policy: c.image_pull_policy.clone(),
        command: c.command.clone(),
        environment: c.environment.iter().map(env_out).collect(),
        requests: Some(resources_out(&c.requests)),
        limits: Some(resources_out(&c.limits)),
        ports: c.ports.iter().map(port_out).collect(),
    }
}

fn resources_out(r: &engine::Resources) -> v1::ContainerResources {
    v1::ContainerResources {
        memory: r.memory.clone(),
        cpu: r.cpu.clone(),
    }
}

fn env_out(e: &engine::EnvVar) -> v1::ContainerEnvironment {
    v1::ContainerEnvironment {
        name: e.name.clone(),
        value: e.value.clone(),
        value_from: e
            .value_from
            .as_ref()
            .map(|v| v1::ContainerEnvironmentValueFrom {
                field_ref: v.field_ref.as_ref().map(|f| {
                    v1::ContainerEnvironmentValueFromFieldRef {
                        field_path: f.field_path.clone(),
                    }
                }),
                secret_key_ref: v.secret_key_ref.as_ref().map(|s| {
                    v1::ContainerEnvironmentValueFromSecretKeyRef {
                        name: s.name.clone(),
                        key: s.key.clone(),
                    }
                }),
            }),
    }
}

fn port_out(p: &engine::ContainerPort) -> v1::ContainerPort {
    v1::ContainerPort {
        name: p.name.clone(),
        protocol: p.protocol.clone(),
        port: int32(p.port),
        host_port: int32(p.host_port),
        host_port_range: p.host_port_range.map(port_range_out),
    }
}

fn port_range_out(r: engine::PortRange) -> v1::PortRange {
    v1::PortRange {
        start: int32(r.start),
        end: int32(r.end),
    }
}

fn autoscaling_out(a: &engine::Autoscaling) -> v1::Autoscaling {
    let p = &a.policy;
    v1::Autoscaling {
        enabled: a.enabled,
        min: int32(a.min),
        max: int32(a.max),
        cooldown: int32(a.cooldown_secs),
        policy: Some(v1::AutoscalingPolicy {
            r#type: p.kind.clone(),
            parameters: Some(v1::PolicyParameters {
                room_occupancy: p.room_occupancy.map(|r| v1::RoomOccupancy {
                    ready_target: r.ready_target as f32,
                    down_threshold: Some(r.down_threshold as f32),
                }),
                fixed_buffer: p.fixed_buffer.map(|f| v1::FixedBuffer {
                    amount: Some(int32(f.amount)),
                }),
            }),
        }),
    }
}

fn forwarder_out(f: &engine::Forwarder) -> v1::Forwarder {
    v1::Forwarder {
        name: f.name.clone(),
        enable: f.enabled,
        r#type: f.forward_type.clone(),
        address: f.address.clone(),
        options: f.options.as_ref().map(|o| v1::ForwarderOptions {
            timeout: o.timeout_ms,
            metadata: Some(struct_from_text(&o.metadata_json)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    const PATCH: &str = ".api.v1.PatchSchedulerRequest";

    #[test]
    fn defaults_follow_upstream_adapters() {
        let request: v1::CreateSchedulerRequest = json::from_body(
            br#"{"name": "s", "game": "g", "spec": {"terminationGracePeriod": "30s"},
                 "autoscaling": {"policy": {"type": "roomOccupancy",
                   "parameters": {"roomOccupancy": {"readyTarget": 0.7}}}},
                 "forwarders": [{"name": "f", "enable": true, "type": "gRPC", "address": "a:1"}]}"#,
            ".api.v1.CreateSchedulerRequest",
        )
        .unwrap();
        let s = scheduler(request).unwrap();
        assert_eq!(s.spec.version, FIRST_VERSION);
        assert_eq!(s.spec.restart_policy, "Never");
        assert_eq!(s.match_allocation.max_matches, 1);
        assert_eq!(s.spec.termination_grace_period_secs, 30);
        let occupancy = s
            .autoscaling
            .as_ref()
            .unwrap()
            .policy
            .room_occupancy
            .unwrap();
        assert_eq!(occupancy.down_threshold, 0.99);
        assert_eq!(
            occupancy.ready_target, 0.7,
            "the decimal written, not the f32"
        );
        let options = s.forwarders[0].options.as_ref().unwrap();
        assert_eq!(
            (options.timeout_ms, options.metadata_json.as_str()),
            (1000, "{}")
        );
    }

    #[test]
    fn a_fraction_of_a_second_is_refused_naming_the_field() {
        let request: v1::CreateSchedulerRequest = json::from_body(
            br#"{"spec": {"terminationGracePeriod": "1.5s"}}"#,
            ".api.v1.CreateSchedulerRequest",
        )
        .unwrap();
        let error = scheduler(request).unwrap_err();
        assert!(
            error.message.starts_with("spec.terminationGracePeriod: "),
            "{}",
            error.message
        );
    }

    #[test]
    fn an_empty_list_or_map_patches_nothing() {
        let request: v1::PatchSchedulerRequest =
            json::from_body(br#"{"forwarders": [], "labels": {}}"#, PATCH).unwrap();
        assert!(patch(request).unwrap().is_empty());
        let request: v1::PatchSchedulerRequest = json::from_body(
            br#"{"rooms_replicas": "5", "spec": {"containers": [{"image": "a:2"}]}}"#,
            PATCH,
        )
        .unwrap();
        let p = patch(request).unwrap();
        assert_eq!(p.rooms_replicas, Some(5));
        assert_eq!(p.spec.unwrap().containers[0].image.as_deref(), Some("a:2"));
    }
}
