//! Scheduler documents as `maestro sim` reads its `--scheduler FILE`
//! (JSON when it opens with `{`, YAML otherwise), converted and validated
//! as `POST /schedulers` does. Any text must get an answer, not a panic,
//! and a document the reader accepts must be one the engine accepts: the
//! planner creates exactly that scheduler.
//!
//! Run: `cargo fuzz run -s none scheduler_documents -- -max_total_time=60`;
//! `cargo test` in `fuzz/` replays `fuzz/seeds/scheduler_documents/`.

use std::path::Path;

use maestro::plan::SchedulerFile;
use maestro_engine::{Command, Engine, EngineConfig, Time};

pub fn run(data: &[u8]) {
    // The reader reads files as UTF-8 and refuses other bytes first.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = SchedulerFile::parse(Path::new("fuzz.yaml"), text) else {
        return;
    };
    let mut engine = Engine::new(EngineConfig::default());
    if let Err(e) = engine.handle_command(Time(1_000_000), Command::CreateScheduler(file.scheduler))
    {
        panic!("the file reader accepted a scheduler the engine refuses: {e}");
    }
    while engine.poll_effect().is_some() {}
    engine
        .check_invariants()
        .unwrap_or_else(|e| panic!("engine invariant broken: {e}"));
}
