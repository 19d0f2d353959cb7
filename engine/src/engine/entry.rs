//! One scheduler's state inside the engine: its versions, its fleet, its
//! operation queue, and its timers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use super::execute::Running;
use super::io::{InFlight, InFlightKind, Io};
use super::rooms::Allocations;
use crate::config::EngineConfig;
use crate::disruption;
use crate::effect::Effect;
use crate::health::{self, Caps, Decision};
use crate::operation::{Definition, Operation, OperationId, OperationStatus};
use crate::room::{Deletion, ExpiryTimeouts, Fleet, RemovalReason, RoomId, RoomStatus};
use crate::scheduler::{Scheduler, SchedulerState, change};
use crate::time::{Millis, Time};
use crate::version::Version;

#[derive(Debug)]
pub(crate) struct SchedulerEntry {
    pub name: String,
    pub versions: BTreeMap<Version, Arc<Scheduler>>,
    pub version_created_at: BTreeMap<Version, Time>,
    pub active: Version,
    pub fleet: Fleet,
    /// The namespace exists: rooms may be created.
    pub resources_ready: bool,
    /// delete_scheduler started: no new commands, no reconcile.
    pub deleting: bool,
    /// Pending operations, in execution order.
    pub queue: VecDeque<OperationId>,
    /// The one operation in progress, if any (the invariant is structural).
    pub running: Option<Running>,
    pub operations: BTreeMap<OperationId, Operation>,
    /// Finished operations by finish time, for expiry and trimming.
    pub final_ops: BTreeSet<(Time, OperationId)>,
    pub next_health_check: Time,
    /// Health controller runs so far (for `EngineConfig::fleet_audit_every`).
    pub health_runs: u64,
    pub next_clean_up: Time,
    pub next_disruption_check: Time,
    /// The disruption budget last set (or being set); `None` until the
    /// first check and after a failure, so the next check sets it again.
    pub disruption_budget: Option<u32>,
    /// A reconcile the cooldown postponed.
    pub reconcile_at: Option<Time>,
    pub allocations: Allocations,
    /// When the running operation's lease is renewed next.
    pub lease_renewal: Option<Time>,
    /// Next queue keys at the back and at the front of the queue.
    pub next_back_key: i64,
    pub next_front_key: i64,
    /// Rooms the reconciler created beyond what its target allowed at that
    /// moment (desired, plus maxSurge during a rollout). Must stay 0:
    /// `check_invariants` reports any.
    pub overshoot: u64,
    /// Imported from Maestro Next and not switched over yet: its rooms are
    /// tracked (pod watch, pings, allocations) but maestro changes nothing
    /// in the cluster for it: no operation, no reconcile, no runtime call.
    pub watch_only: bool,
}

/// Something an entry asks the engine to do to the entry itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum EntryFate {
    Keep,
    /// The scheduler is gone (deleted, or its creation failed).
    Remove,
}

impl SchedulerEntry {
    pub fn new(
        scheduler: Scheduler,
        now: Time,
        config: &EngineConfig,
        io: &mut Io,
    ) -> SchedulerEntry {
        let active = Version::parse(&scheduler.spec.version).unwrap_or(Version::FIRST);
        let name = scheduler.name.clone();
        let timeouts = ExpiryTimeouts {
            initialization: config.room_initialization_timeout,
            ping: config.room_ping_timeout,
            deletion: config.room_deletion_timeout,
        };
        SchedulerEntry {
            name,
            versions: BTreeMap::from([(active, Arc::new(scheduler))]),
            version_created_at: BTreeMap::from([(active, now)]),
            active,
            fleet: Fleet::with_records(timeouts, config.room_records),
            resources_ready: false,
            deleting: false,
            queue: VecDeque::new(),
            running: None,
            operations: BTreeMap::new(),
            final_ops: BTreeSet::new(),
            next_health_check: now + config.health_controller_interval,
            health_runs: 0,
            next_clean_up: now + clean_up_delay(config.storage_clean_up_interval, io),
            next_disruption_check: now,
            disruption_budget: None,
            reconcile_at: None,
            allocations: Allocations::default(),
            lease_renewal: None,
            next_back_key: 0,
            next_front_key: -1,
            overshoot: 0,
            watch_only: false,
        }
    }

    pub fn active(&self) -> &Arc<Scheduler> {
        self.versions
            .get(&self.active)
            .expect("the active version is always stored")
    }

    pub fn active_mut(&mut self) -> &mut Scheduler {
        let active = self
            .versions
            .get_mut(&self.active)
            .expect("the active version is always stored");
        Arc::make_mut(active)
    }

