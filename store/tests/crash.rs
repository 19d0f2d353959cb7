//! The crash test: a child process writes operations and is killed with
//! SIGKILL at random moments; the database is reopened after every kill and
//! checked.
//!
//! The child is this test binary run again, filtered to this very test,
//! with `MAESTRO_CRASH_CHILD` set to the database directory: the test then
//! plays the child instead of the parent (there is no test of its own for
//! the child, which would pass in every normal run without checking). It
//! applies one atomic batch per step (operation changes plus a "journal" room
//! record naming them), calls [`Store::flush`], and only then prints an
//! `ack` line. The parent reads acks, kills the child after a random number
//! of them (or after a random short sleep, which also lands kills during
//! start-up and sled's recovery), reads whatever acks were printed before the
//! kill, and checks the reopened database:
//!
//! - `open` and `load` succeed: no half-written record is visible;
//! - every acknowledged operation is stored with a status at least as
//!   advanced as acknowledged, and pending ones keep their queue key;
//! - the store differs from the acknowledged state by at most one batch (the
//!   one in flight when the child died), and that batch is whole: the
//!   journal room written with it names exactly the stored statuses;
//! - each scheduler has at most one operation stored in progress, and its
//!   pending operations have distinct queue keys, so the order `restore`
//!   rebuilds from them is the one acknowledged;
//! - `Engine::restore` leaves no operation in progress without running it:
//!   every operation stored in progress is resumed ("Resumed after a
//!   restart") or finished ("Interrupted by a restart"), and the engine's
//!   queue keeps the stored queue-key order.
//!
//! The rounds continue on one database, a new child each round picking up
//! from what `load` returns, so recovery after recovery is exercised too.
//!
//! The same rounds run on PostgreSQL
//! (`sigkill_on_postgres_loses_no_acknowledged_write`, a schema of its own on
//! the server `MAESTRO_STORE_TEST_POSTGRES_URL` names): the child's store is
//! a `PostgresStore`, killed mid-transaction as often as between them.
//!
//! What this does *not* test is power loss: SIGKILL ends the process but the
//! kernel's page cache survives it, so everything sled wrote before the kill
//! reaches the file whether or not it was fsynced. The test therefore checks
//! atomicity (a batch is all or nothing, even when cut mid-write) and the
//! ordering of acknowledgements after writes, not the fsync in `flush`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use maestro_engine::operation::{Definition, HistoryEntry};
use maestro_engine::room::{RemovalReason, Room, RoomStatus};
use maestro_engine::scheduler::{Scheduler, SchedulerState, fixtures};
use maestro_engine::version::Version;
use maestro_engine::{
    Effect, Engine, EngineConfig, Operation, OperationStatus, StoredScheduler, Time,
};
use maestro_store::{Kv, PostgresStore, SledStore, Store, Write};

mod common;

/// Set in the child process only: the database directory, or
/// `postgres:<url>`.
const CHILD_ENV: &str = "MAESTRO_CRASH_CHILD";
/// The child's RNG seed, different every round.
const CHILD_SEED_ENV: &str = "MAESTRO_CRASH_SEED";
/// The tests the child runs as, on sled and on PostgreSQL.
const SLED_TEST: &str = "sigkill_at_random_moments_loses_no_acknowledged_write";
const POSTGRES_TEST: &str = "sigkill_on_postgres_loses_no_acknowledged_write";
const POSTGRES_PREFIX: &str = "postgres:";

const SCHEDULERS: [&str; 3] = ["alpha", "bravo", "charlie"];
const ROUNDS: usize = 60;
const MAX_ACKS: u64 = 300;
/// The child deletes the oldest finished operations beyond this many.
const KEEP_FINISHED: usize = 40;

/// xorshift64*: small, deterministic, good enough for choosing moments.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// In `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn scheduler(name: &str) -> Arc<Scheduler> {
    let mut s = fixtures::scheduler(name);
    s.state = SchedulerState::InSync;
    Arc::new(s)
}

