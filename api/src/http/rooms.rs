//! The rooms API (§2.3 of the reference): what game rooms call about
//! themselves, and allocate, which a matchmaker calls.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use maestro_engine::{AllocateError, ForwardKind, PlayerEventKind};
use serde_json::{Map, Value};

use super::AppState;
use super::extract::{PathParams, read_json};
use crate::backend::RoomReport;
use crate::error::{ApiError, Code};
use crate::wire::{
    AllocateRequest, AllocateResponse, EventRequest, EventResponse, PingRequest, PingResponse,
    RoomAddressResponse, StatusResponse,
};

type Reply<T> = Result<Json<T>, ApiError>;

/// `PUT /scheduler/{s}/rooms/{room}/ping`. A bad status is a 400; a ping
/// the engine refuses (unknown room, impossible transition) is a 200 with
/// `success: false`, as upstream answers, and so is a worker that cannot be
/// reached (upstream's storage errors): the room pings again anyway.
pub(crate) async fn ping(
    State(state): State<AppState>,
    PathParams((scheduler, room)): PathParams<(String, String)>,
    body: Body,
) -> Reply<PingResponse> {
    let request: PingRequest = read_json(body, state.config.body_limit_bytes).await?;
    let ping = request
        .into_ping(scheduler, room)
        .map_err(|e| ApiError::invalid_argument(e.to_string()))?;
    let success = match state.backend.ping(ping).await {
        Ok(status) => {
            tracing::trace!(status = status.as_str(), "ping accepted");
            true
        }
        Err(refused) => {
            tracing::debug!(error = %refused, "ping refused");
            false
        }
    };
    Ok(Json(PingResponse { success }))
}

/// `POST …/roomevent`: a room event for the scheduler's forwarders.
pub(crate) async fn room_event(
    State(state): State<AppState>,
    PathParams((scheduler, room)): PathParams<(String, String)>,
    body: Body,
) -> Reply<EventResponse> {
    let request: EventRequest = read_json(body, state.config.body_limit_bytes).await?;
    let kind = ForwardKind::RoomEvent {
        event: request.event,
    };
    report(&state, scheduler, room, kind, request.metadata).await
}

/// `POST …/playerevent`: a player event for the scheduler's forwarders.
/// The event is `playerJoin` or `playerLeft` and `metadata.playerId` names
/// the player; anything else is a 400 naming the field (upstream answers
/// 500 after trying to forward).
pub(crate) async fn player_event(
    State(state): State<AppState>,
    PathParams((scheduler, room)): PathParams<(String, String)>,
    body: Body,
) -> Reply<EventResponse> {
    let request: EventRequest = read_json(body, state.config.body_limit_bytes).await?;
    let Some(event) = PlayerEventKind::parse(&request.event) else {
        return Err(ApiError::invalid_argument(format!(
            "event: {:?} is not a player event (playerJoin or playerLeft)",
            request.event
        )));
    };
    let player_id = match request.metadata.as_ref().and_then(|m| m.get("playerId")) {
        Some(Value::String(id)) => id.clone(),
        Some(_) => {
            return Err(ApiError::invalid_argument(
                "metadata.playerId: must be a string",
            ));
        }
        None => {
            return Err(ApiError::invalid_argument(
                "metadata.playerId: required for a player event",
            ));
        }
    };
    let kind = ForwardKind::PlayerEvent { player_id, event };
    report(&state, scheduler, room, kind, request.metadata).await
}

/// Hands the event to the backend. Accepted means durably queued for every
/// forwarder, so a slow forwarder never holds up the room. A refusal is a
/// 200 with `success: false` and the reason, as upstream answers a failed
/// forward.
async fn report(
    state: &AppState,
    scheduler: String,
    room: String,
    kind: ForwardKind,
    metadata: Option<Map<String, Value>>,
) -> Reply<EventResponse> {
    let report = RoomReport {
        scheduler,
        room,
        kind,
        metadata_json: Value::Object(metadata.unwrap_or_default()).to_string(),
    };
    let response = match state.backend.report(report).await {
        Ok(()) => EventResponse {
            success: true,
            message: String::new(),
        },
        Err(error) => EventResponse {
            success: false,
            message: error.to_string(),
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
    let found = state.backend.room(scheduler.clone(), room.clone()).await?;
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
        Err(AllocateError::Unavailable(why)) => Err(ApiError::new(Code::Unavailable, why)),
    }
}
