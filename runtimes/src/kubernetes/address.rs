//! Where players reach a room: its node's address and its host ports.
//!
//! The node address follows upstream's preference: ExternalDNS, then
//! ExternalIP, InternalDNS, InternalIP (IPs must parse as IPs). Addresses are cached
//! per node (upstream caches 24 h, #474): a node's addresses practically
//! never change, and every pod event would otherwise cost a `GET node`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use maestro_engine::room::{Address, AddressPort};
use tokio::time::Instant;

/// The preferred address of a node, `None` when it has no usable one.
pub fn node_address(node: &Node) -> Option<String> {
    let addresses = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or(&[]);
    let find = |kind: &str, must_be_ip: bool| {
        addresses
            .iter()
            .filter(|a| a.type_ == kind && !a.address.is_empty())
            .find(|a| !must_be_ip || a.address.parse::<IpAddr>().is_ok())
            .map(|a| a.address.clone())
    };
    find("ExternalDNS", false)
        .or_else(|| find("ExternalIP", true))
        .or_else(|| find("InternalDNS", false))
        .or_else(|| find("InternalIP", true))
}

/// The room's address on `host`: every container port with a host port,
/// protocol as Kubernetes spells it (`TCP`/`UDP`), as upstream reports it.
pub fn pod_address(pod: &Pod, host: String) -> Address {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[]);
    let ports = containers
        .iter()
        .flat_map(|c| c.ports.as_deref().unwrap_or(&[]))
        .filter_map(|p| {
            let port = u16::try_from(p.host_port?).ok().filter(|port| *port != 0)?;
            Some(AddressPort {
                name: p.name.clone().unwrap_or_default(),
                port,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
            })
        })
        .collect();
    Address { host, ports }
}

/// Node name → (address, when it was fetched). Bounded: when full, the
/// whole cache is dropped (clusters have far fewer nodes than the bound;
/// this only guards against unbounded growth).
#[derive(Debug)]
pub struct NodeAddressCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, (String, Instant)>>,
}

impl NodeAddressCache {
    pub const DEFAULT_CAPACITY: usize = 20_000;

    pub fn new(ttl: Duration, capacity: usize) -> NodeAddressCache {
        NodeAddressCache {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, node: &str) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (address, at) = entries.get(node)?;
        (at.elapsed() < self.ttl).then(|| address.clone())
    }

    pub fn insert(&self, node: &str, address: String) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(node) {
            entries.clear();
        }
        entries.insert(node.to_string(), (address, Instant::now()));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, NodeAddress, NodeStatus, PodSpec};

    fn node(addresses: &[(&str, &str)]) -> Node {
        Node {
            status: Some(NodeStatus {
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
            }),
            ..Node::default()
        }
    }

    #[test]
    fn preference_order() {
        let all = [
            ("InternalIP", "10.0.0.1"),
            ("InternalDNS", "n1.internal"),
            ("ExternalIP", "1.2.3.4"),
            ("ExternalDNS", "n1.example.com"),
        ];
        assert_eq!(node_address(&node(&all)).as_deref(), Some("n1.example.com"));
        assert_eq!(node_address(&node(&all[..3])).as_deref(), Some("1.2.3.4"));
        assert_eq!(
            node_address(&node(&all[..2])).as_deref(),
            Some("n1.internal")
        );
        assert_eq!(node_address(&node(&all[..1])).as_deref(), Some("10.0.0.1"));
        assert_eq!(
            node_address(&node(&[
                ("ExternalIP", "not-an-ip"),
                ("InternalIP", "10.0.0.2")
            ]))
            .as_deref(),
            Some("10.0.0.2")
        );
        assert_eq!(node_address(&node(&[("Hostname", "n1")])), None);
        assert_eq!(node_address(&Node::default()), None);
    }

    #[test]
    fn pod_address_lists_host_ports_only() {
        let port = |name: &str, host: Option<i32>, proto: &str| ContainerPort {
            name: Some(name.into()),
            container_port: 7000,
            host_port: host,
            protocol: Some(proto.into()),
            ..ContainerPort::default()
        };
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "game".into(),
                    ports: Some(vec![
                        port("a", Some(20001), "UDP"),
                        port("b", None, "TCP"),
                        port("c", Some(0), "TCP"),
                    ]),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        assert_eq!(
            pod_address(&pod, "h".into()),
            Address {
                host: "h".into(),
                ports: vec![AddressPort {
                    name: "a".into(),
                    port: 20001,
                    protocol: "UDP".into()
                }]
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cache_expires_and_stays_bounded() {
        let cache = NodeAddressCache::new(Duration::from_secs(10), 2);
        cache.insert("a", "1".into());
        assert_eq!(cache.get("a").as_deref(), Some("1"));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(cache.get("a"), None);
        cache.insert("b", "2".into());
        cache.insert("c", "3".into());
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get("c").as_deref(), Some("3"));
    }
}
