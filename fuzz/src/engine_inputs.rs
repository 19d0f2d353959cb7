//! Drives the engine with arbitrary sequences of inputs against one
//! scheduler, checking the engine's invariants after every input. A panic
//! is a bug.
//!
//! The inputs: pings, allocations (with and without idempotency keys),
//! runtime events (with and without version labels), effect results (every
//! error kind), time steps, new versions (major ones, with a new image, and
//! minor ones, with autoscaling on or off), switches of the active version,
//! cancels, room removals, deletes and re-creations of the scheduler, and
//! restarts: from everything written, or after a crash that loses what was
//! not flushed (the store is flushed where the service acknowledges).
//!
//! Run: `cargo fuzz run -s none engine_inputs -- -max_total_time=60`
//! (`-s none` works on a stable toolchain); `cargo test` in `fuzz/`
//! replays the committed seeds (`fuzz/seeds/engine_inputs/`).

use arbitrary::{Result, Unstructured};
use maestro_engine::room::{InstanceStatus, PingStatus};
use maestro_engine::scheduler::{Scheduler, fixtures};
use maestro_engine::version::Version;
use maestro_engine::{
    Command, Effect, EffectId, Engine, EngineConfig, InstanceEvent, InstanceEventKind, Millis,
    Ping, RuntimeError, RuntimeErrorKind, Time,
};
use maestro_store::{SimulatedDisk, Store, Write};

const NAME: &str = "fuzz";

/// A scheduler whose fields are drawn: the image (three, so new versions
/// are major or minor), replicas, surge, matches and autoscaling.
fn scheduler(u: &mut Unstructured) -> Result<Scheduler> {
    let mut s = fixtures::scheduler(NAME);
    s.spec.containers[0].image = format!("game:{}", u.int_in_range(1u8..=3)?);
    s.rooms_replicas = i64::from(u.int_in_range(0u8..=8)?);
    s.max_surge = (*u.choose(&["1", "2", "25%", "100%"])?).to_string();
    s.match_allocation.max_matches = i64::from(u.int_in_range(1u8..=3)?);
    s.autoscaling = match u.int_in_range(0u8..=2)? {
        0 => None,
        1 => {
            let mut a = fixtures::room_occupancy(
                i64::from(u.int_in_range(0u8..=3)?),
                *u.choose(&[-1i64, 4, 8])?,
                f64::from(u.int_in_range(5u8..=95)?) / 100.0,
            );
            a.enabled = u.arbitrary()?;
            a.cooldown_secs = i64::from(u.int_in_range(0u8..=60)?);
            Some(a)
        }
        _ => Some(fixtures::fixed_buffer(
            i64::from(u.int_in_range(0u8..=3)?),
            *u.choose(&[-1i64, 4, 8])?,
            i64::from(u.int_in_range(1u8..=4)?),
        )),
    };
    Ok(s)
}

struct World {
    engine: Engine,
    disk: SimulatedDisk,
    store: Store<SimulatedDisk>,
    now: Time,
    pending: Vec<EffectId>,
    restarts: u64,
}

impl World {
    fn drain(&mut self) {
        let mut writes = Vec::new();
        while let Some(effect) = self.engine.poll_effect() {
            writes.extend(Write::from_effect(&effect));
            if let Effect::CreateSchedulerResources { id, .. }
            | Effect::DeleteSchedulerResources { id, .. }
            | Effect::CreateRoom { id, .. }
            | Effect::DeleteRoom { id, .. } = effect
            {
                self.pending.push(id);
            }
        }
        self.store
            .apply(self.now, &writes)
            .expect("the simulated disk writes");
    }

    /// A new process on what the disk kept: a crash loses the unflushed.
    fn restart(&mut self, crash: bool) {
        if crash {
            self.disk.crash();
        }
        self.store = Store::with_kv(self.disk.clone()).expect("the disk reopens");
        self.restarts += 1;
        self.engine = Engine::new(EngineConfig {
            seed: self.restarts,
            ..EngineConfig::default()
        });
        self.pending.clear();
        for stored in self.store.load().expect("what was written loads") {
            self.engine
                .restore(self.now, stored)
                .expect("what was written restores");
        }
    }
}

