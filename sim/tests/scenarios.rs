//! End-to-end engine behaviour in simulated time: a scheduler's life from
//! creation through autoscaling, a rolling update and deletion.

use maestro_engine::query::{Answer, Query, Stage};
use maestro_engine::room::{PingStatus, RemovalReason, RoomStatus};
use maestro_engine::scheduler::{PortRange, Scheduler, SchedulerState, fixtures};
use maestro_engine::{
    Command, CommandError, CommandReply, Definition, EngineConfig, Millis, OperationStatus,
};
use maestro_sim::cluster::{Failures, Pings};
use maestro_sim::{ClusterConfig, Harness, RoomBehaviour};

fn scheduler(name: &str, replicas: i64) -> Scheduler {
    // The engine's valid fixture, with a scheduler-wide port range.
    let mut s = fixtures::scheduler(name);
    s.rooms_replicas = replicas;
    s.spec.version = String::new();
    s.spec.containers[0].image = "game:1".to_string();
    s.spec.containers[0].ports[0].host_port_range = None;
    s.port_range = Some(PortRange {
        start: 20000,
        end: 21000,
    });
    s
}

/// The lowest-named room of the "arena" fleet.
fn first_room(h: &Harness) -> String {
    h.engine
        .fleet("arena")
        .unwrap()
        .rooms()
        .next()
        .unwrap()
        .id
        .clone()
}

fn harness() -> Harness {
    Harness::new(EngineConfig::default(), ClusterConfig::default())
}

fn enqueued(reply: Result<CommandReply, CommandError>) -> String {
    match reply.as_ref().map(CommandReply::operation_id) {
        Ok(Some(id)) => id.clone(),
        _ => panic!("expected an enqueued operation, got {reply:?}"),
    }
}

fn count(h: &Harness, name: &str, status: RoomStatus) -> u64 {
    h.engine.fleet(name).unwrap().counts().get(status)
}

fn check(h: &Harness) {
    h.engine.check_invariants().unwrap();
}

#[test]
fn a_new_scheduler_reaches_its_replicas() {
    let mut h = harness();
    let op = enqueued(h.command(Command::CreateScheduler(scheduler("arena", 5))));
    h.run_for(Millis::from_secs(5));
    check(&h);
    assert_eq!(
        h.engine.operation("arena", &op).unwrap().status,
        OperationStatus::Finished
    );
    assert_eq!(
        h.engine.scheduler("arena").unwrap().state,
        SchedulerState::InSync
    );
    assert_eq!(count(&h, "arena", RoomStatus::Ready), 5);
    assert_eq!(h.pod_count("arena"), 5);
    let add = h
        .engine
        .operations("arena")
        .find(|o| matches!(o.definition, Definition::AddRooms { amount: 5 }))
        .expect("an add_rooms of 5");
    assert_eq!(add.status, OperationStatus::Finished);
}

#[test]
fn creating_an_existing_or_invalid_scheduler_is_refused() {
    let mut h = harness();
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 1))));
    assert!(matches!(
        h.command(Command::CreateScheduler(scheduler("arena", 1))),
        Err(CommandError::AlreadyExists(_))
    ));
    let mut bad = scheduler("Bad_Name", -1);
    bad.max_surge = "0".to_string();
    let Err(CommandError::Invalid(errors)) = h.command(Command::CreateScheduler(bad)) else {
        panic!("invalid scheduler accepted");
    };
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"name"), "{paths:?}");
    assert!(paths.contains(&"roomsReplicas"), "{paths:?}");
    assert!(paths.contains(&"maxSurge"), "{paths:?}");
}

#[test]
fn occupancy_scales_up_in_the_same_step() {
    let mut h = harness();
    let mut s = scheduler("arena", 0);
    s.autoscaling = Some(fixtures::room_occupancy(2, 50, 0.5));
    enqueued(h.command(Command::CreateScheduler(s)));
    h.run_for(Millis::from_secs(5));
    assert_eq!(count(&h, "arena", RoomStatus::Ready), 2);

    // Two allocations: 2 busy rooms at readyTarget 0.5 want 4 rooms. The
    // add_rooms is enqueued by the allocation itself, before any timer.
    let before = h.engine.operations("arena").count();
    h.allocate("arena").unwrap();
    h.allocate("arena").unwrap();
    assert!(h.allocate("arena").is_none(), "no third ready room");
    let add = h
        .engine
        .operations("arena")
        .filter(|o| matches!(o.definition, Definition::AddRooms { .. }))
        .max_by_key(|o| o.created_at)
        .unwrap();
    assert_eq!(add.created_at, h.now(), "decided in the allocation's step");
    assert!(h.engine.operations("arena").count() > before);
    h.run_for(Millis::from_secs(5));
    check(&h);
    // Told of their allocation, the two game servers host a match.
    assert_eq!(count(&h, "arena", RoomStatus::Occupied), 2);
    assert_eq!(count(&h, "arena", RoomStatus::Ready), 2);
}

#[test]
fn scale_down_never_removes_a_busy_room() {
    let mut h = harness();
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 6))));
    h.run_for(Millis::from_secs(5));
    let rooms: Vec<String> = h
        .engine
        .fleet("arena")
        .unwrap()
        .rooms()
        .map(|r| r.id.clone())
        .collect();
    for room in &rooms[..4] {
        h.set_behaviour(
            "arena",
            room,
            RoomBehaviour {
                status: PingStatus::Occupied,
                running_matches: 1,
            },
        );
    }
    let mut smaller = scheduler("arena", 2);
    smaller.spec.version = String::new();
    enqueued(h.command(Command::NewSchedulerVersion(smaller)));
    h.run_for(Millis::from_secs(10));
    check(&h);
    // Only the two idle rooms may go; the fleet stays at the four busy ones.
    assert_eq!(count(&h, "arena", RoomStatus::Occupied), 4);
    assert_eq!(h.engine.fleet("arena").unwrap().counts().in_service(), 4);
    for room in &rooms[..4] {
        assert!(
            h.engine.fleet("arena").unwrap().contains(room),
            "busy room {room} survived"
        );
    }
    // Freed rooms are removed as soon as they report ready.
    h.set_behaviour(
        "arena",
        &rooms[0],
        RoomBehaviour {
            status: PingStatus::Ready,
            running_matches: 0,
        },
    );
    h.set_behaviour(
        "arena",
        &rooms[1],
        RoomBehaviour {
            status: PingStatus::Ready,
            running_matches: 0,
        },
    );
    h.run_for(Millis::from_secs(5));
    check(&h);
    assert_eq!(h.engine.fleet("arena").unwrap().counts().in_service(), 2);
}

