//! The way back: `maestro migrate unswitch NAME --postgres URL --redis URL`
//! writes maestro's view of a scheduler into Maestro Next's stores before
//! handing it back, so upstream resumes from the fleet as it is now rather
//! than as it was imported: the versions maestro created (and the active
//! one) into its PostgreSQL, in upstream's format; the rooms into its Redis
//! (the rooms maestro created, the statuses they have now; the rooms that
//! are gone, removed). Each store is written in one transaction.

use std::collections::BTreeSet;

use maestro_engine::room::Room;
use maestro_engine::scheduler::Scheduler;
use maestro_engine::{StoredScheduler, StoredVersion};
use serde_json::{Value, json};

/// upstream's `schedulerInfo` for the `yaml` column: the Go-field shape
/// `maestro_api::go_scheduler_json` writes, with the spec's fields at the
/// top. It is JSON text, which ghodss/yaml (YAML → JSON → struct) reads as
/// it reads its own YAML.
pub fn info_yaml(s: &Scheduler) -> String {
    let full = maestro_api::go_scheduler_json(s);
    let spec = &full["Spec"];
    let info = json!({
        "TerminationGracePeriod": spec["TerminationGracePeriod"],
        "Toleration": spec["Toleration"],
        "Affinity": spec["Affinity"],
        "Containers": spec["Containers"],
        "PortRange": full["PortRange"],
        "MaxSurge": full["MaxSurge"],
        "RoomsReplicas": full["RoomsReplicas"],
        "Forwarders": full["Forwarders"],
        "Autoscaling": full["Autoscaling"],
        "Annotations": full["Annotations"],
        "Labels": full["Labels"],
        "LastDownscaleAt": full["LastDownscaleAt"],
        "MatchAllocation": full["MatchAllocation"],
    });
    info.to_string()
}

/// What a hand-back wrote.
#[derive(Debug, Default)]
pub struct Written {
    pub versions_added: Vec<String>,
    pub active: String,
    pub rooms_written: usize,
    pub rooms_removed: usize,
}

/// The versions upstream lacks, and the active one (with maestro's last
/// downscale time) as the `schedulers` row, in one transaction.
pub fn versions(
    db: &mut postgres::Client,
    stored: &StoredScheduler,
    written: &mut Written,
) -> Result<(), anyhow::Error> {
    use anyhow::Context;
    let active = stored
        .versions
        .iter()
        .find(|v| v.is_active)
        .context("the scheduler has no active version")?;
    let name = active.scheduler.name.as_str();
    let mut tx = db.transaction()?;
    let found = tx.query_opt(
        "SELECT 1 FROM schedulers WHERE name = $1 FOR UPDATE",
        &[&name],
    )?;
    if found.is_none() {
        anyhow::bail!(
            "Maestro Next's PostgreSQL has no scheduler {name} any more: nothing to hand back to"
        );
    }
    let known: BTreeSet<String> = tx
        .query(
            "SELECT version FROM scheduler_versions WHERE name = $1",
            &[&name],
        )?
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    for StoredVersion {
        scheduler,
        created_at,
        ..
    } in &stored.versions
    {
        let version = &scheduler.spec.version;
        if known.contains(version) {
            continue;
        }
        let ms = i64::try_from(created_at.0).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO scheduler_versions (name, version, yaml, rollback_version, created_at) \
             VALUES ($1, $2, $3, $4, to_timestamp($5::bigint / 1000.0)) ON CONFLICT DO NOTHING",
            &[
                &name,
                version,
                &info_yaml(scheduler),
                &scheduler.rollback_version.clone().unwrap_or_default(),
                &ms,
            ],
        )?;
        written.versions_added.push(version.clone());
    }
    let s = &active.scheduler;
    tx.execute(
        "UPDATE schedulers SET (game, yaml, state, version, updated_at, state_last_changed_at) \
           = ($2, $3, $4, $5, now(), extract(epoch from now())) WHERE name = $1",
        &[
            &name,
            &s.game,
            &info_yaml(s),
            &s.state.as_str(),
            &s.spec.version,
        ],
    )?;
    tx.commit()?;
    written.active.clone_from(&s.spec.version);
    Ok(())
}

