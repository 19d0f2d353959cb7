//! What only PostgreSQL has to show: a flush is one transaction, reads see
//! the overlay of applied but unflushed batches, the schema migrates once,
//! the client works from inside a tokio runtime, and the leader lease
//! fences a deposed leader's flushes. Each test runs in a
//! schema of its own on the server named by `MAESTRO_STORE_TEST_POSTGRES_URL`
//! (`eval "$(./scripts/postgres up | tail -1)"` starts one).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::TestDb;
use maestro_store::{Kv, LeaseState, MemoryKv, PostgresKv, PostgresLease, StoreError};

type Batch = Vec<(Vec<u8>, Option<Vec<u8>>)>;

fn put(k: &str, v: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))
}

fn del(k: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    (k.as_bytes().to_vec(), None)
}

/// Every entry, as text.
fn all(kv: &impl Kv) -> BTreeMap<String, String> {
    kv.scan_prefix(b"", usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
        .collect()
}

fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn reads_see_applied_batches_before_the_flush() {
    let db = TestDb::new("pgkv_overlay");
    let kv = db.kv();
    let keys: Batch = (0..8).map(|i| put(&format!("k{i}"), "old")).collect();
    kv.apply(keys).unwrap();
    kv.flush().unwrap();

    // Hide the first rows, replace one, add some before, among and after.
    kv.apply(vec![
        del("k0"),
        del("k1"),
        del("k2"),
        put("k3", "new"),
        put("j", "new"),
        put("k25", "new"),
        put("l", "new"),
    ])
    .unwrap();
    kv.apply(vec![del("k7")]).unwrap();
    let expected = map(&[
        ("j", "new"),
        ("k25", "new"),
        ("k3", "new"),
        ("k4", "old"),
        ("k5", "old"),
        ("k6", "old"),
        ("l", "new"),
    ]);
    assert_eq!(all(&kv), expected);
    assert_eq!(kv.get(b"k3").unwrap(), Some(b"new".to_vec()));
    assert_eq!(kv.get(b"k0").unwrap(), None);
    assert_eq!(kv.get(b"k4").unwrap(), Some(b"old".to_vec()));
    // Deleted rows do not eat into a limit.
    let first: Vec<Vec<u8>> = kv
        .scan_prefix(b"k", 2)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(first, [b"k25".to_vec(), b"k3".to_vec()]);
    let from: Vec<Vec<u8>> = kv
        .scan_from(b"k", b"k31", 2)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(from, [b"k4".to_vec(), b"k5".to_vec()]);
    assert_eq!(kv.last_key(b"k").unwrap(), Some(b"k6".to_vec()));
    assert_eq!(kv.last_key(b"l").unwrap(), Some(b"l".to_vec()));

    // Another connection sees only what was flushed, until the flush.
    let other = db.kv();
    let flushed: BTreeMap<String, String> =
        (0..8).map(|i| (format!("k{i}"), "old".into())).collect();
    assert_eq!(all(&other), flushed);
    kv.flush().unwrap();
    assert_eq!(all(&other), expected);
    assert_eq!(all(&kv), expected);
}

/// The rows of the test's table, read directly.
fn table(db: &TestDb) -> BTreeMap<String, String> {
    db.admin()
        .query("SELECT key, value FROM maestro_kv ORDER BY key", &[])
        .unwrap()
        .iter()
        .map(|row| {
            let k: Vec<u8> = row.get(0);
            let v: Vec<u8> = row.get(1);
            (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap())
        })
        .collect()
}

#[test]
fn a_flush_that_fails_half_way_commits_nothing() {
    let db = TestDb::new("pgkv_flush_fails");
    let kv = db.kv();
    kv.apply(vec![put("a", "1"), put("b", "1")]).unwrap();
    kv.flush().unwrap();
    // The flush deletes first, then inserts: a value the table refuses
    // fails the insert after the delete ran.
    db.admin()
        .batch_execute("ALTER TABLE maestro_kv ADD CONSTRAINT no_poison CHECK (value <> 'poison')")
        .unwrap();
    kv.apply(vec![
        del("a"),
        put("b", "2"),
        put("c", "poison"),
        put("d", "2"),
    ])
    .unwrap();
    let err = kv.flush().unwrap_err();
    assert!(
        matches!(&err, StoreError::Postgres { operation: "flush", cause } if cause.contains("no_poison")),
        "{err}"
    );
    assert_eq!(
        table(&db),
        map(&[("a", "1"), ("b", "1")]),
        "the delete was rolled back too"
    );
    // The failed batch stays visible to this store's reads.
    assert_eq!(all(&kv), map(&[("b", "2"), ("c", "poison"), ("d", "2")]));
    // Fixed, the next flush writes it (the failure is fatal to the driver;
    // the store itself loses nothing).
    db.admin()
        .batch_execute("ALTER TABLE maestro_kv DROP CONSTRAINT no_poison")
        .unwrap();
    kv.flush().unwrap();
    assert_eq!(table(&db), map(&[("b", "2"), ("c", "poison"), ("d", "2")]));
}

/// The one backend of the test's store that is busy in `pg_sleep` (a
/// flush), or else the one that is not, waiting up to 10 s for it to be
/// the only one (connections just closed may linger a moment).
fn backend(db: &TestDb, admin: &mut postgres::Client, sleeping: bool) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = admin
            .query(
                "SELECT pid FROM pg_stat_activity \
                 WHERE application_name = $1 AND pid <> pg_backend_pid() \
                 AND ($2 = (wait_event IS NOT DISTINCT FROM 'PgSleep'))",
                &[&db.schema, &sleeping],
            )
            .unwrap();
        if let [row] = rows.as_slice() {
            return row.get(0);
        }
        assert!(
            Instant::now() < deadline,
            "no single backend found: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn terminate(admin: &mut postgres::Client, pid: i32) {
    let done: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap()
        .get(0);
    assert!(done);
}

#[test]
fn a_connection_killed_mid_flush_commits_nothing() {
    let db = TestDb::new("pgkv_flush_killed");
    let kv = db.kv();
    kv.apply(vec![put("a", "1"), put("b", "1")]).unwrap();
    kv.flush().unwrap();
    let mut admin = db.admin();
    // Inserting the value "stall" sleeps: the flush hangs after its delete,
    // in the middle of its insert.
    admin
        .batch_execute(
            "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.value = 'stall' THEN PERFORM pg_sleep(30); END IF; RETURN NEW; \
             END $$; \
             CREATE TRIGGER stall BEFORE INSERT ON maestro_kv \
               FOR EACH ROW EXECUTE FUNCTION stall()",
        )
        .unwrap();
    kv.apply(vec![
        del("a"),
        put("b", "2"),
        put("c", "stall"),
        put("d", "2"),
    ])
    .unwrap();
    let started = Instant::now();
    let flushed = std::thread::scope(|scope| {
        let flush = scope.spawn(|| kv.flush());
        let pid = backend(&db, &mut admin, true);
        // Reads do not wait for the flush: they see its batch meanwhile.
        let reading = Instant::now();
        assert_eq!(all(&kv), map(&[("b", "2"), ("c", "stall"), ("d", "2")]));
        assert!(reading.elapsed() < Duration::from_secs(5), "a read waited");
        terminate(&mut admin, pid);
        flush.join().unwrap()
    });
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the flush was not cut short"
    );
    let err = flushed.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Postgres {
                operation: "flush",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        table(&db),
        map(&[("a", "1"), ("b", "1")]),
        "nothing of the batch"
    );
    assert_eq!(all(&db.kv()), map(&[("a", "1"), ("b", "1")]));

    // The flushing connection does not reconnect: writes stay failed.
    let err = kv.flush().unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Postgres {
                operation: "flush",
                ..
            }
        ),
        "{err}"
    );
    // Reads still see the batch that failed, and a read whose connection
    // was killed reconnects.
    let overlaid = map(&[("b", "2"), ("c", "stall"), ("d", "2")]);
    assert_eq!(all(&kv), overlaid);
    let pid = backend(&db, &mut admin, false);
    terminate(&mut admin, pid);
    assert_eq!(all(&kv), overlaid);
    assert_eq!(table(&db), map(&[("a", "1"), ("b", "1")]));
}

