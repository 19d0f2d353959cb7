//! The one simulated cluster: pods on nodes, and the game servers in them.
//!
//! A sans-IO state machine, like the engine: the caller gives it the time
//! with every call ([`Cluster::advance`], [`Cluster::create_pod`], …) and
//! takes what it produced with [`Cluster::poll_output`]: instance events
//! for maestro's watch, pings for the Rooms API, and with
//! [`Pings::Reported`] liveness reports. It owns a seeded RNG,
//! so a run is a function of its seed and its inputs. The same model
//! serves the capacity planner and the property tests (virtual time, see
//! [`crate::Harness`]) and `maestro start all` (real time, a thin shell in
//! the binary).
//!
//! A game server learns of its allocation as a real one does, by being
//! told ([`Cluster::allocated`], the matchmaker's message), never by
//! polling maestro.
//!
//! Ping elision ([`Pings::Elided`]): a ping that changes nothing moves the
//! room's last-ping time, which the engine reads to expire a room silent
//! for longer than the ping timeout (and it lets the engine read the room's
//! status again, see the conditions below). The
//! elided mode delivers an unchanged ping at least every `refresh` (on the
//! room's own cadence), every status change at once, and always the ping
//! of the tick at which a game server falls silent (crashes happen right
//! after a tick). So whether a room has been silent longer than the ping
//! timeout is, at every instant, the same as with every ping delivered,
//! provided `refresh + ping_interval` is below the timeout. A test that
//! silences a server at an arbitrary time ([`Cluster::set_behaviour`])
//! gets that exactness only with [`Pings::Every`] or [`Pings::Reported`].
//!
//! Pings reported ([`Pings::Reported`], the planner's): status changes
//! only, and [`Output::Liveness`] when a game server's pings become steady
//! and when they stop, with its last ping's time, which the shell hands to
//! [`maestro_engine::Engine::handle_liveness`]. No unchanged ping is sent
//! at all, and the engine's ping timeout comes out the same (see
//! docs/ARCHITECTURE.md, "Pings reported").
//!
//! Both modes make the engine decide as with every ping delivered under
//! three conditions, which the planner ensures: the ping and deletion
//! timeouts are longer than the ping interval (elided: than `refresh` plus
//! the interval); every game server given a match takes it (an unchanged
//! ping also makes the engine read the room's status again, which turns an
//! allocated room that never became occupied back to ready once the
//! allocation TTL is over; the planner stops with an error when a server
//! cannot take its match); and the engine refuses no ping (a refused
//! status change is not sent again until the next one).

mod nodes;
mod timers;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use maestro_engine::id_index::IdIndex;
use maestro_engine::room::{Address, AddressPort, HostPort, InstanceStatus, PingStatus};
use maestro_engine::scheduler::Scheduler;
use maestro_engine::scheduler::quantity::parse_quantity;
use maestro_engine::{
    InstanceEvent, InstanceEventKind, Liveness, Millis, Ping, PingStream, RuntimeError,
    RuntimeErrorKind, Time,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smallvec::SmallVec;
use smol_str::SmolStr;
use timers::Timers;

use crate::dist::Distribution;
use nodes::Nodes;
pub use nodes::{NodeAutoscale, NodeId, NodePool};

/// How the simulated cluster and its game servers behave.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Seed of the cluster's own RNG (latencies, failures, match lengths).
    pub seed: u64,
    /// Latency of the answer to every runtime call, for shells in virtual
    /// time (a real-time shell pays its own).
    pub api_latency: Millis,
    /// From a pod placed on a node to its game server running.
    pub start_latency: Distribution,
    /// From the game server running to its first ping.
    pub boot_delay: Millis,
    /// Every game server's ping cadence.
    pub ping_interval: Millis,
    pub pings: Pings,
    /// From a pod delete to the pod being gone.
    pub delete_latency: Distribution,
    /// A match's length when whoever allocated the room does not say.
    pub match_duration: Distribution,
    /// A game server exits after hosting this many matches.
    pub terminate_after_matches: Option<u32>,
    /// `None`: capacity without limit, every pod is placed at once.
    pub nodes: Option<NodePool>,
    pub failures: Failures,
    /// Pods the cluster holds at most; creations beyond are refused.
    pub max_pods: usize,
    /// The rooms' host when there is no node pool.
    pub host: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            seed: 0,
            api_latency: Millis(1),
            start_latency: Distribution::Fixed(Millis(500)),
            boot_delay: Millis(500),
            ping_interval: Millis::from_secs(10),
            pings: Pings::Every,
            delete_latency: Distribution::Fixed(Millis(1_000)),
            match_duration: Distribution::Fixed(Millis::from_secs(60)),
            terminate_after_matches: None,
            nodes: None,
            failures: Failures::default(),
            max_pods: 1_000_000,
            host: "127.0.0.1".to_string(),
        }
    }
}

/// Which pings reach maestro (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pings {
    /// Every ping of every game server.
    Every,
    /// Status changes, and an unchanged ping at least every `refresh`.
    Elided { refresh: Millis },
    /// Status changes only, and each game server's pings reported steady
    /// when it starts pinging and stopped, with its last ping's time, when
    /// it falls silent ([`Output::Liveness`]). Only a shell that hands the
    /// engine those reports ([`maestro_engine::Engine::handle_liveness`])
    /// can use it: the planner's harness.
    Reported,
}

/// Failure rates. Zero turns a failure off.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Failures {
    /// Crashes per running game server per hour.
    pub pod_crash_per_hour: f64,
    /// Losses per node per hour (with a node pool).
    pub node_loss_per_hour: f64,
    /// The share of create and delete calls the API server refuses
    /// (conflict, rate limit or unavailable, drawn evenly).
    pub api_error_rate: f64,
}

