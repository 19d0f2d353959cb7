//! Room events per second through the engine and the simulated cluster, on
//! one core: the capacity planner's speed.
//!
//! One day of synthetic demand (a daily cycle between `PEAK / 4` and `PEAK`
//! players, 10 players a match, lognormal matches of about 30 minutes)
//! through `maestro_sim::plan::run`, three times: with every ping delivered
//! (the engine sees each game server's ping every 10 s), with unchanged
//! pings elided (what a shell whose servers ping over HTTP can leave out),
//! and with pings reported (the planner's default: status changes, and
//! each server's pings said steady or stopped). The three make the same
//! decisions. A room event is what reaches the engine from the cluster and
//! the matchmaker: a ping, a liveness report, a pod event or an
//! allocation. Reported per run: simulated time, wall time, room events,
//! room events per second, engine inputs per second, and the decision
//! trace hash (equal in all three).
//!
//! Run: `cargo bench -p maestro-benches --bench planner` (add `-- 200000`
//! for another peak of concurrent players).

use std::time::Instant;

use maestro_engine::Millis;
use maestro_engine::scheduler::{PortRange, fixtures};
use maestro_sim::cluster::Pings;
use maestro_sim::demand::Demand;
use maestro_sim::demand::synthetic::Synthetic;
use maestro_sim::dist::Distribution;
use maestro_sim::plan::{PlanConfig, elided_pings, run};

/// The allocator the `maestro` binary runs the planner with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let peak: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50_000.0);
    let mut scheduler = fixtures::scheduler("bench");
    scheduler.spec.version = String::new();
    scheduler.spec.containers[0].ports[0].host_port_range = None;
    scheduler.port_range = Some(PortRange {
        start: 20000,
        end: 60000,
    });
    scheduler.autoscaling = Some(fixtures::room_occupancy(10, 150_000, 0.1));
    let mut config = PlanConfig::new(scheduler);
    config.players_per_match = 10;
    config.match_duration = Distribution::LogNormal {
        median: Millis::from_secs(30 * 60),
        sigma: 0.3,
    };
    config.warmup = Millis::from_secs(3600);
    let spec = format!("days=1,peak={peak},trough={}", peak / 4.0);
    let demand = Demand::Players(
        Synthetic::parse(&spec)
            .expect("a valid synthetic spec")
            .series(1),
    );
    println!(
        "{:<10} {:>10} {:>8} {:>13} {:>15} {:>16} {:>10}  trace",
        "pings", "simulated", "wall", "room events", "room events/s", "engine inputs/s", "matches"
    );
    let elided = elided_pings(&config.cluster, &config.engine);
    for (label, pings) in [
        ("every", Pings::Every),
        ("elided", elided),
        ("reported", Pings::Reported),
    ] {
        let mut c = config.clone();
        c.cluster.pings = pings;
        let started = Instant::now();
        let outcome = run(&c, &demand, |_| {}).expect("the plan runs");
        let wall = started.elapsed().as_secs_f64();
        let r = &outcome.report;
        // Pings and pod events from the cluster, allocations from the
        // matchmaker, counted as the harness hands them to the engine; the
        // rest of the engine's inputs are runtime results and timers.
        let room_events = r.room_events as f64;
        println!(
            "{:<10} {:>9.0}h {:>7.2}s {:>13.0} {:>15.0} {:>16.0} {:>10}  {}",
            label,
            r.simulated_seconds / 3600.0,
            wall,
            room_events,
            room_events / wall,
            r.engine_inputs as f64 / wall,
            r.matches_started,
            r.decision_trace_hash
        );
    }
}
