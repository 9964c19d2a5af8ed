//! Appending and reading events.

use herald_core::{EventId, TenantId};

use crate::{
    AppendOutcome, EventJson, EventPage, EventQuery, NewEvent, Page, Store, StoreError, StoredEvent,
};

impl Store {
    /// Appends events durably: returns only after the transaction holding
    /// them is committed. Outcomes come back in input order.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>, StoreError> {
        each!(self, s => s.append(events).await)
    }

    pub async fn get_event(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        each!(self, s => s.get_event(tenant, id).await)
    }

    pub async fn query_events(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<EventPage, StoreError> {
        each!(self, s => s.query_events(tenant, query).await)
    }

    /// Like `query_events`, with rows left as stored JSON (see [`EventJson`]).
    pub async fn query_events_json(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<Page<EventJson>, StoreError> {
        each!(self, s => s.query_events_json(tenant, query).await)
    }
}
