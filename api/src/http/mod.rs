//! The HTTP/JSON routers. Upstream serves the management API and the rooms
//! API from separate deployments; [`management_router`] and
//! [`rooms_router`] are the two, each complete with its fallbacks, and
//! [`router`] serves both from one listener.
//!
//! `/schedulers…` (plural) is management, `/scheduler/…` (singular) rooms.
//! axum's router prefers static segments, so `GET /schedulers/info` wins
//! over `GET /schedulers/{name}`, as in grpc-gateway's registration.

mod extract;
mod management;
mod openapi;
mod rooms;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};

use self::extract::PathParams;
use crate::auth::{self, ApiConfig};
use crate::backend::Backend;
use crate::error::ApiError;

pub use openapi::openapi_document;

#[derive(Clone)]
pub(crate) struct AppState {
    pub backend: Arc<dyn Backend>,
    pub config: Arc<ApiConfig>,
}

/// The management API (schedulers, operations, rooms listing) and
/// `GET /openapi.json`, which needs no token.
pub fn management_router(backend: Arc<dyn Backend>, config: &ApiConfig) -> Router {
    with_fallbacks(management_routes(state(backend, config)))
}

/// The rooms API: pings, events, addresses and allocate.
pub fn rooms_router(backend: Arc<dyn Backend>, config: &ApiConfig) -> Router {
    with_fallbacks(rooms_routes(state(backend, config)))
}

/// Both APIs on one router. (Merging the two routers above would panic:
/// axum refuses to merge two routers that both have a fallback.)
pub fn router(backend: Arc<dyn Backend>, config: &ApiConfig) -> Router {
    let state = state(backend, config);
    with_fallbacks(management_routes(state.clone()).merge(rooms_routes(state)))
}

fn state(backend: Arc<dyn Backend>, config: &ApiConfig) -> AppState {
    AppState {
        backend,
        config: Arc::new(config.clone()),
    }
}

fn management_routes(state: AppState) -> Router {
    use management::*;
    let protected = Router::new()
        .route("/schedulers", get(list_schedulers).post(create_scheduler))
        .route("/schedulers/info", get(schedulers_info))
        .route(
            "/schedulers/{name}",
            get(get_scheduler)
                .post(new_scheduler_version)
                .patch(patch_scheduler)
                .put(switch_active_version)
                .delete(delete_scheduler),
        )
        .route("/schedulers/{name}/versions", get(scheduler_versions))
        .route("/schedulers/{name}/operations", get(list_operations))
        .route("/schedulers/{name}/operations/{id}", get(get_operation))
        .route(
            "/schedulers/{name}/operations/{id}/cancel",
            post(cancel_operation),
        )
        .route("/schedulers/{name}/rooms", get(list_rooms))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            management_auth,
        ));
    Router::new()
        .route("/openapi.json", get(openapi))
        .merge(protected)
        .with_state(state)
}

fn rooms_routes(state: AppState) -> Router {
    let room = Router::new()
        // Upstream's older protos used POST for the ping; both are served.
        .route(
            "/scheduler/{scheduler}/rooms/{room}/ping",
            put(rooms::ping).post(rooms::ping),
        )
        .route(
            "/scheduler/{scheduler}/rooms/{room}/roomevent",
            post(rooms::room_event),
        )
        .route(
            "/scheduler/{scheduler}/rooms/{room}/playerevent",
            post(rooms::player_event),
        )
        .route(
            "/scheduler/{scheduler}/rooms/{room}/status",
            put(rooms::status),
        )
        .route(
            "/scheduler/{scheduler}/rooms/{room}/address",
            get(rooms::address),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), room_auth));
    // A matchmaker, not a room, allocates: management tokens apply.
    let allocate = Router::new()
        .route(
            "/scheduler/{scheduler}/rooms/allocate",
            post(rooms::allocate),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            management_auth,
        ));
    room.merge(allocate).with_state(state)
}

/// grpc-gateway's answers to an unknown path and to a wrong method.
///
/// A gRPC call to a service this port does not serve ends here too (the
/// gRPC routes merged into this router have no fallback of their own): it
/// gets gRPC's UNIMPLEMENTED, which a gRPC client can read, rather than a
/// JSON 404.
fn with_fallbacks(router: Router) -> Router {
    router
        .fallback(|request: Request| async move {
            if is_grpc(&request) {
                grpc_unimplemented(request.uri().path())
            } else {
                ApiError::not_found("Not Found").into_response()
            }
        })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
}

fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

fn grpc_unimplemented(path: &str) -> Response {
    tonic::Status::unimplemented(format!("{path} is not served on this port"))
        .into_http::<axum::body::Body>()
}

async fn management_auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match auth::check_management(&state.config, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn room_auth(
    State(state): State<AppState>,
    PathParams((scheduler, room)): PathParams<(String, String)>,
    request: Request,
    next: Next,
) -> Response {
    match auth::check_room(&state.config, request.headers(), &scheduler, &room) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// The document for this router's configuration: routes require a token
/// only when one is configured for them.
async fn openapi(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(openapi_document(&state.config))
}