/// The room record written with every batch: `<seq> <id>:<status> ...`.
fn journal(scheduler: &str, text: String) -> Room {
    let mut room = fixtures::room(
        scheduler,
        &format!("{scheduler}-journal"),
        RoomStatus::Occupied,
    );
    room.metadata_json = text;
    room
}

/// Every third operation of each kind: one finished by recovery
/// (`add_rooms`), two resumed by it (`remove_rooms`, `switch_active_version`).
fn definition(n: u64) -> Definition {
    match n % 3 {
        0 => Definition::AddRooms { amount: 1 },
        1 => Definition::RemoveRooms {
            amount: 1,
            room_ids: Vec::new(),
            reason: RemovalReason::UserRequest,
        },
        _ => Definition::SwitchActiveVersion {
            new_active_version: Version::FIRST,
        },
    }
}

fn resumed_by_restore(definition: &Definition) -> bool {
    !matches!(definition, Definition::AddRooms { .. })
}

/// Status ranks: how far an operation has got. Deleted is the last stage.
const PENDING: u8 = 0;
const IN_PROGRESS: u8 = 1;
const FINISHED: u8 = 2;
const DELETED: u8 = 3;

fn rank(status: OperationStatus) -> u8 {
    match status {
        OperationStatus::Pending => PENDING,
        OperationStatus::InProgress => IN_PROGRESS,
        OperationStatus::Finished => FINISHED,
        other => panic!("the child never writes status {other:?}"),
    }
}

fn rank_name(rank: u8) -> &'static str {
    ["pending", "in_progress", "finished", "deleted"][usize::from(rank)]
}

fn parse_rank(text: &str) -> u8 {
    match text {
        "pending" => PENDING,
        "in_progress" => IN_PROGRESS,
        "finished" => FINISHED,
        "deleted" => DELETED,
        other => panic!("unknown status {other:?} in an ack"),
    }
}

fn op_number(id: &str) -> u64 {
    id.strip_prefix("op-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected operation id {id:?}"))
}

// ----- the child ------------------------------------------------------