    pub fn persist_active(&self, io: &mut Io) {
        io.emit(Effect::PersistScheduler {
            scheduler: Arc::clone(self.active()),
            active: true,
        });
    }

    pub fn set_state(&mut self, state: SchedulerState, io: &mut Io) {
        if self.active().state != state {
            self.active_mut().state = state;
            self.persist_active(io);
        }
    }

    pub fn persist_operation(&self, io: &mut Io, id: &str) {
        if let Some(op) = self.operations.get(id) {
            io.emit(Effect::PersistOperation(Box::new(op.clone())));
        }
    }

    /// Adds an operation to the queue; priority ones go to the head.
    ///
    /// Only users' commands are refused for a full queue (in
    /// `Engine::enqueue_user`); the engine's own operations are bounded by
    /// kind, and the assertion below holds the sum of both to
    /// `EngineConfig::max_open_operations`.
    pub fn enqueue(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        definition: Definition,
        priority: bool,
    ) -> OperationId {
        let bound = config.max_open_operations();
        assert!(
            self.queue.len() < bound,
            "scheduler {}: enqueueing {} onto {} pending operations would exceed the bound of {bound}",
            self.name,
            definition.name(),
            self.queue.len()
        );
        // A fresh uuid collides only if a shell reused a seed across
        // process runs; retry (bounded) rather than trust that it did not.
        let mut id = io.rng.uuid();
        for _ in 0..config.operation_id_retries {
            if !self.operations.contains_key(&id) {
                break;
            }
            id = io.rng.uuid();
        }
        let queue_key = if priority {
            self.next_front_key -= 1;
            self.next_front_key + 1
        } else {
            self.next_back_key += 1;
            self.next_back_key - 1
        };
        let op = Operation::new(id.clone(), self.name.clone(), definition, now, queue_key);
        assert!(
            self.operations.insert(id.clone(), op).is_none(),
            "operation id drawn twice"
        );
        if priority {
            self.queue.push_front(id.clone());
        } else {
            self.queue.push_back(id.clone());
        }
        self.persist_operation(io, &id);
        id
    }

    fn running_definition(&self) -> Option<&Definition> {
        let running = self.running.as_ref()?;
        self.operations.get(&running.id).map(|op| &op.definition)
    }

    /// Pending or in-progress operations matching `filter`.
    pub fn has_open_op(&self, filter: impl Fn(&Definition) -> bool) -> bool {
        self.running_definition().is_some_and(&filter)
            || self
                .queue
                .iter()
                .filter_map(|id| self.operations.get(id))
                .any(|op| filter(&op.definition))
    }

    /// Marks an operation final. The caller clears `running` when it was the
    /// running one.
    pub fn finalize(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        id: &str,
        status: OperationStatus,
        message: &str,
    ) {
        assert!(status.is_final(), "finalize with a final status");
        let Some(op) = self.operations.get_mut(id) else {
            return;
        };
        assert!(!op.status.is_final(), "operation {id} finalized twice");
        op.status = status;
        op.finished_at = Some(now);
        op.lease = None;
        if self.running.as_ref().is_none_or(|r| r.id == id) {
            self.lease_renewal = None;
        }
        if !message.is_empty() {
            op.record(now, message, config.max_history_entries);
        }
        op.record(now, "Operation finished", config.max_history_entries);
        self.final_ops.insert((now, id.to_string()));
        self.persist_operation(io, id);
        // The fleet may need a decision that waited for this operation.
        io.mark_dirty(&self.name);
    }

    /// Marks a room for deletion. From now on it is `terminating` whatever
    /// it reports, and its deletion is retried after the deletion timeout.
    pub fn mark_for_deletion(&mut self, now: Time, id: &str, reason: RemovalReason) -> bool {
        self.fleet
            .update(id, |room| {
                if reason.spares_busy_rooms() {
                    assert!(
                        !room.status.is_busy(),
                        "{} room {} chosen for {}",
                        room.status.as_str(),
                        room.id,
                        reason.as_str()
                    );
                }
                room.deletion = Some(Deletion {
                    requested_at: now,
                    reason,
                });
                if room.status != RoomStatus::Terminated {
                    room.status = RoomStatus::Terminating;
                }
                room.allocated_at = None;
            })
            .is_some()
    }

    /// Moves to another active version: the rolling update follows from the
    /// replacement map.
    pub fn switch_active(&mut self, io: &mut Io, version: Version) {
        let last_downscale_at = self.active().last_downscale_at;
        self.active = version;
        {
            let active = self.active_mut();
            active.state = SchedulerState::InSync;
            active.last_downscale_at = last_downscale_at;
        }
        self.persist_active(io);
        self.refresh_replacement();
        io.mark_dirty(&self.name);
    }

