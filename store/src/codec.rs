//! Keys and record encoding.
//!
//! Every record lives in one sled tree; the first byte of a key says which
//! logical tree it belongs to, parts are separated by a zero byte (names and
//! ids never contain one), and integers are big-endian so keys sort in
//! numeric order. A value is one format-version byte followed by JSON, so a
//! future format can be told apart and a corrupt value is reported with its
//! tree and key.
//!
//! The kinds, one record each per thing stored:
//!
//! | key | value |
//! |:--|:--|
//! | `S name` | the scheduler: which version is active |
//! | `V name version` | one version of the scheduler (major, minor, patch as big-endian `u64`s) |
//! | `O name id` | one operation, whole (its status and queue key included) |
//! | `R name room` | one room (soft state) |
//! | `X scheduler forwarder seq` | one event waiting for a forwarder |
//! | `M name` | a scheduler imported from Maestro Next: whether it is switched over |
//!
//! There are no index records: the engine holds the operations in memory
//! and answers every listing itself, and [`Kind::Operation`] records carry
//! the queue order (`queue_key`). Earlier builds also wrote one index record
//! per operation under [`LEGACY_INDEX_KINDS`]; opening a store deletes them.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;

/// The record format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `S name` → the active version.
    Scheduler,
    /// `V name version` → one version of the scheduler.
    Version,
    /// `O name id` → an operation.
    Operation,
    /// `R name room` → a room record (soft state).
    Room,
    /// `X seq` → an event waiting to be forwarded.
    Outbox,
    /// `T` → the latest engine time a batch was written at.
    Clock,
    /// `M name` → where a scheduler imported from Maestro Next stands.
    Migration,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Scheduler => b'S',
            Kind::Version => b'V',
            Kind::Operation => b'O',
            Kind::Room => b'R',
            Kind::Outbox => b'X',
            Kind::Clock => b'T',
            Kind::Migration => b'M',
        }
    }

    /// The logical tree's name, for error messages.
    pub fn tree(self) -> &'static str {
        match self {
            Kind::Scheduler => "schedulers",
            Kind::Version => "versions",
            Kind::Operation => "operations",
            Kind::Room => "rooms",
            Kind::Outbox => "outbox",
            Kind::Clock => "clock",
            Kind::Migration => "migrations",
        }
    }

    /// Every kind whose records belong to one scheduler (deleted with it;
    /// the outbox is not: forwarders still learn that its rooms are gone).
    pub const PER_SCHEDULER: [Kind; 5] = [
        Kind::Scheduler,
        Kind::Version,
        Kind::Operation,
        Kind::Room,
        Kind::Migration,
    ];

    /// Kinds with one record per scheduler, keyed by its name alone.
    pub fn is_per_name(self) -> bool {
        matches!(self, Kind::Scheduler | Kind::Migration)
    }
}

/// The first key bytes of the operation index records earlier builds wrote
/// next to every operation: `Q` (pending, by queue key), `A` (in progress),
/// `H` (final, by creation time) and `N` (final and did nothing), each
/// mapping to the operation's id. Nothing read them in production (the
/// engine lists operations from memory) and every operation write had to
/// read the old record to move its index entry, so they are no longer
/// written; `Store::with_kv` deletes any it finds. Reserved: no new kind may
/// use these bytes, or an old database's leftovers would be read as its
/// records, or purged with them.
pub const LEGACY_INDEX_KINDS: [u8; 4] = [b'Q', b'A', b'H', b'N'];

/// `kind 0 part 0 part ...`
pub fn key(kind: Kind, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    key.push(kind.byte());
    for part in parts {
        key.push(0);
        key.extend_from_slice(part);
    }
    key
}

/// The prefix of every key under `parts`, ending in a separator so that
/// `alpha` does not match `alphabet`.
pub fn prefix(kind: Kind, parts: &[&[u8]]) -> Vec<u8> {
    let mut p = key(kind, parts);
    p.push(0);
    p
}

/// A key as text for error messages: printable ASCII as is, the rest as `\xNN`.
pub fn printable(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key {
        match b {
            0 => out.push('/'),
            0x21..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut bytes = vec![FORMAT_VERSION];
    serde_json::to_writer(&mut bytes, value).map_err(|e| StoreError::Encode {
        what,
        cause: e.to_string(),
    })?;
    Ok(bytes)
}

pub fn decode<T: DeserializeOwned>(kind: Kind, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let Some((&format, body)) = bytes.split_first() else {
        return Err(StoreError::Corrupt {
            tree: kind.tree(),
            key: printable(key),
            cause: "empty value".to_string(),
        });
    };
    if format != FORMAT_VERSION {
        return Err(StoreError::UnsupportedFormat {
            tree: kind.tree(),
            key: printable(key),
            found: format,
            supported: FORMAT_VERSION,
        });
    }
    serde_json::from_slice(body).map_err(|e| StoreError::Corrupt {
        tree: kind.tree(),
        key: printable(key),
        cause: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_index_bytes_are_no_kind_of_today() {
        let mut kinds = Kind::PER_SCHEDULER.to_vec();
        kinds.push(Kind::Outbox);
        for kind in kinds {
            assert!(
                !LEGACY_INDEX_KINDS.contains(&kind.byte()),
                "{kind:?} reuses a legacy index byte: opening a store would purge its records"
            );
        }
    }

    #[test]
    fn prefixes_do_not_bleed_into_longer_names() {
        let alpha = prefix(Kind::Operation, &[b"alpha"]);
        assert!(key(Kind::Operation, &[b"alpha", b"x"]).starts_with(&alpha));
        assert!(!key(Kind::Operation, &[b"alphabet", b"x"]).starts_with(&alpha));
    }

    #[test]
    fn decode_names_tree_and_key() {
        let k = key(Kind::Room, &[b"arena", b"arena-x"]);
        let err = decode::<u32>(Kind::Room, &k, b"\x01{not json").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("tree rooms"), "{text}");
        assert!(text.contains("R/arena/arena-x"), "{text}");
        let err = decode::<u32>(Kind::Room, &k, b"\x09{}").unwrap_err();
        assert!(matches!(
            err,
            StoreError::UnsupportedFormat { found: 9, .. }
        ));
        assert!(decode::<u32>(Kind::Room, &k, b"").is_err());
        assert_eq!(
            decode::<u32>(Kind::Room, &k, &encode("n", &7u32).unwrap()).unwrap(),
            7
        );
    }
}
