//! What lives outside maestro and survives its crashes: the simulated
//! cluster with its game servers (maestro's runtime), the record of what
//! maestro acknowledged and of what the forwarder received, the trace, and
//! the violations found.
//!
//! Every check that needs the world's truth is made here, at the moment
//! it can be judged: a deletion when the runtime is asked for it, an
//! allocation when its answer reaches the matchmaker. What maestro
//! acknowledged is recorded when the acknowledgement reaches the client,
//! never before, so a check never blames maestro for something it could
//! not have known.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::stream::BoxStream;
use maestro_engine::room::{PingStatus, RemovalReason};
use maestro_engine::scheduler::Scheduler;
use maestro_engine::{InstanceEventKind, Millis, Ping, Time};
use maestro_runtimes::{InstanceEvent, RoomSpec, Runtime, RuntimeError};
use maestro_sim::cluster::{Cluster, ClusterConfig, Output, PodSpec};
use tokio::sync::mpsc;
use xxhash_rust::xxh3::Xxh3;

/// Lanes game servers' pings travel in, one ping in flight per lane, a
/// room always in the same lane (so its pings and events stay in order).
pub const PING_LANES: usize = 8;

/// What a room's acknowledged reports and allocations say about it.
#[derive(Clone, Debug, Default)]
struct RoomAcks {
    /// The last acknowledged ping: its status, and the maestro process
    /// (incarnation) that acknowledged it.
    ping: Option<(PingStatus, u64)>,
    /// A ping of another status was sent since the last acknowledged one:
    /// maestro may have had it even if its answer was lost.
    other_sent_since_ack: bool,
    /// The last acknowledged allocation, in world time.
    allocated_at: Option<Time>,
    /// A ping other than `ready` was sent since that allocation, which ends
    /// the allocation's hold (an `occupied` one makes the room occupied).
    hold_ended: bool,
}

/// An operation whose enqueueing maestro acknowledged.
#[derive(Clone, Debug)]
pub struct AckedOperation {
    pub scheduler: String,
    pub id: String,
    pub what: String,
    pub at: Time,
}

/// One watch maestro holds on a scheduler's pods.
struct Watch {
    tx: mpsc::UnboundedSender<InstanceEvent>,
    /// Rooms this watch reported and not yet as deleted: a relist reports
    /// those without a pod as gone, as a Kubernetes watch does.
    known: BTreeSet<String>,
}

impl Watch {
    fn send(&mut self, event: InstanceEvent) -> bool {
        match event.kind {
            InstanceEventKind::Upsert => {
                self.known.insert(event.room.clone());
            }
            InstanceEventKind::Deleted => {
                self.known.remove(&event.room);
            }
        }
        self.tx.send(event).is_ok()
    }
}

/// Counters of a run, for its report line.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub restarts: u64,
    pub crashes: u64,
    pub store_failures: u64,
    pub pings_acked: u64,
    pub allocations: u64,
    pub events_acked: u64,
    pub events_received: u64,
    pub operations_acked: u64,
    pub rooms_created: u64,
    pub rooms_deleted: u64,
    pub invariant_checks: u64,
}

