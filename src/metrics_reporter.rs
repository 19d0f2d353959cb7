//! The metrics reporter: fleet gauges per scheduler, with upstream's metric
//! names, refreshed on a period from the engine's incremental counts.

use std::sync::Arc;
use std::time::Duration;

use maestro_api::Backend;
use maestro_engine::query::SchedulerSummary;
use maestro_engine::room::RoomStatus;
use maestro_engine::scheduler::{POLICY_FIXED_BUFFER, POLICY_ROOM_OCCUPANCY};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

/// Upstream reports every 10 s; the counts are maintained per event, so a
/// shorter period costs little.
const PERIOD: Duration = Duration::from_secs(5);

struct Sample {
    scheduler: String,
    game: String,
    by_status: [u64; 9],
    desired: u64,
    in_service: u64,
    running_matches: u64,
    max_matches: f64,
    ready_target: Option<f64>,
    fixed_buffer: Option<f64>,
}

/// Reports from `backend`: the engine in process, or the worker from a
/// separate metrics-reporter process.
pub async fn run(
    backend: Arc<dyn Backend>,
    metrics: PrometheusHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(PERIOD);
    while crate::clock::tick_or_stop(&mut tick, &mut shutdown).await {
        metrics.run_upkeep();
        let summaries = match backend.schedulers().await {
            Ok(summaries) => summaries,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the fleets for metrics");
                continue;
            }
        };
        for s in summaries.iter().map(sample) {
            let labels = [("scheduler", s.scheduler.clone()), ("game", s.game.clone())];
            for status in RoomStatus::ALL {
                if status == RoomStatus::Terminated {
                    continue;
                }
                let name = format!("maestro_worker_gru_{}", status.as_str());
                metrics::gauge!(name, &labels).set(s.by_status[status.index()] as f64);
            }
            metrics::gauge!("maestro_worker_desired_rooms", &labels).set(s.desired as f64);
            metrics::gauge!("maestro_worker_current_rooms", &labels).set(s.in_service as f64);
            metrics::gauge!("maestro_worker_running_matches", &labels)
                .set(s.running_matches as f64);
            metrics::gauge!("maestro_worker_max_matches", &labels).set(s.max_matches);
            if let Some(target) = s.ready_target {
                metrics::gauge!("maestro_worker_ready_target", &labels).set(target);
            }
            if let Some(amount) = s.fixed_buffer {
                metrics::gauge!("maestro_worker_fixed_buffer", &labels).set(amount);
            }
        }
    }
}

fn sample(summary: &SchedulerSummary) -> Sample {
    let scheduler = &summary.scheduler;
    let counts = &summary.counts;
    let policy = scheduler.active_autoscaling().map(|a| &a.policy);
    Sample {
        scheduler: scheduler.name.clone(),
        game: scheduler.game.clone(),
        by_status: counts.by_status,
        desired: summary.desired,
        in_service: counts.in_service(),
        running_matches: counts.running_matches,
        max_matches: scheduler.match_allocation.max_matches as f64,
        ready_target: policy
            .filter(|p| p.kind == POLICY_ROOM_OCCUPANCY)
            .and_then(|p| p.room_occupancy)
            .map(|p| p.ready_target),
        fixed_buffer: policy
            .filter(|p| p.kind == POLICY_FIXED_BUFFER)
            .and_then(|p| p.fixed_buffer)
            .map(|p| p.amount as f64),
    }
}
