//! The engine and the simulated cluster in virtual time.
//!
//! [`Harness`] owns an [`Engine`], the [`Cluster`] and a virtual clock, and
//! executes every effect the engine emits at once: runtime effects on the
//! cluster (their results come back after the cluster's API latency), store
//! writes into a [`MemoryStore`] (one batch per drain), and it feeds the
//! cluster's pings and instance events back to the engine. Everything is
//! ordered by time and sequence, so a run is a pure function of the seeds
//! and the inputs. Property tests, benchmarks and the capacity planner use
//! it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use maestro_engine::room::{PingStatus, RemovalReason};
use maestro_engine::{
    AllocateError, Command, CommandError, CommandReply, Definition, Effect, EffectId, Engine,
    EngineConfig, Millis, OperationStatus, RuntimeError, Time,
};
use maestro_store::{MemoryStore, Write};
use smol_str::SmolStr;

use crate::cluster::{Cluster, ClusterConfig, Output, PodSpec, RoomBehaviour};
use crate::record::Record;
use crate::trace::DecisionTrace;

/// Counters of what the harness executed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub pods_created: u64,
    pub pods_deleted: u64,
    pub pings: u64,
    pub persisted: u64,
    pub forwarded: u64,
    /// Inputs handed to the engine (pings, instance events, results,
    /// commands, allocations, timeouts).
    pub engine_inputs: u64,
    /// What reached the engine from the cluster and the matchmaker: pings,
    /// liveness reports, pod events and allocations.
    pub room_events: u64,
    /// `add_rooms` operations finished.
    pub scale_ups: u64,
    /// Scale-down `remove_rooms` operations finished.
    pub scale_downs: u64,
    /// Allocated rooms whose game server could not take the match.
    pub allocations_refused: u64,
}

pub struct Harness {
    pub engine: Engine,
    engine_config: EngineConfig,
    /// What the engine persisted, as the service's store would hold it.
    pub store: MemoryStore,
    pub cluster: Cluster,
    restarts: u64,
    now: Time,
    /// Runtime results on their way back, by arrival time.
    results: BinaryHeap<Reverse<(Time, u64, EffectId)>>,
    pending_results: BTreeMap<EffectId, Result<(), RuntimeError>>,
    seq: u64,
    /// Each scheduler's disruption budget (`minAvailable`) as last set.
    pub disruption_budgets: BTreeMap<String, u32>,
    pub stats: Stats,
    /// Every decision the engine took, in order.
    pub trace: DecisionTrace,
    /// Every engine input as a recording would hold it, once
    /// [`Harness::start_recording`] is called (tests of `crate::record`).
    recording: Option<(Vec<Record>, DecisionTrace)>,
}

/// The time a harness starts at.
pub const START: Time = Time(1_000_000);

impl Harness {
    pub fn new(engine: EngineConfig, cluster: ClusterConfig) -> Harness {
        Harness::starting_at(engine, cluster, START)
    }

    pub fn starting_at(engine: EngineConfig, cluster: ClusterConfig, now: Time) -> Harness {
        Harness {
            engine: Engine::new(engine.clone()),
            engine_config: engine,
            store: MemoryStore::in_memory(),
            cluster: Cluster::new(cluster, now),
            restarts: 0,
            now,
            results: BinaryHeap::new(),
            pending_results: BTreeMap::new(),
            seq: 0,
            disruption_budgets: BTreeMap::new(),
            stats: Stats::default(),
            trace: DecisionTrace::default(),
            recording: None,
        }
    }

    pub fn now(&self) -> Time {
        self.now
    }

    /// Restarts the process (see [`Harness::restart`]) and records every
    /// engine input of the new one, as `maestro start --record` does: the
    /// header, the schedulers restored from the store, the relist, and
    /// every input after. A later restart ends the recording.
    pub fn start_recording(&mut self) {
        self.reboot(true);
    }

    /// The recording so far, closed by a checkpoint.
    pub fn recording(&mut self) -> Vec<Record> {
        let Some((records, trace)) = &mut self.recording else {
            return Vec::new();
        };
        records.push(Record::Checkpoint {
            decisions: trace.decisions(),
            hash: trace.hash(),
        });
        records.clone()
    }

    fn rec(&mut self, record: impl FnOnce() -> Record) {
        if let Some((records, _)) = &mut self.recording {
            records.push(record());
        }
    }

    pub fn command(&mut self, command: Command) -> Result<CommandReply, CommandError> {
        self.stats.engine_inputs += 1;
        let now = self.now;
        self.rec(|| Record::Command(now, Box::new(command.clone())));
        let reply = self.engine.handle_command(self.now, command);
        self.drain();
        self.deliver();
        reply
    }

