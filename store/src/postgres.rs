//! PostgreSQL under the [`Kv`] contract: one table of keys and values, so
//! a primary and its standby can share one durable store.
//!
//! **Group commit is one transaction per flush.** [`Kv::apply`] only
//! records a batch in an in-memory *overlay* (key → new value or deletion),
//! which every read sees at once, exactly as sled's reads see applied but
//! unflushed batches. [`Kv::flush`] writes every pending entry in ONE
//! transaction (a batched delete and a batched upsert) and forgets the
//! entries only after COMMIT succeeded, so a crash or a failed flush never
//! leaves part of a batch in the table, and what a failed flush held stays
//! visible (the driver stops on it anyway). Durability is the server's: the
//! session runs with `synchronous_commit` on (turned on if the server's
//! default is off), so COMMIT returns once the WAL is on disk.
//!
//! **Threading.** The synchronous `postgres` client runs a runtime of its
//! own and panics when called on a thread that is inside a tokio runtime,
//! and the store is read from async code (`Store::load` at start-up, the
//! outbox from the forwarding lanes). So each connection is owned by an OS
//! thread of its own, and every database call is a job sent to it, whose
//! answer the caller waits for with a blocking receive (like a read of
//! sled's files, it holds the calling thread for a round trip). There are
//! two connections, one for reads and one for flushes, so that no read
//! queues behind a flush's COMMIT (sled's reads do not wait for its flush
//! either: the driver's next `apply` may read records while the previous
//! flush is in flight). `apply` itself touches only the overlay.
//!
//! **Reads** merge the overlay over the table in key order. Prefix scans
//! are range scans on the primary key (`key >= prefix AND key < successor`),
//! asking for `limit` rows plus one per overlay entry in the range, since
//! each overlay entry hides or replaces at most one row. A read is not a
//! snapshot across a concurrent flush (neither is sled's): each key reads
//! its value at the overlay's snapshot or a later one.
//!
//! **Connections.** A read that finds its connection broken reconnects once
//! and retries. The flushing connection never reconnects: a flush whose
//! connection broke has an unknown outcome, and the caller treats a failed
//! flush as fatal (a new process connects afresh). A flush that failed on a
//! working connection (the server refused the batch) can be retried: it
//! writes the same final values. TLS is not supported (`NoTls`): connect
//! over a local socket, loopback, or a TLS-terminating proxy.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::{Client, NoTls, Statement};

use crate::error::StoreError;
use crate::kv::{BatchEntry, Entries, Kv};
use crate::lease::{Lease, LeaseState};

/// The schema, one migration per version (version = index + 1). Applied in
/// order at connect, each in the migrating transaction; never edited once
/// released: a change is a new migration.
const MIGRATIONS: &[&str] = &[
    // 1: every record, keyed and ordered as in the other stores (bytea
    // compares bytewise, then by length: Rust's order for byte strings).
    "CREATE TABLE maestro_kv (key bytea PRIMARY KEY, value bytea NOT NULL)",
    // 2: the leader lease (see `PostgresLease`): one row, the current
    // epoch, who holds it and until when (the server's clock).
    "CREATE TABLE maestro_leader (\
       id smallint PRIMARY KEY CHECK (id = 1), \
       epoch bigint NOT NULL, \
       holder text NOT NULL, \
       expires_at timestamptz NOT NULL)",
];

/// How long the server lets a transaction of ours sit idle: far above a
/// flush's gaps between statements, below any lease (see `client_config`).
const IDLE_IN_TRANSACTION: Duration = Duration::from_millis(1_000);

/// The advisory lock taken around migrating, so processes connecting at
/// once do not create the same tables concurrently ("maestro" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d_61_65_73_74_72_6f;

/// Applied batches not yet committed: a key's new value, or `None` for a
/// deletion.
type Layer = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

