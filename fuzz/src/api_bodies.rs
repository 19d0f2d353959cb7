//! Sends arbitrary request bodies, paths and query strings through the real
//! HTTP routers (management and rooms), backed by the real engine. Any
//! answer is fine except a panic or a 5xx: bad input must get a clear 4xx
//! naming what is wrong, and nothing a client sends may break the service.
//!
//! The backend is the service's own worker: the real driver over an
//! in-memory store, with a cluster whose pods are ready at once
//! (`maestro::testing`), checked after every request for the engine's
//! invariants.
//!
//! Run: `cargo fuzz run -s none api_bodies -- -max_total_time=60`
//! (`-s none` works on a stable toolchain); `cargo test` in `fuzz/`
//! replays the committed seeds (`fuzz/seeds/api_bodies/`).

use std::sync::Arc;

use arbitrary::{Result, Unstructured};
use axum::body::Body;
use axum::http::Request;
use maestro_api::ApiConfig;
use tower::ServiceExt;

use crate::worker::{NAME, check_invariants, runtime, worker};

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

fn request(u: &mut Unstructured, rooms: &[&str]) -> Result<Request<Body>> {
    let (method, template) = *u.choose(ROUTES)?;
    let path = template
        .replace("{s}", &segment(u, &[NAME, "info", "nope"])?)
        .replace("{r}", &segment(u, rooms)?);
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

/// One input: a few requests in a row, against a fresh worker.
pub fn run(data: &[u8]) {
    runtime().block_on(requests(data));
}

async fn requests(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (driver, rooms) = worker().await;
    let mut known: Vec<&str> = rooms.iter().map(String::as_str).collect();
    known.push("r3");
    let router = maestro_api::router(Arc::new(driver.handle.clone()), &ApiConfig::default());
    // A few requests in a row, so later ones see what earlier ones changed.
    for _ in 0..4 {
        let Ok(request) = request(&mut u, &known) else {
            break;
        };
        let uri = request.uri().clone();
        let method = request.method().clone();
        let response = router
            .clone()
            .oneshot(request)
            .await
            .expect("the router's error type is Infallible");
        assert!(
            !response.status().is_server_error(),
            "{method} {uri} answered {}",
            response.status()
        );
        check_invariants(&driver, &format!("{method} {uri}")).await;
    }
    driver.stop().await.expect("the in-memory store never fails");
}
