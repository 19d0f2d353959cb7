use super::*;

const GIB: u64 = 1 << 30;

fn pod(room: &str, cpu: u64) -> PodSpec {
    PodSpec {
        scheduler: SmolStr::new("arena"),
        room: SmolStr::new(room),
        cpu_millis: cpu,
        memory_bytes: GIB / 4,
        ports: vec![],
        max_matches: 1,
    }
}

fn drain(c: &mut Cluster) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn pings(outputs: &[Output]) -> Vec<(String, PingStatus, u64)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Ping(p) => Some((p.room.clone(), p.status, p.running_matches)),
            _ => None,
        })
        .collect()
}

fn statuses(outputs: &[Output], room: &str) -> Vec<(InstanceEventKind, InstanceStatus)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Instance(e) if e.room == room => Some((e.kind, e.status)),
            _ => None,
        })
        .collect()
}

fn pooled(min: u32, max: u32) -> ClusterConfig {
    ClusterConfig {
        nodes: Some(NodePool {
            cpu_millis: 1_000,
            memory_bytes: 4 * GIB,
            min_nodes: min,
            max_nodes: max,
            autoscale: Some(NodeAutoscale::default()),
        }),
        ..ClusterConfig::default()
    }
}

#[test]
fn a_pod_starts_boots_and_pings_on_its_cadence() {
    let mut c = Cluster::new(ClusterConfig::default(), Time(0));
    c.create_pod(Time(0), pod("a", 100)).unwrap();
    c.advance(Time(999));
    let out = drain(&mut c);
    assert_eq!(
        statuses(&out, "a"),
        vec![
            (InstanceEventKind::Upsert, InstanceStatus::Pending),
            (InstanceEventKind::Upsert, InstanceStatus::Ready)
        ]
    );
    assert!(pings(&out).is_empty(), "boots 500 ms after running");
    c.advance(Time(1_000 + 25_000));
    // Booted at 1 s, then every 10 s: 1 s, 11 s, 21 s.
    assert_eq!(pings(&drain(&mut c)).len(), 3);
    assert_eq!(c.stats().pings, 3);
    c.check_consistency().unwrap();
}

