//! The engine's outbox: effects waiting to be polled, runtime effects
//! awaiting their result, the RNG, and the schedulers to reconcile.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::effect::{Effect, EffectId};
use crate::operation::OperationId;
use crate::rng::EngineRng;
use crate::room::RoomId;
use smol_str::SmolStr;

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
    pub dirty: Names,
    /// Schedulers this input reached (looked up to change): only their
    /// room records and wakeups are brought up to date when it settles.
    pub touched: Names,
    /// A buffer `settle` and then `refresh_touched` walk names in, kept to
    /// spare an allocation per input.
    pub scratch: Vec<SmolStr>,
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
            dirty: Names::default(),
            touched: Names::default(),
            scratch: Vec::new(),
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
        self.touched.insert(scheduler);
    }

    pub fn mark_dirty(&mut self, scheduler: &str) {
        self.dirty.insert(scheduler);
    }
}

/// A set of scheduler names in name order (the order `settle` reconciles
/// them in). An input reaches one scheduler, or a few: a sorted vector of
/// names held inline costs no allocation per input for a name of up to 23
/// bytes (a longer one is shared, one allocation), where a B-tree of
/// strings took two. Bounded by the schedulers.
#[derive(Debug, Default)]
pub(crate) struct Names {
    names: Vec<SmolStr>,
    /// The name inserted last: most inputs reach the scheduler the one
    /// before reached, and a copy of it is 24 bytes moved, where building
    /// one from a `&str` stalls on its copy through the stack (see
    /// `Engine::allocate_with`).
    last: SmolStr,
}

impl Names {
    pub fn insert(&mut self, name: &str) {
        if let Err(at) = self.find(name) {
            if self.last != name {
                self.last = SmolStr::new(name);
            }
            self.names.insert(at, self.last.clone());
        }
    }

    pub fn remove(&mut self, name: &str) {
        if let Ok(at) = self.find(name) {
            self.names.remove(at);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Moves every name, in order, to the end of `out`; the set keeps its
    /// buffer.
    pub fn drain_into(&mut self, out: &mut Vec<SmolStr>) {
        out.append(&mut self.names);
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(name))
    }
}