#[derive(Default)]
struct Overlay {
    /// Applied since the last flush started.
    pending: Layer,
    /// What the flush in flight writes, or a failed flush left; shadowed by
    /// `pending`.
    flushing: Option<Arc<Layer>>,
}

impl Overlay {
    fn get(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.pending
            .get(key)
            .or_else(|| self.flushing.as_ref().and_then(|f| f.get(key)))
            .cloned()
    }

    /// Both layers' entries in `[from, to)`, `pending` winning.
    fn range(&self, from: &[u8], to: Option<&[u8]>) -> Layer {
        let mut view = Layer::new();
        if to.is_some_and(|to| from >= to) {
            return view;
        }
        let bounds = (
            Bound::Included(from),
            to.map_or(Bound::Unbounded, Bound::Excluded),
        );
        for layer in self.flushing.iter().map(|f| &**f).chain([&self.pending]) {
            for (k, v) in layer.range::<[u8], _>(bounds) {
                view.insert(k.clone(), v.clone());
            }
        }
        view
    }
}

/// A job for a connection's thread.
type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// PostgreSQL as an ordered key-value store (see the module's doc).
pub struct PostgresKv {
    overlay: Mutex<Overlay>,
    /// One flush at a time (the driver never starts two; this keeps the
    /// overlay's bookkeeping right for a caller that would).
    flush_lock: Mutex<()>,
    /// Reads, so that none waits for a flush's COMMIT.
    reader: Connection,
    /// Flushes.
    writer: Connection,
    /// The leader epoch every flush checks, for a worker that leads (see
    /// [`PostgresLease`]); `None` for a store nobody else writes.
    fence: Option<i64>,
}

impl PostgresKv {
    /// Connects to `url` (`postgres://user@host:port/db?options`, or libpq's
    /// `key=value` form) without TLS, migrates the schema, and starts the
    /// connections' threads.
    pub fn connect(url: &str) -> Result<PostgresKv, StoreError> {
        PostgresKv::open(url, None)
    }

    /// Like [`connect`](Self::connect), for the worker that holds the
    /// leader lease at `epoch`: every flush checks, in its transaction, that
    /// the lease is still at `epoch`, and fails with
    /// [`StoreError::Fenced`] otherwise, so a deposed leader (paused,
    /// partitioned) writes nothing once a successor took over.
    pub fn connect_fenced(url: &str, epoch: i64) -> Result<PostgresKv, StoreError> {
        PostgresKv::open(url, Some(epoch))
    }

    fn open(url: &str, fence: Option<i64>) -> Result<PostgresKv, StoreError> {
        let config = client_config(url)?;
        Ok(PostgresKv {
            overlay: Mutex::default(),
            flush_lock: Mutex::default(),
            writer: Connection::start(config.clone(), "maestro-pg-write")?,
            reader: Connection::start(config, "maestro-pg-read")?,
            fence,
        })
    }

    fn overlay(&self) -> MutexGuard<'_, Overlay> {
        // Every change to the overlay completes before it could panic, so a
        // poisoned lock still guards consistent data.
        self.overlay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries under `prefix` from `start`, overlay merged, at most `limit`.
    fn scan(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let from = start.max(prefix).to_vec();
        let to = successor(prefix);
        if to.as_ref().is_some_and(|to| from >= *to) {
            // `start` is past every key under `prefix`.
            return Ok(Vec::new());
        }
        let view = self.overlay().range(&from, to.as_deref());
        // Each overlay entry hides or replaces at most one row.
        let rows = sql_limit(limit.saturating_add(view.len()));
        let table = self.reader.call(move |w| {
            w.read("scan", |s| {
                let found = match &to {
                    Some(to) => s.client.query(&s.scan_to, &[&from, to, &rows])?,
                    None => s.client.query(&s.scan_all, &[&from, &rows])?,
                };
                found
                    .iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .collect()
            })
        })?;
        Ok(merge(table, view, limit))
    }
}

