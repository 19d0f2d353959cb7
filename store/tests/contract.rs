//! One contract, every store: each test here runs against the in-memory
//! store, the simulated disk, sled in a temporary directory and PostgreSQL
//! in a schema of its own (on the server named by
//! `MAESTRO_STORE_TEST_POSTGRES_URL`: `scripts/postgres up` starts one).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use maestro_engine::operation::{Definition, HistoryEntry};
use maestro_engine::room::{Room, RoomStatus};
use maestro_engine::scheduler::{Scheduler, SchedulerState, fixtures};
use maestro_engine::{
    Engine, EngineConfig, ForwardEvent, ForwardKind, Operation, OperationStatus, StoredScheduler,
    StoredVersion, Time,
};
use maestro_store::{
    Kv, Lane, MemoryKv, MemoryStore, OutboxRecord, PostgresStore, SimulatedDisk, SledKv, SledStore,
    Store, StoreError, Write,
};

use common::TestDb;

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

/// Opens a sled directory again right after the last handle on it was
/// dropped. sled 0.34's `Db` does not wait for its flusher thread on drop,
/// and that thread holds the directory's lock a moment longer
/// (spacejam/sled#1289): that one error is retried, briefly. (The service
/// opens its database once per process.)
fn reopen<T>(open: impl Fn() -> Result<T, StoreError>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match open() {
            Ok(opened) => return opened,
            Err(StoreError::Open { cause, .. })
                if cause.contains("could not acquire lock") && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("reopening the database: {e}"),
        }
    }
}

/// What `load` hands the engine of one scheduler's operations, by id.
fn loaded_operations(store: &Store<impl Kv>, scheduler: &str) -> BTreeMap<String, Operation> {
    store
        .load()
        .unwrap()
        .into_iter()
        .find(|s| s.versions[0].scheduler.name == scheduler)
        .unwrap_or_else(|| panic!("{scheduler} is not stored"))
        .operations
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect()
}

/// Operations are loaded only with their scheduler: store one first.
fn with_scheduler(store: &Store<impl Kv>, name: &str) {
    store
        .apply(
            Time(1),
            &[Write::SchedulerVersion {
                scheduler: scheduler(name, "v1.0.0"),
                active: true,
            }],
        )
        .unwrap();
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

/// Every write of an operation is what a later `load` returns, whole:
/// its status through the stages, and its queue key, which is all the
/// engine needs to rebuild the queue's order.
fn operations_round_trip_through_load<K: Kv>(store: &Store<K>) {
    let s = "arena";
    with_scheduler(store, s);
    let a = op(s, "a", OperationStatus::Pending, add(1), 10, 0);
    let b = op(s, "b", OperationStatus::Pending, add(2), 11, 1);
    // A priority operation takes a key below every other.
    let mut p = op(s, "p", OperationStatus::Pending, add(3), 12, -1);
    let writes: Vec<Write> = [&a, &b, &p]
        .into_iter()
        .map(|o| Write::Operation(Box::new(o.clone())))
        .collect();
    store.apply(Time(1), &writes).unwrap();
    let loaded = loaded_operations(store, s);
    assert_eq!(loaded.values().collect::<Vec<_>>(), [&a, &b, &p]);
    let mut queue: Vec<&Operation> = loaded.values().collect();
    queue.sort_by_key(|o| o.queue_key);
    let queue: Vec<&str> = queue.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(queue, ["p", "a", "b"], "the queue order, from the keys");

    p.status = OperationStatus::InProgress;
    p.started_at = Some(Time(2));
    store
        .apply(Time(2), &[Write::Operation(Box::new(p.clone()))])
        .unwrap();
    let loaded = loaded_operations(store, s);
    assert_eq!(loaded["p"], p, "the latest write replaces the record");
    assert_eq!((&loaded["a"], &loaded["b"]), (&a, &b));

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
                Write::Operation(Box::new(p.clone())),
                Write::Operation(Box::new(idle.clone())),
            ],
        )
        .unwrap();
    let loaded = loaded_operations(store, s);
    assert_eq!(loaded.len(), 4);
    assert_eq!(loaded["p"], p);
    // A health check that did nothing is stored like any other (the engine
    // leaves it out of the history it lists).
    assert_eq!(loaded["hc"], idle);
    assert_eq!(store.operation(s, "hc").unwrap(), Some(idle));
}