/// What a pod needs to exist: its identity, requests and ports. The names
/// are held inline when short, so the pings and events a pod sends copy
/// them from the pod's own record.
#[derive(Clone, Debug, PartialEq)]
pub struct PodSpec {
    pub scheduler: SmolStr,
    pub room: SmolStr,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub ports: Vec<AddressPort>,
    /// Matches the game server hosts at once (`maxMatches`).
    pub max_matches: u32,
}

impl PodSpec {
    /// The pod of a room of `spec` with the host ports the engine drew
    /// for it: the sum of its containers' requests (an unparsable request
    /// counts as zero, as validation refuses it before a room exists).
    pub fn for_room(spec: &Scheduler, room: &str, host_ports: &[HostPort]) -> PodSpec {
        let ports = host_ports
            .iter()
            .map(|p| AddressPort {
                name: p.name.clone(),
                port: p.host_port,
                protocol: p.protocol.clone(),
            })
            .collect();
        let sum = |pick: fn(&maestro_engine::scheduler::Container) -> &str, unit: f64| {
            spec.spec
                .containers
                .iter()
                .filter_map(|c| parse_quantity(pick(c)).ok())
                .map(|q| (q.value() * unit).ceil() as u64)
                .sum::<u64>()
        };
        PodSpec {
            scheduler: SmolStr::new(&spec.name),
            room: SmolStr::new(room),
            cpu_millis: sum(|c| &c.requests.cpu, 1_000.0),
            memory_bytes: sum(|c| &c.requests.memory, 1.0),
            ports,
            max_matches: u32::try_from(spec.match_allocation.max_matches.max(1)).unwrap_or(1),
        }
    }
}

/// What a game server reports when a test overrides it. A status of
/// `PingStatus::Unknown` makes it silent (a hung game server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomBehaviour {
    pub status: PingStatus,
    pub running_matches: u64,
}

/// What the cluster produced, for the shell to deliver.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// For the pod watch of the room's scheduler.
    Instance(InstanceEvent),
    /// A game server's ping, for the Rooms API.
    Ping(Ping),
    /// With [`Pings::Reported`]: a game server's pings became steady, or stopped.
    Liveness(Liveness),
}

/// Counters and time integrals of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterStats {
    pub pods_created: u64,
    pub pods_deleted: u64,
    pub pods_crashed: u64,
    pub pods_lost_with_nodes: u64,
    pub pings: u64,
    pub matches_started: u64,
    pub matches_finished: u64,
    /// Matches cut short because maestro deleted their room. Must stay 0.
    pub matches_interrupted_by_deletion: u64,
    /// Pods maestro deleted while they hosted a match. Must stay 0.
    pub occupied_pods_deleted: u64,
    /// Matches cut short by a crash or a node loss.
    pub matches_interrupted_by_failure: u64,
    pub api_errors: u64,
    pub nodes_added: u64,
    pub nodes_removed: u64,
    pub nodes_lost: u64,
    /// Milliseconds of pods placed on a node, summed over pods.
    pub pod_ms: u128,
    /// Milliseconds of nodes, summed over nodes.
    pub node_ms: u128,
    pub peak_pods: u64,
    pub peak_nodes: u64,
}

/// Pods by phase, and nodes, now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Waiting for a node.
    pub pending: u64,
    /// Placed, the game server not running yet.
    pub starting: u64,
    pub running: u64,
    /// Running game servers hosting at least one match.
    pub in_match: u64,
    pub crashed: u64,
    pub deleting: u64,
    pub nodes: u64,
}

type PodId = u64;

/// The most pings `Cluster::recycle` keeps (a caller hands each back
/// before the next is made, so one or two are in use).
const MAX_SPARE_PINGS: usize = 16;

/// The farthest a crash timer is set ahead (see `Cluster::arm_crash`).
const CRASH_STEP: Millis = Millis(3_600_000);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Pending,
    Starting,
    Running,
    Crashed,
    Deleting,
}

#[derive(Clone, Debug)]
struct Pod {
    spec: PodSpec,
    phase: Phase,
    /// Placed (on a node of the pool, or anywhere without one).
    placed: bool,
    /// When it was created: pending pods wait from then.
    created: Time,
    node: Option<NodeId>,
    /// When the game server booted: its pings fall on `booted + k * interval`.
    booted: Option<Time>,
    /// When it will crash, if it does.
    crash_at: Option<Time>,
    last_ping: Option<Time>,
    /// With [`Pings::Reported`]: maestro was told its pings are steady
    /// (and not yet that they stopped).
    steady: bool,
    /// With [`Pings::Reported`]: maestro restarted and has not heard from
    /// this server since; its pings up to the next tick are ones maestro
    /// would have had, so a stop before then is still reported.
    announcing: bool,
    /// End times of the matches it hosts, earliest first: in the pod's
    /// record up to two (most game servers host one), so ending a match
    /// reads no other memory.
    matches: SmallVec<[Time; 2]>,
    played: u32,
    behaviour: Option<RoomBehaviour>,
}

