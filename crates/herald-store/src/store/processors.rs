//! Processors and their work, written once for both backends: a tenant's
//! processors; the processing jobs (one per event that matched a
//! processor) with their retry schedule, lease and dead-letter state; and
//! each processor's last result on an event. Jobs and results live in
//! tables of their own beside the event, so running processors never
//! rewrites an event row except for its status.
//!
//! A job's claim is a compare-and-set on its `attempts` (the token): a
//! finish whose claim lapsed and was taken again writes nothing, so an
//! event is never finished twice by one attempt, and never run twice at
//! once while the lease holds. A finished job is deleted; a dead one stays
//! for the dead-letter queue, where a redrive makes it pending again with
//! its schedule starting over (`attempt_base`).

use std::collections::HashMap;

use herald_core::{EventId, TenantId, Timestamp};

use crate::query::{Arg, Guarded, Stmt};
use crate::rows::RowAccess;
use crate::{
    ClaimedJob, ConflictReason, JobFinish, JobOutcome, JobState, LifecycleRecord, NewProcessingJob,
    Processor, ProcessorPage, ProcessorResult, ProcessorSpec, Store, StoreError,
};

const PROCESSOR_COLUMNS: &str = "processor_id, tenant_id, spec, secret, created_at, updated_at";
const JOB_COLUMNS: &str = "job_id, tenant_id, event_id, seq, priority, state, attempts, \
                           attempt_base, next_attempt_at, last_error, created_at, updated_at, event_type";
const RESULT_COLUMNS: &str = "event_id, processor_id, processor_name, processor_type, priority, \
                              status, attempt, duration_ms, result, error, finished_at";

/// Which of a tenant's dead processing jobs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeadJobFilter {
    /// Jobs of events this processor failed on last.
    pub processor_id: Option<String>,
    pub event_type: Option<String>,
    /// Died at or after / before (microseconds).
    pub died_from: Option<Timestamp>,
    pub died_before: Option<Timestamp>,
}

impl Store {
    /// Stores a new processor. `Conflict(ProcessorNameExists)` when the
    /// tenant has one with the same name.
    pub async fn insert_processor(&self, p: Processor) -> Result<(), StoreError> {
        let name = p.spec.processor_name.clone();
        let insert = Stmt::new(
            "INSERT INTO processors (processor_id, tenant_id, name, enabled, priority, spec, secret, created_at, updated_at) \
             SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS \
             (SELECT 1 FROM processors WHERE tenant_id = ? AND name = ?) RETURNING processor_id",
            vec![
                Arg::Text(p.processor_id.clone()),
                Arg::Text(p.tenant_id.to_string()),
                Arg::Text(name.clone()),
                Arg::Int(p.spec.enabled.into()),
                Arg::Int(p.spec.priority),
                Arg::Text(spec_json(&p.spec)?),
                opt_text(p.secret.clone()),
                Arg::Int(p.created_at.unix_micros()),
                Arg::Int(p.updated_at.unix_micros()),
                Arg::Text(p.tenant_id.to_string()),
                Arg::Text(name.clone()),
            ],
        );
        let ran = self
            .transact(vec![Guarded {
                guard: Some(insert),
                then: vec![],
            }])
            .await?;
        if ran == [true] {
            Ok(())
        } else {
            Err(name_taken(&p.tenant_id, &name))
        }
    }

    /// One processor of the tenant; `None` for another tenant's id.
    pub async fn get_processor(
        &self,
        tenant: &TenantId,
        processor_id: &str,
    ) -> Result<Option<Processor>, StoreError> {
        let stmt = Stmt::new(
            format!(
                "SELECT {PROCESSOR_COLUMNS} FROM processors WHERE tenant_id = ? AND processor_id = ?"
            ),
            vec![
                Arg::Text(tenant.to_string()),
                Arg::Text(processor_id.to_string()),
            ],
        );
        Ok(self.select(stmt, processor_row).await?.pop())
    }

