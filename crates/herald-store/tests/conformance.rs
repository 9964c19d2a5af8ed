//! The store conformance suite: the behaviour every backend must show,
//! written against the `Store` contract only. Each test is an
//! `async fn(StoreUnderTest)` that the test kit's `on_each_backend!`
//! (opening the store with [`open`]) runs as `<test>::sqlite` and
//! `<test>::postgres`: SQLite always, PostgreSQL when
//! `HERALD_TEST_DATABASE_URL` is set (mandatory in CI), in a schema of the
//! test's own. Tests named `sqlite_*` / `postgres_*` cover what only one
//! backend has.

use herald_core::correlation::CorrelationKey;
use herald_core::filter::{EventFilter, EventPart, FieldFilter};
use herald_core::{
    EmailHasher, EventProcessor, EventStatus, ExpectedVersion, ProcessingContext, TenantId,
    Timestamp,
};
use herald_store::*;
use herald_testkit::store::pg_options;
use herald_testkit::{
    Backend, PgSchema, StoreUnderTest, on_each_backend, open_store, pg_url, wait_until,
};
use serde_json::json;

/// A schema of the test's own on `HERALD_TEST_DATABASE_URL`, for the tests
/// of what only PostgreSQL has.
fn pg_schema() -> Option<PgSchema> {
    pg_url().map(|url| PgSchema::named(&url, "conformance"))
}

async fn open_pg(schema: &PgSchema) -> Store {
    Store::open_postgres(pg_options(schema), now())
        .await
        .unwrap_or_else(|e| panic!("HERALD_TEST_DATABASE_URL is set but PostgreSQL failed: {e}"))
}

on_each_backend!(
    open = open_store;
    append_then_get_returns_the_same_event_and_isolates_tenants,
    idempotency_key_returns_the_first_event_and_stores_nothing_new,
    streams_get_consecutive_versions_and_expected_version_conflicts,
    query_filters_each_narrow_the_result,
    json_rows_are_the_stored_events_with_their_current_status,
    cursor_and_offset_paging_visit_every_event_once,
    total_stops_at_the_cap_unless_an_exact_total_is_asked_for,
    tenants_keys_and_revocation,
    audit_records_are_committed_and_filterable,
    claim_and_finish_moves_events_through_the_lifecycle_once,
    concurrent_appends_are_all_stored,
    definitions_keep_every_version_and_one_definition_per_type,
    settings_default_to_permissive_and_persist_per_tenant,
    events_after_is_commit_order_and_the_publish_cursor_only_moves_forward,
    cursor_moves_are_compare_and_set_so_followers_sharing_a_name_never_both_advance,
    lifecycle_records_are_committed_with_processing_and_kept_until_deleted,
    values_with_nul_and_control_characters_round_trip_and_stay_queryable,
    a_request_the_database_refuses_fails_alone_in_its_group_commit,
    complete_pending_processes_each_pending_event_once_with_its_notification,
);

/// The clock, read here and passed in: the store never reads it.
fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn event(tenant: &TenantId, body: serde_json::Value) -> NewEvent {
    let hasher = EmailHasher::new(b"conformance");
    let ctx = ProcessingContext {
        tenant_id: tenant,
        email_hasher: &hasher,
        processing_timestamp: Timestamp::now(),
        ids: &herald_core::UuidV7Ids::new(),
        traceparent: None,
    };
    let processed = EventProcessor::default()
        .process_value(body, &ctx)
        .expect("valid test event");
    NewEvent {
        event: processed.event,
        expected_version: processed.expected_version,
    }
}

fn stored(outcome: &AppendOutcome) -> &herald_core::CanonicalEvent {
    match outcome {
        AppendOutcome::Stored(e) => e,
        other => panic!("expected Stored, got {other:?}"),
    }
}

async fn append_then_get_returns_the_same_event_and_isolates_tenants(b: StoreUnderTest) {
    let (a, other) = (tenant("acme"), tenant("globex"));
    let out = b
        .store
        .append(vec![event(
            &a,
            json!({"event_type": "checkout_started", "category": "business", "data": {"cart": 3}}),
        )])
        .await
        .unwrap();
    let e = stored(&out[0]).clone();
    let got = b
        .store
        .get_event(&a, e.event_id)
        .await
        .unwrap()
        .expect(b.name);
    assert_eq!(got.event, e, "{}", b.name);
    assert_eq!(got.event.status, EventStatus::Pending);
    assert!(
        b.store
            .get_event(&other, e.event_id)
            .await
            .unwrap()
            .is_none(),
        "{}: another tenant must not see it",
        b.name
    );
    let page = b
        .store
        .query_events(
            &other,
            &EventQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 0, "{}", b.name);
}

async fn idempotency_key_returns_the_first_event_and_stores_nothing_new(b: StoreUnderTest) {
    let t = tenant("acme");
    let body = json!({"event_type": "order.created", "category": "business", "idempotency_key": "k-1", "data": {"n": 1}});
    let first = stored(&b.store.append(vec![event(&t, body.clone())]).await.unwrap()[0]).clone();
    // Twice in one batch and once more later: all return the first.
    let again = b
        .store
        .append(vec![event(&t, body.clone()), event(&t, body)])
        .await
        .unwrap();
    for o in again {
        match o {
            AppendOutcome::Duplicate(d) => {
                assert_eq!(d.event.event_id, first.event_id, "{}", b.name)
            }
            other => panic!("{}: expected Duplicate, got {other:?}", b.name),
        }
    }
    // The same key in another tenant is a different event.
    let other = b
        .store
        .append(vec![event(
            &tenant("globex"),
            json!({"event_type": "x", "category": "system", "idempotency_key": "k-1"}),
        )])
        .await
        .unwrap();
    assert!(matches!(other[0], AppendOutcome::Stored(_)), "{}", b.name);
    let page = b
        .store
        .query_events(
            &t,
            &EventQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 1, "{}", b.name);
}

async fn streams_get_consecutive_versions_and_expected_version_conflicts(b: StoreUnderTest) {
    let t = tenant("acme");
    let on = |stream: &str, v: serde_json::Value| {
        event(
            &t,
            json!({"event_type": "order.updated", "category": "business", "stream_id": stream, "expected_version": v}),
        )
    };
    let mk = |v: Option<u64>| on("order:1", v.map_or(json!("any"), |v| json!(v)));
    let out = b
        .store
        .append(vec![mk(None), mk(Some(1)), mk(Some(1))])
        .await
        .unwrap();
    assert_eq!(stored(&out[0]).stream_version, Some(1), "{}", b.name);
    assert_eq!(stored(&out[1]).stream_version, Some(2), "{}", b.name);
    assert_eq!(
        out[2],
        AppendOutcome::VersionConflict {
            stream_id: "order:1".into(),
            expected: ExpectedVersion::Exact(1),
            actual: 2
        },
        "{}",
        b.name
    );

    // The named forms: `no_stream` only on an empty stream, `stream_exists`
    // only on one with events, decided in order inside one batch too.
    let out = b
        .store
        .append(vec![
            on("order:2", json!("stream_exists")),
            on("order:2", json!("no_stream")),
            on("order:2", json!("no_stream")),
            on("order:2", json!("stream_exists")),
            on("order:2", json!(0)),
        ])
        .await
        .unwrap();
    let conflict = |expected, actual| AppendOutcome::VersionConflict {
        stream_id: "order:2".into(),
        expected,
        actual,
    };
    assert_eq!(
        out[0],
        conflict(ExpectedVersion::StreamExists, 0),
        "{}",
        b.name
    );
    assert_eq!(stored(&out[1]).stream_version, Some(1), "{}", b.name);
    assert_eq!(out[2], conflict(ExpectedVersion::NoStream, 1), "{}", b.name);
    assert_eq!(stored(&out[3]).stream_version, Some(2), "{}", b.name);
    assert_eq!(out[4], conflict(ExpectedVersion::Exact(0), 2), "{}", b.name);
}