impl Pod {
    fn in_match(&self) -> bool {
        !self.matches.is_empty()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Running(PodId),
    Booted(PodId),
    Ping(PodId),
    MatchEnd(PodId),
    Crash(PodId),
    Gone(PodId),
    NodeLoss(NodeId),
    Nodes,
}

pub struct Cluster {
    config: ClusterConfig,
    rng: ChaCha8Rng,
    now: Time,
    /// Fired in time order, equal times in the order set (`timers.rs`).
    timers: Timers<Timer>,
    next_pod: PodId,
    /// Pods by id, looked up on every timer and allocation (hashed: never
    /// iterated; what walks the pods walks `pod_ids`).
    pods: IdIndex<PodId, Pod>,
    /// The ids of `pods`, in creation order.
    pod_ids: BTreeSet<PodId>,
    /// Pods by scheduler, then room: looked up by borrowed names, on
    /// every pod event and allocation (hashed: never iterated; what lists
    /// a scheduler's pods walks `pod_ids` and sorts, see `named`). A short
    /// room name is held inline, so a lookup compares it where it is (as
    /// the engine's fleet does).
    by_name: BTreeMap<String, IdIndex<SmolStr, PodId>>,
    /// Pods waiting for a node, in creation order.
    pending: BTreeSet<PodId>,
    nodes: Option<Nodes>,
    /// The node autoscaler's next look, if one is set.
    nodes_check: Option<Time>,
    outputs: VecDeque<Output>,
    /// Pings handed back by `recycle`, for their buffers.
    spare_pings: Vec<Ping>,
    stats: ClusterStats,
    placed: u64,
}

impl Cluster {
    pub fn new(mut config: ClusterConfig, now: Time) -> Cluster {
        // Zero intervals would fire timers without moving time.
        config.ping_interval = config.ping_interval.max(Millis(1));
        if config.pings
            == (Pings::Elided {
                refresh: Millis::ZERO,
            })
        {
            config.pings = Pings::Every;
        }
        let nodes = config.nodes.clone().map(|pool| Nodes::new(pool, now));
        let mut cluster = Cluster {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            now,
            timers: Timers::new(),
            next_pod: 0,
            pods: IdIndex::new(),
            pod_ids: BTreeSet::new(),
            by_name: BTreeMap::new(),
            pending: BTreeSet::new(),
            nodes,
            nodes_check: None,
            outputs: VecDeque::new(),
            spare_pings: Vec::new(),
            stats: ClusterStats::default(),
            placed: 0,
        };
        let ids: Vec<NodeId> = cluster
            .nodes
            .as_ref()
            .map(|n| n.nodes.keys().copied().collect())
            .unwrap_or_default();
        for id in ids {
            cluster.arm_node_loss(id);
        }
        cluster.stats.peak_nodes = cluster.node_count();
        cluster
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn stats(&self) -> &ClusterStats {
        &self.stats
    }

    /// Peaks count from now on (the planner's warm-up is not reported).
    pub fn reset_peaks(&mut self) {
        self.stats.peak_pods = self.pods.len() as u64;
        self.stats.peak_nodes = self.node_count();
    }

    /// The next output, in the order produced.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Cluster::advance`] has something to do next.
    pub fn next_timeout(&self) -> Option<Time> {
        self.timers.next_at()
    }

    /// Moves the clock to `now` (never back), firing every timer due.
    pub fn advance(&mut self, now: Time) {
        while let Some((at, timer)) = self.timers.pop_due(now) {
            self.tick(at);
            self.fire(timer);
        }
        self.tick(now);
    }

    /// Creates a room's pod. It waits for a node, starts, and its game
    /// server pings once booted.
    pub fn create_pod(&mut self, now: Time, spec: PodSpec) -> Result<(), RuntimeError> {
        self.advance(now);
        self.api_error("create", &spec.room)?;
        if self.pod_id(&spec.scheduler, &spec.room).is_some() {
            return Err(RuntimeError::new(
                RuntimeErrorKind::AlreadyExists,
                format!("pod {} exists", spec.room),
            ));
        }
        if self.pods.len() >= self.config.max_pods {
            return Err(RuntimeError::new(
                RuntimeErrorKind::Unavailable,
                format!("the simulated cluster is full ({} pods)", self.pods.len()),
            ));
        }
        if let Some(nodes) = &self.nodes
            && !nodes.fits_any_node(spec.cpu_millis, spec.memory_bytes)
        {
            return Err(RuntimeError::new(
                RuntimeErrorKind::Invalid,
                format!(
                    "pod {} requests {}m CPU and {} bytes, more than a node has",
                    spec.room, spec.cpu_millis, spec.memory_bytes
                ),
            ));
        }
        let id = self.next_pod;
        self.next_pod += 1;
        self.by_name
            .entry(spec.scheduler.to_string())
            .or_default()
            .insert(spec.room.clone(), id);
        self.outputs.push_back(Output::Instance(instance(
            &spec,
            InstanceEventKind::Upsert,
            InstanceStatus::Pending,
            None,
        )));
        self.pod_ids.insert(id);
        self.pods.insert(
            id,
            Pod {
                spec,
                phase: Phase::Pending,
                placed: false,
                created: self.now,
                node: None,
                booted: None,
                crash_at: None,
                last_ping: None,
                steady: false,
                announcing: false,
                matches: SmallVec::new(),
                played: 0,
                behaviour: None,
            },
        );
        self.stats.pods_created += 1;
        self.stats.peak_pods = self.stats.peak_pods.max(self.pods.len() as u64);
        self.pending.insert(id);
        self.place_pending();
        Ok(())
    }

    /// Deletes a room's pod: it terminates at once and is gone after the
    /// deletion latency. Deleting a pod already deleting succeeds.
    pub fn delete_pod(
        &mut self,
        now: Time,
        scheduler: &str,
        room: &str,
    ) -> Result<(), RuntimeError> {
        self.advance(now);
        self.api_error("delete", room)?;
        let Some(id) = self.pod_id(scheduler, room) else {
            return Err(RuntimeError::new(
                RuntimeErrorKind::NotFound,
                format!("pod {room} not found"),
            ));
        };
        self.start_deletion(id);
        Ok(())
    }

    /// Deletes every pod of a scheduler (its namespace going away).
    pub fn delete_scheduler(&mut self, now: Time, scheduler: &str) {
        self.advance(now);
        let ids: Vec<PodId> = self
            .named(scheduler)
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        for id in ids {
            self.start_deletion(id);
        }
    }

    /// The game server is told it was allocated: it starts a match lasting
    /// `duration` (or one drawn from the configured distribution) and
    /// reports it at once. False if it cannot host one now.
    pub fn allocated(
        &mut self,
        now: Time,
        scheduler: &str,
        room: &str,
        duration: Option<Millis>,
    ) -> bool {
        self.advance(now);
        let Some(id) = self.pod_id(scheduler, room) else {
            return false;
        };
        let duration = duration.unwrap_or_else(|| self.config.match_duration.sample(&mut self.rng));
        let end = now + duration.max(Millis(1));
        let Some(pod) = self.pods.get_mut(&id) else {
            return false;
        };
        let spent = self
            .config
            .terminate_after_matches
            .is_some_and(|n| pod.played as usize + pod.matches.len() >= n as usize);
        if pod.phase != Phase::Running
            || pod.booted.is_none()
            || pod.matches.len() >= pod.spec.max_matches as usize
            || spent
        {
            return false;
        }
        let at = pod.matches.partition_point(|t| *t <= end);
        pod.matches.insert(at, end);
        self.stats.matches_started += 1;
        self.set_timer(end, Timer::MatchEnd(id));
        self.ping(id);
        true
    }

    /// Overrides what a game server reports (`None`: back to its own
    /// behaviour) and pings at once, as a game server reports a change.
    pub fn set_behaviour(
        &mut self,
        now: Time,
        scheduler: &str,
        room: &str,
        behaviour: Option<RoomBehaviour>,
    ) {
        self.advance(now);
        let Some(id) = self.pod_id(scheduler, room) else {
            return;
        };
        if let Some(pod) = self.pods.get_mut(&id) {
            pod.behaviour = behaviour;
            if pod.phase == Phase::Running && pod.booted.is_some() {
                self.ping(id);
                self.report_liveness(id);
            }
        }
    }

    /// The pods of a scheduler that are not being deleted, as a watch's
    /// relist sees them: `(room, status, address)`.
    pub fn list(&self, scheduler: &str) -> Vec<InstanceEvent> {
        self.named(scheduler)
            .into_iter()
            .filter_map(|(_, id)| self.pods.get(&id))
            .filter(|pod| pod.phase != Phase::Deleting)
            .map(|pod| {
                let (status, address) = match pod.phase {
                    Phase::Pending | Phase::Starting => (InstanceStatus::Pending, None),
                    Phase::Running => (InstanceStatus::Ready, Some(self.address(pod))),
                    Phase::Crashed => (InstanceStatus::Error, Some(self.address(pod))),
                    Phase::Deleting => (InstanceStatus::Terminating, None),
                };
                instance(&pod.spec, InstanceEventKind::Upsert, status, address)
            })
            .collect()
    }

    /// What a watch reports, on a relist, for a room the caller knows and
    /// the cluster has no pod of: it is gone.
    pub fn gone(scheduler: &str, room: &str) -> InstanceEvent {
        InstanceEvent {
            scheduler: scheduler.to_string(),
            room: room.to_string(),
            kind: InstanceEventKind::Deleted,
            status: InstanceStatus::Terminating,
            description: String::new(),
            address: None,
            version: None,
        }
    }

    /// Failures stop: no pod crashes, node losses or API errors from now
    /// on (crashes already drawn are called off). The chaos harness calls
    /// it when its fault phase ends, to check that maestro then converges.
    pub fn calm(&mut self, now: Time) {
        self.advance(now);
        self.config.failures = Failures::default();
        for id in &self.pod_ids {
            if let Some(pod) = self.pods.get_mut(id) {
                pod.crash_at = None;
            }
        }
    }

    /// Whether the pod exists (deleting ones included).
    pub fn has_pod(&self, scheduler: &str, room: &str) -> bool {
        self.pod_id(scheduler, room).is_some()
    }

    /// Pods of a scheduler, deleting ones included.
    pub fn pod_count(&self, scheduler: &str) -> usize {
        self.by_name.get(scheduler).map_or(0, IdIndex::len)
    }

    /// Whether the room's game server runs: its pod started and has neither
    /// crashed nor been deleted.
    pub fn is_running(&self, scheduler: &str, room: &str) -> bool {
        self.pod_id(scheduler, room)
            .and_then(|id| self.pods.get(&id))
            .is_some_and(|pod| pod.phase == Phase::Running)
    }

    /// Whether the room's game server is hosting a match.
    pub fn in_match(&self, scheduler: &str, room: &str) -> bool {
        self.pod_id(scheduler, room)
            .and_then(|id| self.pods.get(&id))
            .is_some_and(Pod::in_match)
    }

    /// Pods waiting for a node, and nodes: what the planner samples every
    /// simulated minute, without the pass over every pod [`Cluster::counts`] makes.
    pub fn pending_and_nodes(&self) -> (u64, u64) {
        (self.pending.len() as u64, self.node_count())
    }

    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            nodes: self.node_count(),
            ..Counts::default()
        };
        for (_, pod) in self.all_pods() {
            match pod.phase {
                Phase::Pending => counts.pending += 1,
                Phase::Starting => counts.starting += 1,
                Phase::Running => {
                    counts.running += 1;
                    if pod.in_match() {
                        counts.in_match += 1;
                    }
                }
                Phase::Crashed => counts.crashed += 1,
                Phase::Deleting => counts.deleting += 1,
            }
        }
        counts
    }

