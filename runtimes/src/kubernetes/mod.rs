//! The Kubernetes runtime (kube-rs): one namespace per scheduler, one pod per
//! room, a disruption budget per scheduler, Kubernetes Events recording why
//! rooms are deleted, and a pod watch per scheduler.
//!
//! Every request goes through a client-side QPS/burst limit ([`rate_limit`])
//! and, when answered 429 or 5xx, is retried with a bounded exponential
//! backoff. Pod creations are bounded in flight (`create_batch_size`).
//!
//! Build one with [`KubernetesRuntime::connect`] from a [`KubernetesConfig`]
//! (in-cluster, kubeconfig or master URL), or with
//! [`KubernetesRuntime::from_service`] over any HTTP service (the tests'
//! in-process fake API server).

pub mod address;
pub mod config;
pub mod error;
pub mod pod;
pub mod rate_limit;
pub mod status;
mod watch;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backon::Retryable;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{Event, EventSource, Namespace, ObjectReference, Pod};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, MicroTime, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use maestro_engine::room::{RemovalReason, RoomId};
use maestro_engine::scheduler::Scheduler;
use maestro_engine::{InstanceEvent, RuntimeError, RuntimeErrorKind};
use tokio::sync::Semaphore;

pub use address::NodeAddressCache;
pub use config::{ClientSource, KubernetesConfig, RetryConfig, TopologySpreadConfig};
pub use error::KubernetesError;
pub use rate_limit::RateLimitLayer;

use crate::{RoomSpec, Runtime};
use error::{Verb, is_retryable, runtime_error};
use pod::LABEL_SCHEDULER;

/// The `source.component` of the Events maestro records (as upstream).
pub const EVENT_SOURCE: &str = "maestro-next";
/// The `reason` of the Event recorded on a pod before deleting it.
pub const EVENT_REASON_DELETED: &str = "GameRoomDeleted";
/// Attempts to replace the disruption budget when another writer races us.
const PDB_CONFLICT_ATTEMPTS: u32 = 5;

pub struct KubernetesRuntime {
    client: Client,
    config: KubernetesConfig,
    nodes: Arc<NodeAddressCache>,
    create_slots: Arc<Semaphore>,
}

impl KubernetesRuntime {
    /// Connects as the configuration says (in-cluster, kubeconfig, master
    /// URL), with the client-side rate limit in front of every request.
    /// kube's own retry layer is turned off: retries are this runtime's,
    /// bounded and deterministic.
    pub async fn connect(config: KubernetesConfig) -> Result<KubernetesRuntime, KubernetesError> {
        let mut kube_config = match config
            .client_source()
            .ok_or(KubernetesError::NotConfigured)?
        {
            ClientSource::InCluster => kube::Config::incluster()?,
            ClientSource::Kubeconfig(path) => {
                let kubeconfig_error = |source| KubernetesError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                };
                let file = kube::config::Kubeconfig::read_from(&path).map_err(kubeconfig_error)?;
                kube::Config::from_custom_kubeconfig(
                    file,
                    &kube::config::KubeConfigOptions::default(),
                )
                .await
                .map_err(kubeconfig_error)?
            }
            ClientSource::MasterUrl(url) => {
                let uri = url.parse().map_err(|source| KubernetesError::MasterUrl {
                    url: url.clone(),
                    source,
                })?;
                kube::Config::new(uri)
            }
        };
        kube_config.default_retry = false;
        let client = kube::client::ClientBuilder::try_from(kube_config)?
            .with_layer(&RateLimitLayer::new(config.qps, config.burst))
            .build();
        Ok(KubernetesRuntime::with_client(client, config))
    }

    /// A runtime over any HTTP service speaking the Kubernetes API (for
    /// instance an in-process fake), behind the configured rate limit.
    pub fn from_service<S, B>(service: S, config: KubernetesConfig) -> KubernetesRuntime
    where
        S: tower::Service<http::Request<kube::client::Body>, Response = http::Response<B>>
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<tower::BoxError>,
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<tower::BoxError>,
    {
        let limited = tower::Layer::layer(&RateLimitLayer::new(config.qps, config.burst), service);
        KubernetesRuntime::with_client(Client::new(limited, "default"), config)
    }

    /// A runtime over a client built elsewhere. The client's own stack
    /// decides about rate limiting.
    pub fn with_client(client: Client, config: KubernetesConfig) -> KubernetesRuntime {
        let nodes = Arc::new(NodeAddressCache::new(
            Duration::from_secs(config.node_address_ttl_secs),
            NodeAddressCache::DEFAULT_CAPACITY,
        ));
        let create_slots = Arc::new(Semaphore::new(
            config.create_batch_size.clamp(1, Semaphore::MAX_PERMITS),
        ));
        KubernetesRuntime {
            client,
            config,
            nodes,
            create_slots,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    /// Runs `call` until it succeeds, fails with an answer not worth
    /// retrying, or `max_attempts` is reached; backs off exponentially
    /// between attempts. Returns the error with the attempt it came from.
    async fn retrying<T, F, Fut>(&self, what: &str, call: F) -> Result<T, (kube::Error, u32)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        // backon calls `notify` before each retry, so `attempt` counts the
        // attempts made.
        let mut attempt = 1u32;
        let result = call
            .retry(self.config.retry.backoff())
            .sleep(tokio::time::sleep)
            .when(is_retryable)
            .notify(|err, delay| {
                tracing::debug!(what, attempt, ?delay, error = %err, "retrying");
                attempt += 1;
            })
            .await;
        result.map_err(|err| (err, attempt))
    }

    fn pdb_api(&self, scheduler: &str) -> Api<PodDisruptionBudget> {
        Api::namespaced(self.client.clone(), scheduler)
    }

    /// Records an Event on the pod saying why it is deleted (upstream #601).
    /// Best effort: a failure is logged and the deletion goes on.
    async fn record_deletion(&self, scheduler: &str, room: &str, reason: RemovalReason) {
        let now = SystemTime::now();
        let nanos = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let timestamp = k8s_openapi::jiff::Timestamp::try_from(now).ok();
        let event = Event {
            metadata: ObjectMeta {
                // client-go's recorder names events `<object>.<unix nanos hex>`.
                name: Some(format!("{room}.{nanos:x}")),
                namespace: Some(scheduler.to_string()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(room.to_string()),
                namespace: Some(scheduler.to_string()),
                ..ObjectReference::default()
            },
            reason: Some(EVENT_REASON_DELETED.into()),
            message: Some(format!("game room deleted: {}", reason.as_str())),
            type_: Some("Normal".into()),
            source: Some(EventSource {
                component: Some(EVENT_SOURCE.into()),
                host: None,
            }),
            reporting_component: Some(EVENT_SOURCE.into()),
            first_timestamp: timestamp.map(Time),
            last_timestamp: timestamp.map(Time),
            event_time: timestamp.map(MicroTime),
            count: Some(1),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), scheduler);
        if let Err(err) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(scheduler, room, error = %err, "cannot record the room's deletion event");
        }
    }

    fn pdb(scheduler: &str, min_available: u32) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some(scheduler.to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(pdb_spec(scheduler, min_available)),
            status: None,
        }
    }
}

