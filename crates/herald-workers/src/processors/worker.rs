//! The processing worker: gives every stored event its lifecycle
//! (`pending` → `processed` or `failed`) and runs processors on the events
//! they match. One [`ProcessingWorker::step`]:
//!
//! 1. **Intake.** Events of tenants without an enabled processor move
//!    straight to `processed` (one write per event, nothing else). Events of
//!    tenants with processors are claimed, matched against the tenant's
//!    processors (the selector's cheap checks first, the CEL filter only
//!    when they pass); those that match none are finished as `processed`
//!    at once, the others get a processing job (priority 1 when a
//!    critical processor matched) and stay `processing`.
//! 2. **Work.** Due jobs are claimed under a lease longer than the longest
//!    processor's time limit, critical ones first, then in commit order.
//!    Every enabled processor that matches the event *now* (one turned off
//!    since the intake is skipped) runs in priority order, except those
//!    that already succeeded on an earlier attempt. Each run's result,
//!    status and duration is recorded beside the event.
//! 3. **Finish.** All succeeded: the event is `processed` and the job is
//!    gone. Some failed: the event is `failed` and the job is retried on
//!    the schedule of the failed processor with the shortest one (by
//!    default 5 s, 30 s, 2 min, 10 min, 30 min), or, once it is spent,
//!    becomes a dead letter (redrivable from the dead-letter queue).
//!    Lifecycle notices (`event.processed.success` / `.failed`) are queued
//!    in the same transaction when a NATS publisher runs.
//!
//! On PostgreSQL several instances share the work: claims skip locked rows
//! and a finish applies only under its claim's token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_core::{CanonicalEvent, Clock, EventStatus, Timestamp};
use herald_filter::EventView;
use herald_store::{
    ClaimedJob, JobFinish, JobOutcome, NewProcessingJob, ProcessingResult, ProcessorResult,
    ResultStatus, Store, StoreError,
};
use tokio::sync::{Notify, watch};

use super::{Compiled, ProcessorKind};
use crate::delivery::schedule::{Jitter, next_attempt};
use crate::delivery::worker::WebhookSender;
use crate::publish::PublisherStatus;

/// How many events one intake and jobs one work step take by default.
pub const DEFAULT_BATCH: usize = 500;
/// Jobs run at once within a step by default.
pub const DEFAULT_CONCURRENCY: usize = 32;

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Events moved straight to `processed` (no processor wanted them).
    pub completed: usize,
    /// Events given a processing job.
    pub queued: usize,
    /// Job attempts finished.
    pub worked: usize,
}

impl StepReport {
    pub fn is_empty(&self) -> bool {
        *self == StepReport::default()
    }
}

/// The processing worker. See the module doc.
pub struct ProcessingWorker {
    store: Store,
    clock: Arc<dyn Clock>,
    sender: Arc<dyn WebhookSender>,
    nats: Option<Arc<PublisherStatus>>,
    jitter: Mutex<Box<dyn Jitter + Send>>,
    batch: usize,
    concurrency: usize,
    lifecycle: bool,
}

impl std::fmt::Debug for ProcessingWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessingWorker")
            .field("batch", &self.batch)
            .field("lifecycle", &self.lifecycle)
            .finish_non_exhaustive()
    }
}

/// The tenants' enabled processors, highest priority first.
type ByTenant = HashMap<String, Vec<Compiled>>;

