//! The engine's outbox: effects waiting to be polled, runtime effects
//! awaiting their result, the RNG, and the schedulers to reconcile.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::effect::{Effect, EffectId};
use crate::operation::OperationId;
use crate::rng::EngineRng;
use crate::room::RoomId;

/// What a runtime effect in flight was for, so its result can be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InFlight {
    pub scheduler: String,
    pub what: InFlightKind,
    /// The operation that asked for it, if any.
    pub operation: Option<OperationId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InFlightKind {
    CreateResources,
    DeleteResources,
    CreateRoom(RoomId),
    DeleteRoom(RoomId),
    DisruptionBudget,
}

#[derive(Debug)]
pub(crate) struct Io {
    pub effects: VecDeque<Effect>,
    pub in_flight: BTreeMap<EffectId, InFlight>,
    next_effect: u64,
    pub rng: EngineRng,
    /// Schedulers whose fleet changed since the last reconcile.
    pub dirty: BTreeSet<String>,
    /// Schedulers this input reached (looked up to change): only their
    /// room records and wakeups are brought up to date when it settles.
    pub touched: BTreeSet<String>,
    /// Watch-only schedulers (imported, not switched): no runtime effect
    /// may name one, which `emit_runtime` asserts.
    pub watch_only: BTreeSet<String>,
}

impl Io {
    pub fn new(seed: u64) -> Io {
        Io {
            effects: VecDeque::new(),
            in_flight: BTreeMap::new(),
            next_effect: 1,
            rng: EngineRng::new(seed),
            dirty: BTreeSet::new(),
            touched: BTreeSet::new(),
            watch_only: BTreeSet::new(),
        }
    }

    /// Queues an effect that expects no result.
    pub fn emit(&mut self, effect: Effect) {
        debug_assert!(
            effect.id().is_none(),
            "runtime effects go through emit_runtime"
        );
        self.effects.push_back(effect);
    }

    /// Queues a runtime effect built around a fresh id and remembers what it is for.
    pub fn emit_runtime(
        &mut self,
        in_flight: InFlight,
        build: impl FnOnce(EffectId) -> Effect,
    ) -> EffectId {
        assert!(
            !self.watch_only.contains(&in_flight.scheduler),
            "a runtime effect for watch-only scheduler {}",
            in_flight.scheduler
        );
        let id = EffectId(self.next_effect);
        self.next_effect += 1;
        let effect = build(id);
        assert_eq!(effect.id(), Some(id), "runtime effect carries its id");
        self.in_flight.insert(id, in_flight);
        self.effects.push_back(effect);
        id
    }

    /// Notes that this input may change `scheduler`.
    pub fn touch(&mut self, scheduler: &str) {
        if !self.touched.contains(scheduler) {
            self.touched.insert(scheduler.to_string());
        }
    }

    pub fn mark_dirty(&mut self, scheduler: &str) {
        if !self.dirty.contains(scheduler) {
            self.dirty.insert(scheduler.to_string());
        }
    }
}
