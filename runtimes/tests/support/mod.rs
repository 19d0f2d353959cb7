//! An in-process fake Kubernetes API server for the runtime's tests.
//!
//! An axum `Router` handed to `kube::Client::new` (through the runtime's
//! rate limit): no sockets, no TLS. It keeps namespaces, pods, pod
//! disruption budgets, events and nodes in memory with one global resource
//! version, answers get/create/replace/delete and pod list and streaming
//! watch, and lets a test inject error answers (409, 410, 429, 500, …),
//! cut every watch, and compact the watch history so a resumed watch gets
//! `410 Gone`.
//!
//! What it does NOT model (so tests must not rely on it): admission and
//! validation beyond the typed schema (bodies must deserialise into the
//! k8s-openapi type; nothing else is checked); defaulting; garbage
//! collection, owner references and finalizers; graceful deletion (a deleted
//! pod vanishes at once, no `deletionTimestamp` phase) and namespace
//! termination (a namespace and its content vanish at once); the scheduler
//! and the kubelet (pods stay `Pending` with no node until a test moves
//! them); field managers, server-side apply, patches and strategic merge;
//! label selectors other than `key=value` equality; field selectors;
//! pagination (`limit` is ignored, lists are whole); watch bookmarks and
//! watch timeouts; watches of anything but pods; authentication, RBAC,
//! quotas and server-side rate limiting (429s are injected, not earned).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, NodeAddress, NodeStatus, Pod, PodStatus};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Watch history kept for resumption; older events are compacted away.
const HISTORY_LIMIT: usize = 10_000;
/// Lines buffered per watch; a watch that falls this far behind is closed,
/// as the API server closes slow watchers.
const WATCH_BUFFER: usize = 1024;

/// An answer to inject instead of the real one.
#[derive(Clone, Debug)]
pub struct Fault {
    pub method: Option<Method>,
    /// A substring of the request path, e.g. `/pods` or `/nodes/`.
    pub path_contains: String,
    /// `Some(true)`: only watch requests; `Some(false)`: never them.
    pub watch: Option<bool>,
    pub status: u16,
    /// How many requests it answers before it disarms.
    pub times: usize,
    /// Apply the request first and then answer with the error, as when
    /// the server did the work but the answer was lost.
    pub after_apply: bool,
}

impl Fault {
    pub fn new(method: Method, path_contains: &str, status: u16, times: usize) -> Fault {
        Fault {
            method: Some(method),
            path_contains: path_contains.to_string(),
            watch: None,
            status,
            times,
            after_apply: false,
        }
    }

