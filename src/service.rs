//! `maestro start`: wires the store, the runtime, the driver and the APIs
//! together, serves them, and stops gracefully on SIGTERM or SIGINT.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use axum::serve::ListenerExt;
use maestro_api::remote::RemoteBackend;
use maestro_api::{ApiConfig, Backend};
use maestro_engine::Engine;
use maestro_runtimes::Runtime;
use maestro_runtimes::kubernetes::KubernetesRuntime;
use maestro_store::{Kv, Lease, PostgresLease, PostgresStore, SledStore, Store, StoreError};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{Config, RuntimeKind, StoreConfig};
use crate::driver::{Driver, DriverConfig};
use crate::forwarding::{Forwarding, Outbox};
use crate::leader::{self, LeadershipEnded};
use crate::metrics_reporter;
use crate::sim_cluster::{RoomsRouter, SimCluster, TellingBackend};

/// The parts of maestro one process can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Module {
    All,
    ManagementApi,
    RoomsApi,
    Worker,
    RuntimeWatcher,
    MetricsReporter,
}

pub async fn run(config: Config, modules: &[Module]) -> Result<()> {
    let modules: BTreeSet<Module> = if modules.contains(&Module::All) || modules.is_empty() {
        [
            Module::ManagementApi,
            Module::RoomsApi,
            Module::Worker,
            Module::RuntimeWatcher,
            Module::MetricsReporter,
        ]
        .into_iter()
        .collect()
    } else {
        modules.iter().copied().collect()
    };
    let with_worker = modules.contains(&Module::Worker);
    // The runtime watcher feeds the engine, so it lives with the worker.
    if modules.contains(&Module::RuntimeWatcher) && !with_worker {
        bail!("runtime-watcher feeds the engine: start it together with `worker`");
    }
    if config.management_tokens.is_empty() && modules.contains(&Module::ManagementApi) {
        tracing::warn!(
            "the management API has no bearer tokens configured: anyone who reaches it can change schedulers"
        );
    }

    // Latency histograms get real buckets (the exporter's default is a
    // summary, which cannot be aggregated across processes).
    let buckets = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let metrics = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), &buckets)
        .context("configuring histogram buckets")?
        .set_buckets_for_metric(Matcher::Suffix("_latency".to_string()), &buckets)
        .context("configuring histogram buckets")?
        .install_recorder()
        .context("installing the Prometheus recorder")?;
    crate::metrics_help::describe();

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // One listener for SIGTERM and SIGINT for the whole run, installed
    // first: a signal that came while nothing listened (during a takeover's
    // start-up, say) would be lost, its default action being replaced.
    let (signal_tx, signal_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = signal_tx.send(true);
    });
    let api_config = ApiConfig {
        management_tokens: config.management_tokens.clone(),
        rooms_secret: config.rooms_secret.clone(),
        ..ApiConfig::default()
    };
    let mut servers = Vec::new();
    let mut worker = if with_worker {
        match start_worker(&config, &api_config, &metrics, &shutdown_rx, &signal_rx).await? {
            Some(worker) => Some(worker),
            None => {
                tracing::info!("stopped while standby");
                return Ok(());
            }
        }
    } else {
        None
    };
    let backend: Arc<dyn Backend> = match (&worker, &config.worker_url) {
        (Some(worker), _) => Arc::clone(&worker.backend),
        (None, Some(url)) => {
            tracing::info!(worker = %url, "running stateless against a remote worker");
            Arc::new(
                RemoteBackend::connect(url, config.management_tokens.first().cloned())
                    .context("connecting to the worker")?,
            )
        }
        (None, None) => bail!(
            "modules {modules:?} without `worker` run against a remote worker: \
             give its internal address with --worker-url (or workerUrl), e.g. http://maestro-worker:8081"
        ),
    };

    if modules.contains(&Module::ManagementApi) {
        // HTTP/JSON and gRPC on one port (gRPC clients speak h2c).
        let router = maestro_api::management_router(Arc::clone(&backend), &api_config)
            .merge(maestro_api::grpc::management_routes(Arc::clone(&backend), &api_config).await);
        servers.push(
            serve(
                "management API",
                config.management_port,
                router,
                shutdown_rx.clone(),
            )
            .await?,
        );
    }
    if modules.contains(&Module::RoomsApi) {
        let rooms_router = maestro_api::rooms_router(Arc::clone(&backend), &api_config);
        servers.push(
            serve(
                "rooms API",
                config.rooms_port,
                rooms_router.merge(
                    maestro_api::grpc::rooms_routes(Arc::clone(&backend), &api_config).await,
                ),
                shutdown_rx.clone(),
            )
            .await?,
        );
    }
    let mut internal = internal_router(
        Arc::clone(&backend),
        worker.as_ref().map(|w| Arc::clone(&w.store_ok)),
        metrics.clone(),
    );
    if worker.is_some() {
        // The worker protocol, for API processes started without a worker.
        let service = maestro_api::remote::worker_service(Arc::clone(&backend), &api_config);
        internal = internal.merge(tonic::service::Routes::new(service).into_axum_router());
    }
    servers.push(
        serve(
            "internal API",
            config.internal_port,
            internal,
            shutdown_rx.clone(),
        )
        .await?,
    );
    if modules.contains(&Module::MetricsReporter) {
        tokio::spawn(metrics_reporter::run(
            Arc::clone(&backend),
            metrics.clone(),
            shutdown_rx.clone(),
        ));
    }
    // Until a signal, or until the driver stops on its own: a store that
    // failed a write stops the worker, and the process with it (non-zero),
    // so that it restarts from what is durable.
    // A leader that loses its lease stops at once: its successor owns the
    // state now, and its own writes would be refused anyway (fenced).
    let stopped = match worker.as_mut() {
        Some(w) => tokio::select! {
            () = signalled(signal_rx.clone()) => None,
            ended = &mut w.driver_task => Some(Ok(ended)),
            ended = leadership_ended(&mut w.leading) => Some(Err(ended)),
        },
        None => {
            signalled(signal_rx.clone()).await;
            None
        }
    };
    if let Some(Err(ended)) = stopped {
        let _ = shutdown_tx.send(true);
        bail!("the worker stopped leading: {ended}");
    }
    if let Some(Ok(ended)) = stopped {
        let _ = shutdown_tx.send(true);
        match ended {
            Ok(Err(e)) => bail!(
                "the worker stopped: the store failed ({e}); restart to recover from what is durable"
            ),
            Ok(Ok(())) => bail!("the worker stopped unexpectedly"),
            Err(e) => bail!("the driver failed: {e}"),
        }
    }
    tracing::info!("stopping: no new requests; settling the store");
    let _ = shutdown_tx.send(true);
    let grace = config.graceful_shutdown_timeout;
    for server in servers {
        if tokio::time::timeout(grace, server).await.is_err() {
            tracing::warn!("a server did not stop within {grace:?}");
        }
    }
    let Some(worker) = worker else {
        tracing::info!("stopped");
        return Ok(());
    };
    // The lease stays renewed until the last flush is done, then lapses at
    // once so that a standby takes over without waiting for it.
    let flushed = tokio::time::timeout(grace, worker.driver_task).await;
    if let Some(leading) = &worker.leading {
        let _ = leading.stop.send(true);
        if let Ok(Ok(Ok(()))) = &flushed {
            leader::release(&leading.lease, leading.epoch).await;
        }
    }
    match flushed {
        Ok(Ok(Ok(()))) => tracing::info!("stopped; the store is flushed"),
        Ok(Ok(Err(e))) => bail!("the store could not be flushed on the way out: {e}"),
        Ok(Err(e)) => bail!("the driver failed: {e}"),
        Err(_) => bail!("the driver did not stop within {grace:?}"),
    }
    Ok(())
}

