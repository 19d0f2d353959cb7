//! maestro's durable store: schedulers, versions, operations and the
//! forwarding outbox, on sled for single-node deployments and in memory for
//! the simulator and tests.
//!
//! The engine emits persistence effects (`Effect::PersistScheduler`,
//! `Effect::PersistOperation`, ...); this crate will execute them. Its
//! implementation is tracked by the store issue; nothing here is wired yet.
