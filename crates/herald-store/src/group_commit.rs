//! Group commit, written once for both backends. One writer per store takes
//! every request waiting in its queue, applies them in one transaction and
//! answers them only after the commit: nothing is acknowledged that is not
//! durable. The policy lives here; a backend only says how to run the
//! statements ([`Committer`], [`CommitTx`]).
//!
//! - All appends of a batch are decided and written together, in order, as
//!   if they had arrived one by one. If the database refuses that, they are
//!   redone one request at a time, each alone (a savepoint), so a request
//!   the database refuses fails alone and its neighbours are stored.
//! - A failed commit fails every request in it. Its audit records describe
//!   requests that did happen (earlier ones, already answered), so they get
//!   a commit of their own.
//! - A shutdown commits what raced in before the queue closed, then answers.
//! - Whoever watches the writer (the server's metrics) is told each group
//!   commit's size, time and outcome ([`CommitObserver`]); the store itself
//!   keeps no statistics.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::records::*;

pub(crate) type AppendResult = Result<Vec<AppendOutcome>, StoreError>;
pub(crate) type AppendReply = oneshot::Sender<AppendResult>;

/// One request to the writer.
pub(crate) enum WriteOp<W> {
    Append {
        events: Vec<NewEvent>,
        reply: AppendReply,
    },
    /// A write only one backend routes through its writer.
    Other(W),
    /// Committed with the next group commit; nobody waits for it.
    Audit(AuditRecord),
    Shutdown(oneshot::Sender<()>),
}

/// What one group commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitReport {
    /// Events the batch carried (stored, duplicate or refused alike).
    pub events: usize,
    /// Events newly stored by it (0 when the commit failed).
    pub stored: usize,
    /// Requests of every kind in it: appends, audit records, backend writes.
    pub requests: usize,
    /// From the transaction's start to its settled commit.
    pub duration: Duration,
    /// Whether it committed.
    pub committed: bool,
}

/// Told about every group commit, on the writer, after the commit: it
/// must be cheap and must not block (a metrics recorder).
pub trait CommitObserver: Send + Sync + 'static {
    fn committed(&self, report: &CommitReport);
}

/// The observer a writer reports to, set once after the store is open.
pub(crate) type ObserverSlot = Arc<OnceLock<Arc<dyn CommitObserver>>>;

/// The store's end of its writer's queue.
pub(crate) struct WriterHandle<W> {
    queue: mpsc::UnboundedSender<WriteOp<W>>,
    observer: ObserverSlot,
}

impl<W> WriterHandle<W> {
    pub(crate) fn new(queue: mpsc::UnboundedSender<WriteOp<W>>) -> WriterHandle<W> {
        WriterHandle {
            queue,
            observer: ObserverSlot::default(),
        }
    }

    /// The slot the writer loop reads its observer from.
    pub(crate) fn observer_slot(&self) -> ObserverSlot {
        self.observer.clone()
    }

    /// Reports every later group commit to `observer`; `false` when one
    /// was set already (the first stays).
    pub(crate) fn observe(&self, observer: Arc<dyn CommitObserver>) -> bool {
        self.observer.set(observer).is_ok()
    }

    pub(crate) fn send(&self, op: WriteOp<W>) -> Result<(), StoreError> {
        self.queue.send(op).map_err(|_| StoreError::Closed)
    }

