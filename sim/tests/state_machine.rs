//! Property tests: random sequences of commands, pings, allocations,
//! runtime events, effect results (successes and failures), time steps,
//! process restarts (the engine rebuilt from what it persisted) and crashes
//! (the store keeps only what was flushed, which the shell does before it
//! acknowledges a command or an allocation; the pods live on and are
//! relisted with their version labels),
//! with the safety invariants checked after every step and liveness (every
//! operation ends, every rollout finishes, the fleet converges) checked once
//! the faults stop. A second property replays each sequence and compares the
//! effect traces.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use maestro_engine::health;
use maestro_engine::room::{Address, AddressPort, InstanceStatus, PingStatus, RoomId, RoomStatus};
use maestro_engine::scheduler::{Scheduler, fixtures};
use maestro_engine::version::Version;
use maestro_engine::{
    Command, Effect, EffectId, Engine, EngineConfig, InstanceEvent, InstanceEventKind, Millis,
    OperationStatus, Ping, RuntimeError, RuntimeErrorKind, Time,
};
use maestro_store::{SimulatedDisk, Store, Write};
use proptest::prelude::*;
use proptest::test_runner::Config;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

const SCHEDULERS: [&str; 2] = ["alpha", "beta"];

#[derive(Clone, Debug)]
enum Autoscale {
    None,
    Occupancy {
        min: u8,
        max: i8,
        ready_target_pct: u8,
        cooldown_secs: u8,
    },
    Buffer {
        min: u8,
        max: i8,
        amount: u8,
    },
}

#[derive(Clone, Debug)]
enum Step {
    Create {
        s: usize,
        replicas: u8,
        autoscale: Autoscale,
        surge: u8,
        percent: bool,
        max_matches: u8,
    },
    NewVersion {
        s: usize,
        major: bool,
        replicas: u8,
    },
    Switch {
        s: usize,
        pick: u8,
    },
    Delete {
        s: usize,
    },
    Cancel {
        s: usize,
        pick: u8,
    },
    RemoveRooms {
        s: usize,
        amount: u8,
    },
    Ping {
        s: usize,
        pick: u16,
        status: u8,
        matches: u8,
    },
    Allocate {
        s: usize,
        key: Option<u8>,
    },
    Instance {
        s: usize,
        pick: u16,
        event: u8,
    },
    Complete {
        pick: u16,
        outcome: u8,
    },
    CompleteAll,
    Advance {
        ms: u32,
    },
    /// The process stops after a last flush: in-flight runtime results are
    /// lost, and a new engine (with a fresh seed) is restored from the store.
    Restart,
    /// The shell's periodic flush of soft state.
    Flush,
    /// The process dies (SIGKILL): what was not flushed is gone, in-flight
    /// results are lost, pod creations in flight landed or not, and the
    /// restarted engine relists every pod with its version label.
    Crash {
        creations_landed: bool,
    },
}

