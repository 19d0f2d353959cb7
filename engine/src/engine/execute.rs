//! Operation execution: each definition is a small state machine that emits
//! effects and advances on their results, timers and room events.

use std::collections::VecDeque;
use std::sync::Arc;

use super::entry::{EntryFate, SchedulerEntry};
use super::io::{InFlight, InFlightKind, Io};
use crate::config::EngineConfig;
use crate::effect::{Effect, RuntimeError, RuntimeErrorKind};
use crate::operation::{Definition, OperationId, OperationStatus};
use crate::room::{RemovalReason, RoomId, RoomStatus};
use crate::scheduler::{Scheduler, SchedulerState, change};
use crate::time::{Millis, Time};
use crate::version::{self, Version};

/// The operation in progress and how far it got.
#[derive(Debug)]
pub(crate) struct Running {
    pub id: OperationId,
    pub exec: Exec,
}

impl Running {
    pub fn deadline(&self) -> Option<Time> {
        match &self.exec {
            Exec::NewVersion(v) => v.room.as_ref().map(|_| v.deadline),
            Exec::DeleteScheduler { deadline } => *deadline,
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Exec {
    CreateScheduler,
    NewVersion(Validation),
    AddRooms {
        to_start: u64,
        in_flight: u64,
        created: u64,
        failed: u64,
    },
    RemoveRooms {
        to_delete: VecDeque<RoomId>,
        reason: RemovalReason,
        in_flight: u64,
        deleted: u64,
        failed: u64,
    },
    /// Waiting for the namespace delete (no deadline), then for the rooms to
    /// disappear (until the deadline).
    DeleteScheduler {
        deadline: Option<Time>,
    },
}

/// A major version's validation: a room from the new spec must become ready.
#[derive(Debug)]
pub(crate) struct Validation {
    pub scheduler: Arc<Scheduler>,
    pub version: Version,
    pub attempt: u32,
    pub room: Option<RoomId>,
    pub deadline: Time,
}

enum Step {
    Continue(Exec),
    Done(OperationStatus, String),
}

/// Why a cancel was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CancelRefusal {
    NotFound,
    Final(OperationStatus),
    NotCancelable(&'static str),
}

impl SchedulerEntry {
    /// Starts queued operations while none is in progress. Bounded by the
    /// queue's length: each turn pops one operation.
    pub fn drive(&mut self, io: &mut Io, config: &EngineConfig, now: Time) -> EntryFate {
        if self.watch_only {
            return EntryFate::Keep;
        }
        let bound = self.queue.len() + 1;
        for _ in 0..bound {
            if self.running.is_some() {
                break;
            }
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            if self.start(io, config, now, id) == EntryFate::Remove {
                return EntryFate::Remove;
            }
        }
        EntryFate::Keep
    }

    fn start(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        id: OperationId,
    ) -> EntryFate {
        let Some(op) = self.operations.get_mut(&id) else {
            return EntryFate::Keep;
        };
        if op.status != OperationStatus::Pending {
            return EntryFate::Keep; // canceled while queued
        }
        op.status = OperationStatus::InProgress;
        op.started_at = Some(now);
        op.lease = Some(now + config.operation_lease_ttl);
        self.lease_renewal = Some(now + Millis(config.operation_lease_ttl.0 / 2));
        op.record(now, "Starting operation", config.max_history_entries);
        let definition = op.definition.clone();
        let step = match definition {
            Definition::CreateScheduler { .. } => {
                let spec = Arc::clone(self.active());
                io.emit_runtime(
                    InFlight {
                        scheduler: self.name.clone(),
                        what: InFlightKind::CreateResources,
                        operation: Some(id.clone()),
                    },
                    |eid| Effect::CreateSchedulerResources { id: eid, spec },
                );
                Step::Continue(Exec::CreateScheduler)
            }
            Definition::CreateNewSchedulerVersion { scheduler } => {
                self.start_new_version(io, config, now, &id, scheduler)
            }
            Definition::SwitchActiveVersion { new_active_version } => {
                if self.versions.contains_key(&new_active_version) {
                    self.switch_active(io, new_active_version);
                    Step::Done(OperationStatus::Finished, String::new())
                } else {
                    Step::Done(
                        OperationStatus::Error,
                        format!("version {new_active_version} not found"),
                    )
                }
            }
            Definition::AddRooms { amount } => {
                let exec = Exec::AddRooms {
                    to_start: amount.min(u64::from(config.add_rooms_limit)),
                    in_flight: 0,
                    created: 0,
                    failed: 0,
                };
                self.pump(io, config, now, &id, exec)
            }
            Definition::RemoveRooms {
                amount,
                room_ids,
                reason,
            } => {
                let mut to_delete: VecDeque<RoomId> = VecDeque::new();
                let mut spared = 0;
                for room in room_ids {
                    let Some(current) = self.fleet.get(&room) else {
                        continue;
                    };
                    if current.deletion.is_none() {
                        // The rooms were chosen when the operation was
                        // enqueued; a restart can bring one back busy (its
                        // deletion mark was soft state lost in a crash, and
                        // its record says occupied) or unconfirmed. A
                        // scale-down or rollout never takes such a room: the
                        // reconciler decides again once the fleet settles.
                        if reason.spares_busy_rooms()
                            && (current.status.is_busy() || current.restored)
                        {
                            spared += 1;
                            continue;
                        }
                        self.mark_for_deletion(now, &room, reason);
                    }
                    to_delete.push_back(room);
                }
                if spared > 0 {
                    let event = format!(
                        "{spared} room(s) spared: busy or not yet confirmed after a restart"
                    );
                    self.record(config, now, &id, &event);
                }
                let amount = amount.min(u64::from(config.remove_rooms_limit));
                let by_amount = self
                    .fleet
                    .removal_candidates(usize::try_from(amount).unwrap_or(0), false);
                for room in by_amount {
                    self.mark_for_deletion(now, &room, reason);
                    to_delete.push_back(room);
                }
                let exec = Exec::RemoveRooms {
                    to_delete,
                    reason,
                    in_flight: 0,
                    deleted: 0,
                    failed: 0,
                };
                self.pump(io, config, now, &id, exec)
            }
            Definition::HealthController { .. } => {
                // The periodic full audit: recompute every index from scratch.
                self.health_runs += 1;
                if self
                    .health_runs
                    .is_multiple_of(u64::from(config.fleet_audit_every.max(1)))
                    && let Err(broken) = self.fleet.check_consistency()
                {
                    panic!("scheduler {} fleet is inconsistent: {broken}", self.name);
                }
                let took_action = self.reconcile(io, config, now);
                if let Some(op) = self.operations.get_mut(&id) {
                    op.definition = Definition::HealthController {
                        took_action: Some(took_action),
                    };
                }
                Step::Done(OperationStatus::Finished, String::new())
            }
            Definition::StorageCleanUp => {
                let ids = self.clean_up_operations(config, now);
                if !ids.is_empty() {
                    io.emit(Effect::DeleteOperations {
                        scheduler: self.name.clone(),
                        ids,
                    });
                }
                Step::Done(OperationStatus::Finished, String::new())
            }
            Definition::DeleteScheduler => {
                self.deleting = true;
                self.set_state(SchedulerState::Terminating, io);
                let queued: Vec<OperationId> = self.queue.drain(..).collect();
                for queued_id in queued {
                    self.finalize(
                        io,
                        config,
                        now,
                        &queued_id,
                        OperationStatus::Canceled,
                        "Canceled: the scheduler is being deleted",
                    );
                }
                let scheduler = self.name.clone();
                io.emit_runtime(
                    InFlight {
                        scheduler: scheduler.clone(),
                        what: InFlightKind::DeleteResources,
                        operation: Some(id.clone()),
                    },
                    |eid| Effect::DeleteSchedulerResources { id: eid, scheduler },
                );
                Step::Continue(Exec::DeleteScheduler { deadline: None })
            }
        };
        self.persist_operation(io, &id);
        self.settle(io, config, now, id, step)
    }

    /// Applies a step's outcome: keep running, or finish.
    fn settle(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        id: OperationId,
        step: Step,
    ) -> EntryFate {
        match step {
            Step::Continue(exec) => {
                self.running = Some(Running { id, exec });
                EntryFate::Keep
            }
            Step::Done(status, message) => {
                self.running = None;
                let fate = self.after_finish(io, config, now, &id, status);
                self.finalize(io, config, now, &id, status, &message);
                fate
            }
        }
    }

    /// Rollbacks and terminal consequences of an operation ending.
    fn after_finish(
        &mut self,
        io: &mut Io,
        _config: &EngineConfig,
        _now: Time,
        id: &str,
        status: OperationStatus,
    ) -> EntryFate {
        let Some(op) = self.operations.get(id) else {
            return EntryFate::Keep;
        };
        match (&op.definition, status) {
            // A scheduler whose resources could not be created is removed (upstream rollback).
            (Definition::CreateScheduler { .. }, OperationStatus::Error) => EntryFate::Remove,
            (Definition::DeleteScheduler, OperationStatus::Finished) => EntryFate::Remove,
            (Definition::DeleteScheduler, _) => {
                self.deleting = false;
                self.set_state(SchedulerState::InSync, io);
                EntryFate::Keep
            }
            (
                Definition::CreateNewSchedulerVersion { .. },
                OperationStatus::Error | OperationStatus::Canceled,
            ) => {
                self.set_state(SchedulerState::InSync, io);
                EntryFate::Keep
            }
            _ => EntryFate::Keep,
        }
    }

    /// Emits as much of an add/remove as the batch allows, or finishes it.
    fn pump(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        id: &str,
        exec: Exec,
    ) -> Step {
        match exec {
            Exec::AddRooms {
                mut to_start,
                mut in_flight,
                created,
                mut failed,
            } => {
                let batch = u64::from(config.add_rooms_batch_size.max(1));
                let reconciler = self.is_reconciler_add(id);
                if reconciler {
                    // Rooms already in flight count in the deficit's fleet.
                    to_start = to_start.min(self.deficit(config, now));
                }
                while in_flight < batch && to_start > 0 {
                    to_start -= 1;
                    let bound = if reconciler {
                        self.in_service_bound(now)
                    } else {
                        None
                    };
                    let spec = Arc::clone(self.active());
                    match self.create_room(io, config, now, spec, false, Some(id)) {
                        Ok(_) => in_flight += 1,
                        Err(_) => failed += 1,
                    }
                    // The fleet never grows past its target by the
                    // reconciler's hand (a user's add_rooms may).
                    if bound.is_some_and(|b| self.fleet.counts().in_service() > b) {
                        self.overshoot += 1;
                    }
                }
                if to_start == 0 && in_flight == 0 {
                    return if failed > created {
                        Step::Done(
                            OperationStatus::Error,
                            format!(
                                "failed to add rooms: {failed} of {} failed",
                                failed + created
                            ),
                        )
                    } else {
                        Step::Done(OperationStatus::Finished, format!("added {created} rooms"))
                    };
                }
                Step::Continue(Exec::AddRooms {
                    to_start,
                    in_flight,
                    created,
                    failed,
                })
            }
            Exec::RemoveRooms {
                mut to_delete,
                reason,
                mut in_flight,
                mut deleted,
                failed,
            } => {
                let batch = u64::from(config.remove_rooms_batch_size.max(1));
                while in_flight < batch {
                    let Some(room) = to_delete.pop_front() else {
                        break;
                    };
                    if !self.fleet.contains(&room) {
                        deleted += 1;
                        continue;
                    }
                    self.emit_delete_room(io, &room, reason, Some(id));
                    in_flight += 1;
                }
                if to_delete.is_empty() && in_flight == 0 {
                    return if failed > 0 {
                        Step::Done(
                            OperationStatus::Error,
                            format!("failed to remove {failed} of {} rooms", failed + deleted),
                        )
                    } else {
                        Step::Done(
                            OperationStatus::Finished,
                            format!("removed {deleted} rooms"),
                        )
                    };
                }
                Step::Continue(Exec::RemoveRooms {
                    to_delete,
                    reason,
                    in_flight,
                    deleted,
                    failed,
                })
            }
            other => Step::Continue(other),
        }
    }

    pub fn emit_delete_room(
        &mut self,
        io: &mut Io,
        room: &str,
        reason: RemovalReason,
        op: Option<&str>,
    ) {
        let scheduler = self.name.clone();
        let room_id = room.to_string();
        io.emit_runtime(
            InFlight {
                scheduler: scheduler.clone(),
                what: InFlightKind::DeleteRoom(room_id.clone()),
                operation: op.map(str::to_string),
            },
            |eid| Effect::DeleteRoom {
                id: eid,
                scheduler,
                room: room_id,
                reason,
            },
        );
    }

    fn start_new_version(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        id: &str,
        requested: Arc<Scheduler>,
    ) -> Step {
        let active = Arc::clone(self.active());
        let major = change::is_major_change(&active, &requested);
        let new_version = version::next_version(self.versions.keys(), self.active, major);
        let mut scheduler = (*requested).clone();
        scheduler.spec.version = new_version.to_string();
        scheduler.rollback_version = Some(active.spec.version.clone());
        scheduler.state = SchedulerState::InSync;
        scheduler.created_at = active.created_at;
        scheduler.last_downscale_at = active.last_downscale_at;
        self.set_state(SchedulerState::Creating, io);
        let scheduler = Arc::new(scheduler);
        if !major {
            return self.complete_new_version(io, config, now, id, scheduler, new_version);
        }
        self.record(
            config,
            now,
            id,
            "Major version detected, starting game room validation process...",
        );
        let validation = Validation {
            scheduler,
            version: new_version,
            attempt: 0,
            room: None,
            deadline: now,
        };
        self.next_validation_attempt(io, config, now, id, validation)
    }

    fn record(&mut self, config: &EngineConfig, now: Time, id: &str, event: &str) {
        if let Some(op) = self.operations.get_mut(id) {
            op.record(now, event, config.max_history_entries);
        }
    }

    fn next_validation_attempt(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        id: &str,
        mut validation: Validation,
    ) -> Step {
        let attempts = config.room_validation_attempts.max(1);
        // Bounded: every failed attempt increments `attempt`.
        while validation.attempt < attempts {
            validation.attempt += 1;
            let spec = Arc::clone(&validation.scheduler);
            match self.create_room(io, config, now, spec, true, Some(id)) {
                Ok(room) => {
                    validation.room = Some(room);
                    validation.deadline = now + config.room_validation_timeout;
                    return Step::Continue(Exec::NewVersion(validation));
                }
                Err(message) => {
                    let line = format!(
                        "{}º Attempt: Unexpected Error: {message}",
                        validation.attempt
                    );
                    self.record(config, now, id, &line);
                }
            }
        }
        self.record(
            config,
            now,
            id,
            "All validation attempts have failed, operation aborted!",
        );
        Step::Done(
            OperationStatus::Error,
            "error validating game room: all attempts failed".to_string(),
        )
    }

    fn complete_new_version(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        id: &str,
        scheduler: Arc<Scheduler>,
        version: Version,
    ) -> Step {
        self.versions.insert(version, Arc::clone(&scheduler));
        self.version_created_at.insert(version, now);
        io.emit(Effect::PersistScheduler {
            scheduler,
            active: false,
        });
        // A new version may make some rooms' version replaceable relative to
        // nothing yet; the replacement map changes only on switch.
        let switch = Definition::SwitchActiveVersion {
            new_active_version: version,
        };
        // Bypasses the enqueue-time conflict check on purpose (#696).
        // The only open version operation hands over to this one: one
        // version operation stays open (`EngineConfig::max_open_operations`).
        let switch_id = self.enqueue(io, config, now, switch, false);
        let line = format!("enqueued switch active version operation with id: {switch_id}");
        self.record(config, now, id, &line);
        Step::Done(OperationStatus::Finished, String::new())
    }

    /// Re-examines the validation in progress after its room changed, was
    /// deleted, or its deadline passed.
    pub fn check_validation(&mut self, io: &mut Io, config: &EngineConfig, now: Time) -> EntryFate {
        if !matches!(
            self.running,
            Some(Running {
                exec: Exec::NewVersion(_),
                ..
            })
        ) {
            return EntryFate::Keep;
        }
        let Some(Running {
            id,
            exec: Exec::NewVersion(validation),
        }) = self.running.take()
        else {
            unreachable!("checked just above");
        };
        let Some(room_id) = validation.room.clone() else {
            self.running = Some(Running {
                id,
                exec: Exec::NewVersion(validation),
            });
            return EntryFate::Keep;
        };
        let attempt = validation.attempt;
        let outcome = match self.fleet.get(&room_id) {
            None => Some(Err(format!(
                "{attempt}º Attempt: The room created for validation with ID {room_id} was deleted before it became ready."
            ))),
            Some(room) => {
                let accepted = room.status == RoomStatus::Ready
                    || (config.room_validation_accept_occupied
                        && room.status == RoomStatus::Occupied);
                if accepted {
                    Some(Ok(()))
                } else if room.status == RoomStatus::Error {
                    Some(Err(format!(
                        "{attempt}º Attempt: The room created for validation with ID {room_id} is entering in error state. Last event in the game room: {}.",
                        room.instance_description
                    )))
                } else if now >= validation.deadline {
                    Some(Err(format!(
                        "{attempt}º Attempt: Got timeout waiting for the GRU with ID: {room_id} to be ready."
                    )))
                } else {
                    None
                }
            }
        };
        let step = match outcome {
            None => Step::Continue(Exec::NewVersion(validation)),
            Some(result) => {
                if self.fleet.contains(&room_id) {
                    self.mark_for_deletion(
                        now,
                        &room_id,
                        RemovalReason::NewVersionValidationFinished,
                    );
                    self.emit_delete_room(
                        io,
                        &room_id,
                        RemovalReason::NewVersionValidationFinished,
                        None,
                    );
                }
                match result {
                    Ok(()) => {
                        let line = format!("{attempt}º Attempt: Game room validation success!");
                        self.record(config, now, &id, &line);
                        let (scheduler, version) =
                            (Arc::clone(&validation.scheduler), validation.version);
                        self.complete_new_version(io, config, now, &id, scheduler, version)
                    }
                    Err(line) => {
                        self.record(config, now, &id, &line);
                        let next = Validation {
                            room: None,
                            ..validation
                        };
                        self.next_validation_attempt(io, config, now, &id, next)
                    }
                }
            }
        };
        self.persist_operation(io, &id);
        let fate = self.settle(io, config, now, id, step);
        if fate == EntryFate::Remove {
            return fate;
        }
        self.drive(io, config, now)
    }

    /// Deadlines of the running operation.
    pub fn on_operation_timeout(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
    ) -> EntryFate {
        let Some(deadline) = self.running.as_ref().and_then(Running::deadline) else {
            return EntryFate::Keep;
        };
        if now < deadline {
            return EntryFate::Keep;
        }
        match self.running.as_ref().map(|r| &r.exec) {
            Some(Exec::NewVersion(_)) => self.check_validation(io, config, now),
            Some(Exec::DeleteScheduler { .. }) => {
                let Some(running) = self.running.take() else {
                    return EntryFate::Keep;
                };
                self.record(
                    config,
                    now,
                    &running.id,
                    "Timed out waiting for the rooms to terminate",
                );
                let step = Step::Done(OperationStatus::Finished, String::new());
                self.settle(io, config, now, running.id, step)
            }
            _ => EntryFate::Keep,
        }
    }

    /// Applies a runtime effect's result to the operation that asked for it.
    pub fn on_operation_effect(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        in_flight: &InFlight,
        result: &Result<(), RuntimeError>,
    ) -> EntryFate {
        let Some(op_id) = in_flight.operation.as_deref() else {
            return EntryFate::Keep;
        };
        if self.running.as_ref().is_none_or(|r| r.id != op_id) {
            return EntryFate::Keep; // the operation ended (canceled) meanwhile
        }
        let Some(Running { id, exec }) = self.running.take() else {
            return EntryFate::Keep;
        };
        let step = match (exec, &in_flight.what) {
            (Exec::CreateScheduler, InFlightKind::CreateResources) => match result {
                // AlreadyExists is fine: the operation may be re-run after a crash.
                Ok(())
                | Err(RuntimeError {
                    kind: RuntimeErrorKind::AlreadyExists,
                    ..
                }) => {
                    self.resources_ready = true;
                    self.set_state(SchedulerState::InSync, io);
                    io.mark_dirty(&self.name);
                    Step::Done(OperationStatus::Finished, String::new())
                }
                Err(e) => Step::Done(
                    OperationStatus::Error,
                    format!("failed to create scheduler resources: {}", e.message),
                ),
            },
            (Exec::DeleteScheduler { .. }, InFlightKind::DeleteResources) => match result {
                Ok(())
                | Err(RuntimeError {
                    kind: RuntimeErrorKind::NotFound,
                    ..
                }) => {
                    if self.fleet.is_empty() {
                        Step::Done(OperationStatus::Finished, String::new())
                    } else {
                        // Every room goes with the namespace: each is
                        // terminating from now, and one still here a
                        // deletion timeout later is deleted again (its pod
                        // may have gone unseen; see `on_timeout`).
                        let ids: Vec<RoomId> = self
                            .fleet
                            .rooms()
                            .filter(|r| r.deletion.is_none())
                            .map(|r| r.id.clone())
                            .collect();
                        for id in ids {
                            self.mark_for_deletion(now, &id, RemovalReason::SchedulerDeleted);
                        }
                        io.mark_dirty(&self.name);
                        Step::Continue(Exec::DeleteScheduler {
                            deadline: Some(now + config.delete_scheduler_timeout),
                        })
                    }
                }
                Err(e) => Step::Done(
                    OperationStatus::Error,
                    format!("failed to delete scheduler resources: {}", e.message),
                ),
            },
            (
                Exec::AddRooms {
                    to_start,
                    in_flight: n,
                    created,
                    failed,
                },
                InFlightKind::CreateRoom(_),
            ) => {
                let n = n
                    .checked_sub(1)
                    .expect("add_rooms result without a creation in flight");
                let (created, failed) = match result {
                    Ok(()) => (created + 1, failed),
                    Err(_) => (created, failed + 1),
                };
                let exec = Exec::AddRooms {
                    to_start,
                    in_flight: n,
                    created,
                    failed,
                };
                self.pump(io, config, now, &id, exec)
            }
            (
                Exec::RemoveRooms {
                    to_delete,
                    reason,
                    in_flight: n,
                    deleted,
                    failed,
                },
                InFlightKind::DeleteRoom(_),
            ) => {
                let n = n
                    .checked_sub(1)
                    .expect("remove_rooms result without a deletion in flight");
                let (deleted, failed) = match result {
                    Ok(())
                    | Err(RuntimeError {
                        kind: RuntimeErrorKind::NotFound,
                        ..
                    }) => (deleted + 1, failed),
                    Err(_) => (deleted, failed + 1),
                };
                let exec = Exec::RemoveRooms {
                    to_delete,
                    reason,
                    in_flight: n,
                    deleted,
                    failed,
                };
                self.pump(io, config, now, &id, exec)
            }
            (Exec::NewVersion(validation), InFlightKind::CreateRoom(room)) => {
                if result.is_err() && validation.room.as_deref() == Some(room.as_str()) {
                    // The room record was already dropped by the room-level
                    // handler; check_validation sees it gone.
                    self.running = Some(Running {
                        id,
                        exec: Exec::NewVersion(validation),
                    });
                    return self.check_validation(io, config, now);
                }
                Step::Continue(Exec::NewVersion(validation))
            }
            (exec, _) => Step::Continue(exec),
        };
        self.persist_operation(io, &id);
        let fate = self.settle(io, config, now, id, step);
        if fate == EntryFate::Remove {
            return fate;
        }
        self.drive(io, config, now)
    }

    /// The fleet lost a room: a delete_scheduler waiting for the fleet to
    /// empty may be done.
    pub fn on_room_gone(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        room: &str,
    ) -> EntryFate {
        let validating = matches!(
            self.running.as_ref().map(|r| &r.exec),
            Some(Exec::NewVersion(v)) if v.room.as_deref() == Some(room)
        );
        if validating {
            return self.check_validation(io, config, now);
        }
        let waiting = matches!(
            self.running.as_ref().map(|r| &r.exec),
            Some(Exec::DeleteScheduler { deadline: Some(_) })
        );
        if waiting && self.fleet.is_empty() {
            let Some(running) = self.running.take() else {
                return EntryFate::Keep;
            };
            let step = Step::Done(OperationStatus::Finished, String::new());
            return self.settle(io, config, now, running.id, step);
        }
        EntryFate::Keep
    }

    /// Cancels a pending or in-progress operation. It ends `canceled`
    /// (upstream ends in-progress cancels as `error`, a regression).
    pub fn cancel(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        id: &str,
    ) -> Result<EntryFate, CancelRefusal> {
        let op = self.operations.get(id).ok_or(CancelRefusal::NotFound)?;
        match op.status {
            OperationStatus::Pending => {
                self.queue.retain(|queued| queued != id);
                self.finalize(
                    io,
                    config,
                    now,
                    id,
                    OperationStatus::Canceled,
                    "Canceled by user",
                );
                Ok(EntryFate::Keep)
            }
            OperationStatus::InProgress => {
                match op.definition {
                    Definition::DeleteScheduler => {
                        return Err(CancelRefusal::NotCancelable(
                            "delete_scheduler cannot be canceled once started",
                        ));
                    }
                    Definition::CreateScheduler { .. } => {
                        return Err(CancelRefusal::NotCancelable(
                            "create_scheduler cannot be canceled once started",
                        ));
                    }
                    _ => {}
                }
                let Some(running) = self.running.take() else {
                    return Err(CancelRefusal::NotFound);
                };
                assert_eq!(
                    running.id, id,
                    "the in-progress operation is the running one"
                );
                if let Exec::NewVersion(Validation {
                    room: Some(room), ..
                }) = &running.exec
                    && self.fleet.contains(room)
                {
                    self.mark_for_deletion(now, room, RemovalReason::NewVersionRollback);
                    self.emit_delete_room(io, room, RemovalReason::NewVersionRollback, None);
                }
                let step = Step::Done(OperationStatus::Canceled, "Canceled by user".to_string());
                let fate = self.settle(io, config, now, running.id, step);
                if fate == EntryFate::Remove {
                    return Ok(fate);
                }
                Ok(self.drive(io, config, now))
            }
            status => Err(CancelRefusal::Final(status)),
        }
    }
}
