//! One contract, two stores: every test here runs against the in-memory
//! store and against sled in a temporary directory.

use std::sync::Arc;

use maestro_engine::operation::{Definition, HistoryEntry};
use maestro_engine::room::{Room, RoomStatus};
use maestro_engine::scheduler::{Scheduler, SchedulerState, fixtures};
use maestro_engine::{ForwardEvent, ForwardKind, Operation, OperationStatus, Time};
use maestro_store::{
    Kv, Lane, MemoryKv, MemoryStore, OutboxRecord, Page, SimulatedDisk, SledKv, SledStore, Stage,
    Store, StoreError, Write,
};

fn scheduler(name: &str, version: &str) -> Arc<Scheduler> {
    // The engine's valid fixture, with a few non-default values to round-trip.
    let mut s = fixtures::scheduler(name);
    s.spec.version = version.to_string();
    s.state = SchedulerState::InSync;
    s.spec.restart_policy = "Always".to_string();
    s.rooms_replicas = 3;
    s.labels.insert("team".to_string(), "a".to_string());
    s.match_allocation.max_matches = 2;
    s.created_at = Time(5);
    s.last_downscale_at = Some(Time(9));
    Arc::new(s)
}

fn op(
    scheduler: &str,
    id: &str,
    status: OperationStatus,
    definition: Definition,
    created: u64,
    queue_key: i64,
) -> Operation {
    Operation {
        id: id.to_string(),
        scheduler: scheduler.to_string(),
        definition,
        status,
        created_at: Time(created),
        started_at: None,
        finished_at: status.is_final().then_some(Time(created + 1)),
        execution_history: vec![HistoryEntry {
            at: Time(created),
            event: "Created".to_string(),
        }],
        lease: None,
        queue_key,
    }
}

fn add(amount: u64) -> Definition {
    Definition::AddRooms { amount }
}

fn room(scheduler: &str, id: &str) -> Room {
    let mut room = fixtures::room(scheduler, id, RoomStatus::Occupied);
    room.metadata_json = "{\"k\":1}".to_string();
    room
}

const ALL: Page = Page {
    page: 1,
    per_page: 100,
};

fn ids(store: &Store<impl Kv>, scheduler: &str, stage: Stage, page: Page) -> Vec<String> {
    store
        .list_operations(scheduler, stage, page)
        .unwrap()
        .operations
        .into_iter()
        .map(|o| o.id)
        .collect()
}

fn versions_and_active<K: Kv>(store: &Store<K>) {
    store
        .apply(
            Time(100),
            &[Write::SchedulerVersion {
                scheduler: scheduler("arena", "v1.0.0"),
                active: true,
            }],
        )
        .unwrap();
    store
        .apply(
            Time(200),
            &[Write::SchedulerVersion {
                scheduler: scheduler("arena", "v2.0.0"),
                active: false,
            }],
        )
        .unwrap();
    // Rewriting a version keeps its creation time.
    store
        .apply(
            Time(300),
            &[Write::SchedulerVersion {
                scheduler: scheduler("arena", "v1.0.0"),
                active: true,
            }],
        )
        .unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.len(), 1);
    let versions: Vec<(String, u64, bool)> = loaded[0]
        .versions
        .iter()
        .map(|v| {
            (
                v.scheduler.spec.version.clone(),
                v.created_at.as_millis(),
                v.is_active,
            )
        })
        .collect();
    assert_eq!(
        versions,
        vec![("v1.0.0".into(), 100, true), ("v2.0.0".into(), 200, false)]
    );
    assert_eq!(
        loaded[0].versions[0].scheduler,
        *scheduler("arena", "v1.0.0"),
        "every field round-trips"
    );
    store
        .apply(
            Time(400),
            &[Write::SchedulerVersion {
                scheduler: scheduler("arena", "v2.0.0"),
                active: true,
            }],
        )
        .unwrap();
    let loaded = store.load().unwrap();
    assert!(loaded[0].versions[1].is_active && !loaded[0].versions[0].is_active);
}

