//! Who may call the APIs. Upstream has no authentication; maestro adds two
//! optional schemes, both as `Authorization: Bearer <token>`:
//!
//! - management routes (and allocate, which a matchmaker calls) accept any
//!   of the configured management tokens;
//! - a room's routes accept only that room's token, the lowercase hex
//!   HMAC-SHA256 of `"<scheduler>/<room>"` under the rooms secret, so a
//!   room can act for itself and nobody else. The service gives each pod
//!   its token in `MAESTRO_ROOM_TOKEN`.

use std::fmt;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::error::ApiError;
use crate::rpc::Auth;

type HmacSha256 = Hmac<Sha256>;

/// What the routers need besides the backend.
#[derive(Clone)]
pub struct ApiConfig {
    /// Bearer tokens accepted by the management API and by allocate. Empty
    /// means no authentication (the service warns about it).
    pub management_tokens: Vec<String>,
    /// When set, every room route requires that room's token (see [`room_token`]).
    pub rooms_secret: Option<Vec<u8>>,
    /// Largest accepted request body; a larger one is refused with 400.
    pub body_limit_bytes: usize,
}

/// Default request body limit: 1 MiB, far above any real scheduler.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            management_tokens: Vec::new(),
            rooms_secret: None,
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
        }
    }
}

/// Never prints the secrets.
impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field(
                "management_tokens",
                &format_args!("[{} redacted]", self.management_tokens.len()),
            )
            .field(
                "rooms_secret",
                &self.rooms_secret.as_ref().map(|_| "redacted"),
            )
            .field("body_limit_bytes", &self.body_limit_bytes)
            .finish()
    }
}

/// The token a room presents: lowercase hex of
/// HMAC-SHA256(`secret`, `"<scheduler>/<room>"`).
pub fn room_token(secret: &[u8], scheduler: &str, room: &str) -> String {
    match room_mac(secret, scheduler, room) {
        Some(mac) => hex(&mac.finalize().into_bytes()),
        // HMAC takes keys of any length; this cannot happen, and an empty
        // token is never accepted.
        None => String::new(),
    }
}

fn room_mac(secret: &[u8], scheduler: &str, room: &str) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    mac.update(scheduler.as_bytes());
    mac.update(b"/");
    mac.update(room.as_bytes());
    Some(mac)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The bearer token of the request, if it has a well-formed one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Admits a call to a route that takes `auth`, the one check both the HTTP
/// and the gRPC adapters make (`crate::rpc`). `path_fields` are the route's
/// path fields by proto name: a room's token is checked against the
/// `scheduler_name` and `room_name` it names.
pub(crate) fn check(
    config: &ApiConfig,
    auth: Auth,
    headers: &HeaderMap,
    path_fields: &[(&str, &str)],
) -> Result<(), ApiError> {
    match auth {
        Auth::Management => check_management(config, headers),
        Auth::Room => {
            let field = |name: &str| {
                path_fields
                    .iter()
                    .find(|(field, _)| *field == name)
                    .map_or("", |(_, value)| *value)
            };
            check_room(config, headers, field("scheduler_name"), field("room_name"))
        }
    }
}

/// Admits the request when management auth is off or it carries one of the tokens.
pub(crate) fn check_management(config: &ApiConfig, headers: &HeaderMap) -> Result<(), ApiError> {
    if config.management_tokens.is_empty() {
        return Ok(());
    }
    let Some(token) = bearer(headers) else {
        return Err(ApiError::unauthenticated("missing bearer token"));
    };
    // Compare against every token, each in constant time, so the time taken
    // does not tell which one (or how much of one) matched. Only a token's
    // length may show, as it would in any comparison.
    let matched = config
        .management_tokens
        .iter()
        .fold(Choice::from(0), |any, t| {
            any | t.as_bytes().ct_eq(token.as_bytes())
        });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(ApiError::unauthenticated("invalid bearer token"))
    }
}

/// Admits the request when rooms auth is off or it carries this room's token.
fn check_room(
    config: &ApiConfig,
    headers: &HeaderMap,
    scheduler: &str,
    room: &str,
) -> Result<(), ApiError> {
    let Some(secret) = &config.rooms_secret else {
        return Ok(());
    };
    let Some(token) = bearer(headers) else {
        return Err(ApiError::unauthenticated("missing room token"));
    };
    let valid = unhex(token)
        .zip(room_mac(secret, scheduler, room))
        // `verify_slice` compares in constant time.
        .is_some_and(|(tag, mac)| mac.verify_slice(&tag).is_ok());
    if valid {
        Ok(())
    } else {
        Err(ApiError::unauthenticated(format!(
            "invalid room token for {scheduler}/{room}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn room_token_is_hmac_sha256_hex() {
        // Python: hmac.new(b"secret", b"my-scheduler/my-room-1", hashlib.sha256).hexdigest()
        assert_eq!(
            room_token(b"secret", "my-scheduler", "my-room-1"),
            "ddd11994f07bd41c5b6220df890f0b9d6ff5106f29a6977629cd1f252e2c7978"
        );
    }

    #[test]
    fn room_tokens_bind_scheduler_and_room() {
        let config = ApiConfig {
            rooms_secret: Some(b"secret".to_vec()),
            ..ApiConfig::default()
        };
        let token = room_token(b"secret", "s", "room-a");
        let ok = headers(&format!("Bearer {token}"));
        assert!(check_room(&config, &ok, "s", "room-a").is_ok());
        assert!(check_room(&config, &ok, "s", "room-b").is_err());
        assert!(check_room(&config, &ok, "t", "room-a").is_err());
        let upper = headers(&format!("bearer {}", token.to_uppercase()));
        assert!(check_room(&config, &upper, "s", "room-a").is_ok());
        for bad in ["Bearer", "Bearer zz", "Basic abc", "Bearer 00"] {
            assert!(
                check_room(&config, &headers(bad), "s", "room-a").is_err(),
                "{bad}"
            );
        }
        assert!(check_room(&ApiConfig::default(), &HeaderMap::new(), "s", "r").is_ok());
    }

    #[test]
    fn management_tokens() {
        let config = ApiConfig {
            management_tokens: vec!["alpha-token".into(), "beta-token".into()],
            ..ApiConfig::default()
        };
        // Any of the tokens, wherever it is in the list.
        assert!(check_management(&config, &headers("Bearer alpha-token")).is_ok());
        assert!(check_management(&config, &headers("Bearer beta-token")).is_ok());
        // Only whole, exact tokens: not a prefix, an extension, or one byte off.
        for bad in [
            "gamma-token",
            "beta-toke",
            "beta-tokenn",
            "beta-tokeN",
            "alpha",
        ] {
            assert!(
                check_management(&config, &headers(&format!("Bearer {bad}"))).is_err(),
                "{bad}"
            );
        }
        assert!(check_management(&config, &HeaderMap::new()).is_err());
        assert!(check_management(&ApiConfig::default(), &HeaderMap::new()).is_ok());
        assert!(!format!("{config:?}").contains("alpha"));
    }
}
