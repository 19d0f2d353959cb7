//! The worker's leader lease, as the leader logic (`maestro`'s `leader.rs`)
//! uses it: on PostgreSQL ([`crate::PostgresLease`]) in production, in
//! memory ([`crate::SimulatedLease`]) in the chaos harness.

use std::time::Duration;

use crate::error::StoreError;

/// Whether the lease was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// This process leads at `epoch`, until it fails to renew in time.
    Leader { epoch: i64 },
    /// Another process holds the lease for `expires_in` more, unless it renews.
    Held {
        holder: String,
        epoch: i64,
        expires_in: Duration,
    },
}

pub trait Lease: Send + Sync + 'static {
    /// Takes the lease if nobody holds it or its holder let it expire (a new
    /// epoch), or if this process already holds it.
    fn try_acquire(&self) -> Result<LeaseState, StoreError>;
    /// Extends the lease held at `epoch` by its duration from now. `false`:
    /// another process took it, and this one must stop writing.
    fn renew(&self, epoch: i64) -> Result<bool, StoreError>;
    /// Lets the lease held at `epoch` expire now (a graceful stop).
    fn release(&self, epoch: i64) -> Result<(), StoreError>;
    /// How long the lease lasts without a renewal.
    fn duration(&self) -> Duration;
    /// Whether a call blocks its thread on a round trip to the database, so
    /// that an async caller runs it on a blocking thread.
    fn blocks(&self) -> bool {
        true
    }
}
