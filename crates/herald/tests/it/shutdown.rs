//! SIGTERM on the real binary while requests are in flight: those requests
//! still complete with 2xx, the process exits 0, and every acknowledged
//! event is there after a restart.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use herald_testkit::wait_until;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::binary::{self, start};

const WITHIN: Duration = Duration::from_secs(30);

/// A request whose headers the server has read and whose handler is
/// reading the body: sent with `Expect: 100-continue`, and returned once
/// the server has answered `100 Continue`. The body is still unsent.
struct InFlight {
    stream: TcpStream,
    body: Vec<u8>,
}

async fn begin(addr: &str, key: &str, path: &str, body: &Value) -> InFlight {
    let body = serde_json::to_vec(body).unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WITHIN, stream.read(&mut buf))
            .await
            .expect("no 100 Continue")
            .unwrap();
        assert!(
            n > 0,
            "closed before 100 Continue: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 100"),
        "expected 100 Continue, got {:?}",
        String::from_utf8_lossy(&got)
    );
    InFlight { stream, body }
}

/// Sends the rest of the request; the status and JSON body of the answer.
async fn finish(mut r: InFlight) -> (u16, Value) {
    r.stream.write_all(&r.body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WITHIN, r.stream.read_to_end(&mut answer))
        .await
        .expect("no answer")
        .unwrap();
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_requests_in_flight_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = start(dir.path()).await;
    let addr = base.trim_start_matches("http://").to_string();
    let client = herald_testkit::http_client();
    let key = binary::tenant(&client, &base, "term").await;

    // Background writers keep requests coming through the signal.
    let acked = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, base, key, acked) = (client.clone(), base.clone(), key.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let (mut ids, mut other) = (Vec::new(), Vec::new());
            for i in 0..2_000 {
                let body = json!({"event_type": "term.test", "category": "system", "data": {"w": w, "i": i}});
                let Ok(res) = client
                    .post(format!("{base}/api/v1/events/create"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                else {
                    break; // refused or closed: never acknowledged
                };
                let status = res.status().as_u16();
                match res.json::<Value>().await {
                    Ok(v) if status == 201 => {
                        ids.push(v["event_id"].as_str().unwrap().to_string());
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(v) => other.push((status, v)),
                    Err(_) => break,
                }
            }
            (ids, other)
        }));
    }
    wait_until("the writers' first 50 acknowledgements", WITHIN, || async {
        acked.load(Ordering::Relaxed) >= 50
    })
    .await;

    // Requests inside their handlers when the signal arrives.
    let mut in_flight = Vec::new();
    for n in 0..3 {
        let body = json!({"event_type": "term.inflight", "category": "system", "data": {"n": n}});
        in_flight.push(begin(&addr, &key, "/api/v1/events/create", &body).await);
    }
    let batch = json!({"events": (0..5).map(|j| json!({"event_type": "term.inflight_batch", "category": "system", "data": {"j": j}})).collect::<Vec<_>>()});
    in_flight.push(begin(&addr, &key, "/api/v1/events/batch", &batch).await);

    binary::sigterm(&child);
    // Draining: new connections are refused while the old ones finish.
    wait_until(
        "new connections to be refused after SIGTERM",
        WITHIN,
        || async { TcpStream::connect(&addr).await.is_err() },
    )
    .await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited with requests in flight"
    );

    let mut acked_ids: Vec<String> = Vec::new();
    for r in in_flight {
        let (status, body) = finish(r).await;
        assert_eq!(status, 201, "an in-flight request after SIGTERM: {body}");
        match body["results"].as_array() {
            Some(items) => acked_ids.extend(
                items
                    .iter()
                    .map(|i| i["event_id"].as_str().unwrap().to_string()),
            ),
            None => acked_ids.push(body["event_id"].as_str().unwrap().to_string()),
        }
    }
    assert_eq!(acked_ids.len(), 8);
    let exit = tokio::time::timeout(WITHIN, child.wait())
        .await
        .expect("herald did not exit within 30 s of SIGTERM")
        .unwrap();
    assert_eq!(exit.code(), Some(0), "exit status {exit}");
    for w in writers {
        let (ids, other) = w.await.unwrap();
        assert!(
            other.is_empty(),
            "answers other than 201 while draining: {other:?}"
        );
        acked_ids.extend(ids);
    }

    let (_child, base) = start(dir.path()).await;
    let stored: HashSet<String> = binary::all_events(&client, &base, &key)
        .await
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    let missing: Vec<&String> = acked_ids
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events missing after SIGTERM and restart, e.g. {:?}",
        missing.len(),
        acked_ids.len(),
        missing.first()
    );
}

/// A client that never sends its body cannot hold the process up: after
/// `HERALD_SHUTDOWN_GRACE_SECS` its connection is closed and Herald exits 0,
/// with the events it acknowledged before still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_cut_off_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) =
        binary::start_with(dir.path(), &[("HERALD_SHUTDOWN_GRACE_SECS", "1".into())]).await;
    let addr = base.trim_start_matches("http://").to_string();
    let client = herald_testkit::http_client();
    let key = binary::tenant(&client, &base, "stall").await;
    let res = client
        .post(format!("{base}/api/v1/events/create"))
        .bearer_auth(&key)
        .json(&json!({"event_type": "before", "category": "system"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let acked: Value = res.json().await.unwrap();

    let body = json!({"event_type": "stalled", "category": "system"});
    let mut stalled = begin(&addr, &key, "/api/v1/events/create", &body).await;
    let exit = binary::stop_with_sigterm(
        &mut child,
        "a stalled client held herald up past the grace period",
    )
    .await;
    assert_eq!(exit, Some(0));
    // The stalled request was never answered: its connection just closed.
    let mut rest = Vec::new();
    let _ = stalled.stream.read_to_end(&mut rest).await;
    assert!(
        !String::from_utf8_lossy(&rest).contains("HTTP/1.1 2"),
        "{rest:?}"
    );

    let (_child, base) = start(dir.path()).await;
    let events = binary::all_events(&client, &base, &key).await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["before"], "acknowledged kept, unsent never stored");
    assert_eq!(events[0]["event_id"], acked["event_id"]);
}

/// `HERALD_LOG=json`: every line is a JSON object, and the lines a request
/// writes carry its request id and W3C trace id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_and_trace_ids() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("herald.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let data = dir.path().join("data");
    let (mut child, base) = binary::start_logging(
        &data,
        &[
            ("HERALD_LOG", "json".into()),
            ("HERALD_LOG_LEVEL", "info".into()),
        ],
        log.into(),
    )
    .await;
    let client = herald_testkit::http_client();
    let key = binary::tenant(&client, &base, "logs").await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let res = client
        .post(format!("{base}/api/v1/events/create"))
        .bearer_auth(&key)
        .header("x-request-id", "req-log-1")
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&json!({"event_type": "logged", "category": "system"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let exit = binary::stop_with_sigterm(&mut child, "exit after SIGTERM").await;
    assert_eq!(exit, Some(0));

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{text}");
    let request = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "req-log-1")
        .unwrap_or_else(|| panic!("no line of request req-log-1: {text}"));
    assert_eq!(request["span"]["trace_id"], trace, "{request}");
    assert_eq!(request["fields"]["status"], 201, "{request}");
    assert_eq!(request["fields"]["operation"], "POST /api/v1/events/create");
}
