//! The gRPC services over a real socket: a server on 127.0.0.1 serving
//! HTTP and gRPC on one port, called with the generated tonic clients (and
//! plain HTTP/1.1 for the JSON side), against the real engine.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use common::Worker;
use maestro_api::proto::api::v1;
use maestro_api::{ApiConfig, grpc, room_token};
use maestro_engine::Millis;
use maestro_engine::room::RoomStatus;
use prost::Message;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use v1::operations_service_client::OperationsServiceClient;
use v1::rooms_service_client::RoomsServiceClient;
use v1::schedulers_service_client::SchedulersServiceClient;

// ----- harness -----------------------------------------------------------------

/// A server on an ephemeral loopback port, and a gRPC channel to it.
struct Server {
    addr: SocketAddr,
    channel: Channel,
    backend: Arc<Worker>,
}

impl Server {
    /// Both APIs, HTTP and gRPC, on one port (`maestro_api::router` plus
    /// `grpc::routes`), as a single-port deployment serves them.
    async fn both(backend: Arc<Worker>, config: &ApiConfig) -> Server {
        let router = maestro_api::router(backend.clone(), config)
            .merge(grpc::routes(backend.clone(), config).await);
        Server::start(router, backend).await
    }

    /// The management port as `maestro start` serves it.
    async fn management(backend: Arc<Worker>, config: &ApiConfig) -> Server {
        let router = maestro_api::management_router(backend.clone(), config)
            .merge(grpc::management_routes(backend.clone(), config).await);
        Server::start(router, backend).await
    }

    /// The rooms port as `maestro start` serves it.
    async fn rooms(backend: Arc<Worker>, config: &ApiConfig) -> Server {
        let router = maestro_api::rooms_router(backend.clone(), config)
            .merge(grpc::rooms_routes(backend.clone(), config).await);
        Server::start(router, backend).await
    }

    async fn start(router: axum::Router, backend: Arc<Worker>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Server {
            addr,
            channel,
            backend,
        }
    }

    fn schedulers(&self) -> SchedulersServiceClient<Channel> {
        SchedulersServiceClient::new(self.channel.clone())
    }

    fn operations(&self) -> OperationsServiceClient<Channel> {
        OperationsServiceClient::new(self.channel.clone())
    }

    fn rooms_client(&self) -> RoomsServiceClient<Channel> {
        RoomsServiceClient::new(self.channel.clone())
    }

    /// One HTTP/1.1 request on a fresh connection; the answer's status and JSON.
    async fn http1(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str("\r\n");
        request.push_str(&body);
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 "), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "{head}"
        );
        let status = head[9..12].parse().unwrap();
        (status, serde_json::from_str(body).unwrap())
    }

    async fn room_ids(&self, scheduler: &str) -> Vec<String> {
        self.backend.room_ids(scheduler).await
    }

    async fn room_status(&self, scheduler: &str, room: &str) -> Option<RoomStatus> {
        self.backend.room_status(scheduler, room).await
    }

    async fn host_port(&self, scheduler: &str, room: &str) -> u16 {
        self.backend
            .host_port(scheduler, room)
            .await
            .expect("the room has a host port")
    }
}

