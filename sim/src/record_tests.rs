use super::*;
use crate::cluster::test_scheduler;
use crate::cluster::{ClusterConfig, Failures, Pings};
use crate::harness::Harness;

fn recorded() -> Vec<Record> {
    recorded_with(ClusterConfig::default())
}

fn recorded_with(cluster: ClusterConfig) -> Vec<Record> {
    let mut h = Harness::new(EngineConfig::default(), cluster);
    h.command(Command::CreateScheduler(test_scheduler(2, 30, 0.4)))
        .unwrap();
    h.run_for(Millis::from_secs(30));
    // The recording starts with a process on what the store holds.
    h.start_recording();
    for i in 0..40u64 {
        let _ = h.allocate_for("arena", Some(Millis::from_secs(20 + i % 7 * 10)));
        h.run_for(Millis::from_secs(7));
    }
    h.run_for(Millis::from_secs(600));
    h.recording()
}

fn frames(records: &[Record]) -> Vec<u8> {
    records.iter().flat_map(|r| r.frame().unwrap()).collect()
}

#[test]
fn a_recording_replays_to_the_same_decisions() {
    let records = recorded();
    let bytes = frames(&records);
    let replayed = replay(Frames::new(&bytes[..])).unwrap();
    assert_eq!(replayed.mismatch, None);
    assert_eq!(replayed.checkpoints, 1);
    assert!(replayed.decisions > 20, "{replayed:?}");
    assert!(replayed.inexact.is_none());
    let Some(Record::Checkpoint { hash, .. }) = records.last() else {
        panic!()
    };
    assert_eq!(&replayed.hash, hash);
    // The allocations are demand: 40 matches asked for, each lasting 20 to
    // 80 seconds when served.
    let matches = &replayed.matches["arena"];
    assert_eq!(matches.len(), 40);
    assert!(matches.iter().all(|m| m.duration <= Millis::from_secs(90)));
}

#[test]
fn reported_pings_record_and_replay_across_a_restart() {
    // The recording starts with a restart: restored rooms wait for the
    // ping each game server sends at its next tick, then are steady again;
    // crashes report stopped pings.
    let records = recorded_with(ClusterConfig {
        pings: Pings::Reported,
        failures: Failures {
            pod_crash_per_hour: 20.0,
            ..Failures::default()
        },
        ..ClusterConfig::default()
    });
    let count = |steady: bool| {
        records
            .iter()
            .filter(|r| {
                matches!(r, Record::Liveness(_, l)
                    if matches!(l.pings, maestro_engine::PingStream::Steady) == steady)
            })
            .count()
    };
    assert!(count(true) > 0 && count(false) > 0, "{records:?}");
    let replayed = replay(Frames::new(&frames(&records)[..])).unwrap();
    assert_eq!(replayed.mismatch, None);
    assert_eq!(replayed.checkpoints, 1);
}

#[test]
fn a_changed_input_is_caught_at_the_checkpoint() {
    let mut records = recorded();
    // Another seed: the engine names its rooms differently.
    if let Some(Record::Header { engine, .. }) = records.first_mut() {
        engine.seed ^= 1;
    }
    let replayed = replay(Frames::new(&frames(&records)[..])).unwrap();
    assert!(replayed.mismatch.is_some(), "{replayed:?}");
}

#[test]
fn a_torn_last_frame_ends_the_recording_and_garbage_is_named() {
    let records = recorded();
    let mut bytes = frames(&records);
    bytes.truncate(bytes.len() - 3);
    let mut reader = Frames::new(&bytes[..]);
    let read: Vec<_> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(read.len(), records.len() - 1);
    assert!(reader.truncated);
    let garbage = [5u8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff];
    let err = Frames::new(&garbage[..]).next().unwrap().unwrap_err();
    assert!(
        matches!(err, RecordError::Corrupt { frame: 0, .. }),
        "{err}"
    );
    assert!(matches!(
        replay(Frames::new(&garbage[..0])),
        Err(ReplayError::NoHeader)
    ));
}

#[test]
fn room_records_are_not_carried_in_a_recording() {
    // A header keeps the layout it had before the field existed, so older
    // recordings still decode; a replay reads the field as on.
    let header = |engine: EngineConfig| Record::Header {
        format: FORMAT,
        segment: 0,
        engine,
        started_at: Time(5),
    };
    let off = EngineConfig {
        room_records: false,
        ..EngineConfig::default()
    };
    let bytes = header(off).frame().unwrap();
    assert_eq!(bytes, header(EngineConfig::default()).frame().unwrap());
    let decoded: Vec<Record> = Frames::new(&bytes[..]).map(Result::unwrap).collect();
    let [Record::Header { engine, .. }] = &decoded[..] else {
        panic!("{decoded:?}")
    };
    assert!(engine.room_records);
}
