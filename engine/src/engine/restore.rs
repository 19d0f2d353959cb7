//! Start-up recovery: rebuilding a scheduler from what the store flushed.
//!
//! An operation found in progress belonged to a process that died. Upstream
//! leaves it in progress forever; here each definition says what happens:
//! operations that are safe to run again are resumed (moved back to the
//! head of the queue), the others are finished, and either way the
//! execution history says so.

use std::sync::Arc;

use super::Engine;
use super::entry::SchedulerEntry;
use crate::operation::{Definition, Operation, OperationStatus};
use crate::room::{RemovalReason, Room};
use crate::scheduler::Scheduler;
use crate::time::Time;
use crate::version::Version;

/// One stored version of a scheduler.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StoredVersion {
    pub scheduler: Scheduler,
    pub created_at: Time,
    pub is_active: bool,
}

/// A scheduler as the store holds it.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StoredScheduler {
    pub versions: Vec<StoredVersion>,
    pub operations: Vec<Operation>,
    pub rooms: Vec<Room>,
    /// Imported from Maestro Next and not switched over yet (`maestro
    /// migrate switch`): see [`Engine::is_watch_only`].
    #[cfg_attr(feature = "serde", serde(default))]
    pub watch_only: bool,
}

impl StoredScheduler {
    /// The scheduler's name (every version carries it), if any version is stored.
    pub fn name(&self) -> Option<&str> {
        self.versions.first().map(|v| v.scheduler.name.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("stored scheduler has no version")]
    NoVersion,
    #[error("scheduler {0} has {1} active versions, expected one")]
    ActiveVersions(String, usize),
    #[error("scheduler {scheduler} has an unreadable version {version:?}")]
    BadVersion { scheduler: String, version: String },
    #[error("scheduler {0} is already loaded")]
    AlreadyLoaded(String),
}

/// What recovery does with an operation that was in progress.
fn recovery(definition: &Definition) -> Recovery {
    match definition {
        // Re-running is safe: each step tolerates what is already done
        // (namespace exists, room gone, version stored, resources deleted).
        Definition::CreateScheduler { .. }
        | Definition::CreateNewSchedulerVersion { .. }
        | Definition::SwitchActiveVersion { .. }
        | Definition::RemoveRooms { .. }
        | Definition::DeleteScheduler => Recovery::Resume,
        // The reconciler re-decides what the fleet needs from the rooms
        // that exist; the periodic work simply runs again on its timer.
        Definition::AddRooms { .. }
        | Definition::HealthController { .. }
        | Definition::StorageCleanUp => Recovery::Finish,
    }
}

enum Recovery {
    Resume,
    Finish,
}

impl Engine {
    /// Loads a scheduler at start-up. Call once per stored scheduler before
    /// any other input; then drain `poll_effect` as usual.
    pub fn restore(&mut self, now: Time, stored: StoredScheduler) -> Result<(), RestoreError> {
        let now = self.advance(now);
        let active: Vec<&StoredVersion> = stored.versions.iter().filter(|v| v.is_active).collect();
        let first = stored.versions.first().ok_or(RestoreError::NoVersion)?;
        let name = first.scheduler.name.clone();
        if active.len() != 1 {
            return Err(RestoreError::ActiveVersions(name, active.len()));
        }
        if self.schedulers.contains_key(&name) {
            return Err(RestoreError::AlreadyLoaded(name));
        }
        let parse = |s: &Scheduler| {
            Version::parse(&s.spec.version).ok_or_else(|| RestoreError::BadVersion {
                scheduler: s.name.clone(),
                version: s.spec.version.clone(),
            })
        };
        let active = active[0];
        let mut entry =
            SchedulerEntry::new(active.scheduler.clone(), now, &self.config, &mut self.io);
        for v in &stored.versions {
            let version = parse(&v.scheduler)?;
            entry
                .versions
                .insert(version, Arc::new(v.scheduler.clone()));
            entry.version_created_at.insert(version, v.created_at);
        }
        entry.active = parse(&active.scheduler)?;
        entry.watch_only = stored.watch_only;

        for mut room in stored.rooms {
            // Statuses may be stale until the room reports again, and the
            // room gets a fresh ping timeout to do so.
            room.restored = true;
            room.last_ping_at = now;
            if !entry.fleet.contains(&room.id) {
                entry.fleet.insert(room);
            }
        }
        entry.refresh_replacement();
        // What was just loaded is already stored.
        let _ = entry.fleet.take_changed();

        self.restore_operations(now, &mut entry, stored.operations);

        // Validation rooms belong to a validation that is being re-run (a
        // watch-only scheduler's belong to Maestro Next, which runs it).
        let leftovers: Vec<String> = entry
            .fleet
            .rooms()
            .filter(|r| !entry.watch_only && r.is_validation_room && r.deletion.is_none())
            .map(|r| r.id.clone())
            .collect();
        for id in leftovers {
            entry.mark_for_deletion(now, &id, RemovalReason::NewVersionRollback);
            entry.emit_delete_room(&mut self.io, &id, RemovalReason::NewVersionRollback, None);
        }

        if entry.watch_only {
            self.io.watch_only.insert(name.clone());
        }
        self.io.touch(&name);
        self.schedulers.insert(name.clone(), entry);
        self.io.mark_dirty(&name);
        self.settle(now);
        Ok(())
    }

