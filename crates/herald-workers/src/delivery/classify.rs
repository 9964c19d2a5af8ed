//! What one delivery attempt's result means: a [`Verdict`] (delivered,
//! disable the subscription, retry on the schedule, or retry after the
//! wait the endpoint asked for), an [`ErrorClass`] to record and count, and
//! a capped, UTF-8-safe snippet of the response body for the attempt log.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use herald_core::Timestamp;

use super::schedule::parse_retry_after;

/// How much of a response body an attempt record keeps, in bytes.
pub const DEFAULT_SNIPPET_BYTES: usize = 1_024;

/// What to do about one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A 2xx: the endpoint took the message.
    Delivered,
    /// A 410: the endpoint says it is gone for good; stop at once.
    Disable,
    /// A 429 or 503 with a usable `Retry-After`: wait this long (capped).
    RetryAfter(Duration),
    /// Anything else: retry on the policy's schedule.
    Retry,
}

/// Why an attempt failed, as attempt records and metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// A 1xx answer, or a status outside 100..=599.
    HttpOther,
    /// A redirect: webhooks do not follow them.
    Http3xx,
    Http4xx,
    Http5xx,
    /// No answer within the request timeout.
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// The TCP connection failed (refused, reset, unreachable).
    Connect,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// Sending the request or reading the response body failed.
    Body,
    /// The network guard refused the endpoint's address.
    Refused,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 10] = [
        ErrorClass::HttpOther,
        ErrorClass::Http3xx,
        ErrorClass::Http4xx,
        ErrorClass::Http5xx,
        ErrorClass::Timeout,
        ErrorClass::Dns,
        ErrorClass::Connect,
        ErrorClass::Tls,
        ErrorClass::Body,
        ErrorClass::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::HttpOther => "http_other",
            ErrorClass::Http3xx => "http_3xx",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Dns => "dns",
            ErrorClass::Connect => "connect",
            ErrorClass::Tls => "tls",
            ErrorClass::Body => "body",
            ErrorClass::Refused => "refused",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored error class this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown delivery error class `{0}`")]
pub struct UnknownErrorClass(pub String);

impl FromStr for ErrorClass {
    type Err = UnknownErrorClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorClass::ALL
            .into_iter()
            .find(|class| class.as_str() == s)
            .ok_or_else(|| UnknownErrorClass(s.to_string()))
    }
}

/// How an attempt failed before any answer came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    Timeout,
    Dns,
    Connect,
    Tls,
    Body,
    Refused,
}

/// What one attempt produced, as the sender saw it.
#[derive(Debug, Clone, Copy)]
pub enum AttemptResult<'a> {
    /// An HTTP answer: its status, its `Retry-After` header if any, and as
    /// much of its body as the sender read.
    Response {
        status: u16,
        retry_after: Option<&'a str>,
        body: &'a [u8],
    },
    /// No answer.
    Failed(TransportFailure),
}

/// One attempt, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub verdict: Verdict,
    /// `None` only when delivered.
    pub error_class: Option<ErrorClass>,
    /// The response status, when there was one.
    pub status: Option<u16>,
    /// The start of the response body, at most the snippet limit in bytes.
    pub snippet: String,
}

/// Classifies an attempt. `retry_after_cap` bounds how long an endpoint
/// may make Herald wait; `snippet_bytes` how much of its body is kept.
pub fn classify(
    result: &AttemptResult<'_>,
    now: Timestamp,
    retry_after_cap: Duration,
    snippet_bytes: usize,
) -> Classification {
    match *result {
        AttemptResult::Response {
            status,
            retry_after,
            body,
        } => {
            let (verdict, error_class) = match status {
                200..=299 => (Verdict::Delivered, None),
                410 => (Verdict::Disable, Some(ErrorClass::Http4xx)),
                429 | 503 => {
                    let class = if status == 429 {
                        ErrorClass::Http4xx
                    } else {
                        ErrorClass::Http5xx
                    };
                    let asked =
                        retry_after.and_then(|v| parse_retry_after(v, now, retry_after_cap));
                    (
                        asked.map_or(Verdict::Retry, Verdict::RetryAfter),
                        Some(class),
                    )
                }
                300..=399 => (Verdict::Retry, Some(ErrorClass::Http3xx)),
                400..=499 => (Verdict::Retry, Some(ErrorClass::Http4xx)),
                500..=599 => (Verdict::Retry, Some(ErrorClass::Http5xx)),
                _ => (Verdict::Retry, Some(ErrorClass::HttpOther)),
            };
            Classification {
                verdict,
                error_class,
                status: Some(status),
                snippet: snippet(body, snippet_bytes),
            }
        }
        AttemptResult::Failed(failure) => Classification {
            verdict: Verdict::Retry,
            error_class: Some(match failure {
                TransportFailure::Timeout => ErrorClass::Timeout,
                TransportFailure::Dns => ErrorClass::Dns,
                TransportFailure::Connect => ErrorClass::Connect,
                TransportFailure::Tls => ErrorClass::Tls,
                TransportFailure::Body => ErrorClass::Body,
                TransportFailure::Refused => ErrorClass::Refused,
            }),
            status: None,
            snippet: String::new(),
        },
    }
}