/// The client's configuration for `url`, with maestro's defaults.
fn client_config(url: &str) -> Result<postgres::Config, StoreError> {
    let mut config: postgres::Config =
        url.parse().map_err(failed("parse the connection string"))?;
    if config.get_application_name().is_none() {
        config.application_name("maestro");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    // A process frozen inside a transaction (paused, cut off) must not hold
    // its locks for long: a flush holds the leader row `FOR SHARE` until
    // COMMIT, and a standby's takeover waits for it. Maestro's transactions
    // never wait on anything but the next statement, so the server ends any
    // that sits idle this long, releasing its locks (the frozen process's
    // COMMIT then fails, and it stops). Set at connect, so that reconnected
    // sessions have it too.
    add_option(
        &mut config,
        &format!(
            "-c idle_in_transaction_session_timeout={}",
            IDLE_IN_TRANSACTION.as_millis()
        ),
    );
    Ok(config)
}

/// Adds a server option (`-c name=value`) to the connection's, after any
/// the URL gives.
fn add_option(config: &mut postgres::Config, option: &str) {
    let options = match config.get_options() {
        Some(given) if !given.trim().is_empty() => format!("{given} {option}"),
        _ => option.to_string(),
    };
    config.options(&options);
}

/// A connection owned by a thread of its own, which runs the jobs sent to
/// it one at a time.
struct Connection {
    /// `None` only while dropping, to end the thread.
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Connection {
    /// Starts the thread, which connects and migrates the schema first.
    fn start(config: postgres::Config, name: &str) -> Result<Connection, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened, open_result) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let mut worker = match Session::open(&config) {
                    Ok(session) => {
                        let _ = opened.send(Ok(()));
                        Worker { config, session }
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                for job in queue {
                    job(&mut worker);
                }
            })
            .map_err(|e| StoreError::Postgres {
                operation: "start a connection thread",
                cause: e.to_string(),
            })?;
        let connection = Connection {
            jobs: Some(jobs),
            thread: Some(thread),
        };
        open_result.recv().map_err(|_| thread_gone())??;
        Ok(connection)
    }

    /// Runs `job` on the connection's thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Worker) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |worker| {
            let _ = answer.send(job(worker));
        });
        let jobs = self.jobs.as_ref().ok_or_else(thread_gone)?;
        jobs.send(job).map_err(|_| thread_gone())?;
        answered.recv().map_err(|_| thread_gone())?
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Closing the queue ends the thread, which closes the connection.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn thread_gone() -> StoreError {
    StoreError::Postgres {
        operation: "reach the connection thread",
        cause: "the thread has stopped".to_string(),
    }
}

