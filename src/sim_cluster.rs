//! The simulated cluster of the embedded default, in real time.
//!
//! It implements [`Runtime`] without Kubernetes: a created room's pod
//! "starts" after a delay, then its simulated game server pings the Rooms
//! API on a period. When the room gets allocated it plays a match of the
//! configured duration (pinging `occupied`) and comes back `ready`. A
//! deleted pod disappears after a delay. So a newcomer sees rooms come and
//! go, autoscaling and rolling updates, with no cluster at all.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use futures::stream::BoxStream;
use maestro_engine::room::{
    Address, AddressPort, InstanceStatus, PingStatus, RemovalReason, RoomStatus,
};
use maestro_engine::scheduler::Scheduler;
use maestro_runtimes::{
    InstanceEvent, InstanceEventKind, RoomSpec, Runtime, RuntimeError, RuntimeErrorKind,
};
use tokio::sync::mpsc;

/// How the simulated cluster and its game servers behave.
#[derive(Clone, Debug)]
pub struct SimClusterConfig {
    /// From pod creation to the game server running.
    pub start_delay: Duration,
    /// Period of every room's ping.
    pub ping_interval: Duration,
    /// How long an allocated room stays occupied.
    pub match_duration: Duration,
    /// From a pod delete to the pod being gone.
    pub delete_delay: Duration,
}

impl Default for SimClusterConfig {
    fn default() -> Self {
        SimClusterConfig {
            start_delay: Duration::from_millis(1500),
            ping_interval: Duration::from_secs(5),
            match_duration: Duration::from_secs(60),
            delete_delay: Duration::from_millis(500),
        }
    }
}

/// How simulated game servers talk to maestro: the same calls a real game
/// server makes (its ping), plus a peek at its own status, standing in for
/// the matchmaker telling the server it was allocated.
#[async_trait::async_trait]
pub trait RoomsApi: Send + Sync + 'static {
    async fn ping(&self, scheduler: &str, room: &str, status: PingStatus, running_matches: u64);
    async fn status(&self, scheduler: &str, room: &str) -> Option<RoomStatus>;
}

#[derive(Clone, Copy, Debug, Default)]
struct Pod {
    deleting: bool,
    /// The game server is playing a match.
    in_match: bool,
}

#[derive(Default)]
struct State {
    pods: BTreeMap<(String, String), Pod>,
    watchers: BTreeMap<String, Vec<mpsc::UnboundedSender<InstanceEvent>>>,
}

pub struct SimCluster {
    config: SimClusterConfig,
    state: Mutex<State>,
    rooms_api: OnceLock<Arc<dyn RoomsApi>>,
    this: Weak<SimCluster>,
}

/// Upper bound of simulated pods, so a runaway fleet cannot exhaust memory.
const MAX_PODS: usize = 100_000;

impl SimCluster {
    pub fn new(config: SimClusterConfig) -> Arc<SimCluster> {
        Arc::new_cyclic(|this| SimCluster {
            config,
            state: Mutex::new(State::default()),
            rooms_api: OnceLock::new(),
            this: this.clone(),
        })
    }

    /// Connects the game servers to maestro (once the APIs exist).
    pub fn connect(&self, api: Arc<dyn RoomsApi>) {
        let _ = self.rooms_api.set(api);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, scheduler: &str, event: InstanceEvent) {
        let mut state = self.state();
        if let Some(watchers) = state.watchers.get_mut(scheduler) {
            watchers.retain(|w| w.send(event.clone()).is_ok());
        }
    }

    fn exists(&self, scheduler: &str, room: &str) -> bool {
        self.state()
            .pods
            .get(&(scheduler.to_string(), room.to_string()))
            .is_some_and(|pod| !pod.deleting)
    }

    fn set_in_match(&self, scheduler: &str, room: &str, in_match: bool) {
        if let Some(pod) = self
            .state()
            .pods
            .get_mut(&(scheduler.to_string(), room.to_string()))
        {
            pod.in_match = in_match;
        }
    }

    /// Marks the pod deleting. A pod killed mid-match is counted: maestro
    /// must never do that to scale down or roll out, and the end-to-end
    /// tests read the counter.
    fn start_deletion(&self, scheduler: &str, room: &str) -> bool {
        let key = (scheduler.to_string(), room.to_string());
        let mut state = self.state();
        match state.pods.get_mut(&key) {
            Some(pod) => {
                if !pod.deleting && pod.in_match {
                    metrics::counter!("maestro_sim_matches_interrupted_total").increment(1);
                }
                pod.deleting = true;
                true
            }
            None => false,
        }
    }

