//! Shared test support: the real worker (the service's driver over an
//! in-memory store, with the one simulated cluster as its runtime) on
//! tokio's paused clock, and helpers to call a router in process.
//!
//! Every test using [`Worker`] runs with `start_paused = true`: time moves
//! only when every task waits for a timer, so a test decides when rooms
//! start, ping and expire, and the same steps give the same answers.
#![allow(dead_code)] // Each test file uses a different part.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::stream::BoxStream;
use http_body_util::BodyExt;
use maestro::clock::Clock;
use maestro::driver::DriverConfig;
use maestro::sim_cluster::{RoomsRouter, SimCluster};
use maestro::testing::{RunningDriver, start_driver};
use maestro_api::backend::Request as Call;
use maestro_api::{ApiConfig, Backend, Reply, RoomReport, Unavailable};
use maestro_engine::room::{RemovalReason, RoomId, RoomStatus};
use maestro_engine::scheduler::Scheduler;
use maestro_engine::{EngineConfig, InstanceEvent, Millis, RuntimeError};
use maestro_runtimes::{RoomSpec, Runtime};
use maestro_sim::{ClusterConfig, RoomBehaviour, START};
use maestro_store::Store;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt;

/// The worker as `maestro start all` runs it on the embedded default:
/// the real driver, an in-memory store, and the simulated cluster with its
/// game servers pinging through the Rooms API routes. The test is the
/// matchmaker: no game server hears of an allocation unless the test
/// pings for it.
pub struct Worker {
    driver: RunningDriver,
    sim: Arc<SimCluster>,
    /// Open: runtime calls go through. Closed: they wait (time is frozen).
    gate: watch::Sender<bool>,
    /// Time let pass after each command, as between two API calls.
    step: Duration,
    /// Room and player events the worker acknowledged, in order.
    reports: Mutex<Vec<RoomReport>>,
    /// Stops the simulated cluster's tasks when dropped.
    _sim_stop: watch::Sender<bool>,
}

impl Worker {
    /// Rooms are ready two seconds after they are asked for.
    pub fn new() -> Arc<Worker> {
        Worker::start(Millis::from_secs(2), true)
    }

    /// `step` passes after every command.
    pub fn with_step(step: Millis) -> Arc<Worker> {
        Worker::start(step, true)
    }

    /// Time moves only in [`Worker::advance`]: runtime calls wait until
    /// then, so operations stay pending or in progress.
    pub fn frozen() -> Arc<Worker> {
        Worker::start(Millis(0), false)
    }

    fn start(step: Millis, open: bool) -> Arc<Worker> {
        let clock = Clock::starting_at(START);
        let (sim_stop, sim_stopped) = watch::channel(false);
        let sim = SimCluster::start(
            ClusterConfig {
                host: "node-1.sim".to_string(),
                ..ClusterConfig::default()
            },
            clock,
            sim_stopped,
        );
        let (gate, gate_rx) = watch::channel(open);
        let runtime = Arc::new(Gated {
            inner: Arc::clone(&sim),
            open: gate_rx,
        });
        let driver = start_driver(
            clock,
            Arc::new(Store::in_memory()),
            runtime,
            EngineConfig::default(),
            DriverConfig::default(),
        );
        sim.connect(Arc::new(RoomsRouter {
            router: maestro_api::rooms_router(
                Arc::new(driver.handle.clone()),
                &ApiConfig::default(),
            ),
            secret: None,
        }));
        Arc::new(Worker {
            driver,
            sim,
            gate,
            step: Duration::from_millis(step.0),
            reports: Mutex::new(Vec::new()),
            _sim_stop: sim_stop,
        })
    }

    /// Lets `duration` pass, runtime calls going through meanwhile.
    pub async fn advance(&self, duration: Millis) {
        let was_open = self.gate.send_replace(true);
        tokio::time::sleep(Duration::from_millis(duration.0)).await;
        self.gate.send_replace(was_open);
    }

