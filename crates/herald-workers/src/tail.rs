//! The live tail's hub: one reader of the commit log per process, fanning
//! new events out to every tail client through a bounded channel each.
//!
//! The hub keeps a `position` (the last `seq` it handed out). Each
//! [`TailHub::step`] reads the events after it once, whatever the number
//! of clients, matches each against the clients of its tenant in memory
//! ([`TailSelection::matches`]: the event query's filter,
//! `herald_core::filter`'s `matches`) and renders a matching event's wire
//! JSON once for all of them. The loop ([`TailHub::run`]) steps when this
//! process commits ([`TailHub::wake`]) and every `poll` interval, which is
//! how events committed by other instances sharing a PostgreSQL store
//! arrive. While nobody listens it reads nothing but the latest `seq`.
//!
//! A client subscribes at the hub's position ([`TailSubscription::start`]):
//! every matching event with a larger `seq` reaches its channel, in commit
//! order (a later commit never has a smaller `seq`); what came before is
//! the caller's to read from the store, up to `start`, so nothing is
//! missed or sent twice at the hand-over. A client's channel holds
//! `buffer` events; when a step's events do not fit, the hub gives the
//! client [`ROOM_WAIT`] to make room (a burst larger than the buffer
//! reaches a reading client), and drops a client that does not: its
//! channel drains, then says [`TailNext::Overflowed`]. So the hub holds at
//! most `buffer` events per client, plus, for the length of one step, the
//! rest of that step's events (at most [`READ_BATCH`]), which are shared
//! by every client they match.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use herald_core::filter::EventFilter;
use herald_core::{CanonicalEvent, TenantId};
use herald_store::{Store, StoreError};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc, watch};

/// Events read from the commit log per step.
pub const READ_BATCH: usize = 1000;

/// How long a client whose channel is full may take to make room for a
/// step's events before it is cut off. The hub waits for all such clients
/// at once, so one slow client delays the others by at most this, once.
pub const ROOM_WAIT: Duration = Duration::from_millis(500);

/// A client's events that did not fit its channel in one step.
struct Waiting {
    tenant: String,
    tx: mpsc::Sender<Arc<TailEvent>>,
    overflowed: Arc<AtomicBool>,
    items: Vec<Arc<TailEvent>>,
}

/// Which events one tail client follows: the event query's filter and,
/// for a stream's follower, the first stream version it wants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TailSelection {
    pub filter: EventFilter,
    /// Only events with `stream_version >= from_version`, when given.
    pub from_version: Option<u64>,
}

impl TailSelection {
    /// Whether `event` (as stored) is one the client follows. The fields
    /// `EventFilter::in_memory_gaps` names are ignored: callers refuse them.
    pub fn matches(&self, event: &CanonicalEvent) -> bool {
        self.from_version
            .is_none_or(|v| event.stream_version.is_some_and(|sv| sv >= v))
            && self.filter.matches(event)
    }
}

/// One committed event as the tail sends it, shared by every client it
/// matched.
#[derive(Debug)]
pub struct TailEvent {
    /// Its place in the commit log: the tail's cursor.
    pub seq: i64,
    pub event: CanonicalEvent,
    /// The event's wire JSON, rendered once.
    pub json: String,
}

/// How the hub renders an event's wire JSON (the server's event answer).
pub type Render = fn(&CanonicalEvent) -> String;

/// What a subscription's channel gives next.
#[derive(Debug)]
pub enum TailNext {
    Event(Arc<TailEvent>),
    /// The client fell `buffer` events behind and was dropped; everything
    /// queued before that was given first.
    Overflowed,
    /// The hub stopped (shutdown).
    Closed,
}

/// What one [`TailHub::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// Nobody listens: only the position moved to the latest `seq`.
    Idle,
    /// Handed out this many events and reached the end of the log.
    CaughtUp(usize),
    /// Handed out a full batch: more may be waiting.
    More(usize),
}

/// The tail hub (cheap to clone: one per process, shared).
#[derive(Clone)]
pub struct TailHub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TailHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailHub")
            .field("buffer", &self.inner.buffer)
            .field("clients", &self.clients())
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: Store,
    render: Render,
    buffer: usize,
    wake: Notify,
    /// Clients subscribed, read without the lock by [`TailHub::wake`].
    listening: AtomicUsize,
    state: Mutex<State>,
}