    /// One page of the tenant's processors in id (creation) order; only
    /// enabled (or disabled) ones when `enabled` is given.
    pub async fn list_processors(
        &self,
        tenant: &TenantId,
        enabled: Option<bool>,
        limit: usize,
        after: Option<String>,
    ) -> Result<ProcessorPage, StoreError> {
        let mut text = format!("SELECT {PROCESSOR_COLUMNS} FROM processors WHERE tenant_id = ?");
        let mut args = vec![Arg::Text(tenant.to_string())];
        if let Some(enabled) = enabled {
            text.push_str(" AND enabled = ?");
            args.push(Arg::Int(enabled.into()));
        }
        if let Some(after) = after {
            text.push_str(" AND processor_id > ?");
            args.push(Arg::Text(after));
        }
        text.push_str(" ORDER BY processor_id LIMIT ?");
        args.push(Arg::Int(limit as i64 + 1));
        let mut rows = self.select(Stmt::new(text, args), processor_row).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        Ok(ProcessorPage {
            next_cursor: more
                .then(|| rows.last().map(|p| p.processor_id.clone()))
                .flatten(),
            processors: rows,
        })
    }

    /// Every tenant's enabled processors, highest priority first.
    pub async fn enabled_processors(&self) -> Result<Vec<Processor>, StoreError> {
        let stmt = Stmt::new(
            format!(
                "SELECT {PROCESSOR_COLUMNS} FROM processors WHERE enabled = 1 \
                 ORDER BY priority DESC, processor_id"
            ),
            vec![],
        );
        self.select(stmt, processor_row).await
    }

    /// Replaces a processor's definition (its secret stays); the processor
    /// as stored now, or `None` when the tenant has none with this id.
    /// `Conflict(ProcessorNameExists)` when the name is another's.
    pub async fn update_processor(
        &self,
        tenant: &TenantId,
        processor_id: &str,
        spec: ProcessorSpec,
        now: Timestamp,
    ) -> Result<Option<Processor>, StoreError> {
        let name = spec.processor_name.clone();
        let update = Stmt::new(
            "UPDATE processors SET name = ?, enabled = ?, priority = ?, spec = ?, updated_at = ? \
             WHERE tenant_id = ? AND processor_id = ? AND NOT EXISTS \
             (SELECT 1 FROM processors o WHERE o.tenant_id = ? AND o.name = ? AND o.processor_id <> ?) \
             RETURNING processor_id",
            vec![
                Arg::Text(name.clone()),
                Arg::Int(spec.enabled.into()),
                Arg::Int(spec.priority),
                Arg::Text(spec_json(&spec)?),
                Arg::Int(now.unix_micros()),
                Arg::Text(tenant.to_string()),
                Arg::Text(processor_id.to_string()),
                Arg::Text(tenant.to_string()),
                Arg::Text(name.clone()),
                Arg::Text(processor_id.to_string()),
            ],
        );
        let ran = self
            .transact(vec![Guarded {
                guard: Some(update),
                then: vec![],
            }])
            .await?;
        if ran != [true] {
            // The row exists (read above) unless deleted meanwhile.
            return match self.get_processor(tenant, processor_id).await? {
                Some(_) => Err(name_taken(tenant, &name)),
                None => Ok(None),
            };
        }
        self.get_processor(tenant, processor_id).await
    }

    /// Turns a processor on or off; `None` when the tenant has none with
    /// this id. Events whose job has not started yet are run without a
    /// processor turned off.
    pub async fn set_processor_enabled(
        &self,
        tenant: &TenantId,
        processor_id: &str,
        enabled: bool,
        now: Timestamp,
    ) -> Result<Option<Processor>, StoreError> {
        let Some(mut p) = self.get_processor(tenant, processor_id).await? else {
            return Ok(None);
        };
        p.spec.enabled = enabled;
        self.update_processor(tenant, processor_id, p.spec, now)
            .await
    }

