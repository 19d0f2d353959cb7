//! Engine configuration: timeouts and limits, with upstream's defaults.
//!
//! Every queue, batch and loop in the engine is bounded by a value here
//! (TigerBeetle's "put a limit on everything").

use crate::time::Millis;

#[derive(Clone, Debug)]
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
    /// Queued (pending) operations per scheduler, beyond which commands are refused.
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
        }
    }
}
