//! The rooms API, route by route, against the real engine.

mod common;

use axum::http::StatusCode;
use common::{Api, Worker, error_message, send};
use maestro_api::{ApiConfig, room_token};
use maestro_engine::room::RoomStatus;
use maestro_engine::{ForwardKind, Millis, PlayerEventKind};
use serde_json::json;

const OK: StatusCode = StatusCode::OK;
const BAD_REQUEST: StatusCode = StatusCode::BAD_REQUEST;
const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;
const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;

/// An API with `arena` created and `rooms` ready rooms; returns their ids.
async fn arena(rooms: i64) -> (Api, Vec<String>) {
    let api = Api::new();
    api.create("arena", rooms).await;
    let ids = api.room_ids("arena").await;
    assert_eq!(ids.len(), rooms as usize);
    (api, ids)
}

#[tokio::test(start_paused = true)]
async fn ping_changes_the_room_status() {
    let (api, ids) = arena(1).await;
    let uri = format!("/scheduler/arena/rooms/{}/ping", ids[0]);
    // The e2e suite sends the int64 timestamp as a string.
    let body =
        json!({"status": "occupied", "timestamp": "12312312313", "metadata": {"map": "dust"}});
    let (status, answer) = api.put(&uri, &body).await;
    assert_eq!((status, answer), (OK, json!({"success": true})));
    assert_eq!(
        api.room_status("arena", &ids[0]).await,
        Some(RoomStatus::Occupied)
    );

    // Older clients POST the ping; snake_case works too.
    let body = json!({"status": "ready", "running_matches": 0, "timestamp": 5});
    let (status, answer) = api.post(&uri, &body).await;
    assert_eq!((status, answer), (OK, json!({"success": true})));
    assert_eq!(
        api.room_status("arena", &ids[0]).await,
        Some(RoomStatus::Ready)
    );
}

#[tokio::test(start_paused = true)]
async fn pings_the_engine_refuses_are_unsuccessful_not_errors() {
    let (api, ids) = arena(1).await;
    for uri in [
        "/scheduler/arena/rooms/no-such-room/ping".to_string(),
        format!("/scheduler/nope/rooms/{}/ping", ids[0]),
    ] {
        let (status, answer) = api.put(&uri, &json!({"status": "ready"})).await;
        assert_eq!((status, answer), (OK, json!({"success": false})), "{uri}");
    }
    // terminated is final: going back to ready is refused.
    let uri = format!("/scheduler/arena/rooms/{}/ping", ids[0]);
    let (status, _) = api.put(&uri, &json!({"status": "terminated"})).await;
    assert_eq!(status, OK);
    let (status, answer) = api.put(&uri, &json!({"status": "ready"})).await;
    assert_eq!((status, answer), (OK, json!({"success": false})));
}

