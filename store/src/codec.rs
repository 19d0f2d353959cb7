//! Keys and record encoding.
//!
//! Every record lives in one sled tree; the first byte of a key says which
//! logical tree it belongs to, parts are separated by a zero byte (names and
//! ids never contain one), and integers are big-endian so keys sort in
//! numeric order. A value is one format-version byte followed by JSON, so a
//! future format can be told apart and a corrupt value is reported with its
//! tree and key.

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
    /// `Q name queue-key id` → id, for pending operations, in queue order.
    Queue,
    /// `A name id` → id, for operations in progress.
    Active,
    /// `H name created-at id` → id, for final operations shown in the history.
    History,
    /// `N name created-at id` → id, for final operations that did nothing.
    NoAction,
    /// `R name room` → a room record (soft state).
    Room,
    /// `X seq` → an event waiting to be forwarded.
    Outbox,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Scheduler => b'S',
            Kind::Version => b'V',
            Kind::Operation => b'O',
            Kind::Queue => b'Q',
            Kind::Active => b'A',
            Kind::History => b'H',
            Kind::NoAction => b'N',
            Kind::Room => b'R',
            Kind::Outbox => b'X',
        }
    }

    /// The logical tree's name, for error messages.
    pub fn tree(self) -> &'static str {
        match self {
            Kind::Scheduler => "schedulers",
            Kind::Version => "versions",
            Kind::Operation => "operations",
            Kind::Queue => "operations.pending",
            Kind::Active => "operations.active",
            Kind::History => "operations.history",
            Kind::NoAction => "operations.noaction",
            Kind::Room => "rooms",
            Kind::Outbox => "outbox",
        }
    }

    pub const PER_SCHEDULER: [Kind; 8] = [
        Kind::Scheduler,
        Kind::Version,
        Kind::Operation,
        Kind::Queue,
        Kind::Active,
        Kind::History,
        Kind::NoAction,
        Kind::Room,
    ];
}

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

/// A signed key as bytes that sort in numeric order.
pub fn signed(n: i64) -> [u8; 8] {
    ((n as u64) ^ (1 << 63)).to_be_bytes()
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
    fn signed_keys_sort_numerically() {
        let mut keys: Vec<[u8; 8]> = [-5i64, 3, -1, 0, i64::MIN, i64::MAX]
            .iter()
            .map(|n| signed(*n))
            .collect();
        keys.sort();
        let want: Vec<[u8; 8]> = [i64::MIN, -5, -1, 0, 3, i64::MAX]
            .iter()
            .map(|n| signed(*n))
            .collect();
        assert_eq!(keys, want);
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