    /// Audits every index from scratch.
    pub fn check_consistency(&self) -> Result<(), String> {
        let names: usize = self.by_name.values().map(IdIndex::len).sum();
        if names != self.pods.len() {
            return Err(format!("{names} names for {} pods", self.pods.len()));
        }
        if self.by_name.values().any(IdIndex::is_empty) {
            return Err("a scheduler without pods is still indexed".to_string());
        }
        if self.pod_ids.len() != self.pods.len() {
            return Err(format!(
                "{} pod ids for {} pods",
                self.pod_ids.len(),
                self.pods.len()
            ));
        }
        for id in &self.pod_ids {
            let id = *id;
            let Some(pod) = self.pods.get(&id) else {
                return Err(format!("pod {id} listed but not held"));
            };
            let room = &pod.spec.room;
            if self.pod_id(&pod.spec.scheduler, room) != Some(id) {
                return Err(format!("pod {id} is not indexed under its name {room}"));
            }
            if (pod.phase == Phase::Pending) != self.pending.contains(&id) {
                return Err(format!("pod {room}: pending index is stale"));
            }
            if pod.matches.len() > pod.spec.max_matches as usize {
                return Err(format!("pod {room} hosts {} matches", pod.matches.len()));
            }
        }
        let placed = self.all_pods().filter(|(_, p)| p.placed).count() as u64;
        if placed != self.placed {
            return Err(format!("{placed} pods placed, {} counted", self.placed));
        }
        if let Some(nodes) = &self.nodes {
            nodes.check()?;
            let mut on_node: BTreeMap<NodeId, u32> = BTreeMap::new();
            for (_, pod) in self.all_pods() {
                if let Some(node) = pod.node {
                    *on_node.entry(node).or_default() += 1;
                }
            }
            for (id, node) in &nodes.nodes {
                let counted = on_node.get(id).copied().unwrap_or(0);
                if counted != node.pods {
                    return Err(format!(
                        "node {id} counts {} pods, holds {counted}",
                        node.pods
                    ));
                }
            }
        }
        Ok(())
    }