fn deleting_operations_removes_exactly_those<K: Kv>(store: &Store<K>) {
    let s = "arena";
    with_scheduler(store, s);
    let written: Vec<Operation> = (0..7)
        .map(|i| {
            op(
                s,
                &format!("op{i}"),
                OperationStatus::Error,
                add(1),
                100 + i,
                i as i64,
            )
        })
        .collect();
    let writes: Vec<Write> = written
        .iter()
        .map(|o| Write::Operation(Box::new(o.clone())))
        .collect();
    store.apply(Time(1), &writes).unwrap();
    let loaded = loaded_operations(store, s);
    assert_eq!(loaded.into_values().collect::<Vec<_>>(), written);
    store
        .apply(
            Time(2),
            &[Write::DeleteOperations {
                scheduler: s.into(),
                ids: vec!["op6".into(), "missing".into()],
            }],
        )
        .unwrap();
    let loaded = loaded_operations(store, s);
    assert_eq!(loaded.into_values().collect::<Vec<_>>(), written[..6]);
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
            Write::Room(Arc::new(room(name, &format!("{name}-r1")))),
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
    assert!(store.operation("alpha", "x").unwrap().is_none());
    assert!(store.operation("alphabet", "x").unwrap().is_some());
}

fn rooms_round_trip<K: Kv>(store: &Store<K>) {
    let writes = vec![
        Write::SchedulerVersion {
            scheduler: scheduler("arena", "v1.0.0"),
            active: true,
        },
        Write::Room(Arc::new(room("arena", "arena-1"))),
        Write::Room(Arc::new(room("arena", "arena-2"))),
    ];
    store.apply(Time(1), &writes).unwrap();
    let mut updated = room("arena", "arena-1");
    updated.status = RoomStatus::Ready;
    store
        .apply(
            Time(2),
            &[
                Write::Room(Arc::new(updated.clone())),
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

/// The clock mark is the latest time a batch was written at: it only
/// grows, an empty batch or an earlier time leaves it, and a failed batch
/// does not move it.
fn the_clock_mark_only_grows<K: Kv>(store: &Store<K>) {
    assert_eq!(store.clock_mark(), Time(0), "nothing written yet");
    let write = |t: u64, name: &str| {
        store.apply(
            Time(t),
            &[Write::SchedulerVersion {
                scheduler: scheduler("arena", name),
                active: true,
            }],
        )
    };
    write(5_000, "v1.0.0").unwrap();
    assert_eq!(store.clock_mark(), Time(5_000));
    write(3_000, "v1.1.0").unwrap();
    assert_eq!(store.clock_mark(), Time(5_000), "an earlier time leaves it");
    store.apply(Time(9_000), &[]).unwrap();
    assert_eq!(
        store.clock_mark(),
        Time(5_000),
        "an empty batch writes nothing"
    );
    write(8_000, "not-a-version").unwrap_err();
    assert_eq!(store.clock_mark(), Time(5_000), "a failed batch leaves it");
    write(7_000, "v1.2.0").unwrap();
    assert_eq!(store.clock_mark(), Time(7_000));
}

/// An import (`maestro migrate`) lands whole in one batch: every version
/// with its own creation time, the active one, the rooms, and a migration
/// record that keeps the scheduler watch-only until it is switched. A
/// second import of the same name fails and changes nothing; deleting the
/// scheduler drops its migration record too.
fn an_import_lands_whole_and_watch_only<K: Kv>(store: &Store<K>) {
    let version = |v: &str, at: u64, active: bool| StoredVersion {
        scheduler: (*scheduler("arena", v)).clone(),
        created_at: Time(at),
        is_active: active,
    };
    let imported = StoredScheduler {
        versions: vec![
            version("v1.0.0", 1_000, false),
            version("v2.0.0", 2_000, true),
            version("v2.1.0", 3_000, false),
        ],
        operations: Vec::new(),
        rooms: vec![room("arena", "arena-a"), room("arena", "arena-b")],
        watch_only: true,
    };
    store
        .apply(Time(10_000), &[Write::Import(Box::new(imported.clone()))])
        .unwrap();
    store.flush().unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded, vec![imported.clone()]);
    let record = store
        .migration("arena")
        .unwrap()
        .expect("a migration record");
    assert_eq!(record.source, "maestro-next");
    assert_eq!(record.imported_at, Time(10_000));
    assert!(!record.switched);

    let again = store.apply(Time(11_000), &[Write::Import(Box::new(imported.clone()))]);
    assert!(
        matches!(again, Err(StoreError::Exists(ref name)) if name == "arena"),
        "{again:?}"
    );
    assert_eq!(store.load().unwrap(), vec![imported.clone()]);

    let switched = maestro_store::Migration {
        switched: true,
        changed_at: Time(12_000),
        ..record
    };
    store
        .apply(
            Time(12_000),
            &[Write::Migration {
                scheduler: "arena".into(),
                record: switched.clone(),
            }],
        )
        .unwrap();
    let loaded = store.load().unwrap();
    assert!(!loaded[0].watch_only, "switched over");
    assert_eq!(store.migration("arena").unwrap(), Some(switched));

    store
        .apply(
            Time(13_000),
            &[Write::DeleteScheduler {
                name: "arena".into(),
            }],
        )
        .unwrap();
    assert_eq!(store.load().unwrap(), vec![]);
    assert_eq!(store.migration("arena").unwrap(), None);
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
        mod simulated_database {
            $(#[test] fn $test() {
                use maestro_store::{Lease, SimulatedDatabase};
                let db = SimulatedDatabase::new(std::sync::Arc::new(|| maestro_engine::Time(1)));
                let lease = db.lease("worker", "host", std::time::Duration::from_secs(10));
                lease.try_acquire().unwrap();
                let store = super::Store::with_kv(db.connect_fenced(1, "host")).unwrap();
                super::$test(&store);
            })*
        }
        mod sled {
            $(#[test] fn $test() {
                let dir = tempfile::tempdir().unwrap();
                super::$test(&super::SledStore::open(dir.path()).unwrap());
            })*
        }
        mod postgresql {
            $(#[test] fn $test() {
                let db = super::TestDb::new(concat!("contract_", stringify!($test)));
                super::$test(&super::Store::with_kv(db.kv()).unwrap());
            })*
        }
    };
}