fn pdb_spec(scheduler: &str, min_available: u32) -> PodDisruptionBudgetSpec {
    PodDisruptionBudgetSpec {
        min_available: Some(IntOrString::Int(
            i32::try_from(min_available).unwrap_or(i32::MAX),
        )),
        selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                LABEL_SCHEDULER.to_string(),
                scheduler.to_string(),
            )])),
            ..LabelSelector::default()
        }),
        ..PodDisruptionBudgetSpec::default()
    }
}

#[async_trait::async_trait]
impl Runtime for KubernetesRuntime {
    /// The namespace, then the disruption budget (`minAvailable: 0`). The
    /// budget is created even when the namespace already exists, so a retry
    /// completes a half-done creation; a budget failure is only logged, as
    /// upstream does (the disruption worker creates it later anyway).
    async fn create_scheduler(&self, scheduler: &Scheduler) -> Result<(), RuntimeError> {
        let name = scheduler.name.as_str();
        let post = PostParams::default();
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let what = format!("create namespace {name}");
        let created = self
            .retrying(&what, || namespaces.create(&post, &namespace))
            .await
            .map_err(|(err, _)| runtime_error(&err, Verb::Create, &what));
        if let Err(err) = &created
            && err.kind != RuntimeErrorKind::AlreadyExists
        {
            return Err(err.clone());
        }
        let pdbs = self.pdb_api(name);
        let pdb = Self::pdb(name, 0);
        let pdb_what = format!("create disruption budget {name}");
        if let Err((err, _)) = self.retrying(&pdb_what, || pdbs.create(&post, &pdb)).await {
            let err = runtime_error(&err, Verb::Create, &pdb_what);
            if err.kind != RuntimeErrorKind::AlreadyExists {
                tracing::warn!(scheduler = name, error = %err, "cannot create the disruption budget");
            }
        }
        created.map(|_| ())
    }

