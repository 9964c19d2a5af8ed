//! Two real Herald processes on one PostgreSQL: each sees what the other
//! stored, an idempotency key sent to both is stored once, both workers
//! process events and no event is processed twice, a definition registered
//! on one is enforced by the other, and (with NATS) each event is published
//! exactly once, in each tenant's commit order.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use herald_testkit::{NatsStream, PgSchema, nats_url, pg_url, wait_for, wait_until};
use serde_json::{Value, json};

use crate::binary;

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
    // Each instance names its connections, so the database can say which
    // one processed an event.
    let named = |name: &str| {
        let sep = if url.contains('?') { '&' } else { '?' };
        let mut env = env.clone();
        env.push((
            "HERALD_DATABASE_URL",
            format!("{url}{sep}application_name={name}"),
        ));
        env
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, base_a) = binary::start_with(dir_a.path(), &named("herald-a")).await;
    let (mut b, base_b) = binary::start_with(dir_b.path(), &named("herald-b")).await;
    let client = herald_testkit::http_client();
    let db = schema.client().await;
    db.batch_execute(&format!(
        "SET search_path TO \"{0}\";
         CREATE TABLE processed_by (event_id uuid NOT NULL, instance text NOT NULL);
         CREATE FUNCTION note_processed() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO \"{0}\".processed_by VALUES (NEW.event_id, current_setting('application_name'));
             RETURN NULL;
         END $$;
         CREATE TRIGGER note_processed AFTER UPDATE OF status ON events FOR EACH ROW
             WHEN (NEW.status = 'processed' AND OLD.status <> 'processed')
             EXECUTE FUNCTION note_processed();",
        schema.name
    ))
    .await
    .unwrap();
    let health: Value = client
        .get(format!("{base_b}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["store"], "postgres");

    // A tenant made through A has a key B accepts, and the other way round.
    let key = binary::tenant(&client, &base_a, "acme").await;
    let other_key = binary::tenant(&client, &base_b, "globex").await;

    // Four writers, two per instance, each sending the same 30 idempotency
    // keys plus 30 events of their own, and 30 events of the other tenant.
    // Each writer waits for every answer, so its own events (of either
    // tenant) must reach NATS in the order it sent them.
    let mut writers = Vec::new();
    for w in 0..4 {
        let base = if w % 2 == 0 {
            base_a.clone()
        } else {
            base_b.clone()
        };
        let (client, key, other_key) = (client.clone(), key.clone(), other_key.clone());
        writers.push(tokio::spawn(async move {
            let mut keyed = Vec::new();
            let mut own = Vec::new();
            let mut other = Vec::new();
            for i in 0..30 {
                for (key, body, into) in [
                    (
                        &key,
                        json!({"event_type": "order.created", "category": "business",
                               "idempotency_key": format!("k{i}"), "data": {"writer": w}}),
                        &mut keyed,
                    ),
                    (
                        &key,
                        json!({"event_type": "x", "category": "system", "data": {"writer": w, "i": i}}),
                        &mut own,
                    ),
                    (
                        &other_key,
                        json!({"event_type": "y", "category": "system", "data": {"writer": w, "i": i}}),
                        &mut other,
                    ),
                ] {
                    let res = client
                        .post(format!("{base}/api/v1/events/create"))
                        .bearer_auth(key)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let (status, body) = json_of(res).await;
                    assert!(status == 201 || status == 200, "{status} {body}");
                    into.push((i, body["event_id"].as_str().unwrap().to_string()));
                }
            }
            (keyed, own, other)
        }));
    }
    let mut by_key: HashMap<usize, HashSet<String>> = HashMap::new();
    let mut own = Vec::new();
    // Per writer, per tenant: the ids it stored, in the order it sent them.
    let mut sent_by_writer: Vec<Vec<String>> = Vec::new();
    let mut other_sent_by_writer: Vec<Vec<String>> = Vec::new();
    for w in writers {
        let (keyed, mine, other) = w.await.unwrap();
        // Not the keyed ones: a repeated key answers with whichever
        // writer's event came first.
        sent_by_writer.push(mine.iter().map(|(_, id)| id.clone()).collect());
        other_sent_by_writer.push(other.into_iter().map(|(_, id)| id).collect());
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
    let other_expected: usize = other_sent_by_writer.iter().map(Vec::len).sum();

    // Both instances see every event.
    for base in [&base_a, &base_b] {
        let all = binary::all_events(&client, base, &key).await;
        assert_eq!(all.len(), expected, "{base}");
        let all = binary::all_events(&client, base, &other_key).await;
        assert_eq!(all.len(), other_expected, "{base}");
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
    wait_for("every event processed", Duration::from_secs(30), || async {
        let res = client
            .post(format!("{base_b}/api/v1/events/query"))
            .bearer_auth(&key)
            .json(&json!({"status": ["pending", "processing"], "limit": 1}))
            .send()
            .await
            .unwrap();
        let (_, page) = json_of(res).await;
        if page["total"] == 0 {
            Ok(())
        } else {
            Err(format!("still unprocessed: {page}"))
        }
    })
    .await;
    let all_events = (expected + other_expected) as i64;
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
        vec![(1, all_events)],
        "every event claimed exactly once across both instances"
    );
    let rows = db
        .query(
            &format!(
                "SELECT instance, count(*), count(DISTINCT event_id) FROM \"{}\".processed_by \
                 GROUP BY instance ORDER BY instance",
                schema.name
            ),
            &[],
        )
        .await
        .unwrap();
    let by_instance: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(
        by_instance.len() == 2
            && by_instance[0].0 == "herald-a"
            && by_instance[1].0 == "herald-b"
            && by_instance
                .iter()
                .all(|(_, n, distinct)| *n > 0 && n == distinct)
            && by_instance.iter().map(|(_, n, _)| n).sum::<i64>() == all_events,
        "both instances processed events, each event once: {by_instance:?}"
    );
    let twice: i64 = db
        .query_one(
            &format!(
                "SELECT count(*) FROM (SELECT event_id FROM \"{}\".processed_by \
                 GROUP BY event_id HAVING count(*) > 1) d",
                schema.name
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(twice, 0, "no event processed by both");

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
    wait_until(
        "B to enforce A's definition",
        Duration::from_secs(10),
        || async {
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
                return true;
            }
            assert_eq!(status, 201);
            false
        },
    )
    .await;

    // With NATS: one instance at a time publishes, each stored event once,
    // and each tenant's events in its commit order (`seq`), whichever
    // instance stored them; so each writer's events in the order it sent them.
    if let Some((stream, _)) = &nats {
        let total = binary::all_events(&client, &base_a, &key).await.len()
            + binary::all_events(&client, &base_b, &other_key).await.len();
        stream.wait_for("events.>", total).await;
        // An event stored after all of these, in a tenant of its own: events
        // go out in commit order, so once it is there every earlier one is,
        // and the count is exact.
        let sentinel_key = binary::tenant(&client, &base_a, "sentinel").await;
        let res = client
            .post(format!("{base_a}/api/v1/events/create"))
            .bearer_auth(&sentinel_key)
            .json(&json!({"event_type": "sentinel", "category": "system"}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(status, 201, "{body}");
        let sentinel = body["event_id"].as_str().unwrap();
        let events = stream.wait_for_event("events.>", sentinel).await;
        assert_eq!(events.len(), total + 1, "no event published twice");
        assert_eq!(events.last().unwrap().msg_id, sentinel);
        for (key, writers) in [(&key, &sent_by_writer), (&other_key, &other_sent_by_writer)] {
            let stored = binary::all_events(&client, &base_b, key).await;
            let tenant = stored[0]["tenant_id"].as_str().unwrap().to_string();
            let published: Vec<&str> = events
                .iter()
                .filter(|m| {
                    m.subject
                        .starts_with(&format!("{}.events.{tenant}.", stream.prefix))
                })
                .map(|m| m.msg_id.as_str())
                .collect();
            let commit_order: Vec<String> = db
                .query(
                    &format!(
                        "SELECT event_id::text FROM \"{}\".events WHERE tenant_id = $1 ORDER BY seq",
                        schema.name
                    ),
                    &[&tenant],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert_eq!(
                published, commit_order,
                "{tenant}: every event once, in commit order"
            );
            let stored_ids: HashSet<&str> = stored
                .iter()
                .filter_map(|e| e["event_id"].as_str())
                .collect();
            assert_eq!(
                published.iter().copied().collect::<HashSet<_>>(),
                stored_ids
            );
            for (w, sent) in writers.iter().enumerate() {
                let seen: Vec<&str> = published
                    .iter()
                    .copied()
                    .filter(|id| sent.iter().any(|s| s == id))
                    .collect();
                assert_eq!(
                    seen, *sent,
                    "{tenant}: writer {w}'s events in the order acknowledged"
                );
            }
        }
    }

    for child in [&mut a, &mut b] {
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }
}