    /// Which stored versions must be replaced: a major change from the
    /// active one (minor-only differences never replace rooms, #635).
    pub fn refresh_replacement(&mut self) {
        let replace = change::to_replace(&self.versions, self.active);
        self.fleet.set_replacement(replace);
    }

    /// The event-driven reconcile: decide the fleet's next action now.
    /// Returns whether it enqueued one.
    pub fn reconcile(&mut self, io: &mut Io, config: &EngineConfig, now: Time) -> bool {
        if self.watch_only
            || !self.resources_ready
            || self.deleting
            || self.has_open_op(Definition::is_fleet_change)
        {
            return false;
        }
        let caps = Caps {
            add: u64::from(config.add_rooms_limit),
            remove: u64::from(config.remove_rooms_limit),
        };
        let active = Arc::clone(self.active());
        let Ok(decision) = health::decide(&active, &self.fleet, now, caps) else {
            // Only an unknown or parameterless policy errs, and validation
            // rejects both; keep the fleet as it is.
            return false;
        };
        match decision {
            Decision::Nothing => false,
            Decision::WaitCooldown(until) => {
                self.reconcile_at = Some(until);
                false
            }
            Decision::Add(amount) => {
                assert!(amount > 0);
                // Enqueued with priority: that is what marks it as the
                // reconciler's (see `is_reconciler_add`).
                self.enqueue(io, config, now, Definition::AddRooms { amount }, true);
                true
            }
            Decision::Remove {
                amount,
                reason,
                only_to_replace,
                is_downscale,
            } => {
                let ids = self.fleet.removal_candidates(
                    usize::try_from(amount).unwrap_or(usize::MAX),
                    only_to_replace,
                );
                if ids.is_empty() {
                    return false;
                }
                for id in &ids {
                    let marked = self.mark_for_deletion(now, id, reason);
                    assert!(marked, "removal candidate {id} exists");
                }
                if is_downscale {
                    self.active_mut().last_downscale_at = Some(now);
                    self.persist_active(io);
                }
                let definition = Definition::RemoveRooms {
                    amount: 0,
                    room_ids: ids,
                    reason,
                };
                self.enqueue(io, config, now, definition, true);
                true
            }
        }
    }

    /// The reconciler's add_rooms re-check the deficit before every batch,
    /// so a decision that waited in the queue never overshoots; a user's
    /// add_rooms adds what the user asked. The reconciler enqueues with
    /// priority (negative queue keys), users at the back, so the queue key
    /// tells them apart, across restarts too.
    pub fn is_reconciler_add(&self, id: &str) -> bool {
        self.operations.get(id).is_some_and(|op| {
            matches!(op.definition, Definition::AddRooms { .. }) && op.queue_key < 0
        })
    }

    /// The most rooms in service the reconciler may reach now: desired,
    /// plus maxSurge while a rollout replaces rooms.
    pub fn in_service_bound(&self, now: Time) -> Option<u64> {
        let target = health::target(self.active(), &self.fleet, now).ok()?;
        let surge = if self.fleet.is_rolling() {
            self.active().parsed_max_surge().rooms(target.desired)
        } else {
            0
        };
        Some(target.desired + surge)
    }

    /// Rooms the fleet still lacks, as the reconciler sees it now.
    pub fn deficit(&self, config: &EngineConfig, now: Time) -> u64 {
        let caps = Caps {
            add: u64::from(config.add_rooms_limit),
            remove: u64::from(config.remove_rooms_limit),
        };
        match health::decide(self.active(), &self.fleet, now, caps) {
            Ok(Decision::Add(n)) => n,
            _ => 0,
        }
    }

