//! The request pool, one shard per HTTP worker, and the batches most requests run in.
//!
//! A connection's socket is registered with the reactor of the runtime that opened it.
//! actix-web runs each worker on a runtime of its own, so with one shared pool a request
//! on one worker would wait on a socket another worker's thread polls, to be woken
//! across threads on every answer. Each worker therefore binds itself to a shard
//! ([`ApiPool::bind_worker`], from actix's per-worker app factory) and only ever takes
//! connections from it, so they are opened, driven and used on the worker's own thread.
//! Threads that are no worker (the metrics listener's readiness probe, tests) share a
//! small pool of their own.
//!
//! A request whose transaction needs nothing between its statements (most reads, writes
//! checked by nothing but their constraints) does not take a connection for itself: it
//! hands its statements to its worker's batcher ([`ApiPool::run_group`]) as one group,
//! and the batcher sends the groups waiting at that moment down one connection in one
//! write, each ended by its own `Sync`. PostgreSQL runs each group as an implicit
//! transaction of its own (a failure skips only the rest of that group) and answers
//! them in order; the backend is woken once per batch instead of once per request, and
//! the worker reads the answers in as few reads. Invariants:
//! - a group's result reaches only the request that queued it, and every queued request
//!   gets an answer (its rows, PostgreSQL's error, or the connection's failure);
//! - [`BATCHES`] batches are in flight per worker at most while they answer: fewer,
//!   larger batches keep fewer PostgreSQL backends runnable on the machine's cores (at
//!   64 connections on 2 cores, p99 of a list read 20 ms with 2 against 470 ms with 8).
//!   A request that waited [`STALLED`] for its answer adds a batch, up to the shard's
//!   size: slow statements in flight hold up others for that long at most, not until
//!   they end;
//! - a batcher gives its connection back between batches whenever a request waits for
//!   one, so requests that need a connection of their own are not starved;
//! - a request that went away before its batch was sent is not sent.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use deadpool::Status;
use tokio::sync::oneshot;

use crate::wire::{Object, Pool, PoolError, Queued, Row, WireError};

thread_local! {
    /// The shard this thread is bound to, if it is a worker.
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
    /// This worker's batcher, and which pool it belongs to.
    static BATCHER: RefCell<Option<(u64, Rc<Batcher>)>> = const { RefCell::new(None) };
}

/// Groups sent in one batch at most. Their statements (two per request) must stay under
/// half of [`crate::wire::STATEMENT_CACHE`]: see `Connection::evict`.
const MAX_BATCH: usize = 64;
/// Batches in flight per worker while they answer.
pub(crate) const BATCHES: usize = 2;
/// How long a request waits for its answer before its worker adds a batch.
pub(crate) const STALLED: Duration = Duration::from_millis(100);

/// Tells pools apart, for the thread-local batcher.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What a group answered (each statement's rows), and how long it waited before it was
/// sent: for a connection, and behind the batch before it.
pub type Answer = (Result<Vec<Vec<Row>>, WireError>, Duration);

#[derive(Clone)]
pub struct ApiPool {
    shards: Arc<[Pool]>,
    other: Pool,
    next: Arc<AtomicUsize>,
    id: u64,
    sent: Arc<Sent>,
}

/// Batches sent and the groups in them, since the pool was built (every worker's).
#[derive(Debug, Default)]
pub struct Sent {
    pub batches: AtomicU64,
    pub groups: AtomicU64,
}

impl ApiPool {
    pub(crate) fn new(shards: Vec<Pool>, other: Pool) -> Self {
        Self {
            shards: shards.into(),
            other,
            next: Arc::new(AtomicUsize::new(0)),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            sent: Arc::default(),
        }
    }