fn autoscale() -> impl Strategy<Value = Autoscale> {
    prop_oneof![
        Just(Autoscale::None),
        (1u8..4, prop_oneof![Just(-1i8), 4i8..12], 10u8..90, 0u8..60).prop_map(
            |(min, max, rt, cd)| {
                Autoscale::Occupancy {
                    min,
                    max,
                    ready_target_pct: rt,
                    cooldown_secs: cd,
                }
            }
        ),
        (1u8..4, prop_oneof![Just(-1i8), 4i8..12], 1u8..5)
            .prop_map(|(min, max, amount)| Autoscale::Buffer { min, max, amount }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let s = 0..SCHEDULERS.len();
    prop_oneof![
        2 => (s.clone(), 0u8..8, autoscale(), 1u8..4, any::<bool>(), 1u8..4).prop_map(
            |(s, replicas, autoscale, surge, percent, max_matches)| Step::Create {
                s, replicas, autoscale, surge, percent, max_matches
            }
        ),
        2 => (s.clone(), any::<bool>(), 0u8..8).prop_map(|(s, major, replicas)| Step::NewVersion { s, major, replicas }),
        1 => (s.clone(), any::<u8>()).prop_map(|(s, pick)| Step::Switch { s, pick }),
        1 => s.clone().prop_map(|s| Step::Delete { s }),
        1 => (s.clone(), any::<u8>()).prop_map(|(s, pick)| Step::Cancel { s, pick }),
        1 => (s.clone(), 0u8..4).prop_map(|(s, amount)| Step::RemoveRooms { s, amount }),
        8 => (s.clone(), any::<u16>(), 0u8..4, 0u8..4)
            .prop_map(|(s, pick, status, matches)| Step::Ping { s, pick, status, matches }),
        3 => (s.clone(), proptest::option::of(0u8..3)).prop_map(|(s, key)| Step::Allocate { s, key }),
        4 => (s.clone(), any::<u16>(), 0u8..5).prop_map(|(s, pick, event)| Step::Instance { s, pick, event }),
        8 => (any::<u16>(), 0u8..10).prop_map(|(pick, outcome)| Step::Complete { pick, outcome }),
        2 => Just(Step::CompleteAll),
        4 => (1u32..200_000).prop_map(|ms| Step::Advance { ms }),
        1 => Just(Step::Restart),
        1 => Just(Step::Flush),
        1 => any::<bool>().prop_map(|creations_landed| Step::Crash { creations_landed }),
    ]
}

fn scheduler(
    name: &str,
    replicas: u8,
    autoscale: &Autoscale,
    surge: u8,
    percent: bool,
    max_matches: u8,
) -> Scheduler {
    let autoscaling = match *autoscale {
        Autoscale::None => None,
        Autoscale::Occupancy {
            min,
            max,
            ready_target_pct,
            cooldown_secs,
        } => {
            let ready_target = f64::from(ready_target_pct) / 100.0;
            let mut a = fixtures::room_occupancy(i64::from(min), i64::from(max), ready_target);
            a.cooldown_secs = i64::from(cooldown_secs);
            Some(a)
        }
        Autoscale::Buffer { min, max, amount } => Some(fixtures::fixed_buffer(
            i64::from(min),
            i64::from(max),
            i64::from(amount),
        )),
    };
    // The engine's valid fixture (per-port host port ranges).
    let mut s = fixtures::scheduler(name);
    s.spec.containers[0].image = "game:1".to_string();
    s.rooms_replicas = i64::from(replicas);
    s.max_surge = if percent {
        format!("{}%", u32::from(surge) * 25)
    } else {
        surge.to_string()
    };
    s.autoscaling = autoscaling;
    s.match_allocation.max_matches = i64::from(max_matches);
    s
}

/// A runtime effect awaiting its result, and what it was.
#[derive(Clone, Debug)]
enum Outstanding {
    CreateResources,
    DeleteResources {
        scheduler: String,
    },
    CreateRoom {
        scheduler: String,
        room: RoomId,
        version: Version,
    },
    DeleteRoom {
        scheduler: String,
        room: RoomId,
    },
}

/// The shell around the engine: it executes effects only when a step says
/// so, which is how the test reorders, delays and fails them.
struct Driver {
    engine: Engine,
    /// The engine's configuration but for the seed, which every restart
    /// draws afresh.
    config: EngineConfig,
    seed: u64,
    restarts: u64,
    /// What the engine persisted; a restart restores from it, a crash
    /// loses what was not flushed.
    disk: SimulatedDisk,
    store: Store<SimulatedDisk>,
    /// The cluster: every pod that exists, with its version label and its
    /// last reported status. It outlives the engine.
    pods: BTreeMap<(String, RoomId), (Version, InstanceStatus)>,
    /// Acknowledged allocations still within their TTL whose room is
    /// allocated: a crash must not lose them, and no fresh allocation may
    /// take such a room.
    taken: BTreeMap<(String, RoomId), Time>,
    /// Busy rooms as their game servers last said (occupied, active or
    /// allocated): the engine's view, except for rooms it has not heard
    /// from since a restart, whose stored status may be stale.
    truth_busy: BTreeSet<(String, RoomId)>,
    now: Time,
    outstanding: Vec<(EffectId, Outstanding)>,
    trace: DefaultHasher,
    images: u64,
    /// The room each allocation key last got.
    keys: BTreeMap<(String, String), RoomId>,
}

impl Driver {
    fn new(seed: u64) -> Driver {
        Driver::with_config(EngineConfig {
            seed,
            ..EngineConfig::default()
        })
    }

    fn with_config(config: EngineConfig) -> Driver {
        let disk = SimulatedDisk::new();
        Driver {
            engine: Engine::new(config.clone()),
            seed: config.seed,
            config,
            restarts: 0,
            store: Store::with_kv(disk.clone()).expect("an empty disk opens"),
            disk,
            pods: BTreeMap::new(),
            taken: BTreeMap::new(),
            truth_busy: BTreeSet::new(),
            now: Time(1_000_000),
            outstanding: Vec::new(),
            trace: DefaultHasher::new(),
            keys: BTreeMap::new(),
            images: 1,
        }
    }

    fn drain(&mut self) {
        let mut created = BTreeSet::new();
        let mut writes = Vec::new();
        while let Some(effect) = self.engine.poll_effect() {
            format!("{effect:?}").hash(&mut self.trace);
            writes.extend(Write::from_effect(&effect));
            if let Effect::CreateRoom {
                scheduler,
                is_validation_room: false,
                ..
            } = &effect
            {
                created.insert(scheduler.clone());
            }
            let outstanding = match &effect {
                Effect::CreateSchedulerResources { .. } => Some(Outstanding::CreateResources),
                Effect::DeleteSchedulerResources { scheduler, .. } => {
                    Some(Outstanding::DeleteResources {
                        scheduler: scheduler.clone(),
                    })
                }
                Effect::CreateRoom {
                    scheduler,
                    room,
                    version,
                    ..
                } => Some(Outstanding::CreateRoom {
                    scheduler: scheduler.clone(),
                    room: room.clone(),
                    version: *version,
                }),
                Effect::DeleteRoom {
                    scheduler, room, ..
                } => Some(Outstanding::DeleteRoom {
                    scheduler: scheduler.clone(),
                    room: room.clone(),
                }),
                _ => None,
            };
            if let (Some(id), Some(o)) = (effect.id(), outstanding) {
                self.outstanding.push((id, o));
            }
        }
        self.store.apply(self.now, &writes).unwrap();
        // Rooms the engine adds never take the fleet above desired + surge,
        // checked after every engine input that created some.
        for name in created {
            let (Some(scheduler), Some(fleet)) =
                (self.engine.scheduler(&name), self.engine.fleet(&name))
            else {
                continue;
            };
            let target = health::target(scheduler, fleet, self.engine.now()).unwrap();
            let upper = target.desired + scheduler.parsed_max_surge().rooms(target.desired);
            let in_service = fleet.counts().in_service();
            assert!(
                in_service <= upper,
                "{name}: {in_service} rooms > desired {} + surge",
                target.desired
            );
        }
    }

    fn room(&self, s: usize, pick: u16) -> Option<RoomId> {
        let fleet = self.engine.fleet(SCHEDULERS[s])?;
        let n = fleet.len();
        if n == 0 {
            return None;
        }
        fleet
            .rooms()
            .nth(usize::from(pick) % n)
            .map(|r| r.id.clone())
    }

    fn instance(
        &mut self,
        scheduler: &str,
        room: &str,
        kind: InstanceEventKind,
        status: InstanceStatus,
    ) {
        self.instance_labelled(scheduler, room, kind, status, None);
    }

    /// An instance event, which is also what the cluster now holds.
    fn instance_labelled(
        &mut self,
        scheduler: &str,
        room: &str,
        kind: InstanceEventKind,
        status: InstanceStatus,
        version: Option<Version>,
    ) {
        let key = (scheduler.to_string(), room.to_string());
        match kind {
            InstanceEventKind::Deleted => {
                self.pods.remove(&key);
            }
            InstanceEventKind::Upsert => {
                let label = version
                    .or_else(|| self.pods.get(&key).map(|(v, _)| *v))
                    .or_else(|| {
                        let fleet = self.engine.fleet(scheduler)?;
                        Some(fleet.get(room)?.version)
                    });
                if let Some(label) = label {
                    self.pods.insert(key, (label, status));
                }
            }
        }
        let event = InstanceEvent {
            scheduler: scheduler.to_string(),
            room: room.to_string(),
            kind,
            status,
            description: "test".to_string(),
            address: Some(Address {
                host: "10.0.0.1".to_string(),
                ports: vec![AddressPort {
                    name: "game".to_string(),
                    port: 20001,
                    protocol: "udp".to_string(),
                }],
            }),
            version,
        };
        self.engine.handle_instance_event(self.now, &event);
        self.drain();
    }

    fn ping(&mut self, scheduler: &str, room: &str, status: PingStatus, matches: u64) {
        let ping = Ping {
            scheduler: scheduler.to_string(),
            room: room.to_string(),
            status,
            running_matches: matches,
            metadata_json: "{}".to_string(),
        };
        let _ = self.engine.handle_ping(self.now, &ping);
        self.drain();
    }

    /// Delivers one runtime result; successful pod effects are followed by
    /// the watch events a cluster would send.
    fn complete(&mut self, index: usize, result: Result<(), RuntimeError>) {
        let (id, what) = self.outstanding.remove(index);
        let ok = result.is_ok();
        self.engine.handle_effect_result(self.now, id, result);
        self.drain();
        match what {
            Outstanding::DeleteResources { scheduler } if ok => {
                self.pods.retain(|(s, _), _| *s != scheduler);
            }
            Outstanding::DeleteRoom { scheduler, room } if ok => {
                self.instance(
                    &scheduler,
                    &room,
                    InstanceEventKind::Deleted,
                    InstanceStatus::Terminating,
                );
            }
            Outstanding::CreateRoom {
                scheduler,
                room,
                version,
            } if ok => {
                self.instance_labelled(
                    &scheduler,
                    &room,
                    InstanceEventKind::Upsert,
                    InstanceStatus::Pending,
                    Some(version),
                );
            }
            _ => {}
        }
        self.drain();
    }

    /// Moves time forward, firing every timer on the way. Bounded: a timer
    /// that keeps firing without moving time is a liveness bug.
    fn advance(&mut self, by: Millis) {
        let until = self.now + by;
        for _ in 0..10_000 {
            match self.engine.poll_timeout() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.engine.handle_timeout(self.now);
                    self.drain();
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("timers kept firing without progress");
    }

    /// Makes everything applied so far durable, as the shell does before
    /// it acknowledges a command or an allocation.
    fn flush(&mut self) {
        self.store.flush().expect("the simulated disk flushes");
    }

    /// A new process: fresh seed, state from the store, in-flight results
    /// lost. Every operation the store held must come back, and every
    /// acknowledged allocation still within its TTL.
    fn restart(&mut self) {
        let acknowledged: Vec<(String, String, OperationStatus)> = self
            .store
            .load()
            .unwrap()
            .into_iter()
            .flat_map(|s| s.operations)
            .map(|o| (o.scheduler, o.id, o.status))
            .collect();
        self.restarts += 1;
        let config = EngineConfig {
            seed: self.seed ^ self.restarts.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ..self.config.clone()
        };
        self.engine = Engine::new(config);
        self.outstanding.clear();
        for scheduler in self.store.load().unwrap() {
            self.engine.restore(self.now, scheduler).unwrap();
        }
        self.drain();
        for (scheduler, id, status) in acknowledged {
            let op = self
                .engine
                .operation(&scheduler, &id)
                .unwrap_or_else(|| panic!("acknowledged operation {id} lost in a restart"));
            if status.is_final() {
                assert_eq!(op.status, status, "a final operation changed in a restart");
            }
        }
        let ttl = EngineConfig::default().room_allocation_ttl;
        for ((scheduler, room), at) in &self.taken {
            if *at + ttl <= self.now {
                continue;
            }
            let status = self
                .engine
                .fleet(scheduler)
                .and_then(|f| f.get(room))
                .map(|r| r.status);
            assert_eq!(
                status,
                Some(RoomStatus::Allocated),
                "{scheduler}/{room}: an acknowledged allocation was lost in a restart"
            );
        }
    }

    /// SIGKILL: the unflushed writes are gone; the pods stay. Creations in
    /// flight reached the cluster or not. The new process's watches then
    /// relist: every pod with its version label and status, and every room
    /// the engine knows without a pod as deleted.
    fn crash(&mut self, creations_landed: bool) {
        if creations_landed {
            for (_, what) in &self.outstanding {
                if let Outstanding::CreateRoom {
                    scheduler,
                    room,
                    version,
                } = what
                {
                    self.pods.insert(
                        (scheduler.clone(), room.clone()),
                        (*version, InstanceStatus::Pending),
                    );
                }
            }
        }
        self.disk.crash();
        self.store = Store::with_kv(self.disk.clone()).expect("the disk reopens");
        self.restart();
        for name in SCHEDULERS {
            if self.engine.scheduler(name).is_none() {
                continue;
            }
            let pods: Vec<(RoomId, Version, InstanceStatus)> = self
                .pods
                .iter()
                .filter(|((s, _), _)| s == name)
                .map(|((_, room), (v, status))| (room.clone(), *v, *status))
                .collect();
            for (room, version, status) in pods {
                self.instance_labelled(
                    name,
                    &room,
                    InstanceEventKind::Upsert,
                    status,
                    Some(version),
                );
            }
            let gone: Vec<RoomId> = self
                .engine
                .fleet(name)
                .map(|f| {
                    f.rooms()
                        .filter(|r| !self.pods.contains_key(&(name.to_string(), r.id.clone())))
                        .map(|r| r.id.clone())
                        .collect()
                })
                .unwrap_or_default();
            for room in gone {
                self.instance(
                    name,
                    &room,
                    InstanceEventKind::Deleted,
                    InstanceStatus::Terminating,
                );
            }
        }
    }

    /// The engine's busy rooms, keeping the last known truth for rooms it
    /// has not confirmed since a restart. A restart itself changes no
    /// room's truth (its relist reports pods, not games).
    fn update_truth(&mut self, restarted: bool) {
        let mut truth = BTreeSet::new();
        for name in SCHEDULERS {
            let Some(fleet) = self.engine.fleet(name) else {
                continue;
            };
            for room in fleet.rooms() {
                let key = (name.to_string(), room.id.clone());
                let busy = if room.restored || restarted {
                    self.truth_busy.contains(&key)
                } else {
                    room.status.is_busy()
                };
                if busy {
                    truth.insert(key);
                }
            }
        }
        self.truth_busy = truth;
    }

    /// Forgets the allocations whose room left `allocated` by itself (a
    /// ping, an instance event, the TTL): those rooms may be handed out
    /// again.
    fn prune_taken(&mut self) {
        let engine = &self.engine;
        self.taken.retain(|(scheduler, room), _| {
            engine
                .fleet(scheduler)
                .and_then(|f| f.get(room))
                .is_some_and(|r| r.status == RoomStatus::Allocated)
        });
    }

    fn apply(&mut self, step: &Step) {
        match step {
            Step::Create {
                s,
                replicas,
                autoscale,
                surge,
                percent,
                max_matches,
            } => {
                let sched = scheduler(
                    SCHEDULERS[*s],
                    *replicas,
                    autoscale,
                    *surge,
                    *percent,
                    *max_matches,
                );
                let _ = self
                    .engine
                    .handle_command(self.now, Command::CreateScheduler(sched));
            }
            Step::NewVersion { s, major, replicas } => {
                let Some(current) = self.engine.scheduler(SCHEDULERS[*s]).cloned() else {
                    return;
                };
                let mut next = current;
                next.rooms_replicas = i64::from(*replicas);
                if *major {
                    self.images += 1;
                    next.spec.containers[0].image = format!("game:{}", self.images);
                }
                let _ = self
                    .engine
                    .handle_command(self.now, Command::NewSchedulerVersion(next));
            }
            Step::Switch { s, pick } => {
                let Some(versions) = self.engine.versions(SCHEDULERS[*s]) else {
                    return;
                };
                let v = &versions[usize::from(*pick) % versions.len()];
                let command = Command::SwitchActiveVersion {
                    scheduler: SCHEDULERS[*s].to_string(),
                    version: v.version.to_string(),
                };
                let _ = self.engine.handle_command(self.now, command);
            }
            Step::Delete { s } => {
                let command = Command::DeleteScheduler {
                    scheduler: SCHEDULERS[*s].to_string(),
                };
                let _ = self.engine.handle_command(self.now, command);
            }
            Step::Cancel { s, pick } => {
                let ids: Vec<String> = self
                    .engine
                    .operations(SCHEDULERS[*s])
                    .map(|o| o.id.clone())
                    .collect();
                if ids.is_empty() {
                    return;
                }
                let command = Command::CancelOperation {
                    scheduler: SCHEDULERS[*s].to_string(),
                    operation_id: ids[usize::from(*pick) % ids.len()].clone(),
                };
                let _ = self.engine.handle_command(self.now, command);
            }
            Step::RemoveRooms { s, amount } => {
                let command = Command::RemoveRooms {
                    scheduler: SCHEDULERS[*s].to_string(),
                    amount: u64::from(*amount),
                };
                let _ = self.engine.handle_command(self.now, command);
            }
            Step::Ping {
                s,
                pick,
                status,
                matches,
            } => {
                let Some(room) = self.room(*s, *pick) else {
                    return;
                };
                let status = [
                    PingStatus::Ready,
                    PingStatus::Occupied,
                    PingStatus::Terminating,
                    PingStatus::Terminated,
                ][usize::from(*status)];
                self.ping(SCHEDULERS[*s], &room, status, u64::from(*matches));
            }
            Step::Allocate { s, key } => {
                let scheduler = SCHEDULERS[*s];
                let key = key.map(|k| format!("key-{k}"));
                let statuses: BTreeMap<RoomId, RoomStatus> = self
                    .engine
                    .fleet(scheduler)
                    .map(|f| f.rooms().map(|r| (r.id.clone(), r.status)).collect())
                    .unwrap_or_default();
                let Ok(allocation) = self.engine.allocate(self.now, scheduler, key.as_deref())
                else {
                    return;
                };
                // No room is allocated twice: a fresh allocation takes a
                // ready room; only a retry with the same key may get a
                // room that is already taken, and then the same one.
                let was = statuses.get(&allocation.room).copied();
                let retry = key
                    .as_ref()
                    .and_then(|k| self.keys.get(&(scheduler.to_string(), k.clone())));
                let retried = retry == Some(&allocation.room);
                if was != Some(RoomStatus::Ready) {
                    assert!(
                        retried,
                        "room {} allocated while {was:?}, not as a retry of its key",
                        allocation.room
                    );
                }
                // Across crashes too: a room whose allocation was answered
                // is not handed out again while it is still taken.
                let handed = (scheduler.to_string(), allocation.room.clone());
                assert!(
                    retried || !self.taken.contains_key(&handed),
                    "room {} allocated twice",
                    allocation.room
                );
                self.taken.entry(handed).or_insert(self.now);
                if let Some(k) = key {
                    self.keys
                        .insert((scheduler.to_string(), k), allocation.room);
                }
            }
            Step::Instance { s, pick, event } => {
                let Some(room) = self.room(*s, *pick) else {
                    return;
                };
                let (kind, status) = match event {
                    0 => (InstanceEventKind::Upsert, InstanceStatus::Pending),
                    1 => (InstanceEventKind::Upsert, InstanceStatus::Ready),
                    2 => (InstanceEventKind::Upsert, InstanceStatus::Terminating),
                    3 => (InstanceEventKind::Upsert, InstanceStatus::Error),
                    _ => (InstanceEventKind::Deleted, InstanceStatus::Terminating),
                };
                self.instance(SCHEDULERS[*s], &room, kind, status);
            }
            Step::Complete { pick, outcome } => {
                if self.outstanding.is_empty() {
                    return;
                }
                let index = usize::from(*pick) % self.outstanding.len();
                let kind = [
                    None,
                    None,
                    None,
                    Some(RuntimeErrorKind::NotFound),
                    Some(RuntimeErrorKind::RateLimited),
                    Some(RuntimeErrorKind::Unavailable),
                    Some(RuntimeErrorKind::AlreadyExists),
                    Some(RuntimeErrorKind::Internal),
                    Some(RuntimeErrorKind::Conflict),
                    Some(RuntimeErrorKind::Invalid),
                ][usize::from(*outcome)];
                let result = match kind {
                    None => Ok(()),
                    Some(kind) => Err(RuntimeError::new(kind, "injected")),
                };
                self.complete(index, result);
            }
            Step::CompleteAll => {
                while !self.outstanding.is_empty() {
                    self.complete(0, Ok(()));
                }
            }
            Step::Advance { ms } => self.advance(Millis(u64::from(*ms))),
            Step::Restart => {
                self.flush();
                self.restart();
            }
            Step::Flush => self.flush(),
            Step::Crash { creations_landed } => self.crash(*creations_landed),
        }
        self.drain();
        if matches!(
            step,
            Step::Create { .. }
                | Step::NewVersion { .. }
                | Step::Switch { .. }
                | Step::Delete { .. }
                | Step::Cancel { .. }
                | Step::RemoveRooms { .. }
                | Step::Allocate { .. }
        ) {
            // Acknowledged: the shell answers only once this is durable.
            self.flush();
        }
        self.prune_taken();
        self.update_truth(matches!(step, Step::Crash { .. } | Step::Restart));
    }
}

/// What the invariants need to know about the fleet before a step.
#[derive(Default)]
struct Before {
    marked: BTreeSet<(String, RoomId)>,
    busy: BTreeSet<(String, RoomId)>,
}

fn snapshot(engine: &Engine) -> Before {
    let mut before = Before::default();
    for name in SCHEDULERS {
        let Some(fleet) = engine.fleet(name) else {
            continue;
        };
        for room in fleet.rooms() {
            let key = (name.to_string(), room.id.clone());
            if room.deletion.is_some() {
                before.marked.insert(key.clone());
            }
            if room.status.is_busy() {
                before.busy.insert(key);
            }
        }
    }
    before
}

/// The room a step reports about, whose status the step itself may change.
fn target_room(driver: &Driver, step: &Step) -> Option<(String, RoomId)> {
    match step {
        Step::Ping { s, pick, .. } | Step::Instance { s, pick, .. } => driver
            .room(*s, *pick)
            .map(|r| (SCHEDULERS[*s].to_string(), r)),
        _ => None,
    }
}

fn check_safety(driver: &Driver, before: &Before, step: &Step, target: Option<&(String, RoomId)>) {
    let engine = &driver.engine;
    engine
        .check_invariants()
        .unwrap_or_else(|e| panic!("after {step:?}: {e}"));
    for name in SCHEDULERS {
        let in_progress = engine
            .operations(name)
            .filter(|o| o.status == OperationStatus::InProgress)
            .count();
        assert!(
            in_progress <= 1,
            "{name}: {in_progress} operations in progress"
        );
        let Some(fleet) = engine.fleet(name) else {
            continue;
        };
        let scheduler = engine.scheduler(name).unwrap();

        // No busy room is chosen to scale down or roll out.
        for room in fleet.rooms() {
            let key = (name.to_string(), room.id.clone());
            let newly_marked = room.deletion.is_some() && !before.marked.contains(&key);
            let sparing = room.deletion.is_some_and(|d| d.reason.spares_busy_rooms());
            if newly_marked && sparing && Some(&key) != target {
                assert!(
                    !before.busy.contains(&key),
                    "busy room {} removed ({:?})",
                    room.id,
                    room.deletion
                );
            }
        }

        // Desired stays within [min, max].
        let target = health::target(scheduler, fleet, engine.now()).unwrap();
        if let Some(a) = scheduler.active_autoscaling() {
            assert!(
                target.desired >= a.min as u64,
                "{name}: desired {} < min",
                target.desired
            );
            if a.max >= 0 {
                assert!(
                    target.desired <= a.max as u64,
                    "{name}: desired {} > max",
                    target.desired
                );
            }
        }
    }
}

/// After the faults stop: everything completes, rooms become ready and
/// idle, and every scheduler converges with no operation left open.
fn check_liveness(driver: &mut Driver) {
    for _round in 0..150 {
        while !driver.outstanding.is_empty() {
            driver.complete(0, Ok(()));
        }
        for name in SCHEDULERS {
            // Pods the engine has no room for report too, as the watch
            // would (with their version label): they are adopted.
            let orphans: Vec<(RoomId, Version)> = driver
                .pods
                .iter()
                .filter(|((s, room), _)| {
                    s == name && driver.engine.fleet(name).is_some_and(|f| !f.contains(room))
                })
                .map(|((_, room), (v, _))| (room.clone(), *v))
                .collect();
            for (room, version) in orphans {
                driver.instance_labelled(
                    name,
                    &room,
                    InstanceEventKind::Upsert,
                    InstanceStatus::Ready,
                    Some(version),
                );
            }
            let rooms: Vec<RoomId> = driver
                .engine
                .fleet(name)
                .map(|f| f.rooms().map(|r| r.id.clone()).collect())
                .unwrap_or_default();
            for room in rooms {
                driver.instance(
                    name,
                    &room,
                    InstanceEventKind::Upsert,
                    InstanceStatus::Ready,
                );
                driver.ping(name, &room, PingStatus::Ready, 0);
            }
        }
        driver.drain();
        driver.advance(Millis(10_000));
    }
    while !driver.outstanding.is_empty() {
        driver.complete(0, Ok(()));
    }
    for name in SCHEDULERS {
        for op in driver.engine.operations(name) {
            assert!(
                op.status.is_final(),
                "{name}: {} still {} ({:?})",
                op.definition.name(),
                op.status.as_str(),
                op.execution_history
            );
        }
        let Some(fleet) = driver.engine.fleet(name) else {
            continue;
        };
        let scheduler = driver.engine.scheduler(name).unwrap();
        assert!(!fleet.is_rolling(), "{name}: rollout did not finish");
        let target = health::target(scheduler, fleet, driver.engine.now()).unwrap();
        assert_eq!(
            fleet.counts().in_service(),
            target.desired,
            "{name}: fleet did not converge"
        );
        assert_eq!(
            fleet.counts().validation_rooms,
            0,
            "{name}: validation room left behind"
        );
        // No pod is left running without a room: crashes included.
        for (s, room) in driver.pods.keys() {
            assert!(
                s != name || fleet.contains(room),
                "{name}: pod {room} has no room"
            );
        }
    }
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = ();
    type Transition = Step;

    fn init_state() -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    fn transitions(_: &()) -> BoxedStrategy<Step> {
        step().boxed()
    }

    fn apply(state: (), _: &Step) {
        state
    }
}

struct EngineTest;

impl StateMachineTest for EngineTest {
    type SystemUnderTest = Driver;
    type Reference = Reference;

    fn init_test(_: &()) -> Driver {
        start(Driver::new(7))
    }

    fn apply(driver: Driver, _: &(), step: Step) -> Driver {
        apply_checked(driver, &step)
    }

    fn teardown(mut driver: Driver, _: ()) {
        check_liveness(&mut driver);
    }
}

/// The same machine with room for one user operation in the queue, so
/// commands are refused often and the engine's own operations (which skip
/// that limit) make up most of the queue: `check_invariants` holds it to
/// `EngineConfig::max_open_operations` after every step, restarts and
/// crashes included.
struct ShortQueueTest;

impl StateMachineTest for ShortQueueTest {
    type SystemUnderTest = Driver;
    type Reference = Reference;

    fn init_test(_: &()) -> Driver {
        start(Driver::with_config(EngineConfig {
            seed: 7,
            max_pending_operations: 1,
            ..EngineConfig::default()
        }))
    }

    fn apply(driver: Driver, _: &(), step: Step) -> Driver {
        apply_checked(driver, &step)
    }

    fn teardown(mut driver: Driver, _: ()) {
        check_liveness(&mut driver);
    }
}

fn start(mut driver: Driver) -> Driver {
    // Most sequences start from a live scheduler.
    // Every check below looks at the schedulers that exist: a fixture
    // the engine refused would leave them nothing to check.
    let sched = scheduler(SCHEDULERS[0], 3, &Autoscale::None, 1, false, 1);
    if let Err(e) = driver
        .engine
        .handle_command(driver.now, Command::CreateScheduler(sched))
    {
        panic!("the initial scheduler is refused: {e}");
    }
    driver.drain();
    assert!(
        driver.engine.scheduler(SCHEDULERS[0]).is_some(),
        "the initial scheduler exists"
    );
    driver
}

fn apply_checked(mut driver: Driver, step: &Step) -> Driver {
    let mut before = snapshot(&driver.engine);
    // Busy by what the rooms said, not only by what the engine
    // remembers: a crash may have left its view stale.
    before.busy.extend(driver.truth_busy.iter().cloned());
    let target = target_room(&driver, step);
    driver.apply(step);
    check_safety(&driver, &before, step, target.as_ref());
    driver
}

/// Cases per run: 256 in CI; `PROPTEST_CASES=20000` for a long hunt.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: cases(256),
        max_shrink_iters: 2000,
        failure_persistence: None,
        .. Config::default()
    })]
    #[test]
    fn engine_keeps_its_invariants(sequential 1..200 => EngineTest);
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: cases(256),
        max_shrink_iters: 2000,
        failure_persistence: None,
        .. Config::default()
    })]
    #[test]
    fn a_short_queue_keeps_its_bound(sequential 1..200 => ShortQueueTest);
}