    /// Allocates a ready room and tells its game server, which starts a
    /// match of the cluster's configured length.
    pub fn allocate(&mut self, scheduler: &str) -> Option<String> {
        self.allocate_for(scheduler, None)
            .ok()
            .map(|room| room.to_string())
    }

    /// Allocates a ready room for a match lasting `duration` (the
    /// cluster's distribution when `None`) and tells its game server.
    pub fn allocate_for(
        &mut self,
        scheduler: &str,
        duration: Option<Millis>,
    ) -> Result<SmolStr, AllocateError> {
        self.stats.engine_inputs += 1;
        self.stats.room_events += 1;
        let now = self.now;
        self.rec(|| Record::Allocate(now, scheduler.to_string(), None));
        let allocation = self
            .engine
            .allocate_with(self.now, scheduler, None, |id, _| id.clone());
        self.drain();
        if let Ok(room) = &allocation {
            self.cluster.allocated(self.now, scheduler, room, duration);
            self.deliver();
        }
        allocation
    }

    /// Changes what a room pings from now on, and pings at once (a game
    /// server reports a state change immediately).
    pub fn set_behaviour(&mut self, scheduler: &str, room: &str, behaviour: RoomBehaviour) {
        self.cluster
            .set_behaviour(self.now, scheduler, room, Some(behaviour));
        self.deliver();
    }

