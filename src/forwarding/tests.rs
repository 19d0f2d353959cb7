//! Forwarding against a real tonic server on loopback that records what it
//! receives: delivery, an outage and the recovery, a restart of maestro in
//! between, coalesced resyncs and refused events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use maestro_api::proto::eventforwarder::grpc_forwarder_server::{
    GrpcForwarder, GrpcForwarderServer,
};
use maestro_api::proto::eventforwarder::{
    PlayerEvent, Response, RoomEvent, RoomInfo, RoomStatus, room_status::RoomStatusType,
};
use maestro_engine::room::PingStatus;
use maestro_engine::scheduler::{Forwarder, ForwarderOptions};
use maestro_engine::{ForwardEvent, ForwardKind, Time};
use maestro_store::{Lane, MemoryStore, Write};
use tokio::sync::{oneshot, watch};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use super::*;

/// What the recording forwarder received: method and room id (and the
/// event type for room events), and whether it accepted the call.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Received {
    method: &'static str,
    room: String,
    detail: String,
    accepted: bool,
}

#[derive(Clone, Default)]
struct Recorder {
    /// Every call, accepted or refused.
    received: Arc<StdMutex<Vec<Received>>>,
    /// While set, every call is recorded and answered with this error.
    refuse: Arc<StdMutex<Option<tonic::Code>>>,
}