fn trace_of(seed: u64, steps: &[Step]) -> u64 {
    let mut driver = Driver::new(seed);
    for step in steps {
        driver.apply(step);
    }
    check_liveness(&mut driver);
    driver.trace.finish()
}

proptest! {
    #![proptest_config(Config { cases: cases(64), failure_persistence: None, .. Config::default() })]
    #[test]
    fn same_seed_and_inputs_give_the_same_effects(steps in proptest::collection::vec(step(), 1..80)) {
        let mut setup = vec![Step::Create {
            s: 0, replicas: 2, autoscale: Autoscale::None, surge: 1, percent: false, max_matches: 1,
        }];
        setup.extend(steps);
        prop_assert_eq!(trace_of(11, &setup), trace_of(11, &setup));
    }
}

#[test]
fn different_seeds_give_different_rooms() {
    let steps = [
        Step::Create {
            s: 0,
            replicas: 3,
            autoscale: Autoscale::None,
            surge: 1,
            percent: false,
            max_matches: 1,
        },
        Step::CompleteAll,
        Step::CompleteAll,
    ];
    assert_ne!(trace_of(1, &steps), trace_of(2, &steps));
}

/// Runs `steps` as the property test does (from its initial scheduler),
/// checking safety after each step and liveness at the end.
fn replay(steps: &[Step]) {
    let mut driver = EngineTest::init_test(&());
    for step in steps {
        driver = EngineTest::apply(driver, &(), step.clone());
    }
    EngineTest::teardown(driver, ());
}

