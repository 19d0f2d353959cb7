//! The management API, route by route, against the real engine.

mod common;

use axum::http::StatusCode;
use common::{Api, Worker, error_message, scheduler_json, send};
use maestro_api::ApiConfig;
use maestro_engine::Millis;
use serde_json::{Value, json};

const OK: StatusCode = StatusCode::OK;
const BAD_REQUEST: StatusCode = StatusCode::BAD_REQUEST;
const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;
const CONFLICT: StatusCode = StatusCode::CONFLICT;

fn operation_id(status: StatusCode, body: &Value) -> String {
    assert_eq!(status, OK, "{body}");
    body["operationId"]
        .as_str()
        .unwrap_or_else(|| panic!("no operationId in {body}"))
        .to_string()
}

// ----- create --------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn create_answers_the_stored_scheduler_with_zero_values() {
    let api = Api::new();
    let body = api.create("arena", 2).await;
    let s = &body["scheduler"];
    assert_eq!(s["name"], "arena");
    assert_eq!(s["state"], "creating");
    assert_eq!(s["spec"]["version"], "v1.0.0");
    // The harness starts at 1,000,000 ms after the epoch.
    assert_eq!(s["createdAt"], "1970-01-01T00:16:40Z");
    assert_eq!(s["spec"]["terminationGracePeriod"], "30s");
    assert_eq!(s["spec"]["restartPolicy"], "Never");
    // Zero values are written, not left out.
    assert_eq!(s["spec"]["toleration"], "");
    assert_eq!(s["spec"]["affinity"], "");
    assert_eq!(s["forwarders"], json!([]));
    assert_eq!(s["annotations"], json!({}));
    assert_eq!(s["labels"], json!({}));
    assert_eq!(s["spec"]["containers"][0]["ports"][0]["hostPort"], 0);
    assert_eq!(s["matchAllocation"], json!({"maxMatches": 1}));
    assert_eq!(s["portRange"], json!({"start": 20000, "end": 21000}));
    // Unset proto3 optional fields are left out.
    let keys = s.as_object().unwrap();
    assert!(!keys.contains_key("autoscaling"), "{s}");
    let port = s["spec"]["containers"][0]["ports"][0].as_object().unwrap();
    assert!(!port.contains_key("hostPortRange"), "{s}");
}

#[tokio::test(start_paused = true)]
async fn create_twice_is_a_conflict() {
    let api = Api::new();
    api.create("arena", 1).await;
    let (status, body) = api.post("/schedulers", &scheduler_json("arena", 1)).await;
    let message = error_message(status, &body, CONFLICT, 6);
    assert_eq!(message, "scheduler arena already exists");
}

