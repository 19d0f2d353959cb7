//! The management API: schedulers (§2.1 of the reference), operations
//! (§2.2), and maestro's room listing.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use maestro_engine::room::RoomStatus;
use maestro_engine::{Command, CommandReply, Operation};

use super::AppState;
use super::extract::{PathParams, QueryParams, read_json};
use crate::error::{ApiError, Code};
use crate::wire::{
    CancelOperationResponse, GetOperationResponse, GetSchedulerVersionsResponse,
    GetSchedulersInfoResponse, ListOperationItem, ListOperationsResponse, ListRoomsResponse,
    ListSchedulersResponse, OperationIdResponse, PatchSchedulerRequest, RoomItem, SchedulerInfo,
    SchedulerRequest, SchedulerResponse, SchedulerWithoutSpec, SwitchActiveVersionRequest,
};
use maestro_engine::query::Stage;
use maestro_engine::scheduler::patch::NoChange;

type Reply<T> = Result<Json<T>, ApiError>;

fn scheduler_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("scheduler {name} not found"))
}

/// The operation id of a command that enqueues one.
fn enqueued(reply: CommandReply) -> Reply<OperationIdResponse> {
    match reply.operation_id() {
        Some(operation_id) => Ok(Json(OperationIdResponse {
            operation_id: operation_id.clone(),
        })),
        None => Err(ApiError::new(
            Code::Internal,
            "the command was answered without an operation",
        )),
    }
}

/// `GET /schedulers?name=&game=&version=`: exact-match filters on the
/// active version; an empty filter matches everything.
pub(crate) async fn list_schedulers(
    State(state): State<AppState>,
    query: QueryParams,
) -> Reply<ListSchedulersResponse> {
    let name = query.non_empty(&["name"]);
    let game = query.non_empty(&["game"]);
    let version = query.non_empty(&["version"]);
    let schedulers = state
        .backend
        .schedulers()
        .await?
        .iter()
        .map(|summary| &summary.scheduler)
        .filter(|s| name.is_none_or(|n| s.name == n))
        .filter(|s| game.is_none_or(|g| s.game == g))
        .filter(|s| version.is_none_or(|v| s.spec.version == v))
        .map(SchedulerWithoutSpec::from)
        .collect();
    Ok(Json(ListSchedulersResponse { schedulers }))
}

/// `GET /schedulers/info?game=`: fleet counts per scheduler.
pub(crate) async fn schedulers_info(
    State(state): State<AppState>,
    query: QueryParams,
) -> Reply<GetSchedulersInfoResponse> {
    let game = query.non_empty(&["game"]);
    let schedulers: Vec<SchedulerInfo> = state
        .backend
        .schedulers()
        .await?
        .iter()
        .filter(|summary| game.is_none_or(|g| summary.scheduler.game == g))
        .map(|summary| SchedulerInfo::new(&summary.scheduler, &summary.counts))
        .collect();
    if let Some(game) = game
        && schedulers.is_empty()
    {
        return Err(ApiError::not_found(format!(
            "no schedulers found for game {game}"
        )));
    }
    Ok(Json(GetSchedulersInfoResponse { schedulers }))
}

/// `GET /schedulers/{name}?version=`.
pub(crate) async fn get_scheduler(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    query: QueryParams,
) -> Reply<SchedulerResponse> {
    let version = query.non_empty(&["version"]).map(str::to_string);
    match state
        .backend
        .scheduler(name.clone(), version.clone())
        .await?
    {
        Some(s) => Ok(Json(SchedulerResponse {
            scheduler: (&s).into(),
        })),
        None => Err(match version {
            Some(v) => ApiError::not_found(format!("scheduler {name} version {v} not found")),
            None => scheduler_not_found(&name),
        }),
    }
}

/// `POST /schedulers`: answers with the scheduler as stored, in state
/// `creating` at version v1.0.0.
pub(crate) async fn create_scheduler(
    State(state): State<AppState>,
    body: Body,
) -> Reply<SchedulerResponse> {
    let request: SchedulerRequest = read_json(body, state.config.body_limit_bytes).await?;
    let name = request.name.clone();
    let scheduler = request.into_engine(name);
    match state
        .backend
        .command(Command::CreateScheduler(scheduler))
        .await?
    {
        CommandReply::Created { scheduler, .. } => Ok(Json(SchedulerResponse {
            scheduler: scheduler.as_ref().into(),
        })),
        other => Err(ApiError::new(
            Code::Internal,
            format!("creating a scheduler answered {other:?}"),
        )),
    }
}