    /// Expired rooms, overdue timers, periodic operations.
    pub fn on_timeout(&mut self, io: &mut Io, config: &EngineConfig, now: Time) -> EntryFate {
        if self.watch_only {
            // Allocation keys only: expiry, health checks and periodic
            // operations are Maestro Next's until the switch.
            self.allocations.expire(now);
            return EntryFate::Keep;
        }
        if !self.deleting && self.resources_ready {
            let limit = config.expired_rooms_per_check.max(1);
            let expired: Vec<RoomId> = self.fleet.expired(now, limit);
            if !expired.is_empty() {
                for id in &expired {
                    self.mark_for_deletion(now, id, RemovalReason::ExpiredRoom);
                }
                self.remove_expired(io, config, now, expired);
            }
        } else if self.deleting {
            // The scheduler's delete_scheduler waits for every room to be
            // gone, and no removal operation can run behind it. A room whose
            // pod went unseen (created and deleted while the pod watch was
            // cut off, so no event will ever say so) would hold it until its
            // timeout: delete each expired room again, directly. A pod
            // already gone answers NotFound, and the room leaves the fleet.
            let limit = config.expired_rooms_per_check.max(1);
            for id in self.fleet.expired(now, limit) {
                self.mark_for_deletion(now, &id, RemovalReason::SchedulerDeleted);
                self.emit_delete_room(io, &id, RemovalReason::SchedulerDeleted, None);
            }
        }
        // One of each periodic operation open at a time, however long the
        // queue takes to reach it.
        if now >= self.next_health_check {
            self.next_health_check = now + config.health_controller_interval;
            let open = self.has_open_op(|d| matches!(d, Definition::HealthController { .. }));
            if !open && !self.deleting && self.resources_ready {
                let definition = Definition::HealthController { took_action: None };
                self.enqueue(io, config, now, definition, false);
            }
        }
        if now >= self.next_clean_up {
            self.next_clean_up = now + clean_up_delay(config.storage_clean_up_interval, io);
            if !self.deleting && !self.has_open_op(|d| matches!(d, Definition::StorageCleanUp)) {
                self.enqueue(io, config, now, Definition::StorageCleanUp, false);
            }
        }
        // Due at once when the namespace becomes ready (and after a
        // restart), then every interval.
        if !self.deleting && self.resources_ready && now >= self.next_disruption_check {
            self.next_disruption_check = now + config.disruption_interval;
            self.set_disruption_budget(io, config);
        }
        if self.reconcile_at.is_some_and(|t| now >= t) {
            self.reconcile_at = None;
            io.mark_dirty(&self.name);
        }
        self.allocations.expire(now);
        self.renew_lease(io, config, now);
        if self.on_operation_timeout(io, config, now) == EntryFate::Remove {
            return EntryFate::Remove;
        }
        self.drive(io, config, now)
    }

    /// Deletes expired rooms (already marked): they join the expired-room
    /// removal waiting in the queue if there is one, else a new one is
    /// enqueued. A room stays expired again every deletion timeout until it
    /// is gone, so without the merge a long-running operation ahead would
    /// let one removal pile up per check; with it at most one waits (and
    /// one may run), as `EngineConfig::max_open_operations` counts.
    fn remove_expired(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        rooms: Vec<RoomId>,
    ) {
        let waiting = self.queue.iter().find(|id| {
            self.operations
                .get(*id)
                .is_some_and(|op| is_expired_removal(&op.definition))
        });
        let Some(id) = waiting.cloned() else {
            let definition = Definition::RemoveRooms {
                amount: 0,
                room_ids: rooms,
                reason: RemovalReason::ExpiredRoom,
            };
            self.enqueue(io, config, now, definition, true);
            return;
        };
        let Some(Definition::RemoveRooms { room_ids, .. }) =
            self.operations.get_mut(&id).map(|op| &mut op.definition)
        else {
            unreachable!("the waiting operation is an expired-room removal");
        };
        // Each room once: the list stays within the fleet's size.
        let held: BTreeSet<RoomId> = room_ids.iter().cloned().collect();
        let before = room_ids.len();
        room_ids.extend(rooms.into_iter().filter(|room| !held.contains(room)));
        if room_ids.len() > before {
            self.persist_operation(io, &id);
        }
    }

    /// Renews the running operation's lease once half of it has passed.
    fn renew_lease(&mut self, io: &mut Io, config: &EngineConfig, now: Time) {
        let Some(id) = self.running.as_ref().map(|r| r.id.clone()) else {
            self.lease_renewal = None;
            return;
        };
        if self.lease_renewal.is_some_and(|at| now < at) {
            return;
        }
        self.lease_renewal = Some(now + Millis(config.operation_lease_ttl.0 / 2));
        if let Some(op) = self.operations.get_mut(&id) {
            op.lease = Some(now + config.operation_lease_ttl);
        }
        self.persist_operation(io, &id);
    }

    /// The earliest time this scheduler needs `handle_timeout`.
    /// Sets the disruption budget for the fleet as it is now, unless it is
    /// already set to that.
    fn set_disruption_budget(&mut self, io: &mut Io, config: &EngineConfig) {
        let budget = disruption::budget(
            self.fleet.counts().total(),
            config.disruption_safety_millionths,
        );
        if self.disruption_budget == Some(budget) {
            return;
        }
        self.disruption_budget = Some(budget);
        let scheduler = self.name.clone();
        io.emit_runtime(
            InFlight {
                scheduler: scheduler.clone(),
                what: InFlightKind::DisruptionBudget,
                operation: None,
            },
            |id| Effect::SetDisruptionBudget {
                id,
                scheduler,
                min_available: budget,
            },
        );
    }

