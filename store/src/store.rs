//! The store's logic over any [`Kv`]: records and atomic batches.
//!
//! The store keeps what the engine needs to restart and nothing more: the
//! engine holds every operation in memory and answers every listing itself,
//! so an operation is one record (`O scheduler id`), written whole on every
//! change and read back only by [`Store::load`]. The queue order needs no
//! record of its own: each operation carries its `queue_key`, and
//! `Engine::restore` sorts by it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use maestro_engine::room::Room;
use maestro_engine::scheduler::Scheduler;
use maestro_engine::version::Version;
use maestro_engine::{Effect, Operation, StoredScheduler, StoredVersion, Time};
use serde::{Deserialize, Serialize};

use crate::codec::{Kind, LEGACY_INDEX_KINDS, decode, encode, key, prefix};
use crate::error::StoreError;
use crate::kv::{BatchEntry, Kv, MemoryKv, SledKv};
use crate::migration::Migration;
use crate::outbox::{Lane, OutboxRecord, outbox_key};
use crate::postgres::PostgresKv;

/// One write of a batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// A version of a scheduler; `active` makes it the active one.
    SchedulerVersion {
        scheduler: Arc<Scheduler>,
        active: bool,
    },
    /// Everything about a scheduler: versions, operations, rooms.
    DeleteScheduler {
        name: String,
    },
    Operation(Box<Operation>),
    DeleteOperations {
        scheduler: String,
        ids: Vec<String>,
    },
    Room(Arc<Room>),
    ForgetRoom {
        scheduler: String,
        room: String,
    },
    /// Queue an event for one forwarder, in the record's lane.
    OutboxPush(Box<OutboxRecord>),
    /// The event with this sequence number was delivered (or given up).
    OutboxAck {
        lane: Lane,
        seq: u64,
    },
    /// A scheduler imported whole (`maestro migrate`): every version with
    /// its own creation time, its rooms, and a migration record saying
    /// whether it is switched over (`!watch_only`). Fails the batch with
    /// [`StoreError::Exists`] if the store holds a scheduler of that name,
    /// so an import never mixes with what is there.
    Import(Box<StoredScheduler>),
    /// Where an imported scheduler stands (`migrate switch` / `unswitch`).
    Migration {
        scheduler: String,
        record: Migration,
    },
}

impl Write {
    /// The store's part of an engine effect; `None` for effects that are
    /// not the store's (runtime calls).
    pub fn from_effect(effect: &Effect) -> Option<Write> {
        match effect {
            Effect::PersistScheduler { scheduler, active } => Some(Write::SchedulerVersion {
                scheduler: Arc::clone(scheduler),
                active: *active,
            }),
            Effect::DeleteSchedulerData { scheduler } => Some(Write::DeleteScheduler {
                name: scheduler.clone(),
            }),
            Effect::PersistOperation(op) => Some(Write::Operation(op.clone())),
            Effect::DeleteOperations { scheduler, ids } => Some(Write::DeleteOperations {
                scheduler: scheduler.clone(),
                ids: ids.clone(),
            }),
            Effect::SaveRoom(room) => Some(Write::Room(room.clone())),
            Effect::ForgetRoom { scheduler, room } => Some(Write::ForgetRoom {
                scheduler: scheduler.clone(),
                room: room.clone(),
            }),
            // Which forwarders, and whether durably, is the shell's choice
            // (ping resyncs are coalesced in memory).
            Effect::Forward { .. }
            | Effect::CreateSchedulerResources { .. }
            | Effect::DeleteSchedulerResources { .. }
            | Effect::CreateRoom { .. }
            | Effect::DeleteRoom { .. }
            | Effect::SetDisruptionBudget { .. } => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SchedulerMeta {
    active: Version,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct VersionRecord {
    scheduler: Scheduler,
    created_at: Time,
}

/// Loads a large scan in one go: bounded by what the store holds.
const SCAN_ALL: usize = usize::MAX;

/// The store: every record of every scheduler, in one key space.
pub struct Store<K: Kv> {
    pub(crate) kv: K,
    /// Serialises batches: building one reads the records it replaces.
    write_lock: Mutex<()>,
    next_outbox_seq: AtomicU64,
    /// The latest time a batch was applied at (the `T` record), in Unix
    /// milliseconds. See [`Store::clock_mark`].
    clock_mark: AtomicU64,
}

pub type MemoryStore = Store<MemoryKv>;
pub type SledStore = Store<SledKv>;
pub type PostgresStore = Store<PostgresKv>;

impl MemoryStore {
    pub fn in_memory() -> MemoryStore {
        Store::with_kv(MemoryKv::default()).expect("an empty memory store opens")
    }
}

impl SledStore {
    /// Opens (or creates) the database in `path`.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        Store::with_kv(SledKv::open(path)?)
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (see [`PostgresKv::connect`]).
    pub fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        Store::with_kv(PostgresKv::connect(url)?)
    }

    /// Connects for the worker that leads at `epoch`: every flush is fenced
    /// by the leader lease (see [`PostgresKv::connect_fenced`]).
    pub fn connect_fenced(url: &str, epoch: i64) -> Result<PostgresStore, StoreError> {
        Store::with_kv(PostgresKv::connect_fenced(url, epoch)?)
    }
}

/// A batch under construction: later writes see earlier ones.
struct Batch<'a, K: Kv> {
    kv: &'a K,
    entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<K: Kv> Batch<'_, K> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.entries.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.kv.get(key),
        }
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.entries.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.entries.insert(key, None);
    }