/// The client's message with the server's (a `DbError` is the source of a
/// "db error").
fn cause(e: &postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

/// Whether `e` means the connection is gone: closed, failed at the socket,
/// or ended by the server (a FATAL error, e.g. the backend was terminated;
/// the client may not have seen the socket close yet).
fn broken(client: &Client, e: &postgres::Error) -> bool {
    use postgres::error::Severity;
    client.is_closed()
        || e.is_closed()
        || e.as_db_error().is_some_and(|db| {
            matches!(
                db.parsed_severity(),
                Some(Severity::Fatal | Severity::Panic)
            )
        })
        || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// Turns a client error into the store's, saying what failed.
fn failed(operation: &'static str) -> impl Fn(postgres::Error) -> StoreError + Copy {
    move |e| StoreError::Postgres {
        operation,
        cause: cause(&e),
    }
}

/// A row count for `LIMIT`: `None` (no limit) beyond `i64`.
fn sql_limit(n: usize) -> Option<i64> {
    i64::try_from(n).ok()
}

/// The least key above every key that starts with `prefix`; `None` if there
/// is none (the prefix is empty or all 0xFF).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < 0xFF {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// The first `limit` entries of `table` with `overlay` laid over it, both in
/// key order. Exact as long as `table` holds the range's first
/// `limit + overlay.len()` rows (or all of them): at most `overlay.len()` of
/// those are hidden, so the first `limit` merged entries end before the
/// first row not fetched.
fn merge(table: Entries, overlay: Layer, limit: usize) -> Entries {
    let mut out = Vec::new();
    let mut overlay = overlay.into_iter().peekable();
    for (key, value) in table {
        if out.len() >= limit {
            break;
        }
        while let Some((k, v)) = overlay.next_if(|(k, _)| *k < key) {
            out.extend(v.map(|v| (k, v)));
        }
        match overlay.next_if(|(k, _)| *k == key) {
            Some((k, v)) => out.extend(v.map(|v| (k, v))),
            None => out.push((key, value)),
        }
    }
    out.extend(overlay.filter_map(|(k, v)| v.map(|v| (k, v))));
    out.truncate(limit);
    out
}

/// The connection thread's state.
struct Worker {
    config: postgres::Config,
    session: Session,
}

/// A connection and its prepared statements.
struct Session {
    client: Client,
    get: Statement,
    scan_to: Statement,
    scan_all: Statement,
    last_to: Statement,
    last_all: Statement,
    delete: Statement,
    upsert: Statement,
    size: Statement,
    fence: Statement,
}

impl Session {
    fn open(config: &postgres::Config) -> Result<Session, StoreError> {
        let mut client = config.connect(NoTls).map_err(|e| StoreError::Postgres {
            operation: "connect",
            cause: format!("{}: {}", describe(config), cause(&e)),
        })?;
        migrate(&mut client)?;
        let sync = client
            .query_one("SHOW synchronous_commit", &[])
            .and_then(|row| row.try_get::<_, String>(0))
            .map_err(failed("read synchronous_commit"))?;
        if sync == "off" {
            client
                .batch_execute("SET synchronous_commit = on")
                .map_err(failed("set synchronous_commit"))?;
        }
        let mut prepare = |sql: &str| client.prepare(sql).map_err(failed("prepare a statement"));
        Ok(Session {
            get: prepare("SELECT value FROM maestro_kv WHERE key = $1")?,
            // Two statements each rather than `$2 IS NULL OR key < $2`, which
            // the planner cannot use as the index scan's upper bound.
            scan_to: prepare(
                "SELECT key, value FROM maestro_kv WHERE key >= $1 AND key < $2 \
                 ORDER BY key LIMIT $3",
            )?,
            scan_all: prepare(
                "SELECT key, value FROM maestro_kv WHERE key >= $1 ORDER BY key LIMIT $2",
            )?,
            last_to: prepare(
                "SELECT key FROM maestro_kv WHERE key >= $1 AND key < $2 \
                 ORDER BY key DESC LIMIT $3",
            )?,
            last_all: prepare(
                "SELECT key FROM maestro_kv WHERE key >= $1 ORDER BY key DESC LIMIT $2",
            )?,
            delete: prepare("DELETE FROM maestro_kv WHERE key = ANY($1::bytea[])")?,
            upsert: prepare(
                "INSERT INTO maestro_kv (key, value) \
                 SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            )?,
            size: prepare("SELECT pg_total_relation_size('maestro_kv')")?,
            // FOR SHARE: a takeover (which updates the row) waits for this
            // flush to commit, and this flush waits for a takeover in
            // progress, then reads its epoch.
            fence: prepare("SELECT epoch FROM maestro_leader WHERE id = 1 FOR SHARE")?,
            client,
        })
    }
}

/// Where a connection goes, without its password, for error messages.
fn describe(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(name)) => name.clone(),
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("{host}:{port}/{db}")
}

/// Brings the schema to the last version, under the advisory lock, in one
/// transaction: a process that fails half-way leaves the previous version.
fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let fail = failed("migrate the schema");
    let mut tx = client.transaction().map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(fail)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS maestro_schema_migrations (\
           version integer PRIMARY KEY, \
           applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .map_err(fail)?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM maestro_schema_migrations",
            &[],
        )
        .and_then(|row| row.try_get(0))
        .map_err(fail)?;
    let known = MIGRATIONS.len();
    let applied = usize::try_from(current).unwrap_or(0);
    if applied > known {
        return Err(StoreError::Postgres {
            operation: "migrate the schema",
            cause: format!(
                "the database's schema is at version {current}; this build knows versions up to {known}"
            ),
        });
    }
    for (version, sql) in (1i32..).zip(MIGRATIONS).skip(applied) {
        tx.batch_execute(sql).map_err(fail)?;
        tx.execute(
            "INSERT INTO maestro_schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .map_err(fail)?;
    }
    tx.commit().map_err(fail)
}

impl Worker {
    /// Runs a read, reconnecting once if the connection is broken.
    fn read<T>(
        &mut self,
        operation: &'static str,
        query: impl Fn(&mut Session) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut reconnected = false;
        if self.session.client.is_closed() {
            self.session = Session::open(&self.config)?;
            reconnected = true;
        }
        match query(&mut self.session) {
            Ok(found) => Ok(found),
            Err(e) if !reconnected && broken(&self.session.client, &e) => {
                self.session =
                    Session::open(&self.config).map_err(|reconnect| StoreError::Postgres {
                        operation,
                        cause: format!("{}; reconnecting: {reconnect}", cause(&e)),
                    })?;
                query(&mut self.session).map_err(failed(operation))
            }
            Err(e) => Err(failed(operation)(e)),
        }
    }

    /// Writes a flush's entries in one transaction. No reconnect: on a
    /// broken connection this flush and every later one fail.
    fn flush(
        &mut self,
        keys: Vec<Vec<u8>>,
        values: Vec<Vec<u8>>,
        deleted: Vec<Vec<u8>>,
        fence: Option<i64>,
    ) -> Result<(), StoreError> {
        let s = &mut self.session;
        let fail = failed("flush");
        let mut tx = s.client.transaction().map_err(fail)?;
        if let Some(epoch) = fence {
            let current: Option<i64> = match tx.query_opt(&s.fence, &[]).map_err(fail)? {
                Some(row) => Some(row.try_get(0).map_err(fail)?),
                None => None,
            };
            if current != Some(epoch) {
                // Dropping the transaction rolls it back: nothing written.
                return Err(StoreError::Fenced { epoch, current });
            }
        }
        if !deleted.is_empty() {
            tx.execute(&s.delete, &[&deleted]).map_err(fail)?;
        }
        if !keys.is_empty() {
            tx.execute(&s.upsert, &[&keys, &values]).map_err(fail)?;
        }
        tx.commit().map_err(fail)
    }
}

impl Kv for PostgresKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(value) = self.overlay().get(key) {
            return Ok(value);
        }
        let key = key.to_vec();
        self.reader.call(move |w| {
            w.read("get", |s| match s.client.query_opt(&s.get, &[&key])? {
                Some(row) => Ok(Some(row.try_get(0)?)),
                None => Ok(None),
            })
        })
    }

    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        self.scan(prefix, prefix, limit)
    }

    fn scan_from(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        self.scan(prefix, start, limit)
    }

    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let from = prefix.to_vec();
        let to = successor(prefix);
        let view = self.overlay().range(&from, to.as_deref());
        // The greatest row the overlay does not shadow is among the first
        // `view.len() + 1` rows from the top.
        let rows = sql_limit(view.len().saturating_add(1));
        let keys: Vec<Vec<u8>> = self.reader.call(move |w| {
            w.read("last key", |s| {
                let found = match &to {
                    Some(to) => s.client.query(&s.last_to, &[&from, to, &rows])?,
                    None => s.client.query(&s.last_all, &[&from, &rows])?,
                };
                found.iter().map(|row| row.try_get(0)).collect()
            })
        })?;
        let in_table = keys.into_iter().find(|k| !view.contains_key(k));
        let in_overlay = view
            .into_iter()
            .rev()
            .find_map(|(k, v)| v.is_some().then_some(k));
        Ok(in_table.max(in_overlay))
    }

    fn apply(&self, batch: Vec<BatchEntry>) -> Result<(), StoreError> {
        // Under one lock: a read sees the whole batch or none of it.
        self.overlay().pending.extend(batch);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.flush_lock.lock().unwrap_or_else(|p| p.into_inner());
        // What a failed flush left is written again, under what was applied
        // since: the same final values, so writing them twice is harmless.
        let batch = {
            let mut overlay = self.overlay();
            let pending = std::mem::take(&mut overlay.pending);
            let batch = match overlay.flushing.take() {
                Some(mut failed) => {
                    Arc::make_mut(&mut failed).extend(pending);
                    failed
                }
                None => Arc::new(pending),
            };
            if batch.is_empty() {
                return Ok(());
            }
            overlay.flushing = Some(Arc::clone(&batch));
            batch
        };
        let (mut keys, mut values, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value) in batch.iter() {
            match value {
                Some(value) => {
                    keys.push(key.clone());
                    values.push(value.clone());
                }
                None => deleted.push(key.clone()),
            }
        }
        let fence = self.fence;
        self.writer
            .call(move |w| w.flush(keys, values, deleted, fence))?;
        let mut overlay = self.overlay();
        if overlay
            .flushing
            .as_ref()
            .is_some_and(|f| Arc::ptr_eq(f, &batch))
        {
            overlay.flushing = None;
        }
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        let bytes: i64 = self.reader.call(|w| {
            w.read("size on disk", |s| {
                s.client.query_one(&s.size, &[])?.try_get(0)
            })
        })?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }
}