fn create(s: usize, replicas: u8) -> Step {
    Step::Create {
        s,
        replicas,
        autoscale: Autoscale::None,
        surge: 1,
        percent: false,
        max_matches: 1,
    }
}

/// Found by the property test: a room created after the last flush and
/// `occupied` when maestro crashed came back only through the relist
/// (adopted from its pod), as free, and was removed to scale down.
#[test]
fn regression_an_adopted_room_is_not_removed_before_it_pings() {
    replay(&[
        Step::Complete {
            pick: 0,
            outcome: 3,
        },
        Step::Restart,
        create(0, 0),
        Step::Complete {
            pick: 0,
            outcome: 3,
        },
        create(0, 1),
        create(1, 1),
        Step::CompleteAll,
        Step::Flush,
        Step::Instance {
            s: 1,
            pick: 0,
            event: 2,
        },
        Step::Ping {
            s: 1,
            pick: 9804,
            status: 1,
            matches: 0,
        },
        Step::Instance {
            s: 1,
            pick: 6618,
            event: 1,
        },
        Step::Crash {
            creations_landed: false,
        },
    ]);
}

/// A crash loses `occupied` pings that were not flushed; the runtime's
/// relist then reports the pods ready. The rooms must stay unconfirmed
/// (not removable) until they ping, not come back free.
#[test]
fn regression_a_relist_does_not_confirm_a_stale_restored_room() {
    let ping = |pick, status| Step::Ping {
        s: 0,
        pick,
        status,
        matches: 0,
    };
    let ready = |pick| Step::Instance {
        s: 0,
        pick,
        event: 1,
    };
    replay(&[
        Step::CompleteAll,
        ready(0),
        ready(1),
        ready(2),
        ping(0, 0),
        ping(1, 0),
        ping(2, 0),
        Step::Flush,
        ping(0, 1),
        ping(1, 1),
        ping(2, 1),
        Step::Crash {
            creations_landed: false,
        },
        Step::NewVersion {
            s: 0,
            major: false,
            replicas: 1,
        },
        Step::CompleteAll,
        Step::Advance { ms: 1_000 },
    ]);
}