/// `POST /schedulers/{name}`: a whole new version; the path names the scheduler.
pub(crate) async fn new_scheduler_version(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    body: Body,
) -> Reply<OperationIdResponse> {
    let request: SchedulerRequest = read_json(body, state.config.body_limit_bytes).await?;
    let scheduler = request.into_engine(name);
    enqueued(
        state
            .backend
            .command(Command::NewSchedulerVersion(scheduler))
            .await?,
    )
}

/// `PATCH /schedulers/{name}`: the active version with the patch merged in
/// becomes a new version.
pub(crate) async fn patch_scheduler(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    body: Body,
) -> Reply<OperationIdResponse> {
    let request: PatchSchedulerRequest = read_json(body, state.config.body_limit_bytes).await?;
    let patch = request.into_patch();
    if patch.is_empty() {
        return Err(ApiError::new(Code::AlreadyExists, NoChange.to_string()));
    }
    let active = state
        .backend
        .scheduler(name.clone(), None)
        .await?
        .ok_or_else(|| scheduler_not_found(&name))?;
    let patched = patch
        .apply(&active)
        .map_err(|e| ApiError::new(Code::AlreadyExists, e.to_string()))?;
    enqueued(
        state
            .backend
            .command(Command::NewSchedulerVersion(patched))
            .await?,
    )
}

/// `PUT /schedulers/{name}`: switch the active version.
pub(crate) async fn switch_active_version(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    body: Body,
) -> Reply<OperationIdResponse> {
    let request: SwitchActiveVersionRequest =
        read_json(body, state.config.body_limit_bytes).await?;
    let command = Command::SwitchActiveVersion {
        scheduler: name,
        version: request.version,
    };
    enqueued(state.backend.command(command).await?)
}

/// `DELETE /schedulers/{name}`.
pub(crate) async fn delete_scheduler(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Reply<OperationIdResponse> {
    let command = Command::DeleteScheduler { scheduler: name };
    enqueued(state.backend.command(command).await?)
}

/// `GET /schedulers/{name}/versions`: newest first.
pub(crate) async fn scheduler_versions(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Reply<GetSchedulerVersionsResponse> {
    let versions = state
        .backend
        .versions(name.clone())
        .await?
        .ok_or_else(|| scheduler_not_found(&name))?;
    Ok(Json(GetSchedulerVersionsResponse {
        versions: versions.iter().map(Into::into).collect(),
    }))
}

/// Default and largest page size of the final-operations listing (upstream).
const OPERATIONS_PER_PAGE: u32 = 15;
pub(crate) const OPERATIONS_MAX_PER_PAGE: u32 = 100;

/// `GET /schedulers/{name}/operations?stage=&order_by=&page=&per_page=`.
pub(crate) async fn list_operations(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    query: QueryParams,
) -> Reply<ListOperationsResponse> {
    let (stage, stage_name) = match query.get(&["stage"]).unwrap_or("") {
        "pending" => (Stage::Pending, "pending"),
        "active" => (Stage::Active, "active"),
        "final" => (Stage::Final, "final"),
        other => {
            return Err(ApiError::invalid_argument(format!(
                "invalid stage filter: {other:?}; must be one of pending, active, final"
            )));
        }
    };
    let page = query.u32(&["page"])?;
    let per_page = query.u32(&["per_page", "perPage"])?;
    if stage != Stage::Final && (page.is_some() || per_page.is_some()) {
        return Err(ApiError::invalid_argument(format!(
            "there is no pagination filter implemented in : {stage_name} stage"
        )));
    }
    let page = page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::invalid_argument("page must be greater than 0"));
    }
    let per_page = per_page.unwrap_or(OPERATIONS_PER_PAGE);
    if per_page == 0 || per_page > OPERATIONS_MAX_PER_PAGE {
        // Upstream's wording, although 0 is refused too.
        return Err(ApiError::invalid_argument(
            "page size must be between 0 and 100",
        ));
    }
    let ascending = sorting_order(query.get(&["order_by", "orderBy"]).unwrap_or(""))?;

    let mut operations = state
        .backend
        .operations(name.clone(), stage)
        .await?
        .ok_or_else(|| scheduler_not_found(&name))?;
    if stage == Stage::Final {
        // The backend gives no order; ids break creation-time ties so that
        // pages are stable.
        operations.sort_by(|a, b| a.id.cmp(&b.id));
    }
    // Stable: pending operations with equal times stay in queue order.
    operations.sort_by(|a: &Operation, b: &Operation| {
        let by_time = a.created_at.cmp(&b.created_at);
        if ascending {
            by_time
        } else {
            by_time.reverse()
        }
    });

    let total = count_u32(operations.len());
    let (page, page_size, items) = if stage == Stage::Final {
        let skip = (page as usize - 1).saturating_mul(per_page as usize);
        let items = operations.iter().skip(skip).take(per_page as usize);
        (page, per_page, items.map(ListOperationItem::from).collect())
    } else {
        let items = operations.iter().map(ListOperationItem::from).collect();
        (1, total, items)
    };
    Ok(Json(ListOperationsResponse {
        page,
        page_size,
        total,
        operations: items,
    }))
}

