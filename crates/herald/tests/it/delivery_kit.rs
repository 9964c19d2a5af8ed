//! The test's side of webhook delivery, shared by the delivery suites:
//! subscribe and ingest over plain HTTP (so the in-process server and the
//! real binary alike), read a delivery the receiver got (verified, by
//! Herald's verifier and the official Standard Webhooks library), and read
//! what the server's own store recorded about its deliveries.

use std::time::Duration;

use herald_testkit::receiver::Received;
use herald_testkit::{Backend, TestApp};
use herald_workers::delivery::signature::WebhookSecret;
use serde_json::{Value, json};

use crate::delivery::verified;

/// A subscription as its 201 showed it.
#[derive(Debug)]
pub(crate) struct Subscribed {
    pub(crate) id: String,
    pub(crate) secret: WebhookSecret,
}

/// Subscribes with `body` through `base` (which must answer 201).
pub(crate) async fn subscribe(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    body: &Value,
) -> Subscribed {
    let res = client
        .post(format!("{base}/api/v1/events/subscriptions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("subscribe");
    let status = res.status();
    let created: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "subscribe {body}: {created}");
    Subscribed {
        id: created["subscription_id"]
            .as_str()
            .expect("subscription_id")
            .to_string(),
        secret: WebhookSecret::parse(created["webhook_secret"].as_str().expect("secret"))
            .expect("a valid secret"),
    }
}

/// Stores `events` through `base` in batches of 100 and returns their
/// event ids, in order; panics unless every one is stored.
pub(crate) async fn ingest(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    events: &[Value],
) -> Vec<String> {
    let mut ids = Vec::with_capacity(events.len());
    for chunk in events.chunks(100) {
        let res = client
            .post(format!("{base}/api/v1/events/batch"))
            .bearer_auth(key)
            .json(&json!({ "events": chunk }))
            .send()
            .await
            .expect("batch");
        let status = res.status();
        let out: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 201, "batch: {out}");
        ids.extend(out["results"].as_array().expect("results").iter().map(|r| {
            r["event"]["event_id"]
                .as_str()
                .expect("event_id")
                .to_string()
        }));
    }
    ids
}

/// `n` events of `event_type`, numbered in `data.i`.
pub(crate) fn events(event_type: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"event_type": event_type, "category": "business", "data": {"i": i}}))
        .collect()
}

/// The id of the event a verified delivery carries.
pub(crate) fn event_id_of(r: &Received, secret: &WebhookSecret) -> String {
    verified(r, secret)["event_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no event id in {r:?}"))
        .to_string()
}

/// The `webhook-id` of a delivery.
pub(crate) fn webhook_id(r: &Received) -> String {
    r.header("webhook-id")
        .unwrap_or_else(|| panic!("no webhook-id: {r:?}"))
        .to_string()
}

/// Rows of a query over the server's own database, each column as text:
/// what the store recorded, which no endpoint can show (attempts it never
/// got), for conditions and for failure messages.
pub(crate) async fn store_rows(app: &TestApp, sql: &str) -> Vec<Vec<String>> {
    match &app.backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open_with_flags(
                app.data_dir.path().join("herald.db"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .expect("open the server's database");
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            let mut stmt = conn.prepare(sql).expect("prepare");
            let columns = stmt.column_count();
            stmt.query_map([], |row| {
                (0..columns)
                    .map(|i| {
                        row.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect()
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
        }
        Backend::Postgres(schema) => {
            let db = schema.client().await;
            db.batch_execute(&format!("SET search_path TO \"{}\"", schema.name))
                .await
                .unwrap();
            // The simple protocol answers every column as text.
            db.simple_query(sql)
                .await
                .expect("query")
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                        (0..r.len())
                            .map(|i| r.get(i).unwrap_or("NULL").to_string())
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()
        }
    }
}

/// The deliveries by state, attempts and last error, as the store has them.
pub(crate) async fn delivery_states(app: &TestApp) -> String {
    format!(
        "{:?}",
        store_rows(
            app,
            "SELECT state, attempts, last_error_class, count(*) FROM deliveries \
             GROUP BY state, attempts, last_error_class ORDER BY state, attempts",
        )
        .await
    )
}
