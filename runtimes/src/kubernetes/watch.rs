//! The instance events of one scheduler's pods.
//!
//! kube-runtime's `watcher` lists, then watches from the list's resource
//! version; after a dropped connection it resumes from the last version it
//! saw, and after `410 Gone` (history compacted) it lists again. On top of
//! it this stream:
//!
//! - remembers the last event it emitted per pod, so a relist (or a
//!   replayed event) that changes nothing emits nothing: the engine sees
//!   each state once;
//! - diffs every relist against the pods it knows, so a pod deleted while
//!   the watch was down still produces a `Deleted` event;
//! - waits between failed attempts with a deterministic exponential backoff
//!   (no jitter, reset once events flow), instead of kube's jittered default,
//!   so tests are reproducible.
//!
//! The stream is driven by its consumer (no task of its own): dropping it
//! stops the watch.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use maestro_engine::room::InstanceStatus;
use maestro_engine::version::Version;
use maestro_engine::{InstanceEvent, InstanceEventKind};

use super::address::{NodeAddressCache, node_address, pod_address};
use super::pod::{LABEL_VERSION, maestro_selector};
use super::status::instance_status;

type PodEvents = BoxStream<'static, Result<watcher::Event<Pod>, watcher::Error>>;

/// Everything needed to turn pods into instance events.
#[derive(Clone)]
pub(crate) struct Converter {
    pub client: Client,
    pub nodes: Arc<NodeAddressCache>,
}

impl Converter {
    /// The pod as an upsert event. The address is `None` until the pod has a
    /// node, or when the node has no usable address (logged; upstream drops
    /// the whole event then, which would also hide the status).
    pub async fn upsert(&self, scheduler: &str, pod: &Pod) -> InstanceEvent {
        let (status, description) = instance_status(pod);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let address = match node {
            Some(node) => self
                .node_host(&node)
                .await
                .map(|host| pod_address(pod, host)),
            None => None,
        };
        InstanceEvent {
            scheduler: scheduler.to_string(),
            room: pod.name_any(),
            kind: InstanceEventKind::Upsert,
            status,
            description,
            address,
            version: pod
                .labels()
                .get(LABEL_VERSION)
                .and_then(|v| Version::parse(v)),
        }
    }

    async fn node_host(&self, node: &str) -> Option<String> {
        if let Some(host) = self.nodes.get(node) {
            return Some(host);
        }
        let api: Api<Node> = Api::all(self.client.clone());
        match api.get(node).await {
            Ok(n) => match node_address(&n) {
                Some(host) => {
                    self.nodes.insert(node, host.clone());
                    Some(host)
                }
                None => {
                    tracing::warn!(node, "node has no usable address");
                    None
                }
            },
            Err(err) => {
                tracing::warn!(node, error = %err, "cannot read node address");
                None
            }
        }
    }
}

/// The last emitted state of a pod, to drop events that change nothing.
type Emitted = InstanceEvent;

struct WatchState {
    scheduler: String,
    converter: Converter,
    api: Api<Pod>,
    events: PodEvents,
    known: HashMap<String, Emitted>,
    /// Names listed since the last `Init`, while a (re)list is in progress.
    relisting: Option<HashSet<String>>,
    pending: VecDeque<InstanceEvent>,
    backoff: ExponentialBuilder,
    max_delay: Duration,
    /// The delays since the last event; `None` until a failure, and again
    /// once events flow (the backoff starts over).
    delays: Option<Delays>,
}

type Delays = <ExponentialBuilder as BackoffBuilder>::Backoff;

pub(crate) fn instance_events(
    converter: Converter,
    scheduler: &str,
    known_rooms: Vec<String>,
    (backoff, max_delay): (ExponentialBuilder, Duration),
) -> BoxStream<'static, InstanceEvent> {
    let api: Api<Pod> = Api::namespaced(converter.client.clone(), scheduler);
    // Rooms the caller knows count as seen before: the first listing's
    // diff reports those the cluster no longer has.
    let known = known_rooms
        .into_iter()
        .map(|room| {
            let placeholder = InstanceEvent {
                scheduler: scheduler.to_string(),
                room: room.clone(),
                kind: InstanceEventKind::Upsert,
                status: InstanceStatus::Unknown,
                description: String::new(),
                address: None,
                version: None,
            };
            (room, placeholder)
        })
        .collect();
    let state = WatchState {
        scheduler: scheduler.to_string(),
        events: pod_watcher(api.clone()),
        api,
        converter,
        known,
        relisting: None,
        pending: VecDeque::new(),
        backoff,
        max_delay,
        delays: None,
    };
    futures::stream::unfold(state, |mut state| async move {
        let event = state.next_event().await;
        Some((event, state))
    })
    .boxed()
}

fn pod_watcher(api: Api<Pod>) -> PodEvents {
    watcher(api, watcher::Config::default().labels(&maestro_selector())).boxed()
}

impl WatchState {
    async fn next_event(&mut self) -> InstanceEvent {
        // Each turn either returns a queued event, handles one watcher event,
        // or sleeps a bounded backoff after a failure.
        loop {
            if let Some(event) = self.pending.pop_front() {
                return event;
            }
            match self.events.next().await {
                Some(Ok(event)) => {
                    self.delays = None;
                    self.apply(event).await;
                }
                Some(Err(err)) => {
                    let delay = self.next_delay();
                    tracing::warn!(scheduler = %self.scheduler, error = %err, ?delay, "pod watch failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                None => {
                    // The watcher never ends by itself; if it does, start over
                    // (a relist, diffed as any other).
                    tokio::time::sleep(self.next_delay()).await;
                    self.events = pod_watcher(self.api.clone());
                }
            }
        }
    }

    /// The backoff has no attempt limit, so its delays do not run out; if
    /// they ever did, the longest one is the safe choice.
    fn next_delay(&mut self) -> Duration {
        let backoff = self.backoff;
        self.delays
            .get_or_insert_with(|| backoff.build())
            .next()
            .unwrap_or(self.max_delay)
    }

    async fn apply(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => self.relisting = Some(HashSet::new()),
            watcher::Event::InitApply(pod) => {
                if let Some(seen) = self.relisting.as_mut() {
                    seen.insert(pod.name_any());
                }
                self.upsert(&pod).await;
            }
            watcher::Event::InitDone => {
                let seen = self.relisting.take().unwrap_or_default();
                let mut gone: Vec<String> = self
                    .known
                    .keys()
                    .filter(|name| !seen.contains(*name))
                    .cloned()
                    .collect();
                gone.sort();
                for name in gone {
                    self.deleted(&name);
                }
            }
            watcher::Event::Apply(pod) => self.upsert(&pod).await,
            watcher::Event::Delete(pod) => self.deleted(&pod.name_any()),
        }
    }

    async fn upsert(&mut self, pod: &Pod) {
        let event = self.converter.upsert(&self.scheduler, pod).await;
        if self.known.get(&event.room) == Some(&event) {
            return;
        }
        self.known.insert(event.room.clone(), event.clone());
        self.pending.push_back(event);
    }

    /// A `Deleted` event, once per pod: a pod this stream never reported is
    /// unknown to it, and a second deletion of the same pod changes nothing.
    fn deleted(&mut self, name: &str) {
        let Some(last) = self.known.remove(name) else {
            return;
        };
        self.pending.push_back(InstanceEvent {
            kind: InstanceEventKind::Deleted,
            status: InstanceStatus::Terminating,
            description: String::new(),
            ..last
        });
    }
}
