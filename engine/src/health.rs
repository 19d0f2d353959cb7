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
pub fn decide(scheduler: &Scheduler, fleet: &Fleet, now: Time, caps: Caps) -> Result<Decision, AutoscaleError> {
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
        let floor = if gate_open { desired } else { available - surge };
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