/// `message` with `authorization: Bearer <token>`.
fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn strings(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pb_struct(value: Value) -> pbjson_types::Struct {
    serde_json::from_value(value).unwrap()
}

fn container(image: &str) -> v1::Container {
    v1::Container {
        name: "game".into(),
        image: image.into(),
        image_pull_policy: "IfNotPresent".into(),
        command: vec!["./run".into(), "--fast".into()],
        environment: vec![
            v1::ContainerEnvironment {
                name: "MODE".into(),
                value: Some("prod".into()),
                value_from: None,
            },
            v1::ContainerEnvironment {
                name: "POD".into(),
                value: None,
                value_from: Some(v1::ContainerEnvironmentValueFrom {
                    field_ref: Some(v1::ContainerEnvironmentValueFromFieldRef {
                        field_path: "metadata.name".into(),
                    }),
                    secret_key_ref: None,
                }),
            },
            v1::ContainerEnvironment {
                name: "TOKEN".into(),
                value: None,
                value_from: Some(v1::ContainerEnvironmentValueFrom {
                    field_ref: None,
                    secret_key_ref: Some(v1::ContainerEnvironmentValueFromSecretKeyRef {
                        name: "secrets".into(),
                        key: "token".into(),
                    }),
                }),
            },
        ],
        requests: Some(v1::ContainerResources {
            memory: "64Mi".into(),
            cpu: "100m".into(),
        }),
        limits: Some(v1::ContainerResources {
            memory: "128Mi".into(),
            cpu: "200m".into(),
        }),
        ports: vec![v1::ContainerPort {
            name: "game".into(),
            protocol: "udp".into(),
            port: 7777,
            host_port: 0,
            host_port_range: None,
        }],
    }
}

/// A scheduler using every field of the request.
/// The image `create_request` sets.
const IMAGE: &str = "registry.example/game:1";

fn create_request(name: &str, replicas: i32) -> v1::CreateSchedulerRequest {
    v1::CreateSchedulerRequest {
        name: name.into(),
        game: "game".into(),
        spec: Some(v1::Spec {
            version: String::new(),
            termination_grace_period: Some(pbjson_types::Duration {
                seconds: 45,
                nanos: 0,
            }),
            containers: vec![container(IMAGE)],
            toleration: "dedicated".into(),
            affinity: "game-nodes".into(),
            restart_policy: Some("OnFailure".into()),
        }),
        port_range: Some(v1::PortRange {
            start: 20000,
            end: 21000,
        }),
        max_surge: "25%".into(),
        rooms_replicas: replicas,
        autoscaling: Some(v1::Autoscaling {
            enabled: false,
            min: 1,
            max: 5,
            policy: Some(v1::AutoscalingPolicy {
                r#type: "roomOccupancy".into(),
                parameters: Some(v1::PolicyParameters {
                    room_occupancy: Some(v1::RoomOccupancy {
                        ready_target: 0.5,
                        down_threshold: Some(0.7),
                    }),
                    fixed_buffer: None,
                }),
            }),
            cooldown: 10,
        }),
        forwarders: vec![v1::Forwarder {
            name: "matchmaker".into(),
            enable: false,
            r#type: "gRPC".into(),
            address: "matchmaker:9000".into(),
            options: Some(v1::ForwarderOptions {
                timeout: 1500,
                metadata: Some(pb_struct(json!({"region": "eu", "weight": 2}))),
            }),
        }],
        annotations: strings(&[("owner", "core-team")]),
        labels: strings(&[("tier", "gold")]),
        match_allocation: Some(v1::MatchAllocation { max_matches: 1 }),
    }
}

async fn create(server: &Server, name: &str, replicas: i32) -> v1::Scheduler {
    server
        .schedulers()
        .create_scheduler(create_request(name, replicas))
        .await
        .unwrap()
        .into_inner()
        .scheduler
        .unwrap()
}

/// The scheduler's fields that `create_request` set, as stored.
fn assert_round_trip(s: &v1::Scheduler, name: &str, replicas: i32) {
    assert_eq!((s.name.as_str(), s.game.as_str()), (name, "game"));
    assert_eq!(s.rooms_replicas, replicas);
    assert_eq!(s.max_surge, "25%");
    assert_eq!(
        s.port_range,
        Some(v1::PortRange {
            start: 20000,
            end: 21000
        })
    );
    assert!(s.created_at.is_some());
    let spec = s.spec.as_ref().unwrap();
    assert_eq!(
        spec.termination_grace_period,
        Some(pbjson_types::Duration {
            seconds: 45,
            nanos: 0
        })
    );
    assert_eq!(
        (spec.toleration.as_str(), spec.affinity.as_str()),
        ("dedicated", "game-nodes")
    );
    assert_eq!(spec.restart_policy.as_deref(), Some("OnFailure"));
    assert_eq!(
        spec.containers,
        vec![container(IMAGE)],
        "every container field"
    );
    let autoscaling = s.autoscaling.as_ref().unwrap();
    assert_eq!(
        (
            autoscaling.enabled,
            autoscaling.min,
            autoscaling.max,
            autoscaling.cooldown
        ),
        (false, 1, 5, 10)
    );
    let policy = autoscaling.policy.as_ref().unwrap();
    assert_eq!(policy.r#type, "roomOccupancy");
    let occupancy = policy
        .parameters
        .as_ref()
        .unwrap()
        .room_occupancy
        .as_ref()
        .unwrap();
    assert_eq!(
        (occupancy.ready_target, occupancy.down_threshold),
        (0.5, Some(0.7))
    );
    assert_eq!(s.forwarders.len(), 1);
    let forwarder = &s.forwarders[0];
    assert_eq!(
        (
            forwarder.name.as_str(),
            forwarder.enable,
            forwarder.r#type.as_str(),
            forwarder.address.as_str()
        ),
        ("matchmaker", false, "gRPC", "matchmaker:9000")
    );
    let options = forwarder.options.as_ref().unwrap();
    assert_eq!(options.timeout, 1500);
    assert_eq!(
        options.metadata,
        Some(pb_struct(json!({"region": "eu", "weight": 2})))
    );
    assert_eq!(s.annotations, strings(&[("owner", "core-team")]));
    assert_eq!(s.labels, strings(&[("tier", "gold")]));
    assert_eq!(
        s.match_allocation,
        Some(v1::MatchAllocation { max_matches: 1 })
    );
}

fn assert_status<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code) -> String {
    match result {
        Ok(answer) => panic!("expected {code:?}, got {answer:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            status.message().to_string()
        }
    }
}

// ----- schedulers ----------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_scheduler_lifecycle_over_grpc() {
    let server = Server::both(Worker::new(), &ApiConfig::default()).await;
    let mut schedulers = server.schedulers();

    let created = create(&server, "arena", 2).await;
    assert_round_trip(&created, "arena", 2);
    assert_eq!(created.state, "creating");
    assert_eq!(created.spec.as_ref().unwrap().version, "v1.0.0");

    let got = schedulers
        .get_scheduler(v1::GetSchedulerRequest {
            scheduler_name: "arena".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let scheduler = got.scheduler.clone().unwrap();
    assert_round_trip(&scheduler, "arena", 2);
    assert_eq!(scheduler.state, "in-sync");
    // The same port answers the same scheduler over HTTP/1.1 JSON.
    let (status, json) = server.http1("GET", "/schedulers/arena", None).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(
        json["scheduler"]["forwarders"][0]["options"]["timeout"],
        "1500"
    );
    let over_http: v1::GetSchedulerResponse = serde_json::from_value(json).unwrap();
    assert_eq!(over_http, got);

    let list = schedulers
        .list_schedulers(v1::ListSchedulersRequest {
            game: "game".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.schedulers.len(), 1);
    let item = &list.schedulers[0];
    assert_eq!(
        (
            item.name.as_str(),
            item.version.as_str(),
            item.rooms_replicas
        ),
        ("arena", "v1.0.0", 2)
    );
    assert_eq!(
        item.match_allocation,
        Some(v1::MatchAllocation { max_matches: 1 })
    );
    let none = schedulers
        .list_schedulers(v1::ListSchedulersRequest {
            game: "other".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.schedulers.is_empty());

    let info = schedulers
        .get_schedulers_info(v1::GetSchedulersInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    let info = &info.schedulers[0];
    assert_eq!(
        (
            info.name.as_str(),
            info.state.as_str(),
            info.rooms_ready,
            info.rooms_pending
        ),
        ("arena", "in-sync", 2, 0)
    );
    assert_eq!(
        info.autoscaling,
        Some(v1::AutoscalingInfo {
            enabled: false,
            min: 1,
            max: 5,
            cooldown: 10
        })
    );

    // A new version (major: the image changes), then a patch.
    let mut v2 = create_request("ignored: the name field names the scheduler", 2);
    v2.spec.as_mut().unwrap().containers[0].image = "registry.example/game:2".into();
    let v2 = v1::NewSchedulerVersionRequest {
        name: "arena".into(),
        game: v2.game,
        spec: v2.spec,
        port_range: v2.port_range,
        max_surge: v2.max_surge,
        rooms_replicas: v2.rooms_replicas,
        autoscaling: v2.autoscaling,
        forwarders: v2.forwarders,
        annotations: v2.annotations,
        labels: v2.labels,
        match_allocation: v2.match_allocation,
    };
    let op = schedulers
        .new_scheduler_version(v2)
        .await
        .unwrap()
        .into_inner();
    assert!(!op.operation_id.is_empty());
    server.backend.advance(Millis::from_secs(10)).await;

    let patch = v1::PatchSchedulerRequest {
        name: "arena".into(),
        rooms_replicas: Some(3),
        labels: strings(&[("tier", "silver")]),
        spec: Some(v1::OptionalSpec {
            termination_grace_period: Some(pbjson_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let op = schedulers
        .patch_scheduler(patch)
        .await
        .unwrap()
        .into_inner();
    assert!(!op.operation_id.is_empty());
    server.backend.advance(Millis::from_secs(10)).await;
    let patched = schedulers
        .get_scheduler(v1::GetSchedulerRequest {
            scheduler_name: "arena".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .scheduler
        .unwrap();
    assert_eq!(patched.rooms_replicas, 3);
    assert_eq!(patched.labels, strings(&[("tier", "silver")]));
    let spec = patched.spec.unwrap();
    assert_eq!(spec.containers[0].image, "registry.example/game:2");
    assert_eq!(spec.termination_grace_period.unwrap().seconds, 60);
    // Labels and the spec are what rooms run: a major version.
    assert_eq!(spec.version, "v3.0.0");

    let versions = schedulers
        .get_scheduler_versions(v1::GetSchedulerVersionsRequest {
            scheduler_name: "arena".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    let listed: Vec<(&str, bool)> = versions
        .iter()
        .map(|v| (v.version.as_str(), v.is_active))
        .collect();
    assert_eq!(
        listed,
        [("v3.0.0", true), ("v2.0.0", false), ("v1.0.0", false)]
    );
    assert!(versions.iter().all(|v| v.created_at.is_some()));

    // A given version, then switching back to it.
    let v1_0 = schedulers
        .get_scheduler(v1::GetSchedulerRequest {
            scheduler_name: "arena".into(),
            version: "v1.0.0".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .scheduler
        .unwrap();
    assert_eq!(v1_0.spec.unwrap().containers[0].image, IMAGE);
    let op = schedulers
        .switch_active_version(v1::SwitchActiveVersionRequest {
            scheduler_name: "arena".into(),
            version: "v1.0.0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!op.operation_id.is_empty());
    server.backend.advance(Millis::from_secs(10)).await;
    let active = schedulers
        .get_scheduler(v1::GetSchedulerRequest {
            scheduler_name: "arena".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .scheduler
        .unwrap();
    assert_eq!(active.spec.unwrap().version, "v1.0.0");

    let op = schedulers
        .delete_scheduler(v1::DeleteSchedulerRequest {
            scheduler_name: "arena".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!op.operation_id.is_empty());
    server.backend.advance(Millis::from_secs(200)).await;
    let gone = schedulers
        .get_scheduler(v1::GetSchedulerRequest {
            scheduler_name: "arena".into(),
            version: String::new(),
        })
        .await;
    assert_eq!(
        assert_status(gone, Code::NotFound),
        "scheduler arena not found"
    );
}

// ----- operations ------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn operations_list_get_and_cancel() {
    // Time stands still: create_scheduler stays in progress, so what is
    // enqueued after it stays pending.
    let server = Server::both(Worker::frozen(), &ApiConfig::default()).await;
    let mut operations = server.operations();
    create(&server, "arena", 0).await;
    let pending_id = server
        .schedulers()
        .patch_scheduler(v1::PatchSchedulerRequest {
            name: "arena".into(),
            rooms_replicas: Some(2),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .operation_id;

    let list = |stage: &str| v1::ListOperationsRequest {
        scheduler_name: "arena".into(),
        stage: stage.into(),
        ..Default::default()
    };
    let active = operations
        .list_operations(list("active"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(active.operations.len(), 1);
    assert_eq!(active.operations[0].definition_name, "create_scheduler");
    assert_eq!(active.operations[0].status, "in_progress");
    assert!(
        active.operations[0].lease.is_some(),
        "a running operation has a lease"
    );
    let pending = operations
        .list_operations(list("pending"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (pending.total, pending.page_size),
        (Some(1), Some(1)),
        "{pending:?}"
    );
    assert_eq!(pending.operations[0].id, pending_id);
    assert_eq!(pending.operations[0].lease, None);

    let cancel = v1::CancelOperationRequest {
        scheduler_name: "arena".into(),
        operation_id: pending_id.clone(),
    };
    let canceled = operations.cancel_operation(cancel.clone()).await.unwrap();
    assert_eq!(canceled.into_inner(), v1::CancelOperationResponse {});
    let op = operations
        .get_operation(v1::GetOperationRequest {
            scheduler_name: "arena".into(),
            operation_id: pending_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .operation
        .unwrap();
    assert_eq!(
        (
            op.id.as_str(),
            op.status.as_str(),
            op.definition_name.as_str()
        ),
        (
            pending_id.as_str(),
            "canceled",
            "create_new_scheduler_version"
        )
    );
    assert_eq!(op.scheduler_name, "arena");
    assert!(op.created_at.is_some());
    assert!(!op.execution_history.is_empty());
    let input = serde_json::to_value(op.input.unwrap()).unwrap();
    // A Struct's numbers are doubles.
    assert_eq!(input["scheduler"]["RoomsReplicas"], 2.0, "{input}");
    assert_eq!(
        input["scheduler"]["Autoscaling"]["Policy"]["Parameters"]["RoomOccupancy"]["DownThreshold"],
        0.7,
        "a float travels in its shortest form: {input}"
    );
    let again = operations.cancel_operation(cancel).await;
    assert_eq!(assert_status(again, Code::Aborted), "operation is canceled");

    // Errors are the HTTP API's, with their codes.
    let bogus = operations.list_operations(list("bogus")).await;
    let message = assert_status(bogus, Code::InvalidArgument);
    assert!(message.starts_with("invalid stage filter"), "{message}");
    let paged = operations
        .list_operations(v1::ListOperationsRequest {
            page: Some(1),
            ..list("pending")
        })
        .await;
    assert_eq!(
        assert_status(paged, Code::InvalidArgument),
        "there is no pagination filter implemented in : pending stage"
    );
    let order = operations
        .list_operations(v1::ListOperationsRequest {
            order_by: "name".into(),
            ..list("final")
        })
        .await;
    assert_eq!(
        assert_status(order, Code::InvalidArgument),
        "invalid sorting field: name"
    );
    let missing = operations
        .get_operation(v1::GetOperationRequest {
            scheduler_name: "arena".into(),
            operation_id: "no-such-id".into(),
        })
        .await;
    assert_eq!(
        assert_status(missing, Code::NotFound),
        "operation no-such-id not found"
    );
}

#[tokio::test(start_paused = true)]
async fn final_operations_paginate_and_sort() {
    let server = Server::both(Worker::new(), &ApiConfig::default()).await;
    let mut operations = server.operations();
    create(&server, "arena", 0).await;
    for replicas in 1..=3 {
        server
            .schedulers()
            .patch_scheduler(v1::PatchSchedulerRequest {
                name: "arena".into(),
                rooms_replicas: Some(replicas),
                ..Default::default()
            })
            .await
            .unwrap();
        server.backend.advance(Millis::from_secs(5)).await;
    }
    let page = |page, per_page, order: &str| v1::ListOperationsRequest {
        scheduler_name: "arena".into(),
        stage: "final".into(),
        order_by: order.into(),
        page: Some(page),
        per_page: Some(per_page),
    };
    let all = operations
        .list_operations(page(1, 100, "createdAt asc"))
        .await
        .unwrap()
        .into_inner();
    let total = all.total.unwrap();
    assert!(total >= 4, "{all:?}");
    assert_eq!(all.operations[0].definition_name, "create_scheduler");
    assert!(
        all.operations
            .windows(2)
            .all(|w| w[0].created_at.as_ref().unwrap().seconds
                <= w[1].created_at.as_ref().unwrap().seconds)
    );
    let second = operations
        .list_operations(page(2, 2, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((second.page, second.page_size), (Some(2), Some(2)));
    assert_eq!(second.total, Some(total));
    assert_eq!(second.operations.len(), 2);
    // Newest first by default, as the HTTP route pages them.
    let (status, json) = server
        .http1(
            "GET",
            "/schedulers/arena/operations?stage=final&page=2&perPage=2",
            None,
        )
        .await;
    assert_eq!(status, 200, "{json}");
    let over_http: v1::ListOperationsResponse = serde_json::from_value(json).unwrap();
    assert_eq!(over_http, second);
    let first = operations
        .list_operations(page(1, 2, ""))
        .await
        .unwrap()
        .into_inner();
    let seconds = |r: &v1::ListOperationsResponse| -> Vec<i64> {
        r.operations
            .iter()
            .map(|o| o.created_at.as_ref().unwrap().seconds)
            .collect()
    };
    let newest_first: Vec<i64> = seconds(&first)
        .into_iter()
        .chain(seconds(&second))
        .collect();
    assert!(
        newest_first.windows(2).all(|w| w[0] >= w[1]),
        "{newest_first:?}"
    );
}

// ----- rooms --------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn rooms_ping_events_address_and_listing() {
    let server = Server::both(Worker::new(), &ApiConfig::default()).await;
    let mut rooms = server.rooms_client();
    create(&server, "arena", 3).await;
    let ids = server.room_ids("arena").await;
    assert_eq!(ids.len(), 3);

    let listing = rooms
        .list_rooms(v1::ListRoomsRequest {
            scheduler_name: "arena".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (listing.page, listing.page_size, listing.total),
        (1, 100, 3)
    );
    let listed: Vec<&str> = listing.rooms.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(listed, ids);
    let room = &listing.rooms[0];
    assert_eq!(
        (
            room.status.as_str(),
            room.version.as_str(),
            room.running_matches
        ),
        ("ready", "v1.0.0", 0)
    );
    assert!(room.last_ping_at.is_some());
    let port = v1::Port {
        name: "game".into(),
        protocol: "udp".into(),
        port: i32::from(server.host_port("arena", &room.id).await),
    };
    assert_eq!(
        room.address,
        Some(v1::RoomAddress {
            host: "node-1.sim".into(),
            ports: vec![port.clone()],
        })
    );
    let page_two = rooms
        .list_rooms(v1::ListRoomsRequest {
            scheduler_name: "arena".into(),
            page: Some(2),
            per_page: Some(2),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (page_two.page, page_two.page_size, page_two.total),
        (2, 2, 3)
    );
    assert_eq!(page_two.rooms.len(), 1);
    assert_eq!(page_two.rooms[0].id, ids[2]);

    // A ping with every field: int64s travel as strings, metadata as a Struct.
    let ping = v1::UpdateRoomWithPingRequest {
        scheduler_name: "arena".into(),
        room_name: ids[1].clone(),
        metadata: Some(pb_struct(json!({"map": "dust"}))),
        status: "occupied".into(),
        timestamp: 12_312_312_313,
        running_matches: 1,
    };
    let answer = rooms.update_room_with_ping(ping.clone()).await.unwrap();
    assert!(answer.into_inner().success);
    assert_eq!(
        server.room_status("arena", &ids[1]).await,
        Some(RoomStatus::Occupied)
    );
    let occupied = rooms
        .list_rooms(v1::ListRoomsRequest {
            scheduler_name: "arena".into(),
            status: "occupied".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(occupied.total, 1);
    assert_eq!(
        (
            occupied.rooms[0].id.as_str(),
            occupied.rooms[0].running_matches
        ),
        (ids[1].as_str(), 1)
    );
    let unknown = rooms
        .update_room_with_ping(v1::UpdateRoomWithPingRequest {
            room_name: "ghost".into(),
            ..ping.clone()
        })
        .await
        .unwrap();
    assert!(!unknown.into_inner().success, "a ping the engine refuses");
    let bad = rooms
        .update_room_with_ping(v1::UpdateRoomWithPingRequest {
            status: "sleeping".into(),
            ..ping
        })
        .await;
    let message = assert_status(bad, Code::InvalidArgument);
    assert!(
        message.starts_with("status: \"sleeping\" is not a ping status"),
        "{message}"
    );

    // Events reach the backend with their metadata.
    let event = rooms
        .forward_room_event(v1::ForwardRoomEventRequest {
            scheduler_name: "arena".into(),
            room_name: ids[0].clone(),
            metadata: Some(pb_struct(json!({"round": 3}))),
            event: "roundStarted".into(),
            timestamp: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        event,
        v1::ForwardRoomEventResponse {
            success: true,
            message: String::new()
        }
    );
    let player = v1::ForwardPlayerEventRequest {
        scheduler_name: "arena".into(),
        room_name: ids[0].clone(),
        metadata: Some(pb_struct(json!({"playerId": "p1"}))),
        event: "playerJoin".into(),
        timestamp: 2,
    };
    let joined = rooms.forward_player_event(player.clone()).await.unwrap();
    assert!(joined.into_inner().success);
    let reports = server.backend.reports();
    assert_eq!(reports.len(), 2);
    // As protojson writes it: the Struct's double 3.0 is `3`.
    assert_eq!(reports[0].metadata_json, r#"{"round":3}"#);
    assert_eq!(reports[1].room, ids[0]);
    let ghost = rooms
        .forward_player_event(v1::ForwardPlayerEventRequest {
            room_name: "ghost".into(),
            ..player.clone()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!ghost.success);
    assert_eq!(ghost.message, "room ghost of scheduler arena not found");
    let anonymous = rooms
        .forward_player_event(v1::ForwardPlayerEventRequest {
            metadata: None,
            ..player
        })
        .await;
    let message = assert_status(anonymous, Code::InvalidArgument);
    assert!(
        message.starts_with("metadata.playerId: required"),
        "{message}"
    );

    // The deprecated status call is accepted and changes nothing.
    let status = rooms
        .update_room_status(v1::UpdateRoomStatusRequest {
            scheduler_name: "arena".into(),
            room_name: ids[0].clone(),
            status: "occupied".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(status.into_inner().success);
    assert_eq!(
        server.room_status("arena", &ids[0]).await,
        Some(RoomStatus::Ready)
    );

    let address = rooms
        .get_room_address(v1::GetRoomAddressRequest {
            scheduler_name: "arena".into(),
            room_name: ids[0].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        address,
        v1::GetRoomAddressResponse {
            ports: vec![port],
            host: "node-1.sim".into(),
            ipv6_label: String::new()
        }
    );
    let ghost = rooms
        .get_room_address(v1::GetRoomAddressRequest {
            scheduler_name: "arena".into(),
            room_name: "ghost".into(),
        })
        .await;
    assert_eq!(
        assert_status(ghost, Code::NotFound),
        "room ghost of scheduler arena not found"
    );
}

#[tokio::test(start_paused = true)]
async fn allocate_is_idempotent_by_metadata_or_field() {
    let server = Server::both(Worker::new(), &ApiConfig::default()).await;
    let mut rooms = server.rooms_client();
    create(&server, "arena", 2).await;
    let allocate = |key: Option<&str>, field: &str| {
        let mut request = Request::new(v1::AllocateRoomRequest {
            scheduler_name: "arena".into(),
            idempotency_key: field.into(),
        });
        if let Some(key) = key {
            request
                .metadata_mut()
                .insert("idempotency-key", key.parse().unwrap());
        }
        request
    };
    let first = rooms
        .allocate_room(allocate(Some("match-42"), ""))
        .await
        .unwrap()
        .into_inner();
    assert!(first.success, "{first:?}");
    assert_eq!(first.host, "node-1.sim");
    assert_eq!(
        first.ports[0].port,
        i32::from(server.host_port("arena", &first.room_id).await)
    );
    assert_eq!(first.ports.len(), 1);
    assert_eq!(
        server.room_status("arena", &first.room_id).await,
        Some(RoomStatus::Allocated)
    );
    let again = rooms
        .allocate_room(allocate(Some("match-42"), ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.room_id, first.room_id);
    let by_field = rooms
        .allocate_room(allocate(None, "match-42"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_field.room_id, first.room_id);
    let other = rooms
        .allocate_room(allocate(None, "match-43"))
        .await
        .unwrap()
        .into_inner();
    assert!(other.success);
    assert_ne!(other.room_id, first.room_id);
    let none = rooms
        .allocate_room(allocate(None, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        none,
        v1::AllocateRoomResponse {
            room_id: String::new(),
            success: false,
            message: "no ready room available".into(),
            ports: vec![],
            host: String::new()
        }
    );
    let unknown = rooms
        .allocate_room(v1::AllocateRoomRequest {
            scheduler_name: "nope".into(),
            idempotency_key: String::new(),
        })
        .await;
    assert_status(unknown, Code::NotFound);
}

// ----- errors and auth ------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn errors_carry_the_http_apis_codes_and_messages() {
    let server = Server::both(Worker::new(), &ApiConfig::default()).await;
    let mut schedulers = server.schedulers();
    let missing = schedulers
        .get_scheduler(v1::GetSchedulerRequest {
            scheduler_name: "nope".into(),
            version: String::new(),
        })
        .await;
    assert_eq!(
        assert_status(missing, Code::NotFound),
        "scheduler nope not found"
    );
    let missing = schedulers
        .get_scheduler_versions(v1::GetSchedulerVersionsRequest {
            scheduler_name: "nope".into(),
        })
        .await;
    assert_status(missing, Code::NotFound);

    let mut invalid = create_request("Not A Valid Name", 1);
    invalid.game = String::new();
    let message = assert_status(
        schedulers.create_scheduler(invalid).await,
        Code::InvalidArgument,
    );
    assert!(message.starts_with("Validation Error:\n"), "{message}");
    assert!(message.contains("name: "), "{message}");
    assert!(message.contains("game: "), "{message}");

    create(&server, "arena", 0).await;
    let twice = schedulers
        .create_scheduler(create_request("arena", 0))
        .await;
    let message = assert_status(twice, Code::AlreadyExists);
    assert!(message.contains("arena"), "{message}");
    let empty_patch = schedulers
        .patch_scheduler(v1::PatchSchedulerRequest {
            name: "arena".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        assert_status(empty_patch, Code::AlreadyExists),
        "no change found"
    );
    let bad_surge = schedulers
        .patch_scheduler(v1::PatchSchedulerRequest {
            name: "arena".into(),
            max_surge: Some("0".into()),
            ..Default::default()
        })
        .await;
    let message = assert_status(bad_surge, Code::InvalidArgument);
    assert!(message.contains("maxSurge: "), "{message}");
    let bad_version = schedulers
        .switch_active_version(v1::SwitchActiveVersionRequest {
            scheduler_name: "arena".into(),
            version: "latest".into(),
        })
        .await;
    assert_status(bad_version, Code::InvalidArgument);

    // A path field must be set: proto3 cannot tell empty from unset.
    let unnamed = schedulers
        .get_scheduler(v1::GetSchedulerRequest::default())
        .await;
    assert_eq!(
        assert_status(unnamed, Code::InvalidArgument),
        "scheduler_name: is required"
    );
    let info = schedulers
        .get_schedulers_info(v1::GetSchedulersInfoRequest {
            game: "nope".into(),
        })
        .await;
    assert_eq!(
        assert_status(info, Code::NotFound),
        "no schedulers found for game nope"
    );
    let rooms = server
        .rooms_client()
        .list_rooms(v1::ListRoomsRequest {
            scheduler_name: "arena".into(),
            status: "busy".into(),
            ..Default::default()
        })
        .await;
    let message = assert_status(rooms, Code::InvalidArgument);
    assert!(message.starts_with("invalid status filter"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn tokens_apply_over_grpc_as_over_http() {
    let secret = b"rooms-secret".to_vec();
    let config = ApiConfig {
        management_tokens: vec!["operator-token".into()],
        rooms_secret: Some(secret.clone()),
        ..ApiConfig::default()
    };
    let server = Server::both(Worker::new(), &config).await;
    let mut schedulers = server.schedulers();
    let anonymous = schedulers
        .list_schedulers(v1::ListSchedulersRequest::default())
        .await;
    assert_eq!(
        assert_status(anonymous, Code::Unauthenticated),
        "missing bearer token"
    );
    let wrong = schedulers
        .list_schedulers(bearer(v1::ListSchedulersRequest::default(), "guess"))
        .await;
    assert_eq!(
        assert_status(wrong, Code::Unauthenticated),
        "invalid bearer token"
    );
    schedulers
        .create_scheduler(bearer(create_request("arena", 2), "operator-token"))
        .await
        .unwrap();
    let listed = schedulers
        .list_schedulers(bearer(
            v1::ListSchedulersRequest::default(),
            "operator-token",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.schedulers.len(), 1);

    let ids = server.room_ids("arena").await;
    let (a, b) = (&ids[0], &ids[1]);
    let token_a = room_token(&secret, "arena", a);
    let mut rooms = server.rooms_client();
    let ping = |room: &str| v1::UpdateRoomWithPingRequest {
        scheduler_name: "arena".into(),
        room_name: room.into(),
        status: "occupied".into(),
        ..Default::default()
    };
    let anonymous = rooms.update_room_with_ping(ping(a)).await;
    assert_eq!(
        assert_status(anonymous, Code::Unauthenticated),
        "missing room token"
    );
    let answer = rooms
        .update_room_with_ping(bearer(ping(a), &token_a))
        .await
        .unwrap();
    assert!(answer.into_inner().success);
    // Room A cannot ping as room B.
    let as_other = rooms.update_room_with_ping(bearer(ping(b), &token_a)).await;
    assert_eq!(
        assert_status(as_other, Code::Unauthenticated),
        format!("invalid room token for arena/{b}")
    );
    assert_eq!(
        server.room_status("arena", b).await,
        Some(RoomStatus::Ready)
    );
    // Allocation is a matchmaker's call: management tokens, not room tokens.
    let allocate = || v1::AllocateRoomRequest {
        scheduler_name: "arena".into(),
        idempotency_key: String::new(),
    };
    let by_room = rooms.allocate_room(bearer(allocate(), &token_a)).await;
    assert_status(by_room, Code::Unauthenticated);
    let allocated = rooms
        .allocate_room(bearer(allocate(), "operator-token"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(allocated.room_id, *b);
    let listing = rooms
        .list_rooms(v1::ListRoomsRequest {
            scheduler_name: "arena".into(),
            ..Default::default()
        })
        .await;
    assert_status(listing, Code::Unauthenticated);
}

// ----- one port, health, reflection ----------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_grpc_port_answers_http_json_too() {
    let server = Server::both(Worker::new(), &ApiConfig::default()).await;
    let body = json!({
        "name": "arena", "game": "game", "roomsReplicas": "1", "maxSurge": "1",
        "spec": {"terminationGracePeriod": "30s", "containers": [{
            "name": "game", "image": "game:1", "imagePullPolicy": "Always",
            "requests": {"memory": "64Mi", "cpu": "100m"},
            "limits": {"memory": "64Mi", "cpu": "100m"},
            "ports": [{"name": "game", "protocol": "udp", "port": 7777}]}]},
        "portRange": {"start": 20000, "end": 21000}
    });
    let (status, answer) = server.http1("POST", "/schedulers", Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
    let got = server
        .schedulers()
        .get_scheduler(v1::GetSchedulerRequest {
            scheduler_name: "arena".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .scheduler
        .unwrap();
    assert_eq!(got.rooms_replicas, 1);
    assert_eq!(
        got.spec.unwrap().termination_grace_period.unwrap().seconds,
        30
    );
    let (status, answer) = server.http1("GET", "/nowhere", None).await;
    assert_eq!(
        (status, answer),
        (
            404,
            json!({"code": 5, "message": "Not Found", "details": []})
        )
    );
    let (status, answer) = server.http1("GET", "/schedulers/arena/rooms", None).await;
    assert_eq!((status, answer["total"].clone()), (200, json!(1)));
}

#[tokio::test(start_paused = true)]
async fn each_port_serves_its_own_services() {
    let backend = Worker::new();
    let config = ApiConfig::default();
    let management = Server::management(backend.clone(), &config).await;
    let rooms = Server::rooms(backend.clone(), &config).await;
    create(&management, "arena", 1).await;
    let ids = management.room_ids("arena").await;

    let ping = v1::UpdateRoomWithPingRequest {
        scheduler_name: "arena".into(),
        room_name: ids[0].clone(),
        status: "occupied".into(),
        ..Default::default()
    };
    let on_management = management
        .rooms_client()
        .update_room_with_ping(ping.clone())
        .await;
    assert_status(on_management, Code::Unimplemented);
    let on_rooms = rooms
        .rooms_client()
        .update_room_with_ping(ping)
        .await
        .unwrap();
    assert!(on_rooms.into_inner().success);
    let listed = rooms
        .schedulers()
        .list_schedulers(v1::ListSchedulersRequest::default())
        .await;
    assert_status(listed, Code::Unimplemented);
    // RoomsService's ListRooms is served where RoomsService is.
    let listing = rooms
        .rooms_client()
        .list_rooms(v1::ListRoomsRequest {
            scheduler_name: "arena".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listing.total, 1);
    // Plain HTTP on each port is that port's API only.
    let (status, _) = rooms.http1("GET", "/schedulers", None).await;
    assert_eq!(status, 404);
    let (status, _) = management.http1("GET", "/schedulers", None).await;
    assert_eq!(status, 200);

    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    for (server, serving, absent) in [
        (
            &management,
            &["", "api.v1.SchedulersService", "api.v1.OperationsService"][..],
            "api.v1.RoomsService",
        ),
        (
            &rooms,
            &["", "api.v1.RoomsService"][..],
            "api.v1.SchedulersService",
        ),
    ] {
        let mut health = HealthClient::new(server.channel.clone());
        for service in serving {
            let answer = health
                .check(HealthCheckRequest {
                    service: service.to_string(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
        }
        let unknown = health
            .check(HealthCheckRequest {
                service: absent.to_string(),
            })
            .await;
        assert_status(unknown, Code::NotFound);
    }
}

#[tokio::test(start_paused = true)]
async fn health_reports_every_service_serving() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let server = Server::both(Worker::new(), &ApiConfig::default()).await;
    let mut health = HealthClient::new(server.channel.clone());
    for service in [
        "",
        "api.v1.SchedulersService",
        "api.v1.OperationsService",
        "api.v1.RoomsService",
    ] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn reflection_lists_and_describes_the_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = Server::both(Worker::new(), &ApiConfig::default()).await;
    let mut client = ServerReflectionClient::new(server.channel.clone());
    let ask = |request: MessageRequest| {
        futures::stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        }])
    };
    let mut answers = client
        .server_reflection_info(ask(MessageRequest::ListServices(String::new())))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    let want: BTreeSet<String> = [
        "api.v1.SchedulersService",
        "api.v1.OperationsService",
        "api.v1.RoomsService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(names, want);

    let mut answers = client
        .server_reflection_info(ask(MessageRequest::FileContainingSymbol(
            "api.v1.RoomsService".into(),
        )))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
        panic!("not a file descriptor: {answer:?}");
    };
    let files: Vec<prost_types::FileDescriptorProto> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .collect();
    let rooms = files
        .iter()
        .find(|f| f.name() == "api/v1/rooms.proto")
        .expect("rooms.proto");
    let methods: Vec<&str> = rooms.service[0].method.iter().map(|m| m.name()).collect();
    assert!(methods.contains(&"ListRooms"), "{methods:?}");
    assert!(methods.contains(&"UpdateRoomWithPing"), "{methods:?}");
}