/// Deterministic pseudo-random numbers (xorshift64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    /// A short key over bytes that test the bounds: 0x00, 0x01, 0xFE, 0xFF.
    fn key(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| [0x00, 0x01, 0xFE, 0xFF][self.below(4)])
            .collect()
    }
}

/// Random batches, flushes and reads: PostgreSQL answers every read as the
/// in-memory store does, whatever is flushed or still in the overlay, and
/// a second connection sees exactly the flushed state.
#[test]
fn reads_agree_with_the_in_memory_store() {
    let db = TestDb::new("pgkv_model");
    let kv = db.kv();
    let model = MemoryKv::default();
    let durable = MemoryKv::default();
    let mut unflushed: Batch = Vec::new();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for step in 0..150 {
        let batch: Batch = (0..1 + rng.below(6))
            .map(|_| {
                let key = rng.key(3);
                let value =
                    (rng.below(3) > 0).then(|| vec![rng.below(256) as u8; 1 + rng.below(3)]);
                (key, value)
            })
            .collect();
        kv.apply(batch.clone()).unwrap();
        model.apply(batch.clone()).unwrap();
        unflushed.extend(batch);
        if rng.below(3) == 0 {
            kv.flush().unwrap();
            durable.apply(std::mem::take(&mut unflushed)).unwrap();
        }
        for _ in 0..4 {
            let prefix = rng.key(2);
            let start = rng.key(3);
            let limit = [0, 1, 2, 3, usize::MAX][rng.below(5)];
            let context =
                format!("step {step}, prefix {prefix:x?}, start {start:x?}, limit {limit}");
            assert_eq!(
                kv.scan_prefix(&prefix, limit).unwrap(),
                model.scan_prefix(&prefix, limit).unwrap(),
                "scan_prefix, {context}"
            );
            assert_eq!(
                kv.scan_from(&prefix, &start, limit).unwrap(),
                model.scan_from(&prefix, &start, limit).unwrap(),
                "scan_from, {context}"
            );
            assert_eq!(
                kv.last_key(&prefix).unwrap(),
                model.last_key(&prefix).unwrap(),
                "last_key, {context}"
            );
            assert_eq!(
                kv.get(&start).unwrap(),
                model.get(&start).unwrap(),
                "get, {context}"
            );
        }
        if step % 50 == 49 {
            let everything = |kv: &dyn Kv| kv.scan_prefix(b"", usize::MAX).unwrap();
            assert_eq!(
                everything(&db.kv()),
                everything(&durable),
                "flushed, step {step}"
            );
        }
    }
}