/// maestro's rooms as upstream's room storage and runtime watcher write
/// them, and the rooms maestro no longer has removed, in one MULTI.
pub fn rooms(
    redis: &mut redis::Connection,
    stored: &StoredScheduler,
    written: &mut Written,
) -> Result<(), redis::RedisError> {
    let Some(name) = stored.name() else {
        return Ok(());
    };
    let prefix = format!("scheduler:{name}");
    let upstream: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{prefix}:status"))
        .arg(0)
        .arg(-1)
        .query(redis)?;
    let ours: BTreeSet<&str> = stored.rooms.iter().map(|r| r.id.as_str()).collect();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for room in &stored.rooms {
        let key = format!("{prefix}:rooms:{}", room.id);
        pipe.cmd("HSET")
            .arg(&key)
            .arg("version")
            .arg(room.version.to_string())
            .arg("metadata")
            .arg(&room.metadata_json)
            .arg("ping_status")
            .arg((room.ping_status as u8).to_string())
            .arg("is_validation_room")
            .arg(if room.is_validation_room { "1" } else { "0" })
            .arg("created_at")
            .arg(room.created_at.0 / 1000)
            .ignore();
        match room.allocated_at {
            Some(at) => pipe
                .cmd("HSET")
                .arg(&key)
                .arg("allocated_at")
                .arg(at.0 / 1000)
                .ignore(),
            None => pipe.cmd("HDEL").arg(&key).arg("allocated_at").ignore(),
        };
        for (set, score) in [
            ("status", f64::from(room.status as u8)),
            ("ping", (room.last_ping_at.0 / 1000) as f64),
            ("occupancy", room.running_matches as f64),
        ] {
            pipe.cmd("ZADD")
                .arg(format!("{prefix}:{set}"))
                .arg(score)
                .arg(&room.id)
                .ignore();
        }
        pipe.cmd("HSET")
            .arg(format!("{prefix}:podMap"))
            .arg(&room.id)
            .arg(instance_json(name, room).to_string())
            .ignore();
    }
    let gone: Vec<&String> = upstream
        .iter()
        .filter(|id| !ours.contains(id.as_str()))
        .collect();
    for id in &gone {
        pipe.cmd("DEL").arg(format!("{prefix}:rooms:{id}")).ignore();
        for set in ["status", "ping", "occupancy"] {
            pipe.cmd("ZREM")
                .arg(format!("{prefix}:{set}"))
                .arg(id.as_str())
                .ignore();
        }
        pipe.cmd("HDEL")
            .arg(format!("{prefix}:podMap"))
            .arg(id.as_str())
            .ignore();
    }
    // Upstream caches the scheduler for two minutes: drop it, so that its
    // next read sees the versions just written.
    pipe.cmd("DEL").arg(&prefix).ignore();
    pipe.exec(redis)?;
    written.rooms_written = stored.rooms.len();
    written.rooms_removed = gone.len();
    Ok(())
}

/// upstream's `Instance` (JSON tags: `id`, `schedulerId`, `status`, ...).
fn instance_json(scheduler: &str, room: &Room) -> Value {
    json!({
        "id": room.id,
        "schedulerId": scheduler,
        "status": {"type": room.instance_status as u8, "description": room.instance_description},
        "address": room.address.as_ref().map(|a| json!({
            "host": a.host,
            "ports": a.ports.iter().map(|p| json!({"name": p.name, "port": p.port, "protocol": p.protocol})).collect::<Vec<_>>(),
        })),
        "resourceVersion": "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestro_engine::Time;
    use maestro_engine::scheduler::{
        Autoscaling, AutoscalingPolicy, Forwarder, ForwarderOptions, RoomOccupancyParams,
        SchedulerState, fixtures,
    };

    /// What the hand-back writes, upstream's reader (and so this module's
    /// import) reads back as the same scheduler.
    #[test]
    fn the_written_yaml_reads_back_as_the_same_scheduler() {
        let mut s = fixtures::scheduler("arena");
        s.state = SchedulerState::InSync;
        s.spec.version = "v2.1.0".into();
        s.rollback_version = Some("v2.0.0".into());
        s.created_at = Time(1_700_000_000_000);
        s.last_downscale_at = Some(Time(1_700_000_123_250));
        s.labels.insert("team".into(), "pvp".into());
        s.autoscaling = Some(Autoscaling {
            enabled: true,
            min: 2,
            max: 40,
            cooldown_secs: 30,
            policy: AutoscalingPolicy {
                kind: "roomOccupancy".into(),
                room_occupancy: Some(RoomOccupancyParams {
                    ready_target: 0.3,
                    down_threshold: 0.9,
                }),
                fixed_buffer: None,
            },
        });
        s.forwarders = vec![Forwarder {
            name: "events".into(),
            enabled: true,
            forward_type: "gRPC".into(),
            address: "events:9090".into(),
            options: Some(ForwarderOptions {
                timeout_ms: 750,
                metadata_json: r#"{"region":"eu"}"#.into(),
            }),
        }];
        let row = super::super::go_yaml::Row {
            name: "arena",
            game: &s.game,
            state: "in-sync",
            version: "v2.1.0",
            rollback_version: "v2.0.0",
            created_at: s.created_at,
        };
        let read = super::super::go_yaml::scheduler(&row, &info_yaml(&s)).unwrap();
        assert_eq!(read, s);
    }
}
