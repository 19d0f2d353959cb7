//! Sends arbitrary request bodies, paths and query strings through the real
//! HTTP routers (management and rooms), backed by the real engine. Any
//! answer is fine except a panic or a 5xx: bad input must get a clear 4xx
//! naming what is wrong, and nothing a client sends may break the service.
//!
//! The backend answers every `backend::Request` with the engine (commands,
//! pings, allocations, queries), as the service's driver does, minus the
//! store and the runtime: what is fuzzed is the API's parsing, validation
//! and conversion, and the engine's handling of what gets through.
//!
//! Run: `cargo fuzz run -s none api_bodies -- -max_total_time=60`
//! (`-s none` works on a stable toolchain); `cargo test` in `fuzz/`
//! replays the committed seeds (`fuzz/seeds/api_bodies/`).

use std::sync::{Arc, Mutex, OnceLock};

use arbitrary::{Result, Unstructured};
use axum::body::Body;
use axum::http::Request;
use maestro_api::backend::Request as Call;
use maestro_api::{ApiConfig, Backend, Reply, ReportError, Unavailable};
use maestro_engine::room::{InstanceStatus, PingStatus};
use maestro_engine::scheduler::fixtures;
use maestro_engine::{
    Command, Engine, EngineConfig, InstanceEvent, InstanceEventKind, Millis, Ping, Time,
};
use tower::ServiceExt;

const NAME: &str = "arena";

/// The engine, with a scheduler `arena` of two rooms, one ready and one
/// occupied; time moves a second per call.
struct EngineBackend {
    engine: Mutex<(Engine, Time)>,
}

impl EngineBackend {
    fn new() -> EngineBackend {
        let mut engine = Engine::new(EngineConfig::default());
        let now = Time(1_700_000_000_000);
        let mut scheduler = fixtures::scheduler(NAME);
        scheduler.rooms_replicas = 0;
        engine
            .handle_command(now, Command::CreateScheduler(scheduler))
            .expect("the fixture is valid");
        // Pods the runtime reports are adopted as rooms; pings make them
        // ready and occupied.
        for (room, status) in [("r1", PingStatus::Ready), ("r2", PingStatus::Occupied)] {
            let event = InstanceEvent {
                scheduler: NAME.to_string(),
                room: room.to_string(),
                kind: InstanceEventKind::Upsert,
                status: InstanceStatus::Ready,
                description: String::new(),
                address: None,
                version: Some(maestro_engine::version::Version::FIRST),
            };
            engine.handle_instance_event(now, &event);
            let ping = Ping {
                scheduler: NAME.to_string(),
                room: room.to_string(),
                status,
                running_matches: u64::from(status == PingStatus::Occupied),
                metadata_json: "{}".to_string(),
            };
            let _ = engine.handle_ping(now, &ping);
        }
        while engine.poll_effect().is_some() {}
        EngineBackend {
            engine: Mutex::new((engine, now)),
        }
    }
}

#[async_trait::async_trait]
impl Backend for EngineBackend {
    async fn call(&self, request: Call) -> std::result::Result<Reply, Unavailable> {
        let mut guard = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        let (engine, now) = &mut *guard;
        *now = *now + Millis::from_secs(1);
        let reply = match request {
            Call::Command(command) => Reply::Command(engine.handle_command(*now, *command)),
            Call::Ping(ping) => Reply::Ping(engine.handle_ping(*now, &ping)),
            Call::Allocate { scheduler, key } => {
                Reply::Allocate(engine.allocate(*now, &scheduler, key.as_deref()))
            }
            Call::Report(report) => {
                let exists = engine
                    .fleet(&report.scheduler)
                    .is_some_and(|f| f.get(&report.room).is_some());
                Reply::Report(if exists {
                    Ok(())
                } else {
                    Err(ReportError::RoomNotFound {
                        scheduler: report.scheduler,
                        room: report.room,
                    })
                })
            }
            Call::Query(query) => Reply::Query(engine.query(*now, query)),
        };
        // Effects would go to the store and the runtime: drop them.
        while engine.poll_effect().is_some() {}
        engine
            .check_invariants()
            .unwrap_or_else(|e| panic!("engine invariant broken: {e}"));
        Ok(reply)
    }
}