    /// Deletes a processor; `false` when the tenant had none with this id.
    pub async fn delete_processor(
        &self,
        tenant: &TenantId,
        processor_id: &str,
    ) -> Result<bool, StoreError> {
        let delete = Stmt::new(
            "DELETE FROM processors WHERE tenant_id = ? AND processor_id = ? RETURNING processor_id",
            vec![
                Arg::Text(tenant.to_string()),
                Arg::Text(processor_id.to_string()),
            ],
        );
        Ok(self
            .transact(vec![Guarded {
                guard: Some(delete),
                then: vec![],
            }])
            .await?
            == [true])
    }

    /// Queues a job for each event (claimed with [`Store::claim_pending`])
    /// that matched a processor; the event stays `processing` until its
    /// job's first attempt ends. A job that exists already is kept.
    pub async fn queue_processing(&self, jobs: Vec<NewProcessingJob>) -> Result<(), StoreError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let pg = self.kind() == "postgres";
        let mut then = Vec::with_capacity(jobs.len() * 2);
        for j in jobs {
            then.push(Stmt::new(
                "INSERT INTO processing_jobs (job_id, tenant_id, event_id, seq, priority, state, attempts, \
                 attempt_base, next_attempt_at, created_at, updated_at, event_type) \
                 VALUES (?, ?, ?, ?, ?, 'pending', 0, 0, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
                vec![
                    Arg::Text(NewProcessingJob::job_id(j.event_id)),
                    Arg::Text(j.tenant_id.to_string()),
                    Arg::Text(j.event_id.to_string()),
                    Arg::Int(j.seq),
                    Arg::Int(j.priority),
                    Arg::Int(j.due_at.unix_micros()),
                    Arg::Int(j.due_at.unix_micros()),
                    Arg::Int(j.due_at.unix_micros()),
                    Arg::Text(j.event_type),
                ],
            ));
            if pg {
                // The event's own claim must not lapse and be taken again:
                // its job holds it now.
                then.push(Stmt::new(
                    "UPDATE events SET claimed_until = NULL WHERE event_id = ?",
                    vec![Arg::EventId(j.event_id)],
                ));
            }
        }
        self.transact(vec![Guarded { guard: None, then }]).await?;
        Ok(())
    }

    /// Claims up to `limit` due jobs until `now + lease`, critical ones
    /// (higher priority) first, then in commit order; a claim whose lease
    /// ran out is taken back first. Each comes with its event and what
    /// processors already made of it.
    pub async fn claim_processing(
        &self,
        limit: usize,
        now: Timestamp,
        lease: std::time::Duration,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let now_us = now.unix_micros();
        let until = now_us + lease.as_micros() as i64;
        // Lapsed claims are rare (a crash, a lost instance): looked for with
        // a read, taken back with a write only when there are some.
        let lapsed = Stmt::new(
            "SELECT 1 FROM processing_jobs WHERE state = 'in_flight' AND lease_until < ? LIMIT 1",
            vec![Arg::Int(now_us)],
        );
        if !self.select(lapsed, |r| r.int(0)).await?.is_empty() {
            self.transact(vec![Guarded {
                guard: None,
                then: vec![Stmt::new(
                    "UPDATE processing_jobs SET state = 'pending', lease_until = NULL \
                     WHERE state = 'in_flight' AND lease_until < ?",
                    vec![Arg::Int(now_us)],
                )],
            }])
            .await?;
        }
        let claim = Stmt::new(
            claim_jobs_sql(self.kind() == "postgres"),
            vec![
                Arg::Int(until),
                Arg::Int(now_us),
                Arg::Int(now_us),
                Arg::Int(limit as i64),
            ],
        );
        let mut jobs = self.write_select(claim, job_row).await?;
        jobs.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.seq.cmp(&b.seq)));
        let ids: Vec<EventId> = jobs.iter().map(|j| j.event_id).collect();
        let mut results = self.processing_results(&ids).await?;
        // The events, read side by side (the reader pool bounds how many
        // at once).
        let events = futures_util::future::join_all(
            jobs.iter()
                .map(|job| self.get_event(&job.tenant_id, job.event_id)),
        )
        .await;
        let mut claimed = Vec::with_capacity(jobs.len());
        for (job, event) in jobs.into_iter().zip(events) {
            claimed.push(ClaimedJob {
                event_body: event?.map(|e| e.event),
                results: results.remove(&job.event_id).unwrap_or_default(),
                job,
            });
        }
        Ok(claimed)
    }

    /// Records how claimed jobs' attempts ended, each only while its claim
    /// is the job's newest: the processors' results, the job (deleted when
    /// processed, rescheduled, or dead), the event's status, and with
    /// `lifecycle` its `event.processed.success` (when processed) or
    /// `event.processed.failed` (on a run's first failure and when it dies).
    /// Returns, per finish, whether it applied.
    pub async fn finish_processing_jobs(
        &self,
        finishes: Vec<JobFinish>,
        lifecycle: bool,
    ) -> Result<Vec<bool>, StoreError> {
        let mut script = Vec::with_capacity(finishes.len());
        for f in &finishes {
            script.push(finish_script(f, lifecycle, self.kind() == "postgres")?);
        }
        self.transact(script).await
    }

    /// What processors made of these events, each in priority order.
    pub async fn processing_results(
        &self,
        events: &[EventId],
    ) -> Result<HashMap<EventId, Vec<ProcessorResult>>, StoreError> {
        let mut out: HashMap<EventId, Vec<ProcessorResult>> = HashMap::new();
        for chunk in events.chunks(500) {
            if chunk.is_empty() {
                continue;
            }
            let stmt = Stmt::new(
                format!(
                    "SELECT {RESULT_COLUMNS} FROM processing_results WHERE event_id IN ({}) \
                     ORDER BY event_id, priority DESC, processor_name",
                    vec!["?"; chunk.len()].join(", ")
                ),
                chunk.iter().map(|e| Arg::Text(e.to_string())).collect(),
            );
            for (id, r) in self.select(stmt, result_row).await? {
                out.entry(id).or_default().push(r);
            }
        }
        Ok(out)
    }

    /// The tenant's dead processing jobs matching `filter`, in job id order
    /// after `after`, at most `limit`.
    pub async fn dead_processing_jobs(
        &self,
        tenant: &TenantId,
        filter: &DeadJobFilter,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Vec<(crate::ProcessingJob, Vec<ProcessorResult>)>, StoreError> {
        let (mut text, mut args) = dead_picked(tenant, filter);
        text = format!("SELECT {JOB_COLUMNS} FROM processing_jobs j WHERE {text}");
        if let Some(after) = after {
            text.push_str(" AND j.job_id > ?");
            args.push(Arg::Text(after.to_string()));
        }
        text.push_str(" ORDER BY j.job_id LIMIT ?");
        args.push(Arg::Int(limit as i64));
        let jobs = self.select(Stmt::new(text, args), job_row).await?;
        let ids: Vec<EventId> = jobs.iter().map(|j| j.event_id).collect();
        let mut results = self.processing_results(&ids).await?;
        Ok(jobs
            .into_iter()
            .map(|j| {
                let r = results.remove(&j.event_id).unwrap_or_default();
                (j, r)
            })
            .collect())
    }

    /// Puts the tenant's dead jobs back in the queue, due at `now`, their
    /// schedule starting over: the named ones (`ids`), or every one
    /// `filter` picks. How many.
    pub async fn redrive_processing_jobs(
        &self,
        tenant: &TenantId,
        ids: Option<&[String]>,
        filter: &DeadJobFilter,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let (mut picked, mut args) = dead_picked(tenant, filter);
        if let Some(ids) = ids {
            if ids.is_empty() {
                return Ok(0);
            }
            picked.push_str(&format!(
                " AND j.job_id IN ({})",
                vec!["?"; ids.len()].join(", ")
            ));
            args.extend(ids.iter().cloned().map(Arg::Text));
        }
        let mut all = vec![Arg::Int(now.unix_micros()), Arg::Int(now.unix_micros())];
        all.extend(args);
        let stmt = Stmt::new(
            format!(
                "UPDATE processing_jobs SET state = 'pending', attempt_base = attempts, next_attempt_at = ?, \
                 updated_at = ?, lease_until = NULL WHERE job_id IN \
                 (SELECT j.job_id FROM processing_jobs j WHERE {picked}) RETURNING job_id"
            ),
            all,
        );
        Ok(self.write_select(stmt, |r| r.text(0)).await?.len())
    }

    /// Deletes one of the tenant's dead jobs (the event stays `failed`);
    /// `false` when it has no dead job with that id.
    pub async fn discard_processing_job(
        &self,
        tenant: &TenantId,
        job_id: &str,
    ) -> Result<bool, StoreError> {
        let stmt = Stmt::new(
            "DELETE FROM processing_jobs WHERE tenant_id = ? AND job_id = ? AND state = 'dead' RETURNING job_id",
            vec![Arg::Text(tenant.to_string()), Arg::Text(job_id.to_string())],
        );
        Ok(!self.write_select(stmt, |r| r.text(0)).await?.is_empty())
    }

    /// Whether any job waits (pending or in flight): one indexed read.
    pub async fn has_processing_jobs(&self) -> Result<bool, StoreError> {
        let stmt = Stmt::new(
            "SELECT 1 FROM processing_jobs WHERE state = 'pending' \
             UNION ALL SELECT 1 FROM processing_jobs WHERE state = 'in_flight' LIMIT 1",
            vec![],
        );
        Ok(!self.select(stmt, |r| r.int(0)).await?.is_empty())
    }

    /// How many jobs wait (pending or in flight), for gauges and tests.
    pub async fn processing_backlog(&self) -> Result<i64, StoreError> {
        let stmt = Stmt::new(
            "SELECT COUNT(*) FROM processing_jobs WHERE state IN ('pending', 'in_flight')",
            vec![],
        );
        Ok(self.select(stmt, |r| r.int(0)).await?.pop().unwrap_or(0))
    }

    pub(crate) async fn select<T: Send + 'static>(
        &self,
        stmt: Stmt,
        map: crate::query::MapRow<T>,
    ) -> Result<Vec<T>, StoreError> {
        each!(self, s => s.select(stmt, map).await)
    }

    async fn write_select<T: Send + 'static>(
        &self,
        stmt: Stmt,
        map: crate::query::MapRow<T>,
    ) -> Result<Vec<T>, StoreError> {
        each!(self, s => s.write_select(stmt, map).await)
    }

    pub(crate) async fn transact(&self, script: Vec<Guarded>) -> Result<Vec<bool>, StoreError> {
        each!(self, s => s.transact(script).await)
    }
}