/// The worker's parts: the store, the runtime, forwarding and the driver
/// that owns the engine.
struct Worker {
    /// The driver, as the APIs call it.
    backend: Arc<dyn Backend>,
    /// Whether the store answers a read, for `/readyz`.
    store_ok: StoreCheck,
    driver_task: tokio::task::JoinHandle<Result<(), StoreError>>,
    /// On PostgreSQL: the lease this worker leads by, kept renewed.
    leading: Option<Leading>,
}

type StoreCheck = Arc<dyn Fn() -> bool + Send + Sync>;

struct Leading {
    lease: Arc<dyn Lease>,
    epoch: i64,
    kept: tokio::task::JoinHandle<Result<(), LeadershipEnded>>,
    /// Stops the renewals: sent after the worker's last flush.
    stop: watch::Sender<bool>,
}

/// Resolves when the lease is lost (never without one).
async fn leadership_ended(leading: &mut Option<Leading>) -> LeadershipEnded {
    let Some(leading) = leading.as_mut() else {
        return std::future::pending().await;
    };
    match (&mut leading.kept).await {
        Ok(Err(ended)) => ended,
        // Renewals end without a loss only once stopped, after the run's
        // own stop: nothing to report.
        Ok(Ok(())) => std::future::pending().await,
        Err(e) => LeadershipEnded::Expired {
            epoch: leading.epoch,
            waited: Duration::ZERO,
            error: format!("the lease task failed: {e}"),
        },
    }
}

