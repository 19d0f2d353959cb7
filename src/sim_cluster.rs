//! The embedded default's runtime: the one simulated cluster
//! ([`maestro_sim::cluster::Cluster`]) in real time.
//!
//! The model is the same the planner and the property tests run in virtual
//! time; this shell gives it the engine's clock, fires its timers with
//! tokio, hands its instance events to maestro's watches and sends its
//! game servers' pings through the real Rooms API routes. A game server
//! learns of its allocation the way a real one does, by being told: the
//! worker's backend is wrapped by [`TellingBackend`], which passes each
//! answered allocation on, as a matchmaker tells the server it picked.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::Router;
use futures::stream::BoxStream;
use maestro_api::backend::{Backend, Reply, Request, Unavailable};
use maestro_engine::Ping;
use maestro_engine::room::RemovalReason;
use maestro_engine::scheduler::Scheduler;
use maestro_runtimes::{InstanceEvent, RoomSpec, Runtime, RuntimeError};
use maestro_sim::cluster::{Cluster, ClusterConfig, Output, PodSpec, RoomBehaviour};
use tokio::sync::{Notify, mpsc, watch};

use crate::clock::Clock;

/// Where simulated game servers send their pings.
#[async_trait::async_trait]
pub trait RoomsApi: Send + Sync + 'static {
    async fn ping(&self, ping: Ping);
}

/// Simulated game servers ping through the real Rooms API routes (in
/// process, no socket), with their room token when room auth is on.
pub struct RoomsRouter {
    pub router: Router,
    pub secret: Option<Vec<u8>>,
}

#[async_trait::async_trait]
impl RoomsApi for RoomsRouter {
    async fn ping(&self, ping: Ping) {
        let Ping {
            scheduler,
            room,
            status,
            running_matches,
            ..
        } = ping;
        let body = serde_json::json!({
            "status": status.as_str(),
            "runningMatches": running_matches,
            "timestamp": crate::clock::wall_clock().0 / 1000,
        });
        let mut request =
            axum::http::Request::put(format!("/scheduler/{scheduler}/rooms/{room}/ping"))
                .header("content-type", "application/json");
        if let Some(secret) = &self.secret {
            let token = maestro_api::room_token(secret, &scheduler, &room);
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let Ok(request) = request.body(axum::body::Body::from(body.to_string())) else {
            return;
        };
        match tower::ServiceExt::oneshot(self.router.clone(), request).await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::debug!(room, status = %response.status(), "simulated ping refused")
            }
            Err(e) => tracing::debug!(room, error = %e, "simulated ping failed"),
        }
    }
}

/// Lanes pings travel to the Rooms API in: one ping in flight per lane, a
/// room always in the same lane, so a room's pings arrive in order (an
/// `occupied` overtaken by an older `ready` would free a busy room).
const PING_LANES: usize = 32;

struct State {
    cluster: Cluster,
    watchers: BTreeMap<String, Vec<mpsc::UnboundedSender<InstanceEvent>>>,
}

pub struct SimCluster {
    state: Mutex<State>,
    clock: Clock,
    /// Wakes the timer task when a call set an earlier timer.
    wake: Notify,
    lanes: Vec<mpsc::UnboundedSender<Ping>>,
    rooms_api: Arc<OnceLock<Arc<dyn RoomsApi>>>,
}