async fn seed_for_queries(store: &Store, t: &TenantId) -> Vec<herald_core::CanonicalEvent> {
    let bodies = vec![
        json!({"event_type": "checkout_started", "category": "business", "event_source": "frontend", "user_id": "u1",
               "timestamp": "2025-01-01T10:00:00Z", "object": {"order_id": "o-1", "session_id": "s-1"},
               "context": {"environment": "staging", "service": "web"}, "data": {"note": "blue widget"}}),
        json!({"event_type": "request_received", "category": "system", "timestamp": "2025-01-01T10:00:01Z",
               "correlation": {"trace_id": "t-1"}, "object": {"request_id": "r-1", "order_id": "o-1"},
               "context": {"service": "api"}, "actor": {"tier": "gold"}}),
        json!({"event_type": "db_error", "category": "system", "timestamp": "2025-01-01T10:00:02Z",
               "correlation": {"trace_id": "t-1"}, "outcome": {"status": "failure", "error_class": "Timeout"},
               "context": {"service": "api"}, "data": {"query": "select red widget"}}),
        json!({"event_type": "deploy_completed", "category": "delivery", "timestamp": "2025-01-01T09:00:00Z",
               "evidence": {"github": {"commit_sha": "abc"}}, "event_source": "scheduled"}),
        json!({"event_type": "permission_denied", "category": "security", "timestamp": "2025-01-01T11:00:00Z",
               "actor": {"user_id": "u2"}, "object": {"ticket_id": "T-9"}}),
    ];
    let out = store
        .append(bodies.into_iter().map(|b| event(t, b)).collect())
        .await
        .unwrap();
    out.iter().map(|o| stored(o).clone()).collect()
}

fn types(page: &EventPage) -> Vec<&str> {
    page.events
        .iter()
        .map(|e| e.event.event_type.as_str())
        .collect()
}