fn drive(u: &mut Unstructured) -> Result<()> {
    let disk = SimulatedDisk::new();
    let mut w = World {
        engine: Engine::new(EngineConfig {
            seed: u.arbitrary()?,
            ..EngineConfig::default()
        }),
        store: Store::with_kv(disk.clone()).expect("an empty disk opens"),
        disk,
        now: Time(1_000),
        pending: Vec::new(),
        restarts: 0,
    };
    let first = scheduler(u)?;
    let _ = w
        .engine
        .handle_command(w.now, Command::CreateScheduler(first));
    for _ in 0..u.int_in_range(0u16..=500)? {
        let rooms: Vec<String> = w
            .engine
            .fleet(NAME)
            .map(|f| f.rooms().map(|r| r.id.clone()).collect())
            .unwrap_or_default();
        let room = if rooms.is_empty() {
            "fuzz-none".to_string()
        } else {
            u.choose(&rooms)?.clone()
        };
        let now = w.now;
        let mut acknowledged = false;
        match u.int_in_range(0u8..=13)? {
            0 | 1 => {
                let status = *u.choose(&[
                    PingStatus::Ready,
                    PingStatus::Occupied,
                    PingStatus::Terminating,
                    PingStatus::Terminated,
                ])?;
                let ping = Ping {
                    scheduler: NAME.to_string(),
                    room,
                    status,
                    running_matches: u64::from(u.int_in_range(0u8..=4)?),
                    metadata_json: String::new(),
                };
                let _ = w.engine.handle_ping(now, &ping);
            }
            2 => {
                let key = if u.arbitrary()? {
                    Some(format!("k{}", u.int_in_range(0u8..=2)?))
                } else {
                    None
                };
                acknowledged = w.engine.allocate(now, NAME, key.as_deref()).is_ok();
            }
            3 => {
                let status = *u.choose(&[
                    InstanceStatus::Pending,
                    InstanceStatus::Ready,
                    InstanceStatus::Terminating,
                    InstanceStatus::Error,
                ])?;
                let kind = if u.ratio(1u8, 5)? {
                    InstanceEventKind::Deleted
                } else {
                    InstanceEventKind::Upsert
                };
                // A pod of a room maestro may not know (a lost record).
                let room = if u.ratio(1u8, 8)? {
                    format!("fuzz-pod{}", u.int_in_range(0u8..=3)?)
                } else {
                    room
                };
                let version = if u.arbitrary()? {
                    Some(Version {
                        major: u.int_in_range(1u64..=3)?,
                        minor: 0,
                        patch: 0,
                    })
                } else {
                    None
                };
                let event = InstanceEvent {
                    scheduler: NAME.to_string(),
                    room,
                    kind,
                    status,
                    description: String::new(),
                    address: None,
                    version,
                };
                w.engine.handle_instance_event(now, &event);
            }
            4 | 5 if !w.pending.is_empty() => {
                let i = u.choose_index(w.pending.len())?;
                let id = w.pending.swap_remove(i);
                let result = if u.ratio(1u8, 4)? {
                    let kind = *u.choose(&[
                        RuntimeErrorKind::NotFound,
                        RuntimeErrorKind::AlreadyExists,
                        RuntimeErrorKind::Conflict,
                        RuntimeErrorKind::RateLimited,
                        RuntimeErrorKind::Unavailable,
                        RuntimeErrorKind::Invalid,
                        RuntimeErrorKind::Internal,
                    ])?;
                    Err(RuntimeError::new(kind, "fuzz"))
                } else {
                    Ok(())
                };
                w.engine.handle_effect_result(now, id, result);
            }
            6 => {
                w.now = w.now + Millis(u64::from(u.int_in_range(1u32..=300_000)?));
                while w.engine.poll_timeout().is_some_and(|t| t <= w.now) {
                    w.engine.handle_timeout(w.now);
                    w.drain();
                }
            }
            7 => {
                let next = scheduler(u)?;
                acknowledged = w
                    .engine
                    .handle_command(now, Command::NewSchedulerVersion(next))
                    .is_ok();
            }
            8 => {
                let versions = w.engine.versions(NAME).unwrap_or_default();
                if !versions.is_empty() {
                    let v = &versions[u.choose_index(versions.len())?];
                    let command = Command::SwitchActiveVersion {
                        scheduler: NAME.to_string(),
                        version: v.version.to_string(),
                    };
                    acknowledged = w.engine.handle_command(now, command).is_ok();
                }
            }
            9 => {
                let ids: Vec<String> = w.engine.operations(NAME).map(|o| o.id.clone()).collect();
                if !ids.is_empty() {
                    let command = Command::CancelOperation {
                        scheduler: NAME.to_string(),
                        operation_id: u.choose(&ids)?.clone(),
                    };
                    acknowledged = w.engine.handle_command(now, command).is_ok();
                }
            }
            10 => {
                let command = if w.engine.scheduler(NAME).is_some() && u.arbitrary()? {
                    Command::RemoveRooms {
                        scheduler: NAME.to_string(),
                        amount: u64::from(u.int_in_range(0u8..=3)?),
                    }
                } else if u.ratio(1u8, 3)? {
                    Command::DeleteScheduler {
                        scheduler: NAME.to_string(),
                    }
                } else {
                    Command::CreateScheduler(scheduler(u)?)
                };
                acknowledged = w.engine.handle_command(now, command).is_ok();
            }
            11 => w.store.flush().expect("the simulated disk flushes"),
            12 => w.restart(false),
            _ => w.restart(true),
        }
        w.drain();
        if acknowledged {
            // The service answers only once this is durable.
            w.store.flush().expect("the simulated disk flushes");
        }
        if let Err(broken) = w.engine.check_invariants() {
            panic!("{broken}");
        }
    }
    Ok(())
}

/// One input: a sequence of engine inputs, invariants checked after each.
pub fn run(data: &[u8]) {
    let _ = drive(&mut Unstructured::new(data));
}
