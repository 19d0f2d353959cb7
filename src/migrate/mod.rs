//! `maestro migrate`: moving schedulers over from Maestro Next, one at a
//! time, without stopping a match, and back (docs/MIGRATION.md).
//!
//! - `from-maestro-next` reads upstream's PostgreSQL (schedulers and every
//!   version, [`go_yaml`]) and, with `--redis`, its rooms ([`source`]),
//!   and writes each scheduler into maestro's store whole, in one batch
//!   (`Write::Import`), or not at all. Imported schedulers are watch-only
//!   (`Engine::is_watch_only`): maestro tracks their rooms but changes
//!   nothing in the cluster for them.
//! - `switch NAME` hands one to maestro; `unswitch NAME` hands it back.
//! - `status` lists the imported schedulers.
//!
//! Every subcommand works on maestro's store directly, as `maestro start`
//! configures it (`--config`, `--data-dir`, the environment), so maestro's
//! worker must be stopped meanwhile: sled holds a lock on its directory,
//! and on PostgreSQL this command takes the worker's leader lease and
//! refuses while a worker holds it.

pub mod go_yaml;
pub mod handback;
pub mod source;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use maestro_engine::room::RoomStatus;
use maestro_engine::scheduler::validate;
use maestro_engine::version::Version;
use maestro_engine::{Engine, EngineConfig, OperationStatus, StoredScheduler, StoredVersion, Time};
use maestro_store::{
    Kv, LeaseState, MemoryStore, Migration, PostgresLease, PostgresStore, SledStore, Store,
    StoreError, Write,
};

use crate::config::{Config, FlagValues, StoreConfig};
use source::UpstreamScheduler;

#[derive(Subcommand)]
pub enum MigrateCmd {
    /// Import schedulers, every version, and (with --redis) their rooms
    /// from Maestro Next. Imported schedulers are only watched until
    /// switched. Exits non-zero if any scheduler could not be imported
    /// (the others are).
    FromMaestroNext(FromArgs),
    /// Hand an imported scheduler to maestro (from the worker's next start).
    /// With --redis, its rooms are read again from Maestro Next first, in
    /// the same batch as the switch, so that maestro starts from upstream's
    /// latest allocations and statuses.
    Switch(SwitchArgs),
    /// Hand a switched scheduler back to Maestro Next: maestro only watches
    /// it again. With --postgres and --redis, first write maestro's view
    /// (new versions, the active one, the rooms as they are now) into
    /// Maestro Next's stores, so that it resumes from the fleet as it is.
    Unswitch(UnswitchArgs),
    /// The imported schedulers and whether each is switched.
    Status(StoreArgs),
}

/// Where maestro's store is, read as `maestro start` reads it.
#[derive(Args, Clone, Debug)]
pub struct StoreArgs {
    /// maestro's configuration file (its `store` settings are used).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// The embedded store's directory [default: ./maestro-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Args, Clone, Debug)]
pub struct FromArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Maestro Next's PostgreSQL, e.g. postgres://maestro:pw@db:5432/maestro.
    #[arg(long, value_name = "URL")]
    pub postgres: String,
    /// Maestro Next's Redis, e.g. redis://redis:6379/0: imports the rooms
    /// with their statuses, occupancy and allocations.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Only these schedulers (repeatable) [default: all].
    #[arg(long = "scheduler", value_name = "NAME")]
    pub schedulers: Vec<String>,
    /// Print what would be imported and every problem; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Clone, Debug)]
pub struct SwitchArgs {
    #[command(flatten)]
    pub name: NameArgs,
    /// Maestro Next's Redis: the rooms are read again, as they are now.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
}

#[derive(Args, Clone, Debug)]
pub struct UnswitchArgs {
    #[command(flatten)]
    pub name: NameArgs,
    /// Maestro Next's PostgreSQL: the versions created in maestro are
    /// added, and the active version made upstream's.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// Maestro Next's Redis: the rooms are written as they are now, and
    /// those that are gone removed.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
}

/// Where a hand-back writes maestro's view (`unswitch`).
#[derive(Default)]
struct Upstreams {
    postgres: Option<postgres::Client>,
    redis: Option<redis::Connection>,
}

#[derive(Args, Clone, Debug)]
pub struct NameArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The scheduler's name.
    pub name: String,
}

