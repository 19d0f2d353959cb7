//! The engine: every scheduling decision, without IO.
//!
//! Shape (quinn-proto, str0m): `handle_*` methods take an input with the
//! current time; `poll_effect` drains what to do; `poll_timeout` says when to
//! call `handle_timeout` next. After every `handle_*` the shell drains
//! `poll_effect` until it returns `None` (the single-mutation rule), executes
//! the effects, and feeds runtime results back with `handle_effect_result`.

mod entry;
mod execute;
mod io;
pub mod query;
mod restore;
mod rooms;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use smol_str::SmolStr;

use entry::{EntryFate, SchedulerEntry};
use execute::CancelRefusal;
use io::Io;
pub use restore::{RestoreError, StoredScheduler, StoredVersion};

use crate::config::EngineConfig;
use crate::effect::{Effect, EffectId, RuntimeError};
use crate::input::{
    AllocateError, Allocation, Command, CommandError, CommandReply, InstanceEvent, Liveness, Ping,
    PingError,
};
use crate::operation::{Definition, Operation, OperationStatus};
use crate::room::{Fleet, Room, RoomStatus};
use crate::scheduler::{self, Scheduler, SchedulerState};
use crate::time::Time;
use crate::version::Version;

pub struct Engine {
    config: EngineConfig,
    now: Time,
    schedulers: BTreeMap<String, SchedulerEntry>,
    io: Io,
    /// Every scheduler's next wakeup ([`SchedulerEntry::next_wakeup`]),
    /// by time, kept up to date for the schedulers each input touches, so
    /// that neither an input nor `poll_timeout` visits every scheduler.
    /// `check_invariants` recomputes it from scratch.
    wakeups: BTreeSet<(Time, String)>,
    /// The time each scheduler is filed under in `wakeups`.
    wakeup_of: BTreeMap<String, Time>,
}

