//! The node pool: capacity, first-fit placement and the node autoscaler.
//!
//! Placement is first fit: a pending pod goes to the node with the lowest id
//! that has room for its requests, and pending pods are placed in the order
//! they were created (a pod that fits nowhere does not hold back a smaller
//! one behind it). Without a pool every pod fits at once.

use std::collections::{BTreeMap, BTreeSet};

use maestro_engine::{Millis, Time};

/// A node pool of identical nodes, as a cloud node group.
#[derive(Clone, Debug, PartialEq)]
pub struct NodePool {
    /// Each node's allocatable CPU, in millicores.
    pub cpu_millis: u64,
    /// Each node's allocatable memory, in bytes.
    pub memory_bytes: u64,
    /// Nodes at the start, and the fewest the autoscaler keeps.
    pub min_nodes: u32,
    /// The most nodes the pool holds.
    pub max_nodes: u32,
    /// `None`: the pool stays at `min_nodes`.
    pub autoscale: Option<NodeAutoscale>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeAutoscale {
    /// A node is added once pods have waited this long for room (a cloud
    /// node pool takes about 90 s).
    pub add_after: Millis,
    /// A node empty for this long is removed.
    pub remove_after_empty: Millis,
}

impl Default for NodeAutoscale {
    fn default() -> Self {
        NodeAutoscale {
            add_after: Millis::from_secs(90),
            remove_after_empty: Millis::from_secs(600),
        }
    }
}

pub type NodeId = u32;

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub used_cpu: u64,
    pub used_memory: u64,
    pub pods: u32,
    pub empty_since: Option<Time>,
}

/// The nodes of a pool, with the index placement needs.
#[derive(Debug)]
pub(crate) struct Nodes {
    pub pool: NodePool,
    pub nodes: BTreeMap<NodeId, Node>,
    /// Nodes with room for the smallest request seen so far: no other node
    /// can take any pod, so placement scans only these.
    open: BTreeSet<NodeId>,
    min_cpu: u64,
    min_memory: u64,
    next_id: NodeId,
}

impl Nodes {
    pub fn new(pool: NodePool, now: Time) -> Nodes {
        let mut nodes = Nodes {
            pool,
            nodes: BTreeMap::new(),
            open: BTreeSet::new(),
            min_cpu: u64::MAX,
            min_memory: u64::MAX,
            next_id: 0,
        };
        for _ in 0..nodes.pool.min_nodes.min(nodes.pool.max_nodes) {
            nodes.add(now);
        }
        nodes
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn can_grow(&self) -> bool {
        self.nodes.len() < self.pool.max_nodes as usize
    }

    pub fn add(&mut self, now: Time) -> Option<NodeId> {
        if !self.can_grow() {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.nodes.insert(
            id,
            Node {
                used_cpu: 0,
                used_memory: 0,
                pods: 0,
                empty_since: Some(now),
            },
        );
        self.refresh(id);
        Some(id)
    }

    /// Whether a pod with these requests could ever fit on a node.
    pub fn fits_any_node(&self, cpu: u64, memory: u64) -> bool {
        cpu <= self.pool.cpu_millis && memory <= self.pool.memory_bytes
    }

    /// First fit: the lowest node id with room, which takes the pod.
    pub fn place(&mut self, cpu: u64, memory: u64) -> Option<NodeId> {
        if cpu < self.min_cpu || memory < self.min_memory {
            self.min_cpu = self.min_cpu.min(cpu);
            self.min_memory = self.min_memory.min(memory);
            self.reindex();
        }
        let pool = &self.pool;
        let id = self.open.iter().copied().find(|id| {
            self.nodes.get(id).is_some_and(|n| {
                n.used_cpu + cpu <= pool.cpu_millis && n.used_memory + memory <= pool.memory_bytes
            })
        })?;
        let node = self.nodes.get_mut(&id)?;
        node.used_cpu += cpu;
        node.used_memory += memory;
        node.pods += 1;
        node.empty_since = None;
        self.refresh(id);
        Some(id)
    }

    pub fn release(&mut self, id: NodeId, cpu: u64, memory: u64, now: Time) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.used_cpu = node.used_cpu.saturating_sub(cpu);
            node.used_memory = node.used_memory.saturating_sub(memory);
            node.pods = node.pods.saturating_sub(1);
            if node.pods == 0 {
                node.empty_since = Some(now);
            }
            self.refresh(id);
        }
    }