/// The claim of due jobs: critical first, then commit order, read in the
/// order of the `processing_jobs_due` index (no sort of the backlog); on
/// PostgreSQL skipping rows another instance is claiming.
pub(crate) fn claim_jobs_sql(postgres: bool) -> String {
    let skip_locked = if postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    format!(
        "UPDATE processing_jobs SET state = 'in_flight', attempts = attempts + 1, lease_until = ?, updated_at = ? \
         WHERE job_id IN (SELECT job_id FROM processing_jobs WHERE state = 'pending' AND next_attempt_at <= ? \
         ORDER BY priority DESC, seq LIMIT CAST(? AS BIGINT){skip_locked}) RETURNING {JOB_COLUMNS}"
    )
}

/// The conditions over `processing_jobs j` that pick a tenant's dead jobs.
fn dead_picked(tenant: &TenantId, f: &DeadJobFilter) -> (String, Vec<Arg>) {
    let mut text = String::from("j.tenant_id = ? AND j.state = 'dead'");
    let mut args = vec![Arg::Text(tenant.to_string())];
    if let Some(p) = &f.processor_id {
        text.push_str(
            " AND EXISTS (SELECT 1 FROM processing_results r WHERE r.event_id = j.event_id \
             AND r.processor_id = ? AND r.status = 'failed')",
        );
        args.push(Arg::Text(p.clone()));
    }
    if let Some(t) = &f.event_type {
        text.push_str(" AND j.event_type = ?");
        args.push(Arg::Text(t.clone()));
    }
    if let Some(t) = f.died_from {
        text.push_str(" AND j.updated_at >= ?");
        args.push(Arg::Int(t.unix_micros()));
    }
    if let Some(t) = f.died_before {
        text.push_str(" AND j.updated_at < ?");
        args.push(Arg::Int(t.unix_micros()));
    }
    (text, args)
}