/// `replicas` ready rooms, one of them playing a match, then a major
/// version enqueued. Returns the busy room and the version operation.
fn major_version_with_a_busy_room(h: &mut Harness, replicas: i64) -> (String, String) {
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", replicas))));
    h.run_for(Millis::from_secs(5));
    let busy = first_room(h);
    let occupied = RoomBehaviour {
        status: PingStatus::Occupied,
        running_matches: 1,
    };
    h.set_behaviour("arena", &busy, occupied);
    let mut v2 = scheduler("arena", replicas);
    v2.spec.containers[0].image = "game:2".to_string();
    let op = enqueued(h.command(Command::NewSchedulerVersion(v2)));
    (busy, op)
}

#[test]
fn a_major_version_rolls_every_room_over_without_deleting_a_busy_one() {
    let mut h = harness();
    let (busy, op) = major_version_with_a_busy_room(&mut h, 8);
    h.run_for(Millis::from_secs(30));
    check(&h);
    let op = h.engine.operation("arena", &op).unwrap();
    assert_eq!(
        op.status,
        OperationStatus::Finished,
        "{:?}",
        op.execution_history
    );
    assert!(
        op.execution_history
            .iter()
            .any(|e| e.event == "1º Attempt: Game room validation success!")
    );
    assert_eq!(h.engine.scheduler("arena").unwrap().spec.version, "v2.0.0");

    // Every idle room was replaced; the busy one still runs v1.
    let fleet = h.engine.fleet("arena").unwrap();
    assert!(fleet.contains(&busy));
    let old: Vec<_> = fleet
        .rooms()
        .filter(|r| r.version.major == 1)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(old, vec![busy.clone()]);
    assert!(fleet.counts().in_service() <= 8 + 2);

    // Once it frees up it is replaced too, and the rollout ends at 8 rooms.
    h.set_behaviour(
        "arena",
        &busy,
        RoomBehaviour {
            status: PingStatus::Ready,
            running_matches: 0,
        },
    );
    h.run_for(Millis::from_secs(30));
    check(&h);
    let fleet = h.engine.fleet("arena").unwrap();
    assert!(!fleet.is_rolling());
    assert!(
        fleet
            .rooms()
            .all(|r| r.version.major == 2 || r.deletion.is_some())
    );
    assert_eq!(fleet.counts().in_service(), 8);
}

#[test]
fn minor_versions_do_not_replace_rooms() {
    let mut h = harness();
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 3))));
    h.run_for(Millis::from_secs(5));
    let created_before = h.stats.pods_created;
    let op = enqueued(h.command(Command::NewSchedulerVersion(scheduler("arena", 4))));
    h.run_for(Millis::from_secs(5));
    assert_eq!(
        h.engine.operation("arena", &op).unwrap().status,
        OperationStatus::Finished
    );
    assert_eq!(h.engine.scheduler("arena").unwrap().spec.version, "v1.1.0");
    assert_eq!(
        h.stats.pods_created,
        created_before + 1,
        "one more room, none replaced"
    );
    let versions = h.engine.versions("arena").unwrap();
    assert_eq!(versions.len(), 2);
    assert!(versions[0].is_active);
}

#[test]
fn version_operations_conflict_at_enqueue_time() {
    let mut h = harness();
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 1))));
    h.run_for(Millis::from_secs(5));
    let mut v2 = scheduler("arena", 1);
    v2.spec.containers[0].image = "game:2".to_string();
    enqueued(h.command(Command::NewSchedulerVersion(v2.clone())));
    assert!(matches!(
        h.command(Command::NewSchedulerVersion(v2)),
        Err(CommandError::Conflict(_))
    ));
    assert!(matches!(
        h.command(Command::SwitchActiveVersion {
            scheduler: "arena".into(),
            version: "v1.0.0".into()
        }),
        Err(CommandError::Conflict(_))
    ));
}

#[test]
fn cancel_pending_and_in_progress_operations_ends_canceled() {
    let mut h = harness();
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 1))));
    h.run_for(Millis::from_secs(5));
    // A major version whose validation room never becomes ready: the image
    // is fine in the simulation, so hold it by canceling before time passes.
    let mut v2 = scheduler("arena", 1);
    v2.spec.containers[0].image = "game:2".to_string();
    let op = enqueued(h.command(Command::NewSchedulerVersion(v2)));
    assert_eq!(
        h.engine.operation("arena", &op).unwrap().status,
        OperationStatus::InProgress
    );
    let pending = enqueued(h.command(Command::AddRooms {
        scheduler: "arena".into(),
        amount: 1,
    }));
    assert_eq!(
        h.engine.operation("arena", &pending).unwrap().status,
        OperationStatus::Pending
    );

    h.command(Command::CancelOperation {
        scheduler: "arena".into(),
        operation_id: pending.clone(),
    })
    .unwrap();
    assert_eq!(
        h.engine.operation("arena", &pending).unwrap().status,
        OperationStatus::Canceled
    );
    h.command(Command::CancelOperation {
        scheduler: "arena".into(),
        operation_id: op.clone(),
    })
    .unwrap();
    assert_eq!(
        h.engine.operation("arena", &op).unwrap().status,
        OperationStatus::Canceled
    );
    assert_eq!(
        h.command(Command::CancelOperation {
            scheduler: "arena".into(),
            operation_id: op.clone()
        }),
        Err(CommandError::NotCancelable(OperationStatus::Canceled))
    );
    h.run_for(Millis::from_secs(5));
    check(&h);
    assert_eq!(h.engine.scheduler("arena").unwrap().spec.version, "v1.0.0");
    assert_eq!(
        h.engine.scheduler("arena").unwrap().state,
        SchedulerState::InSync
    );
    assert!(
        h.engine
            .fleet("arena")
            .unwrap()
            .rooms()
            .all(|r| !r.is_validation_room)
    );
}

