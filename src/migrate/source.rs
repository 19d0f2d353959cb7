//! Reading Maestro Next: its schedulers and versions from PostgreSQL
//! (reference §7.1) and its rooms from Redis (§7.2). Nothing here writes to
//! either: the import leaves upstream's state as it found it, so that
//! `unswitch` can hand a scheduler back.

use std::collections::BTreeMap;

use maestro_engine::Time;
use maestro_engine::room::{Address, AddressPort, InstanceStatus, PingStatus, Room, RoomStatus};
use maestro_engine::version::Version;
use serde::Deserialize;

/// One row of `schedulers` with its `scheduler_versions` rows.
#[derive(Clone, Debug)]
pub struct UpstreamScheduler {
    pub name: String,
    pub game: String,
    pub state: String,
    /// `schedulers.version`: the active version.
    pub active_version: String,
    /// `schedulers.yaml`: the active version's document.
    pub yaml: String,
    pub created_at: Time,
    /// Oldest first.
    pub versions: Vec<UpstreamVersion>,
}

#[derive(Clone, Debug)]
pub struct UpstreamVersion {
    pub version: String,
    pub yaml: String,
    pub created_at: Time,
    pub rollback_version: String,
}

/// Every scheduler (or only those named), by name.
pub fn schedulers(
    db: &mut postgres::Client,
    only: &[String],
) -> Result<Vec<UpstreamScheduler>, postgres::Error> {
    let rows = db.query(
        "SELECT name, game, state, coalesce(version, ''), yaml, \
                (extract(epoch from created_at) * 1000)::bigint \
           FROM schedulers \
          WHERE cardinality($1::text[]) = 0 OR name = ANY($1::text[]) \
          ORDER BY name",
        &[&only],
    )?;
    let mut schedulers = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.get(0);
        let versions = db
            .query(
                "SELECT version, yaml, (extract(epoch from created_at) * 1000)::bigint, \
                        coalesce(rollback_version, '') \
                   FROM scheduler_versions WHERE name = $1 ORDER BY created_at, version",
                &[&name],
            )?
            .into_iter()
            .map(|v| UpstreamVersion {
                version: v.get(0),
                yaml: v.get(1),
                created_at: millis(v.get(2)),
                rollback_version: v.get(3),
            })
            .collect();
        schedulers.push(UpstreamScheduler {
            name,
            game: row.get(1),
            state: row.get(2),
            active_version: row.get(3),
            yaml: row.get(4),
            created_at: millis(row.get(5)),
            versions,
        });
    }
    Ok(schedulers)
}

fn millis(ms: i64) -> Time {
    Time(u64::try_from(ms).unwrap_or(0))
}

/// How many room hashes one pipelined round trip to Redis reads.
const ROOMS_PER_ROUND_TRIP: usize = 1000;

/// A room that could not be read: which, the Redis field, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomProblem {
    pub room: String,
    pub field: String,
    pub message: String,
}

/// The rooms of a scheduler as upstream's Redis holds them. The status set
/// says which rooms exist (upstream's own rule); a `terminated` room is
/// left out, as upstream is about to forget it.
pub struct UpstreamRooms {
    pub rooms: Vec<Room>,
    pub terminated: usize,
    pub problems: Vec<RoomProblem>,
}

