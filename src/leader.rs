//! Leadership of the worker on PostgreSQL: several workers share one
//! database, one leads, the others wait as standbys.
//!
//! A worker takes the leader lease (`maestro_store::PostgresLease`, a row
//! with an epoch, renewed by the leader, timed by the database's clock)
//! before it opens the store, and opens it fenced at its epoch: every flush
//! checks the epoch in its transaction. So a deposed leader (paused past
//! its lease, cut off from the database) can never write once a successor
//! took over; it notices at its next renewal or flush and stops, and its
//! process exits non-zero.
//!
//! The leader renews every third of the lease's duration. A renewal that
//! finds another epoch means it was deposed; renewals that keep failing
//! (the database is unreachable) until the lease has run out mean it may
//! have been: either way leadership ends and the worker stops.

use std::sync::Arc;
use std::time::Duration;

use maestro_store::{Lease, LeaseState, StoreError};
use tokio::sync::watch;
use tokio::time::Instant;

/// Why a leader stopped leading.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeadershipEnded {
    #[error("another worker took the leader lease from epoch {epoch}")]
    Deposed { epoch: i64 },
    #[error(
        "the leader lease of epoch {epoch} could not be renewed for {waited:?} (last error: {error}); another worker may lead now"
    )]
    Expired {
        epoch: i64,
        waited: Duration,
        error: String,
    },
}

/// A name for this process in the lease row: the host, the process id and
/// a random part, so that a restarted process is never taken for its
/// predecessor.
pub fn holder_name() -> String {
    use std::hash::BuildHasher;
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string());
    let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    format!("{host}/{}/{random:016x}", std::process::id())
}

/// Runs a lease call, on a blocking thread when it blocks (PostgreSQL's
/// client waits on its connection's thread).
async fn blocking<T: Send + 'static>(
    lease: &Arc<dyn Lease>,
    call: impl FnOnce(&dyn Lease) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    if !lease.blocks() {
        return call(lease.as_ref());
    }
    let lease = Arc::clone(lease);
    match tokio::task::spawn_blocking(move || call(lease.as_ref())).await {
        Ok(result) => result,
        Err(e) => Err(StoreError::Postgres {
            operation: "call the lease",
            cause: e.to_string(),
        }),
    }
}

/// Waits until this process holds the lease, and returns its epoch. Errors
/// reaching the database are logged and retried: a standby outlives an
/// outage of the database. (The caller races it against a stop signal.)
pub async fn acquire(lease: &Arc<dyn Lease>) -> i64 {
    let poll = lease.duration() / 3;
    let mut last_seen: Option<(String, i64)> = None;
    loop {
        let wait = match blocking(lease, |l| l.try_acquire()).await {
            Ok(LeaseState::Leader { epoch }) => {
                tracing::info!(epoch, "took the leader lease: this worker leads");
                return epoch;
            }
            Ok(LeaseState::Held {
                holder,
                epoch,
                expires_in,
            }) => {
                if last_seen.as_ref() != Some(&(holder.clone(), epoch)) {
                    tracing::info!(
                        leader = %holder,
                        epoch,
                        "standby: another worker leads; waiting for its lease to lapse"
                    );
                    last_seen = Some((holder, epoch));
                }
                // Just after it would lapse, or sooner to notice a release.
                poll.min(expires_in + Duration::from_millis(50))
            }
            Err(e) => {
                tracing::warn!(error = %e, "standby: cannot read the leader lease; retrying");
                poll
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Renews the lease held at `epoch` until `stop` is set (`Ok`) or
/// leadership ends (`Err`, saying why).
///
/// The database times the lease from each renewal's statement, which runs
/// after the call started: so by this process's clock the lease lasts at
/// least `duration` from the start of the last successful renewal. The
/// leader gives up at two thirds of that, leaving a third of the lease for
/// the clocks' drift and its own stop, and each call is cut off after a
/// third (the statement's own limit) so a silent connection cannot hold it.
pub async fn keep(
    lease: Arc<dyn Lease>,
    epoch: i64,
    mut stop: watch::Receiver<bool>,
) -> Result<(), LeadershipEnded> {
    let duration = lease.duration();
    let give_up = duration * 2 / 3;
    let mut tick = tokio::time::interval(duration / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut renewed_from = Instant::now();
    loop {
        if !crate::clock::tick_or_stop(&mut tick, &mut stop).await {
            return Ok(());
        }
        let started = Instant::now();
        let renewal =
            tokio::time::timeout(duration / 3, blocking(&lease, move |l| l.renew(epoch))).await;
        let error = match renewal {
            Ok(Ok(true)) => {
                renewed_from = started;
                continue;
            }
            Ok(Ok(false)) => return Err(LeadershipEnded::Deposed { epoch }),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", duration / 3),
        };
        let waited = renewed_from.elapsed();
        tracing::warn!(%error, epoch, ?waited, "cannot renew the leader lease");
        if waited >= give_up {
            return Err(LeadershipEnded::Expired {
                epoch,
                waited,
                error,
            });
        }
    }
}

/// Lets the lease lapse now, after a graceful stop, so a standby takes
/// over at once.
pub async fn release(lease: &Arc<dyn Lease>, epoch: i64) {
    match blocking(lease, move |l| l.release(epoch)).await {
        Ok(()) => tracing::info!(epoch, "released the leader lease"),
        Err(e) => {
            tracing::warn!(error = %e, epoch, "cannot release the leader lease; a standby takes over once it lapses")
        }
    }
}