/// One stored version of a scheduler.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct VersionInfo {
    pub version: Version,
    pub is_active: bool,
    pub created_at: Time,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        let io = Io::new(config.seed);
        Engine {
            config,
            now: Time::ZERO,
            schedulers: BTreeMap::new(),
            io,
            wakeups: BTreeSet::new(),
            wakeup_of: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The engine's notion of now: the latest time any input carried.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Time only moves forward: a wall clock stepping back is clamped.
    fn advance(&mut self, now: Time) -> Time {
        self.now = self.now.max(now);
        self.now
    }

    // ----- inputs -------------------------------------------------------

    pub fn handle_command(
        &mut self,
        now: Time,
        command: Command,
    ) -> Result<CommandReply, CommandError> {
        let now = self.advance(now);
        let reply = self.command(now, command);
        self.settle(now);
        reply
    }

    fn command(&mut self, now: Time, command: Command) -> Result<CommandReply, CommandError> {
        let name = command.scheduler();
        if self.is_watch_only(name) {
            return Err(CommandError::Conflict(format!(
                "scheduler {name} is still managed by Maestro Next: \
                 switch it over first (maestro migrate switch {name})"
            )));
        }
        match command {
            Command::CreateScheduler(scheduler) => self.create_scheduler(now, scheduler),
            Command::NewSchedulerVersion(scheduler) => self.new_version(now, scheduler),
            Command::SwitchActiveVersion { scheduler, version } => {
                let parsed = Version::parse(&version).ok_or_else(|| {
                    CommandError::InvalidArgument(format!(
                        "version: {version:?} is not a semantic version"
                    ))
                })?;
                let entry = self.open_entry(&scheduler)?;
                if !entry.versions.contains_key(&parsed) {
                    return Err(CommandError::NotFound(format!(
                        "scheduler {scheduler} version {version}"
                    )));
                }
                if entry.has_open_op(Definition::is_version_change) {
                    return Err(version_conflict(&scheduler));
                }
                let definition = Definition::SwitchActiveVersion {
                    new_active_version: parsed,
                };
                self.enqueue_user(&scheduler, now, definition)
            }
            Command::AddRooms { scheduler, amount } => {
                self.open_entry(&scheduler)?;
                self.enqueue_user(&scheduler, now, Definition::AddRooms { amount })
            }
            Command::RemoveRooms { scheduler, amount } => {
                self.open_entry(&scheduler)?;
                let definition = Definition::RemoveRooms {
                    amount,
                    room_ids: Vec::new(),
                    reason: crate::room::RemovalReason::UserRequest,
                };
                self.enqueue_user(&scheduler, now, definition)
            }
            Command::DeleteScheduler { scheduler } => {
                self.open_entry(&scheduler)?;
                if self
                    .entry(&scheduler)?
                    .has_open_op(|d| matches!(d, Definition::DeleteScheduler))
                {
                    return Err(CommandError::Conflict(format!(
                        "scheduler {scheduler} is already being deleted"
                    )));
                }
                self.enqueue_user(&scheduler, now, Definition::DeleteScheduler)
            }
            Command::CancelOperation {
                scheduler,
                operation_id,
            } => {
                let Engine {
                    schedulers,
                    io,
                    config,
                    ..
                } = self;
                io.touch(&scheduler);
                let entry = schedulers
                    .get_mut(&scheduler)
                    .ok_or_else(|| CommandError::NotFound(format!("scheduler {scheduler}")))?;
                match entry.cancel(io, config, now, &operation_id) {
                    Ok(fate) => {
                        self.apply_fate(&scheduler, fate);
                        Ok(CommandReply::Canceled)
                    }
                    Err(CancelRefusal::NotFound) => {
                        Err(CommandError::NotFound(format!("operation {operation_id}")))
                    }
                    Err(CancelRefusal::Final(status)) => Err(CommandError::NotCancelable(status)),
                    Err(CancelRefusal::NotCancelable(why)) => {
                        Err(CommandError::Unsupported(why.to_string()))
                    }
                }
            }
        }
    }

    fn create_scheduler(
        &mut self,
        now: Time,
        mut scheduler: Scheduler,
    ) -> Result<CommandReply, CommandError> {
        scheduler.spec.version = Version::FIRST.to_string();
        scheduler.state = SchedulerState::Creating;
        scheduler.created_at = now;
        scheduler.last_downscale_at = None;
        scheduler.rollback_version = None;
        scheduler::validate(&scheduler).map_err(CommandError::Invalid)?;
        if self.schedulers.contains_key(&scheduler.name) {
            return Err(CommandError::AlreadyExists(format!(
                "scheduler {}",
                scheduler.name
            )));
        }
        if self.schedulers.len() >= self.config.max_schedulers {
            return Err(CommandError::Exhausted(format!(
                "maestro holds its limit of {} schedulers",
                self.config.max_schedulers
            )));
        }
        let name = scheduler.name.clone();
        let entry = SchedulerEntry::new(scheduler, now, &self.config, &mut self.io);
        entry.persist_active(&mut self.io);
        self.io.touch(&name);
        self.schedulers.insert(name.clone(), entry);
        let created = Arc::clone(self.entry(&name)?.active());
        let definition = Definition::CreateScheduler {
            scheduler: Arc::clone(&created),
        };
        match self.enqueue_user(&name, now, definition)? {
            CommandReply::Enqueued(operation_id) => Ok(CommandReply::Created {
                operation_id,
                scheduler: Box::new(created.as_ref().clone()),
            }),
            other => Ok(other),
        }
    }

    fn new_version(
        &mut self,
        now: Time,
        mut scheduler: Scheduler,
    ) -> Result<CommandReply, CommandError> {
        let name = scheduler.name.clone();
        let entry = self.open_entry(&name)?;
        let active = entry.active();
        scheduler.spec.version = active.spec.version.clone();
        scheduler.state = active.state;
        scheduler.created_at = active.created_at;
        scheduler::validate(&scheduler).map_err(CommandError::Invalid)?;
        if entry.has_open_op(Definition::is_version_change) {
            return Err(version_conflict(&name));
        }
        let definition = Definition::CreateNewSchedulerVersion {
            scheduler: Arc::new(scheduler),
        };
        self.enqueue_user(&name, now, definition)
    }

    fn entry(&self, name: &str) -> Result<&SchedulerEntry, CommandError> {
        self.schedulers
            .get(name)
            .ok_or_else(|| CommandError::NotFound(format!("scheduler {name}")))
    }

    /// The scheduler, if it exists and is not being deleted.
    fn open_entry(&self, name: &str) -> Result<&SchedulerEntry, CommandError> {
        let entry = self.entry(name)?;
        if entry.deleting {
            return Err(CommandError::Conflict(format!(
                "scheduler {name} is being deleted"
            )));
        }
        Ok(entry)
    }

    fn enqueue_user(
        &mut self,
        name: &str,
        now: Time,
        definition: Definition,
    ) -> Result<CommandReply, CommandError> {
        let limit = self.config.max_pending_operations;
        self.io.touch(name);
        let entry = self
            .schedulers
            .get_mut(name)
            .ok_or_else(|| CommandError::NotFound(format!("scheduler {name}")))?;
        if entry.queue.len() >= limit {
            return Err(CommandError::Exhausted(format!(
                "scheduler {name} has {limit} pending operations already"
            )));
        }
        let id = entry.enqueue(&mut self.io, &self.config, now, definition, false);
        let fate = entry.drive(&mut self.io, &self.config, now);
        self.apply_fate(name, fate);
        Ok(CommandReply::Enqueued(id))
    }

    /// A room's ping. Never creates a room.
    pub fn handle_ping(&mut self, now: Time, ping: &Ping) -> Result<RoomStatus, PingError> {
        let now = self.advance(now);
        let Engine {
            schedulers,
            io,
            config,
            ..
        } = self;
        io.touch(&ping.scheduler);
        let entry = schedulers
            .get_mut(&ping.scheduler)
            .ok_or_else(|| PingError::SchedulerNotFound(ping.scheduler.clone()))?;
        let result = entry.ping(io, config, now, ping);
        let status = match result {
            Ok((status, fate)) => {
                self.apply_fate(&ping.scheduler, fate);
                Ok(status)
            }
            Err(e) => Err(e),
        };
        self.settle(now);
        status
    }

    /// A shell that runs the game servers itself (the simulated cluster)
    /// says a room's pings are steady, or stopped at a time, instead of
    /// delivering each ping that changes nothing. Such a ping moves the
    /// room's last-ping time, which decides whether the room has been
    /// silent past the ping timeout: a steady room never is, and a stopped
    /// one is timed from its last ping. (It also makes the engine re-read
    /// the room's status, which matters only for an allocation its game
    /// server never took; see `maestro_sim::cluster` for the conditions
    /// under which the decisions are those of every ping delivered.)
    /// Never creates a room.
    pub fn handle_liveness(&mut self, now: Time, liveness: &Liveness) -> Result<(), PingError> {
        let now = self.advance(now);
        let Engine { schedulers, io, .. } = self;
        io.touch(&liveness.scheduler);
        let result = match schedulers.get_mut(&liveness.scheduler) {
            Some(entry) => entry.liveness(now, liveness),
            None => Err(PingError::SchedulerNotFound(liveness.scheduler.clone())),
        };
        self.settle(now);
        result
    }

    /// Hands out a ready room atomically; the same idempotency key within
    /// the allocation TTL gets the same room.
    pub fn allocate(
        &mut self,
        now: Time,
        scheduler: &str,
        key: Option<&str>,
    ) -> Result<Allocation, AllocateError> {
        self.allocate_with(now, scheduler, key, |_, room| Allocation::of(room))
    }

    /// [`Engine::allocate`], answering with what `answer` takes from the
    /// allocated room's id and record (as it is once allocated) instead of
    /// an [`Allocation`]: the planner, which allocates tens of millions of
    /// rooms, needs only the id, and takes it as the fleet's index holds it
    /// (the first argument), a copy of 24 bytes at most for a short id
    /// (building one from a `&str` stalls on its copy through the stack:
    /// with the touched-scheduler names, 3-4 % of a 30-day planner profile).
    pub fn allocate_with<R>(
        &mut self,
        now: Time,
        scheduler: &str,
        key: Option<&str>,
        answer: impl FnOnce(&SmolStr, &Room) -> R,
    ) -> Result<R, AllocateError> {
        let now = self.advance(now);
        let Engine {
            schedulers,
            io,
            config,
            ..
        } = self;
        io.touch(scheduler);
        let entry = schedulers
            .get_mut(scheduler)
            .ok_or_else(|| AllocateError::SchedulerNotFound(scheduler.to_string()))?;
        let result = entry.allocate(io, config, now, key, answer);
        self.settle(now);
        result
    }

    pub fn handle_instance_event(&mut self, now: Time, event: &InstanceEvent) {
        let now = self.advance(now);
        let Engine {
            schedulers,
            io,
            config,
            ..
        } = self;
        io.touch(&event.scheduler);
        if let Some(entry) = schedulers.get_mut(&event.scheduler) {
            let fate = entry.instance_event(io, config, now, event);
            self.apply_fate(&event.scheduler, fate);
        }
        self.settle(now);
    }

    /// The outcome of a runtime effect. Unknown ids (a result delivered
    /// twice, or for a forgotten scheduler) are ignored.
    pub fn handle_effect_result(
        &mut self,
        now: Time,
        id: EffectId,
        result: Result<(), RuntimeError>,
    ) {
        let now = self.advance(now);
        let Some(in_flight) = self.io.in_flight.remove(&id) else {
            return;
        };
        let Engine {
            schedulers,
            io,
            config,
            ..
        } = self;
        io.touch(&in_flight.scheduler);
        if let Some(entry) = schedulers.get_mut(&in_flight.scheduler) {
            let mut fate = entry.on_room_effect(io, config, now, &in_flight, &result);
            if fate == EntryFate::Keep {
                fate = entry.on_operation_effect(io, config, now, &in_flight, &result);
            }
            self.apply_fate(&in_flight.scheduler, fate);
        }
        self.settle(now);
    }

    /// Timers: expiries, validation and deletion deadlines, periodic
    /// operations, postponed reconciles.
    pub fn handle_timeout(&mut self, now: Time) {
        let now = self.advance(now);
        let due: Vec<String> = self
            .wakeups
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, name)| name.clone())
            .collect();
        for name in due {
            let Engine {
                schedulers,
                io,
                config,
                ..
            } = self;
            io.touch(&name);
            if let Some(entry) = schedulers.get_mut(&name) {
                let fate = entry.on_timeout(io, config, now);
                self.apply_fate(&name, fate);
            }
        }
        self.settle(now);
    }

    /// Reconciles every scheduler whose fleet changed, then starts queued
    /// operations. Bounded: each scheduler is reconciled at most once per
    /// pass, for `EngineConfig::settle_passes` passes.
    fn settle(&mut self, now: Time) {
        // An operation that ends inside a pass marks its scheduler again;
        // a few passes settle such chains, and anything left shows up in
        // `poll_timeout` as due now.
        let mut dirty = std::mem::take(&mut self.io.scratch);
        for _ in 0..self.config.settle_passes.max(1) {
            if self.io.dirty.is_empty() {
                break;
            }
            dirty.clear();
            self.io.dirty.drain_into(&mut dirty);
            for name in &dirty {
                let Engine {
                    schedulers,
                    io,
                    config,
                    ..
                } = self;
                io.touch(name);
                let Some(entry) = schedulers.get_mut(name.as_str()) else {
                    continue;
                };
                entry.reconcile(io, config, now);
                let fate = entry.drive(io, config, now);
                self.apply_fate(name, fate);
            }
        }
        dirty.clear();
        self.io.scratch = dirty;
        self.refresh_touched();
        debug_assert_eq!(self.check_wakeups(), Ok(()));
    }

    /// For each scheduler this input touched (and no other): the room
    /// records to write or forget, and its place in `wakeups`.
    fn refresh_touched(&mut self) {
        let Engine {
            schedulers,
            io,
            wakeups,
            wakeup_of,
            ..
        } = self;
        let mut touched = std::mem::take(&mut io.scratch);
        io.touched.drain_into(&mut touched);
        for name in touched.iter().map(SmolStr::as_str) {
            let wakeup = match schedulers.get_mut(name) {
                Some(entry) => {
                    for id in entry.fleet.take_changed() {
                        match entry.fleet.record(&id) {
                            Some(room) => io.emit(Effect::SaveRoom(room)),
                            None => io.emit(Effect::ForgetRoom {
                                scheduler: name.to_string(),
                                room: id.to_string(),
                            }),
                        }
                    }
                    entry.next_wakeup()
                }
                None => None,
            };
            let filed = wakeup_of.get(name).copied();
            if filed == wakeup {
                // Most inputs (a ping) leave it where it was.
                continue;
            }
            if let Some(at) = filed {
                wakeups.remove(&(at, name.to_string()));
            }
            match wakeup {
                Some(at) => {
                    wakeups.insert((at, name.to_string()));
                    wakeup_of.insert(name.to_string(), at);
                }
                None => {
                    wakeup_of.remove(name);
                }
            }
        }
        touched.clear();
        io.scratch = touched;
    }

    /// `wakeups` against every scheduler's wakeup computed afresh, and no
    /// room change left unwritten: a scheduler changed without being
    /// touched would show here.
    fn check_wakeups(&self) -> Result<(), String> {
        let mut expected = BTreeSet::new();
        for (name, entry) in &self.schedulers {
            if entry.fleet.has_changes() {
                return Err(format!("scheduler {name}: room changes not written"));
            }
            let due = entry.next_wakeup();
            let filed = self.wakeup_of.get(name).copied();
            if filed != due {
                return Err(format!(
                    "scheduler {name}: filed to wake at {filed:?}, due at {due:?}"
                ));
            }
            expected.extend(due.map(|at| (at, name.clone())));
        }
        if expected != self.wakeups || self.wakeup_of.len() != self.wakeups.len() {
            return Err("the wakeup index differs from the schedulers' wakeups".to_string());
        }
        Ok(())
    }

    fn apply_fate(&mut self, name: &str, fate: EntryFate) {
        if fate == EntryFate::Remove && self.schedulers.remove(name).is_some() {
            self.io.in_flight.retain(|_, f| f.scheduler != name);
            self.io.dirty.remove(name);
            self.io.watch_only.remove(name);
            self.io.emit(Effect::DeleteSchedulerData {
                scheduler: name.to_string(),
            });
        }
    }

    // ----- outputs ------------------------------------------------------

    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.io.effects.pop_front()
    }

    /// When `handle_timeout` must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Time> {
        let pending_reconcile = (!self.io.dirty.is_empty()).then_some(self.now);
        self.wakeups
            .first()
            .map(|(at, _)| *at)
            .into_iter()
            .chain(pending_reconcile)
            .min()
    }

    // ----- queries ------------------------------------------------------

    pub fn scheduler_names(&self) -> impl Iterator<Item = &str> {
        self.schedulers.keys().map(String::as_str)
    }

    /// Whether the scheduler was imported from Maestro Next and not switched
    /// over yet (`maestro migrate switch`). Such a scheduler's rooms are
    /// tracked from the pod watch, and it answers pings and allocations,
    /// but maestro changes nothing in the cluster for it: it refuses
    /// commands, runs no operation and makes no runtime call.
    pub fn is_watch_only(&self, name: &str) -> bool {
        self.schedulers.get(name).is_some_and(|e| e.watch_only)
    }

    /// The active version of a scheduler.
    pub fn scheduler(&self, name: &str) -> Option<&Scheduler> {
        self.schedulers.get(name).map(|e| e.active().as_ref())
    }

    pub fn scheduler_version(&self, name: &str, version: &str) -> Option<&Scheduler> {
        let version = Version::parse(version)?;
        self.schedulers
            .get(name)?
            .versions
            .get(&version)
            .map(Arc::as_ref)
    }

    /// Every stored version, newest first.
    pub fn versions(&self, name: &str) -> Option<Vec<VersionInfo>> {
        let entry = self.schedulers.get(name)?;
        let mut versions: Vec<VersionInfo> = entry
            .versions
            .keys()
            .map(|v| VersionInfo {
                version: *v,
                is_active: *v == entry.active,
                created_at: entry
                    .version_created_at
                    .get(v)
                    .copied()
                    .unwrap_or(Time::ZERO),
            })
            .collect();
        versions.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.version.cmp(&a.version))
        });
        Some(versions)
    }

    pub fn fleet(&self, name: &str) -> Option<&Fleet> {
        self.schedulers.get(name).map(|e| &e.fleet)
    }

    pub fn operation(&self, scheduler: &str, id: &str) -> Option<&Operation> {
        self.schedulers.get(scheduler)?.operations.get(id)
    }

    /// Every operation the engine still holds for a scheduler, by id.
    pub fn operations(&self, scheduler: &str) -> impl Iterator<Item = &Operation> {
        self.schedulers
            .get(scheduler)
            .into_iter()
            .flat_map(|e| e.operations.values())
    }

    /// Pending operations in execution order.
    pub fn pending_operations(&self, scheduler: &str) -> Vec<&Operation> {
        let Some(entry) = self.schedulers.get(scheduler) else {
            return Vec::new();
        };
        entry
            .queue
            .iter()
            .filter_map(|id| entry.operations.get(id))
            .collect()
    }

    pub fn in_progress_operation(&self, scheduler: &str) -> Option<&Operation> {
        let entry = self.schedulers.get(scheduler)?;
        let running = entry.running.as_ref()?;
        entry.operations.get(&running.id)
    }

    /// Runtime effects whose results are still awaited.
    pub fn effects_in_flight(&self) -> usize {
        self.io.in_flight.len()
    }

    /// Checks every scheduler's structural invariants (tests, health checks).
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_wakeups()?;
        let watch_only: BTreeSet<String> = self
            .schedulers
            .iter()
            .filter(|(_, e)| e.watch_only)
            .map(|(name, _)| name.clone())
            .collect();
        if watch_only != self.io.watch_only {
            return Err("the watch-only set differs from the schedulers'".to_string());
        }
        if let Some(f) = self
            .io
            .in_flight
            .values()
            .find(|f| watch_only.contains(&f.scheduler))
        {
            return Err(format!(
                "a runtime call in flight for watch-only scheduler {}",
                f.scheduler
            ));
        }
        for (name, entry) in &self.schedulers {
            entry
                .check_invariants(&self.config)
                .map_err(|e| format!("scheduler {name}: {e}"))?;
            let in_progress = entry
                .operations
                .values()
                .filter(|op| op.status == OperationStatus::InProgress)
                .count();
            if in_progress > 1 {
                return Err(format!(
                    "scheduler {name}: {in_progress} operations in progress"
                ));
            }
        }
        Ok(())
    }
}

fn version_conflict(scheduler: &str) -> CommandError {
    CommandError::Conflict(format!(
        "scheduler {scheduler} already has a pending or in-progress version operation"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures;

    /// A room the reconciler created past its target is reported by
    /// `check_invariants` (the chaos harness and the property tests call
    /// it); the reconciler's own cap keeps it from happening.
    #[test]
    fn a_reconciler_overshoot_breaks_the_invariants() {
        let mut engine = Engine::new(EngineConfig::default());
        engine
            .handle_command(
                Time(1_000),
                Command::CreateScheduler(fixtures::scheduler("arena")),
            )
            .expect("created");
        assert_eq!(engine.check_invariants(), Ok(()));
        if let Some(entry) = engine.schedulers.get_mut("arena") {
            entry.overshoot = 1;
        }
        let error = engine.check_invariants().expect_err("reported");
        assert!(error.contains("beyond desired + maxSurge"), "{error}");
    }
}
