//! A real HTTP webhook receiver on 127.0.0.1 (port 0): every request it
//! gets (method, path, headers, body) goes into a channel the test reads,
//! and it answers with the status the test chose.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use tokio::sync::mpsc;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    /// Path and query.
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    /// A header's value as text (`None` if missing or not text).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("webhook body is not JSON ({e}): {:?}", self.body))
    }
}

/// The statuses to answer with: a script, then a standing answer.
#[derive(Debug)]
struct Answers {
    script: VecDeque<u16>,
    otherwise: u16,
}

#[derive(Debug, Clone)]
struct Shared {
    answers: Arc<Mutex<Answers>>,
    requests: mpsc::UnboundedSender<Received>,
}

/// The receiver; it stops when dropped.
#[derive(Debug)]
pub struct WebhookReceiver {
    /// `http://127.0.0.1:{port}`; any path is accepted.
    pub url: String,
    answers: Arc<Mutex<Answers>>,
    requests: mpsc::UnboundedReceiver<Received>,
    server: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// Starts answering 200 to every request.
    pub async fn start() -> WebhookReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook receiver");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let answers = Arc::new(Mutex::new(Answers {
            script: VecDeque::new(),
            otherwise: 200,
        }));
        let (tx, requests) = mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(record).with_state(Shared {
            answers: answers.clone(),
            requests: tx,
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookReceiver {
            url,
            answers,
            requests,
            server,
        }
    }

    /// Answers every later request with `status` (after any script).
    pub fn respond_with(&self, status: u16) {
        self.answers.lock().unwrap().otherwise = status;
    }

    /// Answers the next requests with `statuses`, one each, in order; then
    /// with the standing status again.
    pub fn respond_in_turn(&self, statuses: &[u16]) {
        self.answers.lock().unwrap().script = statuses.iter().copied().collect();
    }

    /// The next request, waiting up to `timeout`; panics naming `what`.
    pub async fn next(&mut self, what: &str, timeout: Duration) -> Received {
        match tokio::time::timeout(timeout, self.requests.recv()).await {
            Ok(Some(r)) => r,
            Ok(None) => panic!("the webhook receiver stopped before {what}"),
            Err(_) => panic!("timed out after {timeout:?} waiting for the webhook of: {what}"),
        }
    }

    /// A request already received and not yet taken, if any.
    pub fn try_next(&mut self) -> Option<Received> {
        self.requests.try_recv().ok()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let status = {
        let mut a = shared.answers.lock().unwrap();
        a.script.pop_front().unwrap_or(a.otherwise)
    };
    let _ = shared.requests.send(Received {
        method,
        uri,
        headers,
        body,
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let got = hook.next("the first post", Duration::from_secs(5)).await;
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
            hook.next("a later post", Duration::from_secs(5)).await;
        }
        assert!(hook.try_next().is_none(), "one record per request");
    }
}
