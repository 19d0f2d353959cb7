//! Scheduler versions: `vMAJOR.MINOR.PATCH`, the major/minor rule and numbering.
//!
//! Maestro assigns versions; users only choose which existing one is active.
//! A change is *major* when it changes what a room runs (spec, ports,
//! forwarders, annotations, labels); majors replace rooms by a rolling update,
//! minors (replicas, surge, autoscaling, match allocation) do not.

use std::fmt;

use crate::scheduler::{Scheduler, Spec};

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

/// Whether going from `old` to `new` is a major change (upstream `IsMajorVersion`).
///
/// Ignored: name, version, game, state, rollback version, timestamps, max
/// surge, replicas, autoscaling, match allocation, and container host ports
/// (which the port allocator fills per room).
pub fn is_major_change(old: &Scheduler, new: &Scheduler) -> bool {
    !(spec_without_volatile(&old.spec) == spec_without_volatile(&new.spec)
        && old.port_range == new.port_range
        && old.forwarders == new.forwarders
        && old.annotations == new.annotations
        && old.labels == new.labels)
}

/// Which stored versions a rolling update replaces: every version whose
/// difference from the active one is major. The active version and its
/// minor variants keep their rooms.
pub fn to_replace(
    versions: &std::collections::BTreeMap<Version, std::sync::Arc<Scheduler>>,
    active: Version,
) -> std::collections::BTreeMap<Version, bool> {
    let Some(current) = versions.get(&active) else {
        return versions.keys().map(|v| (*v, false)).collect();
    };
    versions
        .iter()
        .map(|(v, s)| (*v, *v != active && is_major_change(s, current)))
        .collect()
}

fn spec_without_volatile(spec: &Spec) -> Spec {
    let mut spec = spec.clone();
    spec.version.clear();
    for container in &mut spec.containers {
        for port in &mut container.ports {
            port.host_port = 0;
        }
    }
    spec
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
    use crate::scheduler::fixtures;

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

    #[test]
    fn major_and_minor_changes() {
        let base = fixtures::scheduler("s");
        type Mutation = fn(&mut Scheduler);
        let minor: &[(&str, Mutation)] = &[
            ("replicas", |s| s.rooms_replicas = 10),
            ("surge", |s| s.max_surge = "3".into()),
            ("autoscaling", |s| {
                s.autoscaling = Some(fixtures::room_occupancy(1, 10, 0.5))
            }),
            ("match allocation", |s| s.match_allocation.max_matches = 3),
            ("version", |s| s.spec.version = "v9.0.0".into()),
            ("host port", |s| {
                s.spec.containers[0].ports[0].host_port = 20001
            }),
            ("game", |s| s.game = "other".into()),
        ];
        let major: &[(&str, Mutation)] = &[
            ("image", |s| s.spec.containers[0].image = "x:2".into()),
            ("grace", |s| s.spec.termination_grace_period_secs = 5),
            ("restart policy", |s| {
                s.spec.restart_policy = "Always".into()
            }),
            ("labels", |s| {
                s.labels.insert("team".into(), "a".into());
            }),
            ("annotations", |s| {
                s.annotations.insert("a".into(), "b".into());
            }),
            ("port range", |s| {
                s.port_range = Some(crate::scheduler::PortRange { start: 1, end: 9 })
            }),
            ("forwarders", |s| {
                s.forwarders.push(crate::scheduler::Forwarder {
                    name: "mm".into(),
                    enabled: true,
                    forward_type: "gRPC".into(),
                    address: "mm:80".into(),
                    options: None,
                })
            }),
        ];
        for (what, mutate) in minor {
            let mut new = base.clone();
            mutate(&mut new);
            assert!(!is_major_change(&base, &new), "{what} must be minor");
        }
        for (what, mutate) in major {
            let mut new = base.clone();
            mutate(&mut new);
            assert!(is_major_change(&base, &new), "{what} must be major");
        }
    }
}