fn finish_script(f: &JobFinish, lifecycle: bool, postgres: bool) -> Result<Guarded, StoreError> {
    let at = f.finished_at.unix_micros();
    let key = vec![Arg::Text(f.job_id.clone()), Arg::Int(f.claim)];
    let guard = match &f.outcome {
        JobOutcome::Processed => Stmt::new(
            "DELETE FROM processing_jobs WHERE job_id = ? AND state = 'in_flight' AND attempts = ? RETURNING job_id",
            key,
        ),
        JobOutcome::RetryAt(due) => {
            let mut args = vec![
                Arg::Int(due.unix_micros()),
                opt_text(f.last_error.clone()),
                Arg::Int(at),
            ];
            args.extend(key);
            Stmt::new(
                "UPDATE processing_jobs SET state = 'pending', next_attempt_at = ?, lease_until = NULL, \
                 last_error = ?, updated_at = ? WHERE job_id = ? AND state = 'in_flight' AND attempts = ? RETURNING job_id",
                args,
            )
        }
        JobOutcome::Dead => {
            let mut args = vec![opt_text(f.last_error.clone()), Arg::Int(at)];
            args.extend(key);
            Stmt::new(
                "UPDATE processing_jobs SET state = 'dead', lease_until = NULL, last_error = ?, updated_at = ? \
                 WHERE job_id = ? AND state = 'in_flight' AND attempts = ? RETURNING job_id",
                args,
            )
        }
    };
    let mut then = Vec::with_capacity(f.results.len() + 2);
    for r in &f.results {
        then.push(Stmt::new(
            "INSERT INTO processing_results (event_id, processor_id, tenant_id, processor_name, processor_type, \
             priority, status, attempt, duration_ms, result, error, finished_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id, processor_id) DO UPDATE SET \
             processor_name = excluded.processor_name, processor_type = excluded.processor_type, \
             priority = excluded.priority, status = excluded.status, attempt = excluded.attempt, \
             duration_ms = excluded.duration_ms, result = excluded.result, error = excluded.error, \
             finished_at = excluded.finished_at",
            vec![
                Arg::Text(f.event_id.to_string()),
                Arg::Text(r.processor_id.clone()),
                Arg::Text(f.tenant_id.to_string()),
                Arg::Text(r.processor_name.clone()),
                Arg::Text(r.processor_type.clone()),
                Arg::Int(r.priority),
                Arg::Text(r.status.as_str().to_string()),
                Arg::Int(r.attempt),
                Arg::Float(r.duration_ms),
                opt_text(r.result.as_ref().map(|v| v.to_string())),
                opt_text(r.error.clone()),
                Arg::Int(r.finished_at.unix_micros()),
            ],
        ));
    }
    let status = f.event_status();
    // The rollups follow the status: the change is read before it is made.
    then.push(crate::store::stats::finish_delta(
        postgres,
        f.event_id,
        status,
        f.duration_ms,
    ));
    then.push(Stmt::new(
        "UPDATE events SET status = ?, processed_at = ?, processing_ms = ? WHERE event_id = ?",
        vec![
            Arg::Text(status.as_str().to_string()),
            Arg::Text(f.finished_at.to_string()),
            Arg::Float(f.duration_ms),
            Arg::EventId(f.event_id),
        ],
    ));
    let first_failure = f.claim - f.attempt_base == 1;
    let notify = match f.outcome {
        JobOutcome::Processed | JobOutcome::Dead => true,
        JobOutcome::RetryAt(_) => first_failure,
    };
    if lifecycle && notify {
        let l = LifecycleRecord::processed(
            f.tenant_id.as_str(),
            f.event_id,
            &f.category,
            &f.event_type,
            status,
            f.duration_ms,
            f.finished_at,
        );
        then.push(Stmt::new(
            "INSERT INTO lifecycle_outbox (tenant_id, event_id, kind, payload) VALUES (?, ?, ?, ?)",
            vec![
                Arg::Text(l.tenant_id),
                Arg::EventId(f.event_id),
                Arg::Text(l.kind.as_str().to_string()),
                Arg::Text(l.payload),
            ],
        ));
    }
    Ok(Guarded {
        guard: Some(guard),
        then,
    })
}