fn queue_order_and_indexes<K: Kv>(store: &Store<K>) {
    let s = "arena";
    let writes = vec![
        Write::Operation(Box::new(op(
            s,
            "a",
            OperationStatus::Pending,
            add(1),
            10,
            0,
        ))),
        Write::Operation(Box::new(op(
            s,
            "b",
            OperationStatus::Pending,
            add(2),
            11,
            1,
        ))),
        // A priority operation takes a key below every other.
        Write::Operation(Box::new(op(
            s,
            "p",
            OperationStatus::Pending,
            add(3),
            12,
            -1,
        ))),
    ];
    store.apply(Time(1), &writes).unwrap();
    assert_eq!(ids(store, s, Stage::Pending, ALL), ["p", "a", "b"]);

    let mut p = op(s, "p", OperationStatus::InProgress, add(3), 12, -1);
    store
        .apply(Time(2), &[Write::Operation(Box::new(p.clone()))])
        .unwrap();
    assert_eq!(ids(store, s, Stage::Pending, ALL), ["a", "b"]);
    assert_eq!(ids(store, s, Stage::Active, ALL), ["p"]);

    p.status = OperationStatus::Finished;
    p.finished_at = Some(Time(3));
    let idle = op(
        s,
        "hc",
        OperationStatus::Finished,
        Definition::HealthController {
            took_action: Some(false),
        },
        13,
        2,
    );
    store
        .apply(
            Time(3),
            &[
                Write::Operation(Box::new(p)),
                Write::Operation(Box::new(idle)),
            ],
        )
        .unwrap();
    assert!(ids(store, s, Stage::Active, ALL).is_empty());
    // A health check that did nothing stays out of the history (upstream's no-action list).
    assert_eq!(ids(store, s, Stage::Final, ALL), ["p"]);
    assert_eq!(
        store.operation(s, "hc").unwrap().unwrap().status,
        OperationStatus::Finished
    );
}

fn final_listing_is_newest_first_and_paginated<K: Kv>(store: &Store<K>) {
    let s = "arena";
    let writes: Vec<Write> = (0..7)
        .map(|i| {
            Write::Operation(Box::new(op(
                s,
                &format!("op{i}"),
                OperationStatus::Error,
                add(1),
                100 + i,
                i as i64,
            )))
        })
        .collect();
    store.apply(Time(1), &writes).unwrap();
    assert_eq!(
        ids(
            store,
            s,
            Stage::Final,
            Page {
                page: 1,
                per_page: 3
            }
        ),
        ["op6", "op5", "op4"]
    );
    assert_eq!(
        ids(
            store,
            s,
            Stage::Final,
            Page {
                page: 3,
                per_page: 3
            }
        ),
        ["op0"]
    );
    assert!(
        ids(
            store,
            s,
            Stage::Final,
            Page {
                page: 4,
                per_page: 3
            }
        )
        .is_empty()
    );
    assert_eq!(
        store
            .list_operations(
                s,
                Stage::Final,
                Page {
                    page: 2,
                    per_page: 3
                }
            )
            .unwrap()
            .total,
        7
    );
    store
        .apply(
            Time(2),
            &[Write::DeleteOperations {
                scheduler: s.into(),
                ids: vec!["op6".into(), "missing".into()],
            }],
        )
        .unwrap();
    assert_eq!(
        store.list_operations(s, Stage::Final, ALL).unwrap().total,
        6
    );
    assert!(store.operation(s, "op6").unwrap().is_none());
}

fn delete_scheduler_removes_only_its_records<K: Kv>(store: &Store<K>) {
    for name in ["alpha", "alphabet"] {
        let writes = vec![
            Write::SchedulerVersion {
                scheduler: scheduler(name, "v1.0.0"),
                active: true,
            },
            Write::Operation(Box::new(op(
                name,
                "x",
                OperationStatus::Pending,
                add(1),
                1,
                0,
            ))),
            Write::Room(Box::new(room(name, &format!("{name}-r1")))),
        ];
        store.apply(Time(1), &writes).unwrap();
    }
    store
        .apply(
            Time(2),
            &[Write::DeleteScheduler {
                name: "alpha".into(),
            }],
        )
        .unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].versions[0].scheduler.name, "alphabet");
    assert_eq!(loaded[0].operations.len(), 1);
    assert_eq!(loaded[0].rooms.len(), 1);
    assert!(ids(store, "alpha", Stage::Pending, ALL).is_empty());
}

