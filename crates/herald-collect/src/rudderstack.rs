//! RudderStack's webhook destination (`POST /webhooks/rudderstack`): one
//! RudderStack event or an array of them, already processed by a
//! RudderStack data plane (its `timestamp` is already corrected for the
//! device's clock, so it is kept as sent). Decoded by the Segment
//! mapping, RudderStack's message format being Segment's, with
//! `event_source` `frontend` and the format's own fields (timestamps,
//! `receivedAt`, `integrations`) under `metadata.rudderstack`; other
//! RudderStack keys (`rudderId`, `channel`, `request_ip`, …) are kept
//! under `metadata.unknown_fields`.
//!
//! [`signature_ok`] checks `X-Webhook-Signature: sha256=<hex>`, the
//! HMAC-SHA256 of the raw body with the write key's webhook secret.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use time::OffsetDateTime;

use crate::ClientContext;
use crate::segment::{Received, decode_message};

/// The events of a webhook body: an array, or one event.
pub fn events(body: Value) -> Vec<Value> {
    match body {
        Value::Array(events) => events,
        one => vec![one],
    }
}

/// One webhook event as the ingest request.
pub fn decode_event(
    event: Value,
    received_at: OffsetDateTime,
    client: &ClientContext,
    keep_ip: &dyn Fn(&str) -> Option<String>,
) -> Value {
    let r = Received {
        received_at,
        route_type: None,
        batch_sent_at: None,
        batch_context: None,
        batch_rest: None,
        from_browser: true,
        client,
        correct_clock: false,
        metadata_key: "rudderstack",
    };
    decode_message(event, &r, keep_ip)
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` with
/// `secret`; compared in constant time.
pub fn signature_ok(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(tag) = decode_hex(hex) else {
        return false;
    };
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// The hex signature of `body` (for senders and tests).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        // RFC 4231 test case 2: key "Jefe", "what do ya want for nothing?".
        let body = b"what do ya want for nothing?";
        let want = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(sign(b"Jefe", body), want);
        assert!(signature_ok(b"Jefe", body, Some(want)));
        assert!(!signature_ok(
            b"Jefe",
            b"what do ya want for nothing!",
            Some(want)
        ));
        assert!(!signature_ok(b"Jeff", body, Some(want)));
        assert!(!signature_ok(b"Jefe", body, None));
        assert!(!signature_ok(b"Jefe", body, Some("5bdcc146")));
        assert!(!signature_ok(b"Jefe", body, Some("sha256=zz")));
    }
}
