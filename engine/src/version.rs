//! Scheduler versions: `vMAJOR.MINOR.PATCH` and their numbering.
//!
//! Maestro assigns versions; users only choose which existing one is active.
//! Whether a change is major or minor is a property of schedulers, decided
//! in [`crate::scheduler::change`].

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Version {
    pub const FIRST: Version = Version {
        major: 1,
        minor: 0,
        patch: 0,
    };

    /// Parses `v1.2.3` (the leading `v` is optional).
    pub fn parse(text: &str) -> Option<Version> {
        let body = text.strip_prefix('v').unwrap_or(text);
        let mut parts = body.split('.');
        let mut next = || -> Option<u64> {
            let p = parts.next()?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let version = Version {
            major: next()?,
            minor: next()?,
            patch: next()?,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The version a new scheduler version gets.
///
/// New major = greatest existing major + 1 (`{v1.0.0, v1.1.0, v2.0.0}`, active
/// v1.x → v3.0.0). New minor = greatest minor within the active major + 1.
pub fn next_version<'a>(
    existing: impl IntoIterator<Item = &'a Version>,
    active: Version,
    major: bool,
) -> Version {
    let mut greatest_major = active.major;
    let mut greatest_minor = active.minor;
    for v in existing {
        greatest_major = greatest_major.max(v.major);
        if v.major == active.major {
            greatest_minor = greatest_minor.max(v.minor);
        }
    }
    if major {
        Version {
            major: greatest_major + 1,
            minor: 0,
            patch: 0,
        }
    } else {
        Version {
            major: active.major,
            minor: greatest_minor + 1,
            patch: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn parse_and_display_round_trip() {
        assert_eq!(v("v1.2.3").to_string(), "v1.2.3");
        assert_eq!(
            v("4.0.10"),
            Version {
                major: 4,
                minor: 0,
                patch: 10
            }
        );
        for bad in ["", "v1", "v1.2", "v1.2.3.4", "v1.x.0", "v-1.0.0", "va.b.c"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbering_follows_upstream() {
        // (existing versions, active, major?, expected)
        let table: &[(&[&str], &str, bool, &str)] = &[
            (&["v1.0.0"], "v1.0.0", true, "v2.0.0"),
            (&["v1.0.0"], "v1.0.0", false, "v1.1.0"),
            (&["v1.0.0", "v1.1.0", "v2.0.0"], "v1.1.0", true, "v3.0.0"),
            (&["v1.0.0", "v1.1.0", "v2.0.0"], "v1.0.0", false, "v1.2.0"),
            (
                &["v1.0.0", "v1.1.0", "v2.0.0", "v2.1.0"],
                "v2.0.0",
                false,
                "v2.2.0",
            ),
            (&["v1.0.0", "v2.0.0", "v1.5.0"], "v2.0.0", false, "v2.1.0"),
        ];
        for (existing, active, major, want) in table {
            let existing: Vec<Version> = existing.iter().map(|s| v(s)).collect();
            let got = next_version(&existing, v(active), *major);
            assert_eq!(got, v(want), "{existing:?} active {active} major {major}");
        }
    }
}