/// The start of `body` as text of at most `max_bytes` bytes: whole
/// characters only, each invalid UTF-8 sequence shown as U+FFFD, and a
/// character the cap would split left out rather than broken.
pub fn snippet(body: &[u8], max_bytes: usize) -> String {
    let mut out = String::with_capacity(max_bytes.min(body.len()));
    for chunk in body.utf8_chunks() {
        let invalid = (!chunk.invalid().is_empty()).then_some(char::REPLACEMENT_CHARACTER);
        for c in chunk.valid().chars().chain(invalid) {
            if out.len() + c.len_utf8() > max_bytes {
                return out;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(3_600);

    fn now() -> Timestamp {
        Timestamp::parse("2015-10-21T07:27:00Z").unwrap()
    }

    fn answer(status: u16, retry_after: Option<&str>) -> Classification {
        classify(
            &AttemptResult::Response {
                status,
                retry_after,
                body: b"nope",
            },
            now(),
            CAP,
            DEFAULT_SNIPPET_BYTES,
        )
    }

    #[test]
    fn statuses_map_to_verdicts_and_classes() {
        for status in [200, 201, 204, 299] {
            let c = answer(status, Some("5"));
            assert_eq!(
                (c.verdict, c.error_class),
                (Verdict::Delivered, None),
                "{status}"
            );
        }
        let gone = answer(410, None);
        assert_eq!(
            (gone.verdict, gone.error_class),
            (Verdict::Disable, Some(ErrorClass::Http4xx))
        );
        for (status, class) in [
            (100, ErrorClass::HttpOther),
            (301, ErrorClass::Http3xx),
            (400, ErrorClass::Http4xx),
            (404, ErrorClass::Http4xx),
            (500, ErrorClass::Http5xx),
            (502, ErrorClass::Http5xx),
            (600, ErrorClass::HttpOther),
        ] {
            // Retry-After is honoured only on 429 and 503.
            let c = answer(status, Some("5"));
            assert_eq!(
                (c.verdict, c.error_class),
                (Verdict::Retry, Some(class)),
                "{status}"
            );
            assert_eq!(c.status, Some(status));
            assert_eq!(c.snippet, "nope");
        }
    }

    #[test]
    fn retry_after_is_honoured_on_429_and_503_and_capped() {
        let c = answer(429, Some("120"));
        assert_eq!(c.verdict, Verdict::RetryAfter(Duration::from_secs(120)));
        assert_eq!(c.error_class, Some(ErrorClass::Http4xx));
        let c = answer(503, Some("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(c.verdict, Verdict::RetryAfter(Duration::from_secs(60)));
        assert_eq!(c.error_class, Some(ErrorClass::Http5xx));
        assert_eq!(
            answer(503, Some("999999")).verdict,
            Verdict::RetryAfter(CAP)
        );
        // Missing or unreadable: the schedule applies.
        assert_eq!(answer(429, None).verdict, Verdict::Retry);
        assert_eq!(answer(503, Some("soon")).verdict, Verdict::Retry);
    }

    #[test]
    fn transport_failures_retry_with_their_class() {
        for (failure, class) in [
            (TransportFailure::Timeout, "timeout"),
            (TransportFailure::Dns, "dns"),
            (TransportFailure::Connect, "connect"),
            (TransportFailure::Tls, "tls"),
            (TransportFailure::Body, "body"),
            (TransportFailure::Refused, "refused"),
        ] {
            let c = classify(&AttemptResult::Failed(failure), now(), CAP, 10);
            assert_eq!(c.verdict, Verdict::Retry);
            assert_eq!(c.error_class.map(ErrorClass::as_str), Some(class));
            assert_eq!((c.status, c.snippet.as_str()), (None, ""));
        }
    }

    #[test]
    fn error_classes_round_trip_through_text() {
        for class in ErrorClass::ALL {
            assert_eq!(class.as_str().parse::<ErrorClass>(), Ok(class));
        }
        assert_eq!(
            "http_6xx".parse::<ErrorClass>(),
            Err(UnknownErrorClass("http_6xx".into()))
        );
    }

    #[test]
    fn snippets_are_capped_on_character_boundaries() {
        assert_eq!(snippet(b"hello", 3), "hel");
        assert_eq!(snippet(b"hello", 10), "hello");
        // "é" is two bytes: a cap inside it leaves it out.
        assert_eq!(snippet("aé".as_bytes(), 2), "a");
        assert_eq!(snippet("aé".as_bytes(), 3), "aé");
        // Invalid bytes become U+FFFD (three bytes), within the cap too.
        assert_eq!(snippet(b"a\xffb", 10), "a\u{FFFD}b");
        assert_eq!(snippet(b"a\xffb", 3), "a");
        assert_eq!(snippet(b"", 0), "");
    }

    proptest::proptest! {
        #[test]
        fn snippets_never_exceed_the_cap_and_keep_valid_prefixes(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            text in "\\PC{0,24}",
            cap in 0usize..80,
        ) {
            let s = snippet(&body, cap);
            proptest::prop_assert!(s.len() <= cap);
            // Valid text comes back as its own longest whole-character prefix.
            let s = snippet(text.as_bytes(), cap);
            proptest::prop_assert!(text.starts_with(&s));
            let next = text[s.len()..].chars().next();
            proptest::prop_assert!(next.is_none_or(|c| s.len() + c.len_utf8() > cap));
        }
    }
}
