//! Group commit: concurrent writers share one flush.
//!
//! A committer thread takes every request waiting in its queue (up to a
//! bound), applies each one as its own atomic batch, flushes once, and
//! answers them all. Under load an fsync is paid per group, not per write;
//! alone, a writer waits for exactly one apply and one flush as before.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use maestro_engine::Time;

use crate::error::StoreError;
use crate::kv::Kv;
use crate::store::{Store, Write};

struct Request {
    now: Time,
    writes: Vec<Write>,
    done: SyncSender<Result<(), StoreError>>,
}

pub struct GroupCommit<K: Kv + 'static> {
    requests: Option<Sender<Request>>,
    committer: Option<JoinHandle<()>>,
    store: Arc<Store<K>>,
}

impl<K: Kv + 'static> GroupCommit<K> {
    /// Starts the committer; at most `max_group` requests share a flush.
    pub fn new(store: Arc<Store<K>>, max_group: usize) -> GroupCommit<K> {
        let (tx, rx) = mpsc::channel::<Request>();
        let committer_store = Arc::clone(&store);
        let max_group = max_group.max(1);
        let committer = std::thread::Builder::new()
            .name("store-commit".to_string())
            .spawn(move || commit_loop(&committer_store, &rx, max_group))
            .expect("spawning the committer thread");
        GroupCommit {
            requests: Some(tx),
            committer: Some(committer),
            store,
        }
    }

    pub fn store(&self) -> &Arc<Store<K>> {
        &self.store
    }

    /// Applies `writes` atomically and returns once they are durable.
    pub fn commit(&self, now: Time, writes: Vec<Write>) -> Result<(), StoreError> {
        let (done, wait) = mpsc::sync_channel(1);
        let stopped = || StoreError::Io("the store's committer has stopped".to_string());
        self.requests
            .as_ref()
            .ok_or_else(stopped)?
            .send(Request { now, writes, done })
            .map_err(|_| stopped())?;
        wait.recv().map_err(|_| stopped())?
    }
}

fn commit_loop<K: Kv>(store: &Store<K>, requests: &Receiver<Request>, max_group: usize) {
    while let Ok(first) = requests.recv() {
        let mut group = vec![first];
        while group.len() < max_group {
            match requests.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let applied: Vec<Result<(), StoreError>> = group
            .iter()
            .map(|r| store.apply(r.now, &r.writes))
            .collect();
        let flushed = store.flush();
        for (request, result) in group.into_iter().zip(applied) {
            let result = result.and_then(|()| flushed.clone());
            // The writer may have given up waiting; nothing to do then.
            let _ = request.done.send(result);
        }
    }
}

impl<K: Kv + 'static> Drop for GroupCommit<K> {
    fn drop(&mut self) {
        // Closing the queue ends the loop once the last group is answered.
        self.requests.take();
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
    }
}