    /// Binds the calling thread (an HTTP worker, once, as it starts) to the next shard,
    /// and gives it a batcher on that shard.
    pub fn bind_worker(&self) {
        let shard = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        SHARD.with(|bound| bound.set(Some(shard)));
        let batcher = Batcher {
            pool: self.shards[shard].clone(),
            queue: RefCell::new(VecDeque::new()),
            drivers: Cell::new(0),
            max_drivers: self.shards[shard].status().max_size,
            sent: self.sent.clone(),
        };
        BATCHER.with(|bound| *bound.borrow_mut() = Some((self.id, Rc::new(batcher))));
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

    /// Runs `statements` as one group (an implicit transaction: they must neither begin
    /// nor leave one open) in this worker's next batch; on a thread that is no worker, on
    /// a connection of its own. The result is the group's, as [`Connection::sync`] gives
    /// it.
    ///
    /// [`Connection::sync`]: crate::wire::Connection::sync
    pub async fn run_group(&self, statements: Vec<Queued>) -> Answer {
        let batcher = BATCHER.with(|bound| match &*bound.borrow() {
            Some((id, batcher)) if *id == self.id => Some(batcher.clone()),
            _ => None,
        });
        match batcher {
            Some(batcher) => batcher.run(statements).await,
            None => self.run_alone(statements).await,
        }
    }

    /// Runs `statements` as one group on a connection of its own: for writes, whose
    /// commits would wait for each other's WAL flush one after another in a batch, where
    /// on connections of their own PostgreSQL flushes them together.
    pub async fn run_alone(&self, statements: Vec<Queued>) -> Answer {
        let started = Instant::now();
        let mut conn = match self.pool().get().await {
            Ok(conn) => conn,
            Err(err) => return (Err(pool_failure(err)), started.elapsed()),
        };
        let waited = started.elapsed();
        if let Err(err) = conn.push_all(&statements) {
            return (Err(err), waited);
        }
        (conn.sync().await, waited)
    }

    /// How many batches the workers sent, and how many groups they held.
    pub fn sent(&self) -> &Sent {
        &self.sent
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

/// A worker's queue of groups and the batches that send them.
struct Batcher {
    pool: Pool,
    queue: RefCell<VecDeque<Job>>,
    drivers: Cell<usize>,
    max_drivers: usize,
    sent: Arc<Sent>,
}

struct Job {
    statements: Vec<Queued>,
    queued: Instant,
    reply: oneshot::Sender<Answer>,
}

impl Job {
    fn answer(self, result: Result<Vec<Vec<Row>>, WireError>) {
        let waited = self.queued.elapsed();
        // The request may have gone away: nobody to tell.
        let _ = self.reply.send((result, waited));
    }
}

/// Counts a driver out however its task ends (dropped with the runtime included).
struct Driving(Rc<Batcher>);

impl Drop for Driving {
    fn drop(&mut self) {
        self.0.drivers.set(self.0.drivers.get() - 1);
    }
}

impl Batcher {
    async fn run(self: Rc<Self>, statements: Vec<Queued>) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.queue.borrow_mut().push_back(Job {
            statements,
            queued: Instant::now(),
            reply,
        });
        if self.drivers.get() < BATCHES.min(self.max_drivers) {
            self.add_driver();
        }
        let mut answer = std::pin::pin!(answer);
        let answer = match tokio::time::timeout(STALLED, &mut answer).await {
            Ok(answer) => answer,
            Err(_) => {
                // The batches in flight are slow: one more takes what waits.
                if self.drivers.get() < self.max_drivers {
                    self.add_driver();
                }
                answer.await
            }
        };
        answer.unwrap_or_else(|_| (Err(WireError::Closed), Duration::ZERO))
    }

    fn add_driver(self: &Rc<Self>) {
        self.drivers.set(self.drivers.get() + 1);
        tokio::task::spawn_local(Driving(self.clone()).drive());
    }
}

impl Driving {
    /// Sends batches while groups wait, on one connection as long as nobody else waits
    /// for one.
    async fn drive(self) {
        let batcher = &self.0;
        while !batcher.queue.borrow().is_empty() {
            let mut conn = match batcher.pool.get().await {
                Ok(conn) => conn,
                Err(err) => {
                    let err = pool_failure(err);
                    let jobs: Vec<Job> = batcher.queue.borrow_mut().drain(..).collect();
                    for job in jobs {
                        job.answer(Err(err.duplicate()));
                    }
                    continue;
                }
            };
            while Self::batch(batcher, &mut conn).await {
                if batcher.pool.status().waiting > 0 {
                    break;
                }
            }
        }
    }

    /// Sends the groups waiting (up to [`MAX_BATCH`]) and answers each; false when there
    /// were none, or the connection failed (and is not to be used again).
    async fn batch(batcher: &Batcher, conn: &mut Object) -> bool {
        let jobs: Vec<Job> = {
            let mut queue = batcher.queue.borrow_mut();
            let n = queue.len().min(MAX_BATCH);
            queue
                .drain(..n)
                .filter(|job| !job.reply.is_closed())
                .collect()
        };
        if jobs.is_empty() {
            return false;
        }
        let pushed = jobs.iter().try_for_each(|job| {
            conn.push_all(&job.statements)?;
            conn.end_group();
            Ok(())
        });
        let answers = match pushed {
            Ok(()) => {
                batcher.sent.batches.fetch_add(1, Ordering::Relaxed);
                batcher
                    .sent
                    .groups
                    .fetch_add(jobs.len() as u64, Ordering::Relaxed);
                conn.run_groups().await
            }
            Err(err) => Err(err),
        };
        match answers {
            // One result per group sent (`run_groups` reads until every `Sync` has
            // answered); a request left unanswered would see its batcher gone, `Closed`.
            Ok(groups) => {
                for (job, group) in jobs.into_iter().zip(groups) {
                    job.answer(group);
                }
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, groups = jobs.len(), "a batch of requests failed on its connection");
                for job in jobs {
                    job.answer(Err(err.duplicate()));
                }
                false
            }
        }
    }
}

/// The pool's failure to give a connection, as a connection's error.
fn pool_failure(err: PoolError) -> WireError {
    match err {
        deadpool::managed::PoolError::Backend(err) => err,
        other => WireError::Pool(other.to_string()),
    }
}