    /// The disruption budget (a missing one is fine), then the namespace,
    /// which takes every pod with it.
    async fn delete_scheduler(&self, scheduler: &str) -> Result<(), RuntimeError> {
        let delete = DeleteParams::default();
        let pdbs = self.pdb_api(scheduler);
        let pdb_what = format!("delete disruption budget {scheduler}");
        if let Err((err, _)) = self
            .retrying(&pdb_what, || pdbs.delete(scheduler, &delete))
            .await
        {
            let err = runtime_error(&err, Verb::Other, &pdb_what);
            if err.kind != RuntimeErrorKind::NotFound {
                tracing::warn!(scheduler, error = %err, "cannot delete the disruption budget");
            }
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let what = format!("delete namespace {scheduler}");
        self.retrying(&what, || namespaces.delete(scheduler, &delete))
            .await
            .map(|_| ())
            .map_err(|(err, _)| runtime_error(&err, Verb::Other, &what))
    }

    /// Creates the room's pod. At most `create_batch_size` creations are in
    /// flight; the others wait their turn. A 409 on a retried attempt means
    /// an earlier attempt of ours went through (its answer was lost), so it
    /// counts as success.
    async fn create_room(&self, room: &RoomSpec) -> Result<(), RuntimeError> {
        let pod = pod::room_pod(room, &self.config.topology_spread_constraint)?;
        let post = PostParams::default();
        let _slot = self.create_slots.acquire().await.map_err(|_| {
            RuntimeError::new(RuntimeErrorKind::Internal, "the runtime is shutting down")
        })?;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &room.scheduler);
        let what = format!("create pod {}/{}", room.scheduler, room.room);
        match self.retrying(&what, || pods.create(&post, &pod)).await {
            Ok(_) => Ok(()),
            Err((err, attempt)) => {
                let err = runtime_error(&err, Verb::Create, &what);
                if err.kind == RuntimeErrorKind::AlreadyExists && attempt > 1 {
                    tracing::debug!(room = %room.room, "pod exists after a retried creation: ours");
                    return Ok(());
                }
                Err(err)
            }
        }
    }

    /// Records the reason as an Event on the pod, then deletes the pod with
    /// its grace period. Does not wait for it to be gone: the watch reports
    /// that.
    async fn delete_room(
        &self,
        scheduler: &str,
        room: &str,
        reason: RemovalReason,
    ) -> Result<(), RuntimeError> {
        self.record_deletion(scheduler, room, reason).await;
        let delete = DeleteParams::default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), scheduler);
        let what = format!("delete pod {scheduler}/{room}");
        self.retrying(&what, || pods.delete(room, &delete))
            .await
            .map(|_| ())
            .map_err(|(err, _)| runtime_error(&err, Verb::Other, &what))
    }

    /// Get or create the budget named after the scheduler; replace its spec
    /// (`minAvailable` and the scheduler selector, clearing any
    /// `maxUnavailable`) unless it already says so. Retries on conflict.
    async fn set_disruption_budget(
        &self,
        scheduler: &str,
        min_available: u32,
    ) -> Result<(), RuntimeError> {
        let pdbs = self.pdb_api(scheduler);
        let what = format!("disruption budget {scheduler}");
        let want = pdb_spec(scheduler, min_available);
        let post = PostParams::default();
        for _ in 0..PDB_CONFLICT_ATTEMPTS {
            let current = match self.retrying(&what, || pdbs.get_opt(scheduler)).await {
                Ok(current) => current,
                Err((err, _)) => return Err(runtime_error(&err, Verb::Other, &what)),
            };
            let result = match current {
                None => {
                    let pdb = Self::pdb(scheduler, min_available);
                    self.retrying(&what, || pdbs.create(&post, &pdb))
                        .await
                        .map(|_| ())
                }
                Some(current) => {
                    let spec = current.spec.clone().unwrap_or_default();
                    if spec.min_available == want.min_available && spec.max_unavailable.is_none() {
                        return Ok(());
                    }
                    let mut replaced = current;
                    replaced.spec = Some(want.clone());
                    self.retrying(&what, || pdbs.replace(scheduler, &post, &replaced))
                        .await
                        .map(|_| ())
                }
            };
            match result {
                Ok(()) => return Ok(()),
                // A concurrent create or update: read again and retry.
                Err((err, _)) if error::status_code(&err) == Some(409) => continue,
                Err((err, _)) => return Err(runtime_error(&err, Verb::Other, &what)),
            }
        }
        Err(RuntimeError::new(
            RuntimeErrorKind::Conflict,
            format!("{what}: still conflicting after {PDB_CONFLICT_ATTEMPTS} attempts"),
        ))
    }

    fn watch(
        &self,
        scheduler: &str,
        known_rooms: Vec<RoomId>,
    ) -> BoxStream<'static, InstanceEvent> {
        let converter = watch::Converter {
            client: self.client.clone(),
            nodes: self.nodes.clone(),
        };
        watch::instance_events(
            converter,
            scheduler,
            known_rooms,
            self.config.watch_backoff(),
        )
    }
}