/// Opens the configured store and starts the worker on it; `None` when a
/// stop signal came while this worker waited as a standby.
async fn start_worker(
    config: &Config,
    api_config: &ApiConfig,
    metrics: &PrometheusHandle,
    shutdown_rx: &watch::Receiver<bool>,
    signal_rx: &watch::Receiver<bool>,
) -> Result<Option<Worker>> {
    match &config.store {
        StoreConfig::Sled => {
            tracing::info!(data_dir = %config.data_dir.display(), seed = config.engine.seed, "opening the store");
            let store = Arc::new(SledStore::open(&config.data_dir).context("opening the store")?);
            run_worker(config, api_config, shutdown_rx, store, None)
                .await
                .map(Some)
        }
        StoreConfig::Postgres {
            url,
            lease_duration,
        } => {
            let holder = leader::holder_name();
            let (url_owned, duration) = (url.clone(), *lease_duration);
            let name = holder.clone();
            let lease = tokio::task::spawn_blocking(move || {
                PostgresLease::connect(&url_owned, &name, duration)
            })
            .await
            .context("connecting to PostgreSQL")?
            .context("connecting to PostgreSQL for the leader lease")?;
            let lease: Arc<dyn Lease> = Arc::new(lease);
            tracing::info!(%holder, lease = ?duration, "waiting for the leader lease");
            // A standby answers health checks, and `/readyz` says it does
            // not serve, so that a Service routes only to the leader.
            let (standby_stop, standby_stopped) = watch::channel(false);
            let standby = serve(
                "internal API (standby)",
                config.internal_port,
                standby_router(metrics.clone()),
                standby_stopped,
            )
            .await?;
            let epoch = tokio::select! {
                epoch = leader::acquire(&lease) => Some(epoch),
                () = signalled(signal_rx.clone()) => None,
            };
            let _ = standby_stop.send(true);
            let _ = standby.await;
            let Some(epoch) = epoch else {
                return Ok(None);
            };
            let url_owned = url.clone();
            let store = tokio::task::spawn_blocking(move || {
                PostgresStore::connect_fenced(&url_owned, epoch)
            })
            .await
            .context("opening the store")?
            .context("opening the store on PostgreSQL")?;
            let (stop, stopped) = watch::channel(false);
            let kept = tokio::spawn(leader::keep(Arc::clone(&lease), epoch, stopped));
            let leading = Leading {
                lease,
                epoch,
                kept,
                stop,
            };
            run_worker(
                config,
                api_config,
                shutdown_rx,
                Arc::new(store),
                Some(leading),
            )
            .await
            .map(Some)
        }
    }
}

