//! Processing: claims, results, and the lifecycle notifications they queue.

use herald_core::EventId;

use crate::{ClaimedEvent, PendingLifecycle, PendingScope, ProcessingResult, Store, StoreError};

impl Store {
    /// Moves up to `limit` pending events to `processing` and returns them,
    /// each with the token of this claim. On PostgreSQL a claim lapses after
    /// the lease (counted from `now`) and may then be taken again by a claim
    /// whose `now` is past it; on SQLite claims are handed back when the
    /// store is opened.
    pub async fn claim_pending(
        &self,
        limit: usize,
        now: time::OffsetDateTime,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        each!(self, s => s.claim_pending(limit, now, PendingScope::All).await)
    }

    /// [`Store::claim_pending`] over the events of tenants with an enabled
    /// processor only, as the statement finds them.
    pub async fn claim_pending_with_processors(
        &self,
        limit: usize,
        now: time::OffsetDateTime,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        each!(self, s => s.claim_pending(limit, now, PendingScope::WithProcessors).await)
    }

    /// Records how processing ended for claimed events, each only while its
    /// claim is still the event's newest: a result whose claim was taken
    /// over (or that was already finished) changes nothing. With
    /// `lifecycle`, queues in the same transaction the
    /// `event.processed.success` / `.failed` notification of each event it
    /// did finish, and of no other. Returns the ids of those events.
    pub async fn finish_processing(
        &self,
        results: Vec<ProcessingResult>,
        lifecycle: bool,
    ) -> Result<Vec<EventId>, StoreError> {
        each!(self, s => s.finish_processing(results, lifecycle).await)
    }

    /// Moves up to `limit` pending events straight to `processed` at `now`
    /// (the oldest first), for when no processor has anything to run: one
    /// write per event instead of a claim and a finish. With `lifecycle`,
    /// queues each one's `event.processed.success` in the same transaction.
    /// Returns how many it moved.
    pub async fn complete_pending(
        &self,
        limit: usize,
        lifecycle: bool,
        now: time::OffsetDateTime,
    ) -> Result<usize, StoreError> {
        each!(self, s => s.complete_pending(limit, lifecycle, now, PendingScope::All).await)
    }

    /// [`Store::complete_pending`] over the events of tenants without an
    /// enabled processor only, decided by the statement itself: an event
    /// stored after its tenant's first processor committed is never
    /// completed here.
    pub async fn complete_pending_without_processors(
        &self,
        limit: usize,
        lifecycle: bool,
        now: time::OffsetDateTime,
    ) -> Result<usize, StoreError> {
        each!(self, s => s.complete_pending(limit, lifecycle, now, PendingScope::WithoutProcessors).await)
    }

    /// The oldest lifecycle notifications still to publish.
    pub async fn pending_lifecycle(
        &self,
        limit: usize,
    ) -> Result<Vec<PendingLifecycle>, StoreError> {
        each!(self, s => s.pending_lifecycle(limit).await)
    }

    /// Forgets published lifecycle notifications.
    pub async fn delete_lifecycle(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        each!(self, s => s.delete_lifecycle(ids).await)
    }
}