/// The child: writes to the database at `target` until it is killed.
fn child_main(target: &str) -> ! {
    let seed = std::env::var(CHILD_SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    match target.strip_prefix(POSTGRES_PREFIX) {
        Some(url) => run_child(
            PostgresStore::connect(url).expect("child connects to the database"),
            seed,
        ),
        None => run_child(
            SledStore::open(Path::new(target)).expect("child opens the database"),
            seed,
        ),
    }
}

/// One scheduler as the child sees it.
#[derive(Default)]
struct ChildScheduler {
    /// Queue key → id.
    pending: BTreeMap<i64, String>,
    in_progress: Option<String>,
    /// Oldest first.
    finished: Vec<String>,
    next_back: i64,
    next_front: i64,
}

fn run_child<K: Kv>(store: Store<K>, seed: u64) -> ! {
    let loaded = store.load().expect("child loads the database");
    let mut ops: HashMap<String, Operation> = HashMap::new();
    let mut state: BTreeMap<String, ChildScheduler> = BTreeMap::new();
    let mut next_op = 1u64;
    let mut seq = 1u64;
    for stored in loaded {
        let name = stored.versions[0].scheduler.name.clone();
        let mut s = ChildScheduler::default();
        let mut finished = Vec::new();
        for op in stored.operations {
            next_op = next_op.max(op_number(&op.id) + 1);
            match op.status {
                OperationStatus::Pending => {
                    s.pending.insert(op.queue_key, op.id.clone());
                }
                OperationStatus::InProgress => {
                    assert!(s.in_progress.is_none(), "two operations in progress");
                    s.in_progress = Some(op.id.clone());
                }
                _ => finished.push((op_number(&op.id), op.id.clone())),
            }
            s.next_back = s.next_back.max(op.queue_key + 1);
            s.next_front = s.next_front.min(op.queue_key - 1);
            ops.insert(op.id.clone(), op);
        }
        finished.sort();
        s.finished = finished.into_iter().map(|(_, id)| id).collect();
        for room in &stored.rooms {
            if let Some(last) = room.metadata_json.split(' ').next() {
                seq = seq.max(last.parse::<u64>().unwrap_or(0) + 1);
            }
        }
        state.insert(name, s);
    }
    let mut out = std::io::stdout().lock();
    let mut ack = |line: String| {
        // One write per line: a pipe write this short is atomic.
        out.write_all(format!("{line}\n").as_bytes()).unwrap();
        out.flush().unwrap();
    };

    // One scheduler version each, written (again) at every start.
    let versions: Vec<Write> = SCHEDULERS
        .iter()
        .map(|name| Write::SchedulerVersion {
            scheduler: scheduler(name),
            active: true,
        })
        .collect();
    store.apply(Time(1), &versions).unwrap();
    store.flush().unwrap();
    for name in SCHEDULERS {
        let s = state.entry(name.to_string()).or_default();
        s.next_front = s.next_front.min(-1);
        ack(format!("scheduler {name}"));
    }

    let mut rng = Rng::new(seed);
    loop {
        let name = SCHEDULERS[rng.below(SCHEDULERS.len() as u64) as usize];
        let s = state.get_mut(name).unwrap();
        let now = Time(1_000 + seq);
        let mut writes = Vec::new();
        let mut changes: Vec<(String, u8, i64)> = Vec::new();
        let put =
            |op: &Operation, writes: &mut Vec<Write>, changes: &mut Vec<(String, u8, i64)>| {
                changes.push((op.id.clone(), rank(op.status), op.queue_key));
                writes.push(Write::Operation(Box::new(op.clone())));
            };
        let roll = rng.below(10);
        if s.in_progress.is_some() && roll < 5 {
            let id = s.in_progress.take().unwrap();
            let op = ops.get_mut(&id).unwrap();
            op.status = OperationStatus::Finished;
            op.finished_at = Some(now);
            op.execution_history.push(HistoryEntry {
                at: now,
                event: "Finished".to_string(),
            });
            put(op, &mut writes, &mut changes);
            s.finished.push(id);
            if s.finished.len() > KEEP_FINISHED {
                let old: Vec<String> = s.finished.drain(..2).collect();
                for id in &old {
                    let op = ops.remove(id).unwrap();
                    changes.push((id.clone(), DELETED, op.queue_key));
                }
                writes.push(Write::DeleteOperations {
                    scheduler: name.to_string(),
                    ids: old,
                });
            }
        } else if s.in_progress.is_none() && !s.pending.is_empty() && roll < 8 {
            // Start the head of the queue (the lowest key).
            let (_, id) = s.pending.pop_first().unwrap();
            let op = ops.get_mut(&id).unwrap();
            op.status = OperationStatus::InProgress;
            op.started_at = Some(now);
            op.execution_history.push(HistoryEntry {
                at: now,
                event: "Started".to_string(),
            });
            put(op, &mut writes, &mut changes);
            s.in_progress = Some(id);
        } else {
            // Enqueue one operation, sometimes two in the same batch.
            for _ in 0..1 + u64::from(roll == 9) {
                let n = next_op;
                next_op += 1;
                let queue_key = if n.is_multiple_of(5) {
                    s.next_front -= 1;
                    s.next_front + 1
                } else {
                    s.next_back += 1;
                    s.next_back - 1
                };
                let id = format!("op-{n}");
                let op =
                    Operation::new(id.clone(), name.to_string(), definition(n), now, queue_key);
                put(&op, &mut writes, &mut changes);
                s.pending.insert(queue_key, id.clone());
                ops.insert(id, op);
            }
        }
        let text: Vec<String> = changes
            .iter()
            .map(|(id, r, key)| format!("{id}:{}:{key}", rank_name(*r)))
            .collect();
        let text = format!("{seq} {}", text.join(" "));
        writes.push(Write::Room(Arc::new(journal(name, text.clone()))));
        store.apply(now, &writes).unwrap();
        store.flush().unwrap();
        ack(format!("ack {name} {text}"));
        seq += 1;
    }
}

// ----- the parent -----------------------------------------------------

/// What the parent knows was acknowledged (or verified stored).
#[derive(Default)]
struct Model {
    schedulers: BTreeSet<String>,
    /// (scheduler, id) → (rank, queue key).
    ops: BTreeMap<(String, String), (u8, i64)>,
    /// Last batch sequence number acknowledged per scheduler.
    last_seq: HashMap<String, u64>,
}

impl Model {
    fn ack(&mut self, line: &str) {
        let mut words = line.split(' ');
        match words.next() {
            Some("scheduler") => {
                self.schedulers.insert(words.next().unwrap().to_string());
            }
            Some("ack") => {
                let name = words.next().unwrap().to_string();
                let seq: u64 = words.next().unwrap().parse().unwrap();
                let last = self.last_seq.entry(name.clone()).or_insert(0);
                assert!(seq > *last, "batch numbers go up: {line}");
                *last = seq;
                for change in words {
                    let mut parts = change.split(':');
                    let id = parts.next().unwrap().to_string();
                    let rank = parse_rank(parts.next().unwrap());
                    let key: i64 = parts.next().unwrap().parse().unwrap();
                    let entry = self.ops.entry((name.clone(), id)).or_insert((rank, key));
                    assert!(rank >= entry.0, "the child moved an operation back: {line}");
                    *entry = (rank, key);
                }
            }
            _ => {}
        }
    }
}

/// Runs one child (as `test`, on `target`) until the kill, returning the
/// acknowledged lines.
fn run_round(target: &str, test: &str, round: usize, rng: &mut Rng) -> (Vec<String>, &'static str) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, target)
        .env(CHILD_SEED_ENV, (rng.next() | 1).to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning the child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match stdout.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                // A line cut by the kill (no newline) was never acknowledged.
                Ok(_) if line.last() != Some(&b'\n') => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                    if tx.send(text).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut lines = Vec::new();
    let how = if rng.below(5) == 0 {
        // Any moment, including start-up and recovery.
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        "after a sleep"
    } else {
        let target = 1 + rng.below(MAX_ACKS) as usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        while lines
            .iter()
            .filter(|l: &&String| l.starts_with("ack "))
            .count()
            < target
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(e) => {
                    let _ = child.kill();
                    panic!(
                        "round {round}: the child stopped acknowledging ({e:?}): {:?}",
                        child.wait()
                    );
                }
            }
        }
        // Half the time, let the next batch get under way: the kill then
        // lands anywhere in building, applying or flushing it.
        if rng.below(2) == 0 {
            std::thread::sleep(Duration::from_micros(rng.below(3_000)));
        }
        "after an ack"
    };
    child.kill().unwrap();
    let status = child.wait().unwrap();
    // SIGKILL (9), not an exit of its own (a panic in the child).
    assert_eq!(
        status.signal(),
        Some(9),
        "round {round}: the child exited by itself: {status}"
    );
    reader.join().unwrap();
    // Acks printed before the kill count too: their writes were flushed.
    lines.extend(rx.try_iter());
    (lines, how)
}

