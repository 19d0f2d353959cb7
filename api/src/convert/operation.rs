//! Operations as the protos write them, and the `input` field, which
//! exposes each definition as upstream's Go code serialises it (Go field
//! names for embedded schedulers, see the reference §7.3), so tools that
//! read upstream's operation inputs keep working.

use maestro_engine::operation::HistoryEntry;
use maestro_engine::scheduler as engine;
use maestro_engine::{Definition, Operation};
use serde_json::{Value, json};

use super::time::{GO_ZERO_TIME, go_time, rfc3339, timestamp};
use crate::proto::api::v1;

impl From<&Operation> for v1::ListOperationItem {
    fn from(op: &Operation) -> Self {
        v1::ListOperationItem {
            id: op.id.clone(),
            status: op.status.as_str().to_string(),
            definition_name: op.definition.name().to_string(),
            lease: op.lease.map(|at| v1::Lease { ttl: rfc3339(at) }),
            scheduler_name: op.scheduler.clone(),
            created_at: Some(timestamp(op.created_at)),
        }
    }
}

impl From<&Operation> for v1::Operation {
    fn from(op: &Operation) -> Self {
        v1::Operation {
            id: op.id.clone(),
            status: op.status.as_str().to_string(),
            definition_name: op.definition.name().to_string(),
            lease: op.lease.map(|at| v1::Lease { ttl: rfc3339(at) }),
            scheduler_name: op.scheduler.clone(),
            created_at: Some(timestamp(op.created_at)),
            // An object by construction; a Struct reads any object.
            input: serde_json::from_value(definition_input(&op.definition)).ok(),
            execution_history: op.execution_history.iter().map(event).collect(),
        }
    }
}

fn event(entry: &HistoryEntry) -> v1::OperationEvent {
    v1::OperationEvent {
        created_at: Some(timestamp(entry.at)),
        event: entry.event.clone(),
    }
}

/// The definition's JSON as upstream's `Definition.Marshal` writes it.
pub(crate) fn definition_input(definition: &Definition) -> Value {
    match definition {
        Definition::CreateScheduler { scheduler }
        | Definition::CreateNewSchedulerVersion { scheduler } => {
            json!({ "scheduler": go_scheduler(scheduler) })
        }
        Definition::SwitchActiveVersion { new_active_version } => {
            json!({ "newActiveVersion": new_active_version.to_string() })
        }
        Definition::AddRooms { amount } => json!({ "amount": amount }),
        Definition::RemoveRooms {
            amount,
            room_ids,
            reason,
        } => json!({
            "amount": amount,
            // Go writes a nil slice as null.
            "rooms_ids": if room_ids.is_empty() { Value::Null } else { json!(room_ids) },
            "reason": reason.as_str(),
        }),
        Definition::HealthController { took_action } => match took_action {
            Some(took) => json!({ "took_action": took }),
            None => json!({}),
        },
        Definition::StorageCleanUp | Definition::DeleteScheduler => json!({}),
    }
}

/// Nanoseconds per second, for Go's `time.Duration`.
const NANOS: i64 = 1_000_000_000;

/// `entities.Scheduler` as Go's `encoding/json` writes it (no JSON tags:
/// exported field names). Also what `maestro migrate unswitch` builds
/// upstream's PostgreSQL rows from (`go_scheduler_json`).
pub fn go_scheduler(s: &engine::Scheduler) -> Value {
    json!({
        "Name": s.name,
        "Game": s.game,
        "State": s.state.as_str(),
        "RollbackVersion": s.rollback_version.clone().unwrap_or_default(),
        "Spec": go_spec(&s.spec),
        "Autoscaling": s.autoscaling.as_ref().map(go_autoscaling),
        "PortRange": s.port_range.map(go_range),
        "RoomsReplicas": s.rooms_replicas,
        "CreatedAt": go_time(s.created_at),
        "LastDownscaleAt": s.last_downscale_at.map_or_else(|| GO_ZERO_TIME.to_string(), go_time),
        "MaxSurge": s.max_surge,
        "Forwarders": s.forwarders.iter().map(go_forwarder).collect::<Vec<_>>(),
        "Annotations": s.annotations,
        "Labels": s.labels,
        "MatchAllocation": { "MaxMatches": s.match_allocation.max_matches },
    })
}

fn go_spec(spec: &engine::Spec) -> Value {
    json!({
        "Version": spec.version,
        "TerminationGracePeriod": spec.termination_grace_period_secs.saturating_mul(NANOS),
        "Containers": spec.containers.iter().map(go_container).collect::<Vec<_>>(),
        "Toleration": spec.toleration,
        "Affinity": spec.affinity,
        "RestartPolicy": spec.restart_policy,
    })
}

fn go_container(c: &engine::Container) -> Value {
    json!({
        "Name": c.name,
        "Image": c.image,
        "ImagePullPolicy": c.image_pull_policy,
        "Command": c.command,
        "Environment": c.environment.iter().map(go_env).collect::<Vec<_>>(),
        "Requests": { "Memory": c.requests.memory, "CPU": c.requests.cpu },
        "Limits": { "Memory": c.limits.memory, "CPU": c.limits.cpu },
        "Ports": c.ports.iter().map(go_port).collect::<Vec<_>>(),
    })
}

fn go_env(e: &engine::EnvVar) -> Value {
    let value_from = e.value_from.as_ref().map(|v| {
        json!({
            // These two carry JSON tags upstream (`fieldPath`, `name`, `key`).
            "FieldRef": v.field_ref.as_ref().map(|f| json!({ "fieldPath": f.field_path })),
            "SecretKeyRef": v.secret_key_ref.as_ref().map(|s| json!({ "name": s.name, "key": s.key })),
        })
    });
    json!({
        "Name": e.name,
        "Value": e.value.clone().unwrap_or_default(),
        "ValueFrom": value_from,
    })
}

fn go_port(p: &engine::ContainerPort) -> Value {
    json!({
        "Name": p.name,
        "Protocol": p.protocol,
        "Port": p.port,
        "HostPort": p.host_port,
        "HostPortRange": p.host_port_range.map(go_range),
    })
}

fn go_range(r: engine::PortRange) -> Value {
    json!({ "Start": r.start, "End": r.end })
}

fn go_autoscaling(a: &engine::Autoscaling) -> Value {
    let p = &a.policy;
    json!({
        "Enabled": a.enabled,
        "Min": a.min,
        "Max": a.max,
        "Cooldown": a.cooldown_secs,
        "Policy": {
            "Type": p.kind,
            "Parameters": {
                "RoomOccupancy": p.room_occupancy.map(|r| json!({
                    "ReadyTarget": r.ready_target,
                    "DownThreshold": r.down_threshold,
                })),
                "FixedBuffer": p.fixed_buffer.map(|f| json!({ "Amount": f.amount })),
            },
        },
    })
}

/// Upstream stores the API's millisecond timeout unconverted in a Go
/// `time.Duration`, so its JSON is the millisecond count itself.
fn go_forwarder(f: &engine::Forwarder) -> Value {
    json!({
        "Name": f.name,
        "Enabled": f.enabled,
        "ForwardType": f.forward_type,
        "Address": f.address,
        "Options": f.options.as_ref().map(|o| json!({
            "Timeout": o.timeout_ms,
            "Metadata": serde_json::from_str::<Value>(&o.metadata_json).unwrap_or_else(|_| json!({})),
        })),
    })
}