    fn node_count(&self) -> u64 {
        self.nodes.as_ref().map_or(0, |n| n.len() as u64)
    }

    fn pod_id(&self, scheduler: &str, room: &str) -> Option<PodId> {
        self.by_name.get(scheduler)?.get(room).copied()
    }

    /// Every pod, in creation order.
    fn all_pods(&self) -> impl Iterator<Item = (PodId, &Pod)> {
        self.pod_ids
            .iter()
            .filter_map(|id| self.pods.get(id).map(|pod| (*id, pod)))
    }

    /// A scheduler's pods as `(room, pod)`, in room order: a walk over
    /// every pod, for what is rare (a scheduler deleted, a relist).
    fn named(&self, scheduler: &str) -> Vec<(&str, PodId)> {
        let mut named: Vec<(&str, PodId)> = self
            .all_pods()
            .filter(|(_, pod)| pod.spec.scheduler == scheduler)
            .map(|(id, pod)| (pod.spec.room.as_str(), id))
            .collect();
        named.sort_unstable();
        named
    }

    fn api_error(&mut self, call: &str, room: &str) -> Result<(), RuntimeError> {
        let rate = self.config.failures.api_error_rate;
        if rate <= 0.0 || !self.rng.random_bool(rate.min(1.0)) {
            return Ok(());
        }
        self.stats.api_errors += 1;
        let kind = match self.rng.random_range(0..3) {
            0 => RuntimeErrorKind::Conflict,
            1 => RuntimeErrorKind::RateLimited,
            _ => RuntimeErrorKind::Unavailable,
        };
        Err(RuntimeError::new(
            kind,
            format!("simulated API error on {call} {room}"),
        ))
    }

    /// Integrates the pod and node counts up to `now`.
    fn tick(&mut self, now: Time) {
        if now <= self.now {
            return;
        }
        let elapsed = u128::from(now.since(self.now).0);
        self.stats.pod_ms += elapsed * u128::from(self.placed);
        self.stats.node_ms += elapsed * u128::from(self.node_count());
        self.now = now;
    }

    fn set_timer(&mut self, at: Time, timer: Timer) {
        self.timers.set(at.max(self.now), timer);
    }

    fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::Running(id) => self.on_running(id),
            Timer::Booted(id) => self.on_booted(id),
            Timer::Ping(id) => self.on_ping_timer(id),
            Timer::MatchEnd(id) => self.on_match_end(id),
            Timer::Crash(id) => self.on_crash(id),
            Timer::Gone(id) => self.on_gone(id),
            Timer::NodeLoss(node) => self.on_node_loss(node),
            Timer::Nodes => self.on_nodes_check(),
        }
    }

    fn address(&self, pod: &Pod) -> Address {
        let host = match (&self.nodes, pod.node) {
            (Some(_), Some(node)) => format!("node-{node}.sim"),
            _ => self.config.host.clone(),
        };
        Address {
            host,
            ports: pod.spec.ports.clone(),
        }
    }

    fn place_pending(&mut self) {
        let ids: Vec<PodId> = self.pending.iter().copied().collect();
        let mut unplaced = false;
        for id in ids {
            let Some(pod) = self.pods.get(&id) else {
                continue;
            };
            let (cpu, memory) = (pod.spec.cpu_millis, pod.spec.memory_bytes);
            let node = match &mut self.nodes {
                None => None,
                Some(nodes) => match nodes.place(cpu, memory) {
                    Some(node) => Some(node),
                    None => {
                        unplaced = true;
                        continue;
                    }
                },
            };
            self.pending.remove(&id);
            self.placed += 1;
            if let Some(pod) = self.pods.get_mut(&id) {
                pod.node = node;
                pod.placed = true;
                pod.phase = Phase::Starting;
            }
            let latency = self.config.start_latency.sample(&mut self.rng);
            self.set_timer(self.now + latency, Timer::Running(id));
        }
        if unplaced {
            self.arm_nodes_check();
        }
    }

    /// Sets the node autoscaler's next look: when the oldest pending pod
    /// has waited long enough, or the first empty node may go.
    fn arm_nodes_check(&mut self) {
        let Some(nodes) = &self.nodes else {
            return;
        };
        let Some(autoscale) = nodes.pool.autoscale.clone() else {
            return;
        };
        // Pods pend in creation order: the first waited longest.
        // A pool at its maximum waits for room instead (a pod going or a
        // node lost arms the check again).
        let oldest_pending = self
            .pending
            .first()
            .and_then(|id| self.pods.get(id))
            .filter(|_| nodes.can_grow())
            .map(|pod| (pod.created + autoscale.add_after).max(self.now + Millis(1)));
        let idle = nodes.next_idle(autoscale.remove_after_empty);
        let next = match (oldest_pending, idle) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return,
            },
        };
        if self.nodes_check.is_none_or(|t| t > next || t < self.now) {
            self.nodes_check = Some(next);
            self.set_timer(next, Timer::Nodes);
        }
    }

    fn on_nodes_check(&mut self) {
        if self.nodes_check.is_some_and(|t| t > self.now) {
            return;
        }
        self.nodes_check = None;
        let Some(nodes) = &mut self.nodes else {
            return;
        };
        let Some(autoscale) = nodes.pool.autoscale.clone() else {
            return;
        };
        // Enough new nodes for the pods that have waited `add_after`, by
        // total requests.
        let waited = Time(self.now.0.saturating_sub(autoscale.add_after.0));
        let overdue: Vec<&Pod> = self
            .pending
            .iter()
            .filter_map(|id| self.pods.get(id))
            .filter(|pod| pod.created <= waited)
            .collect();
        if !overdue.is_empty() {
            let (mut cpu, mut memory) = (0u64, 0u64);
            for pod in overdue {
                cpu = cpu.saturating_add(pod.spec.cpu_millis);
                memory = memory.saturating_add(pod.spec.memory_bytes);
            }
            let by_cpu = cpu.div_ceil(nodes.pool.cpu_millis.max(1));
            let by_memory = memory.div_ceil(nodes.pool.memory_bytes.max(1));
            let wanted = by_cpu.max(by_memory).max(1);
            let mut added = Vec::new();
            for _ in 0..wanted {
                match nodes.add(self.now) {
                    Some(id) => added.push(id),
                    None => break,
                }
            }
            self.stats.nodes_added += added.len() as u64;
            for id in added {
                self.arm_node_loss(id);
            }
        }
        // New nodes take their pods before any idle node is looked at.
        self.place_pending();
        let Some(nodes) = &mut self.nodes else {
            return;
        };
        if self.now.0 >= autoscale.remove_after_empty.0 {
            let idle = nodes.idle_since(self.now - autoscale.remove_after_empty);
            self.stats.nodes_removed += idle.len() as u64;
            for id in idle {
                nodes.remove(id);
            }
        }
        self.stats.peak_nodes = self.stats.peak_nodes.max(self.node_count());
        self.place_pending();
        self.arm_nodes_check();
    }

    fn arm_node_loss(&mut self, node: NodeId) {
        let rate = self.config.failures.node_loss_per_hour;
        if let Some(after) = exponential(&mut self.rng, rate) {
            self.set_timer(self.now + after, Timer::NodeLoss(node));
        }
    }

    fn on_node_loss(&mut self, node: NodeId) {
        if self.config.failures.node_loss_per_hour <= 0.0 {
            // Called off by `calm`.
            return;
        }
        let Some(nodes) = &mut self.nodes else {
            return;
        };
        if !nodes.nodes.contains_key(&node) {
            return;
        }
        nodes.remove(node);
        self.stats.nodes_lost += 1;
        let lost: Vec<PodId> = self
            .all_pods()
            .filter(|(_, p)| p.node == Some(node))
            .map(|(id, _)| id)
            .collect();
        for id in lost {
            if let Some(pod) = self.pods.get_mut(&id) {
                // The node's resources went with it.
                pod.node = None;
                pod.placed = false;
                self.placed -= 1;
                if pod.phase != Phase::Deleting {
                    self.stats.matches_interrupted_by_failure += pod.matches.len() as u64;
                    self.stats.pods_lost_with_nodes += 1;
                }
            }
            self.remove_pod(id);
        }
        // A cloud pool replaces a lost node (the autoscaler's job with one).
        if self
            .nodes
            .as_ref()
            .is_some_and(|n| n.pool.autoscale.is_none())
            && let Some(nodes) = &mut self.nodes
            && let Some(id) = nodes.add(self.now)
        {
            self.stats.nodes_added += 1;
            self.arm_node_loss(id);
        }
        self.place_pending();
        self.arm_nodes_check();
    }

    fn on_running(&mut self, id: PodId) {
        let Some(pod) = self.pods.get_mut(&id) else {
            return;
        };
        if pod.phase != Phase::Starting {
            return;
        }
        pod.phase = Phase::Running;
        let Some(pod) = self.pods.get(&id) else {
            return;
        };
        let address = self.address(pod);
        self.outputs.push_back(Output::Instance(instance(
            &pod.spec,
            InstanceEventKind::Upsert,
            InstanceStatus::Ready,
            Some(address),
        )));
        self.set_timer(self.now + self.config.boot_delay, Timer::Booted(id));
    }

    fn on_booted(&mut self, id: PodId) {
        let Some(pod) = self.pods.get_mut(&id) else {
            return;
        };
        if pod.phase != Phase::Running {
            return;
        }
        pod.booted = Some(self.now);
        self.ping(id);
        self.report_liveness(id);
        self.arm_ping(id);
        let rate = self.config.failures.pod_crash_per_hour;
        if let Some(after) = exponential(&mut self.rng, rate) {
            // Right after a ping tick (see the module documentation).
            let at = self.tick_at_or_after(id, self.now + after);
            if let Some(pod) = self.pods.get_mut(&id) {
                pod.crash_at = Some(at);
            }
            self.arm_crash(id, at);
        }
    }

    /// Sets the crash timer at most an hour ahead, so a deleted pod's
    /// crash does not sit among the timers for the rest of a long run.
    fn arm_crash(&mut self, id: PodId, at: Time) {
        let step = (self.now + CRASH_STEP).min(at);
        self.set_timer(step, Timer::Crash(id));
    }

    /// The pod's next ping tick at or after `t`.
    fn tick_at_or_after(&self, id: PodId, t: Time) -> Time {
        let Some(booted) = self.pods.get(&id).and_then(|p| p.booted) else {
            return t;
        };
        let interval = self.config.ping_interval.0.max(1);
        let since = t.0.saturating_sub(booted.0);
        Time(booted.0 + since.div_ceil(interval) * interval)
    }

    /// The pod's last ping tick at or before `t` (its boot at the earliest).
    fn tick_at_or_before(&self, id: PodId, t: Time) -> Time {
        let Some(booted) = self.pods.get(&id).and_then(|p| p.booted) else {
            return t;
        };
        let interval = self.config.ping_interval.0.max(1);
        let since = t.0.saturating_sub(booted.0);
        Time(booted.0 + since / interval * interval)
    }

    /// Sets the pod's next periodic ping.
    fn arm_ping(&mut self, id: PodId) {
        let Some(pod) = self.pods.get(&id) else {
            return;
        };
        // Never at or before now: a silent server (no ping sent) would
        // otherwise re-arm the timer it is firing.
        let after = match self.config.pings {
            Pings::Every => self.now + Millis(1),
            Pings::Elided { refresh } => {
                (pod.last_ping.unwrap_or(self.now) + refresh).max(self.now + Millis(1))
            }
            // Reported as steady: no periodic ping.
            Pings::Reported => return,
        };
        let at = self.tick_at_or_after(id, after);
        self.set_timer(at, Timer::Ping(id));
    }

    fn on_ping_timer(&mut self, id: PodId) {
        let Some(pod) = self.pods.get(&id) else {
            return;
        };
        if pod.phase != Phase::Running {
            return;
        }
        let due = match self.config.pings {
            Pings::Every | Pings::Reported => true,
            Pings::Elided { refresh } => pod.last_ping.is_none_or(|t| self.now >= t + refresh),
        };
        if due {
            self.ping(id);
        }
        self.report_liveness(id);
        self.arm_ping(id);
    }

    /// With [`Pings::Reported`], tells maestro when the game server's
    /// pings became steady or stopped since it was last told. A silent
    /// server's last ping is its last tick (crashes happen right after
    /// one, see the module documentation).
    fn report_liveness(&mut self, id: PodId) {
        if self.config.pings != Pings::Reported {
            return;
        }
        let last = self.tick_at_or_before(id, self.now);
        let Some(pod) = self.pods.get_mut(&id) else {
            return;
        };
        let pinging = pod.phase == Phase::Running
            && pod.booted.is_some()
            && pod
                .behaviour
                .is_none_or(|b| b.status != PingStatus::Unknown);
        let pings = if pinging {
            if pod.steady {
                return;
            }
            PingStream::Steady
        } else {
            // Maestro holds an older last ping than the server's if it was
            // told the pings are steady, or if it restarted since.
            if !pod.steady && !pod.announcing {
                return;
            }
            PingStream::Stopped {
                last: pod.last_ping.map_or(last, |t| t.max(last)),
            }
        };
        pod.steady = pinging;
        pod.announcing = false;
        self.outputs.push_back(Output::Liveness(Liveness {
            scheduler: pod.spec.scheduler.to_string(),
            room: pod.spec.room.to_string(),
            pings,
        }));
    }

    /// After a restart of maestro, each game server's next ping reaches
    /// the new process: with [`Pings::Reported`] none would otherwise
    /// come before a status change, so each running server is set to ping
    /// once at its next tick (and said steady again).
    pub fn announce(&mut self, now: Time) {
        self.advance(now);
        if self.config.pings != Pings::Reported {
            return;
        }
        let running: Vec<PodId> = self
            .all_pods()
            .filter(|(_, p)| p.phase == Phase::Running && p.booted.is_some())
            .map(|(id, _)| id)
            .collect();
        for id in running {
            if let Some(pod) = self.pods.get_mut(&id) {
                // The restored room is not steady (that is not stored).
                pod.steady = false;
                pod.announcing = true;
            }
            let at = self.tick_at_or_after(id, self.now + Millis(1));
            self.set_timer(at, Timer::Ping(id));
        }
    }

    /// The game server pings with what it hosts now.
    fn ping(&mut self, id: PodId) {
        let Some(pod) = self.pods.get_mut(&id) else {
            return;
        };
        let (status, running_matches) = match pod.behaviour {
            Some(b) => (b.status, b.running_matches),
            None if pod.in_match() => (PingStatus::Occupied, pod.matches.len() as u64),
            None => (PingStatus::Ready, 0),
        };
        if status == PingStatus::Unknown {
            return;
        }
        pod.last_ping = Some(self.now);
        self.stats.pings += 1;
        // A ping handed back (`Cluster::recycle`) lends its buffers.
        let mut ping = self.spare_pings.pop().unwrap_or_else(|| Ping {
            scheduler: String::new(),
            room: String::new(),
            status,
            running_matches,
            metadata_json: String::new(),
        });
        ping.scheduler.clear();
        ping.scheduler.push_str(&pod.spec.scheduler);
        ping.room.clear();
        ping.room.push_str(&pod.spec.room);
        ping.status = status;
        ping.running_matches = running_matches;
        ping.metadata_json.clear();
        self.outputs.push_back(Output::Ping(ping));
    }

    /// Takes back a ping the caller is done with, whose buffers the next
    /// pings reuse instead of allocating two names a ping (with every ping
    /// delivered, the planner bench went from 1.77 to 1.81 million room
    /// events a second). Keeps at most `MAX_SPARE_PINGS`.
    pub fn recycle(&mut self, ping: Ping) {
        if self.spare_pings.len() < MAX_SPARE_PINGS {
            self.spare_pings.push(ping);
        }
    }

    fn on_match_end(&mut self, id: PodId) {
        let now = self.now;
        let Some(pod) = self.pods.get_mut(&id) else {
            return;
        };
        if pod.phase != Phase::Running {
            return;
        }
        let ended = pod.matches.partition_point(|t| *t <= now);
        if ended == 0 {
            return;
        }
        pod.matches.drain(..ended);
        pod.played += ended as u32;
        self.stats.matches_finished += ended as u64;
        let done = self
            .config
            .terminate_after_matches
            .is_some_and(|n| pod.played >= n && pod.matches.is_empty());
        if done {
            // The game server reports its end and exits; the pod goes.
            pod.behaviour = Some(RoomBehaviour {
                status: PingStatus::Terminated,
                running_matches: 0,
            });
            self.ping(id);
            self.start_deletion(id);
        } else {
            self.ping(id);
        }
    }

    fn on_crash(&mut self, id: PodId) {
        let Some(pod) = self.pods.get(&id) else {
            return;
        };
        if pod.phase != Phase::Running {
            return;
        }
        match pod.crash_at {
            Some(at) if at > self.now => return self.arm_crash(id, at),
            Some(_) => {}
            None => return,
        }
        // Every ping delivered: the crash tick's ping was sent. Reported:
        // the stop report below carries it, unless maestro restarted and
        // has had no ping since (this is its first tick), as it would have.
        if pod.last_ping != Some(self.now)
            && (self.config.pings != Pings::Reported || pod.announcing)
        {
            self.ping(id);
        }
        let Some(address) = self.pods.get(&id).map(|pod| self.address(pod)) else {
            return;
        };
        let Some(pod) = self.pods.get_mut(&id) else {
            return;
        };
        pod.phase = Phase::Crashed;
        self.report_liveness(id);
        let Some(pod) = self.pods.get_mut(&id) else {
            return;
        };
        self.stats.pods_crashed += 1;
        self.stats.matches_interrupted_by_failure += pod.matches.len() as u64;
        pod.matches.clear();
        let event = instance(
            &pod.spec,
            InstanceEventKind::Upsert,
            InstanceStatus::Error,
            Some(address),
        );
        self.outputs.push_back(Output::Instance(event));
    }

    fn start_deletion(&mut self, id: PodId) {
        let Some(pod) = self.pods.get_mut(&id) else {
            return;
        };
        if pod.phase == Phase::Deleting {
            return;
        }
        if pod.in_match() {
            self.stats.matches_interrupted_by_deletion += pod.matches.len() as u64;
            self.stats.occupied_pods_deleted += 1;
        }
        pod.matches.clear();
        if pod.phase == Phase::Pending {
            self.pending.remove(&id);
        }
        pod.phase = Phase::Deleting;
        self.report_liveness(id);
        let Some(pod) = self.pods.get_mut(&id) else {
            return;
        };
        self.stats.pods_deleted += 1;
        let event = instance(
            &pod.spec,
            InstanceEventKind::Upsert,
            InstanceStatus::Terminating,
            None,
        );
        self.outputs.push_back(Output::Instance(event));
        let latency = self.config.delete_latency.sample(&mut self.rng);
        self.set_timer(self.now + latency, Timer::Gone(id));
    }

    fn on_gone(&mut self, id: PodId) {
        if self.pods.contains_key(&id) {
            self.remove_pod(id);
            self.place_pending();
            self.arm_nodes_check();
        }
    }

    /// The pod is gone: its node's resources are free, the watch hears it.
    fn remove_pod(&mut self, id: PodId) {
        let Some(pod) = self.pods.remove(&id) else {
            return;
        };
        self.pod_ids.remove(&id);
        if let Some(rooms) = self.by_name.get_mut(pod.spec.scheduler.as_str()) {
            rooms.remove(pod.spec.room.as_str());
            if rooms.is_empty() {
                self.by_name.remove(pod.spec.scheduler.as_str());
            }
        }
        self.pending.remove(&id);
        if pod.placed {
            self.placed -= 1;
        }
        if let (Some(node), Some(nodes)) = (pod.node, &mut self.nodes) {
            nodes.release(node, pod.spec.cpu_millis, pod.spec.memory_bytes, self.now);
        }
        self.outputs.push_back(Output::Instance(instance(
            &pod.spec,
            InstanceEventKind::Deleted,
            InstanceStatus::Terminating,
            None,
        )));
    }
}

