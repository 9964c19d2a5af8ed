//! A real HTTP webhook receiver on 127.0.0.1 (port 0): every request it
//! gets (method, path, headers, body, arrival time) goes into a channel the
//! test reads, and it answers with the status the test chose.
//!
//! It can also play the faults a webhook endpoint has in the wild: answer
//! the next requests with a status and a `Retry-After`, hang (hold every
//! request until released), answer slowly, and be down (stop listening,
//! closing its connections, and later listen again on the same port). It
//! counts the requests it got and those in flight, per `webhook-id` too, so
//! a test can check that one delivery was never in flight twice at once.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, oneshot, watch};

use crate::wait::wait_for;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    /// Path and query.
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it arrived (before any hang or delay).
    pub at: Instant,
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

/// What the receiver has seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests received since the start.
    pub total: u64,
    /// Requests being answered right now.
    pub in_flight: usize,
    /// The most requests ever in flight at once.
    pub max_in_flight: usize,
    /// The most requests with one `webhook-id` ever in flight at once (1
    /// when no delivery overlapped itself; 0 before any request).
    pub max_in_flight_per_id: usize,
}

/// One answer: a status and, if set, a `Retry-After` header.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    retry_after: Option<String>,
}

/// The answers to give: a script, then a standing answer.
#[derive(Debug)]
struct Answers {
    script: VecDeque<Reply>,
    otherwise: u16,
    /// How long to wait before answering.
    delay: Duration,
    /// The body of a 2xx answer.
    body: String,
}

#[derive(Debug, Default)]
struct Flights {
    counts: Counts,
    /// In flight now, per `webhook-id`.
    per_id: HashMap<String, usize>,
}

#[derive(Debug)]
struct Shared {
    answers: Mutex<Answers>,
    flights: Mutex<Flights>,
    requests: mpsc::UnboundedSender<Received>,
    /// `true` while requests are held (see [`WebhookReceiver::hang`]).
    hold: watch::Sender<bool>,
}

/// A request being answered: counted in flight until dropped, also when
/// the connection goes away mid-answer.
struct InFlight<'a> {
    shared: &'a Shared,
    id: Option<String>,
}

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared, id: Option<String>) -> InFlight<'a> {
        let mut f = shared.flights.lock().unwrap();
        f.counts.total += 1;
        f.counts.in_flight += 1;
        f.counts.max_in_flight = f.counts.max_in_flight.max(f.counts.in_flight);
        if let Some(id) = &id {
            let n = f.per_id.entry(id.clone()).or_default();
            *n += 1;
            let n = *n;
            f.counts.max_in_flight_per_id = f.counts.max_in_flight_per_id.max(n);
        }
        InFlight { shared, id }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut f = self.shared.flights.lock().unwrap();
        f.counts.in_flight -= 1;
        if let Some(id) = &self.id
            && let Some(n) = f.per_id.get_mut(id)
        {
            *n -= 1;
            if *n == 0 {
                f.per_id.remove(id);
            }
        }
    }
}