/// Upstream's `extractSortingParameters`: `"<field> [asc|desc]"`, only
/// `createdAt`, descending by default. Returns whether to sort ascending.
fn sorting_order(order_by: &str) -> Result<bool, ApiError> {
    let words: Vec<&str> = order_by.split_whitespace().collect();
    let (field, order) = match words.as_slice() {
        [] => ("createdAt", "desc"),
        [field] => (*field, "desc"),
        [field, order] => (*field, *order),
        _ => {
            return Err(ApiError::invalid_argument(
                "invalid sorting parameters number",
            ));
        }
    };
    if field != "createdAt" {
        return Err(ApiError::invalid_argument(format!(
            "invalid sorting field: {field}"
        )));
    }
    match order {
        "asc" => Ok(true),
        "desc" => Ok(false),
        other => Err(ApiError::invalid_argument(format!(
            "invalid sorting order: {other}"
        ))),
    }
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `GET /schedulers/{name}/operations/{id}`.
pub(crate) async fn get_operation(
    State(state): State<AppState>,
    PathParams((name, id)): PathParams<(String, String)>,
) -> Reply<GetOperationResponse> {
    match state.backend.operation(name, id.clone()).await? {
        Some(op) => Ok(Json(GetOperationResponse {
            operation: (&op).into(),
        })),
        None => Err(ApiError::not_found(format!("operation {id} not found"))),
    }
}

/// `POST /schedulers/{name}/operations/{id}/cancel`. Unlike upstream the
/// cancellation is done when the answer comes.
pub(crate) async fn cancel_operation(
    State(state): State<AppState>,
    PathParams((name, id)): PathParams<(String, String)>,
) -> Reply<CancelOperationResponse> {
    let command = Command::CancelOperation {
        scheduler: name,
        operation_id: id,
    };
    state.backend.command(command).await?;
    Ok(Json(CancelOperationResponse {}))
}

/// Default and largest page size of the room listing.
const ROOMS_PER_PAGE: u32 = 100;
pub(crate) const ROOMS_MAX_PER_PAGE: u32 = 1000;

/// `GET /schedulers/{name}/rooms?status=&page=&per_page=` (maestro only):
/// rooms by id.
pub(crate) async fn list_rooms(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    query: QueryParams,
) -> Reply<ListRoomsResponse> {
    let status = match query.non_empty(&["status"]) {
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
    let page = query.u32(&["page"])?.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::invalid_argument("page must be greater than 0"));
    }
    let per_page = query
        .u32(&["per_page", "perPage"])?
        .unwrap_or(ROOMS_PER_PAGE);
    if per_page == 0 || per_page > ROOMS_MAX_PER_PAGE {
        return Err(ApiError::invalid_argument(format!(
            "page size must be between 1 and {ROOMS_MAX_PER_PAGE}"
        )));
    }
    let offset = (page as usize - 1).saturating_mul(per_page as usize);
    let rooms = state
        .backend
        .rooms(name.clone(), status, offset, per_page as usize)
        .await?
        .ok_or_else(|| scheduler_not_found(&name))?;
    Ok(Json(ListRoomsResponse {
        page,
        page_size: per_page,
        total: count_u32(rooms.total),
        rooms: rooms.rooms.iter().map(RoomItem::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::sorting_order;

    #[test]
    fn sorting_follows_upstream() {
        assert_eq!(sorting_order(""), Ok(false));
        assert_eq!(sorting_order("createdAt"), Ok(false));
        assert_eq!(sorting_order("createdAt asc"), Ok(true));
        assert_eq!(sorting_order(" createdAt   desc "), Ok(false));
        let message = |s| sorting_order(s).unwrap_err().message;
        assert_eq!(
            message("invalidField"),
            "invalid sorting field: invalidField"
        );
        assert_eq!(
            message("createdAt invalidOrder"),
            "invalid sorting order: invalidOrder"
        );
        assert_eq!(message("a b c"), "invalid sorting parameters number");
    }
}
