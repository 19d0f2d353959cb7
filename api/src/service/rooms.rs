//! `RoomsService` (§2.3 of the reference): what game rooms call about
//! themselves, allocate, which a matchmaker calls, and maestro's room
//! listing, which an operator calls.

use maestro_engine::room::RoomStatus;
use maestro_engine::{AllocateError, ForwardKind, PlayerEventKind};
use pbjson_types::value::Kind;

use super::{count_u32, non_empty, scheduler_not_found};
use crate::backend::RoomReport;
use crate::convert::{json_text, room as convert};
use crate::error::{ApiError, Code};
use crate::proto::api::v1;
use crate::rpc::Ctx;

/// `PUT /scheduler/{s}/rooms/{room}/ping`. A bad status is a 400; a ping
/// the engine refuses (unknown room, impossible transition) is a 200 with
/// `success: false`, as upstream answers, and so is a worker that cannot be
/// reached (upstream's storage errors): the room pings again anyway.
pub(crate) async fn update_room_with_ping(
    ctx: Ctx,
    request: v1::UpdateRoomWithPingRequest,
) -> Result<v1::UpdateRoomWithPingResponse, ApiError> {
    let ping = convert::ping(request)?;
    let success = match ctx.backend.ping(ping).await {
        Ok(status) => {
            tracing::trace!(status = status.as_str(), "ping accepted");
            true
        }
        Err(refused) => {
            tracing::debug!(error = %refused, "ping refused");
            false
        }
    };
    Ok(v1::UpdateRoomWithPingResponse { success })
}

/// `POST …/roomevent`: a room event for the scheduler's forwarders.
pub(crate) async fn forward_room_event(
    ctx: Ctx,
    request: v1::ForwardRoomEventRequest,
) -> Result<v1::ForwardRoomEventResponse, ApiError> {
    let kind = ForwardKind::RoomEvent {
        event: request.event.clone(),
    };
    Ok(forward(&ctx, request, kind).await)
}