    fn restore_operations(
        &mut self,
        now: Time,
        entry: &mut SchedulerEntry,
        mut operations: Vec<Operation>,
    ) {
        let config = self.config.clone();
        operations.sort_by(|a, b| a.queue_key.cmp(&b.queue_key).then(a.id.cmp(&b.id)));
        entry.next_back_key = operations
            .iter()
            .map(|o| o.queue_key + 1)
            .max()
            .unwrap_or(0)
            .max(0);
        entry.next_front_key = operations
            .iter()
            .map(|o| o.queue_key - 1)
            .min()
            .unwrap_or(-1)
            .min(-1);
        let mut resumed = Vec::new();
        for mut op in operations {
            let id = op.id.clone();
            match op.status {
                OperationStatus::Pending => entry.queue.push_back(id.clone()),
                OperationStatus::InProgress => match recovery(&op.definition) {
                    Recovery::Resume => {
                        op.status = OperationStatus::Pending;
                        op.started_at = None;
                        op.lease = None;
                        op.queue_key = entry.next_front_key;
                        entry.next_front_key -= 1;
                        op.record(
                            now,
                            "Resumed after a restart: the process running it stopped",
                            config.max_history_entries,
                        );
                        resumed.push(id.clone());
                    }
                    Recovery::Finish => {
                        // `finalize` records the status change and persists it.
                        entry.operations.insert(id.clone(), op);
                        entry.finalize(
                            &mut self.io,
                            &config,
                            now,
                            &id,
                            OperationStatus::Finished,
                            "Interrupted by a restart: the reconciler takes over from the rooms that exist",
                        );
                        continue;
                    }
                },
                _ => {
                    let finished = op.finished_at.unwrap_or(op.created_at);
                    entry.final_ops.insert((finished, id.clone()));
                }
            }
            entry.operations.insert(id, op);
        }
        // Resumed operations go first, in their original order.
        for id in resumed.into_iter().rev() {
            entry.queue.push_front(id.clone());
            entry.persist_operation(&mut self.io, &id);
        }
        // This engine never writes a queue beyond the bound, and a restart
        // keeps it within (`EngineConfig::max_open_operations`). A store
        // written under a lower limit, or by a maestro that queued one
        // expired-room removal per check, may hold more: the newest are
        // canceled down to what users may hold plus one, so the engine's
        // own operations fit again and `enqueue`'s assertion holds.
        if entry.queue.len() > config.max_open_operations() {
            let keep = config.max_pending_operations.saturating_add(1);
            let line = format!(
                "Canceled at restart: the queue held more than {} operations",
                config.max_open_operations()
            );
            for id in entry.queue.split_off(keep) {
                entry.finalize(
                    &mut self.io,
                    &config,
                    now,
                    &id,
                    OperationStatus::Canceled,
                    &line,
                );
            }
        }
        // Rooms may be created once create_scheduler has run; a scheduler
        // whose create_scheduler record is gone was created long ago.
        entry.resources_ready = !entry.operations.values().any(|op| {
            matches!(op.definition, Definition::CreateScheduler { .. }) && !op.status.is_final()
        });
    }
}
