//! The worker protocol carries every backend call and its answer unchanged:
//! the same requests asked of a backend directly and through a worker
//! served on loopback get equal replies, and the worker refuses a caller
//! without the management token.

mod common;

use std::sync::Arc;

use common::{Api, Worker};
use maestro_api::backend::Request;
use maestro_api::remote::{RemoteBackend, worker_service};
use maestro_api::{ApiConfig, Backend, RoomReport};
use maestro_engine::query::{Query, Stage};
use maestro_engine::room::{PingStatus, RoomStatus};
use maestro_engine::{Command, ForwardKind, Millis, Ping};
use tokio::net::TcpListener;

/// Serves `backend` as the worker and returns its address.
async fn serve(backend: Arc<Worker>, config: &ApiConfig) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = tonic::service::Routes::new(worker_service(backend, config)).into_axum_router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(start_paused = true)]
async fn every_call_crosses_the_worker_unchanged() {
    let backend = Worker::new();
    let api = Api::with(backend.clone(), &ApiConfig::default());
    api.create("arena", 3).await;
    backend.advance(Millis::from_secs(10)).await;
    let rooms = api.room_ids("arena").await;
    assert_eq!(rooms.len(), 3);
    let remote = RemoteBackend::connect(&serve(backend.clone(), &ApiConfig::default()).await, None)
        .expect("a valid url");

    let scheduler = backend.scheduler("arena").await.unwrap();
    let queries = [
        Query::Schedulers,
        Query::Scheduler {
            name: "arena".into(),
            version: None,
        },
        Query::Scheduler {
            name: "arena".into(),
            version: Some("v9.0.0".into()),
        },
        Query::Versions {
            name: "arena".into(),
        },
        Query::Operations {
            scheduler: "arena".into(),
            stage: Stage::Final,
        },
        Query::Operations {
            scheduler: "nope".into(),
            stage: Stage::Pending,
        },
        Query::Rooms {
            scheduler: "arena".into(),
            status: Some(RoomStatus::Ready),
            offset: 1,
            limit: 5,
        },
        Query::Room {
            scheduler: "arena".into(),
            room: rooms[0].clone(),
        },
    ];
    for query in queries {
        let request = Request::Query(query);
        let direct = backend.call(request.clone()).await.unwrap();
        let through = remote.call(request.clone()).await.unwrap();
        assert_eq!(direct, through, "{request:?}");
    }
    // Every query kind that names an operation, by a real id.
    let operation = backend
        .read(|e| e.operations("arena").next().unwrap().id.clone())
        .await;
    let request = Request::Query(Query::Operation {
        scheduler: "arena".into(),
        id: operation,
    });
    assert_eq!(
        backend.call(request.clone()).await.unwrap(),
        remote.call(request).await.unwrap()
    );

    // Calls that change state go through the worker once, and their
    // answers are those of the engine behind it.
    let ping = Ping {
        scheduler: "arena".into(),
        room: rooms[0].clone(),
        status: PingStatus::Occupied,
        running_matches: 1,
        metadata_json: r#"{"region":"eu"}"#.into(),
    };
    assert_eq!(remote.ping(ping).await, Ok(RoomStatus::Occupied));
    assert_eq!(
        backend.room_status("arena", &rooms[0]).await,
        Some(RoomStatus::Occupied)
    );
    let allocation = remote
        .allocate("arena".into(), Some("match-1".into()))
        .await
        .expect("a ready room");
    assert_eq!(
        backend.room_status("arena", &allocation.room).await,
        Some(RoomStatus::Allocated)
    );
    let again = remote
        .allocate("arena".into(), Some("match-1".into()))
        .await
        .expect("the same allocation");
    assert_eq!(again.room, allocation.room, "the key makes it idempotent");
    let report = RoomReport {
        scheduler: "arena".into(),
        room: rooms[1].clone(),
        kind: ForwardKind::RoomEvent {
            event: "ready".into(),
        },
        metadata_json: "{}".into(),
    };
    assert_eq!(remote.report(report.clone()).await, Ok(()));
    assert_eq!(backend.reports(), [report]);

    let mut version = scheduler.clone();
    version.max_surge = "50%".into();
    let reply = remote
        .command(Command::NewSchedulerVersion(version))
        .await
        .expect("a new version");
    assert!(reply.operation_id().is_some(), "{reply:?}");
    let refused = remote
        .command(Command::CreateScheduler(scheduler))
        .await
        .expect_err("it exists");
    assert_eq!(refused.to_string(), "scheduler arena already exists");
}

#[tokio::test(start_paused = true)]
async fn the_worker_asks_for_a_management_token_when_there_are_some() {
    let config = ApiConfig {
        management_tokens: vec!["secret".into()],
        ..ApiConfig::default()
    };
    let url = serve(Worker::new(), &config).await;
    let without = RemoteBackend::connect(&url, None).unwrap();
    let error = without.schedulers().await.expect_err("no token");
    assert!(error.0.contains("management tokens"), "{error}");
    let wrong = RemoteBackend::connect(&url, Some("guess".into())).unwrap();
    assert!(wrong.schedulers().await.is_err());
    let with = RemoteBackend::connect(&url, Some("secret".into())).unwrap();
    assert_eq!(with.schedulers().await, Ok(Vec::new()));
}