#[test]
fn processes_connecting_at_once_migrate_once() {
    let db = TestDb::new("pgkv_migrate_once");
    let kvs: Vec<PostgresKv> = std::thread::scope(|scope| {
        let connecting: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| PostgresKv::connect(&db.url)))
            .collect();
        connecting
            .into_iter()
            .map(|c| c.join().unwrap().unwrap())
            .collect()
    });
    kvs[0].apply(vec![put("a", "1")]).unwrap();
    kvs[0].flush().unwrap();
    assert_eq!(kvs[3].get(b"a").unwrap(), Some(b"1".to_vec()));
    let versions: Vec<i32> = db
        .admin()
        .query("SELECT version FROM maestro_schema_migrations", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [1, 2]);
}

#[test]
fn a_schema_newer_than_the_build_is_refused() {
    let db = TestDb::new("pgkv_newer_schema");
    drop(db.kv());
    db.admin()
        .batch_execute("INSERT INTO maestro_schema_migrations (version) VALUES (99)")
        .unwrap();
    let Err(err) = PostgresKv::connect(&db.url) else {
        panic!("connected to a schema of version 99")
    };
    assert!(err.to_string().contains("version 99"), "{err}");
}

#[test]
fn connection_errors_say_what_failed() {
    let Err(err) = PostgresKv::connect("postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
    else {
        panic!("connected to port 1")
    };
    assert!(
        matches!(
            err,
            StoreError::Postgres {
                operation: "connect",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("127.0.0.1:1/none"), "{err}");
    let Err(err) = PostgresKv::connect("postgres://host:notaport/db") else {
        panic!("parsed a bad URL")
    };
    assert!(
        matches!(
            err,
            StoreError::Postgres {
                operation: "parse the connection string",
                ..
            }
        ),
        "{err}"
    );
}

/// `Store::load` runs in async code and the outbox is read from async
/// tasks: the store must work on a runtime's threads.
#[test]
fn works_on_a_tokio_runtime_thread() {
    let db = TestDb::new("pgkv_tokio");
    let url = db.url.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let kv = PostgresKv::connect(&url).unwrap();
        kv.apply(vec![put("a", "1")]).unwrap();
        kv.flush().unwrap();
        assert_eq!(all(&kv), map(&[("a", "1")]));
        let kv = std::sync::Arc::new(kv);
        let reader = std::sync::Arc::clone(&kv);
        tokio::spawn(async move { reader.get(b"a") })
            .await
            .unwrap()
            .unwrap();
    });
}

#[test]
fn size_on_disk_counts_the_table() {
    let db = TestDb::new("pgkv_size");
    let kv = db.kv();
    let empty = kv.size_on_disk().unwrap();
    let batch: Batch = (0..2000u32)
        .map(|i| (i.to_be_bytes().to_vec(), Some(vec![(i % 251) as u8; 500])))
        .collect();
    kv.apply(batch).unwrap();
    kv.flush().unwrap();
    let full = kv.size_on_disk().unwrap();
    assert!(full >= empty + 1_000_000, "{empty} -> {full}");
}

// ----- the leader lease ----------------------------------------------------------

fn lease(db: &TestDb, holder: &str, duration: Duration) -> PostgresLease {
    PostgresLease::connect(&db.url, holder, duration).unwrap()
}

#[test]
fn the_lease_has_one_holder_until_it_expires() {
    let db = TestDb::new("pglease_one_holder");
    let a = lease(&db, "a", Duration::from_millis(800));
    let b = lease(&db, "b", Duration::from_millis(800));
    assert_eq!(a.try_acquire().unwrap(), LeaseState::Leader { epoch: 1 });
    // Asking again (an answer lost to a broken connection) keeps the epoch.
    assert_eq!(a.try_acquire().unwrap(), LeaseState::Leader { epoch: 1 });
    match b.try_acquire().unwrap() {
        LeaseState::Held {
            holder,
            epoch,
            expires_in,
        } => {
            assert_eq!((holder.as_str(), epoch), ("a", 1));
            assert!(expires_in <= Duration::from_millis(800), "{expires_in:?}");
        }
        other => panic!("b took a held lease: {other:?}"),
    }
    // Renewed in time, it stays a's.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        assert!(a.renew(1).unwrap());
        assert!(matches!(b.try_acquire().unwrap(), LeaseState::Held { .. }));
    }
    // Not renewed, it expires and b takes it at the next epoch; a's renewal
    // then fails.
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(b.try_acquire().unwrap(), LeaseState::Leader { epoch: 2 });
    assert!(!a.renew(1).unwrap());
    // A released lease is free at once.
    b.release(2).unwrap();
    assert_eq!(a.try_acquire().unwrap(), LeaseState::Leader { epoch: 3 });
}

