//! Processors as they cross the store contract: a tenant's processor (its
//! definition stored as one JSON document, checked by the caller), the
//! processing jobs that run processors on an event (one per event that
//! matched any), what each processor made of an event, and the dead jobs
//! the dead-letter queue lists beside dead deliveries.

use herald_core::{EventId, EventStatus, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use super::UnknownName;

/// What a client sets on a processor (everything but its id, secret and
/// times). The API checks every field before it gets here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessorSpec {
    /// Unique within the tenant.
    pub processor_name: String,
    /// `webhook`, `enrich` or `nats`.
    pub processor_type: String,
    pub enabled: bool,
    /// Higher runs first.
    pub priority: i64,
    /// Which events: `event_types` (exact or patterns), `event_sources`,
    /// `event_categories`, `filter` (CEL), as a subscription's selector.
    pub filters: serde_json::Value,
    /// The type's own settings.
    pub config: serde_json::Value,
    /// `{"schedule": [seconds, ...]}`, the waits before each retry.
    pub retry_policy: serde_json::Value,
    /// Events this processor matches are taken ahead of the others when a
    /// backlog builds.
    #[serde(default)]
    pub critical: bool,
}

/// A stored processor.
#[derive(Debug, Clone, PartialEq)]
pub struct Processor {
    /// `prc_…`, unique across tenants.
    pub processor_id: String,
    pub tenant_id: TenantId,
    pub spec: ProcessorSpec,
    /// The `webhook` type's signing secret (`whsec_…`).
    pub secret: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One page of a tenant's processors, highest priority first, then by id.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorPage {
    pub processors: Vec<Processor>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Whose pending events a claim or a completion takes, decided by the
/// statement itself from the processors committed when it runs (so an
/// event stored after a processor was created is never completed without
/// it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingScope {
    /// Every tenant's.
    All,
    /// Only those of tenants with no enabled processor.
    WithoutProcessors,
    /// Only those of tenants with an enabled processor.
    WithProcessors,
}

impl PendingScope {
    /// The condition on `tenant_id` (empty for `All`).
    pub(crate) fn sql(self) -> &'static str {
        match self {
            PendingScope::All => "",
            PendingScope::WithoutProcessors => {
                " AND tenant_id NOT IN (SELECT tenant_id FROM processors WHERE enabled = 1)"
            }
            PendingScope::WithProcessors => {
                " AND tenant_id IN (SELECT tenant_id FROM processors WHERE enabled = 1)"
            }
        }
    }
}

/// A pending event the processing worker looked at and found processors
/// for: it leaves the pending queue for a job.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProcessingJob {
    pub tenant_id: TenantId,
    pub event_id: EventId,
    pub seq: i64,
    pub event_type: String,
    /// 1 for an event a critical processor matched, else 0: higher first.
    pub priority: i64,
    pub due_at: Timestamp,
}

impl NewProcessingJob {
    /// `pjb_` + the event id's hex: one job per event, so a repeated
    /// intake adds nothing.
    pub fn job_id(event_id: EventId) -> String {
        let hex: String = event_id
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("pjb_{hex}")
    }
}

text_enum!(
    /// Where a processing job is in its life.
    JobState, "job state" {
        /// Waiting for `next_attempt_at`.
        Pending = "pending",
        /// Claimed by a worker until `lease_until`.
        InFlight = "in_flight",
        /// Given up on: retries exhausted. Listed in the dead-letter queue.
        Dead = "dead",
    }
);

/// A stored processing job (a finished one is deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessingJob {
    pub job_id: String,
    pub tenant_id: TenantId,
    pub event_id: EventId,
    pub seq: i64,
    pub priority: i64,
    pub state: JobState,
    pub attempts: i64,
    /// `attempts` at the last redrive: the retry schedule counts from here.
    pub attempt_base: i64,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The event's type, for the dead-letter listing and its filter.
    pub event_type: String,
}

/// A job claimed by a worker, with the token its finish must carry (its
/// `attempts` after the claim).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    pub job: ProcessingJob,
    /// The event as stored; `None` when it is no longer stored.
    pub event_body: Option<herald_core::CanonicalEvent>,
    /// What processors already made of this event on earlier attempts.
    pub results: Vec<ProcessorResult>,
}

text_enum!(
    /// How one processor's run on an event ended.
    ResultStatus, "result status" {
        Success = "success",
        Failed = "failed",
    }
);

/// What one processor made of one event, as last run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessorResult {
    pub processor_id: String,
    pub processor_name: String,
    pub processor_type: String,
    pub priority: i64,
    pub status: ResultStatus,
    /// Which attempt of the job ran it.
    pub attempt: i64,
    pub duration_ms: f64,
    /// The processor's answer (webhook: its JSON body; enrich: the fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub finished_at: Timestamp,
}

/// How a claimed job's attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// Every matching processor succeeded: the event is `processed`.
    Processed,
    /// Some failed: the event is `failed` and the job is retried then.
    RetryAt(Timestamp),
    /// Some failed and the schedule is exhausted: a dead letter.
    Dead,
}

/// What the worker reports for one claimed job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFinish {
    pub job_id: String,
    pub tenant_id: TenantId,
    pub event_id: EventId,
    /// The claim's token ([`ProcessingJob::attempts`] after the claim).
    pub claim: i64,
    /// The job's `attempt_base`, to tell a run's first failure.
    pub attempt_base: i64,
    pub outcome: JobOutcome,
    /// The processors this attempt ran.
    pub results: Vec<ProcessorResult>,
    /// The summed duration of every processor's last run.
    pub duration_ms: f64,
    pub last_error: Option<String>,
    pub finished_at: Timestamp,
    /// The event's category and type, for its lifecycle notice.
    pub category: String,
    pub event_type: String,
}

impl JobFinish {
    pub fn event_status(&self) -> EventStatus {
        match self.outcome {
            JobOutcome::Processed => EventStatus::Processed,
            JobOutcome::RetryAt(_) | JobOutcome::Dead => EventStatus::Failed,
        }
    }
}