pub struct State {
    cluster: Cluster,
    /// World time: Unix milliseconds, the simulation's epoch plus its
    /// elapsed time, never moving back.
    now: Time,
    epoch: Time,
    /// How far the maestro host's wall clock is off the world's time
    /// (clock jumps move it).
    pub wall_offset_ms: i64,
    watches: BTreeMap<String, Vec<Watch>>,
    watches_down: bool,
    lanes: Vec<mpsc::UnboundedSender<Ping>>,
    lane_receivers: Option<Vec<mpsc::UnboundedReceiver<Ping>>>,
    /// Which maestro process runs (or ran last): 1 for the first.
    pub incarnation: u64,
    rooms: BTreeMap<(String, String), RoomAcks>,
    /// Event sequence numbers, per room, in the order maestro
    /// acknowledged them (with when), and in the order the forwarder first
    /// got them.
    events_acked: BTreeMap<(String, String), Vec<(u64, Time)>>,
    /// By room alone: a forwarded event names its room, not its scheduler
    /// (room names are unique across schedulers).
    events_received: BTreeMap<String, Vec<u64>>,
    received_once: BTreeSet<u64>,
    /// Validation rooms, whose events maestro acknowledges and drops, as
    /// upstream does.
    validation_rooms: BTreeSet<(String, String)>,
    pub operations: Vec<AckedOperation>,
    /// When each scheduler's creation was last acknowledged.
    pub created: BTreeMap<String, Time>,
    /// When each scheduler's deletion was last acknowledged.
    pub deleted_at: BTreeMap<String, Time>,
    /// The fault phase is over: the matchmaker and the operator rest.
    pub quiet: bool,
    /// Asks the serving maestro for a graceful stop (SIGTERM).
    pub stop_requested: bool,
    /// Hosts whose maestro exited (see `hosts::exited`), for the supervisor.
    pub exited: BTreeSet<&'static str>,
    /// The host whose maestro serves the APIs (the leader), and which
    /// process that is: clients connect there, as a Service routes to the
    /// ready pod.
    serving: Option<(&'static str, u64)>,
    /// Every process that served and has not exited: its host, and since
    /// when another one serves in its place (a deposed leader must stop).
    leaders: BTreeMap<&'static str, (u64, Option<Time>)>,
    /// Asks the running maestro whether it converged, and its answer.
    pub probe_requested: bool,
    pub convergence: Option<(Time, Result<(), String>)>,
    /// Schedulers' names and their `maxMatches`, as the operator created them.
    pub max_matches: BTreeMap<String, u32>,
    pub violations: Vec<String>,
    trace: Xxh3,
    trace_lines: u64,
    pub log: Option<Vec<String>>,
    pub stats: Stats,
    allocation_ttl: Millis,
}

pub struct World {
    state: Mutex<State>,
    /// Latency of every runtime call (after it took effect).
    api_latency: Duration,
}

impl World {
    pub fn new(
        cluster: ClusterConfig,
        epoch: Time,
        api_latency: Duration,
        allocation_ttl: Millis,
        verbose: bool,
    ) -> Arc<World> {
        let mut lanes = Vec::with_capacity(PING_LANES);
        let mut receivers = Vec::with_capacity(PING_LANES);
        for _ in 0..PING_LANES {
            let (tx, rx) = mpsc::unbounded_channel();
            lanes.push(tx);
            receivers.push(rx);
        }
        Arc::new(World {
            state: Mutex::new(State {
                cluster: Cluster::new(cluster, epoch),
                now: epoch,
                epoch,
                wall_offset_ms: 0,
                watches: BTreeMap::new(),
                watches_down: false,
                lanes,
                lane_receivers: Some(receivers),
                incarnation: 0,
                rooms: BTreeMap::new(),
                events_acked: BTreeMap::new(),
                events_received: BTreeMap::new(),
                received_once: BTreeSet::new(),
                validation_rooms: BTreeSet::new(),
                operations: Vec::new(),
                created: BTreeMap::new(),
                deleted_at: BTreeMap::new(),
                quiet: false,
                stop_requested: false,
                exited: BTreeSet::new(),
                serving: None,
                leaders: BTreeMap::new(),
                probe_requested: false,
                convergence: None,
                max_matches: BTreeMap::new(),
                violations: Vec::new(),
                trace: Xxh3::new(),
                trace_lines: 0,
                log: verbose.then(Vec::new),
                stats: Stats::default(),
                allocation_ttl,
            }),
            api_latency,
        })
    }

    /// The world's state, its time brought up to the simulation's.
    pub fn state(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(elapsed) = turmoil::sim_elapsed() {
            state.advance_to(elapsed);
        }
        state
    }
}

impl State {
    /// Moves world time to `elapsed` since the start (never back: hosts
    /// run one after the other within a step, each a little ahead).
    pub fn advance_to(&mut self, elapsed: Duration) {
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let t = Time(self.epoch.0.saturating_add(ms));
        if t > self.now {
            self.now = t;
        }
    }

    pub fn now(&self) -> Time {
        self.now
    }

    /// Maestro process `incarnation` serves on `host` from now on.
    pub fn serve(&mut self, host: &'static str, incarnation: u64) {
        self.trace(format!("maestro {incarnation} serves on {host}"));
        self.serving = Some((host, incarnation));
        let now = self.now;
        for (_, deposed) in self.leaders.values_mut() {
            deposed.get_or_insert(now);
        }
        self.leaders.insert(host, (incarnation, None));
    }

