//! Standard Webhooks signing, byte-exact so the official verification
//! libraries accept Herald's webhooks: a secret is `whsec_` + base64 of its
//! key bytes; a signature is `v1,` + base64 of HMAC-SHA256(key,
//! `{webhook-id}.{webhook-timestamp}.{body}`); during a key rotation the
//! `webhook-signature` header carries one signature per secret, separated
//! by a single space. Also the webhook body (`{"type", "timestamp",
//! "data"}`) and the request's header set, as pure functions.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_core::Timestamp;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::Sha256;

/// Every secret's text form starts with this.
pub const SECRET_PREFIX: &str = "whsec_";

/// The fewest key bytes a secret may have (the specification's lower bound).
pub const MIN_SECRET_BYTES: usize = 24;

/// The most key bytes a secret may have (the specification's upper bound).
pub const MAX_SECRET_BYTES: usize = 64;

/// How far a webhook's timestamp may be from the receiver's clock before
/// [`verify`] refuses it, in seconds (what the official libraries use).
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 5 * 60;

/// The signature scheme's version tag.
const SIGNATURE_VERSION: &str = "v1";

/// One endpoint's signing key. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

/// Why a secret's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook secret starts with `whsec_` followed by base64 key bytes")]
    MissingPrefix,
    #[error("the key after `whsec_` is not valid standard base64 ({0})")]
    NotBase64(String),
    #[error(
        "the key is {0} bytes; a webhook secret holds between {MIN_SECRET_BYTES} and {MAX_SECRET_BYTES} key bytes"
    )]
    BadLength(usize),
}

impl WebhookSecret {
    /// Parses the text form `whsec_<base64 key>`.
    pub fn parse(text: &str) -> Result<WebhookSecret, SecretError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|e| SecretError::NotBase64(e.to_string()))?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(SecretError::BadLength(key.len()));
        }
        Ok(WebhookSecret { key })
    }

    /// A new secret from 32 random bytes the caller drew (from a CSPRNG).
    pub fn generate(random: [u8; 32]) -> WebhookSecret {
        WebhookSecret {
            key: random.to_vec(),
        }
    }

    /// The text form, `whsec_<base64 key>`: what a user is shown and stores.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    /// The MAC over `{id}.{timestamp}.{body}`, ready for its tag.
    fn mac_over(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret({} key bytes, redacted)", self.key.len())
    }
}

/// The `webhook-signature` header value: `v1,<base64>` for each secret, in
/// the order given, separated by single spaces. Signing with the new and
/// the old secret during a rotation lets receivers holding either verify.
/// An empty slice gives an empty value, which no receiver accepts.
pub fn sign(id: &str, timestamp: i64, body: &[u8], secrets: &[WebhookSecret]) -> String {
    let signatures: Vec<String> = secrets
        .iter()
        .map(|secret| {
            let tag = secret.mac_over(id, timestamp, body).finalize().into_bytes();
            format!("{SIGNATURE_VERSION},{}", STANDARD.encode(tag))
        })
        .collect();
    signatures.join(" ")
}

/// Why [`verify`] refused a webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the webhook-timestamp `{0}` is not a number of seconds since the Unix epoch")]
    BadTimestamp(String),
    #[error("the webhook-timestamp is {0} seconds from now, beyond the tolerance")]
    TimestampOutOfTolerance(i64),
    #[error("no v1 signature in the webhook-signature header matches")]
    NoMatchingSignature,
}

/// Checks a received webhook the way the official libraries do: the
/// timestamp within `tolerance_seconds` of `now` (Unix seconds), then any
/// `v1` signature in the header matching any of `secrets` (compared in
/// constant time). Other versions' signatures are skipped.
pub fn verify(
    id: &str,
    timestamp_header: &str,
    body: &[u8],
    signature_header: &str,
    secrets: &[WebhookSecret],
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), VerifyError> {
    let timestamp: i64 = timestamp_header
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp_header.to_string()))?;
    let skew = timestamp.saturating_sub(now);
    if skew.saturating_abs() > tolerance_seconds {
        return Err(VerifyError::TimestampOutOfTolerance(skew));
    }
    let tags: Vec<Vec<u8>> = signature_header
        .split(' ')
        .filter_map(|part| part.split_once(','))
        .filter(|(version, _)| *version == SIGNATURE_VERSION)
        .filter_map(|(_, encoded)| STANDARD.decode(encoded).ok())
        .collect();
    for secret in secrets {
        for tag in &tags {
            if secret
                .mac_over(id, timestamp, body)
                .verify_slice(tag)
                .is_ok()
            {
                return Ok(());
            }
        }
    }
    Err(VerifyError::NoMatchingSignature)
}

/// The webhook body: `{"type": <event type>, "timestamp": <RFC 3339>,
/// "data": <the stored canonical event>}`. The event's JSON is embedded
/// as stored, byte for byte; `timestamp` is when the event happened.
pub fn webhook_body(event_type: &str, timestamp: Timestamp, event_json: &RawValue) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(rename = "type")]
        event_type: &'a str,
        timestamp: String,
        data: &'a RawValue,
    }
    serde_json::to_string(&Body {
        event_type,
        timestamp: timestamp.to_rfc3339(),
        data: event_json,
    })
    .expect("a body of strings and valid JSON serialises")
}

