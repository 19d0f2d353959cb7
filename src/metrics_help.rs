//! The HELP text of every metric maestro exports, registered once at start
//! (after the Prometheus recorder is installed), so that `/metrics` explains
//! each series and `promtool check metrics` finds nothing to flag. A metric
//! added without a line here fails the end-to-end test that reads
//! `/metrics`.

use maestro_engine::room::RoomStatus;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

pub fn describe() {
    // The driver.
    describe_histogram!(
        "maestro_engine_step_seconds",
        Unit::Seconds,
        "Time the engine took for one input (a request batch, runtime results, an instance event, a timer)."
    );
    describe_histogram!(
        "maestro_reaction_latency_seconds",
        Unit::Seconds,
        "From an input waking the driver to the room creations or deletions it decided being dispatched."
    );
    describe_histogram!(
        "maestro_store_flush_seconds",
        Unit::Seconds,
        "Duration of one store flush (sled flush plus fsync), shared by every reply that waited for it."
    );
    describe_counter!(
        "maestro_operations_total",
        "Operations that reached a final status, by scheduler, operation and status."
    );
    describe_counter!(
        "maestro_runtime_calls_total",
        "Runtime calls (create/delete scheduler resources and rooms), by call and result."
    );
    describe_histogram!(
        "maestro_runtime_call_seconds",
        Unit::Seconds,
        "Duration of one runtime call, retries included, by call."
    );
    describe_counter!(
        "maestro_sim_matches_interrupted_total",
        "Matches the simulated cluster saw interrupted by a pod deletion (the embedded default only)."
    );

    // Forwarding.
    describe_counter!(
        "maestro_forwarding_events_delivered_total",
        "Events a forwarder answered, by scheduler, forwarder and event."
    );
    describe_counter!(
        "maestro_forwarding_events_retried_total",
        "Forwarder calls that failed and will be retried, by scheduler, forwarder and event."
    );
    describe_counter!(
        "maestro_forwarding_events_failed_total",
        "Events given up, by scheduler, forwarder and reason (rejected, expired, backlog_full)."
    );
    describe_counter!(
        "maestro_forwarding_resyncs_coalesced_total",
        "Ping resyncs replaced by a newer one of the same room before being sent."
    );
    describe_gauge!(
        "maestro_forwarding_outbox_events",
        "Durable events waiting in a lane's outbox, by scheduler and forwarder."
    );
    describe_histogram!(
        "maestro_worker_grpc_request_latency",
        Unit::Seconds,
        "Latency of a forwarder call (upstream's name), by service, method and code."
    );

    // The metrics reporter (upstream's names).
    for status in RoomStatus::ALL {
        if status == RoomStatus::Terminated {
            continue;
        }
        describe_gauge!(
            format!("maestro_worker_gru_{}", status.as_str()),
            format!(
                "Rooms in status {}, by scheduler and game.",
                status.as_str()
            )
        );
    }
    describe_gauge!(
        "maestro_worker_desired_rooms",
        "Rooms the scheduler wants now (replicas or autoscaling), by scheduler and game."
    );
    describe_gauge!(
        "maestro_worker_current_rooms",
        "Rooms in service, by scheduler and game."
    );
    describe_gauge!(
        "maestro_worker_running_matches",
        "Matches running in the scheduler's rooms, by scheduler and game."
    );
    describe_gauge!(
        "maestro_worker_max_matches",
        "Matches one room can host, by scheduler and game."
    );
    describe_gauge!(
        "maestro_worker_ready_target",
        "The roomOccupancy policy's ready target, by scheduler and game."
    );
    describe_gauge!(
        "maestro_worker_fixed_buffer",
        "The fixedBuffer policy's amount, by scheduler and game."
    );
}