#[test]
fn a_room_that_reports_terminated_is_removed_and_replaced() {
    let mut h = harness();
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 2))));
    h.run_for(Millis::from_secs(5));
    let room = first_room(&h);
    // The room's game server says it is done (a silent one is
    // `a_hung_room_expires_after_the_ping_timeout`).
    h.set_behaviour(
        "arena",
        &room,
        RoomBehaviour {
            status: PingStatus::Terminated,
            running_matches: 0,
        },
    );
    h.run_for(Millis::from_secs(10));
    check(&h);
    assert!(!h.engine.fleet("arena").unwrap().contains(&room));
    assert_eq!(count(&h, "arena", RoomStatus::Ready), 2);
    let removal = h
        .engine
        .operations("arena")
        .find(|o| matches!(&o.definition, Definition::RemoveRooms { room_ids, .. } if room_ids.contains(&room)))
        .unwrap();
    assert_eq!(removal.status, OperationStatus::Finished);
}

#[test]
fn a_hung_room_expires_after_the_ping_timeout() {
    let mut h = harness();
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 2))));
    h.run_for(Millis::from_secs(5));
    let room = first_room(&h);
    h.set_behaviour(
        "arena",
        &room,
        RoomBehaviour {
            status: PingStatus::Unknown,
            running_matches: 0,
        },
    );
    h.run_for(Millis::from_secs(200));
    assert!(
        h.engine.fleet("arena").unwrap().contains(&room),
        "not before the 240 s timeout"
    );
    h.run_for(Millis::from_secs(60));
    check(&h);
    assert!(!h.engine.fleet("arena").unwrap().contains(&room));
    assert_eq!(count(&h, "arena", RoomStatus::Ready), 2);
}

#[test]
fn deleting_a_scheduler_removes_it_and_its_rooms() {
    let mut h = harness();
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 3))));
    h.run_for(Millis::from_secs(5));
    enqueued(h.command(Command::DeleteScheduler {
        scheduler: "arena".into(),
    }));
    assert!(matches!(
        h.command(Command::AddRooms {
            scheduler: "arena".into(),
            amount: 1
        }),
        Err(CommandError::Conflict(_))
    ));
    h.run_for(Millis::from_secs(5));
    assert!(h.engine.scheduler("arena").is_none());
    assert_eq!(h.pod_count("arena"), 0);
}

#[test]
fn a_ping_never_creates_a_room() {
    let mut h = harness();
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 1))));
    h.run_for(Millis::from_secs(5));
    let ping = maestro_engine::Ping {
        scheduler: "arena".into(),
        room: "arena-ghost".into(),
        status: PingStatus::Ready,
        running_matches: 0,
        metadata_json: String::new(),
    };
    let now = h.now();
    assert!(h.engine.handle_ping(now, &ping).is_err());
    assert!(!h.engine.fleet("arena").unwrap().contains("arena-ghost"));
}

#[test]
fn same_seed_same_run() {
    fn run(seed: u64) -> Vec<String> {
        let config = EngineConfig {
            seed,
            ..EngineConfig::default()
        };
        let mut h = Harness::new(config, ClusterConfig::default());
        enqueued(h.command(Command::CreateScheduler(scheduler("arena", 4))));
        h.run_for(Millis::from_secs(5));
        let mut v2 = scheduler("arena", 4);
        v2.spec.containers[0].image = "game:2".to_string();
        enqueued(h.command(Command::NewSchedulerVersion(v2)));
        h.run_for(Millis::from_secs(60));
        h.engine
            .fleet("arena")
            .unwrap()
            .rooms()
            .map(|r| r.id.clone())
            .collect()
    }
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn room_records_off_changes_no_decision() {
    // What the planner runs with: no store, so no room records. Matches,
    // a rollout, crashes and a scale-down, with and without them.
    fn run(room_records: bool) -> (String, u64, Vec<(String, RoomStatus)>, usize) {
        let config = EngineConfig {
            room_records,
            ..EngineConfig::default()
        };
        let cluster = ClusterConfig {
            failures: Failures {
                pod_crash_per_hour: 30.0,
                ..Failures::default()
            },
            ..ClusterConfig::default()
        };
        let mut h = Harness::new(config, cluster);
        enqueued(h.command(Command::CreateScheduler(scheduler("arena", 6))));
        h.run_for(Millis::from_secs(30));
        for i in 0..30u64 {
            let _ = h.allocate_for("arena", Some(Millis::from_secs(20 + i % 5 * 15)));
            h.run_for(Millis::from_secs(3));
        }
        let mut v2 = scheduler("arena", 3);
        v2.spec.containers[0].image = "game:2".to_string();
        enqueued(h.command(Command::NewSchedulerVersion(v2)));
        h.run_for(Millis::from_secs(900));
        check(&h);
        let rooms = h
            .engine
            .fleet("arena")
            .unwrap()
            .rooms()
            .map(|r| (r.id.clone(), r.status))
            .collect();
        let stored: usize = h.store.load().unwrap().iter().map(|s| s.rooms.len()).sum();
        (h.trace.hash(), h.trace.decisions(), rooms, stored)
    }
    let (hash_on, decisions_on, rooms_on, stored_on) = run(true);
    let (hash_off, decisions_off, rooms_off, stored_off) = run(false);
    assert!(decisions_on > 50, "{decisions_on} decisions");
    assert_eq!(hash_on, hash_off);
    assert_eq!(decisions_on, decisions_off);
    assert_eq!(rooms_on, rooms_off);
    // With records the store holds every room; without, none.
    assert_eq!(stored_on, rooms_on.len());
    assert_eq!(stored_off, 0);
}

#[test]
fn storage_clean_up_keeps_the_operation_history_bounded() {
    let sim = ClusterConfig {
        ping_interval: Millis::from_secs(60),
        ..ClusterConfig::default()
    };
    let mut h = Harness::new(EngineConfig::default(), sim);
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 1))));
    // Three simulated days: one health_controller a minute.
    h.run_for(Millis::from_secs(3 * 24 * 3600));
    check(&h);
    let health_checks = h
        .engine
        .operations("arena")
        .filter(|o| matches!(o.definition, Definition::HealthController { .. }))
        .count();
    // At most a day's worth plus the clean-up period's (at most 2.5 × 3 h).
    let bound = (24 + 8) * 60;
    assert!(health_checks > 60, "health checks ran: {health_checks}");
    assert!(
        health_checks <= bound,
        "{health_checks} health_controller records kept"
    );
    assert!(
        h.engine
            .operations("arena")
            .any(|o| matches!(o.definition, Definition::StorageCleanUp))
    );
}