fn opt_text(v: Option<String>) -> Arg {
    // NULL is bound as a NULL text: both backends take it for any column.
    v.map_or(Arg::Null, Arg::Text)
}

fn spec_json(spec: &ProcessorSpec) -> Result<String, StoreError> {
    serde_json::to_string(spec).map_err(|e| StoreError::invalid(format!("processor spec: {e}")))
}

fn name_taken(tenant: &TenantId, name: &str) -> StoreError {
    StoreError::Conflict(ConflictReason::ProcessorNameExists {
        tenant_id: tenant.to_string(),
        processor_name: name.to_string(),
    })
}

use crate::store::deliveries::sql::micros;

fn event_id(text: &str) -> Result<EventId, StoreError> {
    EventId::parse(text).map_err(|_| StoreError::corrupt(format!("event id `{text}`")))
}

fn processor_row(r: &dyn RowAccess) -> Result<Processor, StoreError> {
    let spec: ProcessorSpec = serde_json::from_str(&r.text(2)?)
        .map_err(|e| StoreError::corrupt(format!("processor spec: {e}")))?;
    Ok(Processor {
        processor_id: r.text(0)?,
        tenant_id: TenantId::parse(r.text(1)?)
            .map_err(|_| StoreError::corrupt("processor tenant id"))?,
        spec,
        secret: r.opt_text(3)?,
        created_at: micros(r.int(4)?)?,
        updated_at: micros(r.int(5)?)?,
    })
}