struct State {
    /// The last `seq` handed out (or skipped while nobody listened).
    position: i64,
    closed: bool,
    next_id: u64,
    /// Clients by tenant.
    tenants: HashMap<String, Vec<Client>>,
}

struct Client {
    id: u64,
    selection: TailSelection,
    /// Events up to this `seq` are not sent (the client has them).
    after: i64,
    tx: mpsc::Sender<Arc<TailEvent>>,
    overflowed: Arc<AtomicBool>,
}

/// One client's end: the live events after [`TailSubscription::start`].
/// Dropping it unsubscribes.
pub struct TailSubscription {
    /// The hub's position when it subscribed: every matching event after
    /// it (and after the `after` it asked for) comes through the channel.
    pub start: i64,
    rx: mpsc::Receiver<Arc<TailEvent>>,
    overflowed: Arc<AtomicBool>,
    hub: Weak<Inner>,
    tenant: String,
    id: u64,
}

impl std::fmt::Debug for TailSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailSubscription")
            .field("start", &self.start)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl TailSubscription {
    /// The next live event, or why there is none.
    pub async fn next(&mut self) -> TailNext {
        match self.rx.recv().await {
            Some(e) => TailNext::Event(e),
            None if self.overflowed.load(Ordering::Acquire) => TailNext::Overflowed,
            None => TailNext::Closed,
        }
    }
}

impl Drop for TailSubscription {
    fn drop(&mut self) {
        if let Some(inner) = self.hub.upgrade() {
            let mut s = inner.lock();
            if let Some(clients) = s.tenants.get_mut(&self.tenant) {
                clients.retain(|c| c.id != self.id);
                if clients.is_empty() {
                    s.tenants.remove(&self.tenant);
                }
            }
            inner.recount(&s);
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn recount(&self, s: &State) {
        let n = s.tenants.values().map(Vec::len).sum();
        self.listening.store(n, Ordering::Release);
    }
}

impl TailHub {
    /// A hub starting at the store's latest `seq`, holding at most
    /// `buffer` events per client.
    pub async fn start(store: Store, render: Render, buffer: usize) -> Result<TailHub, StoreError> {
        let position = store.latest_seq().await?;
        Ok(TailHub {
            inner: Arc::new(Inner {
                store,
                render,
                buffer: buffer.max(1),
                wake: Notify::new(),
                listening: AtomicUsize::new(0),
                state: Mutex::new(State {
                    position,
                    closed: false,
                    next_id: 0,
                    tenants: HashMap::new(),
                }),
            }),
        })
    }

    /// After this process committed events: step now, if anyone listens.
    pub fn wake(&self) {
        if self.inner.listening.load(Ordering::Acquire) > 0 {
            self.inner.wake.notify_one();
        }
    }

    /// The events one client may have waiting, at most.
    pub fn buffer(&self) -> usize {
        self.inner.buffer
    }

    /// Clients subscribed now.
    pub fn clients(&self) -> usize {
        self.inner.listening.load(Ordering::Acquire)
    }

    /// The last `seq` handed out.
    pub fn position(&self) -> i64 {
        self.inner.lock().position
    }

    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Subscribes a client of `tenant` to the events `selection` follows
    /// with `seq > after`; `None` once the hub is closed.
    pub fn subscribe(
        &self,
        tenant: &TenantId,
        selection: TailSelection,
        after: i64,
    ) -> Option<TailSubscription> {
        let mut s = self.inner.lock();
        if s.closed {
            return None;
        }
        let (tx, rx) = mpsc::channel(self.inner.buffer);
        let overflowed = Arc::new(AtomicBool::new(false));
        let id = s.next_id;
        s.next_id += 1;
        let start = s.position;
        s.tenants
            .entry(tenant.as_str().to_string())
            .or_default()
            .push(Client {
                id,
                selection,
                after: after.max(start),
                tx,
                overflowed: overflowed.clone(),
            });
        self.inner.recount(&s);
        Some(TailSubscription {
            start,
            rx,
            overflowed,
            hub: Arc::downgrade(&self.inner),
            tenant: tenant.as_str().to_string(),
            id,
        })
    }

    /// Ends every subscription (their channels close after what they
    /// hold) and takes no more.
    pub fn close(&self) {
        let mut s = self.inner.lock();
        s.closed = true;
        s.tenants.clear();
        self.inner.recount(&s);
    }

    /// Reads the commit log after the position once and hands each event
    /// to the clients it matches.
    pub async fn step(&self) -> Result<StepOutcome, StoreError> {
        let position = {
            let s = self.inner.lock();
            if s.closed {
                return Ok(StepOutcome::Idle);
            }
            (!s.tenants.is_empty()).then_some(s.position)
        };
        let Some(position) = position else {
            let latest = self.inner.store.latest_seq().await?;
            let mut s = self.inner.lock();
            // A client that subscribed meanwhile holds the old position.
            if s.tenants.is_empty() && latest > s.position {
                s.position = latest;
            }
            return Ok(StepOutcome::Idle);
        };
        let batch = self.inner.store.events_after(position, READ_BATCH).await?;
        let n = batch.len();
        // Clients whose channel filled up in this step, with what they
        // still have to take (in order), given `ROOM_WAIT` to take it.
        let mut waiting: HashMap<u64, Waiting> = HashMap::new();
        {
            let mut s = self.inner.lock();
            for stored in batch {
                if stored.seq <= s.position {
                    continue;
                }
                s.position = stored.seq;
                let Some(clients) = s.tenants.get_mut(&stored.tenant_id) else {
                    continue;
                };
                let event = match serde_json::from_str::<CanonicalEvent>(&stored.body) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(seq = stored.seq, error = %e, "tail: a stored event does not decode; skipped");
                        continue;
                    }
                };
                let mut shared: Option<Arc<TailEvent>> = None;
                let mut closed = Vec::new();
                for c in clients.iter() {
                    if stored.seq <= c.after || !c.selection.matches(&event) {
                        continue;
                    }
                    let item = shared
                        .get_or_insert_with(|| {
                            Arc::new(TailEvent {
                                seq: stored.seq,
                                json: (self.inner.render)(&event),
                                event: event.clone(),
                            })
                        })
                        .clone();
                    if let Some(w) = waiting.get_mut(&c.id) {
                        w.items.push(item);
                        continue;
                    }
                    match c.tx.try_send(item) {
                        Ok(()) => {}
                        Err(TrySendError::Full(item)) => {
                            waiting.insert(
                                c.id,
                                Waiting {
                                    tenant: stored.tenant_id.clone(),
                                    tx: c.tx.clone(),
                                    overflowed: c.overflowed.clone(),
                                    items: vec![item],
                                },
                            );
                        }
                        Err(TrySendError::Closed(_)) => closed.push(c.id),
                    }
                }
                if !closed.is_empty() {
                    clients.retain(|c| !closed.contains(&c.id));
                    if clients.is_empty() {
                        s.tenants.remove(&stored.tenant_id);
                    }
                }
            }
            self.inner.recount(&s);
        }
        if !waiting.is_empty() {
            self.wait_for_room(waiting).await;
        }
        Ok(if n == READ_BATCH {
            StepOutcome::More(n)
        } else {
            StepOutcome::CaughtUp(n)
        })
    }