/// Operations the store holds, by id, with their status.
fn stored_operations(h: &Harness, name: &str) -> Vec<(String, OperationStatus)> {
    let stored = h.store.load().unwrap();
    let s = stored
        .iter()
        .find(|s| s.versions[0].scheduler.name == name)
        .unwrap();
    let mut ops: Vec<_> = s
        .operations
        .iter()
        .map(|o| (o.id.clone(), o.status))
        .collect();
    ops.sort();
    ops
}

#[test]
fn a_restart_mid_rollout_finishes_the_rollout_and_loses_no_operation() {
    let mut h = harness();
    let (busy, version_op) = major_version_with_a_busy_room(&mut h, 6);
    // Mid-way: the validation room is up and the rollout has begun.
    h.run_for(Millis::from_secs(2));
    let acknowledged = stored_operations(&h, "arena");
    assert!(acknowledged.iter().any(|(id, _)| *id == version_op));
    let fleet = h.engine.fleet("arena").unwrap();
    assert!(
        fleet
            .rooms()
            .any(|r| r.version.major == 2 && !r.is_validation_room),
        "the rollout had begun before the restart"
    );
    assert!(
        fleet.rooms().any(|r| r.version.major == 1 && r.id != busy),
        "and had old rooms left to replace"
    );

    h.restart();
    check(&h);
    // Restored rooms keep their recorded status: the busy room is not a
    // removal candidate until it reports again, and it reports occupied.
    h.run_for(Millis::from_secs(60));
    check(&h);

    let after = stored_operations(&h, "arena");
    for (id, _) in &acknowledged {
        let op = h
            .engine
            .operation("arena", id)
            .unwrap_or_else(|| panic!("operation {id} lost"));
        assert!(
            op.status.is_final(),
            "{} still {}",
            op.definition.name(),
            op.status.as_str()
        );
        assert!(after.iter().any(|(a, _)| a == id));
    }
    assert_eq!(h.engine.scheduler("arena").unwrap().spec.version, "v2.0.0");
    let fleet = h.engine.fleet("arena").unwrap();
    assert!(
        fleet.contains(&busy),
        "the busy room survived the restart and the rollout"
    );
    let old: Vec<_> = fleet
        .rooms()
        .filter(|r| r.version.major == 1)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(old, vec![busy.clone()]);

    h.set_behaviour(
        "arena",
        &busy,
        RoomBehaviour {
            status: PingStatus::Ready,
            running_matches: 0,
        },
    );
    h.run_for(Millis::from_secs(30));
    let fleet = h.engine.fleet("arena").unwrap();
    assert!(!fleet.is_rolling(), "the rollout finished");
    assert_eq!(fleet.counts().in_service(), 6);
}

#[test]
fn a_restart_during_validation_resumes_the_version_operation() {
    let mut h = harness();
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 2))));
    h.run_for(Millis::from_secs(5));
    let mut v2 = scheduler("arena", 2);
    v2.spec.containers[0].image = "game:2".to_string();
    let op = enqueued(h.command(Command::NewSchedulerVersion(v2)));
    h.run_for(Millis(100)); // the validation room is being created
    assert_eq!(
        h.engine.operation("arena", &op).unwrap().status,
        OperationStatus::InProgress
    );
    h.restart();
    let resumed = h.engine.operation("arena", &op).unwrap();
    assert!(
        resumed
            .execution_history
            .iter()
            .any(|e| e.event.starts_with("Resumed after a restart")),
        "{:?}",
        resumed.execution_history
    );
    h.run_for(Millis::from_secs(30));
    check(&h);
    assert_eq!(
        h.engine.operation("arena", &op).unwrap().status,
        OperationStatus::Finished
    );
    assert_eq!(h.engine.scheduler("arena").unwrap().spec.version, "v2.0.0");
    let fleet = h.engine.fleet("arena").unwrap();
    assert_eq!(
        fleet.counts().validation_rooms,
        0,
        "the first validation room was cleaned up"
    );
    assert!(fleet.rooms().all(|r| r.version.major == 2));
}

/// The store keeps no queue of its own: every operation record carries its
/// queue key, and a restart rebuilds the queue from them. The operations
/// waiting behind a running one come back in the order they were enqueued,
/// although the store hands the records back by id.
#[test]
fn a_restart_keeps_the_pending_queue_in_order() {
    let mut h = harness();
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 1))));
    h.run_for(Millis::from_secs(5));
    // A new version holds the queue (its validation room is being created)...
    let mut v2 = scheduler("arena", 1);
    v2.spec.containers[0].image = "game:2".to_string();
    let running = enqueued(h.command(Command::NewSchedulerVersion(v2)));
    // ...while these wait behind it.
    let queued: Vec<String> = (1..=6)
        .map(|amount| {
            let scheduler = "arena".to_string();
            enqueued(h.command(if amount % 2 == 0 {
                Command::AddRooms { scheduler, amount }
            } else {
                Command::RemoveRooms { scheduler, amount }
            }))
        })
        .collect();
    let pending: Vec<String> = h
        .engine
        .pending_operations("arena")
        .iter()
        .map(|o| o.id.clone())
        .collect();
    assert_eq!(pending, queued);
    let mut by_id = queued.clone();
    by_id.sort();
    assert_ne!(by_id, queued, "the ids alone would give the queue's order");

    h.restart();
    check(&h);
    // The version operation is resumed at the head; the others follow in
    // their order (the engine may have queued work of its own since).
    let order: Vec<String> = h
        .engine
        .in_progress_operation("arena")
        .into_iter()
        .chain(h.engine.pending_operations("arena"))
        .map(|o| o.id.clone())
        .filter(|id| *id == running || queued.contains(id))
        .collect();
    let mut want = vec![running];
    want.extend(queued);
    assert_eq!(order, want);
}

