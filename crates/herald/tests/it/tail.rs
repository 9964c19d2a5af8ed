//! The live tail end to end on the real server, on both stores: new events
//! arrive as Server-Sent Events, filtered like a query; a client that
//! reconnects with `Last-Event-ID` (while others write) gets every event
//! once, in commit order; a client that stops reading gets an `overflow`
//! event and is disconnected while another carries on; an idle stream gets
//! heartbeats; a tenant sees only its own events; on PostgreSQL an event
//! stored through a second instance reaches a tail of the first; a
//! shutdown ends open tails instead of waiting on them.

use std::time::Duration;

use herald_testkit::{Backend, Tenant, TestApp, spawn_in, spawn_on};
use serde_json::{Value, json};

herald_testkit::on_each_backend!(
    live_events_arrive_in_commit_order_and_the_filter_applies,
    stored_events_after_a_cursor_come_first,
    reconnecting_with_last_event_id_gives_no_gap_and_no_repeat,
    a_client_that_stops_reading_is_cut_off_with_an_overflow_event,
    an_idle_stream_gets_heartbeats,
    a_tenant_sees_only_its_own_events,
    bad_tail_parameters_name_every_bad_field,
    a_shutdown_ends_open_tails,
    a_followed_stream_gives_its_events_from_a_version_then_new_ones,
);

const WAIT: Duration = Duration::from_secs(20);

/// One SSE message: its fields as sent (`comments` are `:` lines).
#[derive(Debug, Default, Clone)]
struct Message {
    id: Option<String>,
    event: Option<String>,
    data: String,
    comments: Vec<String>,
}

impl Message {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    fn seq(&self) -> i64 {
        self.id.as_deref().unwrap().parse().unwrap()
    }

    fn is_event(&self) -> bool {
        self.event.as_deref() == Some("event")
    }
}

/// An open tail: the response read message by message.
struct Tail {
    res: reqwest::Response,
    buf: Vec<u8>,
}

impl Tail {
    /// `GET /api/v1/events/tail{query}`, and its first message (the
    /// cursor alone), so the tail is known to be open.
    async fn open(app: &TestApp, key: &str, query: &str, last_event_id: Option<&str>) -> Tail {
        Tail::open_at(
            app,
            key,
            &format!("/api/v1/events/tail{query}"),
            last_event_id,
        )
        .await
    }

    /// The same for any route answering as a tail (`path` with its query).
    async fn open_at(app: &TestApp, key: &str, path: &str, last_event_id: Option<&str>) -> Tail {
        let query = path;
        let mut req = app.client.get(app.url(path)).bearer_auth(key);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "{query}");
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let mut tail = Tail {
            res,
            buf: Vec::new(),
        };
        let first = tail.next().await.expect("the first message");
        assert!(first.id.is_some() && first.event.is_none(), "{first:?}");
        tail
    }

    /// The next message; `None` when the server ended the stream.
    async fn next(&mut self) -> Option<Message> {
        tokio::time::timeout(WAIT, self.next_unbounded())
            .await
            .expect("a tail message in time")
    }

    async fn next_unbounded(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8(block).unwrap();
                let mut m = Message::default();
                let mut data = Vec::new();
                for line in text.lines().filter(|l| !l.is_empty()) {
                    let (name, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match name {
                        "" => m.comments.push(value.to_string()),
                        "id" => m.id = Some(value.to_string()),
                        "event" => m.event = Some(value.to_string()),
                        "data" => data.push(value.to_string()),
                        other => panic!("unexpected SSE field {other}"),
                    }
                }
                m.data = data.join("\n");
                return Some(m);
            }
            match self.res.chunk().await {
                Ok(Some(bytes)) => self.buf.extend_from_slice(&bytes),
                Ok(None) => {
                    assert!(self.buf.is_empty(), "a torn message at the end");
                    return None;
                }
                Err(e) => panic!("the tail broke: {e}"),
            }
        }
    }

    /// The next `event` message, past heartbeats.
    async fn next_event(&mut self) -> Message {
        loop {
            let m = self.next().await.expect("the stream goes on");
            if m.event.is_none() && m.data.is_empty() {
                continue;
            }
            return m;
        }
    }

    /// The next `n` events' ids (event ids, not cursors).
    async fn event_ids(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            let m = self.next_event().await;
            assert!(m.is_event(), "{m:?}");
            out.push(m.json()["event_id"].as_str().unwrap().to_string());
        }
        out
    }
}

async fn create(app: &TestApp, t: &Tenant, body: Value) -> String {
    let (status, out) = app.create(&t.admin_key, &body).await;
    assert_eq!(status, 201, "{out}");
    out["event_id"].as_str().unwrap().to_string()
}