/// A draw from an exponential distribution of `per_hour` events an hour;
/// `None` when the rate is zero.
fn exponential(rng: &mut ChaCha8Rng, per_hour: f64) -> Option<Millis> {
    if per_hour <= 0.0 || !per_hour.is_finite() {
        return None;
    }
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let hours = -u.ln() / per_hour;
    Some(Millis((hours * 3_600_000.0).min(1e15) as u64))
}

fn instance(
    spec: &PodSpec,
    kind: InstanceEventKind,
    status: InstanceStatus,
    address: Option<Address>,
) -> InstanceEvent {
    InstanceEvent {
        scheduler: spec.scheduler.to_string(),
        room: spec.room.to_string(),
        kind,
        status,
        description: String::new(),
        address,
        version: None,
    }
}

/// The scheduler the crate's tests start from: the engine's valid fixture
/// with a scheduler-wide port range and room-occupancy autoscaling.
#[cfg(test)]
pub(crate) fn test_scheduler(min: i64, max: i64, ready_target: f64) -> Scheduler {
    use maestro_engine::scheduler::{PortRange, fixtures};
    let mut s = fixtures::scheduler("arena");
    s.spec.version = String::new();
    s.spec.containers[0].ports[0].host_port_range = None;
    s.port_range = Some(PortRange {
        start: 20000,
        end: 21000,
    });
    s.autoscaling = Some(fixtures::room_occupancy(min, max, ready_target));
    s
}

#[cfg(test)]
mod tests;