    pub fn watches(status: u16, times: usize) -> Fault {
        Fault {
            method: Some(Method::GET),
            path_contains: "/pods".into(),
            watch: Some(true),
            status,
            times,
            after_apply: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub at: Instant,
    pub method: Method,
    pub path: String,
    pub watch: bool,
    pub status: u16,
}

type Key = (String, String);

struct Watcher {
    namespace: String,
    selector: Vec<(String, String)>,
    tx: mpsc::Sender<Bytes>,
}

#[derive(Default)]
struct Inner {
    resource_version: u64,
    /// Events with a resource version at or above this are still in the
    /// history; a watch from an older version gets 410 Gone.
    history_start: u64,
    history: VecDeque<(u64, String, &'static str, Pod)>,
    namespaces: BTreeMap<String, Namespace>,
    pods: BTreeMap<Key, Pod>,
    pdbs: BTreeMap<Key, PodDisruptionBudget>,
    events: BTreeMap<Key, Event>,
    nodes: BTreeMap<String, Node>,
    watchers: Vec<Watcher>,
    faults: Vec<Fault>,
    requests: Vec<RequestRecord>,
    /// Added to every non-watch answer, to make requests overlap.
    latency: std::time::Duration,
    in_flight: usize,
    max_in_flight: usize,
}

#[derive(Clone, Default)]
pub struct FakeKube {
    inner: Arc<Mutex<Inner>>,
}

/// A failed answer: a Kubernetes `Status` object.
struct ApiError {
    code: u16,
    reason: &'static str,
    message: String,
}

type ApiResult = Result<Value, ApiError>;

fn api_error(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        code,
        reason,
        message: message.into(),
    }
}

fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn reason_for(code: u16) -> &'static str {
    match code {
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "Unknown",
    }
}

fn to_value<T: Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn matches(labels: Option<&BTreeMap<String, String>>, selector: &[(String, String)]) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

fn parse_selector(text: Option<&String>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(|term| {
            let (k, v) = term
                .split_once("==")
                .or_else(|| term.split_once('='))
                .filter(|(k, _)| !k.contains('!'))
                .ok_or_else(|| {
                    api_error(
                        400,
                        "BadRequest",
                        format!("the fake supports only k=v selectors, not {term:?}"),
                    )
                })?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

impl Inner {
    fn next_rv(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    fn stamp<K: Resource>(&mut self, object: &mut K, namespace: Option<&str>) {
        let rv = self.next_rv();
        let meta = object.meta_mut();
        meta.resource_version = Some(rv.to_string());
        if meta.uid.is_none() {
            meta.uid = Some(format!("uid-{rv}"));
            meta.creation_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        }
        if let Some(ns) = namespace {
            meta.namespace = Some(ns.to_string());
        }
    }

    /// Records a pod change and sends it to the matching watches.
    fn publish(&mut self, namespace: &str, kind: &'static str, pod: &Pod) {
        let rv = self.resource_version;
        self.history
            .push_back((rv, namespace.to_string(), kind, pod.clone()));
        while self.history.len() > HISTORY_LIMIT {
            if let Some((old, ..)) = self.history.pop_front() {
                self.history_start = old + 1;
            }
        }
        let line = watch_line(kind, &to_value(pod));
        self.watchers.retain(|w| {
            if w.namespace != namespace || !matches(pod.metadata.labels.as_ref(), &w.selector) {
                return !w.tx.is_closed();
            }
            w.tx.try_send(line.clone()).is_ok()
        });
    }

    fn require_namespace(&self, ns: &str) -> Result<(), ApiError> {
        if self.namespaces.contains_key(ns) {
            Ok(())
        } else {
            Err(api_error(
                404,
                "NotFound",
                format!("namespaces \"{ns}\" not found"),
            ))
        }
    }
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| api_error(400, "BadRequest", format!("cannot decode body: {e}")))
}

fn name_of<K: Resource>(object: &K) -> Result<String, ApiError> {
    object
        .meta()
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| api_error(422, "Invalid", "metadata.name: Required value"))
}

/// Create, get, replace, delete of a namespaced kind kept in a map.
fn crud<K>(
    inner: &mut Inner,
    map: fn(&mut Inner) -> &mut BTreeMap<Key, K>,
    plural: &str,
    method: &Method,
    ns: &str,
    name: Option<&str>,
    body: &Bytes,
) -> ApiResult
where
    K: Resource + Serialize + DeserializeOwned + Clone,
{
    match (method.clone(), name) {
        (Method::POST, None) => {
            inner.require_namespace(ns)?;
            let mut object: K = parse_body(body)?;
            let name = name_of(&object)?;
            let key = (ns.to_string(), name.clone());
            if map(inner).contains_key(&key) {
                return Err(api_error(
                    409,
                    "AlreadyExists",
                    format!("{plural} \"{name}\" already exists"),
                ));
            }
            inner.stamp(&mut object, Some(ns));
            map(inner).insert(key, object.clone());
            Ok(to_value(&object))
        }
        (Method::GET, None) => {
            let items: Vec<Value> = map(inner)
                .iter()
                .filter(|((n, _), _)| n == ns)
                .map(|(_, o)| to_value(o))
                .collect();
            Ok(
                json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": inner.resource_version.to_string()}, "items": items}),
            )
        }
        (Method::GET, Some(name)) => map(inner)
            .get(&(ns.to_string(), name.to_string()))
            .map(to_value)
            .ok_or_else(|| api_error(404, "NotFound", format!("{plural} \"{name}\" not found"))),
        (Method::PUT, Some(name)) => {
            let mut object: K = parse_body(body)?;
            let key = (ns.to_string(), name.to_string());
            let current = map(inner).get(&key).ok_or_else(|| {
                api_error(404, "NotFound", format!("{plural} \"{name}\" not found"))
            })?;
            let current_rv = current.meta().resource_version.clone();
            let given_rv = object.meta().resource_version.clone();
            if given_rv.is_some() && given_rv != current_rv {
                return Err(api_error(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified"
                    ),
                ));
            }
            object.meta_mut().uid = current.meta().uid.clone();
            object.meta_mut().creation_timestamp = current.meta().creation_timestamp.clone();
            inner.stamp(&mut object, Some(ns));
            map(inner).insert(key, object.clone());
            Ok(to_value(&object))
        }
        (Method::DELETE, Some(name)) => map(inner)
            .remove(&(ns.to_string(), name.to_string()))
            .map(|o| to_value(&o))
            .ok_or_else(|| api_error(404, "NotFound", format!("{plural} \"{name}\" not found"))),
        _ => Err(api_error(
            405,
            "MethodNotAllowed",
            format!("{method} on {plural} is not modelled"),
        )),
    }
}

impl FakeKube {
    pub fn new() -> FakeKube {
        FakeKube::default()
    }

    pub fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- test controls -------------------------------------------------

    pub fn fail(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    pub fn set_latency(&self, latency: std::time::Duration) {
        self.lock().latency = latency;
    }

    /// The most requests (watches excluded) the server ever had in hand at once.
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// Ends every open watch, as a dropped connection would.
    pub fn cut_watches(&self) {
        self.lock().watchers.clear();
    }

    /// Open watches (those whose client is still listening).
    pub fn watch_count(&self) -> usize {
        let mut inner = self.lock();
        inner.watchers.retain(|w| !w.tx.is_closed());
        inner.watchers.len()
    }

    /// Forgets the watch history: a watch resumed from any version seen so
    /// far gets `410 Gone` and must relist.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.history_start = inner.resource_version + 1;
    }

    pub fn add_node(&self, name: &str, addresses: &[(&str, &str)]) {
        let mut node = Node::default();
        node.metadata.name = Some(name.to_string());
        node.status = Some(NodeStatus {
            addresses: Some(
                addresses
                    .iter()
                    .map(|(t, a)| NodeAddress {
                        type_: t.to_string(),
                        address: a.to_string(),
                    })
                    .collect(),
            ),
            ..NodeStatus::default()
        });
        let mut inner = self.lock();
        inner.stamp(&mut node, None);
        inner.nodes.insert(name.to_string(), node);
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.lock().namespaces.contains_key(ns)
    }

    pub fn pod(&self, ns: &str, name: &str) -> Option<Pod> {
        self.lock()
            .pods
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    pub fn pod_names(&self, ns: &str) -> Vec<String> {
        self.lock()
            .pods
            .keys()
            .filter(|(n, _)| n == ns)
            .map(|(_, name)| name.clone())
            .collect()
    }

    pub fn pdb(&self, ns: &str, name: &str) -> Option<PodDisruptionBudget> {
        self.lock()
            .pdbs
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    pub fn events(&self, ns: &str) -> Vec<Event> {
        self.lock()
            .events
            .iter()
            .filter(|((n, _), _)| n == ns)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Changes a pod as the scheduler or kubelet would (a new resource
    /// version and a MODIFIED event). False if there is no such pod.
    pub fn update_pod(&self, ns: &str, name: &str, change: impl FnOnce(&mut Pod)) -> bool {
        let mut inner = self.lock();
        let key = (ns.to_string(), name.to_string());
        let Some(mut pod) = inner.pods.get(&key).cloned() else {
            return false;
        };
        change(&mut pod);
        inner.stamp(&mut pod, Some(ns));
        inner.pods.insert(key, pod.clone());
        inner.publish(ns, "MODIFIED", &pod);
        true
    }

    /// Removes a pod behind maestro's back (a node drain, a kubelet
    /// eviction, someone's `kubectl delete`).
    pub fn remove_pod(&self, ns: &str, name: &str) -> bool {
        let mut inner = self.lock();
        remove_pod(&mut inner, ns, name).is_some()
    }
}

fn remove_pod(inner: &mut Inner, ns: &str, name: &str) -> Option<Pod> {
    let mut pod = inner.pods.remove(&(ns.to_string(), name.to_string()))?;
    inner.stamp(&mut pod, Some(ns));
    inner.publish(ns, "DELETED", &pod);
    Some(pod)
}

async fn handle(State(fake): State<FakeKube>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query: HashMap<String, String> = Query::try_from_uri(request.uri())
        .map(|Query(q)| q)
        .unwrap_or_default();
    let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let body = axum::body::to_bytes(request.into_body(), 16 << 20)
        .await
        .unwrap_or_default();

    if !watch {
        let latency = {
            let mut inner = fake.lock();
            inner.in_flight += 1;
            inner.max_in_flight = inner.max_in_flight.max(inner.in_flight);
            inner.latency
        };
        tokio::time::sleep(latency).await;
        fake.lock().in_flight -= 1;
    }

    let mut inner = fake.lock();
    let fault = inner.faults.iter_mut().find(|f| {
        f.times > 0
            && f.method.as_ref().is_none_or(|m| *m == method)
            && path.contains(&f.path_contains)
            && f.watch.is_none_or(|w| w == watch)
    });
    let fault = fault.map(|f| {
        f.times -= 1;
        (f.status, f.after_apply)
    });
    inner.faults.retain(|f| f.times > 0);

    let response = match fault {
        Some((status, false)) => error_response(status, reason_for(status), "injected by the fake"),
        _ if watch => watch_pods(&mut inner, &path, &query),
        _ => {
            let result = route(&mut inner, &method, &path, &query, &body);
            match (fault, result) {
                (Some((status, true)), _) => {
                    error_response(status, reason_for(status), "injected after applying")
                }
                (_, Ok(value)) => (StatusCode::OK, axum::Json(value)).into_response(),
                (_, Err(e)) => error_response(e.code, e.reason, &e.message),
            }
        }
    };
    inner.requests.push(RequestRecord {
        at: Instant::now(),
        method,
        path,
        watch,
        status: response.status().as_u16(),
    });
    response
}

fn error_response(code: u16, reason: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(status_json(code, reason, message))).into_response()
}

fn route(
    inner: &mut Inner,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    body: &Bytes,
) -> ApiResult {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "v1", "namespaces"] if *method == Method::POST => {
            let mut namespace: Namespace = parse_body(body)?;
            let name = name_of(&namespace)?;
            if inner.namespaces.contains_key(&name) {
                return Err(api_error(
                    409,
                    "AlreadyExists",
                    format!("namespaces \"{name}\" already exists"),
                ));
            }
            inner.stamp(&mut namespace, None);
            namespace.status = Some(k8s_openapi::api::core::v1::NamespaceStatus {
                phase: Some("Active".into()),
                ..Default::default()
            });
            inner.namespaces.insert(name, namespace.clone());
            Ok(to_value(&namespace))
        }
        ["api", "v1", "namespaces", ns] if *method == Method::GET => inner
            .namespaces
            .get(*ns)
            .map(to_value)
            .ok_or_else(|| api_error(404, "NotFound", format!("namespaces \"{ns}\" not found"))),
        ["api", "v1", "namespaces", ns] if *method == Method::DELETE => {
            let Some(mut namespace) = inner.namespaces.remove(*ns) else {
                return Err(api_error(
                    404,
                    "NotFound",
                    format!("namespaces \"{ns}\" not found"),
                ));
            };
            let pods: Vec<String> = inner
                .pods
                .keys()
                .filter(|(n, _)| n == ns)
                .map(|(_, p)| p.clone())
                .collect();
            for pod in pods {
                remove_pod(inner, ns, &pod);
            }
            inner.pdbs.retain(|(n, _), _| n != ns);
            inner.events.retain(|(n, _), _| n != ns);
            namespace.status = Some(k8s_openapi::api::core::v1::NamespaceStatus {
                phase: Some("Terminating".into()),
                ..Default::default()
            });
            Ok(to_value(&namespace))
        }
        ["api", "v1", "namespaces", ns, "pods"] if *method == Method::GET => {
            let selector = parse_selector(query.get("labelSelector"))?;
            let items: Vec<Value> = inner
                .pods
                .iter()
                .filter(|((n, _), p)| n == ns && matches(p.metadata.labels.as_ref(), &selector))
                .map(|(_, p)| to_value(p))
                .collect();
            Ok(json!({"apiVersion": "v1", "kind": "PodList",
                      "metadata": {"resourceVersion": inner.resource_version.to_string()}, "items": items}))
        }
        ["api", "v1", "namespaces", ns, "pods"] if *method == Method::POST => {
            inner.require_namespace(ns)?;
            let mut pod: Pod = parse_body(body)?;
            let name = name_of(&pod)?;
            let key = (ns.to_string(), name.clone());
            if inner.pods.contains_key(&key) {
                return Err(api_error(
                    409,
                    "AlreadyExists",
                    format!("pods \"{name}\" already exists"),
                ));
            }
            if pod.spec.as_ref().is_none_or(|s| s.containers.is_empty()) {
                return Err(api_error(422, "Invalid", "spec.containers: Required value"));
            }
            inner.stamp(&mut pod, Some(ns));
            pod.status = Some(PodStatus {
                phase: Some("Pending".into()),
                ..PodStatus::default()
            });
            inner.pods.insert(key, pod.clone());
            inner.publish(ns, "ADDED", &pod);
            Ok(to_value(&pod))
        }
        ["api", "v1", "namespaces", ns, "pods", name] if *method == Method::GET => inner
            .pods
            .get(&(ns.to_string(), name.to_string()))
            .map(to_value)
            .ok_or_else(|| api_error(404, "NotFound", format!("pods \"{name}\" not found"))),
        ["api", "v1", "namespaces", ns, "pods", name] if *method == Method::DELETE => {
            remove_pod(inner, ns, name)
                .map(|p| to_value(&p))
                .ok_or_else(|| api_error(404, "NotFound", format!("pods \"{name}\" not found")))
        }
        ["api", "v1", "namespaces", ns, "events"] => {
            crud(inner, |i| &mut i.events, "events", method, ns, None, body)
        }
        ["api", "v1", "namespaces", ns, "events", name] => crud(
            inner,
            |i| &mut i.events,
            "events",
            method,
            ns,
            Some(name),
            body,
        ),
        [
            "apis",
            "policy",
            "v1",
            "namespaces",
            ns,
            "poddisruptionbudgets",
        ] => crud(
            inner,
            |i| &mut i.pdbs,
            "poddisruptionbudgets.policy",
            method,
            ns,
            None,
            body,
        ),
        [
            "apis",
            "policy",
            "v1",
            "namespaces",
            ns,
            "poddisruptionbudgets",
            name,
        ] => crud(
            inner,
            |i| &mut i.pdbs,
            "poddisruptionbudgets.policy",
            method,
            ns,
            Some(name),
            body,
        ),
        ["api", "v1", "nodes", name] if *method == Method::GET => inner
            .nodes
            .get(*name)
            .map(to_value)
            .ok_or_else(|| api_error(404, "NotFound", format!("nodes \"{name}\" not found"))),
        _ => Err(api_error(
            404,
            "NotFound",
            format!("{method} {path} is not modelled by the fake"),
        )),
    }
}

/// A streaming pod watch: replays the history after the given resource
/// version (or the current pods as ADDED, without one), then streams live
/// changes until the test cuts it. A version older than the history answers
/// a `410 Gone` ERROR event, as the API server does.
fn watch_pods(inner: &mut Inner, path: &str, query: &HashMap<String, String>) -> Response {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ["api", "v1", "namespaces", ns, "pods"] = segments.as_slice() else {
        return error_response(404, "NotFound", "only pod watches are modelled");
    };
    let namespace = ns.to_string();
    let selector = match parse_selector(query.get("labelSelector")) {
        Ok(s) => s,
        Err(e) => return error_response(e.code, e.reason, &e.message),
    };
    let since: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);

    let mut replay: Vec<Bytes> = Vec::new();
    if since == 0 {
        for ((n, _), pod) in &inner.pods {
            if *n == namespace && matches(pod.metadata.labels.as_ref(), &selector) {
                replay.push(watch_line("ADDED", &to_value(pod)));
            }
        }
    } else if since + 1 < inner.history_start {
        let message = format!(
            "too old resource version: {since} ({})",
            inner.history_start
        );
        let line = watch_line("ERROR", &status_json(410, "Expired", &message));
        return Response::new(Body::from_stream(futures::stream::iter([Ok::<
            _,
            std::convert::Infallible,
        >(line)])));
    } else {
        for (rv, n, kind, pod) in &inner.history {
            if *rv > since && *n == namespace && matches(pod.metadata.labels.as_ref(), &selector) {
                replay.push(watch_line(kind, &to_value(pod)));
            }
        }
    }
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    inner.watchers.push(Watcher {
        namespace,
        selector,
        tx,
    });
    let live = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (line, rx))
    });
    let stream = futures::StreamExt::map(
        futures::StreamExt::chain(futures::stream::iter(replay), live),
        Ok::<_, std::convert::Infallible>,
    );
    Response::new(Body::from_stream(stream))
}
