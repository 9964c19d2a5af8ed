//! What the fan-out and replay tests share: subscriptions with chosen
//! selectors and events stored through the real pipeline. Each test crate
//! uses its part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use herald_core::{
    EmailHasher, EventId, EventProcessor, ProcessingContext, SequentialIds, TenantId, Timestamp,
};
use herald_store::{NewEvent, Store, Subscription, SubscriptionSpec};
use serde_json::{Value, json};

pub fn at(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// A subscription of `tenant` with the selector fields of `selector` (a
/// JSON object with any of `event_types`, `event_sources`, `filter`).
pub fn subscription(tenant: &TenantId, id: &str, selector: Value, enabled: bool) -> Subscription {
    let list = |key: &str| -> Vec<String> {
        selector[key]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    Subscription {
        subscription_id: id.into(),
        tenant_id: tenant.clone(),
        spec: SubscriptionSpec {
            subscriber_name: format!("name-of-{id}"),
            subscriber_type: "webhook".into(),
            event_types: list("event_types"),
            event_sources: list("event_sources"),
            event_categories: list("event_categories"),
            callback_url: "https://hooks.example.com/herald".into(),
            retry_policy: json!({"schedule": [1, 2, 4]}),
            filter: selector["filter"].as_str().map(str::to_string),
            ordering: "none".into(),
            payload_format: "json".into(),
            rate_limit: None,
            headers: BTreeMap::new(),
            enabled,
        },
        secret: format!("whsec_{id}"),
        previous_secret: None,
        previous_secret_expires_at: None,
        created_at: at("2030-01-01T00:00:00Z"),
        updated_at: at("2030-01-01T00:00:00Z"),
    }
}

/// Stores one event per body for `tenant`, in order; their ids.
pub async fn append(
    store: &Store,
    tenant: &TenantId,
    ids: &SequentialIds,
    bodies: &[Value],
) -> Vec<EventId> {
    let hasher = EmailHasher::new(b"k");
    let ctx = ProcessingContext {
        tenant_id: tenant,
        email_hasher: &hasher,
        processing_timestamp: at("2030-01-02T03:04:00Z"),
        ids,
        traceparent: None,
    };
    let events: Vec<NewEvent> = bodies
        .iter()
        .map(|body| NewEvent {
            event: EventProcessor::default()
                .process_value(body.clone(), &ctx)
                .unwrap()
                .event,
            expected_version: Default::default(),
        })
        .collect();
    let ids = events.iter().map(|e| e.event.event_id).collect();
    store.append(events).await.unwrap();
    ids
}

pub fn event(event_type: &str, source: &str, data: Value) -> Value {
    json!({"event_type": event_type, "category": "business", "event_source": source, "data": data})
}
