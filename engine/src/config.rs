//! Engine configuration: timeouts and limits, with upstream's defaults.
//!
//! Every queue, batch, loop and retry in the engine is bounded by a value
//! here, or by the length of a structure that one of them bounds
//! (TigerBeetle's "put a limit on everything"). Fields without a service
//! configuration key keep their defaults in production.
//!
//! Not here, because they are rules rather than operational limits:
//! Kubernetes' and upstream's validation limits (name and key lengths, port
//! numbers, `maxMatches`, `roomsReplicas`) in `scheduler/validate.rs`, the
//! room name's shape (prefix of 58, suffix of 5) in `rng.rs`, and upstream's
//! disruption rules (the safety share's clamp, no budget under two rooms)
//! in `disruption.rs`.

use crate::time::Millis;

#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EngineConfig {
    /// Seed of the engine's RNG (room names, host ports, operation ids).
    /// A shell must use a fresh seed for every process run (and log it to
    /// replay): a restarted engine with the same seed would draw the same
    /// ids again.
    pub seed: u64,
    /// A pending/unready room older than this is expired (upstream 120 s).
    pub room_initialization_timeout: Millis,
    /// A non-pending room silent for this long is expired (upstream 240 s).
    pub room_ping_timeout: Millis,
    /// A terminating room silent for this long is expired (upstream 120 s).
    pub room_deletion_timeout: Millis,
    /// How long an allocation holds a ready room (upstream 300 s).
    pub room_allocation_ttl: Millis,
    /// How long a validation room may take to become ready (upstream 120 s).
    pub room_validation_timeout: Millis,
    /// Validation attempts for a major version (upstream 3, at least 1).
    pub room_validation_attempts: u32,
    /// Whether an occupied validation room counts as a success.
    pub room_validation_accept_occupied: bool,
    /// How long a running operation's lease lasts; renewed at half of it
    /// (upstream 5 s).
    pub operation_lease_ttl: Millis,
    /// Period of the health_controller operation (upstream 1 min). Decisions
    /// are event-driven; this is the periodic safety net.
    pub health_controller_interval: Millis,
    /// The health controller rebuilds every fleet index from scratch and
    /// compares (a broken index is a bug: it panics) on every this-many-th
    /// run (1: every run). The audit decides nothing and costs a pass over
    /// every room: at 100,000 rooms 0.17-0.3 s, while the health check's
    /// decision takes about 11 µs at any size (docs/PERFORMANCE.md). The
    /// default, 60 (hourly at the one-minute interval), still catches a
    /// broken index within the hour without holding every input up for it
    /// every minute.
    pub fleet_audit_every: u32,
    /// Mean period of storage_clean_up (upstream ~3 h, memoryless).
    pub storage_clean_up_interval: Millis,
    /// Finished health_controller, add_rooms, remove_rooms and storage_clean_up
    /// operations are kept this long (upstream 24 h).
    pub operations_ttl: Millis,
    /// Rooms one add_rooms operation creates at most (upstream 1000).
    pub add_rooms_limit: u32,
    /// Room creations in flight at once within one operation (upstream 40).
    pub add_rooms_batch_size: u32,
    /// Rooms one amount-based remove_rooms deletes at most (upstream 50).
    pub remove_rooms_limit: u32,
    /// Room deletions in flight at once within one operation.
    pub remove_rooms_batch_size: u32,
    /// How long delete_scheduler waits for the rooms to disappear.
    pub delete_scheduler_timeout: Millis,
    /// Queued (pending) operations per scheduler, beyond which commands are
    /// refused. The engine's own operations skip this check; they are
    /// bounded by kind instead (see [`EngineConfig::max_open_operations`]).
    pub max_pending_operations: usize,
    /// Final operations kept per scheduler (oldest dropped first).
    pub max_final_operations: usize,
    /// Rooms per scheduler, including validation rooms.
    pub max_rooms_per_scheduler: usize,
    pub max_schedulers: usize,
    /// Entries kept in one operation's execution history.
    pub max_history_entries: usize,
    /// How often each scheduler's disruption budget is recomputed
    /// (upstream's `runtimeWatcher.disruptionWorker.intervalSeconds`, 60 s).
    pub disruption_interval: Millis,
    /// The share of rooms a node drain may take at once, in millionths
    /// (upstream's `safetyPercentage`, 0.05), clamped to [0.05, 0.99].
    pub disruption_safety_millionths: u32,
    /// Allocation idempotency keys one scheduler remembers at once; beyond
    /// it the key that expires first is forgotten (default 100 000).
    pub max_allocation_keys: usize,
    /// Reconcile passes one input makes over the schedulers whose fleet
    /// changed: an operation that ends within a pass marks its scheduler
    /// again, and what is still marked after the last pass is due at once
    /// in `poll_timeout` (default 4, at least 1).
    pub settle_passes: usize,
    /// Expired rooms one timer check marks for deletion at most; the rest
    /// stay due and the next check takes them (default 1000, at least 1).
    pub expired_rooms_per_check: usize,
    /// Redraws of an operation id that collides with a held one (only a
    /// seed reused across process runs makes that happen; default 8).
    pub operation_id_retries: usize,
    /// Draws of a room name not already in the fleet before the creation
    /// fails (default 16, at least 1; 27^5 suffixes make a collision rare).
    pub room_name_draws: usize,
    /// Random draws per host port when a scheduler-wide port range gives
    /// each port of a room a distinct one; past `(ports + 1) ×` this the
    /// range is swept in order instead (default 64).
    pub host_port_draws_per_port: usize,
    /// Whether the engine emits every changed room's record for the store
    /// (`SaveRoom`, `ForgetRoom`). On in the service. A shell that keeps no
    /// store, the capacity planner, turns it off: listing, copying out and
    /// dropping the records took about an eighth of a planner run, and no
    /// decision reads them (the decision trace is the same either way, a
    /// test pins it). Not part of a recording's header (the header's
    /// format predates it, and it changes no decision): a replay reads it
    /// as on.
    #[cfg_attr(feature = "serde", serde(skip, default = "records_on"))]
    pub room_records: bool,
}

