//! The request pool, one shard per HTTP worker.
//!
//! A connection's socket is registered with the reactor of the runtime that opened it.
//! actix-web runs each worker on a runtime of its own, so with one shared pool a request
//! on one worker would wait on a socket another worker's thread polls, to be woken
//! across threads on every answer. Each worker therefore binds itself to a shard
//! ([`ApiPool::bind_worker`], from actix's per-worker app factory) and only ever takes
//! connections from it, so they are opened, driven and used on the worker's own thread.
//! Threads that are no worker (the metrics listener's readiness probe, tests) share a
//! small pool of their own.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deadpool::Status;

use crate::wire::{Object, Pool, PoolError};

thread_local! {
    /// The shard this thread is bound to, if it is a worker.
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

#[derive(Clone)]
pub struct ApiPool {
    shards: Arc<[Pool]>,
    other: Pool,
    next: Arc<AtomicUsize>,
}

impl ApiPool {
    pub(crate) fn new(shards: Vec<Pool>, other: Pool) -> Self {
        Self {
            shards: shards.into(),
            other,
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Binds the calling thread (an HTTP worker, once, as it starts) to the next shard.
    pub fn bind_worker(&self) {
        let shard = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        SHARD.with(|bound| bound.set(Some(shard)));
        tracing::debug!(shard, thread = ?std::thread::current().name(), "HTTP worker bound to a shard of the request pool");
    }

    fn pool(&self) -> &Pool {
        match SHARD.with(Cell::get) {
            Some(shard) => &self.shards[shard],
            None => &self.other,
        }
    }

    /// A connection from this thread's shard (waiting up to the pool's timeout).
    pub async fn get(&self) -> Result<Object, PoolError> {
        self.pool().get().await
    }

    /// The shards and the other pool, summed.
    pub fn status(&self) -> Status {
        let mut total = self.other.status();
        for shard in self.shards.iter() {
            let status = shard.status();
            total.max_size += status.max_size;
            total.size += status.size;
            total.available += status.available;
            total.waiting += status.waiting;
        }
        total
    }

    pub fn close(&self) {
        for shard in self.shards.iter() {
            shard.close();
        }
        self.other.close();
    }
}
