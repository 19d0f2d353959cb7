//! What a plan reports: the summary (`report.json`) and the timeline
//! (`timeline.csv`).

use std::time::Duration;

use hdrhistogram::Histogram;
use maestro_engine::Time;
use serde::Serialize;

use super::{PlanConfig, Tally};
use crate::cluster::ClusterStats;
use crate::harness::{Harness, Stats};

/// The summary of a run. Everything but `wall_seconds` (and the speed
/// figures derived from it) is a function of the seed and the inputs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub scheduler: String,
    /// Pod time, in hours, counted from the end of the warm-up.
    pub room_hours: f64,
    /// Node time, in hours (0 without a node pool).
    pub node_hours: f64,
    pub peak_rooms: u64,
    pub peak_nodes: u64,
    pub matches_requested: u64,
    pub matches_started: u64,
    /// Matches that found no room at once and started later.
    pub matches_waited: u64,
    /// Over every started match, zero waits included.
    pub wait_p50_s: f64,
    pub wait_p99_s: f64,
    pub wait_max_s: f64,
    pub matches_dropped: u64,
    /// Dropped matches as a share of those requested.
    pub dropped_ratio: f64,
    pub matches_still_waiting: u64,
    /// Rooms maestro deleted while they hosted a match, over the whole run
    /// (warm-up included: a safety invariant). Must be 0.
    pub occupied_rooms_deleted: u64,
    pub matches_interrupted_by_failures: u64,
    /// `add_rooms` operations finished.
    pub scale_ups: u64,
    /// Scale-down `remove_rooms` operations finished.
    pub scale_downs: u64,
    pub warmup_seconds: f64,
    pub simulated_seconds: f64,
    pub wall_seconds: f64,
    /// Simulated time per wall-clock time (printed, not in the JSON file,
    /// which is the same byte for byte for the same inputs but for
    /// `wall_seconds`).
    #[serde(skip)]
    pub speedup: f64,
    /// Pings, pod events, allocations and results the engine handled.
    pub engine_inputs: u64,
    /// Room events (pings, pod events, allocations) handed to the engine
    /// over the whole run, warm-up included as the wall time is (for the
    /// speed benchmark; not in the JSON file).
    #[serde(skip)]
    pub room_events: u64,
    pub decisions: u64,
    /// XXH3 over every decision the engine took, in order.
    pub decision_trace_hash: String,
    pub seed: u64,
}

/// One timeline row, per simulated minute.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TimelineRow {
    /// Minutes since the demand's start.
    pub minute: u64,
    pub time: Time,
    pub ready: u64,
    /// Occupied, active and allocated rooms.
    pub occupied: u64,
    /// Rooms created and not ready yet.
    pub pending: u64,
    pub desired: u64,
    /// Matches running or waiting for a room.
    pub demand: u64,
    pub waiting: u64,
    pub nodes: u64,
    /// Pods waiting for room on a node.
    pub pods_pending: u64,
}

pub const TIMELINE_HEADER: &str =
    "minute,time,ready,occupied,pending,desired,demand,waiting,nodes,pods_pending";

impl TimelineRow {
    pub fn csv(&self) -> String {
        let time = jiff::Timestamp::from_millisecond(self.time.0 as i64)
            .map(|t| t.to_string())
            .unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{},{},{}",
            self.minute,
            time,
            self.ready,
            self.occupied,
            self.pending,
            self.desired,
            self.demand,
            self.waiting,
            self.nodes,
            self.pods_pending
        )
    }
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub report: Report,
    pub timeline: Vec<TimelineRow>,
}

impl Outcome {
    pub fn timeline_csv(&self) -> String {
        let mut out = String::with_capacity(64 * (self.timeline.len() + 1));
        out.push_str(TIMELINE_HEADER);
        out.push('\n');
        for row in &self.timeline {
            out.push_str(&row.csv());
            out.push('\n');
        }
        out
    }
}

pub(super) struct Inputs<'a> {
    pub config: &'a PlanConfig,
    pub h: &'a Harness,
    pub tally: Tally,
    pub waits: &'a Histogram<u64>,
    pub cluster_before: ClusterStats,
    pub harness_before: Stats,
    pub decisions_before: u64,
    pub demand_start: Time,
    pub wall: Duration,
}

pub(super) fn build(i: Inputs<'_>, timeline: Vec<TimelineRow>) -> Outcome {
    const HOUR_MS: f64 = 3_600_000.0;
    let stats = i.h.cluster.stats();
    let before = &i.cluster_before;
    let simulated =
        i.h.now()
            .since(Time(i.demand_start.0.saturating_sub(i.config.warmup.0)));
    let wall = i.wall.as_secs_f64().max(1e-9);
    let quantile = |q: f64| {
        if i.waits.is_empty() {
            0.0
        } else {
            i.waits.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let report = Report {
        scheduler: i.config.scheduler.name.clone(),
        room_hours: (stats.pod_ms - before.pod_ms) as f64 / HOUR_MS,
        node_hours: (stats.node_ms - before.node_ms) as f64 / HOUR_MS,
        peak_rooms: stats.peak_pods,
        peak_nodes: stats.peak_nodes,
        matches_requested: i.tally.requested,
        matches_started: i.tally.started,
        matches_waited: i.tally.waited,
        wait_p50_s: quantile(0.5),
        wait_p99_s: quantile(0.99),
        wait_max_s: if i.waits.is_empty() {
            0.0
        } else {
            i.waits.max() as f64 / 1000.0
        },
        matches_dropped: i.tally.dropped,
        dropped_ratio: if i.tally.requested == 0 {
            0.0
        } else {
            i.tally.dropped as f64 / i.tally.requested as f64
        },
        matches_still_waiting: i.tally.still_waiting,
        occupied_rooms_deleted: stats.occupied_pods_deleted,
        matches_interrupted_by_failures: stats.matches_interrupted_by_failure
            - before.matches_interrupted_by_failure,
        scale_ups: i.h.stats.scale_ups - i.harness_before.scale_ups,
        scale_downs: i.h.stats.scale_downs - i.harness_before.scale_downs,
        warmup_seconds: i.config.warmup.0 as f64 / 1000.0,
        simulated_seconds: simulated.0 as f64 / 1000.0,
        wall_seconds: wall,
        speedup: simulated.0 as f64 / 1000.0 / wall,
        engine_inputs: i.h.stats.engine_inputs - i.harness_before.engine_inputs,
        room_events: i.h.stats.room_events,
        decisions: i.h.trace.decisions() - i.decisions_before,
        decision_trace_hash: i.h.trace.hash(),
        seed: i.config.seed,
    };
    Outcome { report, timeline }
}