fn job_row(r: &dyn RowAccess) -> Result<crate::ProcessingJob, StoreError> {
    Ok(crate::ProcessingJob {
        job_id: r.text(0)?,
        tenant_id: TenantId::parse(r.text(1)?).map_err(|_| StoreError::corrupt("job tenant id"))?,
        event_id: event_id(&r.text(2)?)?,
        seq: r.int(3)?,
        priority: r.int(4)?,
        state: r
            .text(5)?
            .parse::<JobState>()
            .map_err(|e| StoreError::corrupt(e.to_string()))?,
        attempts: r.int(6)?,
        attempt_base: r.int(7)?,
        next_attempt_at: micros(r.int(8)?)?,
        last_error: r.opt_text(9)?,
        created_at: micros(r.int(10)?)?,
        updated_at: micros(r.int(11)?)?,
        event_type: r.text(12)?,
    })
}

fn result_row(r: &dyn RowAccess) -> Result<(EventId, ProcessorResult), StoreError> {
    let result = r
        .opt_text(8)?
        .map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| StoreError::corrupt(format!("processor result: {e}")))?;
    Ok((
        event_id(&r.text(0)?)?,
        ProcessorResult {
            processor_id: r.text(1)?,
            processor_name: r.text(2)?,
            processor_type: r.text(3)?,
            priority: r.int(4)?,
            status: r
                .text(5)?
                .parse()
                .map_err(|e: crate::UnknownName| StoreError::corrupt(e.to_string()))?,
            attempt: r.int(6)?,
            duration_ms: r.opt_float(7)?.unwrap_or(0.0),
            result,
            error: r.opt_text(9)?,
            finished_at: micros(r.int(10)?)?,
        },
    ))
}
