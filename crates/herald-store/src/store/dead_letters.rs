//! Dead letters: deliveries given up on (state `dead`), listed per tenant
//! with their event and every attempt, put back in the queue (redrive,
//! recover) or discarded. A redrive re-queues the *same* delivery, so it
//! keeps its `webhook-id` and a receiver that dedupes by it still can: it
//! becomes pending and due at once, its retry schedule starts over
//! (`attempt_base` = the attempts made so far) and its attempt numbers go
//! on after the earlier ones.
//!
//! Nothing changes a dead delivery until it is redriven or discarded, so
//! its `updated_at` is when it died: the time filters use it.

use std::collections::HashMap;

use herald_core::{TenantId, Timestamp};

use crate::{
    DeadLetter, DeadLetterFilter, DeadLetterPage, DeadLetterQuery, DeadLetterSelection, Delivery,
    DeliveryAttempt, DeliveryWithAttempts, Store, StoreError,
};

impl Store {
    /// One page of the tenant's dead letters matching `q.filter`, in
    /// delivery id (creation) order after `q.after`, each with its event's
    /// type and time and every attempt.
    pub async fn dead_letters(
        &self,
        tenant: &TenantId,
        q: &DeadLetterQuery,
    ) -> Result<DeadLetterPage, StoreError> {
        let (text, args) = sql::list(tenant.as_str(), q);
        let mut rows = each!(self, s => s.dead_letter_rows(text, args).await)?;
        let more = rows.len() > q.limit;
        rows.truncate(q.limit);
        let ids: Vec<String> = rows
            .iter()
            .map(|d| d.delivery.delivery_id.clone())
            .collect();
        let mut attempts = self.attempts_by_delivery(&ids).await?;
        for row in &mut rows {
            row.attempts = attempts
                .remove(&row.delivery.delivery_id)
                .unwrap_or_default();
        }
        Ok(DeadLetterPage {
            next_cursor: more
                .then(|| rows.last().map(|d| d.delivery.delivery_id.clone()))
                .flatten(),
            dead_letters: rows,
        })
    }

    /// Puts the tenant's dead letters that `selection` picks back in the
    /// queue, due at `now` (see the module doc); how many. Ids that are not
    /// a dead letter of this tenant are skipped.
    pub async fn redrive_dead_letters(
        &self,
        tenant: &TenantId,
        selection: &DeadLetterSelection,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        if matches!(selection, DeadLetterSelection::Ids(ids) if ids.is_empty()) {
            return Ok(0);
        }
        let (text, args) = sql::redrive(tenant.as_str(), selection, now.unix_micros());
        each!(self, s => s.redrive_dead_letters(text, args).await)
    }

    /// Re-queues, like a redrive, the subscription's deliveries that died
    /// in `[since, until)`; how many.
    pub async fn recover_deliveries(
        &self,
        tenant: &TenantId,
        subscription_id: &str,
        since: Timestamp,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let filter = DeadLetterFilter {
            subscription_id: Some(subscription_id.to_string()),
            died_from: Some(since),
            died_before: Some(until),
            ..DeadLetterFilter::default()
        };
        self.redrive_dead_letters(tenant, &DeadLetterSelection::Matching(filter), now)
            .await
    }

    /// Deletes one of the tenant's dead letters and its attempts; `false`
    /// when the tenant has no dead letter with that id.
    pub async fn discard_dead_letter(
        &self,
        tenant: &TenantId,
        delivery_id: &str,
    ) -> Result<bool, StoreError> {
        let (tenant, id) = (tenant.to_string(), delivery_id.to_string());
        each!(self, s => s.discard_dead_letter(tenant, id).await)
    }

    /// Each delivery with every attempt at it, in the order given.
    pub async fn with_attempts(
        &self,
        deliveries: Vec<Delivery>,
    ) -> Result<Vec<DeliveryWithAttempts>, StoreError> {
        let ids: Vec<String> = deliveries.iter().map(|d| d.delivery_id.clone()).collect();
        let mut attempts = self.attempts_by_delivery(&ids).await?;
        Ok(deliveries
            .into_iter()
            .map(|delivery| DeliveryWithAttempts {
                attempts: attempts.remove(&delivery.delivery_id).unwrap_or_default(),
                delivery,
            })
            .collect())
    }

    async fn attempts_by_delivery(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<DeliveryAttempt>>, StoreError> {
        let mut out: HashMap<String, Vec<DeliveryAttempt>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let (text, args) = sql::attempts_of(ids);
        for (id, attempt) in each!(self, s => s.attempts_of(text, args).await)? {
            out.entry(id).or_default().push(attempt);
        }
        Ok(out)
    }
}

/// The dead-letter SQL for both backends, `?` placeholders, every user
/// value a bound argument.
pub(crate) mod sql {
    use super::*;
    use crate::query::Arg;
    use crate::rows::RowAccess;
    use crate::store::deliveries::sql::{COLUMNS, attempt_row, delivery_row, micros};