#[tokio::test(start_paused = true)]
async fn bad_pings_are_400s() {
    let (api, ids) = arena(1).await;
    let uri = format!("/scheduler/arena/rooms/{}/ping", ids[0]);
    let cases: &[(&str, &str)] = &[
        (
            r#"{"status": "sleeping"}"#,
            "status: \"sleeping\" is not a ping status",
        ),
        (r#"{}"#, "status: \"\" is not a ping status"),
        (
            r#"{"status": "ready", "runningMatches": -1}"#,
            "runningMatches: must not be negative",
        ),
        (
            r#"{"status": "ready", "runningMatches": "two"}"#,
            "runningMatches: invalid value",
        ),
        (
            r#"{"status": "ready", "timestamp": "noon"}"#,
            "timestamp: invalid value",
        ),
        (
            r#"{"status": "ready", "metadata": [1]}"#,
            "metadata: invalid type",
        ),
        (r#"{"status": 1}"#, "status: invalid type"),
        (r#"{"status": "ready""#, "invalid request body: "),
    ];
    for (body, want) in cases {
        let (status, answer) = api.send("PUT", &uri, Some(body), &[]).await;
        let message = error_message(status, &answer, BAD_REQUEST, 3);
        assert!(
            message.starts_with(want),
            "{body}: {message:?} does not start with {want:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn room_and_player_events_are_handed_to_the_backend() {
    let (api, ids) = arena(1).await;
    for kind in ["roomevent", "playerevent"] {
        let uri = format!("/scheduler/arena/rooms/{}/{kind}", ids[0]);
        let body = json!({"event": "playerJoin", "metadata": {"playerId": "p1", "team": 2}, "timestamp": 1});
        let (status, answer) = api.post(&uri, &body).await;
        assert_eq!(
            (status, answer),
            (OK, json!({"success": true, "message": ""})),
            "{kind}"
        );

        let uri = format!("/scheduler/arena/rooms/ghost/{kind}");
        let (status, answer) = api.post(&uri, &body).await;
        assert_eq!(status, OK);
        assert_eq!(answer["success"], false);
        assert_eq!(answer["message"], "room ghost of scheduler arena not found");

        let uri = format!("/scheduler/arena/rooms/{}/{kind}", ids[0]);
        let (status, answer) = api.send("POST", &uri, Some(r#"{"event": []}"#), &[]).await;
        error_message(status, &answer, BAD_REQUEST, 3);
    }
    let reports = api.backend.reports();
    let kinds: Vec<ForwardKind> = reports.iter().map(|r| r.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            ForwardKind::RoomEvent {
                event: "playerJoin".into()
            },
            ForwardKind::PlayerEvent {
                player_id: "p1".into(),
                event: PlayerEventKind::Join
            },
        ]
    );
    let metadata: serde_json::Value = serde_json::from_str(&reports[1].metadata_json).unwrap();
    assert_eq!(metadata, json!({"playerId": "p1", "team": 2}));
    assert_eq!(
        (reports[1].scheduler.as_str(), reports[1].room.as_str()),
        ("arena", ids[0].as_str())
    );
}

#[tokio::test(start_paused = true)]
async fn a_player_event_needs_a_known_event_and_a_player_id() {
    let (api, ids) = arena(1).await;
    let uri = format!("/scheduler/arena/rooms/{}/playerevent", ids[0]);
    let cases = [
        (
            json!({"event": "playerJump", "metadata": {"playerId": "p1"}}),
            "event: \"playerJump\" is not a player event",
        ),
        (
            json!({"event": "playerLeft"}),
            "metadata.playerId: required",
        ),
        (
            json!({"event": "playerLeft", "metadata": {"playerId": 7}}),
            "metadata.playerId: must be a string",
        ),
    ];
    for (body, want) in cases {
        let (status, answer) = api.post(&uri, &body).await;
        let message = error_message(status, &answer, BAD_REQUEST, 3);
        assert!(message.starts_with(want), "{body}: {message:?}");
    }
    assert!(
        api.backend.reports().is_empty(),
        "nothing refused is forwarded"
    );
    let (status, answer) = api
        .post(
            &uri,
            &json!({"event": "playerLeft", "metadata": {"playerId": "p1"}}),
        )
        .await;
    assert_eq!((status, answer["success"].clone()), (OK, json!(true)));
    assert_eq!(
        api.backend.reports()[0].kind,
        ForwardKind::PlayerEvent {
            player_id: "p1".into(),
            event: PlayerEventKind::Left
        }
    );
}

#[tokio::test(start_paused = true)]
async fn the_deprecated_status_route_is_accepted_and_ignored() {
    let (api, ids) = arena(1).await;
    let uri = format!("/scheduler/arena/rooms/{}/status", ids[0]);
    let (status, answer) = api
        .put(&uri, &json!({"status": "occupied", "timestamp": 1}))
        .await;
    assert_eq!((status, answer), (OK, json!({"success": true})));
    assert_eq!(
        api.room_status("arena", &ids[0]).await,
        Some(RoomStatus::Ready)
    );
}

#[tokio::test(start_paused = true)]
async fn address_of_a_room() {
    let (api, ids) = arena(1).await;
    let (status, answer) = api
        .get(&format!("/scheduler/arena/rooms/{}/address", ids[0]))
        .await;
    assert_eq!(status, OK, "{answer}");
    assert_eq!(
        answer,
        json!({
            "ports": [{"name": "game", "protocol": "udp", "port": api.host_port("arena", &ids[0]).await}],
            "host": "node-1.sim",
            "ipv6Label": ""
        })
    );
    let (status, answer) = api.get("/scheduler/arena/rooms/ghost/address").await;
    error_message(status, &answer, NOT_FOUND, 5);
}

#[tokio::test(start_paused = true)]
async fn address_of_a_room_without_a_node_is_a_clear_error() {
    // 300 ms after creation the pods exist but do not run yet.
    let api = Api::with(Worker::with_step(Millis(300)), &ApiConfig::default());
    api.create("arena", 1).await;
    let ids = api.room_ids("arena").await;
    assert_eq!(
        api.room_status("arena", &ids[0]).await,
        Some(RoomStatus::Pending)
    );
    let (status, answer) = api
        .get(&format!("/scheduler/arena/rooms/{}/address", ids[0]))
        .await;
    let message = error_message(status, &answer, BAD_REQUEST, 9);
    assert!(message.contains("has no address yet"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn allocate_hands_out_ready_rooms_then_says_none_is_left() {
    let (api, ids) = arena(2).await;
    let (status, answer) = api
        .send("POST", "/scheduler/arena/rooms/allocate", None, &[])
        .await;
    assert_eq!(status, OK, "{answer}");
    assert_eq!(answer["success"], true);
    assert_eq!(answer["message"], "");
    assert_eq!(answer["host"], "node-1.sim");
    let first = answer["roomId"].as_str().unwrap().to_string();
    assert_eq!(
        answer["ports"],
        json!([{"name": "game", "protocol": "udp", "port": api.host_port("arena", &first).await}])
    );
    assert!(ids.contains(&first));
    assert_eq!(
        api.room_status("arena", &first).await,
        Some(RoomStatus::Allocated)
    );

    let (_, answer) = api
        .post("/scheduler/arena/rooms/allocate", &json!({}))
        .await;
    assert_eq!(answer["success"], true);
    assert_ne!(answer["roomId"], json!(first));

    // No ready room left: a 200 saying so, not an error.
    let (status, answer) = api
        .post("/scheduler/arena/rooms/allocate", &json!({}))
        .await;
    assert_eq!(status, OK);
    assert_eq!(
        answer,
        json!({"roomId": "", "success": false, "message": "no ready room available", "ports": [], "host": ""})
    );

    let (status, answer) = api.post("/scheduler/nope/rooms/allocate", &json!({})).await;
    error_message(status, &answer, NOT_FOUND, 5);
    let (status, answer) = api
        .send(
            "POST",
            "/scheduler/arena/rooms/allocate",
            Some(r#"{"idempotencyKey": 7}"#),
            &[],
        )
        .await;
    error_message(status, &answer, BAD_REQUEST, 3);
}

#[tokio::test(start_paused = true)]
async fn allocate_with_an_idempotency_key_returns_the_same_room() {
    let (api, _) = arena(3).await;
    let uri = "/scheduler/arena/rooms/allocate";
    let header = [("idempotency-key", "match-42")];
    let (_, first) = api.send("POST", uri, None, &header).await;
    let (_, again) = api.send("POST", uri, None, &header).await;
    assert_eq!(first["success"], true);
    assert_eq!(first["roomId"], again["roomId"]);
    // The same key in the body (either spelling) is the same request.
    let (_, body_key) = api.post(uri, &json!({"idempotency_key": "match-42"})).await;
    assert_eq!(first["roomId"], body_key["roomId"]);
    let (_, other) = api.post(uri, &json!({"idempotencyKey": "match-43"})).await;
    assert_ne!(first["roomId"], other["roomId"]);
}

#[tokio::test(start_paused = true)]
async fn room_tokens_let_a_room_act_only_for_itself() {
    let secret = b"rooms-secret".to_vec();
    let config = ApiConfig {
        rooms_secret: Some(secret.clone()),
        management_tokens: vec!["matchmaker".into()],
        ..ApiConfig::default()
    };
    let backend = Worker::new();
    let setup = Api::with(backend.clone(), &ApiConfig::default());
    setup.create("arena", 2).await;
    let ids = setup.room_ids("arena").await;
    let (a, b) = (&ids[0], &ids[1]);
    let router = maestro_api::rooms_router(backend, &config);
    let ping = json!({"status": "occupied"}).to_string();
    let token_a = format!("Bearer {}", room_token(&secret, "arena", a));
    let as_a = [("authorization", token_a.as_str())];

    let uri_a = format!("/scheduler/arena/rooms/{a}/ping");
    let uri_b = format!("/scheduler/arena/rooms/{b}/ping");
    let (status, answer) = send(&router, "PUT", &uri_a, Some(&ping), &[]).await;
    let message = error_message(status, &answer, UNAUTHORIZED, 16);
    assert_eq!(message, "missing room token");
    // Room A cannot ping as room B.
    let (status, answer) = send(&router, "PUT", &uri_b, Some(&ping), &as_a).await;
    let message = error_message(status, &answer, UNAUTHORIZED, 16);
    assert_eq!(message, format!("invalid room token for arena/{b}"));
    assert_eq!(setup.room_status("arena", b).await, Some(RoomStatus::Ready));
    // A token of the same room under another scheduler name does not pass either.
    let (status, answer) = send(
        &router,
        "PUT",
        &format!("/scheduler/other/rooms/{a}/ping"),
        Some(&ping),
        &as_a,
    )
    .await;
    error_message(status, &answer, UNAUTHORIZED, 16);

    let (status, answer) = send(&router, "PUT", &uri_a, Some(&ping), &as_a).await;
    assert_eq!((status, answer), (OK, json!({"success": true})));
    assert_eq!(
        setup.room_status("arena", a).await,
        Some(RoomStatus::Occupied)
    );
    for route in ["address"] {
        let uri = format!("/scheduler/arena/rooms/{a}/{route}");
        let (status, _) = send(&router, "GET", &uri, None, &as_a).await;
        assert_eq!(status, OK, "{route}");
        let (status, _) = send(&router, "GET", &uri, None, &[]).await;
        assert_eq!(status, UNAUTHORIZED, "{route}");
    }
    let event = r#"{"event": "playerJoin", "metadata": {"playerId": "p1"}}"#;
    for route in ["roomevent", "playerevent"] {
        let uri = format!("/scheduler/arena/rooms/{a}/{route}");
        let (status, _) = send(&router, "POST", &uri, Some(event), &as_a).await;
        assert_eq!(status, OK, "{route}");
        let (status, _) = send(&router, "POST", &uri, Some(event), &[]).await;
        assert_eq!(status, UNAUTHORIZED, "{route}");
    }
    let uri = format!("/scheduler/arena/rooms/{a}/status");
    let (status, _) = send(&router, "PUT", &uri, Some("{}"), &as_a).await;
    assert_eq!(status, OK);

    // Allocate is the matchmaker's: management tokens, not room tokens.
    let allocate = "/scheduler/arena/rooms/allocate";
    let (status, _) = send(&router, "POST", allocate, None, &as_a).await;
    assert_eq!(status, UNAUTHORIZED);
    let matchmaker = [("authorization", "Bearer matchmaker")];
    let (status, answer) = send(&router, "POST", allocate, None, &matchmaker).await;
    assert_eq!(status, OK, "{answer}");
    assert_eq!(answer["roomId"], json!(b));
}

/// A backend whose worker cannot be reached.
struct Down;

#[async_trait::async_trait]
impl maestro_api::Backend for Down {
    async fn call(
        &self,
        _: maestro_api::Request,
    ) -> Result<maestro_api::Reply, maestro_api::Unavailable> {
        Err(maestro_api::Unavailable("the worker did not answer".into()))
    }
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_cannot_be_reached_is_a_503_or_success_false_for_a_room() {
    let router = maestro_api::router(std::sync::Arc::new(Down), &ApiConfig::default());
    let ping = json!({"status": "ready", "timestamp": 1}).to_string();
    // What a room calls about itself: upstream's storage errors are a 200
    // with `success: false`, and the room calls again.
    for (uri, body) in [
        ("/scheduler/arena/rooms/r1/ping", ping.as_str()),
        (
            "/scheduler/arena/rooms/r1/roomevent",
            r#"{"event":"ready"}"#,
        ),
    ] {
        let method = if uri.ends_with("ping") { "PUT" } else { "POST" };
        let (status, answer) = send(&router, method, uri, Some(body), &[]).await;
        assert_eq!(status, OK, "{uri}: {answer}");
        assert_eq!(answer["success"], false, "{uri}: {answer}");
    }
    // Everything else answers 503 with the cause.
    let calls = [
        ("POST", "/scheduler/arena/rooms/allocate", Some("{}")),
        ("GET", "/schedulers", None),
        ("GET", "/schedulers/arena", None),
        ("GET", "/schedulers/arena/operations?stage=final", None),
        ("DELETE", "/schedulers/arena", None),
    ];
    for (method, uri, body) in calls {
        let (status, answer) = send(&router, method, uri, body, &[]).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {uri}: {answer}"
        );
        assert!(
            answer["message"]
                .as_str()
                .is_some_and(|m| m.contains("the worker did not answer")),
            "{method} {uri}: {answer}"
        );
    }
}