    /// A process deposed (another serves in its place) that has not
    /// stopped within `grace`: it must, since it can no longer persist
    /// anything. Reported once.
    pub fn check_deposed(&mut self, grace: Millis) {
        let now = self.now;
        let late: Vec<(&'static str, u64)> = self
            .leaders
            .iter()
            .filter(|(_, (_, deposed))| deposed.is_some_and(|at| now >= at + grace))
            .map(|(host, (incarnation, _))| (*host, *incarnation))
            .collect();
        for (host, incarnation) in late {
            self.leaders.remove(host);
            self.violation(format!(
                "maestro {incarnation} on {host} runs on {} ms after another took its place",
                grace.0
            ));
        }
    }

    /// The maestro on `host` is gone (exited, or crashed).
    pub fn exit(&mut self, host: &'static str) {
        self.exited.insert(host);
        self.host_down(host);
    }

    /// The host's maestro no longer serves.
    pub fn host_down(&mut self, host: &'static str) {
        if self.serving.is_some_and(|(h, _)| h == host) {
            self.serving = None;
        }
        self.leaders.remove(host);
    }

    pub fn serving_host(&self) -> Option<&'static str> {
        self.serving.map(|(host, _)| host)
    }

    fn serving_incarnation(&self) -> u64 {
        self.serving.map_or(0, |(_, incarnation)| incarnation)
    }

    /// Seconds since the start, for the trace and the log.
    fn clock(&self) -> String {
        let ms = self.now.0 - self.epoch.0;
        format!("{:>4}.{:03}", ms / 1000, ms % 1000)
    }

    /// Adds a line to the trace (hashed) and, when verbose, to the log.
    pub fn trace(&mut self, line: impl AsRef<str>) {
        let line = format!("{} {}", self.clock(), line.as_ref());
        self.trace.update(line.as_bytes());
        self.trace.update(b"\n");
        self.trace_lines += 1;
        if let Some(log) = &mut self.log {
            log.push(line);
        }
    }

    /// A line for the log only (when verbose), left out of the trace: pings
    /// are too many to hash and follow from the decisions anyway.
    pub fn note(&mut self, line: impl FnOnce() -> String) {
        if self.log.is_some() {
            let line = format!("{} {}", self.clock(), line());
            if let Some(log) = &mut self.log {
                log.push(line);
            }
        }
    }

    pub fn trace_hash(&self) -> (u64, u64) {
        (self.trace.digest(), self.trace_lines)
    }

    pub fn violation(&mut self, what: impl Into<String>) {
        let what = what.into();
        self.trace(format!("VIOLATION {what}"));
        self.violations
            .push(format!("at {}s: {what}", self.clock().trim()));
    }

    /// The maestro host's wall clock: the world's time, off by the jumps.
    pub fn wall_clock(&self) -> Time {
        Time(self.now.0.saturating_add_signed(self.wall_offset_ms))
    }

    pub fn take_lane_receivers(&mut self) -> Vec<mpsc::UnboundedReceiver<Ping>> {
        self.lane_receivers.take().unwrap_or_default()
    }

    /// Fires the cluster's timers up to now and delivers what it produced.
    pub fn advance_cluster(&mut self) {
        let now = self.now;
        self.cluster.advance(now);
        self.deliver();
    }

    pub fn cluster(&mut self) -> &mut Cluster {
        &mut self.cluster
    }

    /// Failures in the cluster stop (the end of the fault phase).
    pub fn calm_cluster(&mut self) {
        let now = self.now;
        self.cluster.calm(now);
        self.deliver();
    }

    fn deliver(&mut self) {
        while let Some(output) = self.cluster.poll_output() {
            match output {
                Output::Instance(event) => {
                    if self.watches_down {
                        // Missed: the relist at the reconnection catches up.
                        continue;
                    }
                    if let Some(watches) = self.watches.get_mut(&event.scheduler) {
                        watches.retain_mut(|w| w.send(event.clone()));
                    }
                }
                Output::Ping(ping) => {
                    let lane = crate::hash::lane(&ping.scheduler, &ping.room, PING_LANES);
                    if let Some(lane) = self.lanes.get(lane) {
                        let _ = lane.send(ping);
                    }
                }
                // Only with `Pings::Reported`, which needs a shell that calls the
                // engine itself; this one's game servers ping over HTTP (Every or
                // Elided, see its configuration).
                Output::Liveness(_) => {}
            }
        }
    }

