//! The capacity planner: demand replayed through the real engine against
//! the simulated cluster, in virtual time.
//!
//! A matchmaker model asks the engine for a room per match (the engine's
//! own allocation path) and tells the room's game server, which hosts the
//! match for its length. A match that finds no room waits in a queue and
//! retries every `retry_interval`, oldest first; it is dropped once it has
//! waited `wait_timeout`. Concurrent-player demand becomes matches by
//! Little's law: `players / players_per_match` matches running at once,
//! each lasting a draw of `match_duration`, so matches arrive at
//! `concurrent / mean duration` a second (a Poisson process, one-second
//! slots). The run starts `warmup` before the demand with a ramp up to its
//! first value, and only what happens after the warm-up is reported.

mod arrivals;
mod report;

use std::collections::VecDeque;
use std::time::Instant;

use hdrhistogram::Histogram;
use maestro_engine::health;
use maestro_engine::room::RoomStatus;
use maestro_engine::scheduler::Scheduler;
use maestro_engine::{AllocateError, Command, EngineConfig, Millis, Time};

use crate::cluster::{ClusterConfig, ClusterStats, Pings};
use crate::demand::Demand;
use crate::dist::Distribution;
use crate::harness::{Harness, Stats};
pub use arrivals::Arrivals;
pub use report::{Outcome, Report, TimelineRow};

/// How to run one plan.
#[derive(Clone, Debug)]
pub struct PlanConfig {
    pub scheduler: Scheduler,
    pub engine: EngineConfig,
    pub cluster: ClusterConfig,
    pub players_per_match: u32,
    /// Lengths of matches made from concurrent-player demand.
    pub match_duration: Distribution,
    /// Demand is multiplied by this.
    pub scale: f64,
    pub wait_timeout: Millis,
    pub retry_interval: Millis,
    pub warmup: Millis,
    /// Simulate at most this long after the warm-up.
    pub duration: Option<Millis>,
    pub seed: u64,
    /// Timeline resolution.
    pub sample_every: Millis,
}

impl PlanConfig {
    /// A plan of `scheduler` with upstream's engine defaults, unlimited
    /// nodes, and pings reported rather than delivered one by one
    /// ([`Pings::Reported`]: the same decisions, see
    /// `tests::leaving_out_unchanged_pings_changes_no_decision`).
    pub fn new(scheduler: Scheduler) -> PlanConfig {
        // The engine's own periodic fleet audit (it decides nothing) spaced
        // as the planner's, which includes it: at 70,000 rooms the hourly
        // one took a twentieth of a run.
        let defaults = EngineConfig::default();
        let health_runs = AUDIT_PERIOD.0 / defaults.health_controller_interval.0.max(1);
        let engine = EngineConfig {
            fleet_audit_every: u32::try_from(health_runs).unwrap_or(u32::MAX),
            ..defaults
        };
        let cluster = ClusterConfig {
            pings: Pings::Reported,
            ..ClusterConfig::default()
        };
        PlanConfig {
            scheduler,
            engine,
            cluster,
            players_per_match: 10,
            match_duration: Distribution::Fixed(Millis::from_secs(30 * 60)),
            scale: 1.0,
            wait_timeout: Millis::from_secs(60),
            retry_interval: Millis::from_secs(1),
            warmup: Millis::from_secs(3600),
            duration: None,
            seed: 1,
            sample_every: Millis::from_secs(60),
        }
    }
}