#[test]
fn a_running_operation_holds_a_lease_the_engine_renews() {
    // Slow pods: a major version's validation room takes 20 s to start.
    let sim = ClusterConfig {
        start_latency: maestro_sim::dist::Distribution::Fixed(Millis::from_secs(20)),
        ..ClusterConfig::default()
    };
    let mut h = Harness::new(EngineConfig::default(), sim);
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 1))));
    h.run_for(Millis::from_secs(25));
    let mut v2 = scheduler("arena", 1);
    v2.spec.containers[0].image = "game:2".to_string();
    let op = enqueued(h.command(Command::NewSchedulerVersion(v2)));
    let started = h
        .engine
        .operation("arena", &op)
        .unwrap()
        .started_at
        .unwrap();
    let ttl = EngineConfig::default().operation_lease_ttl;

    h.run_for(Millis::from_secs(7));
    let running = h.engine.operation("arena", &op).unwrap();
    assert_eq!(running.status, OperationStatus::InProgress);
    let lease = running.lease.expect("a running operation holds a lease");
    assert!(lease > h.now(), "the lease is live");
    assert!(lease > started + ttl, "the lease was renewed");
    // The renewal is persisted, so the store shows a live lease too.
    let stored = h.store.load().unwrap().remove(0).operations;
    let stored = stored.iter().find(|o| o.id == op).unwrap();
    assert_eq!(stored.lease, Some(lease));

    h.run_for(Millis::from_secs(60));
    let done = h.engine.operation("arena", &op).unwrap();
    assert_eq!(done.status, OperationStatus::Finished);
    assert_eq!(done.lease, None, "a finished operation holds no lease");
}

#[test]
fn a_room_listing_is_by_id_filtered_then_paged_with_the_total_before_paging() {
    let mut h = harness();
    h.command(Command::CreateScheduler(scheduler("arena", 3)))
        .unwrap();
    h.run_for(Millis::from_secs(5));
    let mut ids: Vec<String> = h
        .engine
        .fleet("arena")
        .unwrap()
        .rooms()
        .map(|r| r.id.clone())
        .collect();
    ids.sort();
    let busy = ids[1].clone();
    h.set_behaviour(
        "arena",
        &busy,
        RoomBehaviour {
            status: PingStatus::Occupied,
            running_matches: 1,
        },
    );
    h.run_for(Millis::from_secs(30));
    let page = |h: &Harness, status, offset, limit| {
        let query = Query::Rooms {
            scheduler: "arena".into(),
            status,
            offset,
            limit,
        };
        match h.engine.query(h.now(), query) {
            Answer::Rooms(Some(page)) => (
                page.rooms.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
                page.total,
            ),
            other => panic!("unexpected answer {other:?}"),
        }
    };
    assert_eq!(page(&h, None, 0, 10), (ids.clone(), 3));
    assert_eq!(page(&h, None, 1, 1), (vec![ids[1].clone()], 3));
    assert_eq!(page(&h, Some(RoomStatus::Occupied), 0, 10), (vec![busy], 1));
    assert_eq!(
        page(&h, Some(RoomStatus::Ready), 1, 10),
        (vec![ids[2].clone()], 2)
    );
    let unknown = Query::Rooms {
        scheduler: "nope".into(),
        status: None,
        offset: 0,
        limit: 1,
    };
    assert_eq!(h.engine.query(h.now(), unknown), Answer::Rooms(None));
}

#[test]
fn the_operation_history_leaves_out_operations_that_did_nothing() {
    let mut h = harness();
    h.command(Command::CreateScheduler(scheduler("arena", 2)))
        .unwrap();
    // Health checks that find the fleet at its size end with no action.
    h.run_for(Millis::from_secs(600));
    let stage = |stage| match h.engine.query(
        h.now(),
        Query::Operations {
            scheduler: "arena".into(),
            stage,
        },
    ) {
        Answer::Operations(Some(ops)) => ops,
        other => panic!("unexpected answer {other:?}"),
    };
    let no_action = h
        .engine
        .operations("arena")
        .filter(|o| o.status.is_final() && o.definition.has_no_action())
        .count();
    assert!(
        no_action > 0,
        "the health checks left no no-action operation"
    );
    let history = stage(Stage::Final);
    assert!(!history.is_empty());
    assert!(history.iter().all(|o| !o.definition.has_no_action()));
    assert!(stage(Stage::Pending).is_empty());
    assert!(stage(Stage::Active).is_empty());
}