pub fn rooms(
    redis: &mut redis::Connection,
    scheduler: &str,
) -> Result<UpstreamRooms, redis::RedisError> {
    let prefix = format!("scheduler:{scheduler}");
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{prefix}:status"))
        .arg(0)
        .arg(-1)
        .query(redis)?;
    let mut read = UpstreamRooms {
        rooms: Vec::with_capacity(ids.len()),
        terminated: 0,
        problems: Vec::new(),
    };
    // Upstream's rooms API is live meanwhile: each room's five reads run
    // in one MULTI, so a room is read as one moment saw it (an allocation
    // never half-applied), in chunks that keep Redis blocked briefly.
    for chunk in ids.chunks(ROOMS_PER_ROUND_TRIP) {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for id in chunk {
            pipe.cmd("ZSCORE").arg(format!("{prefix}:status")).arg(id);
            pipe.cmd("ZSCORE").arg(format!("{prefix}:ping")).arg(id);
            pipe.cmd("ZSCORE")
                .arg(format!("{prefix}:occupancy"))
                .arg(id);
            pipe.cmd("HGET").arg(format!("{prefix}:podMap")).arg(id);
            pipe.cmd("HGETALL").arg(format!("{prefix}:rooms:{id}"));
        }
        let values: Vec<redis::Value> = pipe.query(redis)?;
        for (id, v) in chunk.iter().zip(values.chunks(5)) {
            let [status, ping, occupancy, instance, hash] = v else {
                continue;
            };
            let status: Option<f64> = redis::from_redis_value(status.clone())?;
            // Deleted since the listing: upstream no longer has it.
            let Some(status) = status else {
                continue;
            };
            let hash: BTreeMap<String, String> = redis::from_redis_value(hash.clone())?;
            let instance: Option<String> = redis::from_redis_value(instance.clone())?;
            let found = RoomData {
                status,
                ping: redis::from_redis_value(ping.clone())?,
                occupancy: redis::from_redis_value(occupancy.clone())?,
                hash: &hash,
                instance: instance.as_deref(),
            };
            match room(scheduler, id, &found) {
                Ok(Some(room)) => read.rooms.push(room),
                Ok(None) => read.terminated += 1,
                Err((field, message)) => read.problems.push(RoomProblem {
                    room: id.clone(),
                    field,
                    message,
                }),
            }
        }
    }
    Ok(read)
}

/// How many operations Maestro Next holds pending (its queue and the
/// in-flight slot) or in progress for the scheduler. maestro does not take
/// over upstream's operations, so an import waits until there are none.
pub fn open_operations(
    redis: &mut redis::Connection,
    scheduler: &str,
) -> Result<u64, redis::RedisError> {
    let queued: u64 = redis::cmd("LLEN")
        .arg(format!("pending_operations:{scheduler}"))
        .query(redis)?;
    let in_flight: u64 = redis::cmd("LLEN")
        .arg(format!("pending_operations:{scheduler}:auxiliary"))
        .query(redis)?;
    let active: u64 = redis::cmd("ZCARD")
        .arg(format!("operations:{scheduler}:lists:active"))
        .query(redis)?;
    Ok(queued + in_flight + active)
}

/// What Redis holds for one room.
struct RoomData<'a> {
    status: f64,
    ping: Option<f64>,
    occupancy: Option<f64>,
    hash: &'a BTreeMap<String, String>,
    instance: Option<&'a str>,
}

type Problem = (String, String);

fn problem(field: &str, message: impl Into<String>) -> Problem {
    (field.to_string(), message.into())
}

