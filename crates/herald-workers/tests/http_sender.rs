//! The HTTP sender against a real receiver on 127.0.0.1: headers and body
//! arrive as given, the answer comes back as it was (a redirect is not
//! followed), the network guard refuses a loopback address, written or
//! resolved from a name, unless the allowed networks include it, and an
//! https URL is spoken to in TLS.

use std::time::Duration;

use herald_testkit::receiver::WebhookReceiver;
use herald_workers::delivery::classify::TransportFailure;
use herald_workers::delivery::http::HttpSender;
use herald_workers::delivery::network::AllowedNetworks;
use herald_workers::delivery::worker::{OutgoingWebhook, SendResult, WebhookSender};

fn request(url: &str) -> OutgoingWebhook {
    OutgoingWebhook {
        url: format!("{url}/hook"),
        headers: vec![
            ("webhook-id".into(), "msg_1".into()),
            ("x-team".into(), "billing".into()),
        ],
        body: r#"{"type":"order.created"}"#.into(),
        timeout: Duration::from_secs(5),
        read_limit: 1024,
    }
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn an_allowed_endpoint_gets_the_request_and_its_answer_comes_back() {
    let mut receiver = WebhookReceiver::start().await;
    receiver.respond_in_turn(&[503, 302]);
    let allowed = AllowedNetworks::parse("127.0.0.0/8,::1/128").unwrap();
    let sender = HttpSender::new(allowed).unwrap();

    let answer = sender.send(request(&receiver.url)).await;
    assert!(
        matches!(answer, SendResult::Response { status: 503, .. }),
        "{answer:?}"
    );
    let got = receiver.next("the first send", WAIT).await;
    assert_eq!(got.method, "POST");
    assert_eq!(got.uri.path(), "/hook");
    assert_eq!(got.header("webhook-id"), Some("msg_1"));
    assert_eq!(got.header("x-team"), Some("billing"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(&got.body[..], br#"{"type":"order.created"}"#);

    let redirect = sender.send(request(&receiver.url)).await;
    assert!(
        matches!(redirect, SendResult::Response { status: 302, .. }),
        "a redirect is an answer, not followed: {redirect:?}"
    );
    receiver.next("the redirected send", WAIT).await;
    // Through a name the guarded resolver checks.
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let named = sender.send(request(&by_name)).await;
    assert!(
        matches!(named, SendResult::Response { status: 200, .. }),
        "{named:?}"
    );
    receiver.next("the send by name", WAIT).await;
}

#[tokio::test]
async fn a_loopback_endpoint_is_refused_unless_allowed() {
    let mut receiver = WebhookReceiver::start().await;
    let sender = HttpSender::new(AllowedNetworks::parse("").unwrap()).unwrap();
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    for url in [receiver.url.clone(), by_name] {
        let answer = sender.send(request(&url)).await;
        assert_eq!(
            answer,
            SendResult::Failed(TransportFailure::Refused),
            "{url}"
        );
    }
    // The receiver works: an allowed sender's request arrives, and it is
    // the first one it got.
    let allowed = HttpSender::new(AllowedNetworks::parse("127.0.0.0/8,::1/128").unwrap()).unwrap();
    allowed.send(request(&receiver.url)).await;
    let first = receiver.next("the allowed send", WAIT).await;
    assert_eq!(first.header("webhook-id"), Some("msg_1"));
    assert!(
        receiver.try_next().is_none(),
        "the refused sends never arrived"
    );
}

#[tokio::test]
async fn a_closed_port_is_a_connect_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let sender = HttpSender::new(AllowedNetworks::parse("127.0.0.0/8").unwrap()).unwrap();
    let answer = sender.send(request(&closed)).await;
    assert_eq!(answer, SendResult::Failed(TransportFailure::Connect));
}

#[tokio::test]
async fn an_https_url_opens_with_a_tls_handshake_and_a_failed_one_is_a_tls_failure() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A plain TCP listener: it reads what the sender opens with and answers
    // in plain HTTP, which no TLS client accepts.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let opened = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut first = [0u8; 3];
        socket.read_exact(&mut first).await.unwrap();
        let _ = socket
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
        first
    });
    let allowed = AllowedNetworks::parse("127.0.0.0/8").unwrap();
    let sender = HttpSender::new(allowed).unwrap();
    let answer = sender
        .send(request(&format!("https://127.0.0.1:{port}")))
        .await;
    let first = tokio::time::timeout(WAIT, opened).await.unwrap().unwrap();
    // A TLS record of type handshake (22), protocol version 3.x.
    assert_eq!(first[0], 0x16, "not a TLS handshake: {first:?}");
    assert_eq!(first[1], 0x03, "{first:?}");
    assert_eq!(
        answer,
        SendResult::Failed(TransportFailure::Tls),
        "a failed handshake is a TLS failure"
    );
}
