//! What a change between two versions of a scheduler means for its rooms.
//!
//! A change is *major* when it changes what a room runs (spec, ports,
//! forwarders, annotations, labels): majors replace rooms by a rolling
//! update; minors (replicas, surge, autoscaling, match allocation) do not.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Scheduler, Spec};
use crate::version::Version;

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
    versions: &BTreeMap<Version, Arc<Scheduler>>,
    active: Version,
) -> BTreeMap<Version, bool> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures;

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
                s.port_range = Some(super::super::PortRange { start: 1, end: 9 })
            }),
            ("forwarders", |s| {
                s.forwarders.push(super::super::Forwarder {
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