#[test]
fn a_deposed_leader_writes_nothing() {
    let db = TestDb::new("pglease_fenced");
    let a = lease(&db, "a", Duration::from_secs(60));
    let LeaseState::Leader { epoch } = a.try_acquire().unwrap() else {
        panic!("the first holder did not lead")
    };
    let leader = PostgresKv::connect_fenced(&db.url, epoch).unwrap();
    leader.apply(vec![put("before", "1")]).unwrap();
    leader.flush().unwrap();
    // A successor takes over (the lease is released here instead of
    // waiting for it to expire: the leader was paused, say).
    a.release(epoch).unwrap();
    let b = lease(&db, "b", Duration::from_secs(60));
    assert_eq!(
        b.try_acquire().unwrap(),
        LeaseState::Leader { epoch: epoch + 1 }
    );
    leader.apply(vec![put("after", "1")]).unwrap();
    match leader.flush() {
        Err(StoreError::Fenced { epoch: e, current }) => {
            assert_eq!((e, current), (epoch, Some(epoch + 1)));
        }
        other => panic!("a deposed leader flushed: {other:?}"),
    }
    assert_eq!(
        table(&db),
        map(&[("before", "1")]),
        "nothing of the deposed leader's"
    );
    // The successor's store writes.
    let successor = PostgresKv::connect_fenced(&db.url, epoch + 1).unwrap();
    successor.apply(vec![put("successor", "1")]).unwrap();
    successor.flush().unwrap();
    assert_eq!(table(&db), map(&[("before", "1"), ("successor", "1")]));
}

#[test]
fn a_lease_call_stuck_on_a_lock_fails_within_a_third_of_the_lease() {
    let db = TestDb::new("pglease_stuck");
    let a = lease(&db, "a", Duration::from_millis(900));
    assert_eq!(a.try_acquire().unwrap(), LeaseState::Leader { epoch: 1 });
    // Another session holds the row (as a frozen process inside a
    // transaction would, until the server ends it).
    let mut admin = db.admin();
    let mut tx = admin.transaction().unwrap();
    tx.execute(
        "SELECT epoch FROM maestro_leader WHERE id = 1 FOR UPDATE",
        &[],
    )
    .unwrap();
    let started = Instant::now();
    let renewed = a.renew(1);
    let waited = started.elapsed();
    assert!(
        renewed.is_err(),
        "a renewal waited out the lock: {renewed:?}"
    );
    assert!(waited < Duration::from_millis(900), "waited {waited:?}");
    tx.rollback().unwrap();
    assert!(a.renew(1).unwrap(), "renews once the lock is gone");
}
