use super::*;
use crate::cluster::test_scheduler;
use crate::cluster::{NodeAutoscale, NodePool};
use crate::demand::synthetic::Synthetic;

fn scheduler(ready_target: f64, max: i64) -> Scheduler {
    test_scheduler(2, max, ready_target)
}

fn config(ready_target: f64, max: i64) -> PlanConfig {
    let mut c = PlanConfig::new(scheduler(ready_target, max));
    c.players_per_match = 10;
    c.match_duration = Distribution::LogNormal {
        median: Millis::from_secs(20 * 60),
        sigma: 0.3,
    };
    c.warmup = Millis::from_secs(1800);
    c
}

/// A day of a small game: 500 to 2,000 players, noisy, with 10-player
/// matches of about 20 minutes (~100 matches at the peak).
fn demand() -> Demand {
    let s = Synthetic::parse("days=1,peak=2000,trough=500,noise=0.05").unwrap();
    Demand::Players(s.series(3))
}

fn without_wall(mut r: Report) -> Report {
    r.wall_seconds = 0.0;
    r.speedup = 0.0;
    r
}

#[test]
fn a_day_of_demand_is_served_without_deleting_an_occupied_room_and_replays_identically() {
    let c = config(0.3, 400);
    let d = demand();
    let a = run(&c, &d, |_| {}).unwrap();
    let r = &a.report;
    assert_eq!(r.occupied_rooms_deleted, 0);
    assert!(r.matches_started > 3_000, "{r:?}");
    assert!(r.matches_dropped * 1000 <= r.matches_requested, "{r:?}");
    assert!(r.scale_ups > 0 && r.scale_downs > 0, "{r:?}");
    assert!(r.peak_rooms >= 100 && r.peak_rooms < 400, "{r:?}");
    // Room-hours: at least the match-hours served.
    let match_hours = r.matches_started as f64 * 20.0 / 60.0;
    assert!(
        r.room_hours > match_hours * 0.9,
        "{} for {match_hours}",
        r.room_hours
    );
    assert_eq!(a.timeline.len(), 24 * 60 + 1);
    assert!(
        a.timeline
            .iter()
            .all(|row| row.ready + row.occupied + row.pending <= 400)
    );
    let b = run(&c, &d, |_| {}).unwrap();
    assert_eq!(
        without_wall(a.report.clone()),
        without_wall(b.report.clone())
    );
    assert_eq!(a.timeline_csv(), b.timeline_csv());
    let mut other = c.clone();
    other.seed = 2;
    let x = run(&other, &d, |_| {}).unwrap();
    assert_ne!(x.report.decision_trace_hash, a.report.decision_trace_hash);
}

#[test]
fn leaving_out_unchanged_pings_changes_no_decision() {
    let mut c = config(0.3, 400);
    c.duration = Some(Millis::from_secs(6 * 3600));
    c.cluster.failures.pod_crash_per_hour = 0.05;
    let d = demand();
    assert_eq!(c.cluster.pings, Pings::Reported);
    let reported = run(&c, &d, |_| {}).unwrap();
    c.cluster.pings = elided_pings(&c.cluster, &c.engine);
    assert!(matches!(c.cluster.pings, Pings::Elided { .. }));
    let elided = run(&c, &d, |_| {}).unwrap();
    c.cluster.pings = Pings::Every;
    let every = run(&c, &d, |_| {}).unwrap();
    assert!(every.report.engine_inputs > elided.report.engine_inputs * 2);
    // Here most room events are status changes (a match every 20 minutes
    // a room); the elided refreshes are the rest.
    assert!(elided.report.room_events * 4 > reported.report.room_events * 5);
    // Crashes happened, so the reports of stopped pings were exercised.
    assert!(
        reported.report.matches_interrupted_by_failures > 0,
        "{:?}",
        reported.report
    );
    for (name, other) in [("elided", &elided), ("reported", &reported)] {
        assert_eq!(
            other.report.decision_trace_hash, every.report.decision_trace_hash,
            "{name}: {:?}\n{:?}",
            other.report, every.report
        );
        assert_eq!(other.timeline, every.timeline, "{name}");
    }
}

#[test]
fn a_higher_ready_target_costs_more_and_makes_fewer_matches_wait() {
    let d = demand();
    // Slow pods (an image pull): a lean buffer runs dry at the peaks.
    let slow = |ready_target| {
        let mut c = config(ready_target, 400);
        c.cluster.start_latency = Distribution::Fixed(Millis::from_secs(45));
        c
    };
    let lean = run(&slow(0.01), &d, |_| {}).unwrap().report;
    let generous = run(&slow(0.6), &d, |_| {}).unwrap().report;
    assert!(lean.matches_waited > 0, "{lean:?}");
    assert!(
        generous.room_hours > lean.room_hours * 1.2,
        "{lean:?}\n{generous:?}"
    );
    assert!(
        generous.matches_waited < lean.matches_waited,
        "{lean:?}\n{generous:?}"
    );
    assert_eq!(
        lean.occupied_rooms_deleted + generous.occupied_rooms_deleted,
        0
    );
}

#[test]
fn a_fleet_capped_too_low_drops_matches() {
    let r = run(&config(0.3, 40), &demand(), |_| {}).unwrap().report;
    assert!(r.matches_dropped > 100, "{r:?}");
    assert!(r.wait_p99_s >= 30.0, "{r:?}");
    assert!(r.peak_rooms <= 40 + 1, "{r:?}");
}

#[test]
fn with_a_node_pool_rooms_wait_for_nodes_and_node_hours_are_counted() {
    let mut c = config(0.3, 400);
    c.duration = Some(Millis::from_secs(6 * 3600));
    // The fixture's room requests 100m CPU: ten rooms a node.
    c.cluster.nodes = Some(NodePool {
        cpu_millis: 1_000,
        memory_bytes: 64 << 30,
        min_nodes: 1,
        max_nodes: 100,
        autoscale: Some(NodeAutoscale::default()),
    });
    let r = run(&c, &demand(), |_| {}).unwrap();
    let report = &r.report;
    assert!(
        report.node_hours > report.room_hours / 10.0 * 0.9,
        "{report:?}"
    );
    assert!(report.peak_nodes >= 8, "{report:?}");
    assert!(r.timeline.iter().any(|row| row.pods_pending > 0));
    assert_eq!(report.occupied_rooms_deleted, 0);
}

#[test]
fn trace_matches_are_replayed_as_given() {
    let matches: Vec<_> = (0..200u64)
        .map(|i| crate::demand::MatchSpec {
            at: Time(1_700_000_000_000 + i * 30_000),
            duration: Millis::from_secs(600),
            players: 1,
        })
        .collect();
    let mut c = config(0.5, 100);
    c.players_per_match = 2;
    let r = run(&c, &Demand::Sessions(matches.clone()), |_| {})
        .unwrap()
        .report;
    assert_eq!(r.matches_requested, 100, "two sessions a match");
    assert_eq!(
        r.matches_started + r.matches_dropped + r.matches_still_waiting,
        100
    );
    let r = run(&c, &Demand::Matches(matches), |_| {}).unwrap().report;
    assert_eq!(r.matches_requested, 200, "each a match");
    assert_eq!(
        r.matches_started + r.matches_dropped + r.matches_still_waiting,
        200
    );
}