/// Every route, as `(method, path)` with `{s}` for a scheduler and `{r}`
/// for a room; the fuzzer picks the names too (known or not).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/schedulers"),
    ("POST", "/schedulers"),
    ("GET", "/schedulers/info"),
    ("GET", "/schedulers/{s}"),
    ("POST", "/schedulers/{s}"),
    ("PATCH", "/schedulers/{s}"),
    ("PUT", "/schedulers/{s}"),
    ("DELETE", "/schedulers/{s}"),
    ("GET", "/schedulers/{s}/versions"),
    ("GET", "/schedulers/{s}/operations"),
    ("GET", "/schedulers/{s}/operations/{r}"),
    ("POST", "/schedulers/{s}/operations/{r}/cancel"),
    ("GET", "/schedulers/{s}/rooms"),
    ("PUT", "/scheduler/{s}/rooms/{r}/ping"),
    ("POST", "/scheduler/{s}/rooms/{r}/ping"),
    ("POST", "/scheduler/{s}/rooms/{r}/roomevent"),
    ("POST", "/scheduler/{s}/rooms/{r}/playerevent"),
    ("PUT", "/scheduler/{s}/rooms/{r}/status"),
    ("GET", "/scheduler/{s}/rooms/{r}/address"),
    ("POST", "/scheduler/{s}/rooms/allocate"),
];

/// Bodies worth starting from: the fuzzer mutates them or replaces them.
const BODIES: &[&str] = &[
    "",
    "{}",
    r#"{"status":"ready","runningMatches":1,"timestamp":"12"}"#,
    r#"{"event":"playerJoin","metadata":{"playerId":"p1"}}"#,
    r#"{"version":"v1.0.0"}"#,
    r#"{"roomsReplicas":"3","maxSurge":"50%"}"#,
    r#"{"name":"arena2","game":"g","spec":{"terminationGracePeriod":"30s","containers":[{"name":"c","image":"i","ports":[{"name":"p","protocol":"tcp","port":80}]}]},"portRange":{"start":1,"end":100}}"#,
];

fn segment(u: &mut Unstructured, known: &[&str]) -> Result<String> {
    if u.arbitrary()? {
        Ok((*u.choose(known)?).to_string())
    } else {
        let text: String = u.arbitrary()?;
        // A path segment: what a client could put there, percent-encoded.
        Ok(text
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect())
    }
}

fn request(u: &mut Unstructured) -> Result<Request<Body>> {
    let (method, template) = *u.choose(ROUTES)?;
    let path = template
        .replace("{s}", &segment(u, &[NAME, "info", "nope"])?)
        .replace("{r}", &segment(u, &["r1", "r2", "r3"])?);
    let query = match u.int_in_range(0u8..=3)? {
        0 => String::new(),
        1 => "?stage=final&page=1&per_page=5".to_string(),
        2 => format!(
            "?{}",
            segment(u, &["stage=pending", "status=ready", "page=0"])?
        ),
        _ => format!(
            "?{}={}",
            segment(
                u,
                &["stage", "page", "per_page", "game", "version", "status"]
            )?,
            segment(u, &["final", "0", "-1", "99999999999", "ready", ""])?
        ),
    };
    let body: Vec<u8> = if u.arbitrary()? {
        u.choose(BODIES)?.as_bytes().to_vec()
    } else {
        u.arbitrary()?
    };
    Request::builder()
        .method(method)
        .uri(format!("{path}{query}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .map_err(|_| arbitrary::Error::IncorrectFormat)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}

/// One input: a few requests in a row.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let router = maestro_api::router(Arc::new(EngineBackend::new()), &ApiConfig::default());
    // A few requests in a row, so later ones see what earlier ones changed.
    for _ in 0..4 {
        let Ok(request) = request(&mut u) else {
            return;
        };
        let uri = request.uri().clone();
        let method = request.method().clone();
        let response = runtime()
            .block_on(router.clone().oneshot(request))
            .expect("the router's error type is Infallible");
        assert!(
            !response.status().is_server_error(),
            "{method} {uri} answered {}",
            response.status()
        );
    }
}
