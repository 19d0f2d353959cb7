//! Health control: how many rooms the fleet needs, and the one action that
//! moves it there (upstream's health_controller "desired" and "ensure" steps).
//!
//! Pure: the engine calls [`decide`] after every input that changes the
//! fleet, so a scale decision happens in the same step as its cause.

use crate::autoscale::{self, AutoscaleError};
use crate::room::{Fleet, RemovalReason};
use crate::scheduler::Scheduler;
use crate::time::{Millis, Time};

/// Per-decision caps (upstream's add and remove limits).
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    pub add: u64,
    pub remove: u64,
}

/// The one action a reconcile takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The fleet is where it should be (or cannot move yet).
    Nothing,
    Add(u64),
    Remove {
        amount: u64,
        reason: RemovalReason,
        /// Only rooms whose version must be replaced may go.
        only_to_replace: bool,
        /// A scale-down: it restarts the cooldown.
        is_downscale: bool,
    },
    /// The policy allows a downscale but the cooldown runs until then.
    WaitCooldown(Time),
}

/// Desired rooms before the rolling-update surge, and whether scaling down is
/// allowed now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub desired: u64,
    pub policy_allows_downscale: bool,
    /// When the cooldown ends, if it is still running.
    pub cooldown_until: Option<Time>,
}

pub fn target(scheduler: &Scheduler, fleet: &Fleet, now: Time) -> Result<Target, AutoscaleError> {
    let Some(autoscaling) = scheduler.active_autoscaling() else {
        return Ok(Target {
            desired: u64::try_from(scheduler.rooms_replicas).unwrap_or(0),
            policy_allows_downscale: true,
            cooldown_until: None,
        });
    };
    let max_matches = u64::try_from(scheduler.match_allocation.max_matches).unwrap_or(1);
    let desired = autoscale::desired_rooms(autoscaling, fleet.counts(), max_matches)?;
    let cooldown = Millis::from_secs(u64::try_from(autoscaling.cooldown_secs).unwrap_or(0));
    let cooldown_until = scheduler
        .last_downscale_at
        .map(|at| at + cooldown)
        .filter(|until| *until > now);
    Ok(Target {
        desired: desired.rooms,
        policy_allows_downscale: desired.can_downscale,
        cooldown_until,
    })
}