/// Whether a line is one of the child's: the test harness prints its own.
fn is_ack(line: &str) -> bool {
    line.starts_with("ack ") || line.starts_with("scheduler ")
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    if let Ok(target) = std::env::var(CHILD_ENV) {
        child_main(&target);
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().display().to_string();
    crash_rounds("sled", &target, SLED_TEST, || {
        SledStore::open(dir.path())
            .map_err(|e| format!("reopening failed: {e}"))?
            .load()
            .map_err(|e| format!("a record does not decode: {e}"))
    });
}

#[test]
fn sigkill_on_postgres_loses_no_acknowledged_write() {
    if let Ok(target) = std::env::var(CHILD_ENV) {
        child_main(&target);
    }
    let db = common::TestDb::new("crash");
    let target = format!("{POSTGRES_PREFIX}{}", db.url);
    crash_rounds("PostgreSQL", &target, POSTGRES_TEST, || {
        PostgresStore::connect(&db.url)
            .map_err(|e| format!("reconnecting failed: {e}"))?
            .load()
            .map_err(|e| format!("a record does not decode: {e}"))
    });
}

/// Kills a child on `target` at random moments, `ROUNDS` times, checking
/// the store `reopen` loads after each kill.
fn crash_rounds(
    name: &str,
    target: &str,
    test: &str,
    reopen: impl Fn() -> Result<Vec<StoredScheduler>, String>,
) {
    let started = Instant::now();
    let mut rng = Rng::new(0x5EED_CAFE_F00D);
    let mut model = Model::default();
    let mut total_acks = 0;
    let mut resumed = 0;
    let mut interrupted = 0;
    let mut unacked_batches = 0;
    let mut sleeps = 0;
    for round in 0..ROUNDS {
        let (lines, how) = run_round(target, test, round, &mut rng);
        let acks: Vec<&String> = lines.iter().filter(|l| is_ack(l)).collect();
        for line in &acks {
            model.ack(line);
        }
        total_acks += acks.iter().filter(|l| l.starts_with("ack ")).count();

        let loaded = reopen().unwrap_or_else(|e| panic!("round {round} ({how}): {e}"));
        if check_store(round, &loaded, &mut model) {
            unacked_batches += 1;
        }
        if how == "after a sleep" {
            sleeps += 1;
        }
        let (r, i) = check_restore(round, &loaded);
        resumed += r;
        interrupted += i;
    }
    let ops = model.ops.values().filter(|(r, _)| *r != DELETED).count();
    eprintln!(
        "crash test on {name}: {ROUNDS} rounds ({sleeps} killed after a sleep), {total_acks} \
         acknowledged batches, {unacked_batches} stored without an ack, {ops} operations stored, \
         {resumed} resumed and {interrupted} finished by recovery, {:.1?}",
        started.elapsed()
    );
    assert!(total_acks > ROUNDS * 10, "the child barely wrote anything");
}

/// Checks the reopened store against the acknowledged state, then adopts
/// what is stored as the state the next child starts from.
/// Returns whether a batch was stored without its ack.
fn check_store(round: usize, loaded: &[StoredScheduler], model: &mut Model) -> bool {
    let names: BTreeSet<String> = loaded
        .iter()
        .map(|s| s.versions[0].scheduler.name.clone())
        .collect();
    assert!(
        model.schedulers.is_subset(&names),
        "round {round}: acknowledged schedulers {:?}, stored {names:?}",
        model.schedulers
    );
    let mut stored: BTreeMap<(String, String), (u8, i64)> = BTreeMap::new();
    // The one batch that may be stored without its ack: the journal of the
    // scheduler it belongs to names it, with a sequence number above the
    // last one acknowledged.
    let mut unacked: Option<(String, u64, HashMap<String, u8>)> = None;
    for s in loaded {
        let name = &s.versions[0].scheduler.name;
        for op in &s.operations {
            assert_eq!(&op.scheduler, name);
            stored.insert(
                (name.clone(), op.id.clone()),
                (rank(op.status), op.queue_key),
            );
        }
        assert!(
            s.rooms.len() <= 1,
            "round {round}: {name} has rooms {:?}",
            s.rooms
        );
        if let Some(room) = s.rooms.first() {
            let mut words = room.metadata_json.split(' ');
            let seq: u64 = words.next().unwrap().parse().unwrap();
            let named: HashMap<String, u8> = words
                .map(|c| {
                    let parts: Vec<&str> = c.split(':').collect();
                    (parts[0].to_string(), parse_rank(parts[1]))
                })
                .collect();
            // Atomicity: the journal and the operations of its batch were
            // written together, and the batch is the scheduler's latest.
            for (id, rank) in &named {
                let found = s.operations.iter().find(|o| &o.id == id);
                match found {
                    Some(op) => assert_eq!(
                        self::rank(op.status),
                        *rank,
                        "round {round}: {name}'s last batch ({}) and operation {id} disagree",
                        room.metadata_json
                    ),
                    None => assert_eq!(
                        *rank, DELETED,
                        "round {round}: {name}'s last batch ({}) wrote {id}, which is missing",
                        room.metadata_json
                    ),
                }
            }
            let acked = model.last_seq.get(name).copied().unwrap_or(0);
            assert!(
                seq >= acked,
                "round {round}: {name}'s acknowledged batch {acked} is lost (journal {seq})"
            );
            if seq > acked {
                assert!(
                    unacked.is_none(),
                    "round {round}: more than one unacknowledged batch is stored"
                );
                unacked = Some((name.clone(), seq, named));
            }
        } else {
            assert!(
                !model.last_seq.contains_key(name),
                "round {round}: {name}'s journal is lost"
            );
        }
    }

    // Every acknowledged operation, at least as advanced as acknowledged.
    for ((name, id), (acked, key)) in &model.ops {
        let (now, stored_key) = stored
            .get(&(name.clone(), id.clone()))
            .copied()
            .unwrap_or((DELETED, *key));
        assert!(
            now >= *acked,
            "round {round}: {name}/{id} was acknowledged {}, is {}",
            rank_name(*acked),
            rank_name(now)
        );
        if now == DELETED {
            assert!(
                *acked >= FINISHED,
                "round {round}: {name}/{id} vanished while {}",
                rank_name(*acked)
            );
        }
        assert_eq!(
            stored_key, *key,
            "round {round}: {name}/{id} changed its queue key"
        );
    }
    // Whatever differs from the acknowledged state is the unacknowledged
    // batch, and all of it.
    let mut differing: HashMap<(String, String), u8> = HashMap::new();
    for (k, (r, _)) in &stored {
        if model.ops.get(k).map(|(a, _)| a) != Some(r) {
            differing.insert(k.clone(), *r);
        }
    }
    for (k, (a, _)) in &model.ops {
        if *a != DELETED && !stored.contains_key(k) {
            differing.insert(k.clone(), DELETED);
        }
    }
    match &unacked {
        None => assert!(
            differing.is_empty(),
            "round {round}: stored but never acknowledged, with no batch in flight: {differing:?}"
        ),
        Some((name, seq, named)) => {
            let named: HashMap<(String, String), u8> = named
                .iter()
                .map(|(id, r)| ((name.clone(), id.clone()), *r))
                .collect();
            assert_eq!(
                differing, named,
                "round {round}: batch {seq} of {name} is not whole"
            );
        }
    }

    // The queue: one operation in progress at most, pending keys distinct
    // (the order restore rebuilds from them is then the acknowledged one).
    for s in loaded {
        let name = &s.versions[0].scheduler.name;
        let in_progress = s
            .operations
            .iter()
            .filter(|o| o.status == OperationStatus::InProgress)
            .count();
        assert!(
            in_progress <= 1,
            "round {round}: {name} has {in_progress} operations in progress"
        );
        let keys: BTreeSet<i64> = s
            .operations
            .iter()
            .filter(|o| o.status == OperationStatus::Pending)
            .map(|o| o.queue_key)
            .collect();
        let pending = s
            .operations
            .iter()
            .filter(|o| o.status == OperationStatus::Pending)
            .count();
        assert_eq!(
            keys.len(),
            pending,
            "round {round}: {name} has pending operations sharing a queue key"
        );
    }

    // The next child starts from what is stored.
    for (k, v) in &mut model.ops {
        *v = stored.get(k).copied().unwrap_or((DELETED, v.1));
    }
    for (k, v) in stored {
        model.ops.entry(k).or_insert(v);
    }
    model.schedulers.extend(names);
    match unacked {
        Some((name, seq, _)) => {
            model.last_seq.insert(name, seq);
            true
        }
        None => false,
    }
}

/// Restores every scheduler into a fresh engine and checks what became of
/// the operations stored in progress. Returns (resumed, finished).
fn check_restore(round: usize, loaded: &[StoredScheduler]) -> (usize, usize) {
    let mut engine = Engine::new(EngineConfig::default());
    let now = Time(10_000_000);
    for s in loaded {
        engine
            .restore(now, s.clone())
            .unwrap_or_else(|e| panic!("round {round}: restore failed: {e}"));
    }
    // The engine's persisted view, newest last.
    let mut persisted: HashMap<String, Operation> = HashMap::new();
    while let Some(effect) = engine.poll_effect() {
        if let Effect::PersistOperation(op) = effect {
            persisted.insert(op.id.clone(), *op);
        }
    }
    engine
        .check_invariants()
        .unwrap_or_else(|e| panic!("round {round}: engine invariants after restore: {e}"));
    let (mut resumed, mut interrupted) = (0, 0);
    for s in loaded {
        let name = &s.versions[0].scheduler.name;
        for stored in s
            .operations
            .iter()
            .filter(|o| o.status == OperationStatus::InProgress)
        {
            let op = engine
                .operation(name, &stored.id)
                .or_else(|| persisted.get(&stored.id))
                .unwrap_or_else(|| {
                    panic!("round {round}: {name}/{} vanished in restore", stored.id)
                });
            let history: Vec<&str> = op
                .execution_history
                .iter()
                .map(|h| h.event.as_str())
                .collect();
            if resumed_by_restore(&stored.definition) {
                assert!(
                    history
                        .iter()
                        .any(|h| h.contains("Resumed after a restart")),
                    "round {round}: {name}/{} ({}) not resumed: {:?} {history:?}",
                    stored.id,
                    stored.definition.name(),
                    op.status
                );
                resumed += 1;
            } else {
                assert!(
                    op.status == OperationStatus::Finished
                        && history
                            .iter()
                            .any(|h| h.contains("Interrupted by a restart")),
                    "round {round}: {name}/{} ({}) not finished: {:?} {history:?}",
                    stored.id,
                    stored.definition.name(),
                    op.status
                );
                interrupted += 1;
            }
        }
        // Nothing in progress in the engine without it running it.
        let running = engine.in_progress_operation(name).map(|o| o.id.clone());
        for op in engine.operations(name) {
            if op.status == OperationStatus::InProgress {
                assert_eq!(
                    Some(&op.id),
                    running.as_ref(),
                    "round {round}: {name}/{} is in progress but not running",
                    op.id
                );
            }
        }
        // The engine's queue keeps the stored order (by queue key, which
        // the records come back without: they are in id order): what it
        // still has pending of the stored queue is a suffix of it.
        let mut stored_queue: Vec<&Operation> = s
            .operations
            .iter()
            .filter(|o| o.status == OperationStatus::Pending)
            .collect();
        stored_queue.sort_by_key(|o| o.queue_key);
        let queue: Vec<String> = stored_queue.iter().map(|o| o.id.clone()).collect();
        let queued: HashSet<&String> = queue.iter().collect();
        let engine_queue: Vec<String> = engine
            .pending_operations(name)
            .into_iter()
            .map(|o| o.id.clone())
            .filter(|id| queued.contains(id))
            .collect();
        assert!(
            queue.ends_with(&engine_queue),
            "round {round}: {name}'s queue after restore {engine_queue:?} is not a suffix of the stored {queue:?}"
        );
    }
    (resumed, interrupted)
}
