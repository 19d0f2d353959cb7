//! Operations: every change to a scheduler or its fleet is one, queued per
//! scheduler and run one at a time.

use std::sync::Arc;

use crate::room::{RemovalReason, RoomId};
use crate::scheduler::Scheduler;
use crate::time::Time;
use crate::version::Version;

/// An operation's id: a UUID v4 drawn from the engine's seeded RNG.
pub type OperationId = String;

/// The discriminants are upstream's persisted integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum OperationStatus {
    Pending = 0,
    InProgress = 1,
    Canceled = 2,
    Finished = 3,
    Evicted = 4,
    Error = 5,
}

impl OperationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Pending => "pending",
            OperationStatus::InProgress => "in_progress",
            OperationStatus::Canceled => "canceled",
            OperationStatus::Finished => "finished",
            OperationStatus::Evicted => "evicted",
            OperationStatus::Error => "error",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, OperationStatus::Pending | OperationStatus::InProgress)
    }
}

/// What an operation does, with its input.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Definition {
    CreateScheduler {
        scheduler: Arc<Scheduler>,
    },
    CreateNewSchedulerVersion {
        scheduler: Arc<Scheduler>,
    },
    SwitchActiveVersion {
        new_active_version: Version,
    },
    AddRooms {
        amount: u64,
    },
    RemoveRooms {
        amount: u64,
        room_ids: Vec<RoomId>,
        reason: RemovalReason,
    },
    HealthController {
        took_action: Option<bool>,
    },
    StorageCleanUp,
    DeleteScheduler,
}

impl Definition {
    /// Upstream's `definitionName`.
    pub fn name(&self) -> &'static str {
        match self {
            Definition::CreateScheduler { .. } => "create_scheduler",
            Definition::CreateNewSchedulerVersion { .. } => "create_new_scheduler_version",
            Definition::SwitchActiveVersion { .. } => "switch_active_version",
            Definition::AddRooms { .. } => "add_rooms",
            Definition::RemoveRooms { .. } => "remove_rooms",
            Definition::HealthController { .. } => "health_controller",
            Definition::StorageCleanUp => "storage_clean_up",
            Definition::DeleteScheduler => "delete_scheduler",
        }
    }

    /// Finished operations that did nothing go to the hidden "no action"
    /// list instead of the history (upstream `HasNoAction`).
    pub fn has_no_action(&self) -> bool {
        match self {
            Definition::HealthController { took_action } => *took_action != Some(true),
            Definition::StorageCleanUp => true,
            _ => false,
        }
    }

    /// Operations whose finished records expire (upstream's 24 h TTL list).
    pub fn expires(&self) -> bool {
        matches!(
            self,
            Definition::HealthController { .. }
                | Definition::AddRooms { .. }
                | Definition::RemoveRooms { .. }
                | Definition::StorageCleanUp
        )
    }

    /// Version operations conflict with each other at enqueue time (#692).
    pub fn is_version_change(&self) -> bool {
        matches!(
            self,
            Definition::CreateNewSchedulerVersion { .. } | Definition::SwitchActiveVersion { .. }
        )
    }

    /// Operations that change the fleet's size; the reconciler waits for one
    /// to end before deciding again.
    pub fn is_fleet_change(&self) -> bool {
        matches!(
            self,
            Definition::AddRooms { .. } | Definition::RemoveRooms { .. }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HistoryEntry {
    pub at: Time,
    pub event: String,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Operation {
    pub id: OperationId,
    pub scheduler: String,
    pub definition: Definition,
    pub status: OperationStatus,
    pub created_at: Time,
    pub started_at: Option<Time>,
    pub finished_at: Option<Time>,
    pub execution_history: Vec<HistoryEntry>,
    /// While the operation runs: when its lease expires unless renewed. The
    /// engine renews it on a timer and persists it, so an operation whose
    /// lease lies in the past was held by a process that stopped.
    #[cfg_attr(feature = "serde", serde(default))]
    pub lease: Option<Time>,
    /// Position in the scheduler's queue: pending operations run in
    /// ascending order. Priority operations take keys below every other,
    /// so the store can keep the queue's order across a restart.
    pub queue_key: i64,
}

impl Operation {
    pub fn new(
        id: OperationId,
        scheduler: String,
        definition: Definition,
        now: Time,
        queue_key: i64,
    ) -> Operation {
        Operation {
            id,
            scheduler,
            definition,
            status: OperationStatus::Pending,
            created_at: now,
            started_at: None,
            finished_at: None,
            execution_history: vec![HistoryEntry {
                at: now,
                event: "Created".to_string(),
            }],
            lease: None,
            queue_key,
        }
    }

    /// Appends a history line, keeping at most `limit` (the first line and
    /// the newest ones) so a long-running operation stays bounded.
    pub fn record(&mut self, now: Time, event: impl Into<String>, limit: usize) {
        assert!(
            limit >= 2,
            "history limit keeps the first and the newest line"
        );
        if self.execution_history.len() >= limit {
            self.execution_history.remove(1);
        }
        self.execution_history.push(HistoryEntry {
            at: now,
            event: event.into(),
        });
    }
}