    /// Reads the engine between two of the driver's inputs.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&maestro_engine::Engine) -> T + Send + 'static,
    ) -> T {
        self.driver
            .handle
            .read(read)
            .await
            .expect("the driver runs")
    }

    /// The ids of a scheduler's rooms, by id.
    pub async fn room_ids(&self, scheduler: &str) -> Vec<RoomId> {
        let scheduler = scheduler.to_string();
        let mut ids: Vec<RoomId> = self
            .read(move |e| {
                e.fleet(&scheduler)
                    .map(|f| f.rooms().map(|r| r.id.clone()).collect())
                    .unwrap_or_default()
            })
            .await;
        ids.sort();
        ids
    }

    pub async fn room_status(&self, scheduler: &str, room: &str) -> Option<RoomStatus> {
        let (scheduler, room) = (scheduler.to_string(), room.to_string());
        self.read(move |e| Some(e.fleet(&scheduler)?.get(&room)?.status))
            .await
    }

    /// The host port the engine drew for the room's first container port:
    /// its address's port in the simulated cluster.
    pub async fn host_port(&self, scheduler: &str, room: &str) -> Option<u16> {
        let (scheduler, room) = (scheduler.to_string(), room.to_string());
        self.read(move |e| {
            let room = e.fleet(&scheduler)?.get(&room)?;
            room.host_ports.first().map(|p| p.host_port)
        })
        .await
    }

    /// The scheduler's active version, as the engine holds it.
    pub async fn scheduler(&self, name: &str) -> Option<Scheduler> {
        let name = name.to_string();
        self.read(move |e| e.scheduler(&name).cloned()).await
    }

    /// The room and player events acknowledged so far.
    pub fn reports(&self) -> Vec<RoomReport> {
        self.reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The worker's own backend, watched: a successful ping makes the room's
/// simulated game server keep pinging what the test said (the test stands
/// in for the game server), an acknowledged event is noted, and a command
/// is followed by the worker's step.
#[async_trait::async_trait]
impl Backend for Worker {
    async fn call(&self, request: Call) -> Result<Reply, Unavailable> {
        let command = matches!(request, Call::Command(_));
        let pinged = match &request {
            Call::Ping(ping) => Some((
                ping.scheduler.clone(),
                ping.room.clone(),
                RoomBehaviour {
                    status: ping.status,
                    running_matches: ping.running_matches,
                },
            )),
            _ => None,
        };
        let report = match &request {
            Call::Report(report) => Some(report.clone()),
            _ => None,
        };
        let reply = self.driver.handle.call(request).await?;
        match (&reply, pinged, report) {
            (Reply::Ping(Ok(_)), Some((scheduler, room, behaviour)), _) => {
                self.sim.set_behaviour(&scheduler, &room, Some(behaviour));
            }
            (Reply::Report(Ok(())), _, Some(report)) => self
                .reports
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(report),
            _ => {}
        }
        if command && !self.step.is_zero() {
            tokio::time::sleep(self.step).await;
        }
        Ok(reply)
    }
}

/// The simulated cluster behind a gate: while it is closed, every runtime
/// call waits.
struct Gated {
    inner: Arc<SimCluster>,
    open: watch::Receiver<bool>,
}

impl Gated {
    async fn pass(&self) {
        let mut open = self.open.clone();
        // The sender lives as long as the worker; gone, nothing waits.
        let _ = open.wait_for(|open| *open).await;
    }
}

#[async_trait::async_trait]
impl Runtime for Gated {
    async fn create_scheduler(&self, scheduler: &Scheduler) -> Result<(), RuntimeError> {
        self.pass().await;
        self.inner.create_scheduler(scheduler).await
    }

    async fn delete_scheduler(&self, scheduler: &str) -> Result<(), RuntimeError> {
        self.pass().await;
        self.inner.delete_scheduler(scheduler).await
    }

    async fn create_room(&self, room: &RoomSpec) -> Result<(), RuntimeError> {
        self.pass().await;
        self.inner.create_room(room).await
    }

    async fn delete_room(
        &self,
        scheduler: &str,
        room: &str,
        reason: RemovalReason,
    ) -> Result<(), RuntimeError> {
        self.pass().await;
        self.inner.delete_room(scheduler, room, reason).await
    }

    async fn set_disruption_budget(
        &self,
        scheduler: &str,
        min_available: u32,
    ) -> Result<(), RuntimeError> {
        self.pass().await;
        self.inner
            .set_disruption_budget(scheduler, min_available)
            .await
    }

    fn watch(&self, scheduler: &str, known: Vec<RoomId>) -> BoxStream<'static, InstanceEvent> {
        self.inner.watch(scheduler, known)
    }
}

