//! Room, ping and instance statuses; the composite table; the calculators;
//! the transition table.

use crate::time::{Millis, Time};

/// A room's effective status. The discriminants are upstream's persisted integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RoomStatus {
    Pending = 0,
    Unready = 1,
    Ready = 2,
    Occupied = 3,
    Terminating = 4,
    Error = 5,
    Terminated = 6,
    /// Partially occupied (multi-match).
    Active = 7,
    /// Reserved by the allocate API for a TTL.
    Allocated = 8,
}

impl RoomStatus {
    pub const ALL: [RoomStatus; 9] = [
        RoomStatus::Pending,
        RoomStatus::Unready,
        RoomStatus::Ready,
        RoomStatus::Occupied,
        RoomStatus::Terminating,
        RoomStatus::Error,
        RoomStatus::Terminated,
        RoomStatus::Active,
        RoomStatus::Allocated,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RoomStatus::Pending => "pending",
            RoomStatus::Unready => "unready",
            RoomStatus::Ready => "ready",
            RoomStatus::Occupied => "occupied",
            RoomStatus::Terminating => "terminating",
            RoomStatus::Error => "error",
            RoomStatus::Terminated => "terminated",
            RoomStatus::Active => "active",
            RoomStatus::Allocated => "allocated",
        }
    }

    /// Hosting or promised to players: never removed to scale down or roll out.
    pub fn is_busy(self) -> bool {
        matches!(
            self,
            RoomStatus::Occupied | RoomStatus::Active | RoomStatus::Allocated
        )
    }

    /// Whether the transition `self → to` is allowed (a same-status move is a no-op
    /// and always allowed).
    ///
    /// Upstream's table plus two fixes: pending → active, for multi-match
    /// rooms whose first ping already reports some matches; and any status →
    /// terminated, because a game server that says it is done must never stay
    /// allocatable (upstream refuses the ping and the room stays ready).
    pub fn can_transition_to(self, to: RoomStatus) -> bool {
        use RoomStatus::*;
        if self == to {
            return true;
        }
        let allowed: &[RoomStatus] = match self {
            Pending => &[
                Ready,
                Terminating,
                Unready,
                Error,
                Occupied,
                Active,
                Terminated,
            ],
            Ready => &[
                Occupied,
                Allocated,
                Terminating,
                Unready,
                Error,
                Active,
                Terminated,
            ],
            Unready => &[
                Terminating,
                Occupied,
                Ready,
                Error,
                Pending,
                Active,
                Terminated,
            ],
            Active => &[Ready, Occupied, Terminating, Unready, Error, Terminated],
            Occupied => &[Ready, Terminating, Unready, Error, Active, Terminated],
            Allocated => &[
                Active,
                Occupied,
                Ready,
                Terminating,
                Unready,
                Error,
                Terminated,
            ],
            Error => &[Terminating, Unready, Ready, Terminated],
            Terminating => &[Error, Unready, Ready, Terminated],
            Terminated => &[],
        };
        allowed.contains(&to)
    }
}

/// What the room itself last said in a ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PingStatus {
    Unknown = 0,
    Ready = 1,
    Occupied = 2,
    Terminating = 3,
    Terminated = 4,
}

impl PingStatus {
    /// Parses the status string of a ping request.
    pub fn parse(text: &str) -> Option<PingStatus> {
        match text {
            "ready" => Some(PingStatus::Ready),
            "occupied" => Some(PingStatus::Occupied),
            "terminating" => Some(PingStatus::Terminating),
            "terminated" => Some(PingStatus::Terminated),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PingStatus::Unknown => "unknown",
            PingStatus::Ready => "ready",
            PingStatus::Occupied => "occupied",
            PingStatus::Terminating => "terminating",
            PingStatus::Terminated => "terminated",
        }
    }
}

/// What the runtime says of the room's pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum InstanceStatus {
    Unknown = 0,
    Pending = 1,
    Ready = 2,
    Terminating = 3,
    Error = 4,
}

impl InstanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Unknown => "unknown",
            InstanceStatus::Pending => "pending",
            InstanceStatus::Ready => "ready",
            InstanceStatus::Terminating => "terminating",
            InstanceStatus::Error => "error",
        }
    }
}

/// Upstream's `roomStatusComposition`: rows are the ping status, columns the
/// instance status. Total: every pair has an entry.
pub fn composite_status(ping: PingStatus, instance: InstanceStatus) -> RoomStatus {
    use InstanceStatus as I;
    use RoomStatus as R;
    match (ping, instance) {
        (_, I::Error) => R::Error,
        (PingStatus::Terminated, _) => R::Terminated,
        (PingStatus::Terminating, _) | (_, I::Terminating) => R::Terminating,
        (_, I::Unknown) | (_, I::Pending) => R::Pending,
        (PingStatus::Unknown, I::Ready) => R::Unready,
        (PingStatus::Ready, I::Ready) => R::Ready,
        (PingStatus::Occupied, I::Ready) => R::Occupied,
    }
}

/// Everything the status calculators look at.
#[derive(Clone, Copy, Debug)]
pub struct StatusInputs {
    pub current: RoomStatus,
    pub ping: PingStatus,
    pub instance: InstanceStatus,
    pub running_matches: u64,
    pub max_matches: u64,
    pub allocated_at: Option<Time>,
}