    pub fn remove(&mut self, id: NodeId) {
        self.nodes.remove(&id);
        self.open.remove(&id);
    }

    /// Empty nodes above the pool's minimum that have been empty since
    /// `before`, lowest id first.
    pub fn idle_since(&self, before: Time) -> Vec<NodeId> {
        let spare = self
            .nodes
            .len()
            .saturating_sub(self.pool.min_nodes as usize);
        self.nodes
            .iter()
            .filter(|(_, n)| n.empty_since.is_some_and(|t| t <= before))
            .map(|(id, _)| *id)
            .take(spare)
            .collect()
    }

    /// The earliest time an empty node becomes removable.
    pub fn next_idle(&self, after: Millis) -> Option<Time> {
        if self.nodes.len() <= self.pool.min_nodes as usize {
            return None;
        }
        self.nodes
            .values()
            .filter_map(|n| n.empty_since)
            .min()
            .map(|t| t + after)
    }

    fn refresh(&mut self, id: NodeId) {
        let open = self.nodes.get(&id).is_some_and(|n| {
            n.used_cpu
                .saturating_add(self.min_cpu.min(self.pool.cpu_millis))
                <= self.pool.cpu_millis
                && n.used_memory
                    .saturating_add(self.min_memory.min(self.pool.memory_bytes))
                    <= self.pool.memory_bytes
        });
        if open {
            self.open.insert(id);
        } else {
            self.open.remove(&id);
        }
    }

    fn reindex(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.refresh(id);
        }
    }

    /// Audits the index from scratch.
    pub fn check(&self) -> Result<(), String> {
        for (id, n) in &self.nodes {
            if n.used_cpu > self.pool.cpu_millis || n.used_memory > self.pool.memory_bytes {
                return Err(format!("node {id} is over capacity: {n:?}"));
            }
            if (n.pods == 0) != n.empty_since.is_some() {
                return Err(format!(
                    "node {id}: {} pods, empty since {:?}",
                    n.pods, n.empty_since
                ));
            }
            let fits_smallest = n
                .used_cpu
                .saturating_add(self.min_cpu.min(self.pool.cpu_millis))
                <= self.pool.cpu_millis
                && n.used_memory
                    .saturating_add(self.min_memory.min(self.pool.memory_bytes))
                    <= self.pool.memory_bytes;
            if fits_smallest != self.open.contains(id) {
                return Err(format!("node {id}: open index is stale"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(min: u32, max: u32) -> NodePool {
        NodePool {
            cpu_millis: 1_000,
            memory_bytes: 1_000,
            min_nodes: min,
            max_nodes: max,
            autoscale: None,
        }
    }

    #[test]
    fn first_fit_takes_the_lowest_node_with_room() {
        let mut nodes = Nodes::new(pool(3, 3), Time(0));
        assert_eq!(nodes.place(600, 100), Some(0));
        assert_eq!(nodes.place(600, 100), Some(1));
        // A smaller pod fits back on node 0.
        assert_eq!(nodes.place(300, 100), Some(0));
        assert_eq!(nodes.place(600, 100), Some(2));
        assert_eq!(nodes.place(600, 100), None);
        nodes.check().unwrap();
        nodes.release(1, 600, 100, Time(5));
        assert_eq!(nodes.place(600, 100), Some(1));
        nodes.check().unwrap();
    }

    #[test]
    fn only_nodes_above_the_minimum_are_idle() {
        let mut nodes = Nodes::new(pool(1, 4), Time(0));
        nodes.add(Time(10));
        nodes.add(Time(20));
        assert_eq!(nodes.idle_since(Time(15)), vec![0, 1]);
        assert_eq!(nodes.idle_since(Time(30)), vec![0, 1]);
        assert_eq!(nodes.next_idle(Millis(100)), Some(Time(100)));
        nodes.place(10, 10);
        assert_eq!(nodes.idle_since(Time(30)), vec![1, 2]);
    }
}
