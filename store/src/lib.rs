//! maestro's durable store: schedulers and every version, operations (one
//! record each, carrying its queue key), room records (soft state) and the
//! forwarding outbox.
//!
//! Three implementations share one logic over an ordered key-value layer:
//! sled 0.34 on disk ([`SledStore`]) for single-node deployments,
//! PostgreSQL ([`PostgresStore`]) for a store that outlives one machine, and
//! a B-tree in memory ([`MemoryStore`]) for the simulator and tests. A batch of
//! writes is atomic; [`Store::flush`] makes it durable, and the service
//! acknowledges a management request only after flushing its writes (the
//! service's driver applies one batch per turn and lets every reply held
//! meanwhile share the next flush).

mod codec;
mod disk;
mod error;
mod kv;
mod lease;
mod migration;
mod outbox;
mod postgres;
mod simdb;
mod store;

pub use self::lease::{Lease, LeaseState};
pub use self::postgres::{PostgresKv, PostgresLease};
pub use self::simdb::{DbClock, SimulatedConnection, SimulatedDatabase, SimulatedLease};
pub use codec::FORMAT_VERSION;
pub use disk::{INJECTED_FAULT, SimulatedDisk};
pub use error::StoreError;
pub use kv::{Kv, MemoryKv, SledKv, TREE};
pub use migration::Migration;
pub use outbox::{Lane, OutboxRecord};
pub use store::{MemoryStore, PostgresStore, SledStore, Store, Write};
