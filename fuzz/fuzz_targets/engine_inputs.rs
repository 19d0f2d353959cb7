//! Drives the engine with arbitrary sequences of pings, allocations,
//! runtime events, effect results and time steps against one scheduler,
//! checking the engine's invariants after every input. A panic is a bug.
//!
//! Run: `cargo fuzz run -s none engine_inputs -- -max_total_time=60`
//! (`-s none` works on a stable toolchain).
#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use maestro_engine::room::{InstanceStatus, PingStatus};
use maestro_engine::scheduler::{
    Container, ContainerPort, MatchAllocation, PortRange, Resources, Scheduler, SchedulerState, Spec,
};
use maestro_engine::{
    Command, Effect, EffectId, Engine, EngineConfig, InstanceEvent, InstanceEventKind, Millis, Ping,
    RuntimeError, RuntimeErrorKind, Time,
};

fn scheduler(replicas: i64, max_matches: i64) -> Scheduler {
    Scheduler {
        name: "fuzz".to_string(),
        game: "game".to_string(),
        state: SchedulerState::Creating,
        spec: Spec {
            version: "v1.0.0".to_string(),
            termination_grace_period_secs: 30,
            containers: vec![Container {
                name: "game".to_string(),
                image: "game:1".to_string(),
                image_pull_policy: "IfNotPresent".to_string(),
                command: Vec::new(),
                environment: Vec::new(),
                requests: Resources { memory: "64Mi".to_string(), cpu: "100m".to_string() },
                limits: Resources { memory: "64Mi".to_string(), cpu: "100m".to_string() },
                ports: vec![ContainerPort {
                    name: "game".to_string(),
                    protocol: "udp".to_string(),
                    port: 7777,
                    host_port: 0,
                    host_port_range: None,
                }],
            }],
            toleration: String::new(),
            affinity: String::new(),
            restart_policy: "Never".to_string(),
        },
        port_range: Some(PortRange { start: 10000, end: 10100 }),
        rooms_replicas: replicas,
        max_surge: "1".to_string(),
        autoscaling: None,
        forwarders: Vec::new(),
        annotations: Default::default(),
        labels: Default::default(),
        match_allocation: MatchAllocation { max_matches },
        created_at: Time::ZERO,
        last_downscale_at: None,
        rollback_version: None,
    }
}

fn run(u: &mut Unstructured) -> Result<()> {
    let mut engine = Engine::new(EngineConfig { seed: u.arbitrary()?, ..EngineConfig::default() });
    let mut now = Time(1_000);
    let mut pending: Vec<EffectId> = Vec::new();
    let replicas = i64::from(u.int_in_range(0u8..=10)?);
    let max_matches = i64::from(u.int_in_range(1u8..=4)?);
    let _ = engine.handle_command(now, Command::CreateScheduler(scheduler(replicas, max_matches)));
    for _ in 0..u.int_in_range(0u16..=500)? {
        let rooms: Vec<String> = engine
            .fleet("fuzz")
            .map(|f| f.rooms().map(|r| r.id.clone()).collect())
            .unwrap_or_default();
        let room = if rooms.is_empty() { "fuzz-none".to_string() } else { u.choose(&rooms)?.clone() };
        match u.int_in_range(0u8..=6)? {
            0 => {
                let status = *u.choose(&[PingStatus::Ready, PingStatus::Occupied, PingStatus::Terminating, PingStatus::Terminated])?;
                let ping = Ping {
                    scheduler: "fuzz".to_string(),
                    room,
                    status,
                    running_matches: u64::from(u.int_in_range(0u8..=6)?),
                    metadata_json: String::new(),
                };
                let _ = engine.handle_ping(now, &ping);
            }
            1 => {
                let _ = engine.allocate(now, "fuzz", None);
            }
            2 => {
                let status = *u.choose(&[InstanceStatus::Pending, InstanceStatus::Ready, InstanceStatus::Terminating, InstanceStatus::Error])?;
                let kind = if u.ratio(1u8, 5)? { InstanceEventKind::Deleted } else { InstanceEventKind::Upsert };
                let event = InstanceEvent {
                    scheduler: "fuzz".to_string(),
                    room,
                    kind,
                    status,
                    description: String::new(),
                    address: None,
                    version: None,
                };
                engine.handle_instance_event(now, &event);
            }
            3 | 4 if !pending.is_empty() => {
                let i = u.choose_index(pending.len())?;
                let id = pending.swap_remove(i);
                let result = if u.ratio(1u8, 4)? {
                    let kind = *u.choose(&[RuntimeErrorKind::NotFound, RuntimeErrorKind::RateLimited, RuntimeErrorKind::Internal])?;
                    Err(RuntimeError::new(kind, "fuzz"))
                } else {
                    Ok(())
                };
                engine.handle_effect_result(now, id, result);
            }
            5 => {
                now = now + Millis(u64::from(u.int_in_range(1u32..=300_000)?));
                if engine.poll_timeout().is_some_and(|t| t <= now) {
                    engine.handle_timeout(now);
                }
            }
            _ => {
                let replicas = i64::from(u.int_in_range(0u8..=10)?);
                let _ = engine.handle_command(now, Command::NewSchedulerVersion(scheduler(replicas, max_matches)));
            }
        }
        while let Some(effect) = engine.poll_effect() {
            if let Effect::CreateSchedulerResources { id, .. }
            | Effect::DeleteSchedulerResources { id, .. }
            | Effect::CreateRoom { id, .. }
            | Effect::DeleteRoom { id, .. } = effect
            {
                pending.push(id);
            }
        }
        if let Err(broken) = engine.check_invariants() {
            panic!("{broken}");
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