/// A batch of `n` events of `event_type`; their ids in order.
async fn batch(app: &TestApp, t: &Tenant, event_type: &str, n: usize, pad: usize) -> Vec<String> {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"event_type": event_type, "category": "business", "data": {"i": i, "pad": "x".repeat(pad)}}))
        .collect();
    let res = app
        .post(
            "/api/v1/events/batch",
            &t.admin_key,
            &json!({ "events": events }),
        )
        .await;
    let status = res.status();
    let out: Value = res.json().await.unwrap();
    assert!(status.is_success(), "{status} {out}");
    out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap().to_string())
        .collect()
}

async fn live_events_arrive_in_commit_order_and_the_filter_applies(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("acme").await;
    let mut tail = Tail::open(
        &app,
        &t.admin_key,
        "?event_type=order.created,order.paid",
        None,
    )
    .await;
    let a = create(
        &app,
        &t,
        json!({"event_type": "order.created", "category": "business", "data": {"n": 1}}),
    )
    .await;
    // Committed between the two others: had the filter let it through, it
    // would arrive between them.
    create(
        &app,
        &t,
        json!({"event_type": "user.login", "category": "security"}),
    )
    .await;
    let c = create(
        &app,
        &t,
        json!({"event_type": "order.paid", "category": "business"}),
    )
    .await;
    let first = tail.next_event().await;
    let second = tail.next_event().await;
    assert!(first.is_event() && second.is_event());
    assert_eq!(first.json()["event_id"], json!(a));
    assert_eq!(second.json()["event_id"], json!(c));
    assert!(first.seq() < second.seq());
    // The data is the event as GET answers it, but for what processing
    // changed since the commit.
    let mut got: Value = app
        .get(&format!("/api/v1/events/{a}"), &t.admin_key)
        .await
        .json()
        .await
        .unwrap();
    let mut sent = first.json();
    assert_eq!(sent["status"], "pending");
    for v in [&mut got, &mut sent] {
        let o = v.as_object_mut().unwrap();
        for k in ["status", "processed_at", "processing_ms"] {
            o.remove(k);
        }
    }
    assert_eq!(sent, got);
}

async fn stored_events_after_a_cursor_come_first(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("acme").await;
    let stored = batch(&app, &t, "order.created", 5, 0).await;
    create(
        &app,
        &t,
        json!({"event_type": "user.login", "category": "security"}),
    )
    .await;
    // Everything stored (`after=0`), filtered, then the live events.
    let mut all = Tail::open(
        &app,
        &t.admin_key,
        "?after=0&event_type=order.created",
        None,
    )
    .await;
    assert_eq!(all.event_ids(5).await, stored);
    let live = create(
        &app,
        &t,
        json!({"event_type": "order.created", "category": "business"}),
    )
    .await;
    assert_eq!(all.event_ids(1).await, vec![live.clone()]);
    // From now: only what commits after the request.
    let mut now = Tail::open(&app, &t.admin_key, "", None).await;
    let next = create(
        &app,
        &t,
        json!({"event_type": "order.created", "category": "business"}),
    )
    .await;
    assert_eq!(now.event_ids(1).await, vec![next]);
}

async fn reconnecting_with_last_event_id_gives_no_gap_and_no_repeat(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("acme").await;
    let mut tail = Tail::open(&app, &t.admin_key, "", None).await;
    let first = batch(&app, &t, "order.created", 2, 0).await;
    let e1 = tail.next_event().await;
    assert_eq!(e1.json()["event_id"], json!(first[0]));
    drop(tail);
    // Committed while it is away.
    let away = batch(&app, &t, "order.created", 3, 0).await;
    let mut back = Tail::open(&app, &t.admin_key, "?after=0", e1.id.as_deref()).await;
    let mut expected = vec![first[1].clone()];
    expected.extend(away);
    assert_eq!(back.event_ids(4).await, expected);
    let later = create(
        &app,
        &t,
        json!({"event_type": "order.created", "category": "business"}),
    )
    .await;
    assert_eq!(back.event_ids(1).await, vec![later]);
    drop(back);

    // Reconnecting again and again while a writer goes on: every event
    // once, in commit order.
    let writer = {
        let (client, url, key) = (
            app.client.clone(),
            app.url("/api/v1/events/batch"),
            t.admin_key.clone(),
        );
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for b in 0..30 {
                let events: Vec<Value> = (0..10)
                    .map(|i| json!({"event_type": "load.tick", "category": "system", "data": {"b": b, "i": i}}))
                    .collect();
                let out: Value = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({ "events": events }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                ids.extend(
                    out["results"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["event_id"].as_str().unwrap().to_string()),
                );
            }
            ids
        })
    };
    let mut seen = Vec::new();
    let mut last: Option<String> = None;
    while seen.len() < 300 {
        let mut tail = Tail::open(
            &app,
            &t.admin_key,
            "?after=0&event_type=load.tick",
            last.as_deref(),
        )
        .await;
        for _ in 0..7 {
            if seen.len() == 300 {
                break;
            }
            let m = tail.next_event().await;
            assert!(m.is_event(), "{m:?}");
            seen.push((m.seq(), m.json()["event_id"].as_str().unwrap().to_string()));
            last = m.id.clone();
        }
    }
    let written = writer.await.unwrap();
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "commit order, no repeat"
    );
    let ids: Vec<String> = seen.into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids, written, "every event once, in the order written");
}

