//! Shared test support: a [`Backend`] on the real engine in simulated time,
//! and helpers to call a router in process.
#![allow(dead_code)] // Each test file uses a different part.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use maestro_api::backend::Request as Call;
use maestro_api::{ApiConfig, Backend, Reply, ReportError, RoomReport, Unavailable};
use maestro_engine::room::RoomStatus;
use maestro_engine::{EngineConfig, Millis};
use maestro_sim::{ClusterConfig, Harness, RoomBehaviour};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The engine and a simulated cluster behind a lock. After every change
/// the simulation runs `step` forward, so pods start and rooms get ready
/// as they would between two API calls.
pub struct SimBackend {
    harness: Mutex<Harness>,
    step: Millis,
    /// Room and player events accepted for forwarding, in order.
    reports: Mutex<Vec<RoomReport>>,
}

impl SimBackend {
    /// Rooms are ready two seconds after they are asked for.
    pub fn new() -> Arc<SimBackend> {
        SimBackend::with_step(Millis::from_secs(2))
    }

    /// `Millis(0)` freezes time: operations stay pending or in progress.
    pub fn with_step(step: Millis) -> Arc<SimBackend> {
        Arc::new(SimBackend {
            harness: Mutex::new(Harness::new(
                EngineConfig::default(),
                ClusterConfig {
                    host: "node-1.sim".to_string(),
                    ..ClusterConfig::default()
                },
            )),
            step,
            reports: Mutex::new(Vec::new()),
        })
    }

    pub fn harness(&self) -> MutexGuard<'_, Harness> {
        self.harness.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ids of a scheduler's rooms, by id.
    pub fn room_ids(&self, scheduler: &str) -> Vec<String> {
        let h = self.harness();
        let mut ids: Vec<String> = h
            .engine
            .fleet(scheduler)
            .map(|f| f.rooms().map(|r| r.id.clone()).collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    pub fn room_status(&self, scheduler: &str, room: &str) -> Option<RoomStatus> {
        let h = self.harness();
        Some(h.engine.fleet(scheduler)?.get(room)?.status)
    }

    /// The host port the engine drew for the room's first container port:
    /// its address's port in the simulated cluster.
    pub fn host_port(&self, scheduler: &str, room: &str) -> Option<u16> {
        let h = self.harness();
        let room = h.engine.fleet(scheduler)?.get(room)?;
        room.host_ports.first().map(|p| p.host_port)
    }

    /// The room and player events accepted so far.
    pub fn reports(&self) -> Vec<RoomReport> {
        self.reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs the simulation forward.
    pub fn advance(&self, duration: Millis) {
        self.harness().run_for(duration);
    }
}

/// Executes what the engine emitted outside the harness's own calls: an
/// allocation on an unknown scheduler changes nothing, and the harness
/// drains its effect queue after it.
fn flush(h: &mut Harness) {
    let _ = h.allocate("");
}

/// The real engine answers: the same `Engine::query` as the service's
/// driver, and the harness runs the simulated cluster `step` forward after
/// a command, as time passes between two API calls.
#[async_trait::async_trait]
impl Backend for SimBackend {
    async fn call(&self, request: Call) -> Result<Reply, Unavailable> {
        let mut h = self.harness();
        let now = h.now();
        Ok(match request {
            Call::Command(command) => {
                let reply = h.command(*command);
                h.run_for(self.step);
                Reply::Command(reply)
            }
            Call::Ping(ping) => {
                let result = h.engine.handle_ping(now, &ping);
                if result.is_ok() {
                    // The simulated game server keeps pinging what it last said.
                    let behaviour = RoomBehaviour {
                        status: ping.status,
                        running_matches: ping.running_matches,
                    };
                    h.set_behaviour(&ping.scheduler, &ping.room, behaviour);
                }
                flush(&mut h);
                Reply::Ping(result)
            }
            Call::Allocate { scheduler, key } => {
                let result = h.engine.allocate(now, &scheduler, key.as_deref());
                flush(&mut h);
                Reply::Allocate(result)
            }
            Call::Report(report) => {
                let exists = h
                    .engine
                    .fleet(&report.scheduler)
                    .is_some_and(|f| f.get(&report.room).is_some());
                if !exists {
                    return Ok(Reply::Report(Err(ReportError::RoomNotFound {
                        scheduler: report.scheduler,
                        room: report.room,
                    })));
                }
                self.reports
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(report);
                Reply::Report(Ok(()))
            }
            Call::Query(query) => Reply::Query(h.engine.query(now, query)),
        })
    }
}

/// The router under test and the backend behind it.
pub struct Api {
    pub router: Router,
    pub backend: Arc<SimBackend>,
}

impl Api {
    /// Both APIs, no authentication.
    pub fn new() -> Api {
        Api::with(SimBackend::new(), &ApiConfig::default())
    }

    pub fn with(backend: Arc<SimBackend>, config: &ApiConfig) -> Api {
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
    pub fn room_ids(&self, scheduler: &str) -> Vec<String> {
        self.backend.room_ids(scheduler)
    }

    pub fn room_status(&self, scheduler: &str, room: &str) -> Option<RoomStatus> {
        self.backend.room_status(scheduler, room)
    }

    pub fn host_port(&self, scheduler: &str, room: &str) -> u16 {
        self.backend
            .host_port(scheduler, room)
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