/// `POST …/playerevent`: a player event for the scheduler's forwarders.
/// The event is `playerJoin` or `playerLeft` and `metadata.playerId` names
/// the player; anything else is a 400 naming the field (upstream answers
/// 500 after trying to forward).
pub(crate) async fn forward_player_event(
    ctx: Ctx,
    request: v1::ForwardPlayerEventRequest,
) -> Result<v1::ForwardPlayerEventResponse, ApiError> {
    let Some(event) = PlayerEventKind::parse(&request.event) else {
        return Err(ApiError::invalid_argument(format!(
            "event: {:?} is not a player event (playerJoin or playerLeft)",
            request.event
        )));
    };
    let player_id = request
        .metadata
        .as_ref()
        .and_then(|m| m.fields.get("playerId"))
        .map(|value| value.kind.as_ref());
    let player_id = match player_id {
        Some(Some(Kind::StringValue(id))) => id.clone(),
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
    let answer = forward(&ctx, request.into(), kind).await;
    Ok(v1::ForwardPlayerEventResponse {
        success: answer.success,
        message: answer.message,
    })
}

/// A player event carries the same fields as a room event (upstream keeps
/// two messages for two RPCs).
impl From<v1::ForwardPlayerEventRequest> for v1::ForwardRoomEventRequest {
    fn from(r: v1::ForwardPlayerEventRequest) -> Self {
        v1::ForwardRoomEventRequest {
            scheduler_name: r.scheduler_name,
            room_name: r.room_name,
            metadata: r.metadata,
            event: r.event,
            timestamp: r.timestamp,
        }
    }
}

/// Hands the event to the backend. Accepted means durably queued for every
/// forwarder, so a slow forwarder never holds up the room. A refusal is a
/// 200 with `success: false` and the reason, as upstream answers a failed
/// forward.
async fn forward(
    ctx: &Ctx,
    request: v1::ForwardRoomEventRequest,
    kind: ForwardKind,
) -> v1::ForwardRoomEventResponse {
    let report = RoomReport {
        scheduler: request.scheduler_name,
        room: request.room_name,
        kind,
        metadata_json: json_text(request.metadata.as_ref()),
    };
    match ctx.backend.report(report).await {
        Ok(()) => v1::ForwardRoomEventResponse {
            success: true,
            message: String::new(),
        },
        Err(error) => v1::ForwardRoomEventResponse {
            success: false,
            message: error.to_string(),
        },
    }
}

/// `PUT …/status` (deprecated, kept for Maestro v9 rooms): accepted and
/// ignored; pings carry the status.
pub(crate) async fn update_room_status(
    _ctx: Ctx,
    _request: v1::UpdateRoomStatusRequest,
) -> Result<v1::UpdateRoomStatusResponse, ApiError> {
    Ok(v1::UpdateRoomStatusResponse { success: true })
}

/// `GET …/address` (deprecated). A room whose pod has no node yet has no
/// address: upstream crashes on it, we answer 400 (FailedPrecondition).
pub(crate) async fn get_room_address(
    ctx: Ctx,
    request: v1::GetRoomAddressRequest,
) -> Result<v1::GetRoomAddressResponse, ApiError> {
    let (scheduler, room) = (request.scheduler_name, request.room_name);
    let found = ctx.backend.room(scheduler.clone(), room.clone()).await?;
    let Some(found) = found else {
        return Err(ApiError::not_found(format!(
            "room {room} of scheduler {scheduler} not found"
        )));
    };
    match &found.address {
        Some(address) => Ok(address.into()),
        None => Err(ApiError::failed_precondition(format!(
            "room {room} has no address yet: its pod is not on a node"
        ))),
    }
}

/// The header (or gRPC metadata) a matchmaker may use instead of the
/// body's `idempotencyKey`; it wins over the body.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `POST /scheduler/{s}/rooms/allocate`. No ready room is a 200 with
/// `success: false` (upstream answers 500).
pub(crate) async fn allocate_room(
    ctx: Ctx,
    request: v1::AllocateRoomRequest,
) -> Result<v1::AllocateRoomResponse, ApiError> {
    let header_key = match ctx.headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::invalid_argument("the Idempotency-Key header must be visible ASCII")
        })?),
    };
    let key = header_key
        .or(non_empty(&request.idempotency_key))
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    let scheduler = request.scheduler_name;
    match ctx.backend.allocate(scheduler, key).await {
        Ok(allocation) => Ok(match allocation.address.as_ref() {
            Some(address) => v1::AllocateRoomResponse {
                room_id: allocation.room,
                success: true,
                message: String::new(),
                ports: convert::ports(&address.ports),
                host: address.host.clone(),
            },
            None => v1::AllocateRoomResponse {
                room_id: allocation.room,
                success: true,
                message: "the room has no address yet: its pod is not on a node".to_string(),
                ..Default::default()
            },
        }),
        Err(error @ AllocateError::NoRoomAvailable) => Ok(v1::AllocateRoomResponse {
            success: false,
            message: error.to_string(),
            ..Default::default()
        }),
        Err(error @ AllocateError::SchedulerNotFound(_)) => {
            Err(ApiError::not_found(error.to_string()))
        }
        Err(AllocateError::Unavailable(why)) => Err(ApiError::new(Code::Unavailable, why)),
    }
}

/// Default and largest page size of the room listing.
const ROOMS_PER_PAGE: u32 = 100;
pub(crate) const ROOMS_MAX_PER_PAGE: u32 = 1000;

/// `GET /schedulers/{name}/rooms?status=&page=&per_page=` (maestro only):
/// rooms by id.
pub(crate) async fn list_rooms(
    ctx: Ctx,
    request: v1::ListRoomsRequest,
) -> Result<v1::ListRoomsResponse, ApiError> {
    let status = match non_empty(&request.status) {
        None => None,
        Some(text) => Some(
            RoomStatus::ALL
                .into_iter()
                .find(|s| s.as_str() == text)
                .ok_or_else(|| {
                    let all: Vec<&str> = RoomStatus::ALL.iter().map(|s| s.as_str()).collect();
                    ApiError::invalid_argument(format!(
                        "invalid status filter: {text:?}; must be one of {}",
                        all.join(", ")
                    ))
                })?,
        ),
    };
    let page = request.page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::invalid_argument("page must be greater than 0"));
    }
    let per_page = request.per_page.unwrap_or(ROOMS_PER_PAGE);
    if per_page == 0 || per_page > ROOMS_MAX_PER_PAGE {
        return Err(ApiError::invalid_argument(format!(
            "page size must be between 1 and {ROOMS_MAX_PER_PAGE}"
        )));
    }
    let offset = (page as usize - 1).saturating_mul(per_page as usize);
    let name = request.scheduler_name;
    let rooms = ctx
        .backend
        .rooms(name.clone(), status, offset, per_page as usize)
        .await?
        .ok_or_else(|| scheduler_not_found(&name))?;
    Ok(v1::ListRoomsResponse {
        page,
        page_size: per_page,
        total: count_u32(rooms.total),
        rooms: rooms.rooms.iter().map(Into::into).collect(),
    })
}
