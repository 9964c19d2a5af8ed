//! Two real Herald processes on one PostgreSQL: each sees what the other
//! stored, an idempotency key sent to both is stored once, no event is
//! processed twice, a definition registered on one is enforced by the
//! other, and (with NATS) one of them publishes each event exactly once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::binary;
use crate::services::{NatsStream, PgSchema, nats_url, pg_url};

async fn json_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_postgres_store() {
    let Some(url) = pg_url() else { return };
    let schema = PgSchema::new(&url);
    let nats = match nats_url() {
        Some(u) => Some((NatsStream::new(&u).await, u)),
        None => None,
    };
    let mut env = vec![
        ("HERALD_DATABASE_URL", url.clone()),
        ("HERALD_DATABASE_SCHEMA", schema.name.clone()),
        ("HERALD_DATABASE_POOL_SIZE", "4".to_string()),
        ("HERALD_REGISTRY_REFRESH_MS", "100".to_string()),
        ("HERALD_WORKER_IDLE_MS", "20".to_string()),
    ];
    if let Some((stream, u)) = &nats {
        env.push(("HERALD_NATS_URL", u.clone()));
        env.push(("HERALD_NATS_STREAM", stream.name.clone()));
        env.push(("HERALD_NATS_SUBJECT_PREFIX", stream.prefix.clone()));
    }
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, base_a) = binary::start_with(dir_a.path(), &env).await;
    let (mut b, base_b) = binary::start_with(dir_b.path(), &env).await;
    let client = reqwest::Client::new();
    let health: Value = client
        .get(format!("{base_b}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["store"], "postgres");

    // A tenant made through A has a key B accepts.
    let key = binary::tenant(&client, &base_a, "acme").await;

    // Four writers, two per instance, each sending the same 30 idempotency
    // keys plus 30 events of their own.
    let mut writers = Vec::new();
    for w in 0..4 {
        let base = if w % 2 == 0 {
            base_a.clone()
        } else {
            base_b.clone()
        };
        let (client, key) = (client.clone(), key.clone());
        writers.push(tokio::spawn(async move {
            let mut keyed = Vec::new();
            let mut own = Vec::new();
            for i in 0..30 {
                for (body, into) in [
                    (
                        json!({"event_type": "order.created", "category": "business",
                               "idempotency_key": format!("k{i}"), "data": {"writer": w}}),
                        &mut keyed,
                    ),
                    (
                        json!({"event_type": "x", "category": "system", "data": {"writer": w, "i": i}}),
                        &mut own,
                    ),
                ] {
                    let res = client
                        .post(format!("{base}/api/v1/events/create"))
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let (status, body) = json_of(res).await;
                    assert!(status == 201 || status == 200, "{status} {body}");
                    into.push((i, body["event_id"].as_str().unwrap().to_string()));
                }
            }
            (keyed, own)
        }));
    }
    let mut by_key: HashMap<usize, HashSet<String>> = HashMap::new();
    let mut own = Vec::new();
    for w in writers {
        let (keyed, mine) = w.await.unwrap();
        for (i, id) in keyed {
            by_key.entry(i).or_default().insert(id);
        }
        own.extend(mine.into_iter().map(|(_, id)| id));
    }
    assert!(
        by_key.values().all(|ids| ids.len() == 1),
        "each key answered with one event id by both instances: {by_key:?}"
    );
    let expected = 30 + own.len();

    // Both instances see every event.
    for base in [&base_a, &base_b] {
        let all = binary::all_events(&client, base, &key).await;
        assert_eq!(all.len(), expected, "{base}");
    }
    for id in own.iter().take(20) {
        for base in [&base_a, &base_b] {
            let res = client
                .get(format!("{base}/api/v1/events/{id}"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{id} through {base}");
        }
    }

    // Both workers run; every event ends processed, each exactly once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let res = client
            .post(format!("{base_b}/api/v1/events/query"))
            .bearer_auth(&key)
            .json(&json!({"status": ["pending", "processing"], "limit": 1}))
            .send()
            .await
            .unwrap();
        let (_, page) = json_of(res).await;
        if page["total"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still unprocessed: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let db = schema.client().await;
    let rows = db
        .query(
            &format!(
                "SELECT attempts, count(*) FROM \"{}\".events GROUP BY attempts",
                schema.name
            ),
            &[],
        )
        .await
        .unwrap();
    let attempts: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        attempts,
        vec![(1, expected as i64)],
        "every event claimed exactly once across both instances"
    );

    // A definition registered through A is enforced by B.
    let res = client
        .post(format!("{base_a}/api/v1/event-definitions"))
        .bearer_auth(&key)
        .json(
            &json!({"event_type": "payment.*", "category": "business", "name": "Payments",
                      "payload_schema": {"type": "object", "required": ["amount"],
                                         "properties": {"amount": {"type": "integer"}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let res = client
            .post(format!("{base_b}/api/v1/events/create"))
            .bearer_auth(&key)
            .json(&json!({"event_type": "payment.taken", "category": "business", "data": {"amount": "lots"}}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        if status == 400 {
            assert_eq!(body["errors"][0]["field"], "/data/amount", "{body}");
            break;
        }
        assert_eq!(status, 201);
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never saw A's definition"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // With NATS: one instance at a time publishes, each stored event once.
    if let Some((stream, _)) = &nats {
        let stored = binary::all_events(&client, &base_a, &key).await;
        let events = stream.wait_for("events.>", stored.len()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let events_again = stream.read("events.>").await;
        assert_eq!(events_again.len(), stored.len(), "no event published twice");
        let published: HashSet<&str> = events.iter().map(|m| m.msg_id.as_str()).collect();
        let stored_ids: HashSet<&str> = stored
            .iter()
            .filter_map(|e| e["event_id"].as_str())
            .collect();
        assert_eq!(published, stored_ids);
    }

    for child in [&mut a, &mut b] {
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }
}