fn rooms_round_trip<K: Kv>(store: &Store<K>) {
    let writes = vec![
        Write::SchedulerVersion {
            scheduler: scheduler("arena", "v1.0.0"),
            active: true,
        },
        Write::Room(Box::new(room("arena", "arena-1"))),
        Write::Room(Box::new(room("arena", "arena-2"))),
    ];
    store.apply(Time(1), &writes).unwrap();
    let mut updated = room("arena", "arena-1");
    updated.status = RoomStatus::Ready;
    store
        .apply(
            Time(2),
            &[
                Write::Room(Box::new(updated.clone())),
                Write::ForgetRoom {
                    scheduler: "arena".into(),
                    room: "arena-2".into(),
                },
            ],
        )
        .unwrap();
    assert_eq!(store.load().unwrap()[0].rooms, vec![updated]);
}

fn outbox_record(scheduler: &str, forwarder: &str, room: &str) -> Box<OutboxRecord> {
    Box::new(OutboxRecord {
        event: ForwardEvent {
            scheduler: scheduler.into(),
            game: "game".into(),
            room: room.into(),
            kind: ForwardKind::Terminated,
            metadata_json: "{}".into(),
            address: None,
        },
        forwarder: maestro_engine::scheduler::Forwarder {
            name: forwarder.into(),
            enabled: true,
            forward_type: "gRPC".into(),
            address: "matchmaker:9000".into(),
            options: None,
        },
        enqueued_at: Time(1),
    })
}

fn lane(scheduler: &str, forwarder: &str) -> Lane {
    Lane {
        scheduler: scheduler.into(),
        forwarder: forwarder.into(),
    }
}

fn outbox_lanes_in_order<K: Kv>(store: &Store<K>) {
    store
        .apply(
            Time(1),
            &[
                Write::OutboxPush(outbox_record("arena", "mm", "r1")),
                Write::OutboxPush(outbox_record("arena", "mm-2", "r1")),
                Write::OutboxPush(outbox_record("arena", "mm", "r2")),
                // A name that sorts right after the lane "arena/mm".
                Write::OutboxPush(outbox_record("arena", "mm\u{1}", "r9")),
            ],
        )
        .unwrap();
    store
        .apply(
            Time(2),
            &[Write::OutboxPush(outbox_record("arena", "mm", "r3"))],
        )
        .unwrap();
    assert_eq!(
        store.outbox_lanes().unwrap(),
        vec![
            lane("arena", "mm"),
            lane("arena", "mm\u{1}"),
            lane("arena", "mm-2")
        ]
    );
    let mm = lane("arena", "mm");
    let pending = store.outbox_page(&mm, 0, 10).unwrap();
    let rooms: Vec<&str> = pending.iter().map(|(_, r)| r.event.room.as_str()).collect();
    assert_eq!(rooms, ["r1", "r2", "r3"]);
    assert!(pending.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(store.outbox_len(&mm).unwrap(), 3);
    let after_first = store.outbox_page(&mm, pending[0].0, 1).unwrap();
    assert_eq!(
        after_first[0].1.event.room, "r2",
        "pages continue after a sequence number"
    );
    store
        .apply(
            Time(3),
            &[Write::OutboxAck {
                lane: mm.clone(),
                seq: pending[0].0,
            }],
        )
        .unwrap();
    assert_eq!(store.outbox_page(&mm, 0, 1).unwrap()[0].1.event.room, "r2");
    assert_eq!(store.outbox_len(&mm).unwrap(), 2);
    assert_eq!(store.outbox_len(&lane("arena", "m")).unwrap(), 0);
    // Deleting the scheduler keeps its lanes: forwarders still learn that
    // its rooms are gone.
    store
        .apply(
            Time(4),
            &[Write::DeleteScheduler {
                name: "arena".into(),
            }],
        )
        .unwrap();
    assert_eq!(store.outbox_len(&mm).unwrap(), 2);
}

fn a_failing_batch_writes_nothing<K: Kv>(store: &Store<K>) {
    let writes = vec![
        Write::Operation(Box::new(op(
            "arena",
            "a",
            OperationStatus::Pending,
            add(1),
            1,
            0,
        ))),
        Write::SchedulerVersion {
            scheduler: scheduler("arena", "not-a-version"),
            active: true,
        },
    ];
    let err = store.apply(Time(1), &writes).unwrap_err();
    assert!(err.to_string().contains("not-a-version"), "{err}");
    assert!(store.operation("arena", "a").unwrap().is_none());
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $test() { super::$test(&super::MemoryStore::in_memory()); })*
        }
        mod simulated_disk {
            $(#[test] fn $test() {
                let store = super::Store::with_kv(maestro_store::SimulatedDisk::new()).unwrap();
                super::$test(&store);
            })*
        }
        mod sled {
            $(#[test] fn $test() {
                let dir = tempfile::tempdir().unwrap();
                super::$test(&super::SledStore::open(dir.path()).unwrap());
            })*
        }
    };
}

