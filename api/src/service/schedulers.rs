//! `SchedulersService` (§2.1 of the reference).

use maestro_engine::scheduler::patch::NoChange;
use maestro_engine::{Command, CommandReply};

use super::{non_empty, scheduler_not_found};
use crate::convert::scheduler as convert;
use crate::error::{ApiError, Code};
use crate::proto::api::v1;
use crate::rpc::Ctx;

/// The operation id of a command that enqueues one.
fn enqueued(reply: CommandReply) -> Result<String, ApiError> {
    reply.operation_id().cloned().ok_or_else(|| {
        ApiError::new(
            Code::Internal,
            "the command was answered without an operation",
        )
    })
}

/// `GET /schedulers?name=&game=&version=`: exact-match filters on the
/// active version; an empty filter matches everything.
pub(crate) async fn list_schedulers(
    ctx: Ctx,
    request: v1::ListSchedulersRequest,
) -> Result<v1::ListSchedulersResponse, ApiError> {
    let name = non_empty(&request.name);
    let game = non_empty(&request.game);
    let version = non_empty(&request.version);
    let schedulers = ctx
        .backend
        .schedulers()
        .await?
        .iter()
        .map(|summary| &summary.scheduler)
        .filter(|s| name.is_none_or(|n| s.name == n))
        .filter(|s| game.is_none_or(|g| s.game == g))
        .filter(|s| version.is_none_or(|v| s.spec.version == v))
        .map(v1::SchedulerWithoutSpec::from)
        .collect();
    Ok(v1::ListSchedulersResponse { schedulers })
}

/// `GET /schedulers/info?game=`: fleet counts per scheduler.
pub(crate) async fn get_schedulers_info(
    ctx: Ctx,
    request: v1::GetSchedulersInfoRequest,
) -> Result<v1::GetSchedulersInfoResponse, ApiError> {
    let game = non_empty(&request.game);
    let schedulers: Vec<v1::SchedulerInfo> = ctx
        .backend
        .schedulers()
        .await?
        .iter()
        .filter(|summary| game.is_none_or(|g| summary.scheduler.game == g))
        .map(|summary| convert::info(&summary.scheduler, &summary.counts))
        .collect();
    if let Some(game) = game
        && schedulers.is_empty()
    {
        return Err(ApiError::not_found(format!(
            "no schedulers found for game {game}"
        )));
    }
    Ok(v1::GetSchedulersInfoResponse { schedulers })
}

/// `GET /schedulers/{name}?version=`.
pub(crate) async fn get_scheduler(
    ctx: Ctx,
    request: v1::GetSchedulerRequest,
) -> Result<v1::GetSchedulerResponse, ApiError> {
    let name = request.scheduler_name;
    let version = non_empty(&request.version).map(str::to_string);
    match ctx.backend.scheduler(name.clone(), version.clone()).await? {
        Some(s) => Ok(v1::GetSchedulerResponse {
            scheduler: Some((&s).into()),
        }),
        None => Err(match version {
            Some(v) => ApiError::not_found(format!("scheduler {name} version {v} not found")),
            None => scheduler_not_found(&name),
        }),
    }
}

/// `POST /schedulers`: answers with the scheduler as stored, in state
/// `creating` at version v1.0.0.
pub(crate) async fn create_scheduler(
    ctx: Ctx,
    request: v1::CreateSchedulerRequest,
) -> Result<v1::CreateSchedulerResponse, ApiError> {
    let scheduler = convert::scheduler(request)?;
    match ctx
        .backend
        .command(Command::CreateScheduler(scheduler))
        .await?
    {
        CommandReply::Created { scheduler, .. } => Ok(v1::CreateSchedulerResponse {
            scheduler: Some(scheduler.as_ref().into()),
        }),
        other => Err(ApiError::new(
            Code::Internal,
            format!("creating a scheduler answered {other:?}"),
        )),
    }
}

/// `POST /schedulers/{name}`: a whole new version; the path names the scheduler.
pub(crate) async fn new_scheduler_version(
    ctx: Ctx,
    request: v1::NewSchedulerVersionRequest,
) -> Result<v1::NewSchedulerVersionResponse, ApiError> {
    let scheduler = convert::scheduler(request.into())?;
    let reply = ctx
        .backend
        .command(Command::NewSchedulerVersion(scheduler))
        .await?;
    Ok(v1::NewSchedulerVersionResponse {
        operation_id: enqueued(reply)?,
    })
}

/// `PATCH /schedulers/{name}`: the active version with the patch merged in
/// becomes a new version.
pub(crate) async fn patch_scheduler(
    ctx: Ctx,
    request: v1::PatchSchedulerRequest,
) -> Result<v1::PatchSchedulerResponse, ApiError> {
    let name = request.name.clone();
    let patch = convert::patch(request)?;
    if patch.is_empty() {
        return Err(ApiError::new(Code::AlreadyExists, NoChange.to_string()));
    }
    let active = ctx
        .backend
        .scheduler(name.clone(), None)
        .await?
        .ok_or_else(|| scheduler_not_found(&name))?;
    let patched = patch
        .apply(&active)
        .map_err(|e| ApiError::new(Code::AlreadyExists, e.to_string()))?;
    let reply = ctx
        .backend
        .command(Command::NewSchedulerVersion(patched))
        .await?;
    Ok(v1::PatchSchedulerResponse {
        operation_id: enqueued(reply)?,
    })
}

/// `PUT /schedulers/{name}`: switch the active version.
pub(crate) async fn switch_active_version(
    ctx: Ctx,
    request: v1::SwitchActiveVersionRequest,
) -> Result<v1::SwitchActiveVersionResponse, ApiError> {
    let command = Command::SwitchActiveVersion {
        scheduler: request.scheduler_name,
        version: request.version,
    };
    Ok(v1::SwitchActiveVersionResponse {
        operation_id: enqueued(ctx.backend.command(command).await?)?,
    })
}

/// `DELETE /schedulers/{name}`.
pub(crate) async fn delete_scheduler(
    ctx: Ctx,
    request: v1::DeleteSchedulerRequest,
) -> Result<v1::DeleteSchedulerResponse, ApiError> {
    let command = Command::DeleteScheduler {
        scheduler: request.scheduler_name,
    };
    Ok(v1::DeleteSchedulerResponse {
        operation_id: enqueued(ctx.backend.command(command).await?)?,
    })
}

/// `GET /schedulers/{name}/versions`: newest first.
pub(crate) async fn get_scheduler_versions(
    ctx: Ctx,
    request: v1::GetSchedulerVersionsRequest,
) -> Result<v1::GetSchedulerVersionsResponse, ApiError> {
    let name = request.scheduler_name;
    let versions = ctx
        .backend
        .versions(name.clone())
        .await?
        .ok_or_else(|| scheduler_not_found(&name))?;
    Ok(v1::GetSchedulerVersionsResponse {
        versions: versions.iter().map(Into::into).collect(),
    })
}