/// Runs a subcommand. `Ok(false)`: it ran, and reported problems.
pub fn run(cmd: MigrateCmd) -> Result<bool> {
    match cmd {
        MigrateCmd::FromMaestroNext(args) => from_maestro_next(&args),
        MigrateCmd::Switch(args) => {
            let mut upstreams = Upstreams::default();
            if let Some(url) = &args.redis {
                upstreams.redis = Some(connect_redis(url)?);
            }
            set_switched(&args.name, true, upstreams).map(|()| true)
        }
        MigrateCmd::Unswitch(args) => {
            let mut upstreams = Upstreams::default();
            if let Some(url) = &args.postgres {
                upstreams.postgres = Some(
                    postgres::Client::connect(url, postgres::NoTls)
                        .context("connecting to Maestro Next's PostgreSQL (--postgres)")?,
                );
            }
            if let Some(url) = &args.redis {
                upstreams.redis = Some(connect_redis(url)?);
            }
            set_switched(&args.name, false, upstreams).map(|()| true)
        }
        MigrateCmd::Status(args) => status(&args).map(|()| true),
    }
}

fn connect_redis(url: &str) -> Result<redis::Connection> {
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .context("connecting to Maestro Next's Redis (--redis)")
}

// ----- maestro's store ----------------------------------------------------

/// maestro's store, opened for this command alone.
enum Opened {
    Sled(SledStore),
    /// A dry run against an embedded store that does not exist yet: an
    /// empty store, so that the run creates nothing.
    Empty(MemoryStore),
    Postgres {
        store: PostgresStore,
        lease: PostgresLease,
        epoch: i64,
    },
}

/// Runs `$body` with `$store` bound to the opened store, whatever its kind.
macro_rules! on_store {
    ($opened:expr, |$store:ident| $body:expr) => {
        match &$opened {
            Opened::Sled(s) => {
                let $store = s;
                $body
            }
            Opened::Empty(s) => {
                let $store = s;
                $body
            }
            Opened::Postgres { store, .. } => {
                let $store = store;
                $body
            }
        }
    };
}

impl Opened {
    fn open(args: &StoreArgs, dry_run: bool) -> Result<Opened> {
        let flags = FlagValues {
            config: args.config.clone(),
            data_dir: args.data_dir.clone(),
            ..FlagValues::default()
        };
        let (config, _warnings) =
            Config::load(&flags, std::env::vars()).context("reading maestro's configuration")?;
        match config.store {
            StoreConfig::Sled if dry_run && !config.data_dir.exists() => {
                Ok(Opened::Empty(MemoryStore::in_memory()))
            }
            StoreConfig::Sled => {
                let store = SledStore::open(&config.data_dir).with_context(|| {
                    format!(
                        "opening maestro's store at {} (is maestro running? Stop its worker \
                         first: the embedded store belongs to one process at a time)",
                        config.data_dir.display()
                    )
                })?;
                Ok(Opened::Sled(store))
            }
            StoreConfig::Postgres {
                url,
                lease_duration,
            } => {
                let holder = format!("maestro-migrate@{}", crate::leader::holder_name());
                let lease = PostgresLease::connect(&url, &holder, lease_duration)
                    .context("connecting to maestro's PostgreSQL")?;
                let epoch = match lease.try_acquire().context("reading the leader lease")? {
                    LeaseState::Leader { epoch } => epoch,
                    LeaseState::Held {
                        holder, expires_in, ..
                    } => bail!(
                        "maestro worker {holder} leads (its lease runs {} more): stop maestro's \
                         workers first (scale them to zero), then run this again",
                        humantime::format_duration(Duration::from_secs(expires_in.as_secs()))
                    ),
                };
                let store = PostgresStore::connect_fenced(&url, epoch)
                    .context("opening maestro's store on PostgreSQL")?;
                Ok(Opened::Postgres {
                    store,
                    lease,
                    epoch,
                })
            }
        }
    }

    /// Lets a worker take the lease at once.
    fn close(self) {
        if let Opened::Postgres { lease, epoch, .. } = self
            && let Err(e) = lease.release(epoch)
        {
            eprintln!(
                "maestro migrate: could not release the leader lease ({e}); it lapses by itself"
            );
        }
    }
}