impl ProcessingWorker {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        sender: Arc<dyn WebhookSender>,
        jitter: Box<dyn Jitter + Send>,
    ) -> Self {
        ProcessingWorker {
            store,
            clock,
            sender,
            nats: None,
            jitter: Mutex::new(jitter),
            batch: DEFAULT_BATCH,
            concurrency: DEFAULT_CONCURRENCY,
            lifecycle: false,
        }
    }

    /// `nats` processors publish on the publisher's connection.
    pub fn with_nats(mut self, status: Option<Arc<PublisherStatus>>) -> Self {
        self.nats = status;
        self
    }

    /// Queue `event.processed.*` notices for the NATS publisher.
    pub fn publishing_lifecycle(mut self, on: bool) -> Self {
        self.lifecycle = on;
        self
    }

    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    async fn processors(&self) -> Result<ByTenant, StoreError> {
        let mut by_tenant: ByTenant = HashMap::new();
        for p in self.store.enabled_processors().await? {
            if let Some(c) = Compiled::of(p) {
                by_tenant
                    .entry(c.processor.tenant_id.to_string())
                    .or_default()
                    .push(c);
            }
        }
        for list in by_tenant.values_mut() {
            list.sort_by(|a, b| {
                b.processor
                    .spec
                    .priority
                    .cmp(&a.processor.spec.priority)
                    .then(a.processor.processor_id.cmp(&b.processor.processor_id))
            });
        }
        Ok(by_tenant)
    }

    /// One intake and one round of due jobs (what `run`'s two loops do
    /// side by side).
    pub async fn step(&self) -> Result<StepReport, StoreError> {
        let (completed, queued) = self.intake_step().await?;
        let worked = self.work_step().await?;
        Ok(StepReport {
            completed,
            queued,
            worked,
        })
    }

    /// The intake: events of tenants without processors straight to
    /// `processed`, the others matched and queued. Which tenants have
    /// processors is decided by each statement from what is committed when
    /// it runs, and the processors are read after the claim: an event
    /// stored after a processor was created always meets it. Without any
    /// processor, the fast path alone: a processor created meanwhile keeps
    /// its tenant's events out of it, and the next step claims them.
    pub async fn intake_step(&self) -> Result<(usize, usize), StoreError> {
        let now = self.clock.now();
        let before = self.processors().await?;
        let mut completed = self
            .store
            .complete_pending_without_processors(
                self.batch,
                self.lifecycle,
                now.as_offset_date_time(),
            )
            .await?;
        let mut queued = 0;
        if !before.is_empty() {
            let claimed = self
                .store
                .claim_pending_with_processors(self.batch, now.as_offset_date_time())
                .await?;
            if !claimed.is_empty() {
                let processors = self.processors().await?;
                let (done, q) = self.intake(&processors, claimed, now).await?;
                completed += done;
                queued = q;
            }
        }
        Ok((completed, queued))
    }

    /// One round of due jobs; how many finished.
    pub async fn work_step(&self) -> Result<usize, StoreError> {
        let processors = self.processors().await?;
        if processors.is_empty() && !self.store.has_processing_jobs().await? {
            return Ok(0);
        }
        self.work(&processors).await
    }

    /// Finishes the claimed events no processor matches and queues jobs
    /// for the others.
    async fn intake(
        &self,
        processors: &ByTenant,
        claimed: Vec<herald_store::ClaimedEvent>,
        now: Timestamp,
    ) -> Result<(usize, usize), StoreError> {
        let mut done = Vec::new();
        let mut jobs = Vec::new();
        for c in claimed {
            let event = &c.event;
            let matched = processors
                .get(event.tenant_id.as_str())
                .map(|list| matching(event, list))
                .unwrap_or_default();
            if matched.is_empty() {
                done.push(ProcessingResult {
                    event_id: event.event_id,
                    claim: c.claim,
                    status: EventStatus::Processed,
                    duration_ms: 0.0,
                    finished_at: now,
                });
            } else {
                let critical = matched.iter().any(|p| p.processor.spec.critical);
                jobs.push(NewProcessingJob {
                    tenant_id: event.tenant_id.clone(),
                    event_id: event.event_id,
                    seq: c.seq,
                    event_type: event.event_type.as_str().to_string(),
                    priority: i64::from(critical),
                    due_at: now,
                });
            }
        }
        let (d, q) = (done.len(), jobs.len());
        // Jobs first: an event is never finished before its job exists.
        self.store.queue_processing(jobs).await?;
        if !done.is_empty() {
            self.store.finish_processing(done, self.lifecycle).await?;
        }
        Ok((d, q))
    }

    /// Claims due jobs, runs them (up to the concurrency at once), and
    /// records how each ended; how many finished.
    async fn work(&self, processors: &ByTenant) -> Result<usize, StoreError> {
        let longest = processors
            .values()
            .flatten()
            .map(|c| c.kind.timeout())
            .max()
            .unwrap_or(Duration::from_secs(1));
        // Every processor of a job may run in turn: the lease covers them all.
        let per_job = longest * processors.values().map(Vec::len).max().unwrap_or(1) as u32;
        let lease = per_job + Duration::from_secs(60);
        let claimed = self
            .store
            .claim_processing(self.batch, self.clock.now(), lease)
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let mut finishes = Vec::with_capacity(claimed.len());
        for chunk in claimed.chunks(self.concurrency) {
            let runs = chunk.iter().map(|job| self.run_job(job, processors));
            finishes.extend(futures_util::future::join_all(runs).await);
        }
        let n = finishes.len();
        self.store
            .finish_processing_jobs(finishes, self.lifecycle)
            .await?;
        Ok(n)
    }

    /// One attempt at one job.
    async fn run_job(&self, claimed: &ClaimedJob, processors: &ByTenant) -> JobFinish {
        let job = &claimed.job;
        let started = self.clock.now();
        let mut finish = JobFinish {
            job_id: job.job_id.clone(),
            tenant_id: job.tenant_id.clone(),
            event_id: job.event_id,
            claim: job.attempts,
            attempt_base: job.attempt_base,
            outcome: JobOutcome::Processed,
            results: Vec::new(),
            duration_ms: 0.0,
            last_error: None,
            finished_at: started,
            category: String::new(),
            event_type: job.event_type.clone(),
        };
        let Some(event) = &claimed.event_body else {
            // The event is gone (retention): nothing is left to process.
            finish.last_error = Some("the event is no longer stored".into());
            return finish;
        };
        finish.category = event.category.as_str().to_string();
        let succeeded: Vec<&str> = claimed
            .results
            .iter()
            .filter(|r| r.status == ResultStatus::Success)
            .map(|r| r.processor_id.as_str())
            .collect();
        let list = processors
            .get(job.tenant_id.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut failed_policies = Vec::new();
        for p in matching(event, list) {
            if succeeded.contains(&p.processor.processor_id.as_str()) {
                continue;
            }
            let clock = Instant::now();
            let outcome = self.run_one(p, event, &job.job_id).await;
            let duration_ms = clock.elapsed().as_secs_f64() * 1000.0;
            let (status, result, error) = match outcome {
                Ok(v) => (ResultStatus::Success, Some(v), None),
                Err(e) => {
                    failed_policies.push(&p.retry);
                    finish.last_error = Some(format!("{}: {e}", p.processor.spec.processor_name));
                    (ResultStatus::Failed, None, Some(e))
                }
            };
            finish.results.push(ProcessorResult {
                processor_id: p.processor.processor_id.clone(),
                processor_name: p.processor.spec.processor_name.clone(),
                processor_type: p.processor.spec.processor_type.clone(),
                priority: p.processor.spec.priority,
                status,
                attempt: job.attempts,
                duration_ms,
                result,
                error,
                finished_at: self.clock.now(),
            });
        }
        let now = self.clock.now();
        finish.finished_at = now;
        finish.duration_ms = claimed
            .results
            .iter()
            .filter(|r| {
                !finish
                    .results
                    .iter()
                    .any(|n| n.processor_id == r.processor_id)
            })
            .chain(finish.results.iter())
            .map(|r| r.duration_ms)
            .sum();
        if !failed_policies.is_empty() {
            let made = (job.attempts - job.attempt_base).max(1) as u32;
            let mut jitter = self.jitter.lock().unwrap_or_else(|p| p.into_inner());
            // The earliest retry any failed processor's schedule allows.
            let next = failed_policies
                .iter()
                .filter_map(|policy| next_attempt(policy, made, now, &mut || jitter.unit()))
                .min_by_key(Timestamp::unix_micros);
            finish.outcome = match next {
                Some(at) => JobOutcome::RetryAt(at),
                None => JobOutcome::Dead,
            };
        }
        finish
    }

    async fn run_one(
        &self,
        p: &Compiled,
        event: &CanonicalEvent,
        job_id: &str,
    ) -> Result<serde_json::Value, String> {
        match &p.kind {
            ProcessorKind::Enrich(e) => e.run(&EventView::new(event)),
            ProcessorKind::Webhook(w) => {
                // One message id per (event, processor), the same on retries.
                let id = format!("{job_id}_{}", p.processor.processor_id);
                w.run(
                    self.sender.as_ref(),
                    event,
                    p.processor.secret.as_deref(),
                    &id,
                    self.clock.now(),
                )
                .await
            }
            ProcessorKind::Nats(n) => {
                let client = self.nats.as_ref().and_then(|s| s.client());
                n.run(client.as_ref(), event).await
            }
        }
    }

    /// Runs the intake and the work as two loops side by side (their
    /// writes then share group commits), until `stop` flips. Each sleeps
    /// when idle until woken or `idle` (a retry falls due without a wake:
    /// `idle` bounds how late it runs); the intake wakes the work when it
    /// queued jobs.
    pub async fn run(self, wake: Arc<Notify>, idle: Duration, stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let queued = Arc::new(Notify::new());
        let intake = {
            let (this, queued) = (this.clone(), queued.clone());
            looping("processing intake", wake, idle, stop.clone(), move || {
                let (this, queued) = (this.clone(), queued.clone());
                async move {
                    let (done, q) = this.intake_step().await?;
                    if q > 0 {
                        queued.notify_one();
                    }
                    Ok(done + q > 0)
                }
            })
        };
        let work = looping("processing", queued, idle, stop, move || {
            let this = this.clone();
            async move { Ok(this.work_step().await? > 0) }
        });
        tokio::join!(intake, work);
    }
}

/// Calls `step` until `stop` flips: again at once while it did something,
/// else after a wake or `idle`.
async fn looping<F, Fut>(
    what: &str,
    wake: Arc<Notify>,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, StoreError>>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        match step().await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(StoreError::Closed) => return,
            Err(e) => tracing::warn!(error = %e, "{what} step failed; retrying"),
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(idle) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The processors of `list` (in its order) whose selector matches `event`;
/// a filter that cannot judge the event is no match.
fn matching<'a>(event: &CanonicalEvent, list: &'a [Compiled]) -> Vec<&'a Compiled> {
    let view = EventView::new(event);
    list.iter()
        .filter(|p| match p.selector.matches(&view) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(processor_id = %p.processor.processor_id, event_id = %event.event_id, error = %e, "processor filter failed to evaluate: no match");
                false
            }
        })
        .collect()
}