    /// Every watch disconnects (`true`) and misses what happens, or
    /// reconnects (`false`) and relists.
    pub fn set_watches_down(&mut self, down: bool) {
        if self.watches_down == down {
            return;
        }
        self.watches_down = down;
        self.trace(if down {
            "watches disconnected"
        } else {
            "watches reconnected"
        });
        if down {
            return;
        }
        let cluster = &self.cluster;
        for (scheduler, watches) in &mut self.watches {
            let pods = cluster.list(scheduler);
            watches.retain_mut(|watch| {
                let gone: Vec<String> = watch
                    .known
                    .iter()
                    .filter(|room| !cluster.has_pod(scheduler, room))
                    .cloned()
                    .collect();
                gone.into_iter()
                    .map(|room| Cluster::gone(scheduler, &room))
                    .chain(pods.iter().cloned())
                    .all(|event| watch.send(event))
            });
        }
    }

    fn room(&mut self, scheduler: &str, room: &str) -> &mut RoomAcks {
        self.rooms
            .entry((scheduler.to_string(), room.to_string()))
            .or_default()
    }

    /// Whether maestro was told, in a way it must not forget or ignore,
    /// that the room is busy: an allocation it answered within the TTL
    /// whose match has not been seen to end, or an `occupied` ping the
    /// running process acknowledged (a ping is soft state: one answered
    /// by a process that since crashed may be lost, and the game server
    /// repeats it at its next ping).
    fn busy(&self, scheduler: &str, room: &str) -> Option<String> {
        if !self.cluster.is_running(scheduler, room) {
            // Crashed (maestro heard it from the watch) or going away.
            return None;
        }
        let acks = self.rooms.get(&(scheduler.to_string(), room.to_string()))?;
        if let Some(at) = acks.allocated_at
            && self.now < at + self.allocation_ttl
            && !acks.hold_ended
        {
            return Some(format!(
                "allocated {} ms ago",
                self.now.0.saturating_sub(at.0)
            ));
        }
        match acks.ping {
            Some((PingStatus::Occupied, incarnation))
                if incarnation == self.serving_incarnation() && !acks.other_sent_since_ack =>
            {
                Some("its last acknowledged ping said occupied".to_string())
            }
            _ => None,
        }
    }

    /// A game server sends a ping. Maestro may act on it before its answer
    /// comes back, or without one reaching the game server at all.
    pub fn ping_sent(&mut self, scheduler: &str, room: &str, status: PingStatus) {
        self.note(|| format!("ping {scheduler}/{room} {}", status.as_str()));
        let acks = self.room(scheduler, room);
        if acks.ping.is_some_and(|(acked, _)| acked != status) {
            acks.other_sent_since_ack = true;
        }
        if status != PingStatus::Ready {
            acks.hold_ended = true;
        }
    }

    /// Maestro acknowledged a ping.
    pub fn ping_acked(&mut self, scheduler: &str, room: &str, status: PingStatus) {
        self.note(|| format!("ping {scheduler}/{room} {} acknowledged", status.as_str()));
        self.stats.pings_acked += 1;
        let incarnation = self.serving_incarnation();
        let acks = self.room(scheduler, room);
        acks.ping = Some((status, incarnation));
        acks.other_sent_since_ack = false;
    }

    /// Maestro answered an allocation with `room`: checked, recorded, and
    /// the game server is told (it starts a match if it can).
    pub fn allocation_answered(&mut self, scheduler: &str, room: &str) {
        self.stats.allocations += 1;
        let single = self.max_matches.get(scheduler).is_none_or(|m| *m <= 1);
        if single
            && self.cluster.in_match(scheduler, room)
            && let Some(why) = self.busy(scheduler, room)
        {
            self.violation(format!(
                "room {scheduler}/{room} allocated to a second match ({why})"
            ));
        }
        let now = self.now;
        let started = self.cluster.allocated(now, scheduler, room, None);
        self.deliver();
        let acks = self.room(scheduler, room);
        acks.allocated_at = Some(now);
        acks.hold_ended = false;
        self.trace(format!(
            "allocated {scheduler}/{room} (match started: {started})"
        ));
    }

    /// Maestro acknowledged a room or player event.
    pub fn event_acked(&mut self, scheduler: &str, room: &str, seq: u64) {
        self.note(|| format!("event #{seq} of {scheduler}/{room} acknowledged"));
        self.stats.events_acked += 1;
        if self
            .validation_rooms
            .contains(&(scheduler.to_string(), room.to_string()))
        {
            return;
        }
        let now = self.now;
        self.events_acked
            .entry((scheduler.to_string(), room.to_string()))
            .or_default()
            .push((seq, now));
    }