/// The listening server: a graceful stop, and its task.
#[derive(Debug)]
struct Listening {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// The receiver; it stops when dropped.
#[derive(Debug)]
pub struct WebhookReceiver {
    /// `http://127.0.0.1:{port}`; any path is accepted. The same while down
    /// and after coming up again.
    pub url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    requests: mpsc::UnboundedReceiver<Received>,
    server: Option<Listening>,
}

impl WebhookReceiver {
    /// Starts answering 200 to every request.
    pub async fn start() -> WebhookReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook receiver");
        let addr = listener.local_addr().expect("local addr");
        let (tx, requests) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            answers: Mutex::new(Answers {
                script: VecDeque::new(),
                otherwise: 200,
                delay: Duration::ZERO,
                body: String::new(),
            }),
            flights: Mutex::default(),
            requests: tx,
            hold: watch::channel(false).0,
        });
        let server = Some(serve(listener, shared.clone()));
        WebhookReceiver {
            url: format!("http://{addr}"),
            addr,
            shared,
            requests,
            server,
        }
    }

    /// Answers every later 2xx with this body (JSON), none by default.
    pub fn respond_body(&self, body: &str) {
        self.shared.answers.lock().unwrap().body = body.to_string();
    }

    /// Answers every later request with `status` (after any script).
    pub fn respond_with(&self, status: u16) {
        self.shared.answers.lock().unwrap().otherwise = status;
    }

    /// Answers the next requests with `statuses`, one each, in order; then
    /// with the standing status again. Replaces any script left.
    pub fn respond_in_turn(&self, statuses: &[u16]) {
        self.shared.answers.lock().unwrap().script = statuses
            .iter()
            .map(|&status| Reply {
                status,
                retry_after: None,
            })
            .collect();
    }

    /// Answers the next `count` requests with `status` and the header
    /// `Retry-After: {retry_after}` (after any script already set); then
    /// with the standing status again.
    pub fn respond_next_with_retry_after(&self, count: usize, status: u16, retry_after: &str) {
        let mut answers = self.shared.answers.lock().unwrap();
        for _ in 0..count {
            answers.script.push_back(Reply {
                status,
                retry_after: Some(retry_after.to_string()),
            });
        }
    }

    /// Waits `delay` before answering each later request: a slow endpoint.
    pub fn answer_after(&self, delay: Duration) {
        self.shared.answers.lock().unwrap().delay = delay;
    }

    /// Holds every request (those arriving from now on, and those already
    /// held) without answering until [`release`](Self::release). Held
    /// requests are recorded and counted in flight.
    pub fn hang(&self) {
        self.shared.hold.send_replace(true);
    }

    /// Answers the held requests, and no longer holds later ones.
    pub fn release(&self) {
        self.shared.hold.send_replace(false);
    }

    /// Stops listening and closes every connection: a request sent from
    /// now on is refused. Requests being answered get their answer first
    /// (held ones are cut when they do not within 5 s). The port stays
    /// this receiver's to [`come_up`](Self::come_up) on again.
    pub async fn go_down(&mut self) {
        let Some(Listening { stop, mut task }) = self.server.take() else {
            return;
        };
        let _ = stop.send(());
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port after [`go_down`](Self::go_down).
    pub async fn come_up(&mut self) {
        if self.server.is_some() {
            return;
        }
        let addr = self.addr;
        let listener = wait_for(
            &format!("the webhook receiver to listen on {addr} again"),
            Duration::from_secs(10),
            || async move {
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| e.to_string())
            },
        )
        .await;
        self.server = Some(serve(listener, self.shared.clone()));
    }

    /// What it has seen so far.
    pub fn counts(&self) -> Counts {
        self.shared.flights.lock().unwrap().counts
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
        self.release();
        if let Some(server) = self.server.take() {
            server.task.abort();
        }
    }
}

/// Serves `listener` until stopped, gracefully: on the stop it accepts no
/// more connections, closes idle ones and lets requests in flight finish.
fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) -> Listening {
    let (stop, stopped) = oneshot::channel::<()>();
    let app = axum::Router::new().fallback(record).with_state(shared);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Listening { stop, task }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let _in_flight = InFlight::enter(&shared, id);
    let (reply, delay, answer) = {
        let mut a = shared.answers.lock().unwrap();
        let reply = a.script.pop_front().unwrap_or(Reply {
            status: a.otherwise,
            retry_after: None,
        });
        (reply, a.delay, a.body.clone())
    };
    let _ = shared.requests.send(Received {
        method,
        uri,
        headers,
        body,
        at: Instant::now(),
    });
    let mut hold = shared.hold.subscribe();
    let _ = hold.wait_for(|held| !*held).await;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = if status.is_success() && !answer.is_empty() {
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            answer,
        )
            .into_response()
    } else {
        status.into_response()
    };
    if let Some(value) = reply
        .retry_after
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

#[cfg(test)]
#[path = "receiver_tests.rs"]
mod tests;
