//! Arbitrary messages to every RPC of the gRPC services, through the real
//! tonic routes on the real driver (see `crate::worker`). Every call must
//! get a gRPC answer (HTTP 200 with a `grpc-status`), never a panic or an
//! `UNKNOWN`; a body that is one well-formed frame gets no `INTERNAL` but
//! the one gRPC gives bytes that are not a message of the RPC's type; and
//! the engine keeps its invariants.
//!
//! The first byte picks the RPC, the second whether the rest is framed as
//! one gRPC message (the usual case) or sent as the raw body.
//!
//! Run: `cargo fuzz run -s none grpc_messages -- -max_total_time=60`;
//! `cargo test` in `fuzz/` replays `fuzz/seeds/grpc_messages/`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use maestro_api::ApiConfig;
use tower::ServiceExt;

use crate::worker::{check_invariants, runtime, worker};

/// `grpc-status` codes.
const UNKNOWN: &str = "2";
const INTERNAL: &str = "13";

pub fn run(data: &[u8]) {
    let [rpc, framing, message @ ..] = data else {
        return;
    };
    let paths: Vec<String> = maestro_api::grpc::route_table()
        .map(|r| format!("/{}/{}", r.service, r.method))
        .collect();
    let path = &paths[usize::from(*rpc) % paths.len()];
    let body = if framing % 8 == 0 {
        message.to_vec()
    } else {
        let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
        let mut framed = vec![0u8];
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(message);
        framed
    };
    runtime().block_on(call(path, body));
}

/// Whether `body` is one uncompressed gRPC frame: flag 0, then a length
/// that is the rest's. Anything else is refused by the transport (tonic
/// answers `INTERNAL`, as grpc-go does), before maestro sees it.
fn one_frame(body: &[u8]) -> bool {
    match body {
        [0, a, b, c, d, rest @ ..] => u32::from_be_bytes([*a, *b, *c, *d]) as usize == rest.len(),
        _ => false,
    }
}

async fn call(path: &str, body: Vec<u8>) {
    let framed = one_frame(&body);
    let (driver, _) = worker().await;
    let router = maestro_api::grpc::routes(Arc::new(driver.handle.clone()), &ApiConfig::default())
        .await;
    let request = Request::post(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::from(body))
        .expect("a valid request");
    let response = router
        .oneshot(request)
        .await
        .expect("the router's error type is Infallible");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let headers = response.headers().clone();
    let collected = response
        .into_body()
        .collect()
        .await
        .expect("an in-process body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = field(&headers, &trailers, "grpc-status")
        .unwrap_or_else(|| panic!("{path}: an answer without grpc-status"));
    let message = field(&headers, &trailers, "grpc-message").unwrap_or_default();
    let message = percent_encoding::percent_decode_str(&message).decode_utf8_lossy();
    assert_ne!(status, UNKNOWN, "{path}: UNKNOWN: {message}");
    if status == INTERNAL && framed {
        // One frame whose bytes are not a message of the RPC's type:
        // tonic says so. Any other INTERNAL is maestro's own.
        assert!(
            message.starts_with("failed to decode Protobuf message"),
            "{path}: INTERNAL for one well-framed message: {message}"
        );
    }
    check_invariants(&driver, path).await;
    driver.stop().await.expect("the in-memory store never fails");
}

/// A field of the answer: in its headers (a trailers-only answer) or its
/// trailers.
fn field(headers: &HeaderMap, trailers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .or_else(|| trailers.get(name))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
