//! Delivery's promises that need real processes: `SIGKILL` of the `herald`
//! binary in the middle of a delivery burst loses no delivery (after a
//! restart every acknowledged event reaches the endpoint at least once,
//! retries under one `webhook-id`), and two instances sharing one
//! PostgreSQL both deliver, every delivery is made, and no delivery is ever
//! in flight twice at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use herald_testkit::receiver::WebhookReceiver;
use herald_testkit::{Backend, PgSchema, pg_url, wait_for, wait_until};
use serde_json::{Value, json};

use crate::binary;
use crate::delivery_kit::{event_id_of, events, ingest, subscribe, webhook_id};

/// Batches of 20 each of the four writers sends at most: enough that the
/// burst is still going when deliveries are first seen in flight (the kill
/// comes then, and cuts the writers off), bounded all the same.
const BURST_BATCHES: usize = 250;

herald_testkit::on_each_backend!(sigkill_during_a_delivery_burst_loses_no_delivery);

/// The settings every instance here runs with: local endpoints allowed,
/// quick polling, and a short attempt timeout, so the lease of a delivery
/// a killed instance held (twice the timeout) runs out soon.
fn delivery_env(store: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    let mut env = store;
    env.extend([
        (
            "HERALD_DELIVERY_ALLOWED_NETWORKS",
            "127.0.0.0/8".to_string(),
        ),
        ("HERALD_WORKER_IDLE_MS", "20".to_string()),
        ("HERALD_DELIVERY_TIMEOUT_SECS", "2".to_string()),
    ]);
    env
}