#[test]
fn the_disruption_budget_follows_the_fleet_at_each_interval() {
    let config = EngineConfig {
        disruption_interval: Millis::from_secs(60),
        disruption_safety_millionths: 100_000,
        ..EngineConfig::default()
    };
    let mut h = Harness::new(config, ClusterConfig::default());
    h.command(Command::CreateScheduler(scheduler("arena", 20)))
        .unwrap();
    h.run_for(Millis::from_secs(5));
    // Set as soon as the namespace exists, from the rooms there are then.
    assert!(h.disruption_budgets.contains_key("arena"));
    h.run_for(Millis::from_secs(60));
    assert_eq!(h.disruption_budgets["arena"], 18, "20 rooms at 10 %");
    let mut more = h.engine.scheduler("arena").unwrap().clone();
    more.rooms_replicas = 30;
    h.command(Command::NewSchedulerVersion(more)).unwrap();
    h.run_for(Millis::from_secs(5));
    assert_eq!(count(&h, "arena", RoomStatus::Ready), 30);
    assert_eq!(
        h.disruption_budgets["arena"], 18,
        "recomputed on the interval, not on every change"
    );
    h.run_for(Millis::from_secs(60));
    assert_eq!(h.disruption_budgets["arena"], 27, "30 rooms at 10 %");
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

/// Operations open (pending or in progress) for "arena".
fn open_operations(h: &Harness) -> usize {
    h.engine.pending_operations("arena").len()
        + usize::from(h.engine.in_progress_operation("arena").is_some())
}

/// The engine's own operations skip `max_pending_operations`; they are
/// bounded by kind. Drive a scheduler hard: a validation that holds the
/// queue for an hour, a user queue filled to its limit, and rooms going
/// silent one after another, so a timer check finds newly expired rooms
/// again and again (and, the removal waiting, the same rooms every deletion
/// timeout). The queue stays within `max_open_operations` throughout, and
/// the expired rooms wait in one removal.
#[test]
fn the_queue_stays_bounded_while_rooms_expire_behind_a_long_operation() {
    let config = EngineConfig {
        max_pending_operations: 5,
        room_validation_timeout: Millis::from_secs(3600),
        storage_clean_up_interval: Millis::from_secs(60),
        ..EngineConfig::default()
    };
    let bound = config.max_open_operations();
    let mut h = Harness::new(config.clone(), ClusterConfig::default());
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 30))));
    h.run_for(Millis::from_secs(5));
    assert_eq!(count(&h, "arena", RoomStatus::Ready), 30);
    let silent = RoomBehaviour {
        status: PingStatus::Unknown,
        running_matches: 0,
    };

    // A major version whose validation room never pings: the operation runs
    // until its hour is up, and everything else waits behind it.
    let mut v2 = scheduler("arena", 30);
    v2.spec.containers[0].image = "game:2".to_string();
    let version = enqueued(h.command(Command::NewSchedulerVersion(v2)));
    let validation = h
        .engine
        .fleet("arena")
        .unwrap()
        .rooms()
        .find(|r| r.is_validation_room)
        .expect("a validation room")
        .id
        .clone();
    h.set_behaviour("arena", &validation, silent);

    // Users fill the queue until it refuses.
    let mut accepted = 0;
    let refusal = loop {
        match h.command(Command::AddRooms {
            scheduler: "arena".into(),
            amount: 1,
        }) {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted <= config.max_pending_operations, "never refused");
    };
    assert!(matches!(refusal, CommandError::Exhausted(_)), "{refusal:?}");
    assert_eq!(
        h.engine.pending_operations("arena").len(),
        config.max_pending_operations
    );

    // The rooms go silent one every 10 s, and expire one by one.
    let rooms: Vec<String> = h
        .engine
        .fleet("arena")
        .unwrap()
        .rooms()
        .filter(|r| !r.is_validation_room)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(rooms.len(), 30);
    let mut most_open = 0;
    let mut checks_that_found_rooms = 0;
    let mut marked_before = 0;
    for second in 0..3000 {
        if second % 10 == 0
            && let Some(room) = rooms.get(second / 10)
        {
            h.set_behaviour("arena", room, silent);
        }
        h.run_for(Millis::from_secs(1));
        let open = open_operations(&h);
        assert!(open <= bound, "{open} open operations, bound {bound}");
        most_open = most_open.max(open);
        check(&h);
        let marked = h
            .engine
            .fleet("arena")
            .unwrap()
            .rooms()
            .filter(|r| r.deletion.is_some())
            .count();
        if marked > marked_before {
            checks_that_found_rooms += 1;
        }
        marked_before = marked;
        assert_eq!(
            h.engine.in_progress_operation("arena").unwrap().id,
            version,
            "the validation holds the queue"
        );
    }
    assert!(
        checks_that_found_rooms >= 10,
        "rooms expired in {checks_that_found_rooms} separate checks"
    );
    // One removal holds every expired room; the user operations, a
    // health_controller and a storage_clean_up wait with it.
    let removals: Vec<_> = h
        .engine
        .operations("arena")
        .filter(|o| is_expired_removal(&o.definition))
        .collect();
    assert_eq!(
        removals.len(),
        1,
        "expired rooms joined the waiting removal"
    );
    let Definition::RemoveRooms { room_ids, .. } = &removals[0].definition else {
        unreachable!()
    };
    let mut held = room_ids.clone();
    held.sort();
    let mut want = rooms.clone();
    want.sort();
    assert_eq!(held, want, "each expired room once");
    assert_eq!(most_open, config.max_pending_operations + 4);

    // Once the validation is canceled the queue drains: the silent rooms
    // are deleted and replaced.
    h.command(Command::CancelOperation {
        scheduler: "arena".into(),
        operation_id: version,
    })
    .unwrap();
    h.run_for(Millis::from_secs(120));
    check(&h);
    assert_eq!(open_operations(&h), 0);
    assert_eq!(removals_status(&h), vec![OperationStatus::Finished]);
    let fleet = h.engine.fleet("arena").unwrap();
    assert!(rooms.iter().all(|r| !fleet.contains(r)));
    assert!(count(&h, "arena", RoomStatus::Ready) >= 30);
}

fn removals_status(h: &Harness) -> Vec<OperationStatus> {
    h.engine
        .operations("arena")
        .filter(|o| is_expired_removal(&o.definition))
        .map(|o| o.status)
        .collect()
}