// ----- the leader lease --------------------------------------------------------

/// The worker's leader lease: one row in PostgreSQL with an epoch, who
/// holds it, and until when by the server's clock (so the workers' clocks
/// never have to agree).
///
/// A worker takes the lease when it is free or expired, which bumps the
/// epoch, and renews it well within its duration. The store of the worker
/// that leads at an epoch checks that epoch in every flush transaction
/// ([`PostgresKv::connect_fenced`]), so once a successor has taken the
/// lease, a deposed leader's writes fail: the lease decides who may lead,
/// the fence makes sure only the leader writes.
pub struct PostgresLease {
    connection: Connection,
    holder: String,
    duration: Duration,
}

impl PostgresLease {
    /// Connects to `url` (migrating the schema, as the store does). `holder`
    /// names this process in the row; it must be unique per process, never
    /// reused by a restart.
    pub fn connect(
        url: &str,
        holder: &str,
        duration: Duration,
    ) -> Result<PostgresLease, StoreError> {
        let mut config = client_config(url)?;
        // A lease call that waits (on a lock, a slow server) longer than a
        // third of the lease fails rather than outlive what it decides.
        let limit = (duration / 3).max(Duration::from_millis(100)).as_millis();
        add_option(&mut config, &format!("-c statement_timeout={limit}"));
        Ok(PostgresLease {
            connection: Connection::start(config, "maestro-pg-lease")?,
            holder: holder.to_string(),
            duration,
        })
    }