    /// Deletes every key under `prefix`, committed or written in this batch.
    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StoreError> {
        for (k, _) in self.kv.scan_prefix(prefix, SCAN_ALL)? {
            self.entries.insert(k, None);
        }
        let pending: Vec<Vec<u8>> = self
            .entries
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in pending {
            self.entries.insert(k, None);
        }
        Ok(())
    }

    fn into_entries(self) -> Vec<BatchEntry> {
        self.entries.into_iter().collect()
    }
}

fn version_key(name: &str, v: Version) -> Vec<u8> {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&v.major.to_be_bytes());
    bytes[8..16].copy_from_slice(&v.minor.to_be_bytes());
    bytes[16..].copy_from_slice(&v.patch.to_be_bytes());
    key(Kind::Version, &[name.as_bytes(), &bytes])
}

fn parse_version(name: &str, text: &str) -> Result<Version, StoreError> {
    Version::parse(text).ok_or_else(|| StoreError::Corrupt {
        tree: Kind::Version.tree(),
        key: format!("V/{name}/{text}"),
        cause: "the scheduler's version is not vMAJOR.MINOR.PATCH".to_string(),
    })
}

fn stage_import<K: Kv>(
    batch: &mut Batch<'_, K>,
    now: Time,
    stored: &StoredScheduler,
) -> Result<(), StoreError> {
    let active: Vec<&StoredVersion> = stored.versions.iter().filter(|v| v.is_active).collect();
    let [active] = active[..] else {
        return Err(StoreError::Encode {
            what: "import",
            cause: format!("{} active versions, expected one", active.len()),
        });
    };
    let name = &active.scheduler.name;
    let skey = key(Kind::Scheduler, &[name.as_bytes()]);
    if batch.get(&skey)?.is_some() {
        return Err(StoreError::Exists(name.clone()));
    }
    for v in &stored.versions {
        if &v.scheduler.name != name {
            return Err(StoreError::Encode {
                what: "import",
                cause: format!("version of {} among {name}'s", v.scheduler.name),
            });
        }
        let version = parse_version(name, &v.scheduler.spec.version)?;
        let record = VersionRecord {
            scheduler: v.scheduler.clone(),
            created_at: v.created_at,
        };
        batch.put(version_key(name, version), encode("version", &record)?);
    }
    let meta = SchedulerMeta {
        active: parse_version(name, &active.scheduler.spec.version)?,
    };
    batch.put(skey, encode("scheduler", &meta)?);
    for room in &stored.rooms {
        let rkey = key(Kind::Room, &[name.as_bytes(), room.id.as_bytes()]);
        batch.put(rkey, encode("room", room)?);
    }
    let record = Migration {
        source: "maestro-next".to_string(),
        imported_at: now,
        switched: !stored.watch_only,
        changed_at: now,
    };
    batch.put(
        key(Kind::Migration, &[name.as_bytes()]),
        encode("migration", &record)?,
    );
    Ok(())
}