async fn a_client_that_stops_reading_is_cut_off_with_an_overflow_event(backend: Backend) {
    let app = spawn_on(backend, |c| c.tail_buffer_events = 8).await;
    let t = app.tenant("acme").await;
    let mut fast = Tail::open(&app, &t.admin_key, "", None).await;
    let mut slow = Tail::open(&app, &t.admin_key, "", None).await;
    // Far more than the socket buffers between the server and a client
    // that reads nothing hold (a few MB), so its channel fills.
    let (batches, per_batch) = (10, 100);
    let reader = tokio::spawn(async move { fast.event_ids(batches * per_batch).await });
    let mut written = Vec::new();
    for _ in 0..batches {
        written.extend(batch(&app, &t, "bulk.row", per_batch, 24 * 1024).await);
    }
    // The fast client gets everything, so the hub has handed out every
    // event (and given up on the slow one) before the slow one reads.
    assert_eq!(reader.await.unwrap(), written);
    let mut got = Vec::new();
    let overflow = loop {
        let m = slow.next().await.expect("an overflow event before the end");
        match m.event.as_deref() {
            Some("event") => got.push(m),
            Some("overflow") => break m,
            _ => {}
        }
    };
    assert!(got.len() < written.len(), "it was cut off before the end");
    let last_id = got.last().map(|m| m.id.clone().unwrap());
    let body = overflow.json();
    assert!(
        body["reason"].as_str().unwrap().contains("8 events behind"),
        "{body}"
    );
    if let Some(last) = &last_id {
        assert_eq!(body["resume_after"].as_str(), Some(last.as_str()));
        assert_eq!(overflow.id.as_ref(), Some(last));
    }
    assert!(
        slow.next().await.is_none(),
        "disconnected after the overflow event"
    );
    // Resuming from there gives the rest, without a gap.
    let mut resumed = Tail::open(&app, &t.admin_key, "", overflow.id.as_deref()).await;
    let rest = resumed.event_ids(written.len() - got.len()).await;
    let ids: Vec<String> = got
        .iter()
        .map(|m| m.json()["event_id"].as_str().unwrap().to_string())
        .chain(rest)
        .collect();
    assert_eq!(ids, written);
}

async fn an_idle_stream_gets_heartbeats(backend: Backend) {
    let app = spawn_on(backend, |c| c.tail_heartbeat_ms = 200).await;
    let t = app.tenant("acme").await;
    let mut tail = Tail::open(&app, &t.admin_key, "", None).await;
    for _ in 0..2 {
        let m = tail.next().await.expect("the stream stays open");
        assert_eq!(m.comments, vec!["heartbeat".to_string()], "{m:?}");
        assert!(m.id.is_none() && m.event.is_none());
    }
    // And events still come after them.
    let id = create(
        &app,
        &t,
        json!({"event_type": "order.created", "category": "business"}),
    )
    .await;
    assert_eq!(tail.event_ids(1).await, vec![id]);
}

async fn a_tenant_sees_only_its_own_events(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let (acme, globex) = (app.tenant("acme").await, app.tenant("globex").await);
    let theirs = batch(&app, &globex, "order.created", 3, 0).await;
    let mut stored = Tail::open(&app, &acme.admin_key, "?after=0", None).await;
    let mut live = Tail::open(&app, &acme.admin_key, "?event_type=order.created", None).await;
    let mut other = Tail::open(&app, &globex.admin_key, "", None).await;
    batch(&app, &globex, "order.created", 3, 0).await;
    // Committed after the other tenant's: had those come through, they
    // would come first.
    let mine = create(
        &app,
        &acme,
        json!({"event_type": "order.created", "category": "business"}),
    )
    .await;
    assert_eq!(stored.event_ids(1).await, vec![mine.clone()]);
    assert_eq!(live.event_ids(1).await, vec![mine]);
    let seen = other.event_ids(3).await;
    assert!(
        seen.iter().all(|id| !theirs.contains(id)),
        "only the new ones"
    );
    // Their events are not readable by id either way; the stream names
    // the tenant of each event it sends.
    let m = Tail::open(&app, &globex.admin_key, "?after=0", None)
        .await
        .next_event()
        .await;
    assert_eq!(
        m.json()["tenant_id"].as_str(),
        Some(globex.tenant_id.as_str())
    );
}