    /// The forwarder received an event (perhaps again).
    pub fn event_received(&mut self, room: &str, seq: u64) {
        self.stats.events_received += 1;
        if self.received_once.insert(seq) {
            self.trace(format!("forwarded {room} #{seq}"));
            self.events_received
                .entry(room.to_string())
                .or_default()
                .push(seq);
        }
    }

    /// Whether the scheduler's creation was acknowledged and no deletion since.
    pub fn exists(&self, scheduler: &str) -> bool {
        self.created
            .get(scheduler)
            .is_some_and(|c| self.deleted_at.get(scheduler).is_none_or(|d| d < c))
    }

    pub fn operation_acked(&mut self, operation: AckedOperation) {
        self.stats.operations_acked += 1;
        self.trace(format!(
            "operation {} {} acknowledged on {}",
            operation.what, operation.id, operation.scheduler
        ));
        self.operations.push(operation);
    }

    /// Acknowledged operations maestro must still know: those of a
    /// scheduler not deleted since (a deletion takes its operations).
    pub fn operations_to_keep(&self) -> Vec<AckedOperation> {
        self.operations
            .iter()
            .filter(|o| self.deleted_at.get(&o.scheduler).is_none_or(|d| *d < o.at))
            .cloned()
            .collect()
    }

    /// Per room, the events maestro acknowledged that must reach the
    /// forwarder: all but those of a scheduler deleted since (its
    /// undelivered events go with it).
    fn events_to_forward(&self) -> impl Iterator<Item = (&(String, String), Vec<u64>)> {
        self.events_acked.iter().map(|(key, acked)| {
            let deleted = self.deleted_at.get(&key.0);
            let kept = acked
                .iter()
                .filter(|(_, at)| deleted.is_none_or(|d| d < at))
                .map(|(seq, _)| *seq)
                .collect();
            (key, kept)
        })
    }

    /// Acknowledged events the forwarder has not had yet.
    pub fn missing_events(&self) -> usize {
        self.events_to_forward()
            .flat_map(|(_, seqs)| seqs)
            .filter(|seq| !self.received_once.contains(seq))
            .count()
    }

    /// Every event maestro acknowledged reached the forwarder, and in each
    /// room the first deliveries came in the order they were acknowledged.
    pub fn check_events(&mut self) {
        let mut problems = Vec::new();
        for ((scheduler, room), acked) in self.events_to_forward() {
            let missing: Vec<u64> = acked
                .iter()
                .filter(|seq| !self.received_once.contains(seq))
                .copied()
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "events {missing:?} of {scheduler}/{room} acknowledged but never forwarded"
                ));
            }
            let received = self
                .events_received
                .get(room)
                .map_or(&[][..], Vec::as_slice);
            let order: Vec<u64> = received
                .iter()
                .filter(|seq| acked.contains(seq))
                .copied()
                .collect();
            let expected: Vec<u64> = acked
                .iter()
                .filter(|seq| order.contains(seq))
                .copied()
                .collect();
            if order != expected {
                problems.push(format!(
                    "events of {scheduler}/{room} forwarded out of order: {order:?}, acknowledged {expected:?}"
                ));
            }
        }
        for problem in problems {
            self.violation(problem);
        }
    }
}

/// Maestro's runtime: the world's cluster, called in process as the
/// Kubernetes API would be over the network. A call takes effect at once
/// and answers after the API latency, so that what the cluster sees is in
/// the order maestro decided it.
pub struct WorldRuntime(pub Arc<World>);

impl WorldRuntime {
    async fn answer<T>(&self, result: T) -> T {
        tokio::time::sleep(self.0.api_latency).await;
        result
    }
}

#[async_trait::async_trait]
impl Runtime for WorldRuntime {
    async fn create_scheduler(&self, _scheduler: &Scheduler) -> Result<(), RuntimeError> {
        self.answer(Ok(())).await
    }

    async fn delete_scheduler(&self, scheduler: &str) -> Result<(), RuntimeError> {
        {
            let mut state = self.0.state();
            let now = state.now;
            state.cluster.delete_scheduler(now, scheduler);
            state.deliver();
            state.trace(format!("namespace {scheduler} deleted"));
        }
        self.answer(Ok(())).await
    }