impl<K: Kv> Store<K> {
    /// A store over `kv`, which may hold a database written by an earlier
    /// build: its legacy index records are deleted first (see
    /// [`purge_legacy_indexes`]).
    pub fn with_kv(kv: K) -> Result<Store<K>, StoreError> {
        purge_legacy_indexes(&kv)?;
        let next_outbox_seq = crate::outbox::last_seq(&kv)? + 1;
        let clock_key = key(Kind::Clock, &[]);
        let clock_mark = match kv.get(&clock_key)? {
            Some(bytes) => decode::<u64>(Kind::Clock, &clock_key, &bytes)?,
            None => 0,
        };
        Ok(Store {
            kv,
            write_lock: Mutex::new(()),
            next_outbox_seq: AtomicU64::new(next_outbox_seq),
            clock_mark: AtomicU64::new(clock_mark),
        })
    }

    /// The latest engine time anything was written at. Every stored time
    /// (a room's allocation, a scheduler's last downscale, an operation's
    /// lease) is at most this, so a process that starts its clock no
    /// earlier than it reads none of them in its future, whatever the wall
    /// clock did meanwhile: stepped back, or another node's, behind.
    pub fn clock_mark(&self) -> Time {
        Time(self.clock_mark.load(Ordering::Relaxed))
    }

    /// Applies the writes atomically, in order. Not yet durable: call
    /// [`Store::flush`] before acknowledging anything that depends on them.
    pub fn apply(&self, now: Time, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = Batch {
            kv: &self.kv,
            entries: BTreeMap::new(),
        };
        for write in writes {
            self.stage(&mut batch, now, write)?;
        }
        let advanced = now.0 > self.clock_mark.load(Ordering::Relaxed);
        if advanced {
            batch.put(key(Kind::Clock, &[]), encode("clock", &now.0)?);
        }
        self.kv.apply(batch.into_entries())?;
        if advanced {
            self.clock_mark.fetch_max(now.0, Ordering::Relaxed);
        }
        Ok(())
    }

    fn stage(&self, batch: &mut Batch<'_, K>, now: Time, write: &Write) -> Result<(), StoreError> {
        match write {
            Write::SchedulerVersion { scheduler, active } => {
                let name = &scheduler.name;
                let version = parse_version(name, &scheduler.spec.version)?;
                let vkey = version_key(name, version);
                let created_at = match batch.get(&vkey)? {
                    Some(bytes) => {
                        decode::<VersionRecord>(Kind::Version, &vkey, &bytes)?.created_at
                    }
                    None => now,
                };
                let record = VersionRecord {
                    scheduler: (**scheduler).clone(),
                    created_at,
                };
                batch.put(vkey, encode("version", &record)?);
                if *active {
                    let meta = SchedulerMeta { active: version };
                    batch.put(
                        key(Kind::Scheduler, &[name.as_bytes()]),
                        encode("scheduler", &meta)?,
                    );
                }
            }
            Write::DeleteScheduler { name } => {
                for kind in Kind::PER_SCHEDULER {
                    if kind.is_per_name() {
                        batch.delete(key(kind, &[name.as_bytes()]));
                    } else {
                        batch.delete_prefix(&prefix(kind, &[name.as_bytes()]))?;
                    }
                }
            }
            // One record per operation, replaced whole: no read of the
            // previous version, nothing else to keep in step with it.
            Write::Operation(op) => {
                let okey = key(
                    Kind::Operation,
                    &[op.scheduler.as_bytes(), op.id.as_bytes()],
                );
                batch.put(okey, encode("operation", op)?);
            }
            // Deleting an id that is not stored is a no-op.
            Write::DeleteOperations { scheduler, ids } => {
                for id in ids {
                    batch.delete(key(Kind::Operation, &[scheduler.as_bytes(), id.as_bytes()]));
                }
            }
            Write::Room(room) => {
                let rkey = key(Kind::Room, &[room.scheduler.as_bytes(), room.id.as_bytes()]);
                batch.put(rkey, encode("room", room)?);
            }
            Write::ForgetRoom { scheduler, room } => {
                batch.delete(key(Kind::Room, &[scheduler.as_bytes(), room.as_bytes()]));
            }
            Write::OutboxPush(record) => {
                let seq = self.next_outbox_seq.fetch_add(1, Ordering::Relaxed);
                batch.put(outbox_key(&record.lane(), seq), encode("outbox", record)?);
            }
            Write::OutboxAck { lane, seq } => batch.delete(outbox_key(lane, *seq)),
            Write::Import(stored) => stage_import(batch, now, stored)?,
            Write::Migration { scheduler, record } => batch.put(
                key(Kind::Migration, &[scheduler.as_bytes()]),
                encode("migration", record)?,
            ),
        }
        Ok(())
    }