    /// Takes the lease if nobody holds it or its holder let it expire (a new
    /// epoch), or if this process already holds it (an answer lost to a
    /// broken connection is retried safely).
    pub fn try_acquire(&self) -> Result<LeaseState, StoreError> {
        let holder = self.holder.clone();
        let seconds = self.duration.as_secs_f64();
        self.connection.call(move |w| {
            w.read("take the leader lease", |s| {
                let taken = s.client.query_opt(
                    "INSERT INTO maestro_leader AS l (id, epoch, holder, expires_at) \
                     VALUES (1, 1, $1, now() + make_interval(secs => $2)) \
                     ON CONFLICT (id) DO UPDATE \
                       SET epoch = l.epoch + 1, holder = EXCLUDED.holder, \
                           expires_at = EXCLUDED.expires_at \
                       WHERE l.expires_at <= now() \
                     RETURNING epoch",
                    &[&holder, &seconds],
                )?;
                if let Some(row) = taken {
                    return Ok(LeaseState::Leader {
                        epoch: row.try_get(0)?,
                    });
                }
                let row = s.client.query_one(
                    "SELECT epoch, holder, \
                       greatest(extract(epoch FROM expires_at - now()), 0)::float8 \
                     FROM maestro_leader WHERE id = 1",
                    &[],
                )?;
                let (epoch, current): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
                if current == holder {
                    return Ok(LeaseState::Leader { epoch });
                }
                let left: f64 = row.try_get(2)?;
                Ok(LeaseState::Held {
                    holder: current,
                    epoch,
                    expires_in: Duration::from_secs_f64(left.max(0.0)),
                })
            })
        })
    }

