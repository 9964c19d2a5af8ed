//! The receiver's own checks: answers, the scripted faults, counting.

use super::*;
use crate::wait::wait_until;

const WAIT: Duration = Duration::from_secs(5);

/// Posts `{}` with `webhook-id: {id}` to the receiver at `url`.
async fn post(
    client: reqwest::Client,
    url: String,
    id: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{url}/hooks"))
        .header("webhook-id", id)
        .body("{}")
        .send()
        .await
}

#[tokio::test]
async fn records_each_request_and_answers_with_the_chosen_status() {
    let mut hook = WebhookReceiver::start().await;
    let (client, url) = (crate::http_client(), hook.url.clone());
    let post = |body: &'static str| {
        client
            .post(format!("{url}/hooks/a?x=1"))
            .header("herald-signature", "v1,abc")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let res = post(r#"{"n": 1}"#).await.unwrap();
    assert_eq!(res.status(), 200, "answers 200 by default");
    let got = hook.next("the first post", WAIT).await;
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.uri, "/hooks/a?x=1");
    assert_eq!(got.header("herald-signature"), Some("v1,abc"));
    assert_eq!(got.json(), serde_json::json!({"n": 1}));

    hook.respond_in_turn(&[503, 500]);
    hook.respond_with(410);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(post("{}").await.unwrap().status().as_u16());
    }
    assert_eq!(
        statuses,
        [503, 500, 410],
        "the script, then the standing answer"
    );
    for _ in 0..3 {
        hook.next("a later post", WAIT).await;
    }
    assert!(hook.try_next().is_none(), "one record per request");
    assert_eq!(hook.counts().total, 4);
}

#[tokio::test]
async fn answers_the_next_requests_with_retry_after() {
    let mut hook = WebhookReceiver::start().await;
    let client = crate::http_client();
    hook.respond_next_with_retry_after(2, 429, "1");
    let mut seen = Vec::new();
    for i in 0..3 {
        let res = post(client.clone(), hook.url.clone(), &format!("m{i}"))
            .await
            .unwrap();
        let retry_after = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        seen.push((res.status().as_u16(), retry_after));
    }
    assert_eq!(
        seen,
        [
            (429, Some("1".to_string())),
            (429, Some("1".to_string())),
            (200, None)
        ]
    );
    for _ in 0..3 {
        hook.next("a post", WAIT).await;
    }
}

#[tokio::test]
async fn holds_requests_while_hanging_and_counts_them_in_flight_per_id() {
    let mut hook = WebhookReceiver::start().await;
    let client = crate::http_client();
    hook.hang();
    let sends: Vec<_> = ["a", "a", "b"]
        .into_iter()
        .map(|id| tokio::spawn(post(client.clone(), hook.url.clone(), id)))
        .collect();
    for _ in 0..3 {
        hook.next("a held post", WAIT).await;
    }
    wait_until("three requests in flight", WAIT, || async {
        hook.counts().in_flight == 3
    })
    .await;
    assert!(
        sends.iter().all(|s| !s.is_finished()),
        "none answered while hanging"
    );
    hook.release();
    for s in sends {
        assert_eq!(s.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(
        hook.counts(),
        Counts {
            total: 3,
            in_flight: 0,
            max_in_flight: 3,
            max_in_flight_per_id: 2,
        },
        "`a` was in flight twice at once"
    );
}

#[tokio::test]
async fn goes_down_and_comes_up_on_the_same_port() {
    let mut hook = WebhookReceiver::start().await;
    let client = crate::http_client();
    assert_eq!(
        post(client.clone(), hook.url.clone(), "up")
            .await
            .unwrap()
            .status(),
        200,
        "up: answered (and the connection kept alive)"
    );
    hook.go_down().await;
    let refused = post(client.clone(), hook.url.clone(), "down").await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.is_connect() || e.is_request()),
        "down: the request fails to connect, even on the kept-alive client: {refused:?}"
    );
    hook.come_up().await;
    let url_before = hook.url.clone();
    assert_eq!(
        post(client.clone(), url_before, "again")
            .await
            .unwrap()
            .status(),
        200
    );
    let ids: Vec<String> = [hook.next("up", WAIT).await, hook.next("again", WAIT).await]
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    assert_eq!(ids, ["up", "again"], "nothing got through while down");
    assert!(hook.try_next().is_none());
}

#[tokio::test]
async fn answers_slowly_when_told() {
    let mut hook = WebhookReceiver::start().await;
    let client = crate::http_client();
    hook.answer_after(Duration::from_millis(300));
    let send = tokio::spawn(post(client.clone(), hook.url.clone(), "slow"));
    hook.next("the slow post", WAIT).await;
    wait_until("the slow post in flight", WAIT, || async {
        hook.counts().in_flight == 1
    })
    .await;
    assert_eq!(send.await.unwrap().unwrap().status(), 200);
    assert_eq!(hook.counts().in_flight, 0);
}
