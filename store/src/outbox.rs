//! The forwarding outbox: events waiting for a forwarder, durable until the
//! forwarder took them (at-least-once delivery).
//!
//! Keys are `X scheduler forwarder seq`: one *lane* per (scheduler,
//! forwarder), so an unreachable forwarder holds up only its own lane and a
//! lane is read in pages, oldest first, without loading the others. Sequence
//! numbers are global and only grow, across lanes and restarts. Deleting a
//! scheduler keeps its lanes: the forwarders still learn that its rooms are
//! gone.

use maestro_engine::scheduler::Forwarder;
use maestro_engine::{ForwardEvent, Time};
use serde::{Deserialize, Serialize};

use crate::codec::{Kind, decode, key, prefix, printable};
use crate::error::StoreError;
use crate::kv::Kv;
use crate::store::Store;

/// Where an event waits: one queue per scheduler and forwarder name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Lane {
    pub scheduler: String,
    pub forwarder: String,
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.scheduler, self.forwarder)
    }
}

/// An event for one forwarder. The forwarder's configuration is the one of
/// the scheduler version the event happened under, so a later version does
/// not redirect events already accepted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxRecord {
    pub event: ForwardEvent,
    pub forwarder: Forwarder,
    pub enqueued_at: Time,
}

impl OutboxRecord {
    pub fn lane(&self) -> Lane {
        Lane {
            scheduler: self.event.scheduler.clone(),
            forwarder: self.forwarder.name.clone(),
        }
    }
}

/// Reads a lane in pages of this many records when counting it.
const COUNT_PAGE: usize = 4096;

pub(crate) fn outbox_key(lane: &Lane, seq: u64) -> Vec<u8> {
    key(
        Kind::Outbox,
        &[
            lane.scheduler.as_bytes(),
            lane.forwarder.as_bytes(),
            &seq.to_be_bytes(),
        ],
    )
}

fn lane_prefix(lane: &Lane) -> Vec<u8> {
    prefix(
        Kind::Outbox,
        &[lane.scheduler.as_bytes(), lane.forwarder.as_bytes()],
    )
}

fn corrupt(k: &[u8], cause: &str) -> StoreError {
    StoreError::Corrupt {
        tree: Kind::Outbox.tree(),
        key: printable(k),
        cause: cause.to_string(),
    }
}

/// Splits `X 0 scheduler 0 forwarder 0 seq(8)` into its lane and sequence
/// number. Names never contain a zero byte; the sequence number may.
fn parse_key(k: &[u8]) -> Result<(Lane, u64), StoreError> {
    let bad = || corrupt(k, "not an outbox key (X scheduler forwarder seq)");
    if k.len() < 2 + 8 + 1 {
        return Err(bad());
    }
    let (head, seq) = k.split_at(k.len() - 8);
    let seq = u64::from_be_bytes(seq.try_into().map_err(|_| bad())?);
    let names = head
        .get(2..head.len() - 1)
        .filter(|_| head.last() == Some(&0))
        .ok_or_else(bad)?;
    let split = names.iter().position(|&b| b == 0).ok_or_else(bad)?;
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| bad());
    Ok((
        Lane {
            scheduler: text(&names[..split])?,
            forwarder: text(&names[split + 1..])?,
        },
        seq,
    ))
}

/// The greatest sequence number in the outbox (0 when empty): the maximum of
/// each lane's last key, since lanes sort by name, not by sequence.
pub(crate) fn last_seq<K: Kv>(kv: &K) -> Result<u64, StoreError> {
    let mut last = 0;
    for lane in lanes(kv)? {
        if let Some(k) = kv.last_key(&lane_prefix(&lane))? {
            last = last.max(parse_key(&k)?.1);
        }
    }
    Ok(last)
}

/// Every lane with at least one record, by skipping from one lane to the
/// next: one seek per lane, however long the lanes are.
fn lanes<K: Kv>(kv: &K) -> Result<Vec<Lane>, StoreError> {
    let all = prefix(Kind::Outbox, &[]);
    let mut start = all.clone();
    let mut out = Vec::new();
    while let Some((k, _)) = kv.scan_from(&all, &start, 1)?.into_iter().next() {
        let (lane, _) = parse_key(&k)?;
        // Just past every key of this lane: its prefix ends in the zero
        // separator, and no key of the lane can reach separator + 1.
        start = lane_prefix(&lane);
        if let Some(last) = start.last_mut() {
            *last = 1;
        }
        out.push(lane);
    }
    Ok(out)
}

impl<K: Kv> Store<K> {
    /// Every lane that holds undelivered events.
    pub fn outbox_lanes(&self) -> Result<Vec<Lane>, StoreError> {
        lanes(&self.kv)
    }

    /// The oldest events of `lane` with a sequence number above `after`, at
    /// most `limit`, oldest first.
    pub fn outbox_page(
        &self,
        lane: &Lane,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxRecord)>, StoreError> {
        let lane_keys = lane_prefix(lane);
        let start = outbox_key(lane, after.saturating_add(1));
        let mut out = Vec::new();
        for (k, bytes) in self.kv.scan_from(&lane_keys, &start, limit)? {
            let (_, seq) = parse_key(&k)?;
            out.push((seq, decode(Kind::Outbox, &k, &bytes)?));
        }
        Ok(out)
    }

    /// How many events wait in `lane` (read in pages, for start-up).
    pub fn outbox_len(&self, lane: &Lane) -> Result<u64, StoreError> {
        let lane_keys = lane_prefix(lane);
        let mut after = 0;
        let mut count = 0u64;
        loop {
            let page = self
                .kv
                .scan_from(&lane_keys, &outbox_key(lane, after + 1), COUNT_PAGE)?;
            let Some((last, _)) = page.last() else {
                return Ok(count);
            };
            after = parse_key(last)?.1;
            count += page.len() as u64;
            if page.len() < COUNT_PAGE {
                return Ok(count);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_even_when_the_sequence_holds_zero_bytes() {
        let lane = Lane {
            scheduler: "arena".into(),
            forwarder: "mm".into(),
        };
        for seq in [1, 256, 0x0100_0000_0000_0000, u64::MAX] {
            assert_eq!(
                parse_key(&outbox_key(&lane, seq)).unwrap(),
                (lane.clone(), seq)
            );
        }
        assert!(parse_key(b"X\0arena").is_err());
        assert!(parse_key(b"X\0arena-without-forwarder\0\0\0\0\0\0\0\0\x01").is_err());
    }
}
