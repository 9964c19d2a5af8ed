//! Delivery against an endpoint that misbehaves, on the real server and
//! both stores, with the test kit's receiver playing the endpoint: many
//! events to several subscriptions arrive exactly once each; an endpoint
//! that is down for a while gets everything once it is back; a 410
//! disables the subscription and nothing more is sent to it; a 429 with
//! `Retry-After` is waited out as told. Every delivery is checked by
//! Herald's verifier and by the official Standard Webhooks library.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use herald_testkit::receiver::WebhookReceiver;
use herald_testkit::{Backend, TestApp, spawn_on, stays, wait_for, wait_until};
use serde_json::{Value, json};

use crate::delivery_kit::{
    delivery_states, event_id_of, events, ingest, store_rows, subscribe, webhook_id,
};

herald_testkit::on_each_backend!(
    many_events_to_three_subscriptions_each_arrive_exactly_once,
    an_endpoint_down_for_a_while_gets_everything_once_it_is_back,
    gone_disables_the_subscription_and_nothing_more_is_sent,
    too_many_requests_is_retried_after_the_time_it_asks_for,
);

/// How long any one awaited delivery may take.
const WAIT: Duration = Duration::from_secs(30);

/// A server on `backend` that may deliver to 127.0.0.1.
async fn app_on(backend: Backend) -> TestApp {
    spawn_on(backend, |c| {
        c.delivery_allowed_networks = "127.0.0.0/8".into();
    })
    .await
}

async fn many_events_to_three_subscriptions_each_arrive_exactly_once(backend: Backend) {
    const EVENTS: usize = 300;
    let mut receiver = WebhookReceiver::start().await;
    let app = app_on(backend).await;
    let t = app.tenant("acme").await;
    let mut secrets = HashMap::new();
    for name in ["a", "b", "c"] {
        let sub = subscribe(
            &app.client,
            &app.base,
            &t.admin_key,
            &json!({"subscriber_name": name, "callback_url": format!("{}/hooks/{name}", receiver.url),
                    "event_types": ["load.*"]}),
        )
        .await;
        secrets.insert(format!("/hooks/{name}"), sub.secret);
    }
    let ids = ingest(
        &app.client,
        &app.base,
        &t.admin_key,
        &events("load.tick", EVENTS),
    )
    .await;
    let expected: BTreeSet<(String, String)> = ids
        .iter()
        .flat_map(|id| secrets.keys().map(move |path| (id.clone(), path.clone())))
        .collect();

    let mut got = BTreeSet::new();
    let mut webhook_ids = HashSet::new();
    for n in 0..expected.len() {
        let r = receiver
            .next(&format!("delivery {n} of {}", expected.len()), WAIT)
            .await;
        let path = r.uri.path().to_string();
        let secret = secrets
            .get(&path)
            .unwrap_or_else(|| panic!("a delivery to no subscription: {path}"));
        let event = event_id_of(&r, secret);
        assert!(
            webhook_ids.insert(webhook_id(&r)),
            "a webhook-id sent twice: {r:?}"
        );
        assert!(
            got.insert((event.clone(), path.clone())),
            "{event} sent to {path} twice"
        );
    }
    assert_eq!(got, expected, "each (event, subscription) once");

    // A sentinel after them: once its three deliveries are in, a repeat of
    // an earlier one would have had as long to arrive.
    let sentinel = ingest(
        &app.client,
        &app.base,
        &t.admin_key,
        &events("load.sentinel", 1),
    )
    .await;
    for _ in 0..3 {
        let r = receiver.next("the sentinel", WAIT).await;
        assert_eq!(event_id_of(&r, &secrets[r.uri.path()]), sentinel[0]);
    }
    assert!(receiver.try_next().is_none(), "nothing else was sent");
    assert_eq!(receiver.counts().total, expected.len() as u64 + 3);
}

async fn an_endpoint_down_for_a_while_gets_everything_once_it_is_back(backend: Backend) {
    const EVENTS: usize = 20;
    let mut receiver = WebhookReceiver::start().await;
    receiver.go_down().await;
    let app = app_on(backend).await;
    let t = app.tenant("acme").await;
    // Retries a second apart, more than the outage takes (an open circuit
    // breaker holds deliveries back without using them up).
    let schedule = vec![1; 20];
    let sub = subscribe(
        &app.client,
        &app.base,
        &t.admin_key,
        &json!({"subscriber_name": "flaky", "callback_url": format!("{}/hooks", receiver.url),
                "event_types": ["order.created"], "retry_policy": {"schedule": schedule}}),
    )
    .await;
    let ids = ingest(
        &app.client,
        &app.base,
        &t.admin_key,
        &events("order.created", EVENTS),
    )
    .await;
    // Down for real: Herald tried and failed before the endpoint came back.
    wait_for("failed attempts while down", WAIT, || async {
        let failed = store_rows(
            &app,
            "SELECT count(*) FROM deliveries WHERE last_error_class IS NOT NULL",
        )
        .await;
        match failed[0][0]
            .trim_start_matches("Integer(")
            .trim_end_matches(')')
        {
            "0" => Err(delivery_states(&app).await),
            _ => Ok(()),
        }
    })
    .await;
    assert_eq!(receiver.counts().total, 0, "nothing got through while down");
    receiver.come_up().await;

    // Once the breaker lets a probe through, everything follows: what it
    // turned away while the probe was out asks again within a second.
    let mut got = HashMap::new();
    wait_for(
        "every event delivered after the outage",
        Duration::from_secs(120),
        || {
            while let Some(r) = receiver.try_next() {
                let event = event_id_of(&r, &sub.secret);
                let first = got.entry(event).or_insert_with(|| webhook_id(&r));
                assert_eq!(
                    *first,
                    webhook_id(&r),
                    "a retry keeps the delivery's webhook-id"
                );
            }
            let n = got.len();
            let app = &app;
            async move {
                if n == EVENTS {
                    Ok(())
                } else {
                    Err(format!(
                        "{n} of {EVENTS}; deliveries (state, attempts, error, count): {}",
                        delivery_states(app).await
                    ))
                }
            }
        },
    )
    .await;
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        ids.into_iter().collect::<BTreeSet<_>>(),
        "every event delivered after the outage"
    );
}