/// The router under test and the worker behind it.
pub struct Api {
    pub router: Router,
    pub backend: Arc<Worker>,
}

impl Api {
    /// Both APIs, no authentication.
    pub fn new() -> Api {
        Api::with(Worker::new(), &ApiConfig::default())
    }

    pub fn with(backend: Arc<Worker>, config: &ApiConfig) -> Api {
        Api {
            router: maestro_api::router(backend.clone(), config),
            backend,
        }
    }

    /// Sends a request; `body` is raw JSON text.
    pub async fn send(
        &self,
        method: &str,
        uri: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        send(&self.router, method, uri, body, headers).await
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send("GET", uri, None, &[]).await
    }

    pub async fn post(&self, uri: &str, body: &Value) -> (StatusCode, Value) {
        self.send("POST", uri, Some(&body.to_string()), &[]).await
    }

    pub async fn put(&self, uri: &str, body: &Value) -> (StatusCode, Value) {
        self.send("PUT", uri, Some(&body.to_string()), &[]).await
    }

    pub async fn patch(&self, uri: &str, body: &Value) -> (StatusCode, Value) {
        self.send("PATCH", uri, Some(&body.to_string()), &[]).await
    }

    /// Creates `name` and lets its rooms become ready.
    pub async fn create(&self, name: &str, replicas: i64) -> Value {
        let (status, body) = self
            .post("/schedulers", &scheduler_json(name, replicas))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The ids of a scheduler's rooms, by id.
    pub async fn room_ids(&self, scheduler: &str) -> Vec<String> {
        self.backend.room_ids(scheduler).await
    }

    pub async fn room_status(&self, scheduler: &str, room: &str) -> Option<RoomStatus> {
        self.backend.room_status(scheduler, room).await
    }

    pub async fn host_port(&self, scheduler: &str, room: &str) -> u16 {
        self.backend
            .host_port(scheduler, room)
            .await
            .expect("the room has a host port")
    }
}

/// Sends one request to `router` and reads the JSON answer (`Null` when empty).
pub async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Body::from(body.unwrap_or("").to_string()))
        .expect("a valid request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a readable body")
        .to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {bytes:?}"))
    };
    (status, value)
}

/// A valid scheduler in upstream's camelCase JSON.
pub fn scheduler_json(name: &str, replicas: i64) -> Value {
    json!({
        "name": name,
        "game": "game",
        "spec": {
            "terminationGracePeriod": "30s",
            "containers": [{
                "name": "game",
                "image": "registry.example/game:1",
                "imagePullPolicy": "IfNotPresent",
                "command": ["./run"],
                "environment": [{"name": "MODE", "value": "prod"}],
                "requests": {"memory": "64Mi", "cpu": "100m"},
                "limits": {"memory": "128Mi", "cpu": "200m"},
                "ports": [{"name": "game", "protocol": "udp", "port": 7777}]
            }]
        },
        "portRange": {"start": 20000, "end": 21000},
        "maxSurge": "25%",
        "roomsReplicas": replicas
    })
}

/// Asserts an error answer: status, gRPC code, empty details; returns the message.
pub fn error_message(status: StatusCode, body: &Value, want: StatusCode, code: i64) -> String {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["code"], json!(code), "{body}");
    assert_eq!(body["details"], json!([]), "{body}");
    body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {body}"))
        .to_string()
}
