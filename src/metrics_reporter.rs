//! The metrics reporter: fleet gauges per scheduler, with upstream's metric
//! names, refreshed on a period from the engine's incremental counts.

use std::time::Duration;

use maestro_engine::health;
use maestro_engine::room::RoomStatus;
use maestro_engine::scheduler::{POLICY_FIXED_BUFFER, POLICY_ROOM_OCCUPANCY};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::driver::{DriverHandle, wall_clock};

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

pub async fn run(
    handle: DriverHandle,
    metrics: PrometheusHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(PERIOD);
    while crate::service::tick_or_stop(&mut tick, &mut shutdown).await {
        metrics.run_upkeep();
        let Some(samples) = handle.read(sample).await else {
            return;
        };
        for s in samples {
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

fn sample(engine: &maestro_engine::Engine) -> Vec<Sample> {
    let now = wall_clock();
    engine
        .scheduler_names()
        .filter_map(|name| {
            let scheduler = engine.scheduler(name)?;
            let fleet = engine.fleet(name)?;
            let counts = fleet.counts();
            let policy = scheduler.active_autoscaling().map(|a| &a.policy);
            Some(Sample {
                scheduler: name.to_string(),
                game: scheduler.game.clone(),
                by_status: counts.by_status,
                desired: health::target(scheduler, fleet, now)
                    .map(|t| t.desired)
                    .unwrap_or(0),
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
            })
        })
        .collect()
}