/// Found by the chaos harness (seed 41): a pod created and deleted while
/// the pod watch was cut off is never reported gone, and a scheduler being
/// deleted waits for every room to go, with no removal able to run behind
/// its delete_scheduler. The room held the deletion until its ten-minute
/// timeout; now the scheduler deletes its expired rooms again itself.
#[test]
fn regression_unseen_pods_do_not_hold_a_schedulers_deletion() {
    let mut driver = EngineTest::init_test(&());
    // Two rooms, then the namespace goes with its pods, and the watch
    // reports none of them gone.
    for step in [
        create(0, 2),
        Step::CompleteAll,
        Step::Delete { s: 0 },
        Step::CompleteAll,
    ] {
        driver = EngineTest::apply(driver, &(), step);
    }
    assert!(
        driver.engine.scheduler(SCHEDULERS[0]).is_some(),
        "the deletion waits for its rooms"
    );
    // Past the rooms' deletion timeout (120 s), well before
    // delete_scheduler's own (600 s).
    for step in [Step::Advance { ms: 250_000 }, Step::CompleteAll] {
        driver = EngineTest::apply(driver, &(), step);
    }
    assert!(
        driver.engine.scheduler(SCHEDULERS[0]).is_none(),
        "the expired rooms were deleted again and the deletion finished"
    );
    EngineTest::teardown(driver, ());
}