/// Unchanged pings elided as far as the engine's ping timeout allows (see
/// [`crate::cluster`]): what a shell whose game servers ping over HTTP can
/// save, to compare with [`Pings::Reported`].
pub fn elided_pings(cluster: &ClusterConfig, engine: &EngineConfig) -> Pings {
    let interval = cluster.ping_interval.0.max(1);
    let room = engine.room_ping_timeout.0.saturating_sub(2 * interval);
    if room > interval {
        Pings::Elided {
            refresh: Millis(room),
        }
    } else {
        Pings::Every
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the scheduler was refused: {0}")]
    Scheduler(String),
    #[error("the demand is empty")]
    EmptyDemand,
    #[error("{0}")]
    Config(String),
    #[error("the engine broke an invariant at {at}: {problem}")]
    Invariant { at: Time, problem: String },
}

/// Limits the planner keeps itself within.
const MAX_WAITING: usize = 10_000_000;

/// How often the planner audits the engine's structures (simulated time).
const AUDIT_PERIOD: Millis = Millis(6 * 3_600_000);

/// Runs one plan. `progress` hears the share of simulated time done, now
/// and then.
pub fn run(
    config: &PlanConfig,
    demand: &Demand,
    mut progress: impl FnMut(f64),
) -> Result<Outcome, PlanError> {
    let started = Instant::now();
    if config.sample_every == Millis::ZERO || config.retry_interval == Millis::ZERO {
        return Err(PlanError::Config(
            "the timeline step and the retry interval must be above zero".to_string(),
        ));
    }
    let interval = config.cluster.ping_interval;
    if config.cluster.pings == Pings::Reported
        && (config.engine.room_ping_timeout <= interval
            || config.engine.room_deletion_timeout <= interval)
    {
        // A game server pinging every interval would be expired between
        // two pings; reported pings would hide that (see crate::cluster).
        return Err(PlanError::Config(format!(
            "the room ping and deletion timeouts ({} and {}) must be longer than the ping interval ({})",
            config.engine.room_ping_timeout, config.engine.room_deletion_timeout, interval
        )));
    }
    let demand_start = demand.start();
    let mut demand_end = demand.end();
    if let Some(limit) = config.duration {
        demand_end = demand_end.min(demand_start + limit);
    }
    if demand_end <= demand_start && matches!(demand, Demand::Players(_)) {
        return Err(PlanError::EmptyDemand);
    }
    let begin = Time(demand_start.0.saturating_sub(config.warmup.0));
    // The planner keeps no store: the engine need not hand out room
    // records, and the harness then applies no store write.
    let engine = EngineConfig {
        seed: config.seed,
        room_records: false,
        ..config.engine.clone()
    };
    let cluster = ClusterConfig {
        seed: config.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 1,
        ..config.cluster.clone()
    };
    let mut h = Harness::starting_at(engine, cluster, begin);
    let name = config.scheduler.name.clone();
    if let Err(e) = h.command(Command::CreateScheduler(config.scheduler.clone())) {
        return Err(PlanError::Scheduler(e.to_string()));
    }
    let mut arrivals = Arrivals::new(config, demand, begin, demand_end);
    let mut next_arrival = arrivals.next();
    let mut waiting: VecDeque<(Time, Millis)> = VecDeque::new();
    let mut next_retry: Option<Time> = None;
    let mut next_sample = demand_start;
    let mut next_audit = demand_start;
    let mut waits = Histogram::<u64>::new(3).map_err(|e| PlanError::Invariant {
        at: begin,
        problem: e.to_string(),
    })?;
    let mut tally = Tally::default();
    let mut at_warmup: Option<(ClusterStats, Stats, u64)> = None;
    let mut timeline = Vec::new();
    let span = demand_end.since(begin).0.max(1) as f64;
    let mut next_progress = begin;
    loop {
        let next = [
            next_arrival.map(|m| m.at),
            next_retry,
            Some(next_sample),
            Some(demand_end),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(demand_end);
        h.run_until(next);
        let now = h.now();
        if now >= next_progress {
            progress(now.since(begin).0 as f64 / span);
            next_progress = now + Millis::from_secs(3600);
        }
        if at_warmup.is_none() && now >= demand_start {
            h.cluster.reset_peaks();
            at_warmup = Some((
                h.cluster.stats().clone(),
                h.stats.clone(),
                h.trace.decisions(),
            ));
        }
        if now >= next_sample && now <= demand_end {
            timeline.push(sample(&h, &name, now, demand_start, waiting.len()));
            next_sample = now + config.sample_every;
        }
        // The engine's structural audit, every `AUDIT_PERIOD` and once at
        // the end: it rebuilds every index, so each sample would cost more
        // than the simulation.
        if now >= next_audit {
            audit(&h)?;
            next_audit = now + AUDIT_PERIOD;
        }
        let measured = now >= demand_start;
        while let Some(m) = next_arrival.filter(|m| m.at <= now) {
            next_arrival = arrivals.next();
            if measured {
                tally.requested += 1;
            }
            if waiting.is_empty() && try_allocate(&mut h, &name, m.duration)? {
                if measured {
                    tally.started += 1;
                    let _ = waits.record(0);
                }
            } else if waiting.len() < MAX_WAITING {
                waiting.push_back((m.at, m.duration));
                next_retry.get_or_insert(now + config.retry_interval);
            } else if measured {
                tally.dropped += 1;
            }
        }
        if next_retry.is_some_and(|t| t <= now) {
            next_retry = None;
            while let Some(&(arrived, duration)) = waiting.front() {
                let counted = arrived >= demand_start;
                if now.since(arrived) > config.wait_timeout {
                    waiting.pop_front();
                    if counted {
                        tally.dropped += 1;
                    }
                    continue;
                }
                if !try_allocate(&mut h, &name, duration)? {
                    break;
                }
                waiting.pop_front();
                if counted {
                    tally.started += 1;
                    tally.waited += 1;
                    let _ = waits.record(now.since(arrived).0);
                }
            }
            if !waiting.is_empty() {
                next_retry = Some(now + config.retry_interval);
            }
        }
        if now >= demand_end {
            break;
        }
    }
    // The audit once more at the end, so that the last hours are checked.
    audit(&h)?;
    // Matches still waiting at the end neither started nor were dropped.
    tally.still_waiting = waiting.iter().filter(|(at, _)| *at >= demand_start).count() as u64;
    progress(1.0);
    let (cluster_before, harness_before, decisions_before) =
        at_warmup.unwrap_or_else(|| (ClusterStats::default(), Stats::default(), 0));
    Ok(report::build(
        report::Inputs {
            config,
            h: &h,
            tally,
            waits: &waits,
            cluster_before,
            harness_before,
            decisions_before,
            demand_start,
            wall: started.elapsed(),
        },
        timeline,
    ))
}

#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    requested: u64,
    started: u64,
    waited: u64,
    dropped: u64,
    still_waiting: u64,
}

/// The engine's structural audit (every index rebuilt and compared).
fn audit(h: &Harness) -> Result<(), PlanError> {
    h.engine
        .check_invariants()
        .map_err(|problem| PlanError::Invariant {
            at: h.now(),
            problem,
        })
}

fn try_allocate(h: &mut Harness, scheduler: &str, duration: Millis) -> Result<bool, PlanError> {
    let refused = h.stats.allocations_refused;
    match h.allocate_for(scheduler, Some(duration)) {
        Ok(room) if h.stats.allocations_refused > refused => Err(PlanError::Invariant {
            at: h.now(),
            problem: format!("room {room} was allocated but its game server cannot host a match"),
        }),
        Ok(_) => Ok(true),
        Err(AllocateError::NoRoomAvailable) => Ok(false),
        Err(e) => Err(PlanError::Invariant {
            at: h.now(),
            problem: format!("an allocation failed: {e}"),
        }),
    }
}

fn sample(h: &Harness, scheduler: &str, now: Time, start: Time, waiting: usize) -> TimelineRow {
    let (pods_pending, nodes) = h.cluster.pending_and_nodes();
    let stats = h.cluster.stats();
    let running = stats.matches_started
        - stats.matches_finished
        - stats.matches_interrupted_by_deletion
        - stats.matches_interrupted_by_failure;
    let (mut row, desired) = match (h.engine.fleet(scheduler), h.engine.scheduler(scheduler)) {
        (Some(fleet), Some(spec)) => {
            let c = fleet.counts();
            let row = TimelineRow {
                minute: now.since(start).0 / 60_000,
                time: now,
                ready: c.get(RoomStatus::Ready),
                occupied: c.get(RoomStatus::Occupied)
                    + c.get(RoomStatus::Active)
                    + c.get(RoomStatus::Allocated),
                pending: c.get(RoomStatus::Pending) + c.get(RoomStatus::Unready),
                ..TimelineRow::default()
            };
            let desired = health::target(spec, fleet, now).map_or(0, |t| t.desired);
            (row, desired)
        }
        _ => (TimelineRow::default(), 0),
    };
    row.desired = desired;
    row.demand = running + waiting as u64;
    row.waiting = waiting as u64;
    row.nodes = nodes;
    row.pods_pending = pods_pending;
    row
}

#[cfg(test)]
mod tests;