async fn gone_disables_the_subscription_and_nothing_more_is_sent(backend: Backend) {
    /// Longer than a retry of the control subscription takes to arrive.
    const WINDOW: Duration = Duration::from_secs(4);
    let mut gone = WebhookReceiver::start().await;
    gone.respond_with(410);
    let mut control = WebhookReceiver::start().await;
    // The control endpoint fails once, so its retry shows a retry would
    // have been seen within the window.
    control.respond_in_turn(&[500]);
    let app = app_on(backend).await;
    let t = app.tenant("acme").await;
    let policy = json!({"schedule": [1, 1, 1]});
    let sub = subscribe(
        &app.client,
        &app.base,
        &t.admin_key,
        &json!({"subscriber_name": "gone", "callback_url": format!("{}/hooks", gone.url),
                "event_types": ["order.*"], "retry_policy": policy}),
    )
    .await;
    let control_sub = subscribe(
        &app.client,
        &app.base,
        &t.admin_key,
        &json!({"subscriber_name": "control", "callback_url": format!("{}/hooks", control.url),
                "event_types": ["order.*"], "retry_policy": policy}),
    )
    .await;

    let first = ingest(
        &app.client,
        &app.base,
        &t.admin_key,
        &events("order.created", 1),
    )
    .await;
    let r = gone.next("the delivery answered 410", WAIT).await;
    assert_eq!(event_id_of(&r, &sub.secret), first[0]);
    let path = format!("/api/v1/events/subscriptions/{}", sub.id);
    wait_until("the subscription disabled", WAIT, || async {
        let got: Value = app.get(&path, &t.admin_key).await.json().await.unwrap();
        got["enabled"] == false
    })
    .await;

    // The positive control: the failed first attempt to the control
    // endpoint is retried, and the retry arrives within the window.
    let failed = control.next("the control's failing attempt", WAIT).await;
    let retried = control.next("the control's retry", WAIT).await;
    assert_eq!(webhook_id(&failed), webhook_id(&retried));
    assert!(
        retried.at.duration_since(failed.at) < WINDOW,
        "the window is long enough to see a retry"
    );
    // A later event reaches the control endpoint only.
    let second = ingest(
        &app.client,
        &app.base,
        &t.admin_key,
        &events("order.created", 1),
    )
    .await;
    let r = control.next("the later event at the control", WAIT).await;
    assert_eq!(event_id_of(&r, &control_sub.secret), second[0]);
    stays(
        "no attempt after the 410, no retry of it",
        WINDOW,
        || async {
            match gone.counts().total {
                1 => Ok(()),
                n => Err(format!("the gone endpoint got {n} requests")),
            }
        },
    )
    .await;
    let got: Value = app.get(&path, &t.admin_key).await.json().await.unwrap();
    assert_eq!(got["enabled"], false, "{got}");
}

async fn too_many_requests_is_retried_after_the_time_it_asks_for(backend: Backend) {
    let mut receiver = WebhookReceiver::start().await;
    receiver.respond_next_with_retry_after(1, 429, "1");
    let app = app_on(backend).await;
    let t = app.tenant("acme").await;
    // The schedule's own wait (30 s ± 20 %) is far longer than the one the
    // endpoint asks for, so the retry's timing tells which one was used.
    let sub = subscribe(
        &app.client,
        &app.base,
        &t.admin_key,
        &json!({"subscriber_name": "busy", "callback_url": format!("{}/hooks", receiver.url),
                "event_types": ["order.created"], "retry_policy": {"schedule": [30]}}),
    )
    .await;
    let ids = ingest(
        &app.client,
        &app.base,
        &t.admin_key,
        &events("order.created", 1),
    )
    .await;
    let first = receiver.next("the attempt answered 429", WAIT).await;
    // Well before the schedule's earliest retry (24 s).
    let retry = receiver
        .next("the retry after Retry-After", Duration::from_secs(15))
        .await;
    for r in [&first, &retry] {
        assert_eq!(event_id_of(r, &sub.secret), ids[0]);
    }
    assert_eq!(webhook_id(&first), webhook_id(&retry), "the same delivery");
    let waited = retry.at.duration_since(first.at);
    assert!(
        waited >= Duration::from_secs(1),
        "retried after {waited:?}, before the second Retry-After asked for"
    );
}