impl Recorder {
    fn record(
        &self,
        method: &'static str,
        room: Option<&maestro_api::proto::eventforwarder::Room>,
        detail: String,
    ) -> Result<tonic::Response<Response>, tonic::Status> {
        let refuse = *self.refuse.lock().unwrap();
        self.received.lock().unwrap().push(Received {
            method,
            room: room.map(|r| r.room_id.clone()).unwrap_or_default(),
            detail,
            accepted: refuse.is_none(),
        });
        if let Some(code) = refuse {
            return Err(tonic::Status::new(code, "refused by the test"));
        }
        Ok(tonic::Response::new(Response {
            code: 200,
            message: String::new(),
        }))
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn status_name(status: &RoomStatus) -> String {
    RoomStatusType::try_from(status.status_type)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_default()
}

#[tonic::async_trait]
impl GrpcForwarder for Recorder {
    async fn send_room_info(
        &self,
        _request: tonic::Request<RoomInfo>,
    ) -> Result<tonic::Response<Response>, tonic::Status> {
        self.record("SendRoomInfo", None, String::new())
    }
    async fn send_room_status(
        &self,
        request: tonic::Request<RoomStatus>,
    ) -> Result<tonic::Response<Response>, tonic::Status> {
        let m = request.into_inner();
        self.record("SendRoomStatus", m.room.as_ref(), status_name(&m))
    }
    async fn send_room_ping(
        &self,
        request: tonic::Request<RoomStatus>,
    ) -> Result<tonic::Response<Response>, tonic::Status> {
        let m = request.into_inner();
        self.record("SendRoomPing", m.room.as_ref(), status_name(&m))
    }
    async fn send_room_resync(
        &self,
        request: tonic::Request<RoomStatus>,
    ) -> Result<tonic::Response<Response>, tonic::Status> {
        let m = request.into_inner();
        self.record("SendRoomResync", m.room.as_ref(), status_name(&m))
    }
    async fn send_room_event(
        &self,
        request: tonic::Request<RoomEvent>,
    ) -> Result<tonic::Response<Response>, tonic::Status> {
        let m = request.into_inner();
        self.record("SendRoomEvent", m.room.as_ref(), m.event_type)
    }
    async fn send_player_event(
        &self,
        request: tonic::Request<PlayerEvent>,
    ) -> Result<tonic::Response<Response>, tonic::Status> {
        let m = request.into_inner();
        self.record("SendPlayerEvent", m.room.as_ref(), m.player_id)
    }
}

/// Forwarding on `store`'s outbox, as the service starts it.
fn start(
    store: &Arc<MemoryStore>,
    config: ForwardingConfig,
    stop: watch::Receiver<bool>,
) -> Forwarding {
    Forwarding::start(
        Arc::clone(store) as Arc<dyn Outbox>,
        config,
        Clock::start(),
        stop,
    )
    .expect("the outbox reads")
}

/// A running recording server; dropping `stop` shuts it down.
struct RunningServer {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(recorder: Recorder, addr: SocketAddr) -> (RunningServer, SocketAddr) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        Server::builder()
            .add_service(GrpcForwarderServer::new(recorder))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (RunningServer { stop, task }, addr)
}

impl RunningServer {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

fn forwarder(addr: SocketAddr) -> Forwarder {
    Forwarder {
        name: "mm".into(),
        enabled: true,
        forward_type: "gRPC".into(),
        address: addr.to_string(),
        options: Some(ForwarderOptions {
            timeout_ms: 2000,
            metadata_json: "{}".into(),
        }),
    }
}

fn event(room: &str, kind: ForwardKind) -> ForwardEvent {
    ForwardEvent {
        scheduler: "arena".into(),
        game: "tennis".into(),
        room: room.into(),
        kind,
        metadata_json: "{}".into(),
        address: None,
    }
}

fn fast() -> ForwardingConfig {
    ForwardingConfig {
        window: 4,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..ForwardingConfig::default()
    }
}

/// Writes durable events as the driver does: admit, write, tell the lane.
fn push(forwarding: &Forwarding, store: &MemoryStore, events: &[ForwardEvent], to: &Forwarder) {
    let mut writes = Vec::new();
    for e in events {
        let record = record(e, to, crate::clock::wall_clock());
        assert!(forwarding.admit(&record));
        writes.push(Write::OutboxPush(Box::new(record)));
    }
    store.apply(Time(1), &writes).unwrap();
    forwarding.written([&lane()]);
}

fn lane() -> Lane {
    Lane {
        scheduler: "arena".into(),
        forwarder: "mm".into(),
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn room_event(room: &str, name: &str) -> ForwardEvent {
    event(room, ForwardKind::RoomEvent { event: name.into() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_an_outage_and_a_restart_and_arrive_in_order() {
    let store = Arc::new(MemoryStore::in_memory());
    let recorder = Recorder::default();
    let (server, addr) = serve(recorder.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let to = forwarder(addr);
    let (stop_tx, stop_rx) = watch::channel(false);
    let forwarding = start(&store, fast(), stop_rx);

    // Up: everything arrives and the outbox empties.
    push(
        &forwarding,
        &store,
        &[room_event("r1", "a"), room_event("r1", "b")],
        &to,
    );
    forwarding.resync(&event("r2", ForwardKind::Resync(PingStatus::Ready)), &to);
    until("three calls arrive", || recorder.received().len() == 3).await;
    until("the outbox empties", || {
        store.outbox_len(&lane()).unwrap() == 0
    })
    .await;

    // Down: events wait in the outbox, resyncs coalesce in memory.
    server.stop().await;
    let before = recorder.received().len();
    push(
        &forwarding,
        &store,
        &[
            room_event("r1", "c"),
            room_event("r1", "d"),
            event("r3", ForwardKind::Terminated),
            room_event("r1", "e"),
        ],
        &to,
    );
    forwarding.resync(&event("r2", ForwardKind::Resync(PingStatus::Ready)), &to);
    forwarding.resync(&event("r2", ForwardKind::Resync(PingStatus::Occupied)), &to);
    // A termination supersedes the room's unsent resync.
    forwarding.resync(&event("r3", ForwardKind::Resync(PingStatus::Ready)), &to);
    push(
        &forwarding,
        &store,
        &[event("r3", ForwardKind::Terminated)],
        &to,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        recorder.received().len(),
        before,
        "nothing arrives while down"
    );
    assert_eq!(store.outbox_len(&lane()).unwrap(), 5);

    // maestro restarts while the forwarder is still down: the durable
    // events are read back from the store.
    stop_tx.send(true).unwrap();
    forwarding.stopped().await;
    let (_stop_tx2, stop_rx2) = watch::channel(false);
    let forwarding = start(&store, fast(), stop_rx2);
    // The in-memory resync was lost with the old process; the room's next
    // ping brings a new one.
    forwarding.resync(&event("r2", ForwardKind::Resync(PingStatus::Occupied)), &to);

    // Back up on the same address: everything arrives.
    let recovered = Recorder {
        received: Arc::clone(&recorder.received),
        ..Recorder::default()
    };
    let (server, _) = serve(recovered, addr).await;
    until("the backlog arrives", || {
        recorder.received().len() == before + 6
    })
    .await;
    until("the outbox empties", || {
        store.outbox_len(&lane()).unwrap() == 0
    })
    .await;
    let after: Vec<Received> = recorder.received()[before..].to_vec();
    let r1: Vec<&str> = after
        .iter()
        .filter(|r| r.room == "r1")
        .map(|r| r.detail.as_str())
        .collect();
    assert_eq!(r1, ["c", "d", "e"], "a room's events arrive in order");
    let r2: Vec<&Received> = after.iter().filter(|r| r.room == "r2").collect();
    assert_eq!(r2.len(), 1, "resyncs are coalesced: {after:?}");
    assert_eq!(
        (r2[0].method, r2[0].detail.as_str()),
        ("SendRoomResync", "occupied")
    );
    let r3: Vec<&Received> = after.iter().filter(|r| r.room == "r3").collect();
    assert_eq!(r3.len(), 2, "both terminations, no stale resync: {after:?}");
    assert!(
        r3.iter()
            .all(|r| r.method == "SendRoomStatus" && r.detail == "terminated")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_is_given_up_and_the_lane_goes_on() {
    let store = Arc::new(MemoryStore::in_memory());
    let refusing = Recorder::default();
    *refusing.refuse.lock().unwrap() = Some(tonic::Code::Unimplemented);
    let (server, addr) = serve(refusing.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let to = forwarder(addr);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let forwarding = start(&store, fast(), stop_rx);
    push(
        &forwarding,
        &store,
        &[room_event("r1", "a"), room_event("r2", "b")],
        &to,
    );
    until("refused events leave the outbox", || {
        store.outbox_len(&lane()).unwrap() == 0
    })
    .await;
    // Each was tried once and given up: a refusal a retry cannot change is
    // not retried.
    // (Calls for different rooms run concurrently: in any order.)
    let mut calls: Vec<(String, String, bool)> = refusing
        .received()
        .into_iter()
        .map(|r| (r.room, r.detail, r.accepted))
        .collect();
    calls.sort();
    assert_eq!(
        calls,
        [
            ("r1".to_string(), "a".to_string(), false),
            ("r2".to_string(), "b".to_string(), false)
        ]
    );

    // The lane goes on: once the forwarder accepts again, the next event
    // is delivered.
    *refusing.refuse.lock().unwrap() = None;
    push(&forwarding, &store, &[room_event("r1", "c")], &to);
    until("the next event is delivered", || {
        refusing
            .received()
            .iter()
            .any(|r| r.detail == "c" && r.accepted)
    })
    .await;
    until("its acknowledgement", || {
        store.outbox_len(&lane()).unwrap() == 0
    })
    .await;
    server.stop().await;

    // A bad address is refused at once too, instead of retried forever.
    let mut bad = to.clone();
    bad.address = "not a uri at all".into();
    push(&forwarding, &store, &[room_event("r1", "d")], &bad);
    until("an unreachable address's event is given up", || {
        store.outbox_len(&lane()).unwrap() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_refuses_new_events() {
    let store = Arc::new(MemoryStore::in_memory());
    let (_stop_tx, stop_rx) = watch::channel(false);
    let config = ForwardingConfig {
        max_backlog: 2,
        ..fast()
    };
    let forwarding = start(&store, config, stop_rx);
    // Nothing listens on this address: events stay.
    let to = forwarder("127.0.0.1:9".parse().unwrap());
    let r = |room| record(&room_event(room, "x"), &to, crate::clock::wall_clock());
    assert!(forwarding.admit(&r("a")));
    assert!(forwarding.admit(&r("b")));
    assert!(!forwarding.admit(&r("c")), "the third is refused");
}

/// Each pause is between half and all of the doubling backoff (20, 40, 80,
/// 160, then 200 ms capped), and the jitter really varies it. backon
/// doubles in `f32` seconds, a few nanoseconds off: a microsecond of slack.
#[test]
fn pauses_double_cap_and_are_jittered_to_half_and_all() {
    let config = fast();
    let backoffs = [20, 40, 80, 160, 200, 200, 200].map(Duration::from_millis);
    let slack = Duration::from_micros(1);
    let mut firsts = BTreeSet::new();
    let lane = Lane {
        scheduler: "arena".to_string(),
        forwarder: "mm".to_string(),
    };
    for _ in 0..50 {
        let mut delays = pauses(&config, &lane).build();
        for (i, backoff) in backoffs.iter().enumerate() {
            let pause = delays.next().expect("the pauses never run out");
            assert!(
                pause + slack >= *backoff / 2 && pause <= *backoff + slack,
                "pause {i}: {pause:?} for a backoff of {backoff:?}"
            );
            if i == 0 {
                firsts.insert(pause);
            }
        }
    }
    assert!(firsts.len() > 1, "no jitter: {firsts:?}");
}

/// With a jitter seed the pauses replay exactly (the chaos harness needs
/// it), still jittered, and lanes draw different ones.
#[test]
fn seeded_pauses_replay_and_differ_between_lanes() {
    let config = ForwardingConfig {
        jitter_seed: Some(7),
        ..fast()
    };
    let lane = |scheduler: &str| Lane {
        scheduler: scheduler.to_string(),
        forwarder: "mm".to_string(),
    };
    let draw = |lane: &Lane| -> Vec<Duration> { pauses(&config, lane).build().take(6).collect() };
    assert_eq!(draw(&lane("arena")), draw(&lane("arena")));
    assert_ne!(draw(&lane("arena")), draw(&lane("duel")));
    let firsts: BTreeSet<Duration> = (0..20).map(|i| draw(&lane(&format!("s{i}")))[0]).collect();
    assert!(firsts.len() > 1, "no jitter: {firsts:?}");
}

/// An outbox whose acknowledgements fail, as a full or broken disk would.
struct AckFails(Arc<MemoryStore>);

impl Outbox for AckFails {
    fn lanes(&self) -> Result<Vec<Lane>, StoreError> {
        self.0.lanes()
    }

    fn page(
        &self,
        lane: &Lane,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxRecord)>, StoreError> {
        self.0.page(lane, after, limit)
    }

    fn len(&self, lane: &Lane) -> Result<u64, StoreError> {
        Outbox::len(&*self.0, lane)
    }

    fn ack(&self, _: &Lane, _: &[u64]) -> Result<(), StoreError> {
        Err(StoreError::Io("the disk refuses".into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_the_store_refuses_is_reported_and_keeps_the_events() {
    let store = Arc::new(MemoryStore::in_memory());
    let recorder = Recorder::default();
    let (server, addr) = serve(recorder.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let to = forwarder(addr);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let forwarding = Forwarding::start(
        Arc::new(AckFails(Arc::clone(&store))) as Arc<dyn Outbox>,
        fast(),
        Clock::start(),
        stop_rx,
    )
    .expect("the outbox reads");
    push(&forwarding, &store, &[room_event("r1", "a")], &to);
    let mut failures = forwarding.store_failures();
    let failure = tokio::time::timeout(Duration::from_secs(20), store_failure(&mut failures))
        .await
        .expect("the failed acknowledgement is reported");
    assert!(
        failure.to_string().contains("the disk refuses"),
        "{failure}"
    );
    // Delivered, and still in the outbox: sent again after the restart.
    assert_eq!(recorder.received().len(), 1);
    assert_eq!(store.outbox_len(&lane()).unwrap(), 1);
    server.stop().await;
}