/// Engine time for what this command writes: the wall clock, or the store's
/// latest time if the wall clock is behind it (`Clock::resume_after`).
fn now<K: Kv>(store: &Store<K>) -> Time {
    crate::clock::wall_clock().max(store.clock_mark())
}

// ----- from-maestro-next --------------------------------------------------

/// Something that keeps a scheduler from being imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub scheduler: String,
    pub version: Option<String>,
    pub room: Option<String>,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "scheduler {}", self.scheduler)?;
        if let Some(v) = &self.version {
            write!(f, ", version {v}")?;
        }
        if let Some(r) = &self.room {
            write!(f, ", room {r}")?;
        }
        write!(f, ": {}: {}", self.field, self.message)
    }
}

/// A scheduler ready to import.
pub struct Planned {
    pub stored: StoredScheduler,
    /// Whether its rooms were read (`--redis`).
    pub rooms_read: bool,
    /// Rooms upstream lists as terminated, left out.
    pub terminated: usize,
}

impl Planned {
    fn name(&self) -> &str {
        self.stored.name().unwrap_or_default()
    }

    fn summary(&self) -> String {
        let active = self
            .stored
            .versions
            .iter()
            .find(|v| v.is_active)
            .map_or("", |v| v.scheduler.spec.version.as_str());
        let mut line = format!(
            "{}: {} version(s), active {active}",
            self.name(),
            self.stored.versions.len()
        );
        if !self.rooms_read {
            line.push_str("; rooms not read (no --redis): the pod watch adopts them");
            return line;
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for room in &self.stored.rooms {
            *counts.entry(room.status.as_str()).or_default() += 1;
        }
        let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        line.push_str(&format!("; {} room(s)", self.stored.rooms.len()));
        if !counts.is_empty() {
            line.push_str(&format!(" ({})", counts.join(", ")));
        }
        if self.terminated > 0 {
            line.push_str(&format!(
                "; {} terminated room(s) left out",
                self.terminated
            ));
        }
        line
    }
}

fn from_maestro_next(args: &FromArgs) -> Result<bool> {
    let mut db = postgres::Client::connect(&args.postgres, postgres::NoTls)
        .context("connecting to Maestro Next's PostgreSQL (--postgres)")?;
    let upstream = source::schedulers(&mut db, &args.schedulers)
        .context("reading Maestro Next's schedulers from PostgreSQL")?;
    let mut problems = Vec::new();
    for wanted in &args.schedulers {
        if !upstream.iter().any(|s| &s.name == wanted) {
            problems.push(Problem {
                scheduler: wanted.clone(),
                version: None,
                room: None,
                field: "name".into(),
                message: "no such scheduler in Maestro Next's PostgreSQL".into(),
            });
        }
    }
    let mut redis = match &args.redis {
        None => None,
        Some(url) => Some(connect_redis(url)?),
    };

    let opened = Opened::open(&args.store, args.dry_run)?;
    let result = on_store!(opened, |store| import(
        store,
        args,
        upstream,
        redis.as_mut(),
        problems
    ));
    opened.close();
    result
}

fn import<K: Kv>(
    store: &Store<K>,
    args: &FromArgs,
    upstream: Vec<UpstreamScheduler>,
    mut redis: Option<&mut redis::Connection>,
    mut problems: Vec<Problem>,
) -> Result<bool> {
    let now = now(store);
    let existing: BTreeMap<String, bool> = store
        .load()
        .context("reading maestro's store")?
        .iter()
        .filter_map(|s| s.name().map(str::to_string))
        .map(|name| {
            let imported = store.migration(&name).ok().flatten().is_some();
            (name, imported)
        })
        .collect();
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    for scheduler in &upstream {
        match existing.get(&scheduler.name) {
            Some(true) => {
                skipped.push(scheduler.name.clone());
                continue;
            }
            Some(false) => {
                problems.push(Problem {
                    scheduler: scheduler.name.clone(),
                    version: None,
                    room: None,
                    field: "name".into(),
                    message: "maestro already has a scheduler of this name (created in \
                              maestro, not imported): delete or rename one of them"
                        .into(),
                });
                continue;
            }
            None => {}
        }
        match plan(now, scheduler, redis.as_deref_mut()) {
            Ok(p) => planned.push(p),
            Err(mut found) => problems.append(&mut found),
        }
    }

    for p in &planned {
        println!("{}", p.summary());
    }
    for name in &skipped {
        println!("{name}: already imported, left as it is (see `maestro migrate status`)");
    }
    for p in &problems {
        println!("NOT IMPORTED: {p}");
    }
    if args.dry_run {
        println!(
            "dry run: {} scheduler(s) would be imported, {} problem(s); nothing was written",
            planned.len(),
            problems.len()
        );
        return Ok(problems.is_empty());
    }
    let mut imported = 0;
    for p in planned {
        let name = p.name().to_string();
        match store.apply(now, &[Write::Import(Box::new(p.stored))]) {
            Ok(()) => imported += 1,
            // Created meanwhile: the store refused the whole batch.
            Err(StoreError::Exists(_)) => problems.push(Problem {
                scheduler: name,
                version: None,
                room: None,
                field: "name".into(),
                message: "maestro already has a scheduler of this name".into(),
            }),
            Err(e) => {
                return Err(e).context(format!("writing scheduler {name} to maestro's store"));
            }
        }
    }
    store.flush().context("flushing maestro's store")?;
    println!(
        "imported {imported} scheduler(s), watch-only until switched (`maestro migrate switch NAME`); {} problem(s)",
        problems.len()
    );
    Ok(problems.is_empty())
}

/// One scheduler converted and checked, or every problem found in it.
pub fn plan(
    now: Time,
    upstream: &UpstreamScheduler,
    redis: Option<&mut redis::Connection>,
) -> Result<Planned, Vec<Problem>> {
    let name = upstream.name.as_str();
    let mut problems = Vec::new();
    let at = |version: Option<&str>, field: &str, message: String| Problem {
        scheduler: name.to_string(),
        version: version.map(str::to_string),
        room: None,
        field: field.to_string(),
        message,
    };
    // The active version is the `schedulers` row itself (what upstream's
    // GET shows); every other version comes from `scheduler_versions`.
    let mut rows: Vec<(&str, &str, Time, &str)> = upstream
        .versions
        .iter()
        .filter(|v| v.version != upstream.active_version)
        .map(|v| {
            (
                v.version.as_str(),
                v.yaml.as_str(),
                v.created_at,
                v.rollback_version.as_str(),
            )
        })
        .collect();
    let active_row = upstream
        .versions
        .iter()
        .find(|v| v.version == upstream.active_version);
    rows.push((
        upstream.active_version.as_str(),
        upstream.yaml.as_str(),
        active_row.map_or(upstream.created_at, |v| v.created_at),
        active_row.map_or("", |v| v.rollback_version.as_str()),
    ));
    let mut versions: Vec<StoredVersion> = Vec::new();
    let mut seen: BTreeMap<Version, &str> = BTreeMap::new();
    for (version, yaml, created_at, rollback_version) in rows {
        let Some(parsed) = Version::parse(version) else {
            problems.push(at(
                Some(version),
                "version",
                format!("{version:?} is not a version maestro reads (vMAJOR.MINOR.PATCH)"),
            ));
            continue;
        };
        if let Some(other) = seen.insert(parsed, version) {
            problems.push(at(
                Some(version),
                "version",
                format!("the same version as {other:?}"),
            ));
            continue;
        }
        let row = go_yaml::Row {
            name,
            game: &upstream.game,
            state: &upstream.state,
            version,
            rollback_version,
            created_at: upstream.created_at,
        };
        let scheduler = match go_yaml::scheduler(&row, yaml) {
            Ok(s) => s,
            Err(e) => {
                problems.push(at(Some(version), &e.field, e.message));
                continue;
            }
        };
        if let Err(errors) = validate(&scheduler) {
            for e in errors.0 {
                problems.push(at(Some(version), &e.path, e.message));
            }
            continue;
        }
        versions.push(StoredVersion {
            is_active: version == upstream.active_version,
            scheduler,
            created_at,
        });
    }
    let mut stored = StoredScheduler {
        versions,
        operations: Vec::new(),
        rooms: Vec::new(),
        watch_only: true,
    };
    let mut terminated = 0;
    let rooms_read = redis.is_some();
    if let Some(redis) = redis {
        match upstream_rooms(redis, name, &stored.versions) {
            Ok(read) => {
                stored.rooms = read.rooms;
                terminated = read.terminated;
            }
            Err(mut found) => problems.append(&mut found),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // The engine must load what is written, as it will at the worker's
    // start: a scratch engine tries now.
    let mut engine = Engine::new(EngineConfig::default());
    let loaded = engine
        .restore(now, stored.clone())
        .map_err(|e| e.to_string())
        .and_then(|()| engine.check_invariants());
    if let Err(why) = loaded {
        return Err(vec![at(
            None,
            "scheduler",
            format!("maestro cannot load it: {why}"),
        )]);
    }
    Ok(Planned {
        stored,
        rooms_read,
        terminated,
    })
}

/// A scheduler's rooms in upstream's Redis, checked: upstream has no
/// operation open for it, and every room is readable and of one of
/// `versions`. Otherwise every problem found.
fn upstream_rooms(
    redis: &mut redis::Connection,
    name: &str,
    versions: &[StoredVersion],
) -> Result<source::UpstreamRooms, Vec<Problem>> {
    let problem = |room: Option<String>, field: &str, message: String| Problem {
        scheduler: name.to_string(),
        version: None,
        room,
        field: field.to_string(),
        message,
    };
    let mut problems = Vec::new();
    match source::open_operations(redis, name) {
        Ok(0) => {}
        Ok(n) => problems.push(problem(
            None,
            "operations",
            format!(
                "Maestro Next has {n} operation(s) pending or in progress for it: let its \
                 worker finish them (or cancel them) first"
            ),
        )),
        Err(e) => problems.push(problem(
            None,
            "operations",
            format!("reading Redis failed: {e}"),
        )),
    }
    let read = match source::rooms(redis, name) {
        Ok(read) => read,
        Err(e) => {
            problems.push(problem(None, "rooms", format!("reading Redis failed: {e}")));
            return Err(problems);
        }
    };
    for p in &read.problems {
        problems.push(problem(Some(p.room.clone()), &p.field, p.message.clone()));
    }
    let known: Vec<Version> = versions
        .iter()
        .filter_map(|v| Version::parse(&v.scheduler.spec.version))
        .collect();
    for room in read.rooms.iter().filter(|r| !known.contains(&r.version)) {
        problems.push(problem(
            Some(room.id.clone()),
            "version",
            format!("version {} is not one of the scheduler's", room.version),
        ));
    }
    if problems.is_empty() {
        Ok(read)
    } else {
        Err(problems)
    }
}

/// A scheduler in maestro's store, whole.
fn stored_scheduler<K: Kv>(store: &Store<K>, name: &str) -> Result<StoredScheduler> {
    store
        .load()
        .context("reading maestro's store")?
        .into_iter()
        .find(|s| s.name() == Some(name))
        .with_context(|| format!("scheduler {name} is not in maestro's store"))
}

// ----- switch, unswitch, status ---------------------------------------------

fn set_switched(args: &NameArgs, switched: bool, upstreams: Upstreams) -> Result<()> {
    let opened = Opened::open(&args.store, false)?;
    let result = on_store!(opened, |store| switch(
        store, &args.name, switched, upstreams
    ));
    opened.close();
    result
}

fn switch<K: Kv>(
    store: &Store<K>,
    name: &str,
    switched: bool,
    mut upstreams: Upstreams,
) -> Result<()> {
    let Some(record) = store.migration(name).context("reading maestro's store")? else {
        bail!(
            "scheduler {name} was not imported from Maestro Next (`maestro migrate status` lists those that were)"
        );
    };
    if record.switched == switched {
        println!(
            "{name} is already {}",
            if switched {
                "switched: maestro manages it"
            } else {
                "unswitched: Maestro Next manages it"
            }
        );
        return Ok(());
    }
    if !switched {
        let stored = stored_scheduler(store, name)?;
        let open: Vec<String> = stored
            .operations
            .iter()
            .filter(|o| {
                matches!(
                    o.status,
                    OperationStatus::Pending | OperationStatus::InProgress
                )
            })
            .map(|o| format!("{} ({})", o.id, o.definition.name()))
            .collect();
        if !open.is_empty() {
            bail!(
                "scheduler {name} has operations open: {}. Start maestro and let them finish \
                 (or cancel them), then stop it and run this again",
                open.join(", ")
            );
        }
        let mut written = handback::Written::default();
        if let Some(db) = upstreams.postgres.as_mut() {
            handback::versions(db, &stored, &mut written)
                .context("writing the scheduler's versions to Maestro Next's PostgreSQL")?;
            println!(
                "Maestro Next's PostgreSQL: active version {}; versions added: {}",
                written.active,
                if written.versions_added.is_empty() {
                    "none".to_string()
                } else {
                    written.versions_added.join(", ")
                }
            );
        }
        if let Some(redis) = upstreams.redis.as_mut() {
            handback::rooms(redis, &stored, &mut written)
                .context("writing the scheduler's rooms to Maestro Next's Redis")?;
            println!(
                "Maestro Next's Redis: {} room(s) written as they are now, {} gone removed",
                written.rooms_written, written.rooms_removed
            );
        }
    }
    let now = now(store);
    let mut writes = Vec::new();
    if switched && let Some(redis) = upstreams.redis.as_mut() {
        writes = refreshed_rooms(store, name, redis)?;
    }
    let record = Migration {
        switched,
        changed_at: now,
        ..record
    };
    writes.push(Write::Migration {
        scheduler: name.to_string(),
        record,
    });
    store
        .apply(now, &writes)
        .and_then(|()| store.flush())
        .context("writing to maestro's store")?;
    if switched {
        println!(
            "{name} is switched: maestro manages it from its worker's next start. Start maestro, \
             then point the rooms' API address at it."
        );
    } else {
        println!(
            "{name} is handed back: maestro only watches it from its worker's next start. Point \
             the rooms' API address back at Maestro Next and scale its worker up."
        );
    }
    Ok(())
}

/// The writes that replace a watch-only scheduler's rooms with upstream's
/// as they are now (`switch --redis`), or why not.
fn refreshed_rooms<K: Kv>(
    store: &Store<K>,
    name: &str,
    redis: &mut redis::Connection,
) -> Result<Vec<Write>> {
    let stored = stored_scheduler(store, name)?;
    let read = upstream_rooms(redis, name, &stored.versions).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "Maestro Next's rooms cannot be taken over; nothing was changed:\n{}",
            lines.join("\n")
        )
    })?;
    let fresh: std::collections::BTreeSet<&str> =
        read.rooms.iter().map(|r| r.id.as_str()).collect();
    let mut writes: Vec<Write> = stored
        .rooms
        .iter()
        .filter(|r| !fresh.contains(r.id.as_str()))
        .map(|r| Write::ForgetRoom {
            scheduler: name.to_string(),
            room: r.id.clone(),
        })
        .collect();
    println!(
        "{name}: {} room(s) read again from Maestro Next's Redis, {} no longer there",
        read.rooms.len(),
        writes.len()
    );
    writes.extend(
        read.rooms
            .into_iter()
            .map(|r| Write::Room(std::sync::Arc::new(r))),
    );
    Ok(writes)
}

fn status(args: &StoreArgs) -> Result<()> {
    let opened = Opened::open(args, false)?;
    let result = on_store!(opened, |store| print_status(store));
    opened.close();
    result
}

fn print_status<K: Kv>(store: &Store<K>) -> Result<()> {
    let stored = store.load().context("reading maestro's store")?;
    let mut any = false;
    for s in &stored {
        let Some(name) = s.name() else {
            continue;
        };
        let Some(m) = store.migration(name).context("reading maestro's store")? else {
            continue;
        };
        any = true;
        let busy = s
            .rooms
            .iter()
            .filter(|r| {
                matches!(
                    r.status,
                    RoomStatus::Occupied | RoomStatus::Active | RoomStatus::Allocated
                )
            })
            .count();
        println!(
            "{name}\t{}\t{} room(s), {busy} busy\timported from {} at {}",
            if m.switched { "switched" } else { "watch-only" },
            s.rooms.len(),
            m.source,
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + Duration::from_millis(m.imported_at.0)
            ),
        );
    }
    if !any {
        println!("no scheduler was imported from Maestro Next");
    }
    Ok(())
}