impl SimCluster {
    /// Starts the cluster's timers and its game servers' pinger; both stop
    /// with `shutdown`.
    pub fn start(
        config: ClusterConfig,
        clock: Clock,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<SimCluster> {
        let rooms_api: Arc<OnceLock<Arc<dyn RoomsApi>>> = Arc::new(OnceLock::new());
        let mut lanes = Vec::with_capacity(PING_LANES);
        for _ in 0..PING_LANES {
            let (lane, rx) = mpsc::unbounded_channel();
            lanes.push(lane);
            tokio::spawn(send_pings(rx, Arc::clone(&rooms_api), shutdown.clone()));
        }
        let sim = Arc::new(SimCluster {
            state: Mutex::new(State {
                cluster: Cluster::new(config, clock.now()),
                watchers: BTreeMap::new(),
            }),
            clock,
            wake: Notify::new(),
            lanes,
            rooms_api,
        });
        tokio::spawn(Arc::clone(&sim).run_timers(shutdown));
        sim
    }

    /// Connects the game servers to maestro (once the APIs exist).
    pub fn connect(&self, api: Arc<dyn RoomsApi>) {
        let _ = self.rooms_api.set(api);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the cluster at the engine's time now, then delivers
    /// what it produced and wakes the timers.
    fn with_cluster<T>(&self, f: impl FnOnce(&mut Cluster, maestro_engine::Time) -> T) -> T {
        let mut state = self.state();
        let now = self.clock.now();
        let result = f(&mut state.cluster, now);
        self.deliver(&mut state);
        drop(state);
        self.wake.notify_one();
        result
    }

    fn deliver(&self, state: &mut State) {
        // Maestro must never do this to scale down or roll out; the
        // end-to-end tests read the counter.
        metrics::counter!("maestro_sim_matches_interrupted_total")
            .absolute(state.cluster.stats().matches_interrupted_by_deletion);
        while let Some(output) = state.cluster.poll_output() {
            match output {
                Output::Instance(event) => {
                    if let Some(watchers) = state.watchers.get_mut(&event.scheduler) {
                        watchers.retain(|w| w.send(event.clone()).is_ok());
                    }
                }
                Output::Ping(ping) => {
                    let lane = crate::hash::lane(&ping.scheduler, &ping.room, self.lanes.len());
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

    async fn run_timers(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let next = self.state().cluster.next_timeout();
            let sleep = match next {
                Some(at) => tokio::time::sleep(self.clock.until(at)),
                None => tokio::time::sleep(std::time::Duration::from_secs(3600)),
            };
            tokio::select! {
                _ = sleep => {}
                _ = self.wake.notified() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
            }
            let mut state = self.state();
            let now = self.clock.now();
            state.cluster.advance(now);
            self.deliver(&mut state);
        }
    }

    /// Makes the room's game server ping `behaviour` from now on (`None`
    /// silences it), as a test standing in for the game server does.
    pub fn set_behaviour(&self, scheduler: &str, room: &str, behaviour: Option<RoomBehaviour>) {
        self.with_cluster(|c, now| c.set_behaviour(now, scheduler, room, behaviour));
    }

    /// A matchmaker told the room's game server it was allocated.
    pub fn allocated(&self, scheduler: &str, room: &str) {
        self.with_cluster(|c, now| c.allocated(now, scheduler, room, None));
    }
}

/// One lane: its pings one after the other.
async fn send_pings(
    mut rx: mpsc::UnboundedReceiver<Ping>,
    rooms_api: Arc<OnceLock<Arc<dyn RoomsApi>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let ping = tokio::select! {
            ping = rx.recv() => ping,
            _ = shutdown.wait_for(|stop| *stop) => None,
        };
        let Some(ping) = ping else {
            return;
        };
        if let Some(api) = rooms_api.get() {
            api.ping(ping).await;
        }
    }
}

fn tokio_stream_from<T: Send + 'static>(rx: mpsc::UnboundedReceiver<T>) -> BoxStream<'static, T> {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

#[async_trait::async_trait]
impl Runtime for SimCluster {
    async fn create_scheduler(&self, _scheduler: &Scheduler) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn delete_scheduler(&self, scheduler: &str) -> Result<(), RuntimeError> {
        self.with_cluster(|c, now| c.delete_scheduler(now, scheduler));
        Ok(())
    }

    async fn create_room(&self, room: &RoomSpec) -> Result<(), RuntimeError> {
        let pod = PodSpec::for_room(&room.spec, &room.room, &room.host_ports);
        self.with_cluster(|c, now| c.create_pod(now, pod))
    }

    async fn delete_room(
        &self,
        scheduler: &str,
        room: &str,
        _reason: RemovalReason,
    ) -> Result<(), RuntimeError> {
        self.with_cluster(|c, now| c.delete_pod(now, scheduler, room))
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
                if !state.cluster.has_pod(scheduler, &room) {
                    let _ = tx.send(Cluster::gone(scheduler, &room));
                }
            }
            // A new watch starts with a relist of the pods that exist.
            for event in state.cluster.list(scheduler) {
                let _ = tx.send(event);
            }
            state
                .watchers
                .entry(scheduler.to_string())
                .or_default()
                .push(tx);
        }
        tokio_stream_from(rx)
    }
}

/// The worker's backend, telling the simulated game server of every
/// allocation it answers (the matchmaker's message to the server it got).
pub struct TellingBackend {
    pub inner: Arc<dyn Backend>,
    pub sim: Arc<SimCluster>,
}

#[async_trait::async_trait]
impl Backend for TellingBackend {
    async fn call(&self, request: Request) -> Result<Reply, Unavailable> {
        let scheduler = match &request {
            Request::Allocate { scheduler, .. } => Some(scheduler.clone()),
            _ => None,
        };
        let reply = self.inner.call(request).await?;
        if let (Some(scheduler), Reply::Allocate(Ok(allocation))) = (scheduler, &reply) {
            self.sim.allocated(&scheduler, &allocation.room);
        }
        Ok(reply)
    }
}