    async fn create_room(&self, room: &RoomSpec) -> Result<(), RuntimeError> {
        let result = {
            let mut state = self.0.state();
            let now = state.now;
            let pod = PodSpec::for_room(&room.spec, &room.room, &room.host_ports);
            let result = state.cluster.create_pod(now, pod);
            state.deliver();
            if result.is_ok() {
                state.stats.rooms_created += 1;
            }
            if room.is_validation_room {
                state
                    .validation_rooms
                    .insert((room.scheduler.clone(), room.room.clone()));
            }
            state.trace(format!(
                "create {}/{} {} validation={} -> {}",
                room.scheduler,
                room.room,
                room.version,
                room.is_validation_room,
                outcome(&result)
            ));
            result
        };
        self.answer(result).await
    }

    async fn delete_room(
        &self,
        scheduler: &str,
        room: &str,
        reason: RemovalReason,
    ) -> Result<(), RuntimeError> {
        let result = {
            let mut state = self.0.state();
            if reason.spares_busy_rooms()
                && let Some(why) = state.busy(scheduler, room)
            {
                let in_match = state.cluster.in_match(scheduler, room);
                state.violation(format!(
                    "busy room {scheduler}/{room} deleted for {reason:?} ({why}; hosting a match: {in_match})"
                ));
            }
            let now = state.now;
            let result = state.cluster.delete_pod(now, scheduler, room);
            state.deliver();
            if result.is_ok() {
                state.stats.rooms_deleted += 1;
            }
            state.trace(format!(
                "delete {scheduler}/{room} {reason:?} -> {}",
                outcome(&result)
            ));
            result
        };
        self.answer(result).await
    }

    async fn set_disruption_budget(
        &self,
        _scheduler: &str,
        _min_available: u32,
    ) -> Result<(), RuntimeError> {
        self.answer(Ok(())).await
    }

    fn watch(&self, scheduler: &str, known: Vec<String>) -> BoxStream<'static, InstanceEvent> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut state = self.0.state();
        let mut watch = Watch {
            tx,
            known: known.into_iter().collect(),
        };
        if !state.watches_down {
            // A new watch starts with a relist.
            let gone: Vec<String> = watch
                .known
                .iter()
                .filter(|room| !state.cluster.has_pod(scheduler, room))
                .cloned()
                .collect();
            for room in gone {
                watch.send(Cluster::gone(scheduler, &room));
            }
            for event in state.cluster.list(scheduler) {
                watch.send(event);
            }
        }
        state
            .watches
            .entry(scheduler.to_string())
            .or_default()
            .push(watch);
        Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}

