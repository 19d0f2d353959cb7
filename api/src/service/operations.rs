//! `OperationsService` (§2.2 of the reference).

use maestro_engine::query::Stage;
use maestro_engine::{Command, Operation};

use super::{count_u32, scheduler_not_found};
use crate::error::ApiError;
use crate::proto::api::v1;
use crate::rpc::Ctx;

/// Default and largest page size of the final-operations listing (upstream).
const OPERATIONS_PER_PAGE: u32 = 15;
pub(crate) const OPERATIONS_MAX_PER_PAGE: u32 = 100;

/// `GET /schedulers/{name}/operations?stage=&order_by=&page=&per_page=`.
pub(crate) async fn list_operations(
    ctx: Ctx,
    request: v1::ListOperationsRequest,
) -> Result<v1::ListOperationsResponse, ApiError> {
    let (stage, stage_name) = match request.stage.as_str() {
        "pending" => (Stage::Pending, "pending"),
        "active" => (Stage::Active, "active"),
        "final" => (Stage::Final, "final"),
        other => {
            return Err(ApiError::invalid_argument(format!(
                "invalid stage filter: {other:?}; must be one of pending, active, final"
            )));
        }
    };
    if stage != Stage::Final && (request.page.is_some() || request.per_page.is_some()) {
        return Err(ApiError::invalid_argument(format!(
            "there is no pagination filter implemented in : {stage_name} stage"
        )));
    }
    let page = request.page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::invalid_argument("page must be greater than 0"));
    }
    let per_page = request.per_page.unwrap_or(OPERATIONS_PER_PAGE);
    if per_page == 0 || per_page > OPERATIONS_MAX_PER_PAGE {
        // Upstream's wording, although 0 is refused too.
        return Err(ApiError::invalid_argument(
            "page size must be between 0 and 100",
        ));
    }
    let ascending = sorting_order(&request.order_by)?;

    let name = request.scheduler_name;
    let mut operations = ctx
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
        (page, per_page, items.map(Into::into).collect())
    } else {
        (1, total, operations.iter().map(Into::into).collect())
    };
    Ok(v1::ListOperationsResponse {
        page: Some(page),
        page_size: Some(page_size),
        total: Some(total),
        operations: items,
    })
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

/// `GET /schedulers/{name}/operations/{id}`.
pub(crate) async fn get_operation(
    ctx: Ctx,
    request: v1::GetOperationRequest,
) -> Result<v1::GetOperationResponse, ApiError> {
    let id = request.operation_id;
    match ctx
        .backend
        .operation(request.scheduler_name, id.clone())
        .await?
    {
        Some(op) => Ok(v1::GetOperationResponse {
            operation: Some((&op).into()),
        }),
        None => Err(ApiError::not_found(format!("operation {id} not found"))),
    }
}

/// `POST /schedulers/{name}/operations/{id}/cancel`. Unlike upstream the
/// cancellation is done when the answer comes.
pub(crate) async fn cancel_operation(
    ctx: Ctx,
    request: v1::CancelOperationRequest,
) -> Result<v1::CancelOperationResponse, ApiError> {
    let command = Command::CancelOperation {
        scheduler: request.scheduler_name,
        operation_id: request.operation_id,
    };
    ctx.backend.command(command).await?;
    Ok(v1::CancelOperationResponse {})
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