    /// Extends the lease held at `epoch` by its duration from now. `false`:
    /// another process took it, and this one must stop writing.
    pub fn renew(&self, epoch: i64) -> Result<bool, StoreError> {
        let seconds = self.duration.as_secs_f64();
        self.connection.call(move |w| {
            w.read("renew the leader lease", |s| {
                let renewed = s.client.execute(
                    "UPDATE maestro_leader SET expires_at = now() + make_interval(secs => $2) \
                     WHERE id = 1 AND epoch = $1",
                    &[&epoch, &seconds],
                )?;
                Ok(renewed == 1)
            })
        })
    }

    /// Lets the lease held at `epoch` expire now, so that a standby takes
    /// over at once rather than after the lease's duration (a graceful stop).
    pub fn release(&self, epoch: i64) -> Result<(), StoreError> {
        self.connection.call(move |w| {
            w.read("release the leader lease", |s| {
                s.client.execute(
                    "UPDATE maestro_leader SET expires_at = now() WHERE id = 1 AND epoch = $1",
                    &[&epoch],
                )?;
                Ok(())
            })
        })
    }

    /// How long the lease lasts without a renewal.
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

impl Lease for PostgresLease {
    fn try_acquire(&self) -> Result<LeaseState, StoreError> {
        PostgresLease::try_acquire(self)
    }

    fn renew(&self, epoch: i64) -> Result<bool, StoreError> {
        PostgresLease::renew(self, epoch)
    }

    fn release(&self, epoch: i64) -> Result<(), StoreError> {
        PostgresLease::release(self, epoch)
    }

    fn duration(&self) -> Duration {
        PostgresLease::duration(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_bound_every_key_of_the_prefix() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xff\xff"), None);
        assert_eq!(successor(b""), None);
    }

    fn entries(list: &[(&str, &str)]) -> Entries {
        list.iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn layer(list: &[(&str, Option<&str>)]) -> Layer {
        list.iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn the_overlay_hides_replaces_and_adds_rows() {
        let table = entries(&[("a", "1"), ("c", "1"), ("e", "1"), ("g", "1")]);
        let overlay = layer(&[
            ("a", None),
            ("b", Some("2")),
            ("e", Some("2")),
            ("h", Some("2")),
        ]);
        let all = entries(&[("b", "2"), ("c", "1"), ("e", "2"), ("g", "1"), ("h", "2")]);
        assert_eq!(merge(table.clone(), overlay.clone(), usize::MAX), all);
        for limit in 0..all.len() {
            assert_eq!(merge(table.clone(), overlay.clone(), limit), all[..limit]);
        }
    }

    #[test]
    fn a_truncated_table_still_yields_the_first_entries() {
        // The range holds a c e g; the overlay (2 entries) asks for 2 more
        // rows than the limit of 1: the table gave a, c, e.
        let table = entries(&[("a", "1"), ("c", "1"), ("e", "1")]);
        let overlay = layer(&[("a", None), ("c", None)]);
        assert_eq!(merge(table, overlay, 1), entries(&[("e", "1")]));
    }
}