fn outcome(result: &Result<(), RuntimeError>) -> String {
    match result {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{:?}", e.kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestro_engine::scheduler::fixtures;
    use maestro_engine::version::Version;
    use maestro_sim::dist::Distribution;

    const T0: Time = Time(1_000_000);

    /// A world whose pods start at once, with one room of "arena" running.
    async fn world_with_a_room() -> (Arc<World>, WorldRuntime) {
        let cluster = ClusterConfig {
            start_latency: Distribution::Fixed(Millis(0)),
            boot_delay: Millis(0),
            ..ClusterConfig::default()
        };
        let world = World::new(cluster, T0, Duration::ZERO, Millis::from_secs(30), false);
        let runtime = WorldRuntime(Arc::clone(&world));
        let spec = RoomSpec {
            scheduler: "arena".to_string(),
            room: "arena-1".to_string(),
            version: Version::parse("v1.0.0").expect("a version"),
            spec: Arc::new(fixtures::scheduler("arena")),
            host_ports: Vec::new(),
            is_validation_room: false,
            extra_env: Vec::new(),
        };
        runtime.create_room(&spec).await.expect("created");
        let mut state = world.state();
        state.serve("maestro", 1);
        state.advance_to(Duration::from_secs(1));
        state.advance_cluster();
        assert!(state.cluster().is_running("arena", "arena-1"));
        drop(state);
        (world, runtime)
    }

    #[tokio::test(start_paused = true)]
    async fn a_room_that_said_occupied_may_not_be_removed_to_scale_down() {
        let (world, runtime) = world_with_a_room().await;
        {
            let mut state = world.state();
            state.ping_sent("arena", "arena-1", PingStatus::Occupied);
            state.ping_acked("arena", "arena-1", PingStatus::Occupied);
        }
        runtime
            .delete_room("arena", "arena-1", RemovalReason::ScaleDown)
            .await
            .expect("deleted");
        let violations = world.state().violations.clone();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].contains("busy room arena/arena-1"),
            "{violations:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_ready_ping_maestro_may_have_had_frees_the_room() {
        let (world, runtime) = world_with_a_room().await;
        {
            let mut state = world.state();
            state.ping_sent("arena", "arena-1", PingStatus::Occupied);
            state.ping_acked("arena", "arena-1", PingStatus::Occupied);
            // Sent, its answer not back yet: maestro may act on it.
            state.ping_sent("arena", "arena-1", PingStatus::Ready);
        }
        runtime
            .delete_room("arena", "arena-1", RemovalReason::RollingUpdateReplace)
            .await
            .expect("deleted");
        assert!(world.state().violations.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_room_occupied_before_a_restart_is_not_held_against_the_next_process() {
        let (world, runtime) = world_with_a_room().await;
        {
            let mut state = world.state();
            state.ping_sent("arena", "arena-1", PingStatus::Occupied);
            state.ping_acked("arena", "arena-1", PingStatus::Occupied);
            // A ping is soft state: the next process may not have it.
            state.serve("maestro", 2);
        }
        runtime
            .delete_room("arena", "arena-1", RemovalReason::ScaleDown)
            .await
            .expect("deleted");
        assert!(world.state().violations.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_room_allocated_again_within_its_ttl_is_a_violation_across_restarts() {
        let (world, _runtime) = world_with_a_room().await;
        let mut state = world.state();
        state.allocation_answered("arena", "arena-1");
        assert!(state.violations.is_empty(), "the first allocation is fine");
        assert!(state.cluster().in_match("arena", "arena-1"));
        // An allocation is durable: a restart does not excuse a second one.
        state.serve("maestro", 2);
        state.advance_to(Duration::from_secs(10));
        state.allocation_answered("arena", "arena-1");
        assert_eq!(state.violations.len(), 1, "{:?}", state.violations);
        assert!(state.violations[0].contains("second match"));
    }

    #[tokio::test(start_paused = true)]
    async fn events_must_all_arrive_in_the_order_acknowledged() {
        let (world, _runtime) = world_with_a_room().await;
        let mut state = world.state();
        for seq in [1, 2, 3] {
            state.event_acked("arena", "arena-1", seq);
        }
        state.event_received("arena-1", 1);
        state.event_received("arena-1", 3);
        state.event_received("arena-1", 1); // again: at least once
        assert_eq!(state.missing_events(), 1);
        state.check_events();
        let violations = state.violations.clone();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].contains("[2]"), "{violations:?}");
        state.event_received("arena-1", 2);
        state.violations.clear();
        state.check_events();
        assert_eq!(
            state.violations.len(),
            1,
            "2 came after 3: {:?}",
            state.violations
        );
        assert!(state.violations[0].contains("out of order"));
        // A deletion before an acknowledgement (the scheduler was created
        // again) excuses nothing; one after it takes the event along.
        let before = state.now();
        state.deleted_at.insert("arena".to_string(), before);
        state.advance_to(Duration::from_secs(2));
        state.event_acked("arena", "arena-1", 4);
        assert_eq!(state.missing_events(), 1);
        state.advance_to(Duration::from_secs(3));
        let now = state.now();
        state.deleted_at.insert("arena".to_string(), now);
        assert_eq!(state.missing_events(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deposed_leader_must_stop_within_the_grace() {
        let (world, _runtime) = world_with_a_room().await;
        let mut state = world.state();
        state.serve("maestro-a", 2);
        state.serve("maestro-b", 3);
        state.advance_to(Duration::from_secs(5));
        state.check_deposed(Millis::from_secs(6));
        assert!(state.violations.is_empty(), "within the grace");
        state.advance_to(Duration::from_secs(8));
        state.check_deposed(Millis::from_secs(6));
        assert_eq!(state.violations.len(), 2, "{:?}", state.violations);
        assert!(
            state
                .violations
                .iter()
                .any(|v| v.contains("maestro 2 on maestro-a"))
        );
        state.violations.clear();
        // One that stops in time is fine.
        state.serve("maestro-a", 4);
        state.exit("maestro-b");
        state.advance_to(Duration::from_secs(20));
        state.check_deposed(Millis::from_secs(6));
        assert!(state.violations.is_empty(), "{:?}", state.violations);
    }
}