async fn bad_tail_parameters_name_every_bad_field(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("acme").await;
    let res = app
        .get(
            "/api/v1/events/tail?q=red&status=pending&event_source=carrier-pigeon&after=-1&bogus=1&actor=%7Bnot",
            &t.admin_key,
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: Value = res.json().await.unwrap();
    let mut fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        vec![
            "/actor",
            "/after",
            "/bogus",
            "/event_source",
            "/q",
            "/status"
        ],
        "{body}"
    );
    let res = app
        .client
        .get(app.url("/api/v1/events/tail"))
        .bearer_auth(&t.admin_key)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "/Last-Event-ID");
    // The same filter errors as a query, for the same value.
    let query: Value = app
        .post(
            "/api/v1/events/query",
            &t.admin_key,
            &json!({"event_source": "carrier-pigeon"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let tail: Value = app
        .get(
            "/api/v1/events/tail?event_source=carrier-pigeon",
            &t.admin_key,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tail["errors"], query["errors"], "{tail} {query}");
    // An ingest-only key may not read.
    let ingest = app.key(&t, &["ingest"]).await;
    assert_eq!(app.get("/api/v1/events/tail", &ingest).await.status(), 403);
}

async fn a_shutdown_ends_open_tails(backend: Backend) {
    let app = spawn_on(backend, |c| c.shutdown_grace_secs = 60).await;
    let t = app.tenant("acme").await;
    let mut tail = Tail::open(&app, &t.admin_key, "", None).await;
    let stopped = tokio::spawn(app.stop());
    assert!(tail.next().await.is_none(), "the stream ends");
    tokio::time::timeout(WAIT, stopped)
        .await
        .expect("the server stops without waiting out the grace period")
        .unwrap()
        .unwrap();
}

/// Two instances on one PostgreSQL: an event stored through the second
/// reaches a tail of the first (through the hub's poll of the commit log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stored_through_another_instance_reaches_the_tail() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let Backend::Postgres(schema) = &backend else {
        unreachable!()
    };
    let (url, name) = (schema.url.clone(), schema.name.clone());
    let first = spawn_on(backend, |_| {}).await;
    let second = spawn_in(tempfile::tempdir().unwrap(), Backend::Sqlite, |c| {
        c.database_url = Some(herald_server::config::Secret(url));
        c.database_schema = name;
        c.database_pool_size = 4;
    })
    .await;
    let t = first.tenant("acme").await;
    let mut tail = Tail::open(&first, &t.admin_key, "", None).await;
    let id = create(
        &second,
        &t,
        json!({"event_type": "order.created", "category": "business"}),
    )
    .await;
    assert_eq!(tail.event_ids(1).await, vec![id]);
}

async fn a_followed_stream_gives_its_events_from_a_version_then_new_ones(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("acme").await;
    let on = |stream: &str, n: u64| json!({"event_type": "order.updated", "category": "business", "stream_id": stream, "data": {"n": n}});
    for n in 1..=3 {
        create(&app, &t, on("order:1", n)).await;
    }
    create(&app, &t, on("order:2", 1)).await;
    let mut tail = Tail::open_at(
        &app,
        &t.admin_key,
        "/api/v1/events/stream/order:1?follow=true&from_version=2",
        None,
    )
    .await;
    let version = |m: Message| {
        assert!(m.is_event(), "{m:?}");
        let e = m.json();
        assert_eq!(e["stream_id"], "order:1", "{e}");
        e["stream_version"].as_u64().unwrap()
    };
    assert_eq!(version(tail.next_event().await), 2);
    assert_eq!(version(tail.next_event().await), 3);
    // Another stream's event committed in between would come before v4.
    create(&app, &t, on("order:2", 2)).await;
    create(&app, &t, on("order:1", 4)).await;
    assert_eq!(version(tail.next_event().await), 4);

    // follow with paging parameters is refused, naming them.
    let res = app
        .get(
            "/api/v1/events/stream/order:1?follow=true&limit=5",
            &t.admin_key,
        )
        .await;
    herald_testkit::problem::assert_problem(res, 400, "Invalid input", &["/follow"]).await;
}