async fn query_filters_each_narrow_the_result(b: StoreUnderTest) {
    let t = tenant("acme");
    seed_for_queries(&b.store, &t).await;
    let q = |f: fn(&mut EventQuery)| {
        let mut q = EventQuery {
            limit: 100,
            order: Order::Asc,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let cases: Vec<(&str, EventQuery, Vec<&str>)> = vec![
        (
            "all asc",
            q(|_| {}),
            vec![
                "deploy_completed",
                "checkout_started",
                "request_received",
                "db_error",
                "permission_denied",
            ],
        ),
        (
            "category",
            q(|q| q.filter.categories = vec![herald_core::Category::System]),
            vec!["request_received", "db_error"],
        ),
        (
            "type",
            q(|q| q.filter.event_types = vec!["db_error".into()]),
            vec!["db_error"],
        ),
        (
            "source",
            q(|q| q.filter.event_sources = vec![herald_core::EventSource::Scheduled]),
            vec!["deploy_completed"],
        ),
        (
            "user_id",
            q(|q| q.filter.keys = vec![(CorrelationKey::UserId, "u1".into())]),
            vec!["checkout_started"],
        ),
        (
            "order_id",
            q(|q| q.filter.keys = vec![(CorrelationKey::OrderId, "o-1".into())]),
            vec!["checkout_started", "request_received"],
        ),
        (
            "trace_id",
            q(|q| q.filter.keys = vec![(CorrelationKey::TraceId, "t-1".into())]),
            vec!["request_received", "db_error"],
        ),
        (
            "ticket_id",
            q(|q| q.filter.keys = vec![(CorrelationKey::TicketId, "T-9".into())]),
            vec!["permission_denied"],
        ),
        (
            "outcome",
            q(|q| q.filter.outcome_status = Some(herald_core::OutcomeStatus::Failure)),
            vec!["db_error"],
        ),
        (
            "environment",
            q(|q| q.filter.environment = Some("staging".into())),
            vec!["checkout_started"],
        ),
        (
            "service",
            q(|q| q.filter.service = Some("api".into())),
            vec!["request_received", "db_error"],
        ),
        (
            "actor extra",
            q(|q| {
                q.filter.fields = vec![FieldFilter {
                    part: EventPart::Actor,
                    key: "tier".into(),
                    value: "gold".into(),
                }]
            }),
            vec!["request_received"],
        ),
        (
            "outcome extra",
            q(|q| {
                q.filter.fields = vec![FieldFilter {
                    part: EventPart::Outcome,
                    key: "error_class".into(),
                    value: "Timeout".into(),
                }]
            }),
            vec!["db_error"],
        ),
        (
            "text",
            q(|q| q.filter.text = Some("widget".into())),
            vec!["checkout_started", "db_error"],
        ),
        (
            "text and",
            q(|q| q.filter.text = Some("red widget".into())),
            vec!["db_error"],
        ),
        (
            "text quotes",
            q(|q| q.filter.text = Some("\"unbalanced AND (".into())),
            vec![],
        ),
        (
            "time range",
            q(|q| {
                q.filter.start_time = Some(Timestamp::parse("2025-01-01T10:00:00Z").unwrap());
                q.filter.end_time = Some(Timestamp::parse("2025-01-01T10:00:01Z").unwrap());
            }),
            vec!["checkout_started", "request_received"],
        ),
        (
            "status",
            q(|q| q.filter.statuses = vec![EventStatus::Processed]),
            vec![],
        ),
    ];
    for (name, query, want) in cases {
        let page = b.store.query_events(&t, &query).await.unwrap();
        assert_eq!(types(&page), want, "{}: {name}", b.name);
        assert_eq!(page.total as usize, want.len(), "{}: {name} total", b.name);
    }
    let desc = b
        .store
        .query_events(
            &t,
            &EventQuery {
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        types(&desc),
        vec!["permission_denied", "db_error"],
        "{}",
        b.name
    );
    assert!(desc.has_more);
}

async fn json_rows_are_the_stored_events_with_their_current_status(b: StoreUnderTest) {
    let t = tenant("acme");
    seed_for_queries(&b.store, &t).await;
    let claimed = b.store.claim_pending(2, now()).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let q = EventQuery {
        limit: 100,
        ..Default::default()
    };
    let decoded = b.store.query_events(&t, &q).await.unwrap();
    let raw = b.store.query_events_json(&t, &q).await.unwrap();
    assert_eq!(
        (raw.total, raw.has_more),
        (decoded.total, decoded.has_more),
        "{}",
        b.name
    );
    assert_eq!(raw.events.len(), decoded.events.len());
    for (r, d) in raw.events.iter().zip(&decoded.events) {
        let mut e =
            herald_core::codec::json::decode(r.body.as_bytes()).expect("stored JSON decodes");
        assert!(
            r.body.ends_with(r#","status":"pending"}"#),
            "status is the stored JSON's last field"
        );
        e.status = r.status;
        assert_eq!(e, d.event, "{}", b.name);
        assert_eq!(r.user_id.as_deref(), d.event.actor.user_id.as_deref());
        assert_eq!(r.processing_ms, d.processing_ms);
    }
    assert_eq!(
        raw.events
            .iter()
            .filter(|r| r.status == EventStatus::Processing)
            .count(),
        2
    );
}

async fn cursor_and_offset_paging_visit_every_event_once(b: StoreUnderTest) {
    let t = tenant("acme");
    let events: Vec<NewEvent> = (0..25)
        .map(|i| event(&t, json!({"event_type": "tick", "category": "system", "timestamp": format!("2025-01-01T00:00:{:02}Z", i / 2), "data": {"i": i}})))
        .collect();
    b.store.append(events).await.unwrap();
    for order in [Order::Asc, Order::Desc] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = b
                .store
                .query_events(
                    &t,
                    &EventQuery {
                        limit: 7,
                        order,
                        cursor,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(page.total, 25);
            seen.extend(
                page.events
                    .iter()
                    .map(|e| e.event.data["i"].as_i64().unwrap()),
            );
            match page.next_cursor {
                Some(c) => cursor = Some(Cursor::decode(&c).expect("cursor decodes")),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            sorted,
            (0..25).collect::<Vec<_>>(),
            "{} {order:?}: every event exactly once",
            b.name
        );
        assert_eq!(seen.len(), 25);
    }
    let page = b
        .store
        .query_events(
            &t,
            &EventQuery {
                limit: 10,
                offset: 20,
                order: Order::Asc,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.events.len(), 5);
    assert!(!page.has_more);
}

async fn total_stops_at_the_cap_unless_an_exact_total_is_asked_for(b: StoreUnderTest) {
    let t = tenant("acme");
    let n = TOTAL_CAP as usize + 25;
    let one = event(&t, json!({"event_type": "tick", "category": "system"}));
    let events = (0..n)
        .map(|_| {
            let mut e = one.clone();
            e.event.event_id =
                herald_core::IdSource::event_id(&herald_core::UuidV7Ids::new(), Timestamp::now());
            e
        })
        .collect();
    b.store.append(events).await.unwrap();
    let capped = b
        .store
        .query_events(
            &t,
            &EventQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (capped.total, capped.total_exact),
        (TOTAL_CAP, false),
        "{}",
        b.name
    );
    let exact = b
        .store
        .query_events(
            &t,
            &EventQuery {
                limit: 10,
                exact_total: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (exact.total, exact.total_exact),
        (n as u64, true),
        "{}",
        b.name
    );
    let small = b
        .store
        .query_events(
            &t,
            &EventQuery {
                limit: 10,
                ..EventQuery::new(EventFilter {
                    categories: vec![herald_core::Category::Business],
                    ..Default::default()
                })
            },
        )
        .await
        .unwrap();
    assert_eq!((small.total, small.total_exact), (0, true), "{}", b.name);
}

async fn tenants_keys_and_revocation(b: StoreUnderTest) {
    let t = tenant("acme");
    b.store
        .create_tenant(Tenant {
            tenant_id: t.clone(),
            name: "Acme".into(),
            created_at: Timestamp::now(),
        })
        .await
        .unwrap();
    assert!(matches!(
        b.store
            .create_tenant(Tenant {
                tenant_id: t.clone(),
                name: "again".into(),
                created_at: Timestamp::now()
            })
            .await,
        Err(StoreError::Conflict(ConflictReason::TenantExists { .. }))
    ));
    assert_eq!(b.store.get_tenant(&t).await.unwrap().unwrap().name, "Acme");
    let key = ApiKey {
        key_id: "key_1".into(),
        tenant_id: t.clone(),
        name: "ci".into(),
        scopes: vec![Scope::Ingest, Scope::Read],
        secret_hash: [7; 32],
        created_at: Timestamp::now(),
        collect: KeyCollect {
            allowed_origins: Some(vec!["https://shop.example".into()]),
            webhook_secret: None,
        },
    };
    b.store.insert_key(key.clone()).await.unwrap();
    assert_eq!(b.store.find_key([7; 32]).await.unwrap(), Some(key.clone()));
    // A key's collection settings change in place; another tenant's key
    // and an unknown key are not found.
    let collect = KeyCollect {
        allowed_origins: Some(vec!["*".into()]),
        webhook_secret: Some("s3cret".into()),
    };
    assert!(
        b.store
            .set_key_collect(&t, "key_1", collect.clone())
            .await
            .unwrap()
    );
    assert!(
        !b.store
            .set_key_collect(&tenant("globex"), "key_1", collect.clone())
            .await
            .unwrap()
    );
    assert!(
        !b.store
            .set_key_collect(&t, "key_nope", collect.clone())
            .await
            .unwrap()
    );
    assert_eq!(
        b.store.find_key([7; 32]).await.unwrap().unwrap().collect,
        collect
    );
    assert_eq!(b.store.find_key([8; 32]).await.unwrap(), None);
    assert!(
        !b.store
            .revoke_key(&tenant("globex"), "key_1", Timestamp::now())
            .await
            .unwrap(),
        "other tenant cannot revoke"
    );
    assert!(
        b.store
            .revoke_key(&t, "key_1", Timestamp::now())
            .await
            .unwrap()
    );
    assert_eq!(
        b.store.find_key([7; 32]).await.unwrap(),
        None,
        "{}: revoked keys stop working",
        b.name
    );
}

async fn audit_records_are_committed_and_filterable(b: StoreUnderTest) {
    for (i, op) in ["events.create", "events.query", "events.create"]
        .iter()
        .enumerate()
    {
        b.store.record_audit(AuditRecord {
            at: Timestamp::now(),
            tenant_id: Some("acme".into()),
            key_id: Some(format!("k{i}")),
            operation: op.to_string(),
            resource: "/api/v1/events".into(),
            outcome: AuditOutcome::Success,
            status_code: 201,
            request_id: format!("r{i}"),
            duration_us: 10,
            detail: None,
        });
    }
    // An append is committed after the audit records queued before it.
    b.store
        .append(vec![event(
            &tenant("acme"),
            json!({"event_type": "x", "category": "system"}),
        )])
        .await
        .unwrap();
    let all = b
        .store
        .query_audit(&AuditQuery {
            tenant_id: Some("acme".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.records.len(), 3, "{}", b.name);
    assert_eq!(all.records[0].request_id, "r2", "newest first");
    assert_eq!(all.next_cursor, None);
    let creates = b
        .store
        .query_audit(&AuditQuery {
            operation: Some("events.create".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(creates.records.len(), 2);
    let by_key = b
        .store
        .query_audit(&AuditQuery {
            key_id: Some("k1".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_key.records.len(), 1);
    assert_eq!(by_key.records[0].operation, "events.query");
    // Keyset pages: r2, then r1, then r0, then nothing more.
    let mut before = None;
    let mut seen = Vec::new();
    loop {
        let page = b
            .store
            .query_audit(&AuditQuery {
                tenant_id: Some("acme".into()),
                limit: 1,
                before,
                ..Default::default()
            })
            .await
            .unwrap();
        seen.extend(page.records.into_iter().map(|r| r.request_id));
        match page.next_cursor {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["r2", "r1", "r0"], "{}", b.name);
}

async fn claim_and_finish_moves_events_through_the_lifecycle_once(b: StoreUnderTest) {
    let t = tenant("acme");
    let out = b
        .store
        .append(
            (0..5)
                .map(|i| {
                    event(
                        &t,
                        json!({"event_type": "x", "category": "system", "data": {"i": i}}),
                    )
                })
                .collect(),
        )
        .await
        .unwrap();
    let claimed = b.store.claim_pending(3, now()).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(
        claimed
            .iter()
            .all(|c| c.event.status == EventStatus::Processing)
    );
    let rest = b.store.claim_pending(10, now()).await.unwrap();
    assert_eq!(rest.len(), 2, "{}: no event is claimed twice", b.name);
    let results: Vec<ProcessingResult> = claimed
        .iter()
        .chain(&rest)
        .map(|c| ProcessingResult {
            event_id: c.event.event_id,
            claim: c.claim,
            status: EventStatus::Processed,
            duration_ms: 0.25,
            finished_at: Timestamp::now(),
        })
        .collect();
    let finished = b
        .store
        .finish_processing(results.clone(), false)
        .await
        .unwrap();
    assert_eq!(
        finished,
        results.iter().map(|r| r.event_id).collect::<Vec<_>>(),
        "{}",
        b.name
    );
    assert!(b.store.claim_pending(10, now()).await.unwrap().is_empty());
    assert!(
        b.store
            .finish_processing(results, false)
            .await
            .unwrap()
            .is_empty(),
        "{}: a finished event is not finished again",
        b.name
    );
    let got = b
        .store
        .get_event(&t, stored(&out[0]).event_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.event.status, EventStatus::Processed);
    assert_eq!(got.processing_ms, Some(0.25));
    assert!(got.processed_at.is_some());
}

async fn concurrent_appends_are_all_stored(b: StoreUnderTest) {
    let t = tenant("acme");
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (store, t) = (b.store.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25 {
                let out = store
                    .append(vec![event(
                        &t,
                        json!({"event_type": "x", "category": "system", "data": {"w": w, "i": i}}),
                    )])
                    .await
                    .unwrap();
                ids.push(stored(&out[0]).event_id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    let page = b
        .store
        .query_events(
            &t,
            &EventQuery {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 200, "{}", b.name);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let id = {
        let store = Store::open_sqlite(dir.path(), sqlite::SqliteOptions::default()).unwrap();
        let out = store
            .append(vec![event(
                &t,
                json!({"event_type": "x", "category": "system", "idempotency_key": "once"}),
            )])
            .await
            .unwrap();
        let claimed = store.claim_pending(10, now()).await.unwrap();
        assert_eq!(claimed.len(), 1);
        store.close().await;
        stored(&out[0]).event_id
    };
    let store = Store::open_sqlite(dir.path(), sqlite::SqliteOptions::default()).unwrap();
    let got = store.get_event(&t, id).await.unwrap().unwrap();
    assert_eq!(
        got.event.status,
        EventStatus::Pending,
        "a claim interrupted by a restart is handed back"
    );
    let again = store
        .append(vec![event(
            &t,
            json!({"event_type": "x", "category": "system", "idempotency_key": "once"}),
        )])
        .await
        .unwrap();
    assert!(
        matches!(&again[0], AppendOutcome::Duplicate(d) if d.event.event_id == id),
        "idempotency holds across restarts"
    );
}

fn definition(id: &str, version: u32, body: serde_json::Value) -> herald_registry::EventDefinition {
    herald_registry::parse_input(&body, None)
        .expect("valid test definition")
        .into_definition(id.into(), version, Timestamp::now())
}

async fn definitions_keep_every_version_and_one_definition_per_type(b: StoreUnderTest) {
    let (t, other) = (tenant("acme"), tenant("globex"));
    let v1 = definition(
        "def_a",
        1,
        json!({"event_type": "order.*", "category": "business", "name": "Orders",
            "payload_schema": {"type": "object", "required": ["id"]}, "allowed_sources": ["backend"],
            "examples": [{"id": "o-1"}], "ui": {"icon": "cart"}}),
    );
    b.store.insert_definition(&t, v1.clone()).await.unwrap();
    let mut v2 = v1.next_version(
        herald_registry::parse_input(
            &json!({"event_type": "order.*", "category": "business", "name": "Orders v2"}),
            None,
        )
        .unwrap(),
        Timestamp::now(),
    );
    v2.description = Some("second".into());
    b.store.insert_definition(&t, v2.clone()).await.unwrap();

    // Round trip, latest by default, any version on request.
    let latest = b.store.get_definition(&t, "def_a", None).await.unwrap();
    assert_eq!(latest.as_ref(), Some(&v2), "{}", b.name);
    assert!(latest.unwrap().compatibility.is_some());
    assert_eq!(
        b.store.get_definition(&t, "def_a", Some(1)).await.unwrap(),
        Some(v1.clone()),
        "{}",
        b.name
    );
    assert_eq!(
        b.store.get_definition(&t, "def_a", Some(3)).await.unwrap(),
        None
    );
    assert_eq!(
        b.store.definitions(&t).await.unwrap(),
        vec![v1.clone(), v2.clone()]
    );

    // A version is immutable: writing it again is a conflict.
    assert!(matches!(
        b.store.insert_definition(&t, v2.clone()).await,
        Err(StoreError::Conflict(
            ConflictReason::DefinitionVersionExists { version: 2, .. }
        ))
    ));
    // A second definition for the same type is a conflict; another type is not.
    let dup = definition(
        "def_b",
        1,
        json!({"event_type": "order.*", "category": "business"}),
    );
    // The words a client sees are the reason's, the same on every backend.
    match b.store.insert_definition(&t, dup.clone()).await {
        Err(StoreError::Conflict(reason @ ConflictReason::DefinitionExists { .. })) => assert_eq!(
            reason.to_string(),
            "tenant acme already has a definition for `order.*`",
            "{}",
            b.name
        ),
        other => panic!("{}: {other:?}", b.name),
    }
    assert!(matches!(
        b.store.insert_definition(&t, dup.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    let other_type = definition(
        "def_b",
        1,
        json!({"event_type": "order.paid", "category": "business"}),
    );
    b.store.insert_definition(&t, other_type).await.unwrap();

    // Tenants are isolated, and another tenant may define the same type.
    assert_eq!(
        b.store.get_definition(&other, "def_a", None).await.unwrap(),
        None
    );
    assert!(b.store.definitions(&other).await.unwrap().is_empty());
    b.store.insert_definition(&other, dup).await.unwrap();
    assert_eq!(
        b.store.definitions(&t).await.unwrap().len(),
        3,
        "{}",
        b.name
    );
}

async fn settings_default_to_permissive_and_persist_per_tenant(b: StoreUnderTest) {
    let (t, other) = (tenant("acme"), tenant("globex"));
    let defaults = b.store.get_settings(&t).await.unwrap();
    assert_eq!(defaults, TenantSettings::default(), "{}", b.name);
    assert_eq!(
        defaults.validation_mode,
        herald_core::ValidationMode::Permissive
    );
    let strict = TenantSettings {
        validation_mode: herald_core::ValidationMode::Strict,
        updated_at: Some(Timestamp::now()),
    };
    b.store.put_settings(&t, strict.clone()).await.unwrap();
    assert_eq!(
        b.store.get_settings(&t).await.unwrap(),
        strict,
        "{}",
        b.name
    );
    assert_eq!(
        b.store.get_settings(&other).await.unwrap(),
        TenantSettings::default()
    );
    let back = TenantSettings {
        validation_mode: herald_core::ValidationMode::Permissive,
        updated_at: Some(Timestamp::now()),
    };
    b.store.put_settings(&t, back.clone()).await.unwrap();
    assert_eq!(b.store.get_settings(&t).await.unwrap(), back, "{}", b.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_database_from_before_the_registry_migrates_and_keeps_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant("acme");
    let id = {
        let store = Store::open_sqlite(dir.path(), sqlite::SqliteOptions::default()).unwrap();
        let out = store
            .append(vec![event(
                &t,
                json!({"event_type": "x", "category": "system", "user_id": "u-7",
                       "correlation": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}}),
            )])
            .await
            .unwrap();
        store.close().await;
        stored(&out[0]).event_id
    };
    // Turn it back into a schema-version-1 database, as the first release wrote.
    {
        let conn = rusqlite::Connection::open(dir.path().join(sqlite::DB_FILE)).unwrap();
        conn.execute_batch(
            "DROP TABLE event_definitions; DROP TABLE tenant_settings; DROP TABLE publish_cursors; \
             DROP TABLE lifecycle_outbox; ALTER TABLE events DROP COLUMN attempts; DROP INDEX audit_tenant_seq; \
             DROP TABLE events_keys; DROP TABLE subscriptions; DROP TABLE deliveries; DROP TABLE delivery_attempts; DROP TABLE replays; DROP TABLE projection_snapshots; \
             DROP TABLE processors; DROP TABLE processing_jobs; DROP TABLE processing_results; DROP TABLE waits; DROP TABLE rollup_levels; DROP TABLE stats_rollups; DROP TABLE stats_top_users; \
             ALTER TABLE api_keys DROP COLUMN collect; \
             CREATE INDEX events_trace_id ON events (tenant_id, trace_id, ts) WHERE trace_id IS NOT NULL; \
             CREATE INDEX events_span_id ON events (tenant_id, span_id, ts) WHERE span_id IS NOT NULL; \
             CREATE INDEX events_correlation_id ON events (tenant_id, correlation_id, ts) WHERE correlation_id IS NOT NULL; \
             CREATE INDEX events_request_id ON events (tenant_id, request_id, ts) WHERE request_id IS NOT NULL; \
             CREATE INDEX events_order_id ON events (tenant_id, order_id, ts) WHERE order_id IS NOT NULL; \
             CREATE INDEX events_session_id ON events (tenant_id, session_id, ts) WHERE session_id IS NOT NULL; \
             CREATE INDEX events_ticket_id ON events (tenant_id, ticket_id, ts) WHERE ticket_id IS NOT NULL; \
             CREATE INDEX events_user_id ON events (tenant_id, user_id, ts) WHERE user_id IS NOT NULL; \
             CREATE INDEX events_email_hash ON events (tenant_id, email_hash, ts) WHERE email_hash IS NOT NULL; \
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = Store::open_sqlite(dir.path(), sqlite::SqliteOptions::default()).unwrap();
    assert!(store.get_event(&t, id).await.unwrap().is_some());
    // Its correlation keys moved from B-tree indexes to `events_keys`.
    for key in [
        (CorrelationKey::TraceId, "4bf92f3577b34da6a3ce929d0e0e4736"),
        (CorrelationKey::UserId, "u-7"),
    ] {
        let page = store
            .query_events(
                &t,
                &EventQuery {
                    limit: 10,
                    ..EventQuery::new(EventFilter {
                        keys: vec![(key.0, key.1.to_string())],
                        ..Default::default()
                    })
                },
            )
            .await
            .unwrap();
        assert_eq!(page.events.len(), 1, "{key:?} after the migration");
    }
    let d = definition("def_a", 1, json!({"event_type": "x", "category": "system"}));
    store.insert_definition(&t, d.clone()).await.unwrap();
    store.close().await;
    let store = Store::open_sqlite(dir.path(), sqlite::SqliteOptions::default()).unwrap();
    assert_eq!(
        store.definitions(&t).await.unwrap(),
        vec![d],
        "survives a reopen"
    );
    // The event stored before claim tokens existed is claimed and finished.
    let claimed = store.claim_pending(10, now()).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let finished = store
        .finish_processing(
            vec![ProcessingResult {
                event_id: id,
                claim: claimed[0].claim,
                status: EventStatus::Processed,
                duration_ms: 1.0,
                finished_at: Timestamp::now(),
            }],
            false,
        )
        .await
        .unwrap();
    assert_eq!(finished, vec![id]);
}

async fn events_after_is_commit_order_and_the_publish_cursor_only_moves_forward(b: StoreUnderTest) {
    let (a, g) = (tenant("acme"), tenant("globex"));
    let mut ids = Vec::new();
    for round in 0..3 {
        let out = b
            .store
            .append(vec![
                event(
                    &a,
                    json!({"event_type": "x", "category": "system", "data": {"r": round}}),
                ),
                event(
                    &g,
                    json!({"event_type": "order.created", "category": "business"}),
                ),
            ])
            .await
            .unwrap();
        ids.extend(out.iter().map(|o| stored(o).event_id));
    }
    let all = b.store.events_after(0, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        ids,
        "{}: every stored event, in commit order",
        b.name
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(all[1].tenant_id, "globex");
    assert_eq!(all[1].category, "business");
    assert_eq!(all[1].event_type, "order.created");
    let decoded = herald_core::codec::json::decode(all[0].body.as_bytes()).unwrap();
    assert_eq!(decoded.event_id, ids[0]);

    let page = b.store.events_after(all[1].seq, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        ids[2..4].to_vec(),
        "{}",
        b.name
    );

    assert_eq!(b.store.cursor("nats:S").await.unwrap(), 0);
    b.store
        .advance_cursor("nats:S", 0, all[3].seq)
        .await
        .unwrap();
    match b.store.advance_cursor("nats:S", 0, all[1].seq).await {
        Err(StoreError::Conflict(ConflictReason::CursorMoved {
            expected, actual, ..
        })) => assert_eq!((expected, actual), (0, all[3].seq), "{}", b.name),
        other => panic!("{}: a move from a stale position: {other:?}", b.name),
    }
    assert!(
        matches!(
            b.store
                .advance_cursor("nats:S", all[3].seq, all[1].seq)
                .await,
            Err(StoreError::Invalid { .. })
        ),
        "{}: a move backwards is refused",
        b.name
    );
    assert_eq!(
        b.store.cursor("nats:S").await.unwrap(),
        all[3].seq,
        "{}: a cursor never moves back",
        b.name
    );
    assert_eq!(b.store.cursor("nats:other").await.unwrap(), 0);
}

/// Followers sharing a cursor name move it by compare-and-set: of several
/// moves from the same position, exactly one wins, first where the cursor
/// has never moved (an insert) and then where it has (an update).
async fn cursor_moves_are_compare_and_set_so_followers_sharing_a_name_never_both_advance(
    b: StoreUnderTest,
) {
    let mut from = 0;
    for round in 0..2 {
        let tasks: Vec<_> = (1..=8)
            .map(|i| {
                let store = b.store.clone();
                let to = from + 100 * (round + 1) + i;
                tokio::spawn(async move { (to, store.advance_cursor("shared", from, to).await) })
            })
            .collect();
        let mut won = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (to, Ok(())) => won.push(to),
                (_, Err(StoreError::Conflict(ConflictReason::CursorMoved { .. }))) => {}
                (_, Err(e)) => panic!("{}: {e}", b.name),
            }
        }
        assert_eq!(
            won.len(),
            1,
            "{}: exactly one move from {from} wins: {won:?}",
            b.name
        );
        assert_eq!(
            b.store.cursor("shared").await.unwrap(),
            won[0],
            "{}",
            b.name
        );
        from = won[0];
    }
}

async fn lifecycle_records_are_committed_with_processing_and_kept_until_deleted(b: StoreUnderTest) {
    let t = tenant("acme");
    let out = b
        .store
        .append(vec![
            event(&t, json!({"event_type": "x", "category": "system"})),
            event(&t, json!({"event_type": "y", "category": "system"})),
        ])
        .await
        .unwrap();
    let claimed = b.store.claim_pending(10, now()).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let results: Vec<ProcessingResult> = claimed
        .iter()
        .zip([EventStatus::Processed, EventStatus::Failed])
        .map(|(c, status)| ProcessingResult {
            event_id: c.event.event_id,
            claim: c.claim,
            status,
            duration_ms: 1.5,
            finished_at: Timestamp::now(),
        })
        .collect();
    b.store
        .finish_processing(results.clone(), true)
        .await
        .unwrap();
    let pending = b.store.pending_lifecycle(10).await.unwrap();
    assert_eq!(pending.len(), 2, "{}", b.name);
    for (p, (r, c)) in pending.iter().zip(results.iter().zip(&claimed)) {
        let kind = match r.status {
            EventStatus::Failed => "event.processed.failed",
            _ => "event.processed.success",
        };
        assert_eq!(
            (
                p.record.tenant_id.as_str(),
                p.record.event_id,
                p.record.kind.as_str()
            ),
            ("acme", Some(r.event_id), kind),
            "{}",
            b.name
        );
        let payload: serde_json::Value = serde_json::from_str(&p.record.payload).unwrap();
        assert_eq!(payload["type"], kind);
        assert_eq!(payload["status"], r.status.as_str());
        assert_eq!(payload["duration_ms"], 1.5);
        assert_eq!(payload["event_type"], c.event.event_type.as_str());
        assert_eq!(payload["at"], r.finished_at.to_string());
    }
    assert!(pending[0].id < pending[1].id);
    b.store.delete_lifecycle(vec![pending[0].id]).await.unwrap();
    let left = b.store.pending_lifecycle(10).await.unwrap();
    assert_eq!(left.len(), 1, "{}", b.name);
    assert_eq!(left[0].record.event_id, Some(stored(&out[1]).event_id));
}

async fn values_with_nul_and_control_characters_round_trip_and_stay_queryable(b: StoreUnderTest) {
    let t = tenant("acme");
    let weird = "u\u{0}1\u{1}\u{7f}é😀";
    let out = b
        .store
        .append(vec![event(
            &t,
            json!({"event_type": "x", "category": "system", "user_id": weird,
                   "data": {"note": "nul \u{0} inside", "k\u{0}": 1}}),
        )])
        .await
        .unwrap();
    let e = stored(&out[0]).clone();
    let got = b.store.get_event(&t, e.event_id).await.unwrap().unwrap();
    assert_eq!(got.event, e, "{}", b.name);
    let page = b
        .store
        .query_events(
            &t,
            &EventQuery {
                limit: 10,
                ..EventQuery::new(EventFilter {
                    keys: vec![(CorrelationKey::UserId, weird.into())],
                    ..Default::default()
                })
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 1, "{}", b.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_data_survives_reopen_and_idempotency_holds_across_instances() {
    let Some(schema) = pg_schema() else { return };
    let t = tenant("acme");
    let first = open_pg(&schema).await;
    let out = first
        .append(vec![event(
            &t,
            json!({"event_type": "x", "category": "system", "idempotency_key": "once"}),
        )])
        .await
        .unwrap();
    let id = stored(&out[0]).event_id;
    first.close().await;
    let second = open_pg(&schema).await;
    assert!(second.get_event(&t, id).await.unwrap().is_some());
    let again = second
        .append(vec![event(
            &t,
            json!({"event_type": "x", "category": "system", "idempotency_key": "once"}),
        )])
        .await
        .unwrap();
    assert!(
        matches!(&again[0], AppendOutcome::Duplicate(d) if d.event.event_id == id),
        "idempotency holds across restarts: {again:?}"
    );
}

/// Instances started together on a database nobody has set up: the
/// migration lock makes one create the schema while the others wait, then
/// find it done. Without the lock they race (`CREATE SCHEMA` / `CREATE
/// TABLE` collide, or a migration is recorded twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_starting_together_on_an_empty_schema_migrate_it_once() {
    let Some(schema) = pg_schema() else { return };
    let (a, b, c) = tokio::join!(
        Store::open_postgres(pg_options(&schema), now()),
        Store::open_postgres(pg_options(&schema), now()),
        Store::open_postgres(pg_options(&schema), now()),
    );
    let stores: Vec<Store> = [a, b, c]
        .into_iter()
        .map(|s| s.expect("every instance starts"))
        .collect();
    let client = schema.client().await;
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), count(DISTINCT version), min(version), max(version) \
                 FROM \"{}\".schema_migrations",
                schema.name
            ),
            &[],
        )
        .await
        .unwrap();
    let (rows, distinct, first, last): (i64, i64, i32, i32) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        (rows, distinct, first),
        (last as i64, last as i64, 1),
        "each migration applied once, none missing"
    );
    // And the schema works through each of them.
    let t = tenant("acme");
    for store in &stores {
        store
            .append(vec![event(
                &t,
                json!({"event_type": "x", "category": "system"}),
            )])
            .await
            .unwrap();
    }
    let page = stores[0]
        .query_events(
            &t,
            &EventQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_dedup_keys_claim_disjointly_and_number_streams_consecutively() {
    let Some(schema) = pg_schema() else { return };
    let (a, b) = (open_pg(&schema).await, open_pg(&schema).await);
    let t = tenant("acme");

    // The same 40 idempotency keys and one stream, through both at once.
    let mut tasks = Vec::new();
    for (n, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..40 {
                let out = store
                    .append(vec![
                        event(&t, json!({"event_type": "x", "category": "system", "idempotency_key": format!("k{i}"), "data": {"writer": n}})),
                        event(&t, json!({"event_type": "y", "category": "system", "stream_id": "order:1"})),
                    ])
                    .await
                    .unwrap();
                outcomes.extend(out);
            }
            outcomes
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.unwrap());
    }
    let stored_keys = outcomes
        .iter()
        .filter(|o| matches!(o, AppendOutcome::Stored(e) if e.idempotency_key.is_some()))
        .count();
    assert_eq!(
        stored_keys, 40,
        "each key stored once across both instances"
    );
    let mut versions: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| match o {
            AppendOutcome::Stored(e) if e.stream_id.is_some() => e.stream_version,
            _ => None,
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=160).collect::<Vec<u64>>(),
        "no gap, no repeat"
    );

    // Both claim at once: every pending event is claimed exactly once.
    let mut claims = Vec::new();
    for store in [a.clone(), b.clone(), a.clone(), b.clone()] {
        claims.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let got = store.claim_pending(7, now()).await.unwrap();
                if got.is_empty() {
                    return ids;
                }
                ids.extend(got.into_iter().map(|c| c.event.event_id));
            }
        }));
    }
    let mut claimed = Vec::new();
    for c in claims {
        claimed.extend(c.await.unwrap());
    }
    let total = claimed.len();
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), total, "no event claimed twice");
    assert_eq!(total, 40 + 160);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_abandoned_claim_comes_back_after_its_lease() {
    let Some(schema) = pg_schema() else { return };
    let options = pg_options(&schema);
    let lease = time::Duration::try_from(options.claim_lease).unwrap();
    let short = Store::open_postgres(options, now()).await.unwrap();
    let t = tenant("acme");
    short
        .append(vec![event(
            &t,
            json!({"event_type": "x", "category": "system"}),
        )])
        .await
        .unwrap();
    let t0 = now();
    let first = short.claim_pending(10, t0).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        short
            .claim_pending(10, t0 + lease - time::Duration::SECOND)
            .await
            .unwrap()
            .is_empty(),
        "held while the lease runs"
    );
    // Its claimer never finishes: a claim after the lease takes it back.
    let again = short
        .claim_pending(10, t0 + lease + time::Duration::SECOND)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "claim came back after the lease");
    assert_eq!(again[0].event.event_id, first[0].event.event_id);
    assert_ne!(again[0].claim, first[0].claim, "a new claim, a new token");
}

/// Both claimers of one event try to finish it: the one whose claim lapsed
/// (`old`) first, then the current one (`new`), then `old` again.
async fn finish_after_a_lapsed_claim(
    name: &str,
    t: &TenantId,
    old_store: &Store,
    old: &ClaimedEvent,
    new_store: &Store,
    new: &ClaimedEvent,
) {
    let id = new.event.event_id;
    assert_eq!(old.event.event_id, id, "{name}");
    assert_ne!(old.claim, new.claim, "{name}: a new claim, a new token");
    let result = |c: &ClaimedEvent, status, duration_ms| ProcessingResult {
        event_id: c.event.event_id,
        claim: c.claim,
        status,
        duration_ms,
        finished_at: Timestamp::now(),
    };
    let refused = old_store
        .finish_processing(vec![result(old, EventStatus::Failed, 9.0)], true)
        .await
        .unwrap();
    assert!(
        refused.is_empty(),
        "{name}: the lapsed claim finishes nothing"
    );
    let got = new_store.get_event(t, id).await.unwrap().unwrap();
    assert_eq!(
        (got.event.status, got.processing_ms),
        (EventStatus::Processing, None),
        "{name}: still the new claimer's"
    );
    assert!(new_store.pending_lifecycle(10).await.unwrap().is_empty());

    let done = new_store
        .finish_processing(vec![result(new, EventStatus::Processed, 2.0)], true)
        .await
        .unwrap();
    assert_eq!(done, vec![id], "{name}: the current claim finishes it");
    let late = old_store
        .finish_processing(vec![result(old, EventStatus::Failed, 9.0)], true)
        .await
        .unwrap();
    assert!(late.is_empty(), "{name}: nor afterwards");

    let got = new_store.get_event(t, id).await.unwrap().unwrap();
    assert_eq!(
        (got.event.status, got.processing_ms),
        (EventStatus::Processed, Some(2.0)),
        "{name}"
    );
    let notes = new_store.pending_lifecycle(10).await.unwrap();
    assert_eq!(
        notes.len(),
        1,
        "{name}: exactly one notification: {notes:?}"
    );
    assert_eq!(notes[0].record.event_id, Some(id));
    assert_eq!(notes[0].record.kind, LifecycleKind::ProcessedSuccess);
    let payload: serde_json::Value = serde_json::from_str(&notes[0].record.payload).unwrap();
    assert_eq!(
        payload["duration_ms"], 2.0,
        "{name}: the new claimer's result"
    );
}

/// A claim lapses on PostgreSQL when its lease runs out and another
/// instance claims the event again; on SQLite when the store is reopened
/// (which hands claims back). Either way its claimer can no longer finish
/// the event, and only the new claimer's result is recorded and notified.
async fn a_lapsed_claim_cannot_finish_and_only_the_current_claim_notifies(backend: Backend) {
    let t = tenant("acme");
    let one = || vec![event(&t, json!({"event_type": "x", "category": "system"}))];
    match &backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let first = Store::open_sqlite(dir.path(), sqlite::SqliteOptions::default()).unwrap();
            first.append(one()).await.unwrap();
            let old = first.claim_pending(10, now()).await.unwrap();
            assert_eq!(old.len(), 1);
            first.close().await;
            let store = Store::open_sqlite(dir.path(), sqlite::SqliteOptions::default()).unwrap();
            let new = store.claim_pending(10, now()).await.unwrap();
            assert_eq!(new.len(), 1, "handed back at open and claimed again");
            finish_after_a_lapsed_claim("sqlite", &t, &store, &old[0], &store, &new[0]).await;
        }
        Backend::Postgres(schema) => {
            let options = pg_options(schema);
            let lease = time::Duration::try_from(options.claim_lease).unwrap();
            let a = Store::open_postgres(options.clone(), now()).await.unwrap();
            let b = Store::open_postgres(options, now()).await.unwrap();
            a.append(one()).await.unwrap();
            let t0 = now();
            let old = a.claim_pending(10, t0).await.unwrap();
            assert_eq!(old.len(), 1);
            assert!(
                b.claim_pending(10, t0 + lease - time::Duration::SECOND)
                    .await
                    .unwrap()
                    .is_empty(),
                "leased to A"
            );
            let new = b
                .claim_pending(10, t0 + lease + time::Duration::SECOND)
                .await
                .unwrap();
            assert_eq!(new.len(), 1, "A's lease ran out");
            finish_after_a_lapsed_claim("postgres", &t, &a, &old[0], &b, &new[0]).await;
        }
    }
}

// The claim lapses differently on each backend, so this test takes the
// backend itself and sets its stores up its own way.
on_each_backend!(a_lapsed_claim_cannot_finish_and_only_the_current_claim_notifies);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_publisher_lease_revision_and_shared_secrets() {
    let Some(schema) = pg_schema() else { return };
    let (a, b) = (open_pg(&schema).await, open_pg(&schema).await);

    let lease = a.try_publisher_lease().await.unwrap().expect("first lease");
    assert!(lease.is_held());
    assert!(
        b.try_publisher_lease().await.unwrap().is_none(),
        "one publisher at a time"
    );
    lease.release().await;
    let lease = b
        .try_publisher_lease()
        .await
        .unwrap()
        .expect("a released lease is free at once");
    // A holder that dies (its session ends) loses the lease too.
    drop(lease);
    // Each try is a session of its own, so one that gets the lease keeps it
    // only until its guard drops.
    wait_until(
        "the dead holder's lease to be free",
        std::time::Duration::from_secs(10),
        || async { a.try_publisher_lease().await.unwrap().is_some() },
    )
    .await;

    let t = tenant("acme");
    let r0 = b.tenant_revision(&t).await.unwrap().unwrap();
    a.put_settings(
        &t,
        TenantSettings {
            validation_mode: herald_core::ValidationMode::Strict,
            updated_at: Some(Timestamp::now()),
        },
    )
    .await
    .unwrap();
    let r1 = b.tenant_revision(&t).await.unwrap().unwrap();
    assert!(r1 > r0, "settings change the revision");
    a.insert_definition(
        &t,
        definition("def_x", 1, json!({"event_type": "x", "category": "system"})),
    )
    .await
    .unwrap();
    assert!(b.tenant_revision(&t).await.unwrap().unwrap() > r1);

    let (first, created) = a.shared_secret("hash", "secret-a").await.unwrap().unwrap();
    assert_eq!((first.as_str(), created), ("secret-a", true));
    let (second, created) = b.shared_secret("hash", "secret-b").await.unwrap().unwrap();
    assert_eq!(
        (second.as_str(), created),
        ("secret-a", false),
        "the first instance's secret wins"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_events_land_in_monthly_partitions_and_old_ones_in_the_default() {
    let Some(schema) = pg_schema() else { return };
    let store = open_pg(&schema).await;
    let t = tenant("acme");
    let stamp_now = Timestamp::now().to_string();
    let out = store
        .append(vec![
            event(&t, json!({"event_type": "x", "category": "system", "timestamp": stamp_now})),
            event(&t, json!({"event_type": "x", "category": "system", "timestamp": "2001-02-03T04:05:06Z"})),
        ])
        .await
        .unwrap();
    let client = schema.client().await;
    let partition = |id: herald_core::EventId| {
        let (client, name) = (&client, schema.name.clone());
        async move {
            client
                .query_one(
                    &format!(
                        "SELECT tableoid::regclass::text FROM \"{name}\".events WHERE event_id = $1"
                    ),
                    &[id.as_uuid()],
                )
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    let month = time::OffsetDateTime::now_utc();
    let current = partition(stored(&out[0]).event_id).await;
    assert!(
        current.ends_with(&format!(
            "events_p{:04}_{:02}",
            month.year(),
            month.month() as u8
        )),
        "{current}"
    );
    assert!(
        partition(stored(&out[1]).event_id)
            .await
            .ends_with("events_default")
    );
    // Upkeep is idempotent: running it again creates nothing new and fails on nothing.
    store.maintain(now()).await.unwrap();
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'events'",
            &[&schema.name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 5, "default + this month + 3 ahead");

    // An event five months ahead waits in the default partition until its
    // month's partition is created, then moves there with it.
    let ahead = month + time::Duration::days(31 * 5);
    let far = time::OffsetDateTime::new_utc(
        time::Date::from_calendar_date(ahead.year(), ahead.month(), 15).unwrap(),
        time::Time::MIDNIGHT,
    );
    let stamp = far
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = store
        .append(vec![event(
            &t,
            json!({"event_type": "x", "category": "system", "timestamp": stamp}),
        )])
        .await
        .unwrap();
    let id = stored(&out[0]).event_id;
    assert!(partition(id).await.ends_with("events_default"));
    store
        .maintain(month + time::Duration::days(31 * 3))
        .await
        .unwrap();
    assert!(
        partition(id).await.ends_with(&format!(
            "events_p{:04}_{:02}",
            far.year(),
            far.month() as u8
        )),
        "moved into its month"
    );
    assert!(store.get_event(&t, id).await.unwrap().is_some());
}

/// Makes the database itself refuse events of type `poison`, as a real
/// constraint or a full disk might refuse one request's rows.
async fn refuse_poison(b: &StoreUnderTest) {
    match (b.data_dir(), &b.backend) {
        (Some(dir), _) => {
            let conn = rusqlite::Connection::open(dir.join(sqlite::DB_FILE)).unwrap();
            conn.execute_batch(
                "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.event_type = 'poison' \
                 BEGIN SELECT RAISE(ABORT, 'poison refused'); END;",
            )
            .unwrap();
        }
        (_, Backend::Postgres(schema)) => {
            let client = schema.client().await;
            client
                .batch_execute(&format!(
                    "CREATE FUNCTION \"{s}\".poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN IF NEW.event_type = 'poison' THEN RAISE EXCEPTION 'poison refused'; END IF; RETURN NEW; END $$; \
                     CREATE TRIGGER poison BEFORE INSERT ON \"{s}\".events FOR EACH ROW EXECUTE FUNCTION \"{s}\".poison();",
                    s = schema.name
                ))
                .await
                .unwrap();
        }
        _ => unreachable!(),
    }
}

async fn a_request_the_database_refuses_fails_alone_in_its_group_commit(b: StoreUnderTest) {
    refuse_poison(&b).await;
    let t = tenant("acme");
    // A large request first keeps the writer busy, so the ones after it
    // queue up and share the next group commit.
    let big = b.store.clone();
    let big_events: Vec<_> = (0..2000)
        .map(|i| {
            event(
                &t,
                json!({"event_type": "x", "category": "system", "data": {"i": i}}),
            )
        })
        .collect();
    let first = tokio::spawn(async move { big.append(big_events).await });
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, t) = (b.store.clone(), t.clone());
        let ty = if i == 3 { "poison" } else { "y" };
        tasks.push(tokio::spawn(async move {
            store
                .append(vec![
                    event(&t, json!({"event_type": "y", "category": "system", "idempotency_key": format!("k{i}")})),
                    event(&t, json!({"event_type": ty, "category": "system", "data": {"i": i}})),
                ])
                .await
        }));
    }
    assert_eq!(first.await.unwrap().unwrap().len(), 2000, "{}", b.name);
    for (i, task) in tasks.into_iter().enumerate() {
        let r = task.await.unwrap();
        if i == 3 {
            assert!(r.is_err(), "{}: the refused request fails", b.name);
        } else {
            let out = r.unwrap_or_else(|e| {
                panic!("{}: request {i} failed with its neighbour: {e}", b.name)
            });
            assert!(out.iter().all(|o| matches!(o, AppendOutcome::Stored(_))));
        }
    }
    let page = b
        .store
        .query_events(
            &t,
            &EventQuery {
                limit: 100,
                ..EventQuery::new(EventFilter {
                    event_types: vec!["y".into()],
                    ..Default::default()
                })
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.total, 14,
        "{}: nothing of the refused request is stored, all else is",
        b.name
    );
    // Its idempotency key was not kept: sending it again stores it.
    let again = b
        .store
        .append(vec![event(
            &t,
            json!({"event_type": "y", "category": "system", "idempotency_key": "k3"}),
        )])
        .await
        .unwrap();
    assert!(matches!(again[0], AppendOutcome::Stored(_)), "{}", b.name);
}

async fn complete_pending_processes_each_pending_event_once_with_its_notification(
    b: StoreUnderTest,
) {
    let t = tenant("acme");
    let out = b
        .store
        .append(
            (0..5)
                .map(|i| {
                    event(
                        &t,
                        json!({"event_type": "x", "category": "system", "data": {"i": i}}),
                    )
                })
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(
        b.store.complete_pending(3, true, now()).await.unwrap(),
        3,
        "{}",
        b.name
    );
    assert_eq!(
        b.store.complete_pending(10, false, now()).await.unwrap(),
        2,
        "{}",
        b.name
    );
    assert_eq!(
        b.store.complete_pending(10, true, now()).await.unwrap(),
        0,
        "{}",
        b.name
    );
    for o in &out {
        let got = b
            .store
            .get_event(&t, stored(o).event_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.event.status, EventStatus::Processed, "{}", b.name);
        assert_eq!(got.processing_ms, Some(0.0));
        assert!(got.processed_at.is_some());
    }
    // The oldest first, and notifications only where asked for.
    let notes = b.store.pending_lifecycle(10).await.unwrap();
    assert_eq!(
        notes
            .iter()
            .filter_map(|n| n.record.event_id)
            .collect::<Vec<_>>(),
        out[..3]
            .iter()
            .map(|o| stored(o).event_id)
            .collect::<Vec<_>>(),
        "{}",
        b.name
    );
    let payload: serde_json::Value = serde_json::from_str(&notes[0].record.payload).unwrap();
    assert_eq!(notes[0].record.kind, LifecycleKind::ProcessedSuccess);
    assert_eq!(payload["status"], "processed");
    assert_eq!(payload["event_type"], "x");
    assert_eq!(payload["tenant_id"], "acme");
}