contract!(
    versions_and_active,
    queue_order_and_indexes,
    final_listing_is_newest_first_and_paginated,
    delete_scheduler_removes_only_its_records,
    rooms_round_trip,
    outbox_lanes_in_order,
    a_failing_batch_writes_nothing,
);

/// A record that does not decode is an error naming its tree and key,
/// whether it is read alone or loaded with its scheduler at start-up.
fn corrupt_record_is_named(kv: impl Kv) {
    // A valid scheduler, written through a store and copied as raw entries,
    // so that loading gets past it to the broken operation.
    let source = SimulatedDisk::new();
    let writes = [Write::SchedulerVersion {
        scheduler: scheduler("arena", "v1.0.0"),
        active: true,
    }];
    Store::with_kv(source.clone())
        .unwrap()
        .apply(Time(1), &writes)
        .unwrap();
    let mut entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = source
        .scan_prefix(b"", usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, Some(v)))
        .collect();
    entries.push((
        b"O\x00arena\x00broken".to_vec(),
        Some(b"\x01{truncated".to_vec()),
    ));
    kv.apply(entries).unwrap();
    let store = Store::with_kv(kv).unwrap();
    let is_the_broken_operation = |err: &StoreError| {
        matches!(
            err,
            StoreError::Corrupt {
                tree: "operations",
                key,
                ..
            } if key == "O/arena/broken"
        )
    };
    let err = store.operation("arena", "broken").unwrap_err();
    assert!(is_the_broken_operation(&err), "{err}");
    assert!(err.to_string().contains("O/arena/broken"), "{err}");
    let err = store.load().unwrap_err();
    assert!(is_the_broken_operation(&err), "{err}");
}

#[test]
fn corrupt_records_are_named_in_memory() {
    corrupt_record_is_named(MemoryKv::default());
}

#[test]
fn corrupt_records_are_named_in_sled() {
    let dir = tempfile::tempdir().unwrap();
    corrupt_record_is_named(SledKv::open(dir.path()).unwrap());
}

#[test]
fn an_unopenable_database_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let Err(err) = SledStore::open(&file) else {
        panic!("opened a file as a database")
    };
    let text = err.to_string();
    assert!(matches!(err, StoreError::Open { .. }));
    assert!(text.contains("not-a-dir"), "{text}");
}

#[test]
fn sled_keeps_everything_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        let writes = vec![
            Write::SchedulerVersion {
                scheduler: scheduler("arena", "v1.0.0"),
                active: true,
            },
            Write::Operation(Box::new(op(
                "arena",
                "a",
                OperationStatus::Pending,
                add(1),
                1,
                0,
            ))),
            Write::OutboxPush(outbox_record("arena", "mm", "r")),
            Write::OutboxPush(outbox_record("arena", "a-forwarder-sorting-first", "r")),
        ];
        store.apply(Time(1), &writes).unwrap();
        store.flush().unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded[0].operations.len(), 1);
    let mm = lane("arena", "mm");
    let first_seq = store.outbox_page(&mm, 0, 1).unwrap()[0].0;
    let other_seq = store
        .outbox_page(&lane("arena", "a-forwarder-sorting-first"), 0, 1)
        .unwrap()[0]
        .0;
    assert_eq!(other_seq, first_seq + 1);
    store
        .apply(
            Time(2),
            &[Write::OutboxPush(outbox_record("arena", "mm", "r2"))],
        )
        .unwrap();
    let seqs: Vec<u64> = store
        .outbox_page(&mm, 0, 10)
        .unwrap()
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(
        seqs,
        vec![first_seq, first_seq + 2],
        "sequence numbers continue after a reopen, above every lane's"
    );
}