    /// The conditions over `deliveries d` that pick the tenant's dead
    /// letters `selection` names.
    fn picked(tenant: &str, selection: &DeadLetterSelection) -> (String, Vec<Arg>) {
        let mut text = String::from("d.tenant_id = ? AND d.state = 'dead'");
        let mut args = vec![Arg::Text(tenant.to_string())];
        match selection {
            DeadLetterSelection::Ids(ids) => {
                text.push_str(&format!(
                    " AND d.delivery_id IN ({})",
                    vec!["?"; ids.len()].join(", ")
                ));
                args.extend(ids.iter().cloned().map(Arg::Text));
            }
            DeadLetterSelection::Matching(f) => {
                // Destructured so that a new filter field cannot be left out here.
                let DeadLetterFilter {
                    subscription_id,
                    event_type,
                    died_from,
                    died_before,
                    error_class,
                    processor_id,
                } = f;
                if processor_id.is_some() {
                    // A processor's dead letters are processing jobs.
                    text.push_str(" AND 1 = 0");
                }
                if let Some(s) = subscription_id {
                    text.push_str(" AND d.subscription_id = ?");
                    args.push(Arg::Text(s.clone()));
                }
                if let Some(t) = event_type {
                    text.push_str(
                        " AND EXISTS (SELECT 1 FROM events e WHERE e.seq = d.seq \
                         AND e.tenant_id = d.tenant_id AND e.event_type = ?)",
                    );
                    args.push(Arg::Text(t.clone()));
                }
                if let Some(t) = died_from {
                    text.push_str(" AND d.updated_at >= ?");
                    args.push(Arg::Int(t.unix_micros()));
                }
                if let Some(t) = died_before {
                    text.push_str(" AND d.updated_at < ?");
                    args.push(Arg::Int(t.unix_micros()));
                }
                if let Some(c) = error_class {
                    text.push_str(" AND d.last_error_class = ?");
                    args.push(Arg::Text(c.clone()));
                }
            }
        }
        (text, args)
    }

    /// One page (one row more than `q.limit`, to see whether more
    /// follow): [`COLUMNS`] of `d`, then the event's type and time.
    pub(crate) fn list(tenant: &str, q: &DeadLetterQuery) -> (String, Vec<Arg>) {
        let (picked, mut args) = picked(tenant, &DeadLetterSelection::Matching(q.filter.clone()));
        let columns: Vec<String> = COLUMNS
            .split(',')
            .map(|c| format!("d.{}", c.trim()))
            .collect();
        args.push(Arg::Text(q.after.clone().unwrap_or_default()));
        args.push(Arg::Int((q.limit + 1) as i64));
        (
            format!(
                "SELECT {}, e.event_type, e.ts FROM deliveries d \
                 LEFT JOIN events e ON e.seq = d.seq AND e.tenant_id = d.tenant_id \
                 WHERE {picked} AND d.delivery_id > ? ORDER BY d.delivery_id LIMIT ?",
                columns.join(", ")
            ),
            args,
        )
    }

    /// A [`list`] row, its attempts left empty.
    pub(crate) fn dead_letter_row(r: &impl RowAccess) -> Result<DeadLetter, StoreError> {
        let delivery = delivery_row(r)?;
        let n = COLUMNS.split(',').count();
        Ok(DeadLetter {
            event_type: r.opt_text(n)?,
            event_time: r.opt_int(n + 1)?.map(micros).transpose()?,
            died_at: delivery.updated_at,
            delivery,
            attempts: Vec::new(),
        })
    }

    /// Re-queues what `selection` picks, due at `now`; returns the ids.
    pub(crate) fn redrive(
        tenant: &str,
        selection: &DeadLetterSelection,
        now: i64,
    ) -> (String, Vec<Arg>) {
        let (picked, picked_args) = picked(tenant, selection);
        let mut args = vec![Arg::Int(now), Arg::Int(now)];
        args.extend(picked_args);
        (
            format!(
                "UPDATE deliveries SET state = 'pending', attempt_base = attempts, \
                 next_attempt_at = ?, lease_until = NULL, updated_at = ? \
                 WHERE delivery_id IN (SELECT d.delivery_id FROM deliveries d WHERE {picked}) \
                 RETURNING delivery_id"
            ),
            args,
        )
    }

    /// `tenant_id`, `delivery_id`: the dead letter itself.
    pub(crate) const DISCARD: &str =
        "DELETE FROM deliveries WHERE tenant_id = ? AND delivery_id = ? AND state = 'dead'";

    /// `delivery_id`: its attempts, after [`DISCARD`] deleted it.
    pub(crate) const DISCARD_ATTEMPTS: &str = "DELETE FROM delivery_attempts WHERE delivery_id = ?";

    /// The attempts at `ids`: rows of `delivery_id` then the attempt
    /// columns [`attempt_row`] reads, in attempt order.
    pub(crate) fn attempts_of(ids: &[String]) -> (String, Vec<Arg>) {
        (
            format!(
                "SELECT delivery_id, attempt, at, status_code, duration_ms, error_class, \
                 response_snippet, next_attempt_at FROM delivery_attempts \
                 WHERE delivery_id IN ({}) ORDER BY delivery_id, attempt",
                vec!["?"; ids.len()].join(", ")
            ),
            ids.iter().cloned().map(Arg::Text).collect(),
        )
    }

    /// An [`attempts_of`] row.
    pub(crate) fn owned_attempt_row(
        r: &impl RowAccess,
    ) -> Result<(String, DeliveryAttempt), StoreError> {
        Ok((r.text(0)?, attempt_row(&Shifted(r))?))
    }

    /// A row read one column to the right, so [`attempt_row`] reads the
    /// attempt after its delivery id.
    struct Shifted<'a, R>(&'a R);

    impl<R: RowAccess> RowAccess for Shifted<'_, R> {
        fn text(&self, i: usize) -> Result<String, StoreError> {
            self.0.text(i + 1)
        }
        fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
            self.0.opt_text(i + 1)
        }
        fn int(&self, i: usize) -> Result<i64, StoreError> {
            self.0.int(i + 1)
        }
        fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
            self.0.opt_int(i + 1)
        }
        fn opt_float(&self, i: usize) -> Result<Option<f64>, StoreError> {
            self.0.opt_float(i + 1)
        }
        fn event_id(&self, i: usize) -> Result<herald_core::EventId, StoreError> {
            self.0.event_id(i + 1)
        }
        fn opt_event_id(&self, i: usize) -> Result<Option<herald_core::EventId>, StoreError> {
            self.0.opt_event_id(i + 1)
        }
    }
}