async fn sigkill_during_a_delivery_burst_loses_no_delivery(backend: Backend) {
    let mut receiver = WebhookReceiver::start().await;
    // A slow endpoint, so deliveries are in flight when the kill comes.
    receiver.answer_after(Duration::from_millis(10));
    let dir = tempfile::tempdir().unwrap();
    let env = delivery_env(backend.env());
    let (mut child, base) = binary::start_with(dir.path(), &env).await;
    let client = herald_testkit::http_client();
    let key = binary::tenant(&client, &base, "crash").await;
    let sub = subscribe(
        &client,
        &base,
        &key,
        &json!({"subscriber_name": "burst", "callback_url": format!("{}/hooks", receiver.url),
                "event_types": ["burst.*"], "retry_policy": {"schedule": [1, 1, 1, 1, 1]}}),
    )
    .await;

    // Writers store batches of 20 until the kill stops them (at most 60
    // batches each).
    let acked_batches = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (client, base, key, acked_batches) = (
            client.clone(),
            base.clone(),
            key.clone(),
            acked_batches.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let batch = events("burst.tick", 20);
            for _ in 0..BURST_BATCHES {
                let Ok(res) = client
                    .post(format!("{base}/api/v1/events/batch"))
                    .bearer_auth(&key)
                    .json(&json!({ "events": batch }))
                    .send()
                    .await
                else {
                    break;
                };
                if res.status() != 201 {
                    break;
                }
                let Ok(out) = res.json::<Value>().await else {
                    break;
                };
                acked.extend(
                    out["results"]
                        .as_array()
                        .expect("results")
                        .iter()
                        .map(|r| r["event"]["event_id"].as_str().unwrap().to_string()),
                );
                acked_batches.fetch_add(1, Ordering::Relaxed);
            }
            acked
        }));
    }
    // Kill while events are still coming in and deliveries are in flight.
    wait_until(
        "deliveries in flight, with more events coming",
        Duration::from_secs(60),
        || async {
            let counts = receiver.counts();
            let batches = acked_batches.load(Ordering::Relaxed);
            if batches >= 20 && counts.total >= 50 && counts.in_flight > 0 {
                return true;
            }
            assert!(
                batches < 4 * BURST_BATCHES,
                "the writers finished before a delivery was seen in flight ({counts:?})"
            );
            false
        },
    )
    .await;
    child.start_kill().expect("SIGKILL");
    child.wait().await.unwrap();
    let seen_before_kill = receiver.counts().total;
    let mut acked = BTreeSet::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }

    let (mut child, _base) = binary::start_with(dir.path(), &env).await;
    // Every acknowledged event arrives, each under one webhook-id however
    // often it is sent.
    let mut webhook_ids: HashMap<String, String> = HashMap::new();
    let mut requests = 0usize;
    while !acked.iter().all(|id| webhook_ids.contains_key(id)) {
        let missing = acked
            .iter()
            .filter(|id| !webhook_ids.contains_key(*id))
            .count();
        let r = receiver
            .next(
                &format!("the last {missing} acknowledged events"),
                Duration::from_secs(60),
            )
            .await;
        requests += 1;
        let event = event_id_of(&r, &sub.secret);
        let first = webhook_ids
            .entry(event.clone())
            .or_insert_with(|| webhook_id(&r));
        assert_eq!(*first, webhook_id(&r), "{event} sent under two webhook-ids");
    }
    eprintln!(
        "delivery crash test: {} acknowledged, {seen_before_kill} requests before the kill, \
         {requests} in all, {} distinct events delivered",
        acked.len(),
        webhook_ids.len()
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_never_send_a_delivery_twice_at_once() {
    const EVENTS: usize = 300;
    let Some(url) = pg_url() else { return };
    let schema = PgSchema::new(&url);
    let mut receiver = WebhookReceiver::start().await;
    // Slow enough that two sends of one delivery would overlap.
    receiver.answer_after(Duration::from_millis(30));
    // Each instance names its connections, so the database can say which
    // one delivered what.
    let named = |name: &str| {
        let sep = if url.contains('?') { '&' } else { '?' };
        delivery_env(vec![
            (
                "HERALD_DATABASE_URL",
                format!("{url}{sep}application_name={name}"),
            ),
            ("HERALD_DATABASE_SCHEMA", schema.name.clone()),
            ("HERALD_DATABASE_POOL_SIZE", "4".to_string()),
        ])
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, base_a) = binary::start_with(dir_a.path(), &named("herald-a")).await;
    let (mut b, base_b) = binary::start_with(dir_b.path(), &named("herald-b")).await;
    let db = schema.client().await;
    db.batch_execute(&format!(
        "SET search_path TO \"{0}\";
         CREATE TABLE delivered_by (delivery_id text NOT NULL, instance text NOT NULL);
         CREATE FUNCTION note_delivered() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO \"{0}\".delivered_by VALUES (NEW.delivery_id, current_setting('application_name'));
             RETURN NULL;
         END $$;
         CREATE TRIGGER note_delivered AFTER UPDATE OF state ON deliveries FOR EACH ROW
             WHEN (NEW.state = 'delivered' AND OLD.state <> 'delivered')
             EXECUTE FUNCTION note_delivered();",
        schema.name
    ))
    .await
    .unwrap();

    let client = herald_testkit::http_client();
    let key = binary::tenant(&client, &base_a, "acme").await;
    let sub = subscribe(
        &client,
        &base_a,
        &key,
        &json!({"subscriber_name": "shared", "callback_url": format!("{}/hooks", receiver.url),
                "event_types": ["order.*"]}),
    )
    .await;
    // Half the events through each instance.
    let all = events("order.created", EVENTS);
    let mut expected = BTreeSet::new();
    for (i, chunk) in all.chunks(50).enumerate() {
        let base = if i % 2 == 0 { &base_a } else { &base_b };
        expected.extend(ingest(&client, base, &key, chunk).await);
    }

    let mut got = BTreeSet::new();
    for n in 0..EVENTS {
        let r = receiver
            .next(
                &format!("delivery {n} of {EVENTS}"),
                Duration::from_secs(60),
            )
            .await;
        assert!(
            got.insert(event_id_of(&r, &sub.secret)),
            "an event delivered twice: {r:?}"
        );
    }
    assert_eq!(got, expected, "every delivery made");
    let counts = receiver.counts();
    assert_eq!(
        counts.max_in_flight_per_id, 1,
        "no webhook-id in flight twice at once: {counts:?}"
    );
    assert!(
        counts.max_in_flight > 1,
        "deliveries did overlap each other, so overlap would have shown: {counts:?}"
    );

    // The receipt comes before the instance records the delivery as made.
    let sql = format!(
        "SELECT instance, count(*), count(DISTINCT delivery_id) FROM \"{}\".delivered_by \
         GROUP BY instance ORDER BY instance",
        schema.name
    );
    let by_instance = wait_for(
        "every delivery recorded as made",
        Duration::from_secs(30),
        || async {
            let rows = db.query(&sql, &[]).await.unwrap();
            let by_instance: Vec<(String, i64, i64)> = rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            if by_instance.iter().map(|(_, n, _)| n).sum::<i64>() >= EVENTS as i64 {
                Ok(by_instance)
            } else {
                Err(format!("{by_instance:?}"))
            }
        },
    )
    .await;
    assert!(
        by_instance.len() == 2
            && by_instance[0].0 == "herald-a"
            && by_instance[1].0 == "herald-b"
            && by_instance.iter().all(|(_, n, d)| *n > 0 && n == d)
            && by_instance.iter().map(|(_, n, _)| n).sum::<i64>() == EVENTS as i64,
        "both instances delivered, each delivery once: {by_instance:?}"
    );
    for child in [&mut a, &mut b] {
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }
}