    /// Gives each client whose channel was full `ROOM_WAIT` (all at once)
    /// to take the rest of the step's events; one that does not is cut
    /// off: its channel ends with [`TailNext::Overflowed`].
    async fn wait_for_room(&self, waiting: HashMap<u64, Waiting>) {
        let sends = waiting.into_iter().map(|(id, w)| async move {
            let done = tokio::time::timeout(ROOM_WAIT, async {
                for item in w.items {
                    if w.tx.send(item).await.is_err() {
                        break;
                    }
                }
            })
            .await
            .is_ok();
            (id, w.tenant, w.overflowed, done)
        });
        let results = futures_util::future::join_all(sends).await;
        let mut s = self.inner.lock();
        for (id, tenant, overflowed, done) in results {
            if done {
                continue;
            }
            overflowed.store(true, Ordering::Release);
            if let Some(clients) = s.tenants.get_mut(&tenant) {
                clients.retain(|c| c.id != id);
                if clients.is_empty() {
                    s.tenants.remove(&tenant);
                }
            }
        }
        self.inner.recount(&s);
    }

    /// Steps when woken, every `poll` otherwise (other instances' commits),
    /// until `stop`; then closes.
    pub async fn run(self, poll: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            match self.step().await {
                Ok(StepOutcome::More(_)) => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "tail: reading the commit log failed"),
            }
            tokio::select! {
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
                _ = stop.changed() => break,
            }
        }
        self.close();
    }
}