async fn run_worker<K: Kv + 'static>(
    config: &Config,
    api_config: &ApiConfig,
    shutdown_rx: &watch::Receiver<bool>,
    store: Arc<Store<K>>,
    leading: Option<Leading>,
) -> Result<Worker> {
    // Engine time: the wall clock once (never behind what the store last
    // wrote), then monotonic (see `clock`).
    let clock = Clock::resume_after(store.clock_mark());
    let sim = match config.runtime {
        RuntimeKind::Sim => Some(SimCluster::start(
            config.sim.clone(),
            clock,
            shutdown_rx.clone(),
        )),
        RuntimeKind::Kubernetes => None,
    };
    let runtime: Arc<dyn Runtime> = match &sim {
        Some(sim) => Arc::clone(sim) as Arc<dyn Runtime>,
        None => Arc::new(
            KubernetesRuntime::connect(config.kubernetes.clone())
                .await
                .context("connecting to Kubernetes")?,
        ),
    };

    let driver_config = DriverConfig {
        rooms_secret: config.rooms_secret.clone(),
        record: config.record.clone(),
        ..DriverConfig::default()
    };
    let engine = Engine::new(config.engine.clone());
    let outbox: Arc<dyn Outbox> = Arc::clone(&store) as Arc<dyn Outbox>;
    let forwarding = Forwarding::start(
        outbox,
        config.forwarding.clone(),
        clock,
        shutdown_rx.clone(),
    )
    .context("reading the forwarding outbox")?;
    let (driver, handle) = Driver::new(
        engine,
        clock,
        Arc::clone(&store),
        Arc::clone(&runtime),
        forwarding,
        driver_config,
    )
    .context("starting the driver")?;
    let driver_task = tokio::spawn(driver.run(shutdown_rx.clone()));

    let mut backend: Arc<dyn Backend> = Arc::new(handle);
    if let Some(sim) = sim {
        // Simulated game servers ping through the real rooms routes, and
        // hear of their allocations as a matchmaker would tell them.
        sim.connect(Arc::new(RoomsRouter {
            router: maestro_api::rooms_router(Arc::clone(&backend), api_config),
            secret: config.rooms_secret.clone(),
        }));
        backend = Arc::new(TellingBackend {
            inner: backend,
            sim,
        });
    }
    let store_ok: StoreCheck = Arc::new(move || store.size_on_disk().is_ok());
    Ok(Worker {
        backend,
        store_ok,
        driver_task,
        leading,
    })
}

async fn serve(
    name: &'static str,
    port: u16,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {name} to {addr}"))?
        // Small answers go out at once. With Nagle's algorithm an HTTP/2
        // connection (gRPC, the worker protocol) holds a frame while an
        // earlier one is unacknowledged, and the peer's delayed ACK makes
        // that up to 40 ms.
        .tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
            }
        });
    tracing::info!(%addr, "{name} listening");
    Ok(tokio::spawn(async move {
        let stop = async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "{name} stopped");
        }
    }))
}

/// Resolves once the signal listener saw SIGTERM or SIGINT.
async fn signalled(mut signal: watch::Receiver<bool>) {
    while !*signal.borrow_and_update() {
        if signal.changed().await.is_err() {
            // The listener is gone: no signal will come.
            return std::future::pending().await;
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// A standby worker's internal port: alive, not ready (it serves nothing
/// until it leads), and its metrics.
fn standby_router(metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "OK" }))
        .route("/health", get(|| async { "OK" }))
        .route(
            "/readyz",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "standby: another worker leads",
                )
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.render() }
            }),
        )
        .merge(
            tonic::service::Routes::new(maestro_api::remote::standby_service()).into_axum_router(),
        )
}

/// `/healthz`, `/readyz` and `/metrics`.
fn internal_router(
    backend: Arc<dyn Backend>,
    store_ok: Option<StoreCheck>,
    metrics: PrometheusHandle,
) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "OK" }))
        .route("/health", get(|| async { "OK" }))
        .route(
            "/readyz",
            get(move || {
                let backend = Arc::clone(&backend);
                let store_ok = store_ok.clone();
                async move {
                    // Ready when the engine answers (in process, or the
                    // remote worker) and, on the worker, the store reads.
                    let engine = tokio::time::timeout(
                        Duration::from_secs(2),
                        backend.scheduler(String::new(), None),
                    )
                    .await;
                    let store_ok = store_ok.is_none_or(|ok| ok());
                    if matches!(engine, Ok(Ok(_))) && store_ok {
                        (StatusCode::OK, "OK")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.render() }
            }),
        )
}