/// The room's status from its inputs: the allocation TTL step, then the
/// single-match (composite) or multi-match calculator.
pub fn calculate_status(inputs: StatusInputs, now: Time, allocation_ttl: Millis) -> RoomStatus {
    let composite = composite_status(inputs.ping, inputs.instance);
    let still_allocated = inputs.current == RoomStatus::Allocated
        && inputs
            .allocated_at
            .is_some_and(|at| now.since(at) <= allocation_ttl);
    if still_allocated && composite == RoomStatus::Ready {
        return RoomStatus::Allocated;
    }
    if inputs.max_matches <= 1 {
        return composite;
    }
    match composite {
        RoomStatus::Ready | RoomStatus::Occupied => {
            if inputs.running_matches < 1 {
                RoomStatus::Ready
            } else if inputs.running_matches >= inputs.max_matches {
                RoomStatus::Occupied
            } else {
                RoomStatus::Active
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceStatus as I;
    use PingStatus as P;
    use RoomStatus as R;

    #[test]
    fn composite_table_matches_upstream() {
        let instances = [I::Unknown, I::Pending, I::Ready, I::Terminating, I::Error];
        // Rows from upstream's roomStatusComposition, in the column order above.
        let table = [
            (
                P::Unknown,
                [R::Pending, R::Pending, R::Unready, R::Terminating, R::Error],
            ),
            (
                P::Ready,
                [R::Pending, R::Pending, R::Ready, R::Terminating, R::Error],
            ),
            (
                P::Occupied,
                [
                    R::Pending,
                    R::Pending,
                    R::Occupied,
                    R::Terminating,
                    R::Error,
                ],
            ),
            (
                P::Terminating,
                [
                    R::Terminating,
                    R::Terminating,
                    R::Terminating,
                    R::Terminating,
                    R::Error,
                ],
            ),
            (
                P::Terminated,
                [
                    R::Terminated,
                    R::Terminated,
                    R::Terminated,
                    R::Terminated,
                    R::Error,
                ],
            ),
        ];
        for (ping, row) in table {
            for (instance, want) in instances.iter().zip(row) {
                assert_eq!(
                    composite_status(ping, *instance),
                    want,
                    "{ping:?} × {instance:?}"
                );
            }
        }
    }

    #[test]
    fn transition_table() {
        // (from, allowed targets): upstream's validStatusTransitions, plus
        // pending → active and every status → terminated.
        let allowed = [
            (
                R::Pending,
                vec![
                    R::Ready,
                    R::Terminating,
                    R::Unready,
                    R::Error,
                    R::Occupied,
                    R::Active,
                    R::Terminated,
                ],
            ),
            (
                R::Ready,
                vec![
                    R::Occupied,
                    R::Allocated,
                    R::Terminating,
                    R::Unready,
                    R::Error,
                    R::Active,
                    R::Terminated,
                ],
            ),
            (
                R::Unready,
                vec![
                    R::Terminating,
                    R::Occupied,
                    R::Ready,
                    R::Error,
                    R::Pending,
                    R::Active,
                    R::Terminated,
                ],
            ),
            (
                R::Active,
                vec![
                    R::Ready,
                    R::Occupied,
                    R::Terminating,
                    R::Unready,
                    R::Error,
                    R::Terminated,
                ],
            ),
            (
                R::Occupied,
                vec![
                    R::Ready,
                    R::Terminating,
                    R::Unready,
                    R::Error,
                    R::Active,
                    R::Terminated,
                ],
            ),
            (
                R::Allocated,
                vec![
                    R::Active,
                    R::Occupied,
                    R::Ready,
                    R::Terminating,
                    R::Unready,
                    R::Error,
                    R::Terminated,
                ],
            ),
            (
                R::Error,
                vec![R::Terminating, R::Unready, R::Ready, R::Terminated],
            ),
            (
                R::Terminating,
                vec![R::Error, R::Unready, R::Ready, R::Terminated],
            ),
            (R::Terminated, vec![]),
        ];
        for (from, targets) in &allowed {
            for to in RoomStatus::ALL {
                let want = to == *from || targets.contains(&to);
                assert_eq!(from.can_transition_to(to), want, "{from:?} → {to:?}");
            }
        }
    }

    fn inputs(ping: PingStatus, matches: u64, max: u64) -> StatusInputs {
        StatusInputs {
            current: R::Ready,
            ping,
            instance: I::Ready,
            running_matches: matches,
            max_matches: max,
            allocated_at: None,
        }
    }

    #[test]
    fn multi_match_calculator() {
        let ttl = Millis(300_000);
        // (ping, running matches, max matches, status)
        let table = [
            (P::Ready, 0, 3, R::Ready),
            (P::Ready, 1, 3, R::Active),
            (P::Occupied, 2, 3, R::Active),
            (P::Occupied, 3, 3, R::Occupied),
            (P::Occupied, 5, 3, R::Occupied),
            (P::Occupied, 0, 3, R::Ready),
            (P::Ready, 2, 1, R::Ready), // single match: the composite alone
            (P::Occupied, 1, 1, R::Occupied),
            (P::Terminating, 1, 3, R::Terminating),
        ];
        for (ping, matches, max, want) in table {
            let got = calculate_status(inputs(ping, matches, max), Time(0), ttl);
            assert_eq!(got, want, "{ping:?} {matches}/{max}");
        }
    }

    #[test]
    fn allocation_holds_for_its_ttl_unless_the_room_reports_otherwise() {
        let ttl = Millis(300_000);
        let mut i = inputs(P::Ready, 0, 1);
        i.current = R::Allocated;
        i.allocated_at = Some(Time(1_000));
        assert_eq!(
            calculate_status(i, Time(1_000 + 300_000), ttl),
            R::Allocated
        );
        assert_eq!(calculate_status(i, Time(1_000 + 300_001), ttl), R::Ready);
        i.ping = P::Occupied;
        assert_eq!(calculate_status(i, Time(2_000), ttl), R::Occupied);
        i.ping = P::Ready;
        i.instance = I::Error;
        assert_eq!(calculate_status(i, Time(2_000), ttl), R::Error);
    }
}