/// The action that moves the fleet toward its target.
///
/// Rolling update (some in-service room runs a version that must be
/// replaced): surge up to `desired + maxSurge` new rooms, then remove old
/// rooms down to `desired`, counting a new room only once it has started
/// (maxUnavailable = 0 in ready rooms, not only in pods). The surge is not
/// capped by `autoscaling.max`: a fleet at its max would never roll out.
/// Removals never pick occupied, active or allocated rooms.
pub fn decide(
    scheduler: &Scheduler,
    fleet: &Fleet,
    now: Time,
    caps: Caps,
) -> Result<Decision, AutoscaleError> {
    let target = target(scheduler, fleet, now)?;
    let desired = target.desired;
    let available = fleet.counts().in_service();
    let gate_open = target.policy_allows_downscale && target.cooldown_until.is_none();

    if fleet.is_rolling() {
        let surge = scheduler.parsed_max_surge().rooms(desired);
        let upper = desired + surge;
        if available < upper {
            return Ok(Decision::Add((upper - available).min(caps.add)));
        }
        // Keep at least `floor` rooms; new rooms still starting do not count.
        let floor = if gate_open {
            desired
        } else {
            available - surge
        };
        let started = available - fleet.starting_current();
        let amount = started.saturating_sub(floor).min(caps.remove);
        if amount == 0 {
            return Ok(Decision::Nothing);
        }
        return Ok(Decision::Remove {
            amount,
            reason: RemovalReason::RollingUpdateReplace,
            only_to_replace: true,
            is_downscale: false,
        });
    }

    if available < desired {
        return Ok(Decision::Add((desired - available).min(caps.add)));
    }
    if available == desired || !target.policy_allows_downscale {
        return Ok(Decision::Nothing);
    }
    if let Some(until) = target.cooldown_until {
        return Ok(Decision::WaitCooldown(until));
    }
    Ok(Decision::Remove {
        amount: (available - desired).min(caps.remove),
        reason: RemovalReason::ScaleDown,
        only_to_replace: false,
        is_downscale: true,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::room::{ExpiryTimeouts, InstanceStatus, Room, RoomStatus};
    use crate::scheduler::fixtures;
    use crate::version::Version;

    const V1: Version = Version {
        major: 1,
        minor: 0,
        patch: 0,
    };
    const V2: Version = Version {
        major: 2,
        minor: 0,
        patch: 0,
    };
    const CAPS: Caps = Caps {
        add: 1000,
        remove: 1000,
    };

    fn room(id: usize, version: Version, status: RoomStatus) -> Room {
        let mut room = fixtures::room("s", &format!("room-{id:06}"), status);
        room.version = version;
        room
    }

    /// A fleet of `total` rooms, `current` of them on the active version,
    /// `occupied` of them occupied (current-version rooms first, so old
    /// rooms are free to replace as upstream's mocks assume).
    fn fleet(
        total: usize,
        current: usize,
        occupied: usize,
        active: Version,
        old: Version,
    ) -> Fleet {
        let mut fleet = Fleet::new(ExpiryTimeouts {
            initialization: Millis(120_000),
            ping: Millis(240_000),
            deletion: Millis(120_000),
        });
        for i in 0..total {
            let version = if i < current { active } else { old };
            let status = if i < occupied {
                RoomStatus::Occupied
            } else {
                RoomStatus::Ready
            };
            fleet.insert(room(i, version, status));
        }
        fleet.set_replacement(BTreeMap::from([(active, false), (old, active != old)]));
        fleet
    }

    /// The rooms an action adds (positive) or removes (negative), as the
    /// engine would carry it out.
    fn action(scheduler: &Scheduler, fleet: &Fleet) -> i64 {
        match decide(scheduler, fleet, Time(1_000), CAPS).unwrap() {
            Decision::Nothing | Decision::WaitCooldown(_) => 0,
            Decision::Add(n) => n as i64,
            Decision::Remove {
                amount,
                only_to_replace,
                ..
            } => {
                -(fleet
                    .removal_candidates(amount as usize, only_to_replace)
                    .len() as i64)
            }
        }
    }

    fn autoscaled(surge: &str) -> Scheduler {
        let mut s = fixtures::scheduler("s");
        s.autoscaling = Some(fixtures::room_occupancy(1, 1000, 0.5));
        s.max_surge = surge.to_string();
        s
    }

    /// Upstream executor_test.go TestCompleteRollingUpdate, readyTarget 0.5,
    /// maxSurge 25%: (total, on active version, autoscaler desired, action).
    /// The occupied rooms are `desired × (1 − readyTarget)`, as upstream mocks.
    #[test]
    fn complete_rolling_update_plans() {
        /// (total, on active version, autoscaler desired, rooms added or removed).
        type Row = (usize, usize, usize, i64);
        let plans: &[(&str, &[Row])] = &[
            (
                "stable occupancy",
                &[
                    (100, 0, 100, 25),
                    (125, 25, 100, -25),
                    (100, 25, 100, 25),
                    (125, 50, 100, -25),
                    (100, 50, 100, 25),
                    (125, 75, 100, -25),
                    (100, 75, 100, 25),
                    (125, 100, 100, -25),
                    (100, 100, 100, 0),
                ],
            ),
            (
                "occupancy increased",
                &[
                    (100, 0, 100, 25),
                    (125, 25, 200, 125),
                    (250, 150, 200, -50),
                    (200, 150, 400, 300),
                    // Upstream's mock removes 100 here, new rooms included;
                    // a rollout removes only old rooms (50), and the plain
                    // scale-down takes the rest once the rollout is over.
                    (500, 450, 400, -50),
                    (450, 450, 400, -50),
                    (400, 400, 400, 0),
                ],
            ),
            (
                "occupancy decreased",
                &[
                    (100, 0, 100, 25),
                    (125, 25, 40, -85),
                    (40, 25, 40, 10),
                    (50, 35, 40, -10),
                    (40, 35, 40, 10),
                    (50, 45, 40, -5),
                    (40, 40, 40, 0),
                ],
            ),
            (
                "only 75% of new rooms become active",
                &[
                    (100, 0, 100, 25),
                    (119, 19, 100, 6),
                    (124, 24, 100, 1),
                    (125, 25, 100, -25),
                    (100, 25, 100, 25),
                    (119, 44, 100, 6),
                    (124, 49, 100, 1),
                    (125, 50, 100, -25),
                    (125, 100, 100, -25),
                    (100, 100, 100, 0),
                ],
            ),
        ];
        let scheduler = autoscaled("25%");
        for (name, rows) in plans {
            for &(total, current, desired, want) in *rows {
                let occupied = desired / 2;
                let fleet = fleet(total, current, occupied, V2, V1);
                assert_eq!(
                    target(&scheduler, &fleet, Time(1_000)).unwrap().desired,
                    desired as u64,
                    "{name}: autoscaler desired for {total}/{current}"
                );
                assert_eq!(
                    action(&scheduler, &fleet),
                    want,
                    "{name}: {total} rooms, {current} current"
                );
            }
        }
    }

    /// Upstream executor_test.go TestGetDesiredNumberOfRooms (maxSurge 50%).
    #[test]
    fn desired_rooms_with_surge() {
        // No autoscaling, no rolling update: replicas.
        let mut s = fixtures::scheduler("s");
        s.rooms_replicas = 1;
        s.max_surge = "50%".to_string();
        assert_eq!(action(&s, &fleet(0, 0, 0, V1, V1)), 1);
        // No autoscaling, rolling update with one old room: replicas + 1.
        assert_eq!(
            action(&s, &fleet(1, 0, 0, V2, V1)),
            1,
            "1 + 1 surge − 1 room"
        );
        // Autoscaling (desired 6), no rolling update, 3 rooms.
        let a = autoscaled("50%");
        assert_eq!(action(&a, &fleet(3, 3, 3, V1, V1)), 3);
        // Autoscaling desired 8 with 4 old rooms: 8 + 4 surge = 12.
        assert_eq!(action(&a, &fleet(4, 0, 4, V2, V1)), 8);
        // An unparseable surge falls back to one room: 4 + 1 = 5 from 2 rooms.
        let mut zero = autoscaled("0");
        zero.max_surge = "0".to_string();
        assert_eq!(action(&zero, &fleet(2, 0, 2, V2, V1)), 3);
        // Already at the upper limit (8 + 4 = 12): remove old rooms to 8.
        assert_eq!(action(&a, &fleet(12, 8, 4, V1, V2)), -4);
    }

    /// The surge is not capped by autoscaling.max, and max = -1 does not
    /// disable it (upstream's min(desired + surge, max) stalls both).
    #[test]
    fn surge_above_max_and_unlimited_max() {
        let mut s = fixtures::scheduler("s");
        s.max_surge = "1".to_string();
        // A fleet at its max of 4 rooms, all old and busy enough to want 4.
        s.autoscaling = Some(fixtures::room_occupancy(1, 4, 0.5));
        assert_eq!(action(&s, &fleet(4, 0, 2, V2, V1)), 1);
        s.autoscaling = Some(fixtures::room_occupancy(1, -1, 0.5));
        assert_eq!(action(&s, &fleet(4, 0, 2, V2, V1)), 1);
    }

    /// Minor-only differences never roll rooms (#635).
    #[test]
    fn minor_versions_do_not_roll() {
        let s = fixtures::scheduler("s"); // 2 replicas
        let minor = Version {
            major: 1,
            minor: 1,
            patch: 0,
        };
        assert_eq!(
            action(&s, &fleet(2, 0, 0, minor, V1)),
            1,
            "if V1 had to go: surge first"
        );
        // v1.1.0 differs from v1.0.0 in what a minor version may change
        // (replicas, surge): the engine's own rule keeps v1.0.0's rooms.
        let mut newer = s.clone();
        newer.rooms_replicas = 3;
        newer.max_surge = "1".to_string();
        let versions = BTreeMap::from([(V1, Arc::new(s.clone())), (minor, Arc::new(newer))]);
        let mut f = fleet(2, 0, 0, minor, V1);
        f.set_replacement(crate::scheduler::change::to_replace(&versions, minor));
        assert!(!f.is_rolling());
        assert_eq!(action(&s, &f), 0);
        // The same rule rolls the rooms of a version whose image differs.
        let mut major = s.clone();
        major.spec.containers[0].image = "registry.example/game:2".to_string();
        let versions = BTreeMap::from([(V1, Arc::new(s.clone())), (minor, Arc::new(major))]);
        f.set_replacement(crate::scheduler::change::to_replace(&versions, minor));
        assert!(f.is_rolling());
    }

    /// New rooms count toward replacing old ones only once started.
    #[test]
    fn rollout_waits_for_new_rooms_to_start() {
        let mut s = fixtures::scheduler("s");
        s.rooms_replicas = 4;
        s.max_surge = "2".to_string();
        let mut f = fleet(6, 2, 0, V2, V1);
        for i in 0..2 {
            f.update(&format!("room-{i:06}"), |r| {
                r.status = RoomStatus::Pending;
                r.instance_status = InstanceStatus::Pending;
            });
        }
        assert_eq!(action(&s, &f), 0, "2 new rooms still pending");
        f.update("room-000000", |r| {
            r.status = RoomStatus::Ready;
            r.instance_status = InstanceStatus::Ready;
        });
        assert_eq!(action(&s, &f), -1);
    }

    #[test]
    fn cooldown_postpones_downscale_only() {
        let mut s = fixtures::scheduler("s");
        let mut a = fixtures::room_occupancy(1, 100, 0.5);
        a.cooldown_secs = 60;
        s.autoscaling = Some(a);
        s.last_downscale_at = Some(Time(0));
        let idle = fleet(10, 10, 1, V1, V1); // wants 2
        assert_eq!(
            decide(&s, &idle, Time(30_000), CAPS).unwrap(),
            Decision::WaitCooldown(Time(60_000))
        );
        assert!(matches!(
            decide(&s, &idle, Time(60_000), CAPS).unwrap(),
            Decision::Remove {
                amount: 8,
                is_downscale: true,
                ..
            }
        ));
        let busy = fleet(2, 2, 2, V1, V1); // wants 4: scale-up ignores the cooldown
        assert_eq!(
            decide(&s, &busy, Time(30_000), CAPS).unwrap(),
            Decision::Add(2)
        );
    }

    #[test]
    fn caps_bound_each_action() {
        let mut s = fixtures::scheduler("s");
        s.rooms_replicas = 5000;
        let caps = Caps {
            add: 1000,
            remove: 50,
        };
        assert_eq!(
            decide(&s, &fleet(0, 0, 0, V1, V1), Time(0), caps).unwrap(),
            Decision::Add(1000)
        );
        s.rooms_replicas = 0;
        assert!(matches!(
            decide(&s, &fleet(200, 200, 0, V1, V1), Time(0), caps).unwrap(),
            Decision::Remove { amount: 50, .. }
        ));
    }
}