    pub fn next_wakeup(&self) -> Option<Time> {
        if self.watch_only {
            return self.allocations.next_expiry();
        }
        let serving = !self.deleting && self.resources_ready;
        [
            Some(self.next_health_check),
            Some(self.next_clean_up),
            serving.then_some(self.next_disruption_check),
            serving.then(|| self.fleet.next_deadline()).flatten(),
            self.reconcile_at,
            self.allocations.next_expiry(),
            self.running.as_ref().and_then(|r| r.deadline()),
            self.lease_renewal,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Removes expired finished operations and trims the history to its
    /// bound. Returns the ids dropped.
    pub fn clean_up_operations(&mut self, config: &EngineConfig, now: Time) -> Vec<OperationId> {
        let mut dropped = Vec::new();
        let expired: Vec<(Time, OperationId)> = self
            .final_ops
            .iter()
            .filter(|(finished, id)| {
                now.since(*finished) >= config.operations_ttl
                    && self
                        .operations
                        .get(id)
                        .is_some_and(|op| op.definition.expires())
            })
            .cloned()
            .collect();
        for key in expired {
            self.final_ops.remove(&key);
            self.operations.remove(&key.1);
            dropped.push(key.1);
        }
        while self.final_ops.len() > config.max_final_operations {
            let Some(oldest) = self.final_ops.pop_first() else {
                break;
            };
            self.operations.remove(&oldest.1);
            dropped.push(oldest.1);
        }
        dropped
    }

    /// Checks the structural invariants (used by the periodic health check
    /// and by tests).
    pub fn check_invariants(&self, config: &EngineConfig) -> Result<(), String> {
        self.fleet.check_consistency()?;
        if self.watch_only && (self.running.is_some() || !self.queue.is_empty()) {
            return Err(format!(
                "{}: a watch-only scheduler has an operation open",
                self.name
            ));
        }
        if self.overshoot > 0 {
            return Err(format!(
                "{}: the reconciler created {} rooms beyond desired + maxSurge",
                self.name, self.overshoot
            ));
        }
        if !self.versions.contains_key(&self.active) {
            return Err("active version missing".to_string());
        }
        for id in &self.queue {
            let op = self.operations.get(id).ok_or("queued operation missing")?;
            if op.status != OperationStatus::Pending {
                return Err(format!("queued operation {id} is {}", op.status.as_str()));
            }
        }
        let in_progress = self
            .operations
            .values()
            .filter(|op| op.status == OperationStatus::InProgress)
            .count();
        if in_progress > 1 {
            return Err(format!("{in_progress} operations in progress"));
        }
        if in_progress == 1 && self.running.is_none() {
            return Err("an operation is in progress but none runs".to_string());
        }
        let bound = config.max_open_operations();
        if self.queue.len() + in_progress > bound {
            return Err(format!(
                "{} pending and {in_progress} in-progress operations exceed the bound of {bound}",
                self.queue.len()
            ));
        }
        let waiting_removals = self
            .queue
            .iter()
            .filter_map(|id| self.operations.get(id))
            .filter(|op| is_expired_removal(&op.definition))
            .count();
        // Two only right after a restart put a running one back.
        if waiting_removals > 2 {
            return Err(format!(
                "{waiting_removals} expired-room removals pending, at most 2 expected"
            ));
        }
        if self.allocations.len() > config.max_allocation_keys.max(1) {
            return Err(format!(
                "{} allocation keys held, beyond the limit of {}",
                self.allocations.len(),
                config.max_allocation_keys
            ));
        }
        Ok(())
    }
}

fn is_expired_removal(definition: &Definition) -> bool {
    matches!(
        definition,
        Definition::RemoveRooms {
            reason: RemovalReason::ExpiredRoom,
            ..
        }
    )
}

/// Upstream's memoryless storage clean-up ticker: an exponential delay with
/// the configured mean, clamped to [0.1×, 2.5×] so schedulers spread out.
fn clean_up_delay(mean: Millis, io: &mut Io) -> Millis {
    let u = io.rng.unit();
    let factor = (-(1.0 - u).ln()).clamp(0.1, 2.5);
    Millis((mean.0 as f64 * factor) as u64)
}
