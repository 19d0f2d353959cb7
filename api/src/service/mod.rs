//! The typed service functions: one per RPC, taking its request message
//! and answering its response message. The HTTP and gRPC adapters
//! (`crate::rpc`) call them and nothing else; they call the backend.

mod operations;
mod rooms;
mod schedulers;

pub(crate) use operations::{
    OPERATIONS_MAX_PER_PAGE, cancel_operation, get_operation, list_operations,
};
pub(crate) use rooms::{
    ROOMS_MAX_PER_PAGE, allocate_room, forward_player_event, forward_room_event, get_room_address,
    list_rooms, update_room_status, update_room_with_ping,
};
pub(crate) use schedulers::{
    create_scheduler, delete_scheduler, get_scheduler, get_scheduler_versions, get_schedulers_info,
    list_schedulers, new_scheduler_version, patch_scheduler, switch_active_version,
};

use crate::error::ApiError;

fn scheduler_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("scheduler {name} not found"))
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// proto3's zero string means "not set".
fn non_empty(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}