/// One room, or `None` for a terminated one.
fn room(scheduler: &str, id: &str, data: &RoomData<'_>) -> Result<Option<Room>, Problem> {
    let status_field = format!("scheduler:{scheduler}:status");
    let status = match data.status as i64 {
        _ if data.status.fract() != 0.0 => None,
        0 => Some(RoomStatus::Pending),
        1 => Some(RoomStatus::Unready),
        2 => Some(RoomStatus::Ready),
        3 => Some(RoomStatus::Occupied),
        4 => Some(RoomStatus::Terminating),
        5 => Some(RoomStatus::Error),
        6 => return Ok(None),
        7 => Some(RoomStatus::Active),
        8 => Some(RoomStatus::Allocated),
        _ => None,
    }
    .ok_or_else(|| {
        problem(
            &status_field,
            format!("unknown room status {}", data.status),
        )
    })?;
    if data.hash.is_empty() {
        return Err(problem(
            &format!("scheduler:{scheduler}:rooms:{id}"),
            "the room's hash is missing",
        ));
    }
    let field = |name: &str| data.hash.get(name).map(String::as_str);
    let version_text = field("version").unwrap_or_default();
    let version = Version::parse(version_text).ok_or_else(|| {
        problem(
            "version",
            format!("{version_text:?} is not a version maestro reads (vMAJOR.MINOR.PATCH)"),
        )
    })?;
    let ping_status = match field("ping_status").unwrap_or("0") {
        "0" => PingStatus::Unknown,
        "1" => PingStatus::Ready,
        "2" => PingStatus::Occupied,
        "3" => PingStatus::Terminating,
        "4" => PingStatus::Terminated,
        other => {
            return Err(problem(
                "ping_status",
                format!("unknown ping status {other:?}"),
            ));
        }
    };
    let seconds = |name: &str| -> Result<Option<Time>, Problem> {
        match field(name) {
            None | Some("") => Ok(None),
            Some(text) => text
                .parse::<u64>()
                .ok()
                .and_then(|s| s.checked_mul(1000))
                .map(|ms| Some(Time(ms)))
                .ok_or_else(|| problem(name, format!("{text:?} is not a Unix time in seconds"))),
        }
    };
    let created_at = seconds("created_at")?.unwrap_or(Time::ZERO);
    let allocated_at = seconds("allocated_at")?;
    // go-redis writes a bool as "1" or "0"; Go's ParseBool reads these
    // and true/false, and upstream reads anything else as false.
    let is_validation_room = matches!(
        field("is_validation_room").unwrap_or("0"),
        "1" | "t" | "T" | "true" | "TRUE" | "True"
    );
    let metadata_json = match field("metadata") {
        None | Some("") | Some("null") => "{}".to_string(),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(_)) => text.to_string(),
            _ => return Err(problem("metadata", "is not a JSON object")),
        },
    };
    let running_matches = match data.occupancy {
        None => 0,
        Some(n) if n >= 0.0 && n.fract() == 0.0 => n as u64,
        Some(n) => {
            return Err(problem(
                &format!("scheduler:{scheduler}:occupancy"),
                format!("{n} is not a count of matches"),
            ));
        }
    };
    let last_ping_at = data
        .ping
        .filter(|s| *s >= 0.0)
        .map_or(created_at, |s| Time((s * 1000.0) as u64));
    let (instance_status, instance_description, address) = match data.instance {
        None => (InstanceStatus::Unknown, String::new(), None),
        Some(json) => {
            instance(json).map_err(|e| problem(&format!("scheduler:{scheduler}:podMap"), e))?
        }
    };
    Ok(Some(Room {
        id: id.to_string(),
        scheduler: scheduler.to_string(),
        version,
        status,
        ping_status,
        instance_status,
        instance_description,
        address,
        host_ports: Vec::new(),
        running_matches,
        metadata_json,
        is_validation_room,
        created_at,
        last_ping_at,
        allocated_at,
        deletion: None,
        restored: true,
        steady_pings: false,
    }))
}

/// Upstream's `Instance`, as its runtime watcher writes it to `podMap`.
#[derive(Deserialize)]
struct Instance {
    status: InstanceStatusJson,
    address: Option<AddressJson>,
}

#[derive(Deserialize)]
struct InstanceStatusJson {
    #[serde(rename = "type")]
    kind: i64,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
struct AddressJson {
    host: String,
    ports: Option<Vec<PortJson>>,
}

#[derive(Deserialize)]
struct PortJson {
    name: String,
    port: i64,
    protocol: String,
}

fn instance(json: &str) -> Result<(InstanceStatus, String, Option<Address>), String> {
    let instance: Instance =
        serde_json::from_str(json).map_err(|e| format!("the room's instance: {e}"))?;
    let status = match instance.status.kind {
        0 => InstanceStatus::Unknown,
        1 => InstanceStatus::Pending,
        2 => InstanceStatus::Ready,
        3 => InstanceStatus::Terminating,
        4 => InstanceStatus::Error,
        other => return Err(format!("unknown instance status {other}")),
    };
    let address = match instance.address {
        None => None,
        Some(a) => Some(Address {
            host: a.host,
            ports: a
                .ports
                .unwrap_or_default()
                .into_iter()
                .map(|p| {
                    u16::try_from(p.port)
                        .map(|port| AddressPort {
                            name: p.name,
                            port,
                            protocol: p.protocol,
                        })
                        .map_err(|_| format!("port {} is out of range", p.port))
                })
                .collect::<Result<Vec<_>, _>>()?,
        }),
    };
    Ok((status, instance.status.description, address))
}
