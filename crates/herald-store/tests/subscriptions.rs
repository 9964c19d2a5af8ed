//! Conformance of webhook subscriptions on each backend: create, get, list
//! with paging, update, delete, one name per tenant, tenant isolation and
//! secret rotation.

use std::collections::BTreeMap;

use herald_core::{TenantId, Timestamp};
use herald_store::*;
use herald_testkit::on_each_backend;
use serde_json::json;

use herald_testkit::{StoreUnderTest as Opened, open_store as open};

on_each_backend!(
    open = open;
    create_get_update_delete_round_trip_the_subscription,
    listing_pages_in_creation_order_and_filters_on_enabled,
    a_subscriber_name_is_unique_per_tenant_with_the_same_reason_on_both_backends,
    another_tenants_subscription_is_invisible_and_untouchable,
    rotation_keeps_the_previous_secret_until_its_expiry,
);

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

fn spec(name: &str) -> SubscriptionSpec {
    SubscriptionSpec {
        subscriber_name: name.into(),
        subscriber_type: "webhook".into(),
        event_types: vec!["order.*".into(), "payment.captured".into()],
        event_sources: vec!["backend".into()],
        event_categories: vec!["business".into()],
        callback_url: "https://hooks.example.com/herald".into(),
        retry_policy: json!({"schedule": [1, 2, 4]}),
        filter: Some("event.data.amount > 100".into()),
        ordering: "stream".into(),
        payload_format: "json".into(),
        rate_limit: Some(2.5),
        headers: BTreeMap::from([("x-team".to_string(), "billing".to_string())]),
        enabled: true,
    }
}

fn subscription(tenant: &TenantId, id: &str, spec: SubscriptionSpec) -> Subscription {
    Subscription {
        subscription_id: id.into(),
        tenant_id: tenant.clone(),
        spec,
        secret: format!("whsec_secret-of-{id}"),
        previous_secret: None,
        previous_secret_expires_at: None,
        created_at: at("2026-01-02T03:04:05.123456Z"),
        updated_at: at("2026-01-02T03:04:05.123456Z"),
    }
}

async fn create_get_update_delete_round_trip_the_subscription(o: Opened) {
    let t = tenant("acme");
    let created = subscription(&t, "sub_0001", spec("billing"));
    o.store.insert_subscription(created.clone()).await.unwrap();
    assert_eq!(
        o.store.get_subscription(&t, "sub_0001").await.unwrap(),
        Some(created.clone())
    );

    let mut changed = spec("billing-v2");
    changed.event_types = vec!["order.>".into()];
    changed.filter = None;
    changed.enabled = false;
    let later = at("2026-01-03T00:00:00Z");
    let updated = o
        .store
        .update_subscription(&t, "sub_0001", changed.clone(), later)
        .await
        .unwrap()
        .expect("the subscription exists");
    assert_eq!(updated.spec, changed);
    assert_eq!(updated.updated_at, later);
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(updated.secret, created.secret, "an update keeps the secret");
    assert_eq!(
        o.store.get_subscription(&t, "sub_0001").await.unwrap(),
        Some(updated)
    );
    assert_eq!(
        o.store
            .update_subscription(&t, "sub_missing", changed, later)
            .await
            .unwrap(),
        None
    );

    assert!(o.store.delete_subscription(&t, "sub_0001").await.unwrap());
    assert_eq!(
        o.store.get_subscription(&t, "sub_0001").await.unwrap(),
        None
    );
    assert!(!o.store.delete_subscription(&t, "sub_0001").await.unwrap());
}

async fn listing_pages_in_creation_order_and_filters_on_enabled(o: Opened) {
    let t = tenant("acme");
    for i in 0..5 {
        let mut s = spec(&format!("s{i}"));
        s.enabled = i % 2 == 0;
        o.store
            .insert_subscription(subscription(&t, &format!("sub_{i:04}"), s))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = o
            .store
            .list_subscriptions(
                &t,
                &SubscriptionQuery {
                    enabled: None,
                    limit: 2,
                    after: after.clone(),
                },
            )
            .await
            .unwrap();
        assert!(page.subscriptions.len() <= 2);
        seen.extend(page.subscriptions.iter().map(|s| s.subscription_id.clone()));
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["sub_0000", "sub_0001", "sub_0002", "sub_0003", "sub_0004"]
    );
    for (enabled, expected) in [
        (true, vec!["sub_0000", "sub_0002", "sub_0004"]),
        (false, vec!["sub_0001", "sub_0003"]),
    ] {
        let page = o
            .store
            .list_subscriptions(
                &t,
                &SubscriptionQuery {
                    enabled: Some(enabled),
                    limit: 10,
                    after: None,
                },
            )
            .await
            .unwrap();
        let ids: Vec<_> = page
            .subscriptions
            .iter()
            .map(|s| s.subscription_id.as_str())
            .collect();
        assert_eq!(ids, expected, "enabled = {enabled}");
        assert_eq!(page.next_cursor, None);
    }
}