/// What one attempt sends, apart from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// Header names (lower case) and values, in sending order.
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl WebhookRequest {
    /// The value of header `name`, if the request carries it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What identifies one message, the same on every attempt: receivers
/// deduplicate on `id`.
#[derive(Debug, Clone, Copy)]
pub struct WebhookMessage<'a> {
    /// The `webhook-id`: one per event and subscription, kept across retries.
    pub id: &'a str,
    /// The body, from [`webhook_body`].
    pub body: &'a str,
    /// The event's W3C trace context, forwarded as `traceparent`.
    pub traceparent: Option<&'a str>,
    /// The replay this attempt belongs to, sent as `herald-replay`, so a
    /// receiver can tell a replay from a first delivery.
    pub replay: Option<&'a str>,
}

/// Why a request could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("an endpoint needs at least one signing secret")]
    NoSecret,
    #[error("the {0} header value must be visible ASCII (no spaces or control characters)")]
    BadHeaderValue(&'static str),
}

/// Builds one attempt's request: `content-type`, `webhook-id`,
/// `webhook-timestamp` (`sent_at` in Unix seconds: the attempt's time, so
/// receivers' freshness checks pass on a late retry), `webhook-signature`
/// over every secret, and `traceparent` / `herald-replay` when given.
pub fn build_request(
    message: &WebhookMessage<'_>,
    sent_at: Timestamp,
    secrets: &[WebhookSecret],
) -> Result<WebhookRequest, RequestError> {
    if secrets.is_empty() {
        return Err(RequestError::NoSecret);
    }
    let header_safe =
        |value: &str| !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic());
    if !header_safe(message.id) {
        return Err(RequestError::BadHeaderValue("webhook-id"));
    }
    let timestamp = sent_at.unix_seconds();
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("webhook-id", message.id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            sign(message.id, timestamp, message.body.as_bytes(), secrets),
        ),
    ];
    for (name, value) in [
        ("traceparent", message.traceparent),
        ("herald-replay", message.replay),
    ] {
        if let Some(value) = value {
            if !header_safe(value) {
                return Err(RequestError::BadHeaderValue(name));
            }
            headers.push((name, value.to_string()));
        }
    }
    Ok(WebhookRequest {
        headers,
        body: message.body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1614265330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn spec_secret() -> WebhookSecret {
        WebhookSecret::parse(SPEC_SECRET).unwrap()
    }

    #[test]
    fn signs_the_specifications_published_vector() {
        let header = sign(
            SPEC_ID,
            SPEC_TIMESTAMP,
            SPEC_BODY.as_bytes(),
            &[spec_secret()],
        );
        assert_eq!(header, SPEC_SIGNATURE);
    }

    #[test]
    fn several_secrets_give_space_separated_signatures_in_order() {
        let other = WebhookSecret::generate([7; 32]);
        let header = sign(
            SPEC_ID,
            SPEC_TIMESTAMP,
            SPEC_BODY.as_bytes(),
            &[other.clone(), spec_secret()],
        );
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], SPEC_SIGNATURE);
        assert_ne!(parts[0], SPEC_SIGNATURE);
        assert!(parts[0].starts_with("v1,"));
        // A receiver holding only either secret accepts the header.
        for secret in [other, spec_secret()] {
            verify(
                SPEC_ID,
                "1614265330",
                SPEC_BODY.as_bytes(),
                &header,
                &[secret],
                SPEC_TIMESTAMP,
                300,
            )
            .unwrap();
        }
    }

    #[test]
    fn verify_accepts_the_vector_and_refuses_any_change() {
        let secret = [spec_secret()];
        let ok = |id: &str, ts: &str, body: &str, sig: &str, now: i64| {
            verify(
                id,
                ts,
                body.as_bytes(),
                sig,
                &secret,
                now,
                DEFAULT_TOLERANCE_SECONDS,
            )
        };
        ok(
            SPEC_ID,
            "1614265330",
            SPEC_BODY,
            SPEC_SIGNATURE,
            SPEC_TIMESTAMP,
        )
        .unwrap();
        // Unknown versions and garbage beside the good signature are skipped.
        ok(
            SPEC_ID,
            "1614265330",
            SPEC_BODY,
            &format!("v2,abc v1,%%% {SPEC_SIGNATURE}"),
            SPEC_TIMESTAMP,
        )
        .unwrap();
        assert_eq!(
            ok(
                "msg_other",
                "1614265330",
                SPEC_BODY,
                SPEC_SIGNATURE,
                SPEC_TIMESTAMP
            ),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            ok(
                SPEC_ID,
                "1614265330",
                r#"{"test": 2432232315}"#,
                SPEC_SIGNATURE,
                SPEC_TIMESTAMP
            ),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            ok(
                SPEC_ID,
                "1614265331",
                SPEC_BODY,
                SPEC_SIGNATURE,
                SPEC_TIMESTAMP
            ),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            ok(
                SPEC_ID,
                "1614265330",
                SPEC_BODY,
                "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                SPEC_TIMESTAMP
            ),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            ok(
                SPEC_ID,
                "1614265330",
                SPEC_BODY,
                SPEC_SIGNATURE,
                SPEC_TIMESTAMP + 301
            ),
            Err(VerifyError::TimestampOutOfTolerance(-301))
        );
        ok(
            SPEC_ID,
            "1614265330",
            SPEC_BODY,
            SPEC_SIGNATURE,
            SPEC_TIMESTAMP - 300,
        )
        .unwrap();
        assert_eq!(
            ok(SPEC_ID, "soon", SPEC_BODY, SPEC_SIGNATURE, SPEC_TIMESTAMP),
            Err(VerifyError::BadTimestamp("soon".into()))
        );
    }

    #[test]
    fn secrets_parse_with_clear_errors() {
        assert_eq!(spec_secret().expose(), SPEC_SECRET);
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SecretError::MissingPrefix)
        );
        assert!(matches!(
            WebhookSecret::parse("whsec_not base64!"),
            Err(SecretError::NotBase64(_))
        ));
        assert_eq!(
            WebhookSecret::parse("whsec_AAAA"),
            Err(SecretError::BadLength(3))
        );
        let too_long = format!("whsec_{}", STANDARD.encode([1u8; 65]));
        assert_eq!(
            WebhookSecret::parse(&too_long),
            Err(SecretError::BadLength(65))
        );
        let message = SecretError::BadLength(3).to_string();
        assert!(
            message.contains("24") && message.contains("64"),
            "{message}"
        );
    }

    #[test]
    fn generated_secrets_round_trip_and_never_show_in_debug() {
        let secret = WebhookSecret::generate([0xAB; 32]);
        let text = secret.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&text[6..]).unwrap(), vec![0xAB; 32]);
        assert_eq!(WebhookSecret::parse(&text).unwrap(), secret);
        assert!(!format!("{secret:?}").contains(&text[6..]));
    }

    #[test]
    fn the_body_embeds_the_stored_event_verbatim() {
        let stored = RawValue::from_string(
            r#"{"event_id":"e1", "data":{"a":1.50},"status":"processed"}"#.into(),
        )
        .unwrap();
        let at = Timestamp::parse("2025-12-30T10:00:00.5+02:00").unwrap();
        let body = webhook_body("order.created", at, &stored);
        assert_eq!(
            body,
            r#"{"type":"order.created","timestamp":"2025-12-30T10:00:00.5+02:00","data":{"event_id":"e1", "data":{"a":1.50},"status":"processed"}}"#
        );
        let quoted = webhook_body("a\"b", at, &stored);
        let parsed: serde_json::Value = serde_json::from_str(&quoted).unwrap();
        assert_eq!(parsed["type"], "a\"b");
    }

    #[test]
    fn a_request_carries_the_signed_header_set() {
        let message = WebhookMessage {
            id: SPEC_ID,
            body: SPEC_BODY,
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            replay: Some("rpl_1"),
        };
        let sent_at = Timestamp::from_parts(SPEC_TIMESTAMP, 900_000_000, 0).unwrap();
        let request = build_request(&message, sent_at, &[spec_secret()]).unwrap();
        let names: Vec<&str> = request.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "traceparent",
                "herald-replay"
            ]
        );
        assert_eq!(request.header("webhook-timestamp"), Some("1614265330"));
        assert_eq!(request.header("webhook-signature"), Some(SPEC_SIGNATURE));
        assert_eq!(request.body, SPEC_BODY);

        let plain = WebhookMessage {
            traceparent: None,
            replay: None,
            ..message
        };
        let request = build_request(&plain, sent_at, &[spec_secret()]).unwrap();
        assert_eq!(request.headers.len(), 4);
        assert_eq!(request.header("herald-replay"), None);
    }

    #[test]
    fn a_request_needs_a_secret_and_header_safe_values() {
        let message = WebhookMessage {
            id: SPEC_ID,
            body: SPEC_BODY,
            traceparent: None,
            replay: None,
        };
        let at = Timestamp::from_parts(SPEC_TIMESTAMP, 0, 0).unwrap();
        assert_eq!(
            build_request(&message, at, &[]),
            Err(RequestError::NoSecret)
        );
        let bad_id = WebhookMessage {
            id: "a\r\nb",
            ..message
        };
        assert_eq!(
            build_request(&bad_id, at, &[spec_secret()]),
            Err(RequestError::BadHeaderValue("webhook-id"))
        );
        let bad_trace = WebhookMessage {
            traceparent: Some("x y"),
            ..message
        };
        assert_eq!(
            build_request(&bad_trace, at, &[spec_secret()]),
            Err(RequestError::BadHeaderValue("traceparent"))
        );
    }
}