#[test]
fn a_recycled_ping_lends_its_buffers_and_nothing_else() {
    let mut c = Cluster::new(ClusterConfig::default(), Time(0));
    c.create_pod(Time(0), pod("a", 100)).unwrap();
    c.create_pod(Time(0), pod("b", 100)).unwrap();
    c.advance(Time(1_000));
    let mut first: Vec<Ping> = drain(&mut c)
        .into_iter()
        .filter_map(|o| match o {
            Output::Ping(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(first.len(), 2, "both booted and pinged");
    // Handed back with other contents: none of them may leak.
    for ping in &mut first {
        ping.scheduler = "elsewhere".to_string();
        ping.room = "someone-else".to_string();
        ping.metadata_json = "{\"stale\":true}".to_string();
        ping.running_matches = 9;
    }
    for ping in first {
        c.recycle(ping);
    }
    assert!(c.allocated(Time(2_000), "arena", "b", Some(Millis(60_000))));
    let out = drain(&mut c);
    let [Output::Ping(ping)] = out.as_slice() else {
        panic!("one ping expected, got {out:?}");
    };
    assert_eq!(
        ping,
        &Ping {
            scheduler: "arena".to_string(),
            room: "b".to_string(),
            status: PingStatus::Occupied,
            running_matches: 1,
            metadata_json: String::new(),
        }
    );
}

#[test]
fn pods_wait_for_room_and_the_pool_grows_after_the_delay_then_shrinks() {
    let mut c = Cluster::new(pooled(1, 3), Time(0));
    for i in 0..4 {
        c.create_pod(Time(0), pod(&format!("r{i}"), 400)).unwrap();
    }
    // Two fit on the one node (400m + 400m of 1000m).
    assert_eq!(c.counts().pending, 2);
    c.advance(Time(89_999));
    assert_eq!(c.counts().nodes, 1, "no node before 90 s");
    c.advance(Time(90_000));
    assert_eq!(c.counts().nodes, 2, "800m pending: one node more");
    assert_eq!(c.counts().pending, 0);
    c.check_consistency().unwrap();
    // Delete the pods on node 1: it empties and goes 10 minutes later.
    for room in ["r2", "r3"] {
        c.delete_pod(Time(100_000), "arena", room).unwrap();
    }
    c.advance(Time(101_000));
    assert_eq!(c.counts().nodes, 2);
    c.advance(Time(101_000 + 600_000));
    assert_eq!(c.counts().nodes, 1, "the empty node is removed");
    assert_eq!(c.stats().nodes_added, 1);
    assert_eq!(c.stats().nodes_removed, 1);
    c.check_consistency().unwrap();
    // Node time: 1 node throughout, a second from 90 s to 701 s.
    let expected = 701_000u128 + (701_000 - 90_000);
    assert_eq!(c.stats().node_ms, expected);
}

#[test]
fn a_pod_larger_than_any_node_is_refused_naming_its_requests() {
    let mut c = Cluster::new(pooled(1, 3), Time(0));
    let err = c.create_pod(Time(0), pod("huge", 2_000)).unwrap_err();
    assert_eq!(err.kind, RuntimeErrorKind::Invalid);
    assert!(err.message.contains("2000m"), "{}", err.message);
}

#[test]
fn a_told_game_server_hosts_its_match_and_comes_back_ready() {
    let mut c = Cluster::new(ClusterConfig::default(), Time(0));
    c.create_pod(Time(0), pod("a", 100)).unwrap();
    c.advance(Time(1_000));
    drain(&mut c);
    assert!(c.allocated(Time(2_000), "arena", "a", Some(Millis(30_000))));
    assert!(
        !c.allocated(Time(2_000), "arena", "a", None),
        "one match at a time with maxMatches 1"
    );
    assert_eq!(
        pings(&drain(&mut c)),
        vec![("a".to_string(), PingStatus::Occupied, 1)],
        "reported at once"
    );
    assert!(c.in_match("arena", "a"));
    c.advance(Time(32_000));
    let last = pings(&drain(&mut c));
    assert_eq!(last.last(), Some(&("a".to_string(), PingStatus::Ready, 0)));
    assert_eq!(c.stats().matches_finished, 1);
}

#[test]
fn a_multi_match_server_fills_its_slots_and_one_ending_after_n_matches_exits() {
    let config = ClusterConfig {
        terminate_after_matches: Some(2),
        ..ClusterConfig::default()
    };
    let mut c = Cluster::new(config, Time(0));
    let mut spec = pod("a", 100);
    spec.max_matches = 2;
    c.create_pod(Time(0), spec).unwrap();
    c.advance(Time(1_000));
    drain(&mut c);
    assert!(c.allocated(Time(1_000), "arena", "a", Some(Millis(5_000))));
    assert!(c.allocated(Time(1_000), "arena", "a", Some(Millis(8_000))));
    assert!(
        !c.allocated(Time(1_000), "arena", "a", None),
        "both slots taken"
    );
    assert_eq!(
        pings(&drain(&mut c)),
        vec![
            ("a".to_string(), PingStatus::Occupied, 1),
            ("a".to_string(), PingStatus::Occupied, 2)
        ]
    );
    c.advance(Time(9_000));
    let out = drain(&mut c);
    let reported = pings(&out);
    assert!(reported.contains(&("a".to_string(), PingStatus::Occupied, 1)));
    assert_eq!(
        reported.last(),
        Some(&("a".to_string(), PingStatus::Terminated, 0)),
        "after its second match the game server reports its end"
    );
    c.advance(Time(20_000));
    assert!(!c.has_pod("arena", "a"));
    assert_eq!(c.stats().matches_interrupted_by_deletion, 0);
}

#[test]
fn deleting_a_room_mid_match_is_counted() {
    let mut c = Cluster::new(ClusterConfig::default(), Time(0));
    c.create_pod(Time(0), pod("a", 100)).unwrap();
    c.advance(Time(1_000));
    c.allocated(Time(1_000), "arena", "a", None);
    c.delete_pod(Time(2_000), "arena", "a").unwrap();
    assert_eq!(c.stats().matches_interrupted_by_deletion, 1);
    c.advance(Time(3_000));
    let out = drain(&mut c);
    assert_eq!(
        statuses(&out, "a").last(),
        Some(&(InstanceEventKind::Deleted, InstanceStatus::Terminating))
    );
    let err = c.delete_pod(Time(3_000), "arena", "a").unwrap_err();
    assert_eq!(err.kind, RuntimeErrorKind::NotFound);
}

#[test]
fn a_lost_node_takes_its_pods_and_the_watch_hears_each() {
    let mut config = pooled(2, 2);
    config.failures.node_loss_per_hour = 1.0;
    if let Some(pool) = &mut config.nodes {
        pool.autoscale = None;
    }
    let mut c = Cluster::new(config, Time(0));
    for i in 0..4 {
        c.create_pod(Time(0), pod(&format!("r{i}"), 400)).unwrap();
    }
    c.advance(Time(10 * 3_600_000));
    assert!(c.stats().nodes_lost > 0);
    assert_eq!(c.counts().nodes, 2, "a fixed pool replaces lost nodes");
    let out = drain(&mut c);
    let deleted = out
        .iter()
        .filter(|o| matches!(o, Output::Instance(e) if e.kind == InstanceEventKind::Deleted))
        .count() as u64;
    assert_eq!(deleted, c.stats().pods_lost_with_nodes);
    c.check_consistency().unwrap();
}

/// What reaches maestro of each room's pings, and when it crashed.
#[derive(Default)]
struct PingLog {
    times: BTreeMap<String, Vec<u64>>,
    crashes: BTreeMap<String, u64>,
    /// Liveness reports: `(time, Some(last ping))` for stopped, `None` for steady.
    liveness: BTreeMap<String, Vec<(u64, Option<u64>)>>,
}

fn ping_times(mode: Pings, seed: u64) -> PingLog {
    let config = ClusterConfig {
        seed,
        pings: mode,
        failures: Failures {
            pod_crash_per_hour: 2.0,
            ..Failures::default()
        },
        ..ClusterConfig::default()
    };
    let mut c = Cluster::new(config, Time(0));
    for i in 0..30 {
        c.create_pod(Time(0), pod(&format!("r{i}"), 100)).unwrap();
    }
    let mut log = PingLog::default();
    let mut t = 0;
    let mut drain = |c: &mut Cluster| {
        while let Some(out) = c.poll_output() {
            match out {
                Output::Ping(p) => log.times.entry(p.room).or_default().push(c.now().0),
                Output::Instance(e) if e.status == InstanceStatus::Error => {
                    log.crashes.insert(e.room, c.now().0);
                }
                Output::Instance(_) => {}
                Output::Liveness(l) => {
                    let last = match l.pings {
                        PingStream::Steady => None,
                        PingStream::Stopped { last } => Some(last.0),
                    };
                    log.liveness
                        .entry(l.room)
                        .or_default()
                        .push((c.now().0, last));
                }
            }
        }
    };
    while t < 3 * 3_600_000 {
        t += 7_000;
        // Timer by timer, so that each output is logged at its own time.
        while let Some(at) = c.next_timeout().filter(|at| at.0 <= t) {
            c.advance(at);
            drain(&mut c);
        }
        if t % 70_000 == 0 {
            let room = format!("r{}", (t / 70_000) % 30);
            c.allocated(Time(t), "arena", &room, Some(Millis(45_000)));
        }
        c.advance(Time(t));
        drain(&mut c);
    }
    log
}

#[test]
fn elided_pings_keep_every_room_s_silence_the_same() {
    let refresh = Millis::from_secs(200);
    let interval = ClusterConfig::default().ping_interval;
    for seed in 0..3 {
        let PingLog {
            times: every,
            crashes,
            ..
        } = ping_times(Pings::Every, seed);
        let PingLog {
            times: elided,
            crashes: elided_crashes,
            ..
        } = ping_times(Pings::Elided { refresh }, seed);
        assert_eq!(crashes, elided_crashes, "the same crashes");
        assert!(!crashes.is_empty(), "seed {seed}: some rooms crash");
        for (room, all) in &every {
            let kept = &elided[room];
            if all.len() > 100 {
                assert!(
                    kept.len() < all.len() / 5,
                    "{room}: {} of {}",
                    kept.len(),
                    all.len()
                );
            }
            // Every delivered ping is a ping of the full run.
            assert!(kept.iter().all(|t| all.contains(t)), "{room}");
            // The same last ping before a crash silenced it.
            if crashes.contains_key(room) {
                assert_eq!(kept.last(), all.last(), "{room}");
            }
            // No gap reaches refresh + interval.
            for w in kept.windows(2) {
                assert!(w[1] - w[0] <= refresh.0 + interval.0, "{room}: {w:?}");
            }
        }
    }
}

#[test]
fn reported_pings_say_steady_once_and_stopped_at_the_last_ping() {
    for seed in 0..3 {
        let every = ping_times(Pings::Every, seed);
        let reported = ping_times(Pings::Reported, seed);
        assert_eq!(every.crashes, reported.crashes, "the same crashes");
        assert!(!every.crashes.is_empty(), "seed {seed}: some rooms crash");
        for (room, all) in &every.times {
            // Status changes only: the first ping, and one per match start
            // and end (a match every 70 s over 30 rooms: a few each).
            let kept = &reported.times[room];
            if all.len() > 100 {
                assert!(
                    kept.len() * 20 < all.len(),
                    "{room}: {} of {}",
                    kept.len(),
                    all.len()
                );
            }
            assert!(kept.iter().all(|t| all.contains(t)), "{room}");
            let reports = &reported.liveness[room];
            assert_eq!(
                reports[0],
                (all[0], None),
                "{room}: steady from its first ping"
            );
            match every.crashes.get(room) {
                Some(crash) => assert_eq!(
                    reports[1..],
                    [(*crash, all.last().copied())],
                    "{room}: stopped when it crashed, at its last ping"
                ),
                None => assert_eq!(reports.len(), 1, "{room}"),
            }
        }
    }
}

/// After maestro restarts, its restored rooms wait for a real ping, so a
/// server that crashes at its first tick since still sends that tick's
/// ping, as it does with every ping delivered; no server that pinged since
/// is reported stopped without it.
#[test]
fn after_a_restart_a_crash_at_the_first_tick_still_pings() {
    let config = ClusterConfig {
        pings: Pings::Reported,
        failures: Failures {
            pod_crash_per_hour: 30.0,
            ..Failures::default()
        },
        ..ClusterConfig::default()
    };
    let mut c = Cluster::new(config, Time(0));
    for i in 0..60 {
        c.create_pod(Time(0), pod(&format!("r{i}"), 100)).unwrap();
    }
    c.advance(Time(5_000));
    drain(&mut c);
    let mut crashes_at_first_tick = 0;
    let mut t = 5_000;
    for _ in 0..40 {
        c.announce(Time(t + 1));
        drain(&mut c);
        t += 25_000;
        // Each room's first ping since the restart.
        let mut first_ping: BTreeMap<String, Time> = BTreeMap::new();
        while let Some(at) = c.next_timeout().filter(|at| at.0 <= t) {
            c.advance(at);
            for out in drain(&mut c) {
                match out {
                    Output::Ping(p) => {
                        first_ping.entry(p.room).or_insert(at);
                    }
                    Output::Instance(e) if e.status == InstanceStatus::Error => {
                        let heard = first_ping.get(&e.room);
                        assert!(heard.is_some(), "{}: crashed unheard", e.room);
                        if heard == Some(&at) {
                            crashes_at_first_tick += 1;
                        }
                    }
                    Output::Liveness(l) => {
                        if let PingStream::Stopped { last } = l.pings {
                            assert_eq!(last, at, "{}: stopped at its crash tick", l.room);
                        }
                    }
                    Output::Instance(_) => {}
                }
            }
        }
    }
    assert!(crashes_at_first_tick > 0, "the case arises");
}

#[test]
fn the_same_seed_gives_the_same_outputs() {
    let run = |seed| {
        let mut config = pooled(1, 10);
        config.seed = seed;
        config.start_latency = Distribution::LogNormal {
            median: Millis(2_000),
            sigma: 0.5,
        };
        config.failures = Failures {
            pod_crash_per_hour: 1.0,
            node_loss_per_hour: 0.2,
            api_error_rate: 0.05,
        };
        let mut c = Cluster::new(config, Time(0));
        let mut out = Vec::new();
        for i in 0..200u64 {
            let t = Time(i * 60_000);
            let _ = c.create_pod(t, pod(&format!("r{i}"), 300));
            if i % 3 == 0 {
                let _ = c.delete_pod(t, "arena", &format!("r{}", i / 2));
            }
            c.advance(t);
            out.extend(drain(&mut c));
        }
        c.check_consistency().unwrap();
        (out, c.stats().clone())
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1).0, run(2).0);
}

#[test]
fn api_errors_come_at_their_rate_and_change_nothing() {
    let config = ClusterConfig {
        failures: Failures {
            api_error_rate: 0.2,
            ..Failures::default()
        },
        ..ClusterConfig::default()
    };
    let mut c = Cluster::new(config, Time(0));
    let failed = (0..1_000)
        .filter(|i| c.create_pod(Time(0), pod(&format!("r{i}"), 1)).is_err())
        .count();
    assert!((150..250).contains(&failed), "{failed} of 1000");
    assert_eq!(c.stats().pods_created as usize, 1_000 - failed);
    assert_eq!(c.pod_count("arena"), 1_000 - failed);
}

#[test]
fn a_silenced_server_with_elided_pings_stays_silent_and_time_moves_on() {
    let config = ClusterConfig {
        pings: Pings::Elided {
            refresh: Millis::from_secs(200),
        },
        ..ClusterConfig::default()
    };
    let mut c = Cluster::new(config, Time(0));
    c.create_pod(Time(0), pod("a", 100)).unwrap();
    c.advance(Time(2_000));
    drain(&mut c);
    let silent = RoomBehaviour {
        status: PingStatus::Unknown,
        running_matches: 0,
    };
    c.set_behaviour(Time(2_000), "arena", "a", Some(silent));
    c.advance(Time(3_600_000));
    assert!(pings(&drain(&mut c)).is_empty());
    assert!(c.next_timeout().is_some_and(|t| t > Time(3_600_000)));
}

#[test]
fn the_node_autoscaler_waits_for_each_pod_even_when_an_idle_check_comes_first() {
    let mut c = Cluster::new(pooled(1, 5), Time(0));
    // An extra node, empty: its idle check is due at 10 minutes.
    c.create_pod(Time(0), pod("a", 600)).unwrap();
    c.create_pod(Time(0), pod("b", 600)).unwrap();
    c.advance(Time(90_000));
    assert_eq!(c.counts().nodes, 2);
    c.delete_pod(Time(100_000), "arena", "b").unwrap();
    c.advance(Time(101_000));
    // Just before node 1 would go idle, a burst fills it and leaves pods
    // pending: they get a node 90 s after their creation, not at the
    // idle check.
    let t = 101_000 + 595_000;
    for i in 0..3 {
        c.create_pod(Time(t), pod(&format!("c{i}"), 600)).unwrap();
    }
    assert_eq!(c.counts().pending, 2);
    c.advance(Time(t + 89_000));
    assert_eq!(c.counts().pending, 2, "no node before 90 s of waiting");
    c.advance(Time(t + 90_000));
    assert_eq!(c.counts().pending, 0);
    c.check_consistency().unwrap();
}

#[test]
fn a_server_ending_after_n_matches_takes_no_more_than_n() {
    let config = ClusterConfig {
        terminate_after_matches: Some(1),
        ..ClusterConfig::default()
    };
    let mut c = Cluster::new(config, Time(0));
    let mut spec = pod("a", 100);
    spec.max_matches = 3;
    c.create_pod(Time(0), spec).unwrap();
    c.advance(Time(1_000));
    assert!(c.allocated(Time(1_000), "arena", "a", None));
    assert!(
        !c.allocated(Time(1_000), "arena", "a", None),
        "its one match is taken"
    );
}

/// After `calm`, no pod crashes (even one already drawn) and no API call
/// fails.
#[test]
fn calm_stops_every_failure() {
    let crashing = ClusterConfig {
        failures: Failures {
            pod_crash_per_hour: 3_600.0,
            ..Failures::default()
        },
        ..ClusterConfig::default()
    };
    let mut c = Cluster::new(crashing.clone(), Time(0));
    c.create_pod(Time(0), pod("a", 100)).expect("created");
    // Booted: its crash is drawn (about a second ahead at this rate).
    c.advance(Time(1_500));
    assert!(c.is_running("arena", "a"));
    c.calm(Time(1_500));
    c.advance(Time(3_600_000));
    assert_eq!(c.stats().pods_crashed, 0);
    assert!(c.is_running("arena", "a"));
    assert!(!c.is_running("arena", "b"));
    // Without calm, the same cluster crashes it.
    let mut c = Cluster::new(crashing, Time(0));
    c.create_pod(Time(0), pod("a", 100)).expect("created");
    c.advance(Time(3_600_000));
    assert_eq!(c.stats().pods_crashed, 1);

    let failing = ClusterConfig {
        failures: Failures {
            api_error_rate: 1.0,
            ..Failures::default()
        },
        ..ClusterConfig::default()
    };
    let mut c = Cluster::new(failing, Time(0));
    assert!(
        c.create_pod(Time(0), pod("a", 100)).is_err(),
        "every call fails"
    );
    c.calm(Time(0));
    c.create_pod(Time(0), pod("a", 100))
        .expect("calm: no API error");
}
