//! The rooms API (§2.3 of the reference): what game rooms call about
//! themselves, and allocate, which a matchmaker calls.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use maestro_engine::AllocateError;

use super::AppState;
use super::extract::{PathParams, read_json};
use crate::error::ApiError;
use crate::wire::{
    AllocateRequest, AllocateResponse, EventRequest, EventResponse, PingRequest, PingResponse,
    RoomAddressResponse, StatusResponse,
};

type Reply<T> = Result<Json<T>, ApiError>;

/// `PUT /scheduler/{s}/rooms/{room}/ping`. A bad status is a 400; a ping
/// the engine refuses (unknown room, impossible transition) is a 200 with
/// `success: false`, as upstream answers.
pub(crate) async fn ping(
    State(state): State<AppState>,
    PathParams((scheduler, room)): PathParams<(String, String)>,
    body: Body,
) -> Reply<PingResponse> {
    let request: PingRequest = read_json(body, state.config.body_limit_bytes).await?;
    let ping = request
        .into_ping(scheduler, room)
        .map_err(|e| ApiError::invalid_argument(e.to_string()))?;
    let success = state.backend.ping(ping).await.is_ok();
    Ok(Json(PingResponse { success }))
}

/// `POST …/roomevent` and `POST …/playerevent`.
///
/// Event forwarding is not wired to the forwarders yet: a well-formed event
/// of an existing room is acknowledged with `success: true` and an empty
/// message, as upstream answers when the forward succeeds.
pub(crate) async fn event(
    State(state): State<AppState>,
    PathParams((scheduler, room)): PathParams<(String, String)>,
    body: Body,
) -> Reply<EventResponse> {
    let _request: EventRequest = read_json(body, state.config.body_limit_bytes).await?;
    let response = match state.backend.room(scheduler.clone(), room.clone()).await {
        Some(_) => EventResponse {
            success: true,
            message: String::new(),
        },
        None => EventResponse {
            success: false,
            message: format!("room {room} of scheduler {scheduler} not found"),
        },
    };
    Ok(Json(response))
}

/// `PUT …/status` (deprecated, kept for Maestro v9 rooms): accepted and
/// ignored; pings carry the status.
pub(crate) async fn status(
    State(state): State<AppState>,
    PathParams((_scheduler, _room)): PathParams<(String, String)>,
    body: Body,
) -> Reply<StatusResponse> {
    let _request: EventRequest = read_json(body, state.config.body_limit_bytes).await?;
    Ok(Json(StatusResponse { success: true }))
}

/// `GET …/address` (deprecated). A room whose pod has no node yet has no
/// address: upstream crashes on it, we answer 400 (FailedPrecondition).
pub(crate) async fn address(
    State(state): State<AppState>,
    PathParams((scheduler, room)): PathParams<(String, String)>,
) -> Reply<RoomAddressResponse> {
    let found = state.backend.room(scheduler.clone(), room.clone()).await;
    let Some(found) = found else {
        return Err(ApiError::not_found(format!(
            "room {room} of scheduler {scheduler} not found"
        )));
    };
    match &found.address {
        Some(address) => Ok(Json(address.into())),
        None => Err(ApiError::failed_precondition(format!(
            "room {room} has no address yet: its pod is not on a node"
        ))),
    }
}

/// The header a matchmaker may use instead of the body's `idempotencyKey`.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `POST /scheduler/{s}/rooms/allocate`. No ready room is a 200 with
/// `success: false` (upstream answers 500).
pub(crate) async fn allocate(
    State(state): State<AppState>,
    PathParams(scheduler): PathParams<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply<AllocateResponse> {
    let request: AllocateRequest = read_json(body, state.config.body_limit_bytes).await?;
    let header_key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::invalid_argument("the Idempotency-Key header must be visible ASCII")
        })?),
    };
    let key = header_key
        .map(str::to_string)
        .or(request.idempotency_key)
        .filter(|k| !k.is_empty());
    match state.backend.allocate(scheduler.clone(), key).await {
        Ok(allocation) => Ok(Json(AllocateResponse::allocated(
            allocation.room,
            allocation.address.as_ref(),
        ))),
        Err(error @ AllocateError::NoRoomAvailable) => {
            Ok(Json(AllocateResponse::failed(error.to_string())))
        }
        Err(error @ AllocateError::SchedulerNotFound(_)) => {
            Err(ApiError::not_found(error.to_string()))
        }
    }
}