    /// Makes every applied write durable (fsync).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.kv.flush()
    }

    /// Whether [`Store::flush`] blocks its thread (see [`Kv::flush_blocks`]).
    pub fn flush_blocks(&self) -> bool {
        self.kv.flush_blocks()
    }

    /// Every scheduler with its versions, operations and rooms, for
    /// `Engine::restore` at start-up. Operations come in key (id) order,
    /// not queue order: `restore` orders the queue by each operation's
    /// `queue_key`. Only the kinds read here are scanned, so a record of
    /// any other kind never reaches the engine.
    pub fn load(&self) -> Result<Vec<StoredScheduler>, StoreError> {
        let mut schedulers = Vec::new();
        for (skey, bytes) in self
            .kv
            .scan_prefix(&prefix(Kind::Scheduler, &[]), SCAN_ALL)?
        {
            let meta: SchedulerMeta = decode(Kind::Scheduler, &skey, &bytes)?;
            let name = String::from_utf8_lossy(&skey[2..]).into_owned();
            let mut stored = StoredScheduler::default();
            for (vkey, bytes) in self
                .kv
                .scan_prefix(&prefix(Kind::Version, &[name.as_bytes()]), SCAN_ALL)?
            {
                let record: VersionRecord = decode(Kind::Version, &vkey, &bytes)?;
                let version = parse_version(&name, &record.scheduler.spec.version)?;
                stored.versions.push(StoredVersion {
                    scheduler: record.scheduler,
                    created_at: record.created_at,
                    is_active: version == meta.active,
                });
            }
            if !stored.versions.iter().any(|v| v.is_active) {
                return Err(StoreError::Corrupt {
                    tree: Kind::Scheduler.tree(),
                    key: format!("S/{name}"),
                    cause: format!("active version {} is not stored", meta.active),
                });
            }
            for (okey, bytes) in self
                .kv
                .scan_prefix(&prefix(Kind::Operation, &[name.as_bytes()]), SCAN_ALL)?
            {
                stored
                    .operations
                    .push(decode(Kind::Operation, &okey, &bytes)?);
            }
            for (rkey, bytes) in self
                .kv
                .scan_prefix(&prefix(Kind::Room, &[name.as_bytes()]), SCAN_ALL)?
            {
                stored.rooms.push(decode(Kind::Room, &rkey, &bytes)?);
            }
            stored.watch_only = self.migration(&name)?.is_some_and(|m| !m.switched);
            schedulers.push(stored);
        }
        Ok(schedulers)
    }

    /// The migration record of a scheduler imported from Maestro Next.
    pub fn migration(&self, scheduler: &str) -> Result<Option<Migration>, StoreError> {
        let mkey = key(Kind::Migration, &[scheduler.as_bytes()]);
        match self.kv.get(&mkey)? {
            Some(bytes) => Ok(Some(decode(Kind::Migration, &mkey, &bytes)?)),
            None => Ok(None),
        }
    }

    pub fn operation(&self, scheduler: &str, id: &str) -> Result<Option<Operation>, StoreError> {
        let okey = key(Kind::Operation, &[scheduler.as_bytes(), id.as_bytes()]);
        match self.kv.get(&okey)? {
            Some(bytes) => Ok(Some(decode(Kind::Operation, &okey, &bytes)?)),
            None => Ok(None),
        }
    }

    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.kv.size_on_disk()
    }
}

/// Deletes the operation index records earlier builds wrote (see
/// [`LEGACY_INDEX_KINDS`]), in one batch, so that an upgraded database
/// holds only records something reads and deleting a scheduler leaves
/// nothing of it behind. Not flushed: if the deletion is lost in a crash,
/// the next open does it again. On a database without such records this is
/// one empty scan per kind.
fn purge_legacy_indexes<K: Kv>(kv: &K) -> Result<(), StoreError> {
    let mut batch: Vec<BatchEntry> = Vec::new();
    for kind in LEGACY_INDEX_KINDS {
        for (k, _) in kv.scan_prefix(&[kind, 0], SCAN_ALL)? {
            batch.push((k, None));
        }
    }
    if batch.is_empty() {
        return Ok(());
    }
    kv.apply(batch)
}
