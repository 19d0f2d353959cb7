//! The read-only questions the APIs ask, answered by the engine between
//! two inputs.
//!
//! One [`Query`] and one [`Answer`] per question, and one function,
//! [`Engine::query`], that answers them: the service's driver, the tests'
//! harnesses and the worker protocol all go through it, so a listing is
//! filtered and ordered the same way wherever it is asked.

use crate::health;
use crate::operation::Operation;
use crate::room::{FleetCounts, Room, RoomStatus};
use crate::scheduler::Scheduler;
use crate::time::Time;

use super::{Engine, VersionInfo};

/// Which operations a listing asks for (upstream's stages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Stage {
    /// Waiting in the queue, in execution order.
    Pending,
    /// The one in progress, if any.
    Active,
    /// Finished, by id; operations that did nothing are left out, as
    /// upstream keeps them out of its history.
    Final,
}

/// A scheduler's active version with its fleet's counts (for the list and
/// `/schedulers/info` routes and the metrics reporter).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SchedulerSummary {
    pub scheduler: Scheduler,
    pub counts: FleetCounts,
    /// The rooms the health check aims for now.
    pub desired: u64,
}

/// A page of rooms and how many matched in all.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RoomPage {
    pub rooms: Vec<Room>,
    pub total: usize,
}

/// A question about the engine's state. `None` in an answer means the
/// scheduler (or the version, operation or room) is unknown.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Query {
    /// Every scheduler's active version with its counts, by name.
    Schedulers,
    /// The active version, or the given one.
    Scheduler {
        name: String,
        version: Option<String>,
    },
    /// Every stored version, newest first.
    Versions {
        name: String,
    },
    Operations {
        scheduler: String,
        stage: Stage,
    },
    Operation {
        scheduler: String,
        id: String,
    },
    /// Rooms by id, optionally only those in `status`, skipping `offset`
    /// and returning at most `limit`.
    Rooms {
        scheduler: String,
        status: Option<RoomStatus>,
        offset: usize,
        limit: usize,
    },
    Room {
        scheduler: String,
        room: String,
    },
}

/// The answer to a [`Query`], of the same variant.
// Built once, sent and dropped: boxing the scheduler would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Answer {
    Schedulers(Vec<SchedulerSummary>),
    Scheduler(Option<Scheduler>),
    Versions(Option<Vec<VersionInfo>>),
    Operations(Option<Vec<Operation>>),
    Operation(Option<Operation>),
    Rooms(Option<RoomPage>),
    Room(Option<Room>),
}

impl Engine {
    /// Answers a read-only question at `now` (which only the desired
    /// count of a summary depends on, through the downscale cooldown).
    pub fn query(&self, now: Time, query: Query) -> Answer {
        match query {
            Query::Schedulers => Answer::Schedulers(self.summaries(now)),
            Query::Scheduler { name, version } => Answer::Scheduler(
                match version {
                    Some(v) => self.scheduler_version(&name, &v),
                    None => self.scheduler(&name),
                }
                .cloned(),
            ),
            Query::Versions { name } => Answer::Versions(self.versions(&name)),
            Query::Operations { scheduler, stage } => {
                Answer::Operations(self.operations_in(&scheduler, stage))
            }
            Query::Operation { scheduler, id } => {
                Answer::Operation(self.operation(&scheduler, &id).cloned())
            }
            Query::Rooms {
                scheduler,
                status,
                offset,
                limit,
            } => Answer::Rooms(self.fleet(&scheduler).map(|fleet| {
                let matching = || {
                    fleet
                        .rooms()
                        .filter(move |r| status.is_none_or(|s| r.status == s))
                };
                RoomPage {
                    rooms: matching().skip(offset).take(limit).cloned().collect(),
                    total: matching().count(),
                }
            })),
            Query::Room { scheduler, room } => {
                Answer::Room(self.fleet(&scheduler).and_then(|f| f.get(&room)).cloned())
            }
        }
    }

    fn summaries(&self, now: Time) -> Vec<SchedulerSummary> {
        self.scheduler_names()
            .filter_map(|name| {
                let scheduler = self.scheduler(name)?;
                let fleet = self.fleet(name)?;
                Some(SchedulerSummary {
                    scheduler: scheduler.clone(),
                    counts: *fleet.counts(),
                    desired: health::target(scheduler, fleet, now).map_or(0, |t| t.desired),
                })
            })
            .collect()
    }

    fn operations_in(&self, scheduler: &str, stage: Stage) -> Option<Vec<Operation>> {
        self.scheduler(scheduler)?;
        let operations = match stage {
            Stage::Pending => self
                .pending_operations(scheduler)
                .into_iter()
                .cloned()
                .collect(),
            Stage::Active => self
                .in_progress_operation(scheduler)
                .into_iter()
                .cloned()
                .collect(),
            Stage::Final => self
                .operations(scheduler)
                .filter(|o| o.status.is_final() && !o.definition.has_no_action())
                .cloned()
                .collect(),
        };
        Some(operations)
    }
}