#[cfg(feature = "serde")]
fn records_on() -> bool {
    true
}

/// Operations of the engine's own that one scheduler can hold open
/// (pending or in progress) at once, besides what users enqueue; see
/// [`EngineConfig::max_open_operations`].
pub const INTERNAL_OPEN_OPERATIONS: usize = 6;

impl EngineConfig {
    /// The most operations one scheduler holds open (pending plus in
    /// progress) at once, so its queue never holds more. `enqueue` asserts
    /// it and `Engine::check_invariants` checks it.
    ///
    /// Users enqueue only while fewer than `max_pending_operations` are
    /// pending, so at most that many of theirs are pending and one more is
    /// in progress (or was put back in the queue by a restart). The
    /// engine's own operations skip that check but are bounded by kind
    /// ([`INTERNAL_OPEN_OPERATIONS`]):
    /// - the reconciler's add_rooms or remove_rooms: 1, it decides only
    ///   while no fleet change is open;
    /// - expired-room removals: 2, newly expired rooms join the pending one
    ///   if there is one, so one can run while another waits;
    /// - health_controller: 1, and storage_clean_up: 1, each enqueued only
    ///   when none is open;
    /// - the switch_active_version a validated version enqueues: 1, version
    ///   operations are refused while one is open.
    ///
    /// A restart changes none of these counts: it moves an operation from in
    /// progress back to the queue, or finishes it.
    pub fn max_open_operations(&self) -> usize {
        self.max_pending_operations
            .saturating_add(1 + INTERNAL_OPEN_OPERATIONS)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            seed: 0,
            room_initialization_timeout: Millis::from_secs(120),
            room_ping_timeout: Millis::from_secs(240),
            room_deletion_timeout: Millis::from_secs(120),
            room_allocation_ttl: Millis::from_secs(300),
            room_validation_timeout: Millis::from_secs(120),
            room_validation_attempts: 3,
            room_validation_accept_occupied: false,
            operation_lease_ttl: Millis::from_secs(5),
            health_controller_interval: Millis::from_secs(60),
            fleet_audit_every: 60,
            storage_clean_up_interval: Millis::from_secs(3 * 3600),
            operations_ttl: Millis::from_secs(24 * 3600),
            add_rooms_limit: 1000,
            add_rooms_batch_size: 40,
            remove_rooms_limit: 50,
            remove_rooms_batch_size: 50,
            delete_scheduler_timeout: Millis::from_secs(600),
            max_pending_operations: 1000,
            max_final_operations: 10_000,
            max_rooms_per_scheduler: 200_000,
            max_schedulers: 10_000,
            max_history_entries: 200,
            disruption_interval: Millis::from_secs(60),
            disruption_safety_millionths: 50_000,
            max_allocation_keys: 100_000,
            settle_passes: 4,
            expired_rooms_per_check: 1000,
            operation_id_retries: 8,
            room_name_draws: 16,
            host_port_draws_per_port: 64,
            room_records: true,
        }
    }
}