contract!(
    versions_and_active,
    operations_round_trip_through_load,
    deleting_operations_removes_exactly_those,
    delete_scheduler_removes_only_its_records,
    rooms_round_trip,
    outbox_lanes_in_order,
    a_failing_batch_writes_nothing,
    the_clock_mark_only_grows,
    an_import_lands_whole_and_watch_only,
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
fn corrupt_records_are_named_in_postgres() {
    let db = TestDb::new("contract_corrupt");
    corrupt_record_is_named(db.kv());
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

/// What was flushed is there for the next process: `open` opens the same
/// database again each time.
fn keeps_everything_across_a_reopen<K: Kv>(open: impl Fn() -> Store<K>) {
    {
        let store = open();
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
    let store = open();
    assert_eq!(store.clock_mark(), Time(1), "the clock mark is kept");
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

#[test]
fn sled_keeps_everything_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    keeps_everything_across_a_reopen(|| reopen(|| SledStore::open(dir.path())));
}

#[test]
fn postgres_keeps_everything_across_a_reconnect() {
    let db = TestDb::new("contract_reconnect");
    keeps_everything_across_a_reopen(|| PostgresStore::connect(&db.url).unwrap());
}

/// Every key the disk holds, with its value, but for the clock mark (one
/// store-wide record every batch may move).
fn raw(disk: &SimulatedDisk) -> BTreeMap<Vec<u8>, Vec<u8>> {
    disk.scan_prefix(b"", usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|(key, _)| key.as_slice() != b"T")
        .collect()
}

/// Saving an operation writes its one record, in every status; deleting it
/// removes that record and leaves nothing behind.
#[test]
fn an_operation_is_one_record() {
    let disk = SimulatedDisk::new();
    let store = Store::with_kv(disk.clone()).unwrap();
    with_scheduler(&store, "arena");
    let before = raw(&disk);
    let okey = b"O\x00arena\x00a".to_vec();
    let mut a = op("arena", "a", OperationStatus::Pending, add(1), 1, 0);
    for status in [
        OperationStatus::Pending,
        OperationStatus::InProgress,
        OperationStatus::Finished,
    ] {
        a.status = status;
        store
            .apply(Time(2), &[Write::Operation(Box::new(a.clone()))])
            .unwrap();
        let after = raw(&disk);
        let added: Vec<&Vec<u8>> = after.keys().filter(|k| !before.contains_key(*k)).collect();
        assert_eq!(added, [&okey], "{status:?}: one record, nothing else");
        assert_eq!(after.len(), before.len() + 1);
    }
    store
        .apply(
            Time(3),
            &[Write::DeleteOperations {
                scheduler: "arena".into(),
                ids: vec!["a".into()],
            }],
        )
        .unwrap();
    assert_eq!(raw(&disk), before);
}

/// A database as a build that kept operation indexes left it: the records
/// of today plus one index record per operation (`Q` pending by queue key,
/// `A` in progress, `H` final by creation time, `N` final and idle), some of
/// a scheduler deleted since. Returns the records of today, by key, and the
/// operations stored.
fn legacy_database(kv: &impl Kv) -> (BTreeMap<Vec<u8>, Vec<u8>>, Vec<Operation>) {
    let source = SimulatedDisk::new();
    let old = Store::with_kv(source.clone()).unwrap();
    with_scheduler(&old, "arena");
    let operations = vec![
        op("arena", "d", OperationStatus::Finished, add(3), 3, 1),
        op("arena", "p", OperationStatus::Pending, add(1), 1, -1),
        op("arena", "r", OperationStatus::InProgress, add(2), 2, 0),
    ];
    let writes: Vec<Write> = operations
        .iter()
        .map(|o| Write::Operation(Box::new(o.clone())))
        .collect();
    old.apply(Time(1), &writes).unwrap();
    let current = raw(&source);
    // Keyed as the old build did: queue keys as order-preserving big-endian
    // (the sign bit flipped), creation times in milliseconds.
    let queue_key = ((-1i64 as u64) ^ (1 << 63)).to_be_bytes();
    let legacy: [(Vec<u8>, &[u8]); 4] = [
        (
            [b"Q\x00arena\x00".as_slice(), &queue_key, b"\x00p"].concat(),
            b"p",
        ),
        (b"A\x00arena\x00r".to_vec(), b"r"),
        (
            [b"H\x00arena\x00".as_slice(), &3u64.to_be_bytes(), b"\x00d"].concat(),
            b"d",
        ),
        (
            [b"N\x00gone\x00".as_slice(), &9u64.to_be_bytes(), b"\x00hc"].concat(),
            b"hc",
        ),
    ];
    let entries = current
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .chain(legacy.into_iter().map(|(k, v)| (k, Some(v.to_vec()))))
        .collect();
    kv.apply(entries).unwrap();
    assert_eq!(
        kv.scan_prefix(b"", usize::MAX).unwrap().len(),
        current.len() + 4,
        "the legacy records are in place"
    );
    (current, operations)
}

/// Opening a store on an old database deletes its index records; every
/// other record is kept and loads as before.
#[test]
fn legacy_index_records_are_purged_at_open_in_memory() {
    let disk = SimulatedDisk::new();
    let (current, operations) = legacy_database(&disk);
    let store = Store::with_kv(disk.clone()).unwrap();
    assert_eq!(raw(&disk), current);
    let loaded = loaded_operations(&store, "arena");
    assert_eq!(loaded.into_values().collect::<Vec<_>>(), operations);
}

/// The purge reaches the database: `open` opens the same one each time.
fn legacy_index_records_are_purged_for_good<K: Kv>(open: impl Fn() -> K) {
    let operations = {
        let kv = open();
        let (_, operations) = legacy_database(&kv);
        kv.flush().unwrap();
        operations
    };
    let loaded = {
        let store = Store::with_kv(open()).unwrap();
        let loaded = loaded_operations(&store, "arena");
        assert_eq!(loaded.into_values().collect::<Vec<_>>(), operations);
        store.flush().unwrap();
        store.load().unwrap()
    };
    // The deletion reached the disk: a raw reopen finds only today's kinds.
    let kv = open();
    let kinds: std::collections::BTreeSet<char> = kv
        .scan_prefix(b"", usize::MAX)
        .unwrap()
        .iter()
        .map(|(k, _)| char::from(k[0]))
        .collect();
    assert_eq!(kinds, ['O', 'S', 'V'].into());
    assert_eq!(Store::with_kv(kv).unwrap().load().unwrap(), loaded);
}

#[test]
fn legacy_index_records_are_purged_at_open_in_sled() {
    let dir = tempfile::tempdir().unwrap();
    legacy_index_records_are_purged_for_good(|| reopen(|| SledKv::open(dir.path())));
}

#[test]
fn legacy_index_records_are_purged_at_open_in_postgres() {
    let db = TestDb::new("contract_legacy");
    legacy_index_records_are_purged_for_good(|| db.kv());
}

/// The pending queue survives a restart in its order: a reopened database
/// restores an engine whose queue is the order it was written in, although
/// the records come back in id order, which is not the queue's.
fn a_reopened_database_restores_the_pending_order<K: Kv>(open: impl Fn() -> Store<K>) {
    // In queue order: c (a priority operation), b, d, a.
    let queue = [("c", -1), ("b", 0), ("d", 1), ("a", 2)];
    {
        let store = open();
        with_scheduler(&store, "arena");
        let writes: Vec<Write> = queue
            .iter()
            .map(|(id, key)| {
                Write::Operation(Box::new(op(
                    "arena",
                    id,
                    OperationStatus::Pending,
                    add(1),
                    1,
                    *key,
                )))
            })
            .collect();
        store.apply(Time(1), &writes).unwrap();
        store.flush().unwrap();
    }
    let store = open();
    let mut loaded = store.load().unwrap();
    let ids: Vec<&str> = loaded[0].operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"], "records come back by id");

    let mut engine = Engine::new(EngineConfig::default());
    engine.restore(Time(10), loaded.remove(0)).unwrap();
    // The head may have started at once; the engine may have queued work of
    // its own (the fixture's fleet is short of rooms): keep only ours.
    let ours = |id: &str| queue.iter().any(|(q, _)| *q == id);
    let order: Vec<String> = engine
        .in_progress_operation("arena")
        .into_iter()
        .chain(engine.pending_operations("arena"))
        .map(|o| o.id.clone())
        .filter(|id| ours(id))
        .collect();
    assert_eq!(order, ["c", "b", "d", "a"]);
}

#[test]
fn a_reopened_sled_database_restores_the_pending_order() {
    let dir = tempfile::tempdir().unwrap();
    a_reopened_database_restores_the_pending_order(|| reopen(|| SledStore::open(dir.path())));
}

#[test]
fn a_reconnected_postgres_database_restores_the_pending_order() {
    let db = TestDb::new("contract_pending_order");
    a_reopened_database_restores_the_pending_order(|| PostgresStore::connect(&db.url).unwrap());
}