    /// Appends `events` in the next group commit; answers once it is durable.
    pub(crate) async fn append(&self, events: Vec<NewEvent>) -> AppendResult {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.send(WriteOp::Append { events, reply })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues an audit record for the next group commit.
    pub(crate) fn record_audit(&self, record: AuditRecord) {
        if self.send(WriteOp::Audit(record)).is_err() {
            tracing::warn!("audit record dropped: store is closed");
        }
    }

    /// Commits what is queued and stops the writer.
    pub(crate) async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.send(WriteOp::Shutdown(reply)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// A backend's own write, answered once its commit is settled.
pub(crate) trait Settle {
    /// `Ok` when the transaction that ran it committed.
    fn settle(self, committed: Result<(), &StoreError>);
}

/// For a backend whose writer takes appends and audits only.
pub(crate) enum NoOther {}

impl Settle for NoOther {
    fn settle(self, _: Result<(), &StoreError>) {
        match self {}
    }
}

/// What happened to one event inside the transaction; the event itself
/// stays with its request until the commit is settled, so storing one
/// costs no copy.
#[derive(Debug)]
pub(crate) enum Decision {
    Stored,
    Duplicate(StoredEvent),
    Conflict {
        stream_id: String,
        expected: herald_core::ExpectedVersion,
        actual: u64,
    },
}

impl Decision {
    fn into_outcome(self, new: NewEvent) -> AppendOutcome {
        match self {
            Decision::Stored => AppendOutcome::Stored(new.event),
            Decision::Duplicate(first) => AppendOutcome::Duplicate(first),
            Decision::Conflict {
                stream_id,
                expected,
                actual,
            } => AppendOutcome::VersionConflict {
                stream_id,
                expected,
                actual,
            },
        }
    }
}

/// Decisions for a unit of appends; the inner error is the database
/// refusing the unit (nothing of it kept, the transaction goes on), the
/// outer one a transaction that cannot go on.
pub(crate) type Attempt = Result<Result<Vec<Decision>, StoreError>, StoreError>;

/// One transaction of a group commit, as the policy drives it.
pub(crate) trait CommitTx {
    type Other;
    /// Runs the backend's own writes, each alone so one refused write fails
    /// alone; each keeps its result until [`Settle::settle`].
    async fn run_others(&mut self, others: &mut [Self::Other]) -> Result<(), StoreError>;
    /// Decides and writes `events` in order as one unit, assigning stream
    /// versions in place.
    async fn append_together(&mut self, events: &mut [&mut NewEvent]) -> Attempt;
    /// The same for one request, alone (a savepoint).
    async fn append_alone(&mut self, events: &mut [NewEvent]) -> Attempt;
    async fn insert_audits(&mut self, audits: &[AuditRecord]) -> Result<(), StoreError>;
    async fn commit(self) -> Result<(), StoreError>;
}

/// A backend's writer connection.
pub(crate) trait Committer {
    type Other: Settle;
    type Tx<'a>: CommitTx<Other = Self::Other>
    where
        Self: 'a;
    /// Opens a transaction (reconnecting first if needed).
    async fn begin(&mut self) -> Result<Self::Tx<'_>, StoreError>;
}

/// One group commit's work.
pub(crate) struct Batch<W> {
    appends: Vec<(Vec<NewEvent>, AppendReply)>,
    others: Vec<W>,
    audits: Vec<AuditRecord>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl<W: Settle> Batch<W> {
    fn new() -> Batch<W> {
        Batch {
            appends: Vec::new(),
            others: Vec::new(),
            audits: Vec::new(),
            shutdown: None,
        }
    }

    /// Adds `op`; returns its weight (events count one each).
    fn add(&mut self, op: WriteOp<W>) -> usize {
        match op {
            WriteOp::Append { events, reply } => {
                let n = events.len().max(1);
                self.appends.push((events, reply));
                n
            }
            WriteOp::Other(w) => {
                self.others.push(w);
                1
            }
            WriteOp::Audit(a) => {
                self.audits.push(a);
                1
            }
            WriteOp::Shutdown(s) => {
                self.shutdown = Some(s);
                1
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.appends.is_empty() && self.others.is_empty() && self.audits.is_empty()
    }

    fn events(&self) -> usize {
        self.appends.iter().map(|(events, _)| events.len()).sum()
    }

    fn requests(&self) -> usize {
        self.appends.len() + self.others.len() + self.audits.len()
    }

    /// Answers every request after the commit.
    fn reply(self, decided: Vec<Result<Vec<Decision>, StoreError>>) {
        for ((events, reply), decided) in self.appends.into_iter().zip(decided) {
            let _ = reply.send(decided.map(|d| {
                events
                    .into_iter()
                    .zip(d)
                    .map(|(new, d)| d.into_outcome(new))
                    .collect()
            }));
        }
        for w in self.others {
            w.settle(Ok(()));
        }
    }

    /// Fails every request: nothing of them was committed.
    fn fail_all(self, why: &StoreError) {
        for (_, reply) in self.appends {
            let _ = reply.send(Err(why.for_each_waiter()));
        }
        for w in self.others {
            w.settle(Err(why));
        }
    }
}

/// The writer: gathers up to `max_batch` events' worth of requests per
/// group commit until the queue closes or a shutdown is asked for.
pub(crate) async fn run<C: Committer>(
    mut committer: C,
    mut rx: mpsc::UnboundedReceiver<WriteOp<C::Other>>,
    max_batch: usize,
    observer: ObserverSlot,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = Batch::new();
        let mut weight = batch.add(first);
        while weight < max_batch {
            match rx.try_recv() {
                Ok(op) => weight += batch.add(op),
                Err(_) => break,
            }
        }
        let shutdown = batch.shutdown.take();
        commit(&mut committer, batch, &observer).await;
        if let Some(shutdown) = shutdown {
            rx.close();
            // Whatever raced in before the close still gets its commit.
            let mut rest = Batch::new();
            while let Ok(op) = rx.try_recv() {
                rest.add(op);
            }
            commit(&mut committer, rest, &observer).await;
            let _ = shutdown.send(());
            return;
        }
    }
}

/// One group commit: the batch in one transaction, then the answers.
async fn commit<C: Committer>(
    committer: &mut C,
    mut batch: Batch<C::Other>,
    observer: &ObserverSlot,
) {
    if batch.is_empty() {
        return;
    }
    let started = Instant::now();
    let (events, requests) = (batch.events(), batch.requests());
    let report = |stored: usize, committed: bool| {
        if let Some(o) = observer.get() {
            o.committed(&CommitReport {
                events,
                stored,
                requests,
                duration: started.elapsed(),
                committed,
            });
        }
    };
    match attempt(committer, &mut batch).await {
        Ok(decided) => {
            let stored = decided
                .iter()
                .flat_map(|d| d.iter().flatten())
                .filter(|d| matches!(d, Decision::Stored))
                .count();
            report(stored, true);
            batch.reply(decided);
        }
        Err(e) => {
            report(0, false);
            tracing::error!(error = %error_chain(&e), "group commit failed; failing every request in it");
            // Reply first: the audit records wait, the requests do not.
            let audits = std::mem::take(&mut batch.audits);
            batch.fail_all(&e);
            keep_audits(committer, &audits).await;
        }
    }
}

async fn attempt<C: Committer>(
    committer: &mut C,
    batch: &mut Batch<C::Other>,
) -> Result<Vec<Result<Vec<Decision>, StoreError>>, StoreError> {
    let mut tx = committer.begin().await?;
    tx.run_others(&mut batch.others).await?;
    let decided = append_all(&mut tx, &mut batch.appends).await?;
    tx.insert_audits(&batch.audits).await?;
    tx.commit().await?;
    Ok(decided)
}

/// Every request's appends together; only if the database refuses that
/// are they redone one request at a time. Doing each request alone on the
/// common path made SQLite's FTS5 flush its pending terms per request
/// (single-event requests: 15k → 22k events/s without it), and cost
/// PostgreSQL round trips per request.
async fn append_all<T: CommitTx>(
    tx: &mut T,
    requests: &mut [(Vec<NewEvent>, AppendReply)],
) -> Result<Vec<Result<Vec<Decision>, StoreError>>, StoreError> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let sent: Vec<Option<u64>> = requests
        .iter()
        .flat_map(|(events, _)| events.iter().map(|e| e.event.stream_version))
        .collect();
    let mut all: Vec<&mut NewEvent> = requests
        .iter_mut()
        .flat_map(|(events, _)| events.iter_mut())
        .collect();
    let refused = match tx.append_together(&mut all).await? {
        Ok(decisions) => {
            drop(all);
            let mut decisions = decisions.into_iter();
            return Ok(requests
                .iter()
                .map(|(events, _)| Ok(decisions.by_ref().take(events.len()).collect()))
                .collect());
        }
        Err(e) => e,
    };
    tracing::warn!(error = %error_chain(&refused), "a group of appends was refused; redoing it request by request");
    // Nothing of the group was kept: nor are the stream versions it assigned.
    for (e, v) in all.iter_mut().zip(sent) {
        e.event.stream_version = v;
    }
    drop(all);
    let mut decided = Vec::with_capacity(requests.len());
    for (events, _) in requests.iter_mut() {
        decided.push(tx.append_alone(events).await?);
    }
    Ok(decided)
}

/// The audit records of a failed group commit, in a commit of their own.
async fn keep_audits<C: Committer>(committer: &mut C, audits: &[AuditRecord]) {
    if audits.is_empty() {
        return;
    }
    let kept = async {
        let mut tx = committer.begin().await?;
        tx.insert_audits(audits).await?;
        tx.commit().await
    };
    if let Err(e) = kept.await {
        tracing::error!(error = %error_chain(&e), records = audits.len(), "audit records not written");
    }
}