    /// Processes every event and timer up to `until`.
    pub fn run_until(&mut self, until: Time) {
        loop {
            let next = [
                self.results.peek().map(|Reverse((t, _, _))| *t),
                self.engine.poll_timeout(),
                self.cluster.next_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else {
                break;
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            self.step();
        }
        self.now = self.now.max(until);
        self.cluster.advance(self.now);
        self.deliver();
    }

    pub fn run_for(&mut self, duration: Millis) {
        self.run_until(self.now + duration);
    }

    /// Everything due at `self.now`: runtime results, the engine's timers,
    /// the cluster's timers, in that order.
    fn step(&mut self) {
        while let Some(Reverse((at, _, id))) = self.results.peek().copied() {
            if at > self.now {
                break;
            }
            self.results.pop();
            if let Some(result) = self.pending_results.remove(&id) {
                self.stats.engine_inputs += 1;
                let now = self.now;
                self.rec(|| Record::Result(now, id, result.clone()));
                self.engine.handle_effect_result(self.now, id, result);
                self.drain();
            }
        }
        if self.engine.poll_timeout().is_some_and(|t| t <= self.now) {
            self.stats.engine_inputs += 1;
            let now = self.now;
            self.rec(|| Record::Timeout(now));
            self.engine.handle_timeout(self.now);
            self.drain();
        }
        self.cluster.advance(self.now);
        self.deliver();
    }

    /// Hands what the cluster produced to the engine.
    fn deliver(&mut self) {
        while let Some(output) = self.cluster.poll_output() {
            self.stats.engine_inputs += 1;
            self.stats.room_events += 1;
            let now = self.now;
            match output {
                Output::Instance(event) => {
                    self.rec(|| Record::Instance(now, event.clone()));
                    self.engine.handle_instance_event(self.now, &event)
                }
                Output::Ping(ping) => {
                    self.rec(|| Record::Ping(now, ping.clone()));
                    self.stats.pings += 1;
                    // A refused ping (for instance an impossible transition)
                    // changes nothing; the room pings again on its period.
                    let _ = self.engine.handle_ping(self.now, &ping);
                    self.cluster.recycle(ping);
                }
                Output::Liveness(liveness) => {
                    self.rec(|| Record::Liveness(now, liveness.clone()));
                    // A room the engine no longer has needs no deadline.
                    let _ = self.engine.handle_liveness(self.now, &liveness);
                }
            }
            self.drain();
        }
    }

    /// The process dies and starts again: a new engine restored from the
    /// store, and the cluster's pods relisted as a watch would after a
    /// reconnect. Runtime results still in flight are lost with the process.
    pub fn restart(&mut self) {
        self.reboot(false);
    }

    fn reboot(&mut self, record: bool) {
        assert!(
            self.engine_config.room_records,
            "a restart restores from the store, which a harness with room records off does not keep"
        );
        // Every process run draws a fresh seed, as the service does.
        self.restarts += 1;
        let seed = self
            .engine_config
            .seed
            .wrapping_add(self.restarts.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        self.engine = Engine::new(EngineConfig {
            seed,
            ..self.engine_config.clone()
        });
        self.results.clear();
        self.pending_results.clear();
        // What the cluster said to the dead process is lost with it.
        while self.cluster.poll_output().is_some() {}
        let stored = self.store.load().expect("the in-memory store loads");
        self.recording = record.then(|| {
            let mut records = vec![Record::Header {
                format: crate::record::FORMAT,
                segment: 0,
                engine: self.engine.config().clone(),
                started_at: self.now,
            }];
            records.extend(
                stored
                    .iter()
                    .map(|s| Record::Restore(self.now, Box::new(s.clone()))),
            );
            (records, DecisionTrace::untimed())
        });
        for scheduler in stored {
            self.engine
                .restore(self.now, scheduler)
                .expect("stored schedulers restore");
        }
        self.drain();
        let known: Vec<(String, Vec<String>)> = self
            .engine
            .scheduler_names()
            .map(|name| {
                let rooms = self
                    .engine
                    .fleet(name)
                    .map(|f| f.rooms().map(|r| r.id.clone()).collect())
                    .unwrap_or_default();
                (name.to_string(), rooms)
            })
            .collect();
        // Each scheduler's watch starts with a relist.
        for (scheduler, rooms) in known {
            let listed = self.cluster.list(&scheduler);
            for room in rooms {
                if !self.cluster.has_pod(&scheduler, &room) {
                    let gone = Cluster::gone(&scheduler, &room);
                    let now = self.now;
                    self.rec(|| Record::Instance(now, gone.clone()));
                    self.engine.handle_instance_event(self.now, &gone);
                    self.drain();
                }
            }
            for event in listed {
                let now = self.now;
                self.rec(|| Record::Instance(now, event.clone()));
                self.engine.handle_instance_event(self.now, &event);
                self.drain();
            }
        }
        // The game servers' next pings reach the new process.
        self.cluster.announce(self.now);
    }

    /// Executes every effect the engine emitted; store writes are applied
    /// as one batch per drain.
    fn drain(&mut self) {
        let mut writes = Vec::new();
        while let Some(effect) = self.engine.poll_effect() {
            self.trace.record(self.now, &effect);
            if let Some((_, trace)) = &mut self.recording {
                trace.record(self.now, &effect);
            }
            // Without room records (the planner) the harness keeps no
            // store: a store without rooms could restore no engine.
            if self.engine_config.room_records
                && let Some(write) = Write::from_effect(&effect)
            {
                writes.push(write);
            }
            if let Effect::PersistOperation(op) = &effect
                && op.status == OperationStatus::Finished
            {
                match &op.definition {
                    Definition::AddRooms { .. } => self.stats.scale_ups += 1,
                    Definition::RemoveRooms {
                        reason: RemovalReason::ScaleDown,
                        ..
                    } => self.stats.scale_downs += 1,
                    _ => {}
                }
            }
            match effect {
                Effect::CreateSchedulerResources { id, .. } => self.reply(id, Ok(())),
                Effect::SetDisruptionBudget {
                    id,
                    scheduler,
                    min_available,
                } => {
                    self.disruption_budgets.insert(scheduler, min_available);
                    self.reply(id, Ok(()));
                }
                Effect::DeleteSchedulerResources { id, scheduler } => {
                    self.cluster.delete_scheduler(self.now, &scheduler);
                    self.reply(id, Ok(()));
                }
                Effect::CreateRoom {
                    id,
                    room,
                    spec,
                    host_ports,
                    ..
                } => {
                    let pod = PodSpec::for_room(&spec, &room, &host_ports);
                    let result = self.cluster.create_pod(self.now, pod);
                    if result.is_ok() {
                        self.stats.pods_created += 1;
                    }
                    self.reply(id, result);
                }
                Effect::DeleteRoom {
                    id,
                    scheduler,
                    room,
                    ..
                } => {
                    let result = self.cluster.delete_pod(self.now, &scheduler, &room);
                    if result.is_ok() {
                        self.stats.pods_deleted += 1;
                    }
                    self.reply(id, result);
                }
                Effect::PersistScheduler { .. }
                | Effect::PersistOperation(_)
                | Effect::DeleteOperations { .. }
                | Effect::DeleteSchedulerData { .. }
                | Effect::SaveRoom(_)
                | Effect::ForgetRoom { .. } => self.stats.persisted += 1,
                Effect::Forward { .. } => self.stats.forwarded += 1,
            }
        }
        if !writes.is_empty() {
            self.store
                .apply(self.now, &writes)
                .expect("the in-memory store accepts the engine's writes");
        }
    }

    fn reply(&mut self, id: EffectId, result: Result<(), RuntimeError>) {
        self.seq += 1;
        let at = self.now + self.cluster.config().api_latency;
        self.results.push(Reverse((at, self.seq, id)));
        self.pending_results.insert(id, result);
    }

    /// Pods the simulated cluster holds for a scheduler (deleting ones included).
    pub fn pod_count(&self, scheduler: &str) -> usize {
        self.cluster.pod_count(scheduler)
    }
}

/// A silent game server (it stopped pinging).
pub const SILENT: RoomBehaviour = RoomBehaviour {
    status: PingStatus::Unknown,
    running_matches: 0,
};