    fn finish_deletion(self: Arc<Self>, scheduler: String, room: String) {
        let delay = self.config.delete_delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let removed = self
                .state()
                .pods
                .remove(&(scheduler.clone(), room.clone()))
                .is_some();
            if removed {
                self.emit(
                    &scheduler,
                    instance(
                        &scheduler,
                        &room,
                        InstanceEventKind::Deleted,
                        InstanceStatus::Terminating,
                        None,
                    ),
                );
            }
        });
    }

    /// The game server's life: start, ping, play allocated matches.
    async fn run_room(self: Arc<Self>, scheduler: String, room: String, address: Address) {
        tokio::time::sleep(self.config.start_delay).await;
        if !self.exists(&scheduler, &room) {
            return;
        }
        self.emit(
            &scheduler,
            instance(
                &scheduler,
                &room,
                InstanceEventKind::Upsert,
                InstanceStatus::Ready,
                Some(address),
            ),
        );
        let mut match_ends: Option<tokio::time::Instant> = None;
        let mut ping_due = tokio::time::interval(self.config.ping_interval);
        // Look for an allocation more often than the ping period, so a match
        // starts soon after it, and report a change at once.
        let mut peek =
            tokio::time::interval(Duration::from_millis(500).min(self.config.ping_interval));
        loop {
            let due = tokio::select! {
                _ = ping_due.tick() => true,
                _ = peek.tick() => false,
            };
            if !self.exists(&scheduler, &room) {
                return;
            }
            let Some(api) = self.rooms_api.get() else {
                continue;
            };
            let now = tokio::time::Instant::now();
            let changed = match match_ends {
                None if api.status(&scheduler, &room).await == Some(RoomStatus::Allocated) => {
                    match_ends = Some(now + self.config.match_duration);
                    self.set_in_match(&scheduler, &room, true);
                    true
                }
                Some(end) if now >= end => {
                    match_ends = None;
                    self.set_in_match(&scheduler, &room, false);
                    true
                }
                _ => false,
            };
            if due || changed {
                let (status, matches) = match match_ends {
                    Some(_) => (PingStatus::Occupied, 1),
                    None => (PingStatus::Ready, 0),
                };
                api.ping(&scheduler, &room, status, matches).await;
            }
        }
    }
}

fn instance(
    scheduler: &str,
    room: &str,
    kind: InstanceEventKind,
    status: InstanceStatus,
    address: Option<Address>,
) -> InstanceEvent {
    InstanceEvent {
        scheduler: scheduler.to_string(),
        room: room.to_string(),
        kind,
        status,
        description: String::new(),
        address,
        version: None,
    }
}

#[async_trait::async_trait]
impl Runtime for SimCluster {
    async fn create_scheduler(&self, _scheduler: &Scheduler) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn delete_scheduler(&self, scheduler: &str) -> Result<(), RuntimeError> {
        let rooms: Vec<String> = self
            .state()
            .pods
            .keys()
            .filter(|(s, _)| s == scheduler)
            .map(|(_, r)| r.clone())
            .collect();
        let Some(this) = self.this.upgrade() else {
            return Ok(());
        };
        for room in rooms {
            if self.start_deletion(scheduler, &room) {
                Arc::clone(&this).finish_deletion(scheduler.to_string(), room);
            }
        }
        Ok(())
    }

    async fn create_room(&self, room: &RoomSpec) -> Result<(), RuntimeError> {
        let key = (room.scheduler.clone(), room.room.clone());
        {
            let mut state = self.state();
            if state.pods.len() >= MAX_PODS {
                return Err(RuntimeError::new(
                    RuntimeErrorKind::Unavailable,
                    "the simulated cluster is full",
                ));
            }
            if state.pods.contains_key(&key) {
                return Err(RuntimeError::new(
                    RuntimeErrorKind::AlreadyExists,
                    format!("pod {} exists", room.room),
                ));
            }
            state.pods.insert(key, Pod::default());
        }
        let address = Address {
            host: "127.0.0.1".to_string(),
            ports: room
                .host_ports
                .iter()
                .map(|p| AddressPort {
                    name: p.name.clone(),
                    port: p.host_port,
                    protocol: p.protocol.clone(),
                })
                .collect(),
        };
        if let Some(this) = self.this.upgrade() {
            tokio::spawn(this.run_room(room.scheduler.clone(), room.room.clone(), address));
        }
        Ok(())
    }

    async fn delete_room(
        &self,
        scheduler: &str,
        room: &str,
        _reason: RemovalReason,
    ) -> Result<(), RuntimeError> {
        if !self.start_deletion(scheduler, room) {
            return Err(RuntimeError::new(
                RuntimeErrorKind::NotFound,
                format!("pod {room} not found"),
            ));
        }
        if let Some(this) = self.this.upgrade() {
            this.finish_deletion(scheduler.to_string(), room.to_string());
        }
        Ok(())
    }

    async fn set_disruption_budget(
        &self,
        _scheduler: &str,
        _min_available: u32,
    ) -> Result<(), RuntimeError> {
        Ok(())
    }

    fn watch(
        &self,
        scheduler: &str,
        known_rooms: Vec<String>,
    ) -> BoxStream<'static, InstanceEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut state = self.state();
            // The known rooms without a pod are gone (their pods died with
            // the previous process, in this simulated cluster).
            for room in known_rooms {
                if !state
                    .pods
                    .contains_key(&(scheduler.to_string(), room.clone()))
                {
                    let _ = tx.send(instance(
                        scheduler,
                        &room,
                        InstanceEventKind::Deleted,
                        InstanceStatus::Terminating,
                        None,
                    ));
                }
            }
            // A new watch starts with a relist of the pods that exist.
            for ((s, room), pod) in &state.pods {
                if s == scheduler && !pod.deleting {
                    let _ = tx.send(instance(
                        s,
                        room,
                        InstanceEventKind::Upsert,
                        InstanceStatus::Ready,
                        None,
                    ));
                }
            }
            state
                .watchers
                .entry(scheduler.to_string())
                .or_default()
                .push(tx);
        }
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|event| (event, rx))
        }))
    }
}
