//! Schedulers moved over from Maestro Next (`maestro migrate`).
//!
//! An imported scheduler carries one migration record (`M name`) beside its
//! versions and rooms. Until it is switched over, the engine only watches it
//! (`Engine::is_watch_only`): Maestro Next still owns its cluster objects.
//! The record stays after the switch, so `unswitch` can tell an imported
//! scheduler, which it may hand back, from one created in maestro.

use maestro_engine::Time;
use serde::{Deserialize, Serialize};

/// Where an imported scheduler stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// The system it came from (`maestro-next`).
    pub source: String,
    pub imported_at: Time,
    /// Managed by maestro (`migrate switch`), or only watched.
    pub switched: bool,
    /// The last switch or unswitch.
    pub changed_at: Time,
}