/// A store may hold a longer queue than this engine allows (written under
/// a higher `max_pending_operations`, or by a maestro that queued one
/// expired-room removal per check): the restore cancels the newest down to
/// what users may hold plus one, so the engine's own operations fit again.
#[test]
fn a_restored_queue_beyond_the_bound_is_cut_back_newest_first() {
    let mut h = harness();
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 1))));
    h.run_for(Millis::from_secs(5));
    let mut v2 = scheduler("arena", 1);
    v2.spec.containers[0].image = "game:2".to_string();
    let version = enqueued(h.command(Command::NewSchedulerVersion(v2)));
    let queued: Vec<String> = (0..20)
        .map(|_| {
            enqueued(h.command(Command::AddRooms {
                scheduler: "arena".into(),
                amount: 1,
            }))
        })
        .collect();

    let lower = EngineConfig {
        max_pending_operations: 5,
        ..EngineConfig::default()
    };
    let mut engine = maestro_engine::Engine::new(lower.clone());
    for stored in h.store.load().unwrap() {
        engine.restore(h.now(), stored).unwrap();
    }
    engine.check_invariants().unwrap();
    // The resumed version operation runs again; the oldest users' operations
    // wait behind it, the rest are canceled.
    assert_eq!(engine.in_progress_operation("arena").unwrap().id, version);
    let kept: Vec<String> = engine
        .pending_operations("arena")
        .iter()
        .map(|o| o.id.clone())
        .collect();
    assert_eq!(kept, queued[..lower.max_pending_operations]);
    for id in &queued[lower.max_pending_operations..] {
        let op = engine.operation("arena", id).unwrap();
        assert_eq!(op.status, OperationStatus::Canceled, "{id}");
        assert!(
            op.execution_history
                .iter()
                .any(|line| line.event.starts_with("Canceled at restart")),
            "{:?}",
            op.execution_history
        );
    }
    // Full again: a user's command is refused, the engine's own fit.
    assert!(matches!(
        engine.handle_command(
            h.now(),
            Command::AddRooms {
                scheduler: "arena".into(),
                amount: 1
            }
        ),
        Err(CommandError::Exhausted(_))
    ));
    engine.handle_timeout(h.now() + Millis::from_secs(3600));
    engine.check_invariants().unwrap();
}

/// `max_allocation_keys`: past the limit, the key that expires first is
/// forgotten, and asking with it again hands out another room.
#[test]
fn allocation_keys_beyond_the_limit_forget_the_oldest() {
    let config = EngineConfig {
        max_allocation_keys: 2,
        ..EngineConfig::default()
    };
    let mut h = Harness::new(config, ClusterConfig::default());
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 6))));
    h.run_for(Millis::from_secs(5));
    let allocate = |h: &mut Harness, key: &str| {
        let room = h.engine.allocate(h.now(), "arena", Some(key)).unwrap().room;
        h.run_for(Millis::from_secs(1));
        room
    };
    let a = allocate(&mut h, "a");
    let b = allocate(&mut h, "b");
    assert_eq!(allocate(&mut h, "a"), a, "remembered");
    let c = allocate(&mut h, "c");
    assert_eq!(allocate(&mut h, "b"), b, "remembered");
    assert_eq!(allocate(&mut h, "c"), c, "remembered");
    let again = allocate(&mut h, "a");
    assert_ne!(again, a, "forgotten: the third key pushed it out");
    check(&h);
}

/// `expired_rooms_per_check`: one timer check marks at most that many
/// expired rooms; the rest stay due at once, and they join the same
/// removal.
#[test]
fn one_timer_check_marks_at_most_the_configured_expired_rooms() {
    let config = EngineConfig {
        expired_rooms_per_check: 1,
        ..EngineConfig::default()
    };
    let mut h = Harness::new(config, ClusterConfig::default());
    enqueued(h.command(Command::CreateScheduler(scheduler("arena", 3))));
    h.run_for(Millis::from_secs(15));
    let silent = RoomBehaviour {
        status: PingStatus::Unknown,
        running_matches: 0,
    };
    let rooms: Vec<String> = h
        .engine
        .fleet("arena")
        .unwrap()
        .rooms()
        .map(|r| r.id.clone())
        .collect();
    for room in &rooms {
        h.set_behaviour("arena", room, silent);
    }
    let fleet = h.engine.fleet("arena").unwrap();
    let expired_at = rooms
        .iter()
        .map(|r| fleet.get(r).unwrap().last_ping_at)
        .max()
        .unwrap()
        + EngineConfig::default().room_ping_timeout;
    let marked = |h: &Harness| {
        h.engine
            .fleet("arena")
            .unwrap()
            .rooms()
            .filter(|r| r.deletion.is_some())
            .count()
    };
    // Straight to the engine: one check per call.
    for want in 1..=3 {
        assert_eq!(h.engine.poll_timeout().map(|t| t <= expired_at), Some(true));
        h.engine.handle_timeout(expired_at);
        assert_eq!(marked(&h), want);
    }
    // The first check's removal started at once; the later rooms joined
    // the one waiting behind it.
    let running = h.engine.in_progress_operation("arena").unwrap();
    let pending: Vec<_> = h
        .engine
        .pending_operations("arena")
        .into_iter()
        .filter(|o| is_expired_removal(&o.definition))
        .collect();
    let rooms_of = |op: &maestro_engine::Operation| match &op.definition {
        Definition::RemoveRooms {
            room_ids,
            reason: RemovalReason::ExpiredRoom,
            ..
        } => room_ids.len(),
        other => panic!("not an expired-room removal: {other:?}"),
    };
    assert_eq!(rooms_of(running), 1);
    assert_eq!(pending.len(), 1);
    assert_eq!(rooms_of(pending[0]), 2);
    check(&h);
}