#[tokio::test(start_paused = true)]
async fn invalid_scheduler_names_every_field() {
    let api = Api::new();
    let mut s = scheduler_json("Bad_Name", -1);
    s["spec"]["containers"][0]["image"] = json!("");
    s["spec"]["containers"][0]["ports"][0]["protocol"] = json!("sctp");
    s["maxSurge"] = json!("0");
    let (status, body) = api.post("/schedulers", &s).await;
    let message = error_message(status, &body, BAD_REQUEST, 3);
    assert!(message.starts_with("Validation Error:\n"), "{message}");
    for path in [
        "\nname: ",
        "\nspec.containers[0].image: is required",
        "\nspec.containers[0].ports[0].protocol: ",
        "\nroomsReplicas: ",
        "\nmaxSurge: ",
    ] {
        assert!(message.contains(path), "{path} missing from {message}");
    }
    // An empty body is an empty scheduler: invalid, not malformed.
    let (status, body) = api.send("POST", "/schedulers", None, &[]).await;
    let message = error_message(status, &body, BAD_REQUEST, 3);
    assert!(message.contains("game: is required"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn snake_case_and_camel_case_input_are_both_accepted() {
    let api = Api::new();
    let snake = json!({
        "name": "snake",
        "game": "game",
        "spec": {
            "termination_grace_period": "45s",
            "restart_policy": "Always",
            "containers": [{
                "name": "game",
                "image": "game:1",
                "image_pull_policy": "Always",
                "requests": {"memory": "64Mi", "cpu": "100m"},
                "limits": {"memory": "64Mi", "cpu": "100m"},
                "ports": [{"name": "game", "protocol": "tcp", "port": "7777",
                           "host_port_range": {"start": 30000, "end": 30100}}],
                "environment": [{"name": "FROM", "value_from": {"field_ref": {"field_path": "metadata.name"}}}]
            }]
        },
        "max_surge": "2",
        "rooms_replicas": "1",
        "match_allocation": {"max_matches": 3},
        "autoscaling": {"enabled": false, "min": 1, "max": 5, "cooldown": 10,
            "policy": {"type": "roomOccupancy", "parameters": {"room_occupancy": {"ready_target": "0.5"}}}},
        "forwarders": [{"name": "mm", "enable": true, "type": "gRPC", "address": "mm:9090",
                        "options": {"timeout": "250", "metadata": {"region": "eu"}}}],
        "unknownField": {"ignored": true}
    });
    let (status, body) = api.post("/schedulers", &snake).await;
    assert_eq!(status, OK, "{body}");
    let s = &body["scheduler"];
    assert_eq!(s["spec"]["terminationGracePeriod"], "45s");
    assert_eq!(s["spec"]["restartPolicy"], "Always");
    assert_eq!(s["spec"]["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(
        s["spec"]["containers"][0]["ports"][0]["hostPortRange"],
        json!({"start": 30000, "end": 30100})
    );
    assert_eq!(
        s["spec"]["containers"][0]["environment"][0],
        json!({"name": "FROM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    );
    assert_eq!(s["portRange"], Value::Null);
    assert_eq!(s["maxSurge"], "2");
    assert_eq!(s["roomsReplicas"], 1);
    assert_eq!(s["matchAllocation"], json!({"maxMatches": 3}));
    assert_eq!(
        s["autoscaling"],
        json!({"enabled": false, "min": 1, "max": 5, "cooldown": 10,
               "policy": {"type": "roomOccupancy",
                          "parameters": {"roomOccupancy": {"readyTarget": 0.5, "downThreshold": 0.99}}}})
    );
    // int64 is written as a string.
    assert_eq!(
        s["forwarders"][0],
        json!({"name": "mm", "enable": true, "type": "gRPC", "address": "mm:9090",
               "options": {"timeout": "250", "metadata": {"region": "eu"}}})
    );
}

#[tokio::test(start_paused = true)]
async fn malformed_bodies_are_400s_naming_the_field() {
    let api = Api::new();
    let cases: &[(&str, &str)] = &[
        ("{", "invalid request body: "),
        ("[]", "request body must be a JSON object"),
        ("null", "request body must be a JSON object"),
        (r#"{"name": 5}"#, "name: invalid type: integer"),
        (
            r#"{"roomsReplicas": "many"}"#,
            "roomsReplicas: invalid value",
        ),
        (r#"{"roomsReplicas": 1.5}"#, "roomsReplicas: invalid value"),
        (
            r#"{"spec": {"containers": [{"ports": [{"port": {}}]}]}}"#,
            "spec.containers[0].ports[0].port: ",
        ),
        (
            r#"{"spec": {"terminationGracePeriod": "1.5s"}}"#,
            "spec.terminationGracePeriod: ",
        ),
        (
            r#"{"forwarders": [{"options": {"timeout": "soon"}}]}"#,
            "forwarders[0].options.timeout: ",
        ),
        (
            r#"{"autoscaling": {"enabled": "yes"}}"#,
            "autoscaling.enabled: ",
        ),
        (r#"{"name": "a", "name": "b"}"#, "duplicate field"),
        (
            r#"{"roomsReplicas": 1, "rooms_replicas": 2}"#,
            "duplicate field",
        ),
        (
            r#"{} trailing"#,
            "invalid request body: trailing characters",
        ),
    ];
    for (body, want) in cases {
        let (status, answer) = api.send("POST", "/schedulers", Some(body), &[]).await;
        let message = error_message(status, &answer, BAD_REQUEST, 3);
        assert!(message.contains(want), "{body}: {message:?} lacks {want:?}");
    }
    // Wrong types in the other bodies too.
    api.create("arena", 0).await;
    for (method, uri, body, want) in [
        ("PUT", "/schedulers/arena", r#"{"version": 2}"#, "version: "),
        (
            "PATCH",
            "/schedulers/arena",
            r#"{"roomsReplicas": []}"#,
            "roomsReplicas: ",
        ),
        (
            "POST",
            "/schedulers/arena",
            r#"{"forwarders": {}}"#,
            "forwarders: ",
        ),
    ] {
        let (status, answer) = api.send(method, uri, Some(body), &[]).await;
        let message = error_message(status, &answer, BAD_REQUEST, 3);
        assert!(message.starts_with(want), "{method} {body}: {message}");
    }
}

#[tokio::test(start_paused = true)]
async fn oversized_bodies_are_refused() {
    let config = ApiConfig {
        body_limit_bytes: 512,
        ..ApiConfig::default()
    };
    let api = Api::with(Worker::new(), &config);
    let mut s = scheduler_json("arena", 1);
    s["annotations"] = json!({ "note": "x".repeat(600) });
    let (status, body) = api.post("/schedulers", &s).await;
    let message = error_message(status, &body, BAD_REQUEST, 3);
    assert_eq!(
        message,
        "request body is larger than the limit of 512 bytes"
    );
    // Just under the limit is fine.
    let (status, body) = api.post("/schedulers", &scheduler_json("arena", 1)).await;
    assert_eq!(status, OK, "{body}");
}

// ----- get, list, info -------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn get_a_scheduler_or_one_of_its_versions() {
    let api = Api::new();
    api.create("arena", 1).await;
    let (status, body) = api.get("/schedulers/arena").await;
    assert_eq!(status, OK, "{body}");
    assert_eq!(body["scheduler"]["name"], "arena");
    assert_eq!(body["scheduler"]["state"], "in-sync");
    let (status, body) = api.get("/schedulers/arena?version=v1.0.0").await;
    assert_eq!(status, OK, "{body}");
    assert_eq!(body["scheduler"]["spec"]["version"], "v1.0.0");

    let (status, body) = api.get("/schedulers/arena?version=v9.0.0").await;
    let message = error_message(status, &body, NOT_FOUND, 5);
    assert_eq!(message, "scheduler arena version v9.0.0 not found");
    let (status, body) = api.get("/schedulers/nope").await;
    let message = error_message(status, &body, NOT_FOUND, 5);
    assert_eq!(message, "scheduler nope not found");
}

#[tokio::test(start_paused = true)]
async fn list_filters_by_name_game_and_version() {
    let api = Api::new();
    api.create("arena", 0).await;
    let mut other = scheduler_json("lobby", 0);
    other["game"] = json!("other-game");
    let (status, body) = api.post("/schedulers", &other).await;
    assert_eq!(status, OK, "{body}");

    let names = |body: &Value| -> Vec<String> {
        body["schedulers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, body) = api.get("/schedulers").await;
    assert_eq!(status, OK);
    assert_eq!(names(&body), ["arena", "lobby"]);
    let item = &body["schedulers"][0];
    assert_eq!(item["version"], "v1.0.0");
    assert_eq!(item["roomsReplicas"], 0);
    assert!(item.get("spec").is_none(), "{item}");
    for (query, want) in [
        ("?name=lobby", vec!["lobby"]),
        ("?game=game", vec!["arena"]),
        ("?version=v1.0.0", vec!["arena", "lobby"]),
        ("?version=v2.0.0", vec![]),
        ("?name=", vec!["arena", "lobby"]),
        ("?name=arena&game=other-game", vec![]),
    ] {
        let (status, body) = api.get(&format!("/schedulers{query}")).await;
        assert_eq!(status, OK);
        assert_eq!(names(&body), want, "{query}");
    }
}

#[tokio::test(start_paused = true)]
async fn info_counts_rooms_and_wins_over_a_scheduler_named_info() {
    let api = Api::new();
    api.create("arena", 2).await;
    let (status, body) = api.get("/schedulers/info").await;
    assert_eq!(status, OK, "{body}");
    assert!(
        body.get("scheduler").is_none(),
        "routed to GET /schedulers/{{name}}: {body}"
    );
    assert_eq!(
        body["schedulers"][0],
        json!({
            "name": "arena", "game": "game", "state": "in-sync", "roomsReplicas": 2,
            "roomsReady": 2, "roomsOccupied": 0, "roomsPending": 0, "roomsTerminating": 0,
            "autoscaling": null, "matchAllocation": {"maxMatches": 1}
        })
    );
    let (status, body) = api.get("/schedulers/info?game=game").await;
    assert_eq!(
        (status, body["schedulers"].as_array().unwrap().len()),
        (OK, 1)
    );
    let (status, body) = api.get("/schedulers/info?game=nope").await;
    error_message(status, &body, NOT_FOUND, 5);
}

// ----- versions ------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn new_version_then_switch_back() {
    let api = Api::new();
    api.create("arena", 1).await;
    let mut v2 = scheduler_json("ignored-body-name", 1);
    v2["spec"]["containers"][0]["image"] = json!("registry.example/game:2");
    let (status, body) = api.post("/schedulers/arena", &v2).await;
    operation_id(status, &body);
    api.backend.advance(Millis::from_secs(10)).await;

    let (status, body) = api.get("/schedulers/arena/versions").await;
    assert_eq!(status, OK, "{body}");
    let versions = body["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{body}");
    assert_eq!(versions[0]["version"], "v2.0.0");
    assert_eq!(versions[0]["isActive"], true);
    assert_eq!(versions[1]["version"], "v1.0.0");
    assert_eq!(versions[1]["isActive"], false);
    assert!(versions[1]["createdAt"].as_str().unwrap().ends_with('Z'));
    let (_, body) = api.get("/schedulers/arena").await;
    assert_eq!(
        body["scheduler"]["spec"]["containers"][0]["image"],
        "registry.example/game:2"
    );

    let (status, body) = api
        .put("/schedulers/arena", &json!({"version": "v1.0.0"}))
        .await;
    operation_id(status, &body);
    api.backend.advance(Millis::from_secs(10)).await;
    let (_, body) = api.get("/schedulers/arena").await;
    assert_eq!(body["scheduler"]["spec"]["version"], "v1.0.0");

    let (status, body) = api
        .put("/schedulers/arena", &json!({"version": "v9.0.0"}))
        .await;
    error_message(status, &body, NOT_FOUND, 5);
    let (status, body) = api
        .put("/schedulers/arena", &json!({"version": "latest"}))
        .await;
    error_message(status, &body, BAD_REQUEST, 3);
    let (status, body) = api
        .put("/schedulers/nope", &json!({"version": "v1.0.0"}))
        .await;
    error_message(status, &body, NOT_FOUND, 5);
    let (status, body) = api.post("/schedulers/nope", &v2).await;
    error_message(status, &body, NOT_FOUND, 5);
    let (status, body) = api.get("/schedulers/nope/versions").await;
    error_message(status, &body, NOT_FOUND, 5);
}

#[tokio::test(start_paused = true)]
async fn a_second_version_operation_is_a_failed_precondition() {
    let api = Api::with(Worker::frozen(), &ApiConfig::default());
    api.create("arena", 0).await;
    let (status, body) = api
        .patch("/schedulers/arena", &json!({"roomsReplicas": 1}))
        .await;
    operation_id(status, &body);
    let (status, body) = api
        .patch("/schedulers/arena", &json!({"roomsReplicas": 2}))
        .await;
    let message = error_message(status, &body, BAD_REQUEST, 9);
    assert!(message.contains("version operation"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn patch_merges_into_the_active_version() {
    let api = Api::new();
    api.create("arena", 1).await;
    for body in [
        None,
        Some("{}"),
        Some(r#"{"forwarders": [], "labels": {}}"#),
    ] {
        let (status, answer) = api.send("PATCH", "/schedulers/arena", body, &[]).await;
        let message = error_message(status, &answer, CONFLICT, 6);
        assert_eq!(message, "no change found");
    }
    let (status, body) = api
        .patch(
            "/schedulers/arena",
            &json!({"rooms_replicas": 3, "labels": {"team": "a"}}),
        )
        .await;
    operation_id(status, &body);
    api.backend.advance(Millis::from_secs(10)).await;
    let (_, body) = api.get("/schedulers/arena").await;
    let s = &body["scheduler"];
    assert_eq!(s["roomsReplicas"], 3);
    assert_eq!(s["labels"], json!({"team": "a"}));
    // Untouched fields are kept.
    assert_eq!(
        s["spec"]["containers"][0]["image"],
        "registry.example/game:1"
    );
    assert_eq!(s["portRange"], json!({"start": 20000, "end": 21000}));

    let (status, body) = api
        .patch("/schedulers/arena", &json!({"maxSurge": "0"}))
        .await;
    let message = error_message(status, &body, BAD_REQUEST, 3);
    assert!(message.contains("maxSurge: "), "{message}");
    let (status, body) = api
        .patch("/schedulers/nope", &json!({"maxSurge": "1"}))
        .await;
    error_message(status, &body, NOT_FOUND, 5);
}

#[tokio::test(start_paused = true)]
async fn delete_enqueues_the_deletion() {
    let api = Api::new();
    api.create("arena", 1).await;
    let (status, body) = api.send("DELETE", "/schedulers/arena", None, &[]).await;
    operation_id(status, &body);
    api.backend.advance(Millis::from_secs(200)).await;
    let (status, body) = api.get("/schedulers/arena").await;
    error_message(status, &body, NOT_FOUND, 5);
    let (status, body) = api.send("DELETE", "/schedulers/arena", None, &[]).await;
    error_message(status, &body, NOT_FOUND, 5);
}

// ----- operations ----------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn operations_by_stage_with_upstream_errors() {
    let api = Api::with(Worker::frozen(), &ApiConfig::default());
    api.create("arena", 1).await;
    let (status, body) = api
        .patch("/schedulers/arena", &json!({"roomsReplicas": 2}))
        .await;
    let pending_id = operation_id(status, &body);

    // create_scheduler waits for its runtime call; the new version waits behind it.
    let (status, body) = api.get("/schedulers/arena/operations?stage=active").await;
    assert_eq!(status, OK, "{body}");
    assert_eq!(body["operations"][0]["definitionName"], "create_scheduler");
    assert_eq!(body["operations"][0]["status"], "in_progress");
    assert_eq!(
        (body["total"].clone(), body["pageSize"].clone()),
        (json!(1), json!(1))
    );
    let (status, body) = api.get("/schedulers/arena/operations?stage=pending").await;
    assert_eq!(status, OK, "{body}");
    let item = &body["operations"][0];
    assert_eq!(item["id"], json!(pending_id));
    assert_eq!(item["definitionName"], "create_new_scheduler_version");
    assert_eq!(item["schedulerName"], "arena");
    assert!(item.get("lease").is_none(), "{item}");

    let errors = [
        (
            "",
            "invalid stage filter: \"\"; must be one of pending, active, final",
        ),
        (
            "?stage=done",
            "invalid stage filter: \"done\"; must be one of pending, active, final",
        ),
        (
            "?stage=pending&page=1",
            "there is no pagination filter implemented in : pending stage",
        ),
        (
            "?stage=active&per_page=5",
            "there is no pagination filter implemented in : active stage",
        ),
        ("?stage=final&page=0", "page must be greater than 0"),
        (
            "?stage=final&per_page=101",
            "page size must be between 0 and 100",
        ),
        (
            "?stage=final&perPage=0",
            "page size must be between 0 and 100",
        ),
        ("?stage=final&order_by=name", "invalid sorting field: name"),
        (
            "?stage=final&order_by=createdAt%20up",
            "invalid sorting order: up",
        ),
        (
            "?stage=final&order_by=createdAt%20asc%20x",
            "invalid sorting parameters number",
        ),
    ];
    for (query, want) in errors {
        let (status, body) = api
            .get(&format!("/schedulers/arena/operations{query}"))
            .await;
        let message = error_message(status, &body, BAD_REQUEST, 3);
        assert_eq!(message, want, "{query}");
    }
    let (status, body) = api
        .get("/schedulers/arena/operations?stage=final&page=x")
        .await;
    let message = error_message(status, &body, BAD_REQUEST, 3);
    assert!(message.starts_with("parsing field \"page\""), "{message}");
    let (status, body) = api.get("/schedulers/nope/operations?stage=final").await;
    error_message(status, &body, NOT_FOUND, 5);
}

#[tokio::test(start_paused = true)]
async fn final_operations_are_sorted_and_paginated() {
    let api = Api::new();
    api.create("arena", 1).await;
    for replicas in [2, 3, 1] {
        let (status, body) = api
            .patch("/schedulers/arena", &json!({"roomsReplicas": replicas}))
            .await;
        operation_id(status, &body);
        api.backend.advance(Millis::from_secs(5)).await;
    }
    let (status, body) = api
        .get("/schedulers/arena/operations?stage=final&per_page=100")
        .await;
    assert_eq!(status, OK, "{body}");
    let all = body["operations"].as_array().unwrap().clone();
    let total = all.len();
    assert!(total >= 4, "{body}");
    assert_eq!(body["total"], json!(total));
    assert_eq!(
        (body["page"].clone(), body["pageSize"].clone()),
        (json!(1), json!(100))
    );
    let times: Vec<String> = all.iter().map(|o| time_key(&o["createdAt"])).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first by default");

    let (_, asc) = api
        .get("/schedulers/arena/operations?stage=final&per_page=100&order_by=createdAt%20asc")
        .await;
    let asc_times: Vec<String> = asc["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| time_key(&o["createdAt"]))
        .collect();
    let mut ascending = times.clone();
    ascending.sort();
    assert_eq!(asc_times, ascending);

    // Pages of two cover the listing once, in order.
    let mut paged = Vec::new();
    for page in 1..=total.div_ceil(2) + 1 {
        let (status, body) = api
            .get(&format!(
                "/schedulers/arena/operations?stage=final&page={page}&per_page=2"
            ))
            .await;
        assert_eq!(status, OK, "{body}");
        assert_eq!(body["total"], json!(total));
        assert_eq!(body["pageSize"], json!(2));
        paged.extend(body["operations"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(paged, all);
}

#[tokio::test(start_paused = true)]
async fn get_an_operation_with_its_go_style_input() {
    let api = Api::new();
    api.create("arena", 1).await;
    let (_, body) = api
        .get("/schedulers/arena/operations?stage=final&per_page=100")
        .await;
    let create = body["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["definitionName"] == "create_scheduler")
        .expect("a create_scheduler operation")
        .clone();
    let id = create["id"].as_str().unwrap();
    let (status, body) = api.get(&format!("/schedulers/arena/operations/{id}")).await;
    assert_eq!(status, OK, "{body}");
    let op = &body["operation"];
    assert_eq!(op["status"], "finished");
    assert_eq!(op["executionHistory"][0]["event"], "Created");
    assert!(
        op["executionHistory"][0]["createdAt"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let input = &op["input"]["scheduler"];
    assert_eq!(input["Name"], "arena");
    assert_eq!(
        input["Spec"]["TerminationGracePeriod"],
        json!(30_000_000_000i64)
    );
    assert_eq!(
        input["Spec"]["Containers"][0]["Requests"],
        json!({"Memory": "64Mi", "CPU": "100m"})
    );
    assert_eq!(input["PortRange"], json!({"Start": 20000, "End": 21000}));
    assert_eq!(input["MatchAllocation"], json!({"MaxMatches": 1}));
    assert_eq!(input["LastDownscaleAt"], "0001-01-01T00:00:00Z");

    let (status, body) = api.get("/schedulers/arena/operations/no-such-id").await;
    let message = error_message(status, &body, NOT_FOUND, 5);
    assert_eq!(message, "operation no-such-id not found");
}

#[tokio::test(start_paused = true)]
async fn cancel_ends_pending_and_in_progress_operations_canceled() {
    // Time moves only when the test says: runtime calls wait until then.
    let api = Api::with(Worker::frozen(), &ApiConfig::default());
    api.create("arena", 0).await;
    let active_operation = async |api: &Api| {
        let (status, body) = api.get("/schedulers/arena/operations?stage=active").await;
        assert_eq!(status, OK, "{body}");
        let op = body["operations"][0].clone();
        assert_eq!(op["status"], "in_progress", "{body}");
        op
    };
    // The scheduler's creation, in progress, cannot be canceled.
    let creating = active_operation(&api).await;
    assert_eq!(creating["definitionName"], "create_scheduler");
    let uri = format!(
        "/schedulers/arena/operations/{}/cancel",
        creating["id"].as_str().unwrap()
    );
    let (status, body) = api.send("POST", &uri, None, &[]).await;
    let message = error_message(status, &body, BAD_REQUEST, 9);
    assert_eq!(message, "create_scheduler cannot be canceled once started");
    api.backend.advance(Millis::from_secs(5)).await;

    // Two rooms wanted: add_rooms runs, waiting for its pods; the next
    // change waits behind it.
    let (status, body) = api
        .patch("/schedulers/arena", &json!({"roomsReplicas": 2}))
        .await;
    operation_id(status, &body);
    let adding = active_operation(&api).await;
    assert_eq!(adding["definitionName"], "add_rooms", "{adding}");
    let (status, body) = api
        .patch("/schedulers/arena", &json!({"roomsReplicas": 3}))
        .await;
    let id = operation_id(status, &body);

    // The pending one.
    let uri = format!("/schedulers/arena/operations/{id}/cancel");
    let (status, body) = api.send("POST", &uri, None, &[]).await;
    assert_eq!((status, body), (OK, json!({})));
    let (_, body) = api.get(&format!("/schedulers/arena/operations/{id}")).await;
    assert_eq!(body["operation"]["status"], "canceled");
    let (status, body) = api.send("POST", &uri, None, &[]).await;
    let message = error_message(status, &body, CONFLICT, 10);
    assert_eq!(message, "operation is canceled");

    // The one in progress.
    let adding = adding["id"].as_str().unwrap();
    let uri = format!("/schedulers/arena/operations/{adding}/cancel");
    let (status, body) = api.send("POST", &uri, None, &[]).await;
    assert_eq!((status, body), (OK, json!({})));
    let (_, body) = api
        .get(&format!("/schedulers/arena/operations/{adding}"))
        .await;
    assert_eq!(body["operation"]["status"], "canceled");

    let (status, body) = api
        .send(
            "POST",
            "/schedulers/arena/operations/nope/cancel",
            None,
            &[],
        )
        .await;
    error_message(status, &body, NOT_FOUND, 5);
    let (status, body) = api
        .send(
            "POST",
            &format!("/schedulers/nope/operations/{adding}/cancel"),
            None,
            &[],
        )
        .await;
    error_message(status, &body, NOT_FOUND, 5);
}

#[tokio::test(start_paused = true)]
async fn cancel_a_finished_operation_is_a_conflict() {
    let api = Api::new();
    api.create("arena", 0).await;
    let (status, body) = api
        .patch("/schedulers/arena", &json!({"roomsReplicas": 1}))
        .await;
    let id = operation_id(status, &body);
    api.backend.advance(Millis::from_secs(5)).await;
    let (status, body) = api
        .send(
            "POST",
            &format!("/schedulers/arena/operations/{id}/cancel"),
            None,
            &[],
        )
        .await;
    let message = error_message(status, &body, CONFLICT, 10);
    assert_eq!(message, "operation is finished");
}

// ----- rooms listing ---------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn rooms_listing_filters_and_pages() {
    let api = Api::new();
    api.create("arena", 3).await;
    let (status, body) = api.get("/schedulers/arena/rooms").await;
    assert_eq!(status, OK, "{body}");
    assert_eq!(body["total"], 3);
    assert_eq!(
        (body["page"].clone(), body["pageSize"].clone()),
        (json!(1), json!(100))
    );
    let room = &body["rooms"][0];
    assert_eq!(room["status"], "ready");
    assert_eq!(room["version"], "v1.0.0");
    assert_eq!(room["runningMatches"], 0);
    assert!(room["lastPingAt"].as_str().unwrap().ends_with('Z'));
    let port = api.host_port("arena", room["id"].as_str().unwrap()).await;
    assert_eq!(
        room["address"],
        json!({"host": "node-1.sim", "ports": [{"name": "game", "protocol": "udp", "port": port}]})
    );
    let ids: Vec<&str> = body["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();

    let (status, body) = api.get("/schedulers/arena/rooms?page=2&per_page=2").await;
    assert_eq!(status, OK, "{body}");
    assert_eq!(body["total"], 3);
    assert_eq!(body["rooms"].as_array().unwrap().len(), 1);
    assert_eq!(body["rooms"][0]["id"], json!(ids[2]));

    // Occupy one room through the rooms API, then filter.
    let ping = format!("/scheduler/arena/rooms/{}/ping", ids[1]);
    let (status, _) = api.put(&ping, &json!({"status": "occupied"})).await;
    assert_eq!(status, OK);
    let (_, body) = api.get("/schedulers/arena/rooms?status=occupied").await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["rooms"][0]["id"], json!(ids[1]));
    assert_eq!(body["rooms"][0]["runningMatches"], 1);
    let (_, body) = api.get("/schedulers/arena/rooms?status=ready").await;
    assert_eq!(body["total"], 2);

    for query in [
        "?status=busy",
        "?page=0",
        "?per_page=0",
        "?per_page=1001",
        "?page=-1",
    ] {
        let (status, body) = api.get(&format!("/schedulers/arena/rooms{query}")).await;
        error_message(status, &body, BAD_REQUEST, 3);
    }
    let (status, body) = api.get("/schedulers/nope/rooms").await;
    error_message(status, &body, NOT_FOUND, 5);
}

// ----- auth, fallbacks, OpenAPI ----------------------------------------------

#[tokio::test(start_paused = true)]
async fn management_tokens_when_configured() {
    let config = ApiConfig {
        management_tokens: vec!["first-token".into(), "second-token".into()],
        ..ApiConfig::default()
    };
    let backend = Worker::new();
    let router = maestro_api::management_router(backend, &config);
    let (status, body) = send(&router, "GET", "/schedulers", None, &[]).await;
    let message = error_message(status, &body, StatusCode::UNAUTHORIZED, 16);
    assert_eq!(message, "missing bearer token");
    let wrong = [("authorization", "Bearer third-token")];
    let (status, body) = send(&router, "GET", "/schedulers", None, &wrong).await;
    error_message(status, &body, StatusCode::UNAUTHORIZED, 16);
    let basic = [("authorization", "Basic c2Vjb25kLXRva2Vu")];
    let (status, body) = send(&router, "GET", "/schedulers", None, &basic).await;
    error_message(status, &body, StatusCode::UNAUTHORIZED, 16);
    let right = [("authorization", "Bearer second-token")];
    let (status, body) = send(&router, "GET", "/schedulers", None, &right).await;
    assert_eq!((status, body), (OK, json!({"schedulers": []})));
    let body = scheduler_json("arena", 0).to_string();
    let (status, _) = send(&router, "POST", "/schedulers", Some(&body), &right).await;
    assert_eq!(status, OK);
    // The OpenAPI document is public.
    let (status, _) = send(&router, "GET", "/openapi.json", None, &[]).await;
    assert_eq!(status, OK);

    // Without tokens, no authentication.
    let open = maestro_api::management_router(Worker::new(), &ApiConfig::default());
    let (status, _) = send(&open, "GET", "/schedulers", None, &[]).await;
    assert_eq!(status, OK);
}

#[tokio::test(start_paused = true)]
async fn unknown_routes_and_methods_answer_in_the_error_format() {
    let api = Api::new();
    let (status, body) = api.get("/nowhere").await;
    let message = error_message(status, &body, NOT_FOUND, 5);
    assert_eq!(message, "Not Found");
    let (status, body) = api.send("DELETE", "/schedulers", None, &[]).await;
    let message = error_message(status, &body, StatusCode::METHOD_NOT_ALLOWED, 12);
    assert_eq!(message, "Method Not Allowed");
    // The two routers also stand alone.
    let rooms = maestro_api::rooms_router(Worker::new(), &ApiConfig::default());
    let (status, body) = send(&rooms, "GET", "/schedulers", None, &[]).await;
    error_message(status, &body, NOT_FOUND, 5);
}

/// An RFC 3339 timestamp that sorts as text: protojson leaves out a zero
/// fraction, so `…:40Z` must become `…:40.000Z`.
fn time_key(value: &Value) -> String {
    let text = value.as_str().unwrap_or_default();
    if text.contains('.') {
        text.to_string()
    } else {
        text.replace('Z', ".000Z")
    }
}