async fn a_subscriber_name_is_unique_per_tenant_with_the_same_reason_on_both_backends(o: Opened) {
    let (a, b) = (tenant("acme"), tenant("globex"));
    o.store
        .insert_subscription(subscription(&a, "sub_0001", spec("billing")))
        .await
        .unwrap();
    o.store
        .insert_subscription(subscription(&a, "sub_0002", spec("audit")))
        .await
        .unwrap();
    let expected = ConflictReason::SubscriptionNameExists {
        tenant_id: "acme".into(),
        subscriber_name: "billing".into(),
    };
    match o
        .store
        .insert_subscription(subscription(&a, "sub_0003", spec("billing")))
        .await
    {
        Err(StoreError::Conflict(why)) => {
            assert_eq!(why, expected);
            assert_eq!(
                why.to_string(),
                "tenant acme already has a subscription named `billing`"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    match o
        .store
        .update_subscription(&a, "sub_0002", spec("billing"), at("2026-02-01T00:00:00Z"))
        .await
    {
        Err(StoreError::Conflict(why)) => assert_eq!(why, expected),
        other => panic!("a rename onto a taken name is a conflict, got {other:?}"),
    }
    // Another tenant may use the name.
    o.store
        .insert_subscription(subscription(&b, "sub_0004", spec("billing")))
        .await
        .unwrap();
}

async fn another_tenants_subscription_is_invisible_and_untouchable(o: Opened) {
    let (a, b) = (tenant("acme"), tenant("globex"));
    let mine = subscription(&a, "sub_0001", spec("billing"));
    o.store.insert_subscription(mine.clone()).await.unwrap();
    assert_eq!(
        o.store.get_subscription(&b, "sub_0001").await.unwrap(),
        None
    );
    let page = o
        .store
        .list_subscriptions(
            &b,
            &SubscriptionQuery {
                enabled: None,
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert!(page.subscriptions.is_empty());
    let now = at("2026-02-01T00:00:00Z");
    assert_eq!(
        o.store
            .update_subscription(&b, "sub_0001", spec("stolen"), now)
            .await
            .unwrap(),
        None
    );
    let rotation = SecretRotation {
        secret: "whsec_other".into(),
        previous_expires_at: now,
        now,
    };
    assert_eq!(
        o.store
            .rotate_subscription_secret(&b, "sub_0001", rotation)
            .await
            .unwrap(),
        None
    );
    assert!(!o.store.delete_subscription(&b, "sub_0001").await.unwrap());
    assert_eq!(
        o.store.get_subscription(&a, "sub_0001").await.unwrap(),
        Some(mine),
        "the owner's subscription is unchanged"
    );
}

async fn rotation_keeps_the_previous_secret_until_its_expiry(o: Opened) {
    let t = tenant("acme");
    let first = subscription(&t, "sub_0001", spec("billing"));
    o.store.insert_subscription(first.clone()).await.unwrap();
    let now = at("2026-03-01T00:00:00Z");
    let until = at("2026-03-02T00:00:00Z");
    let rotated = o
        .store
        .rotate_subscription_secret(
            &t,
            "sub_0001",
            SecretRotation {
                secret: "whsec_second".into(),
                previous_expires_at: until,
                now,
            },
        )
        .await
        .unwrap()
        .expect("the subscription exists");
    assert_eq!(rotated.secret, "whsec_second");
    assert_eq!(
        rotated.previous_secret.as_deref(),
        Some(first.secret.as_str())
    );
    assert_eq!(rotated.previous_secret_expires_at, Some(until));
    assert_eq!(rotated.updated_at, now);
    assert_eq!(rotated.spec, first.spec);
    assert_eq!(
        o.store.get_subscription(&t, "sub_0001").await.unwrap(),
        Some(rotated.clone())
    );
    assert_eq!(
        rotated.signing_secrets(now),
        vec!["whsec_second", first.secret.as_str()]
    );
    assert_eq!(rotated.signing_secrets(until), vec!["whsec_second"]);

    // A second rotation replaces the previous secret: only one old one signs.
    let again = o
        .store
        .rotate_subscription_secret(
            &t,
            "sub_0001",
            SecretRotation {
                secret: "whsec_third".into(),
                previous_expires_at: until,
                now,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.previous_secret.as_deref(), Some("whsec_second"));
}