/// Found by the `engine_inputs` fuzzer: a scale-down chose a ready room and
/// was persisted, the room's deletion mark (soft state) was lost in a
/// crash, and the room's record came back `occupied`. The restored
/// operation must spare it, not delete a busy room (it used to trip
/// `mark_for_deletion`'s assertion).
#[test]
fn regression_a_restored_scale_down_spares_a_room_that_came_back_busy() {
    let mut h = harness();
    h.command(Command::CreateScheduler(scheduler("arena", 2)))
        .unwrap();
    h.run_for(Millis::from_secs(5));
    let room = first_room(&h);
    h.set_behaviour(
        "arena",
        &room,
        RoomBehaviour {
            status: PingStatus::Occupied,
            running_matches: 1,
        },
    );
    h.run_for(Millis::from_secs(30));
    assert_eq!(count(&h, "arena", RoomStatus::Occupied), 1);
    // What the crash left: a pending scale-down naming the busy room.
    let op = maestro_engine::Operation::new(
        "lost-mark".into(),
        "arena".into(),
        Definition::RemoveRooms {
            amount: 0,
            room_ids: vec![room.clone()],
            reason: RemovalReason::ScaleDown,
        },
        h.now(),
        -1_000,
    );
    h.store
        .apply(h.now(), &[maestro_store::Write::Operation(Box::new(op))])
        .unwrap();
    h.restart();
    h.run_for(Millis::from_secs(30));
    check(&h);
    let done = h.engine.operation("arena", "lost-mark").unwrap();
    assert!(done.status.is_final(), "{:?}", done.status);
    let rooms = h.engine.fleet("arena").unwrap();
    let kept = rooms.get(&room).expect("the busy room is still there");
    assert!(
        kept.deletion.is_none(),
        "the busy room was marked for deletion"
    );
    assert!(
        done.execution_history
            .iter()
            .any(|e| e.event.contains("spared")),
        "{:?}",
        done.execution_history
    );
}

/// Sets where an imported scheduler stands, as `maestro migrate switch` and
/// `unswitch` do (the process is stopped meanwhile, then restarted).
fn set_switched(h: &mut Harness, name: &str, switched: bool) {
    let record = maestro_store::Migration {
        source: "maestro-next".into(),
        imported_at: h.now(),
        switched,
        changed_at: h.now(),
    };
    h.store
        .apply(
            h.now(),
            &[maestro_store::Write::Migration {
                scheduler: name.into(),
                record,
            }],
        )
        .unwrap();
    h.restart();
}

/// A scheduler imported from Maestro Next and not switched over is only
/// watched: for two hours its rooms ping and are allocated, but no pod is
/// created or deleted, no operation runs and every command is refused.
/// Once switched, maestro manages it, and a major rollout replaces the free
/// rooms only, never the busy one.
#[test]
fn a_watch_only_scheduler_changes_nothing_until_it_is_switched() {
    let mut h = harness();
    h.command(Command::CreateScheduler(scheduler("arena", 4)))
        .unwrap();
    h.run_for(Millis::from_secs(30));
    let busy = first_room(&h);
    h.set_behaviour(
        "arena",
        &busy,
        RoomBehaviour {
            status: PingStatus::Occupied,
            running_matches: 1,
        },
    );
    h.run_for(Millis::from_secs(30));
    set_switched(&mut h, "arena", false);
    assert!(h.engine.is_watch_only("arena"));

    let (created, deleted) = (h.stats.pods_created, h.stats.pods_deleted);
    let refused = h.command(Command::AddRooms {
        scheduler: "arena".into(),
        amount: 1,
    });
    assert!(
        matches!(&refused, Err(CommandError::Conflict(why)) if why.contains("migrate switch arena")),
        "{refused:?}"
    );
    let mut v2 = scheduler("arena", 4);
    v2.spec.containers[0].image = "game:2".to_string();
    assert!(matches!(
        h.command(Command::NewSchedulerVersion(v2.clone())),
        Err(CommandError::Conflict(_))
    ));
    h.run_for(Millis::from_secs(60));
    let allocated = h.allocate("arena").expect("a watch-only fleet allocates");
    assert_ne!(allocated, busy);
    h.run_for(Millis::from_secs(2 * 3600));
    check(&h);
    assert_eq!(
        (h.stats.pods_created, h.stats.pods_deleted),
        (created, deleted),
        "a watch-only scheduler touched the cluster"
    );
    assert_eq!(h.pod_count("arena"), 4);
    assert!(h.engine.operations("arena").all(|o| o.status.is_final()));
    assert_eq!(count(&h, "arena", RoomStatus::Occupied), 1);

    set_switched(&mut h, "arena", true);
    assert!(!h.engine.is_watch_only("arena"));
    h.run_for(Millis::from_secs(30));
    enqueued(h.command(Command::NewSchedulerVersion(v2)));
    h.run_for(Millis::from_secs(600));
    check(&h);
    let fleet = h.engine.fleet("arena").unwrap();
    let kept = fleet.get(&busy).expect("the busy room is never replaced");
    assert!(kept.deletion.is_none());
    assert_eq!(kept.version.to_string(), "v1.0.0");
    let others: Vec<String> = fleet
        .rooms()
        .filter(|r| r.id != busy && r.deletion.is_none())
        .map(|r| r.version.to_string())
        .collect();
    assert!(others.len() >= 3, "{others:?}");
    assert!(
        others.iter().all(|v| v == "v2.0.0"),
        "every free room is replaced: {others:?}"
    );
}

/// Reported pings decide as every ping does, across restarts (restored
/// rooms wait for their next ping, which `Cluster::announce` sets) and
/// crashes. (The crash at a server's first tick after a restart, which
/// decides nothing here, is pinned by the cluster's own
/// `after_a_restart_a_crash_at_the_first_tick_still_pings`.)
#[test]
fn reported_pings_decide_as_every_ping_across_restarts_and_crashes() {
    let run = |pings| {
        let cluster = ClusterConfig {
            pings,
            failures: Failures {
                pod_crash_per_hour: 6.0,
                ..Failures::default()
            },
            ..ClusterConfig::default()
        };
        let mut h = Harness::new(EngineConfig::default(), cluster);
        enqueued(h.command(Command::CreateScheduler(scheduler("arena", 20))));
        for round in 0..200u64 {
            for _ in 0..3 {
                let _ = h.allocate_for("arena", Some(Millis::from_secs(60 + round % 5 * 30)));
            }
            h.run_for(Millis::from_secs(37));
            if round % 3 == 2 {
                h.restart();
            }
            check(&h);
        }
        (
            h.trace.decisions(),
            h.trace.hash(),
            h.cluster.stats().pods_crashed,
        )
    };
    let every = run(Pings::Every);
    assert!(every.2 > 20, "crashes happened: {every:?}");
    assert_eq!(run(Pings::Reported), every);
}
