//! Shared fixtures, generators and oracles for `tests/properties.rs`.
//!
//! Generators build ingest bodies as `serde_json::Value`s (then bytes) that
//! are realistic (the four categories, the built-in actions, the
//! `event_category` set, every alias) and hostile (unicode and control
//! characters, integers where strings are usual, odd timestamps). Values a
//! redaction rule would rewrite (emails, card numbers, secret-looking keys)
//! only appear where a test asks for them: "safe" text starts with a letter
//! and has no `@`, "safe" keys end with a digit (no secret suffix, no named
//! field), and "safe" integers cannot be card numbers.

#![allow(dead_code)]

use std::collections::BTreeSet;

use herald_core::correlation::CorrelationKey;
use herald_core::redact::{PathRule, RedactAction};
use herald_core::vocabulary::BUILTIN_TYPES;
use herald_core::{
    Category, EmailHasher, EventCategory, EventProcessor, EventSource, FieldError, FieldWarning,
    Limits, OutcomeStatus, Processed, ProcessingContext, RedactionPolicy, TenantId, Timestamp,
    ValidationMode, ValidationResult,
};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Map, Number, Value};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// The server secret every tenant's email hasher is derived from.
pub const SERVER_SECRET: &[u8] = b"herald-property-tests/server-secret";

/// The event-type key and its aliases, in the order the decoder tries them.
pub const EVENT_TYPE_ALIASES: [&str; 5] = ["event_type", "action", "type", "event", "pattern"];

/// The idempotency key and its aliases.
pub const IDEMPOTENCY_ALIASES: [&str; 3] = ["idempotency_key", "message_id", "messageId"];

/// Every top-level key the decoder knows; anything else is "unknown".
pub const KNOWN_TOP_LEVEL: [&str; 26] = [
    "event_type",
    "action",
    "type",
    "event",
    "pattern",
    "category",
    "event_category",
    "event_source",
    "timestamp",
    "tenant_id",
    "actor",
    "user_id",
    "object",
    "correlation",
    "outcome",
    "evidence",
    "context",
    "data",
    "metadata",
    "stream_id",
    "expected_version",
    "idempotency_key",
    "message_id",
    "messageId",
    "schema_version",
    "traceparent",
];

pub const ACTOR_KEYS: [&str; 8] = [
    "user_id",
    "userId",
    "email_hash",
    "service_name",
    "serviceName",
    "role",
    "anonymous_id",
    "anonymousId",
];
pub const OBJECT_KEYS: [&str; 10] = [
    "order_id",
    "orderId",
    "request_id",
    "requestId",
    "session_id",
    "sessionId",
    "ticket_id",
    "ticketId",
    "resource_id",
    "resourceId",
];
pub const CORRELATION_KEYS: [&str; 8] = [
    "trace_id",
    "traceId",
    "span_id",
    "spanId",
    "correlation_id",
    "correlationId",
    "parent_event_id",
    "parentEventId",
];
pub const OUTCOME_KEYS: [&str; 6] = [
    "status",
    "error_class",
    "errorClass",
    "error_code",
    "errorCode",
    "message",
];
pub const EVIDENCE_KEYS: [&str; 5] = [
    "github",
    "raw_pointer",
    "raw_s3_pointer",
    "trace_url",
    "log_references",
];
pub const GITHUB_KEYS: [&str; 4] = ["commit_sha", "commitSha", "pr", "repository"];
pub const CONTEXT_KEYS: [&str; 10] = [
    "environment",
    "service",
    "service_name",
    "endpoint",
    "version",
    "ip",
    "user_agent",
    "userAgent",
    "referer",
    "referrer",
];

/// Proptest settings shared by every property: 256 cases, and no
/// regression files written into the source tree.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The default limits (64 KiB per event, 4 KiB per named field).
pub fn limits() -> Limits {
    Limits::default()
}

/// What the server would know about one request.
pub struct Fixture {
    pub tenant: TenantId,
    pub hasher: EmailHasher,
    pub now: Timestamp,
    pub traceparent: Option<String>,
    /// Deterministic ids by default; property 4 shares the production source.
    pub ids: std::sync::Arc<dyn herald_core::IdSource>,
}

impl Fixture {
    pub fn new(tenant: &str) -> Self {
        let tenant = TenantId::parse(tenant).expect("test tenant ids are valid");
        let hasher = EmailHasher::for_tenant(SERVER_SECRET, &tenant);
        Fixture {
            tenant,
            hasher,
            now: fixed_now(),
            traceparent: None,
            ids: std::sync::Arc::new(herald_core::SequentialIds::default()),
        }
    }

    pub fn with_ids(self, ids: std::sync::Arc<dyn herald_core::IdSource>) -> Self {
        Fixture { ids, ..self }
    }

    pub fn at(self, now: Timestamp) -> Self {
        Fixture { now, ..self }
    }

    pub fn with_traceparent(self, traceparent: Option<String>) -> Self {
        Fixture {
            traceparent,
            ..self
        }
    }

    pub fn ctx(&self) -> ProcessingContext<'_> {
        ProcessingContext {
            tenant_id: &self.tenant,
            email_hasher: &self.hasher,
            processing_timestamp: self.now,
            ids: &*self.ids,
            traceparent: self.traceparent.as_deref(),
        }
    }
}

/// A receive time with nanoseconds and a non-UTC offset.
pub fn fixed_now() -> Timestamp {
    Timestamp::parse("2025-12-30T11:00:00.123456789+01:00").expect("valid")
}

pub fn processor(mode: ValidationMode) -> EventProcessor {
    EventProcessor {
        mode,
        ..EventProcessor::default()
    }
}

pub fn bytes_of(body: &Value) -> Vec<u8> {
    serde_json::to_vec(body).expect("a JSON value always serialises")
}

/// Bytes → canonical event, the way the server calls it.
pub fn run(p: &EventProcessor, fx: &Fixture, body: &Value) -> Result<Processed, ValidationResult> {
    p.process_json(&bytes_of(body), &fx.ctx())
}

/// `run`, failing the test when the event is rejected.
pub fn accepted(p: &EventProcessor, fx: &Fixture, body: &Value) -> Processed {
    match run(p, fx, body) {
        Ok(processed) => processed,
        Err(r) => panic!("expected {body} to be accepted, got {:#?}", r.errors),
    }
}

// ---------------------------------------------------------------------------
// Oracles on findings
// ---------------------------------------------------------------------------

/// The distinct fields the errors name.
pub fn error_fields(r: &ValidationResult) -> BTreeSet<String> {
    r.errors.iter().map(|e| e.field.clone()).collect()
}

pub fn errors_at<'r>(r: &'r ValidationResult, field: &str) -> Vec<&'r FieldError> {
    r.errors.iter().filter(|e| e.field == field).collect()
}

pub fn warned_at(warnings: &[FieldWarning], field: &str) -> bool {
    warnings.iter().any(|w| w.field == field)
}

/// RFC 6901: empty, or `/`-separated tokens where `~` only starts `~0`/`~1`.
pub fn is_json_pointer(p: &str) -> bool {
    if p.is_empty() {
        return true;
    }
    if !p.starts_with('/') {
        return false;
    }
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return false;
        }
    }
    true
}

/// One RFC 6901 reference token.
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

pub fn mentions_all(message: &str, words: &[&str]) -> bool {
    words.iter().all(|w| message.contains(w))
}

pub fn category_names() -> Vec<&'static str> {
    Category::ALL.iter().map(|c| c.as_str()).collect()
}

// ---------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------

/// All twelve built-in (category, action) pairs.
pub fn builtin_actions() -> Vec<(Category, &'static str)> {
    BUILTIN_TYPES
        .iter()
        .flat_map(|(c, types)| types.iter().map(move |t| (*c, *t)))
        .collect()
}

pub fn owner_of(event_type: &str) -> Option<Category> {
    builtin_actions()
        .into_iter()
        .find(|(_, t)| *t == event_type)
        .map(|(c, _)| c)
}

pub fn builtins_of(category: Category) -> Vec<&'static str> {
    builtin_actions()
        .into_iter()
        .filter(|(c, _)| *c == category)
        .map(|(_, t)| t)
        .collect()
}

/// The event categories that derive `category`.
pub fn event_categories_of(category: Category) -> Vec<EventCategory> {
    EventCategory::ALL
        .iter()
        .copied()
        .filter(|ec| ec.category() == category)
        .collect()
}

pub fn category() -> BoxedStrategy<Category> {
    select(Category::ALL).boxed()
}

pub fn event_category() -> BoxedStrategy<EventCategory> {
    select(EventCategory::ALL).boxed()
}

pub fn event_source() -> BoxedStrategy<EventSource> {
    select(EventSource::ALL).boxed()
}

pub fn outcome_status() -> BoxedStrategy<OutcomeStatus> {
    select(OutcomeStatus::ALL).boxed()
}

pub fn builtin_action() -> BoxedStrategy<(Category, &'static str)> {
    select(builtin_actions()).boxed()
}

pub fn type_alias() -> BoxedStrategy<&'static str> {
    select(EVENT_TYPE_ALIASES.to_vec()).boxed()
}

/// Event types no vocabulary knows: dotted, snake, spaced, Cyrillic/CJK,
/// colon-separated and 256-byte ones.
pub fn custom_type() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-z]{2,10}(\\.[a-z]{2,10}){1,2}",
        2 => "[a-z]{3,10}_[a-z]{3,10}_v[0-9]",
        1 => "[A-Z][a-z]{2,8} [A-Z][a-z]{2,8}",
        1 => "[а-я]{2,8}\\.[一-鿋]{1,4}",
        1 => "[a-z]{2,6}:[a-z0-9/_-]{1,12}[a-z]",
        1 => "[a-z]{250,256}",
    ]
    .prop_filter("not a built-in action", |t| owner_of(t).is_none())
    .boxed()
}

// ---------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------

/// Identifier text: starts with a letter (never card-like), has no `@`
/// (never an email), may carry unicode, quotes, backslashes and control
/// characters.
pub fn ident() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[A-Za-z][A-Za-z0-9_.:-]{0,24}",
        1 => "[A-Za-zÀ-ÿΑ-ωА-я一-鿋][A-Za-z0-9 _.:/~À-ÿΑ-ωА-я一-鿋😀-🙏\\x01-\\x1f\\x7f\"\\\\-]{0,24}",
    ]
    .boxed()
}

/// An identifier as the decoder accepts one: text, or an integer (kept as
/// its decimal text), negative and beyond 2^53 included, but never one
/// that reads as a card number (redaction would rightly mask it).
pub fn id_value() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => ident().prop_map(Value::String),
        1 => any::<u64>().prop_filter("not card-like", |u| !is_card_number(&u.to_string())).prop_map(Value::from),
        1 => any::<i64>().prop_filter("not card-like", |i| !is_card_number(&i.unsigned_abs().to_string())).prop_map(Value::from),
    ]
    .boxed()
}

/// Whether `digits` (all ASCII digits) is a card number: 13 to 19 digits,
/// a Visa, Mastercard, Amex, Discover, JCB, Diners or UnionPay prefix and a
/// valid Luhn check digit. Written apart from Herald's own check.
pub fn is_card_number(digits: &str) -> bool {
    if !(13..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let prefix = |n: usize| digits[..n].parse::<u32>().unwrap_or(0);
    let network = digits.starts_with('4')
        || (51..=55).contains(&prefix(2))
        || (2221..=2720).contains(&prefix(4))
        || [34, 37, 65, 36, 38, 62].contains(&prefix(2))
        || prefix(4) == 6011
        || (644..=649).contains(&prefix(3))
        || (3528..=3589).contains(&prefix(4))
        || (300..=305).contains(&prefix(3));
    let mut sum = 0;
    for (i, b) in digits.bytes().rev().enumerate() {
        let d = u32::from(b - b'0');
        sum += if i % 2 == 1 {
            (d * 2) / 10 + (d * 2) % 10
        } else {
            d
        };
    }
    network && sum % 10 == 0
}

pub fn ident_value() -> BoxedStrategy<Value> {
    ident().prop_map(Value::String).boxed()
}

/// Free text with anything but `@`, led by a letter.
pub fn safe_text() -> BoxedStrategy<String> {
    "[A-Za-z][^@]{0,30}".boxed()
}

pub fn hex(len: usize) -> BoxedStrategy<String> {
    proptest::collection::vec(select(b"0123456789abcdef".to_vec()), len)
        .prop_map(|v| String::from_utf8(v).expect("ascii"))
        .boxed()
}

/// Keys that end with a digit: never a secret suffix, a named field or `email`.
pub fn safe_key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z][a-z_]{0,10}[0-9]",
        1 => "[a-zA-Z À-ÿ一-鿋~/.\\x01-\\x1f-]{0,8}[0-9]",
    ]
    .boxed()
}

pub fn finite_f64() -> BoxedStrategy<f64> {
    any::<f64>()
        .prop_filter("finite", |f| f.is_finite())
        .boxed()
}

pub fn float_value(f: f64) -> Value {
    Value::Number(Number::from_f64(f).expect("finite"))
}

/// Numbers redaction leaves alone: at most 10 digits, negative, 20 digits,
/// or fractional.
pub fn safe_number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i32>().prop_map(Value::from),
        (i64::MIN..0i64).prop_map(Value::from),
        (10_000_000_000_000_000_000u64..=u64::MAX).prop_map(Value::from),
        finite_f64().prop_map(float_value),
    ]
    .boxed()
}

/// Nested JSON (objects, arrays, all scalar kinds) that redaction leaves alone.
pub fn safe_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        safe_number(),
        safe_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((safe_key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

pub fn safe_map() -> BoxedStrategy<Map<String, Value>> {
    proptest::collection::vec((safe_key(), safe_json()), 0..4)
        .prop_map(|kv| kv.into_iter().collect())
        .boxed()
}

/// `00-<trace>-<span>-<flags>`, or a later version with extra fields,
/// sometimes padded with spaces (the parser trims).
#[derive(Debug, Clone)]
pub struct TraceParentText {
    pub text: String,
    pub trace_id: String,
    pub span_id: String,
}

pub fn valid_traceparent() -> BoxedStrategy<TraceParentText> {
    (
        prop_oneof![3 => Just("00".to_string()), 1 => "[0-9a-e][0-9a-f]"],
        hex(31),
        "[1-9a-f]",
        hex(15),
        "[1-9a-f]",
        hex(2),
        "(-[a-z0-9]{1,8})?",
        any::<bool>(),
    )
        .prop_map(|(version, t, t_last, s, s_last, flags, suffix, padded)| {
            let trace_id = format!("{t}{t_last}");
            let span_id = format!("{s}{s_last}");
            let suffix = if version == "00" {
                String::new()
            } else {
                suffix
            };
            let text = format!("{version}-{trace_id}-{span_id}-{flags}{suffix}");
            let text = if padded { format!("  {text} ") } else { text };
            TraceParentText {
                text,
                trace_id,
                span_id,
            }
        })
        .boxed()
}

/// Strings a W3C parser must refuse.
pub fn invalid_traceparent() -> BoxedStrategy<String> {
    prop_oneof![
        valid_traceparent().prop_map(|tp| tp.text.to_uppercase()),
        Just("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7".to_string()),
        Just("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string()),
        Just("00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_string()),
        Just("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".to_string()),
        Just("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x".to_string()),
        Just("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01".to_string()),
        Just(String::new()),
        "[g-z ]{1,40}",
    ]
    .prop_filter("invalid by the W3C grammar", |s| {
        traceparent_ids(s).is_none()
    })
    .boxed()
}

/// A W3C traceparent's trace and span ids, parsed independently of Herald.
pub fn traceparent_ids(text: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = text.trim().split('-').collect();
    let is_hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    let ok = parts.len() >= 4
        && is_hex(parts[0], 2)
        && parts[0] != "ff"
        && (parts[0] != "00" || parts.len() == 4)
        && is_hex(parts[1], 32)
        && is_hex(parts[2], 16)
        && is_hex(parts[3], 2)
        && !zero(parts[1])
        && !zero(parts[2]);
    ok.then(|| (parts[1].to_string(), parts[2].to_string()))
}

// ---------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------

/// 0001-01-03T00:00:00Z: two days of room for any offset.
pub const MIN_UNIX: i64 = -62_135_596_800 + 2 * 86_400;
/// 9999-12-29T23:59:59Z.
pub const MAX_UNIX: i64 = 253_402_300_799 - 2 * 86_400;
pub const MAX_OFFSET_MINUTES: i32 = 23 * 60 + 59;

/// How a timestamp is spelled; all are RFC 3339, only `Canonical` (with a
/// fraction that has no trailing zeros) is the form Herald writes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsStyle {
    Canonical,
    Lowercase,
    SpaceSeparator,
    NumericUtc { negative: bool },
}

/// An instant, its offset and how many fractional digits it is written with.
#[derive(Debug, Clone)]
pub struct TsSpec {
    pub unix_seconds: i64,
    pub nanos: u32,
    pub offset_minutes: i32,
    pub digits: u32,
    pub style: TsStyle,
    /// Digits beyond the ninth, which RFC 3339 parsers ignore.
    pub extra_digits: String,
}

impl TsSpec {
    pub fn offset_seconds(&self) -> i32 {
        self.offset_minutes * 60
    }

    pub fn unix_nanos(&self) -> i128 {
        i128::from(self.unix_seconds) * 1_000_000_000 + i128::from(self.nanos)
    }

    /// The text as sent.
    pub fn text(&self) -> String {
        let nine = format!("{:09}", self.nanos);
        let frac = format!("{}{}", &nine[..self.digits as usize], self.extra_digits);
        match self.style {
            TsStyle::Canonical => self.render('T', &frac, "Z"),
            TsStyle::Lowercase => self.render('t', &frac, "z"),
            TsStyle::SpaceSeparator => self.render(' ', &frac, "Z"),
            TsStyle::NumericUtc { negative } => {
                self.render('T', &frac, if negative { "-00:00" } else { "+00:00" })
            }
        }
    }

    /// The canonical RFC 3339 text of the same instant and offset.
    pub fn canonical(&self) -> String {
        let nine = format!("{:09}", self.nanos);
        self.render('T', nine.trim_end_matches('0'), "Z")
    }

    fn render(&self, sep: char, frac: &str, zulu: &str) -> String {
        let local = self.unix_seconds + i64::from(self.offset_seconds());
        let (y, m, d) = civil_from_days(local.div_euclid(86_400));
        let sod = local.rem_euclid(86_400);
        let offset = if self.offset_minutes == 0 {
            zulu.to_string()
        } else {
            let a = self.offset_minutes.abs();
            let sign = if self.offset_minutes < 0 { '-' } else { '+' };
            format!("{sign}{:02}:{:02}", a / 60, a % 60)
        };
        let frac = if frac.is_empty() {
            String::new()
        } else {
            format!(".{frac}")
        };
        format!(
            "{y:04}-{m:02}-{d:02}{sep}{:02}:{:02}:{:02}{frac}{offset}",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        )
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (H. Hinnant's algorithm), independent of the `time` crate.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

pub fn offset_minutes() -> BoxedStrategy<i32> {
    prop_oneof![
        2 => Just(0),
        2 => select(vec![60, 120, 330, 345, 525, 840, -180, -300, -570, -720]),
        3 => -MAX_OFFSET_MINUTES..=MAX_OFFSET_MINUTES,
    ]
    .boxed()
}

pub fn ts_style() -> BoxedStrategy<TsStyle> {
    prop_oneof![
        6 => Just(TsStyle::Canonical),
        1 => Just(TsStyle::Lowercase),
        1 => Just(TsStyle::SpaceSeparator),
        1 => any::<bool>().prop_map(|negative| TsStyle::NumericUtc { negative }),
    ]
    .boxed()
}

/// Seconds near the fixed receive time, or anywhere in years 1..=9999.
pub fn unix_seconds() -> BoxedStrategy<i64> {
    let now = fixed_now().unix_seconds();
    prop_oneof![MIN_UNIX..=MAX_UNIX, (now - 3 * 86_400)..=(now + 3 * 86_400),].boxed()
}

pub fn ts_spec_with(unix: BoxedStrategy<i64>) -> BoxedStrategy<TsSpec> {
    (
        unix,
        0u32..1_000_000_000,
        offset_minutes(),
        0u32..=9,
        ts_style(),
        "[0-9]{1,4}",
        any::<bool>(),
    )
        .prop_map(
            |(unix_seconds, raw, offset_minutes, digits, style, extra, use_extra)| {
                let unit = 10u32.pow(9 - digits);
                TsSpec {
                    unix_seconds,
                    nanos: raw - raw % unit,
                    offset_minutes,
                    digits,
                    style,
                    extra_digits: if digits == 9 && use_extra {
                        extra
                    } else {
                        String::new()
                    },
                }
            },
        )
        .boxed()
}

pub fn ts_spec() -> BoxedStrategy<TsSpec> {
    ts_spec_with(unix_seconds())
}

/// A timestamp as the `time` crate would build it from parts (used to
/// generate canonical events directly).
pub fn timestamp() -> BoxedStrategy<Timestamp> {
    (MIN_UNIX..=MAX_UNIX, 0u32..1_000_000_000, offset_minutes())
        .prop_map(|(s, n, o)| Timestamp::from_parts(s, n, o * 60).expect("in range"))
        .boxed()
}

// ---------------------------------------------------------------------------
// Ingest bodies
// ---------------------------------------------------------------------------

/// How the category reaches the decoder.
#[derive(Debug, Clone, Copy)]
pub enum CategoryEncoding {
    Field,
    /// Only `event_category`, which derives the category.
    Derived(EventCategory),
    /// Both; the explicit `category` wins even when they disagree.
    Both(EventCategory),
}

/// The required part of a body: a name under some alias, and a category.
#[derive(Debug, Clone)]
pub struct Head {
    pub category: Category,
    pub event_type: String,
    pub alias: &'static str,
    pub encoding: CategoryEncoding,
}

impl Head {
    pub fn write(&self, body: &mut Map<String, Value>) {
        body.insert(self.alias.into(), Value::String(self.event_type.clone()));
        match self.encoding {
            CategoryEncoding::Field => {
                body.insert("category".into(), self.category.as_str().into());
            }
            CategoryEncoding::Derived(ec) => {
                body.insert("event_category".into(), ec.as_str().into());
            }
            CategoryEncoding::Both(ec) => {
                body.insert("category".into(), self.category.as_str().into());
                body.insert("event_category".into(), ec.as_str().into());
            }
        }
    }

    pub fn body(&self) -> Map<String, Value> {
        let mut m = Map::new();
        self.write(&mut m);
        m
    }

    pub fn event_category(&self) -> Option<EventCategory> {
        match self.encoding {
            CategoryEncoding::Field => None,
            CategoryEncoding::Derived(ec) | CategoryEncoding::Both(ec) => Some(ec),
        }
    }
}

/// A category with a type it allows (built-in or custom), spelled any way.
pub fn head() -> BoxedStrategy<Head> {
    (
        category(),
        any::<Index>(),
        custom_type(),
        any::<bool>(),
        type_alias(),
        0u8..3,
        event_category(),
        any::<Index>(),
    )
        .prop_map(|(category, ti, custom, builtin, alias, enc, any_ec, eci)| {
            let event_type = if builtin {
                ti.get(&builtins_of(category)).to_string()
            } else {
                custom
            };
            let derivable = event_categories_of(category);
            let encoding = match enc {
                1 if !derivable.is_empty() => CategoryEncoding::Derived(*eci.get(&derivable)),
                2 => CategoryEncoding::Both(any_ec),
                _ => CategoryEncoding::Field,
            };
            Head {
                category,
                event_type,
                alias,
                encoding,
            }
        })
        .boxed()
}

pub type Entry = Option<(&'static str, Value)>;

/// An optional key, spelled as one of `keys`.
pub fn entry(keys: &[&'static str], value: BoxedStrategy<Value>) -> BoxedStrategy<Entry> {
    proptest::option::of((select(keys.to_vec()), value)).boxed()
}

/// An object of optional named entries followed by extra keys.
pub fn section(
    entries: Vec<BoxedStrategy<Entry>>,
    extras: BoxedStrategy<Map<String, Value>>,
) -> BoxedStrategy<Map<String, Value>> {
    (entries, extras)
        .prop_map(|(entries, extras)| {
            let mut m = Map::new();
            for (k, v) in entries.into_iter().flatten() {
                m.insert(k.to_string(), v);
            }
            m.extend(extras);
            m
        })
        .boxed()
}

pub fn no_extras() -> BoxedStrategy<Map<String, Value>> {
    Just(Map::new()).boxed()
}

/// A plausible address: mixed case, plus-tags, sub-domains.
pub fn email() -> BoxedStrategy<String> {
    (
        "[a-z][a-z0-9._+-]{0,10}[a-z0-9]",
        "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z0-9]{1,8})?",
        "[a-z]{2,6}",
        proptest::collection::vec(any::<bool>(), 40),
    )
        .prop_map(|(local, domain, tld, upper)| {
            let e = format!("{local}@{domain}.{tld}");
            e.chars()
                .zip(upper.iter().cycle())
                .map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c })
                .collect()
        })
        .boxed()
}

pub fn actor_section(with_email: bool) -> BoxedStrategy<Map<String, Value>> {
    let mut entries = vec![
        entry(&["user_id", "userId"], id_value()),
        entry(&["email_hash"], hex(64).prop_map(Value::String).boxed()),
        entry(&["service_name", "serviceName"], id_value()),
        entry(&["role"], ident_value()),
        entry(&["anonymous_id", "anonymousId"], id_value()),
    ];
    if with_email {
        entries.push(entry(&["email"], email().prop_map(Value::String).boxed()));
    }
    section(entries, safe_map())
}

pub fn object_section() -> BoxedStrategy<Map<String, Value>> {
    section(
        vec![
            entry(&["order_id", "orderId"], id_value()),
            entry(&["request_id", "requestId"], id_value()),
            entry(&["session_id", "sessionId"], id_value()),
            entry(&["ticket_id", "ticketId"], id_value()),
            entry(&["resource_id", "resourceId"], id_value()),
        ],
        safe_map(),
    )
}

pub fn trace_like() -> BoxedStrategy<Value> {
    prop_oneof![hex(32).prop_map(Value::String), id_value()].boxed()
}

pub fn correlation_section() -> BoxedStrategy<Map<String, Value>> {
    section(
        vec![
            entry(&["trace_id", "traceId"], trace_like()),
            entry(&["span_id", "spanId"], trace_like()),
            entry(&["correlation_id", "correlationId"], id_value()),
            entry(&["parent_event_id", "parentEventId"], id_value()),
        ],
        no_extras(),
    )
}

pub fn outcome_section() -> BoxedStrategy<Map<String, Value>> {
    section(
        vec![
            entry(
                &["status"],
                outcome_status()
                    .prop_map(|s| Value::from(s.as_str()))
                    .boxed(),
            ),
            entry(&["error_class", "errorClass"], id_value()),
            entry(&["error_code", "errorCode"], id_value()),
            entry(&["message"], safe_text().prop_map(Value::String).boxed()),
        ],
        no_extras(),
    )
}

pub fn evidence_section() -> BoxedStrategy<Map<String, Value>> {
    let github = section(
        vec![
            entry(
                &["commit_sha", "commitSha"],
                hex(40).prop_map(Value::String).boxed(),
            ),
            entry(&["pr"], id_value()),
            entry(&["repository"], ident_value()),
        ],
        no_extras(),
    )
    .prop_map(Value::Object)
    .boxed();
    let logs = proptest::collection::vec(safe_text().prop_map(Value::String), 0..4)
        .prop_map(Value::Array)
        .boxed();
    section(
        vec![
            entry(&["github"], github),
            entry(&["raw_pointer", "raw_s3_pointer"], id_value()),
            entry(&["trace_url"], ident_value()),
            entry(&["log_references"], logs),
        ],
        no_extras(),
    )
}

pub fn context_section() -> BoxedStrategy<Map<String, Value>> {
    section(
        vec![
            entry(&["environment"], ident_value()),
            entry(&["service", "service_name"], id_value()),
            entry(&["endpoint"], ident_value()),
            entry(&["version"], id_value()),
            entry(&["ip"], ident_value()),
            entry(&["user_agent", "userAgent"], id_value()),
            entry(&["referer", "referrer"], id_value()),
        ],
        safe_map(),
    )
}

pub fn stream_id_text() -> BoxedStrategy<String> {
    ("[a-z]{1,10}", "[A-Za-z0-9-]{1,20}")
        .prop_map(|(t, id)| format!("{t}:{id}"))
        .boxed()
}

/// The optional sections of a body.
type Sections = (
    Option<Map<String, Value>>,
    Option<Map<String, Value>>,
    Option<Map<String, Value>>,
    Option<Map<String, Value>>,
    Option<Map<String, Value>>,
    Option<Map<String, Value>>,
);

/// The optional top-level scalars of a body.
type TopLevel = (
    Option<EventSource>,
    Option<TsSpec>,
    Option<String>,
    Option<Value>,
    Option<Value>,
    Option<Map<String, Value>>,
    Option<(String, Option<u64>)>,
    Option<(&'static str, String)>,
    Option<u32>,
    Option<TraceParentText>,
    Vec<(String, Value)>,
);

/// A complete, valid ingest body with any mix of optional parts, aliases
/// and unknown top-level keys.
pub fn valid_body(with_email: bool) -> BoxedStrategy<Value> {
    let sections = (
        proptest::option::of(actor_section(with_email)),
        proptest::option::of(object_section()),
        proptest::option::of(correlation_section()),
        proptest::option::of(outcome_section()),
        proptest::option::of(evidence_section()),
        proptest::option::of(context_section()),
    );
    let top = (
        proptest::option::of(event_source()),
        proptest::option::of(ts_spec()),
        proptest::option::of(ident()),
        proptest::option::of(id_value()),
        proptest::option::of(safe_json()),
        proptest::option::of(safe_map()),
        proptest::option::of((stream_id_text(), proptest::option::of(any::<u64>()))),
        proptest::option::of((select(IDEMPOTENCY_ALIASES.to_vec()), ident())),
        proptest::option::of(1u32..=u32::MAX),
        proptest::option::of(valid_traceparent()),
        proptest::collection::vec((safe_key(), safe_json()), 0..3),
    );
    (head(), sections, top)
        .prop_map(|(head, sections, top)| assemble(&head, sections, top))
        .boxed()
}

fn assemble(head: &Head, sections: Sections, top: TopLevel) -> Value {
    let (actor, object, correlation, outcome, evidence, context) = sections;
    let (source, ts, tenant, user, data, metadata, stream, idem, schema, tp, unknown) = top;
    let mut b = head.body();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            b.insert(k.to_string(), v);
        }
    };
    put("event_source", source.map(|s| s.as_str().into()));
    put("timestamp", ts.map(|t| t.text().into()));
    put("tenant_id", tenant.map(Value::String));
    let actor = actor.map(|mut a| {
        // A top-level user_id must agree with the actor's.
        if let Some(user) = &user {
            for key in ["user_id", "userId"] {
                if let Some(v) = a.get_mut(key) {
                    *v = user.clone();
                }
            }
        }
        a
    });
    put("user_id", user);
    put("actor", actor.map(Value::Object));
    put("object", object.map(Value::Object));
    put("correlation", correlation.map(Value::Object));
    put("outcome", outcome.map(Value::Object));
    put("evidence", evidence.map(Value::Object));
    put("context", context.map(Value::Object));
    put("data", data);
    put("metadata", metadata.map(Value::Object));
    if let Some((stream_id, version)) = stream {
        put("stream_id", Some(stream_id.into()));
        put("expected_version", version.map(Value::from));
    }
    if let Some((key, value)) = idem {
        put(key, Some(value.into()));
    }
    put("schema_version", schema.map(Value::from));
    put("traceparent", tp.map(|t| t.text.into()));
    for (k, v) in unknown {
        put(&k, Some(v));
    }
    Value::Object(b)
}

/// A string or integer identifier as the decoder reads it.
pub fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// The first of `keys` present in `section`, as identifier text.
pub fn first_id(section: Option<&Map<String, Value>>, keys: &[&str]) -> Option<String> {
    let section = section?;
    keys.iter().find_map(|k| section.get(*k).and_then(id_text))
}

/// The keys of `section` that are not among `known`.
pub fn extras_of(section: Option<&Map<String, Value>>, known: &[&str]) -> Map<String, Value> {
    section
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !known.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn object_at<'v>(body: &'v Value, key: &str) -> Option<&'v Map<String, Value>> {
    body.get(key).and_then(Value::as_object)
}

/// Sets `pointer` in `body`, creating objects on the way.
pub fn set_pointer(body: &mut Value, pointer: &str, value: Value) {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut at = body;
    for (i, token) in tokens.iter().enumerate() {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let map = at.as_object_mut().expect("object");
        if i + 1 == tokens.len() {
            map.insert(token.clone(), value);
            return;
        }
        at = map
            .entry(token.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

// ---------------------------------------------------------------------------
// Arbitrary JSON and canonical-event parts (for codecs, no redaction)
// ---------------------------------------------------------------------------

/// Any JSON: all integer ranges, floats, any text (control characters,
/// unicode), nested arrays and objects with any keys.
pub fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        select(vec![u64::MAX, (1 << 53) + 1, 0]).prop_map(Value::from),
        Just(Value::from(i64::MIN)),
        finite_f64().prop_map(float_value),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((any::<String>(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Extra keys beside named fields: any text except the named fields.
pub fn extra_map(reserved: &'static [&'static str]) -> BoxedStrategy<Map<String, Value>> {
    proptest::collection::vec(
        (
            any::<String>().prop_filter("not a named field", move |k| {
                !reserved.contains(&k.as_str())
            }),
            any_json(),
        ),
        0..4,
    )
    .prop_map(|kv| kv.into_iter().collect())
    .boxed()
}

pub fn opt_string() -> BoxedStrategy<Option<String>> {
    proptest::option::of(any::<String>()).boxed()
}

// ---------------------------------------------------------------------------
// Sensitive values planted in a body (property 15)
// ---------------------------------------------------------------------------

/// Where a planted value goes.
#[derive(Debug, Clone, Copy)]
pub enum Spot {
    /// A named string field: its section and every spelling of its key
    /// (all are removed, then the first is set).
    Named(&'static str, &'static [&'static str]),
    /// A new key of the object at this pointer (created on the way).
    Keyed(&'static str),
    /// A new item of the array at this pointer (created on the way).
    Item(&'static str),
    /// A key (not a value) of `/data/keys9`: for emails.
    DataKey,
}

/// Named string fields of every part redaction must cover.
pub const NAMED_SPOTS: [(&str, &[&str]); 24] = [
    ("actor", &["user_id", "userId"]),
    ("actor", &["service_name", "serviceName"]),
    ("actor", &["role"]),
    ("actor", &["anonymous_id", "anonymousId"]),
    ("object", &["order_id", "orderId"]),
    ("object", &["request_id", "requestId"]),
    ("object", &["session_id", "sessionId"]),
    ("object", &["ticket_id", "ticketId"]),
    ("object", &["resource_id", "resourceId"]),
    ("correlation", &["correlation_id", "correlationId"]),
    ("correlation", &["parent_event_id", "parentEventId"]),
    ("correlation", &["trace_id", "traceId"]),
    ("outcome", &["message"]),
    ("outcome", &["error_class", "errorClass"]),
    ("evidence", &["trace_url"]),
    ("evidence", &["raw_pointer", "raw_s3_pointer"]),
    ("context", &["environment"]),
    ("context", &["service", "service_name"]),
    ("context", &["endpoint"]),
    ("context", &["version"]),
    ("context", &["ip"]),
    ("context", &["user_agent", "userAgent"]),
    ("context", &["referer", "referrer"]),
    ("outcome", &["error_code", "errorCode"]),
];

/// Objects and arrays of the free-form parts, some nested.
pub const KEYED_SPOTS: [&str; 9] = [
    "/actor",
    "/object",
    "/context",
    "/data",
    "/data/nest9/deeper9",
    "/metadata",
    "/metadata/deep9/er9",
    "/context/extra9/more9",
    "/object/extra9",
];
pub const ITEM_SPOTS: [&str; 4] = [
    "/data/list9",
    "/data/nest9/list9",
    "/metadata/list9",
    "/evidence/log_references",
];

pub fn spot() -> BoxedStrategy<Spot> {
    prop_oneof![
        4 => select(NAMED_SPOTS.to_vec()).prop_map(|(s, k)| Spot::Named(s, k)),
        3 => select(KEYED_SPOTS.to_vec()).prop_map(Spot::Keyed),
        2 => select(ITEM_SPOTS.to_vec()).prop_map(Spot::Item),
        1 => Just(Spot::DataKey),
    ]
    .boxed()
}

/// How an email is written: alone or inside longer text.
pub const EMAIL_TEMPLATES: [&str; 5] = [
    "{}",
    "write to {} today",
    "<{}>",
    "mailto:{}?subject=hi",
    "from {}, via relay",
];

/// Secrets written inside text, `{k}` the key and `{v}` the value.
pub const SECRET_TEMPLATES: [&str; 6] = [
    "{k}={v}",
    "https://api.example.test/cb?{k}={v}&n=1",
    "{k}: {v}",
    "{\"{k}\": \"{v}\"}",
    "Authorization: Bearer {v}",
    "curl -H '{k}: {v}' https://api.example.test",
];

pub const SECRET_KEYS: [&str; 9] = [
    "password",
    "api_key",
    "Authorization",
    "db_token",
    "client_secret",
    "X-Api-Key",
    "refreshToken",
    "passwd",
    "cvv",
];

/// Card numbers written alone or inside text.
pub const CARD_TEMPLATES: [&str; 4] = ["{}", "card {} declined", "paid with {}.", "pan={}"];

/// What is planted.
#[derive(Debug, Clone)]
pub enum Sensitive {
    Email {
        email: String,
        template: usize,
    },
    /// A secret under a secret key (`inline` false, where the spot has
    /// keys) or written inside text (`inline`, or at a named field).
    Secret {
        key: &'static str,
        value: String,
        inline: Option<usize>,
    },
    /// A card number (digits), written with `separator` between groups of
    /// four, as a JSON number when `as_number` (where the spot allows).
    Card {
        digits: String,
        separator: Option<char>,
        template: usize,
        as_number: bool,
    },
}

/// A random number with a card network's prefix, 13–19 digits and a valid
/// Luhn check digit.
pub fn card_digits() -> BoxedStrategy<String> {
    (
        select(vec![
            "4", "51", "55", "2221", "2720", "34", "37", "6011", "65", "3528", "36", "62",
        ]),
        13usize..=19,
        proptest::collection::vec(0u8..10, 19),
    )
        .prop_map(|(prefix, len, fill)| {
            let mut d: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
            d.extend(&fill[..len - 1 - d.len()]);
            // The check digit that makes the Luhn sum a multiple of ten.
            let sum: u32 = d
                .iter()
                .rev()
                .enumerate()
                .map(|(i, &x)| {
                    let x = u32::from(x);
                    if i % 2 == 0 {
                        (x * 2) / 10 + (x * 2) % 10
                    } else {
                        x
                    }
                })
                .sum();
            d.push(((10 - sum % 10) % 10) as u8);
            d.iter().map(|x| char::from(b'0' + x)).collect::<String>()
        })
        .prop_filter("a card number by the independent oracle", |d| {
            is_card_number(d)
        })
        .boxed()
}

pub fn sensitive() -> BoxedStrategy<Sensitive> {
    prop_oneof![
        (email(), 0..EMAIL_TEMPLATES.len())
            .prop_map(|(email, template)| Sensitive::Email { email, template }),
        (
            select(SECRET_KEYS.to_vec()),
            "[A-Za-z0-9]{12}",
            proptest::option::of(0..SECRET_TEMPLATES.len())
        )
            .prop_map(|(key, value, inline)| Sensitive::Secret {
                key,
                value: format!("S3cr3t-{value}"),
                inline
            }),
        (
            card_digits(),
            select(vec![None, Some(' '), Some('-')]),
            0..CARD_TEMPLATES.len(),
            any::<bool>()
        )
            .prop_map(|(digits, separator, template, as_number)| Sensitive::Card {
                digits,
                separator,
                template,
                as_number
            }),
    ]
    .boxed()
}

/// Whether an email planted there may name the actor, and in which rank:
/// the actor's named fields (in their order), its extra keys, then data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActorRank {
    Named(usize),
    Extra,
    Data,
}

/// What a plant left in the body, for the oracle.
#[derive(Debug, Clone)]
pub struct Planted {
    pub email: Option<(String, Option<ActorRank>)>,
    pub secret: Option<String>,
    /// The card's digits and the text it was written as.
    pub card: Option<(String, String)>,
    /// Where it is in the canonical event's JSON (the same pointer as in
    /// the body: extra keys are flattened into their part).
    pub at: PlantedAt,
    pub what: Sensitive,
    /// A secret planted as the value of this key (not written in text).
    pub under_key: Option<String>,
    /// Sent as a JSON number (a card).
    pub as_number: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlantedAt {
    /// The value at this pointer.
    Value(String),
    /// A key of the object at this pointer.
    KeyOf(String),
}

/// How a plant is stored, under a policy's built-in scrubbing.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// This value at the plant's pointer (or this key, for a key plant).
    Is(Value),
    /// Gone with its key (a dropped secret).
    Gone,
}

impl Planted {
    /// What redaction by `policy` (its built-in scrubbing, before path
    /// rules) must leave of this plant, worked out from the policy alone.
    pub fn stored(&self, policy: &RedactionPolicy, hasher: &EmailHasher) -> Stored {
        let replace = |v: &str| match policy.secret_action {
            RedactAction::Hash => format!("hash:{}", hasher.hash(v)),
            RedactAction::Drop | RedactAction::Mask => MASK_TEXT.to_string(),
        };
        let secret = |k: &str| is_secret_key(k, &policy.secret_keys);
        match &self.what {
            Sensitive::Email { email, template } => {
                let written = if policy.hash_emails {
                    format!("email_hash:{}", hasher.hash(email))
                } else {
                    email.clone()
                };
                Stored::Is(EMAIL_TEMPLATES[*template].replace("{}", &written).into())
            }
            Sensitive::Secret { key, value, inline } => {
                if let Some(under) = &self.under_key {
                    if !secret(under) {
                        return Stored::Is(value.as_str().into());
                    }
                    return match policy.secret_action {
                        RedactAction::Drop => Stored::Gone,
                        RedactAction::Mask | RedactAction::Hash => {
                            Stored::Is(replace(value).into())
                        }
                    };
                }
                let template = inline.unwrap_or(0);
                let sent = SECRET_TEMPLATES[template]
                    .replace("{k}", key)
                    .replace("{v}", value);
                if policy.secret_keys.is_empty() {
                    return Stored::Is(sent.into());
                }
                let text = if template == 4 {
                    // The credential alone as a bare `Bearer x`, or scheme
                    // and credential when `Authorization` is a secret key.
                    if secret("Authorization") {
                        format!("Authorization: {}", replace(&format!("Bearer {value}")))
                    } else {
                        format!("Authorization: Bearer {}", replace(value))
                    }
                } else if secret(key) {
                    SECRET_TEMPLATES[template]
                        .replace("{k}", key)
                        .replace("{v}", &replace(value))
                } else {
                    sent
                };
                Stored::Is(text.into())
            }
            Sensitive::Card {
                digits, template, ..
            } => {
                let masked = format!("****{}", &digits[digits.len() - 4..]);
                let (_, written) = self.card.as_ref().expect("a card plant");
                Stored::Is(match (self.as_number, policy.mask_card_numbers) {
                    (true, true) => masked.into(),
                    (true, false) => Value::from(digits.parse::<u64>().expect("digits")),
                    (false, true) => CARD_TEMPLATES[*template].replace("{}", &masked).into(),
                    (false, false) => CARD_TEMPLATES[*template].replace("{}", written).into(),
                })
            }
        }
    }
}

/// Plants `what` at `spot` in `body` (plant number `i`, which keeps keys
/// unique). Named fields already planted (`used`) are left alone.
pub fn plant(
    body: &mut Value,
    i: usize,
    spot: Spot,
    what: &Sensitive,
    used: &mut BTreeSet<(&'static str, &'static str)>,
) -> Option<Planted> {
    let spot = match spot {
        Spot::Named(section, keys) if !used.insert((section, keys[0])) => return None,
        Spot::DataKey if !matches!(what, Sensitive::Email { .. }) => Spot::Keyed("/data"),
        other => other,
    };
    let named = matches!(spot, Spot::Named(..));
    let mut planted = Planted {
        email: None,
        secret: None,
        card: None,
        at: PlantedAt::Value(String::new()),
        what: what.clone(),
        under_key: None,
        as_number: false,
    };
    let value = match what {
        Sensitive::Email { email, template } => {
            let text = EMAIL_TEMPLATES[*template].replace("{}", email);
            let rank = match spot {
                Spot::Named("actor", keys) => Some(ActorRank::Named(
                    ["user_id", "service_name", "role", "anonymous_id"]
                        .iter()
                        .position(|k| *k == keys[0])
                        .expect("an actor field"),
                )),
                Spot::Keyed("/actor") => Some(ActorRank::Extra),
                Spot::Keyed(p) | Spot::Item(p) if p.starts_with("/data") => Some(ActorRank::Data),
                _ => None,
            };
            planted.email = Some((email.clone(), rank));
            if let Spot::DataKey = spot {
                set_pointer(
                    body,
                    &format!("/data/keys9/{}", escape_token(&text)),
                    Value::from(i),
                );
                planted.at = PlantedAt::KeyOf("/data/keys9".into());
                return Some(planted);
            }
            Value::from(text)
        }
        Sensitive::Secret { key, value, inline } => {
            planted.secret = Some(value.clone());
            match (inline, spot) {
                (None, Spot::Keyed(base)) => {
                    let under = format!("k{i}_{key}");
                    set_pointer(
                        body,
                        &format!("{base}/{under}"),
                        Value::from(value.as_str()),
                    );
                    planted.at = PlantedAt::Value(format!("{base}/{under}"));
                    planted.under_key = Some(under);
                    return Some(planted);
                }
                (None, Spot::Item(p)) if p.starts_with("/data") || p.starts_with("/metadata") => {
                    let under = format!("k{i}_{key}");
                    let mut item = Map::new();
                    item.insert(under.clone(), Value::from(value.as_str()));
                    let index = push_item(body, p, Value::Object(item));
                    planted.at = PlantedAt::Value(format!("{p}/{index}/{under}"));
                    planted.under_key = Some(under);
                    return Some(planted);
                }
                _ => {
                    let template = SECRET_TEMPLATES[inline.unwrap_or(0)];
                    Value::from(template.replace("{k}", key).replace("{v}", value))
                }
            }
        }
        Sensitive::Card {
            digits,
            separator,
            template,
            as_number,
        } => {
            let written = match separator {
                None => digits.clone(),
                Some(sep) => digits
                    .as_bytes()
                    .chunks(4)
                    .map(|c| std::str::from_utf8(c).expect("ascii"))
                    .collect::<Vec<_>>()
                    .join(&sep.to_string()),
            };
            let whole_number =
                *as_number && !named && !matches!(spot, Spot::Item("/evidence/log_references"));
            let text = CARD_TEMPLATES[*template].replace("{}", &written);
            planted.as_number = whole_number;
            planted.card = Some((digits.clone(), written));
            if whole_number {
                Value::from(digits.parse::<u64>().expect("at most 19 digits"))
            } else {
                Value::from(text)
            }
        }
    };
    planted.at = PlantedAt::Value(match spot {
        Spot::Named(section, keys) => {
            put_named(body, section, keys, value);
            format!("/{section}/{}", keys[0])
        }
        Spot::Keyed(base) => {
            set_pointer(body, &format!("{base}/plant{i}"), value);
            format!("{base}/plant{i}")
        }
        Spot::Item(p) => format!("{p}/{}", push_item(body, p, value)),
        Spot::DataKey => unreachable!("handled above"),
    });
    Some(planted)
}

/// Sets a named field, removing its other spellings (and, for
/// `actor.user_id`, the top-level alias) so no two disagree.
pub fn put_named(body: &mut Value, section: &str, keys: &[&str], value: Value) {
    if section == "actor" && keys[0] == "user_id" {
        body.as_object_mut()
            .expect("a body object")
            .remove("user_id");
    }
    let map = body
        .as_object_mut()
        .expect("a body object")
        .entry(section)
        .or_insert_with(|| Value::Object(Map::new()));
    if !map.is_object() {
        *map = Value::Object(Map::new());
    }
    let map = map.as_object_mut().expect("object");
    for k in keys {
        map.remove(*k);
    }
    map.insert(keys[0].to_string(), value);
}

/// Appends `item` to the array at `pointer`, creating objects and the
/// array on the way; returns its index.
pub fn push_item(body: &mut Value, pointer: &str, item: Value) -> usize {
    let mut at = body;
    for token in pointer.split('/').skip(1) {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        at = at
            .as_object_mut()
            .expect("object")
            .entry(token)
            .or_insert(Value::Null);
    }
    if !at.is_array() {
        *at = Value::Array(Vec::new());
    }
    let items = at.as_array_mut().expect("array");
    items.push(item);
    items.len() - 1
}

// ---------------------------------------------------------------------------
// Deep nesting (hostile input)
// ---------------------------------------------------------------------------

/// Where a deep value goes, and how many containers the body adds above it
/// besides the event's own object.
pub const DEEP_PLACES: [(&str, usize); 11] = [
    ("/data", 0),
    ("/correlation/x9", 1),
    ("/outcome/x9", 1),
    ("/evidence/github/x9", 2),
    ("/data/x9", 1),
    ("/data/arr9", 2),
    ("/metadata/x9", 1),
    ("/actor/x9", 1),
    ("/context/x9", 1),
    ("/object/x9", 1),
    ("/zz9", 0),
];

/// `body` as JSON bytes with a value of `levels` nested arrays and objects
/// (chosen by the bits of `shape`) at `place`. Written as text, so no
/// deeply nested value is ever built, serialised or dropped here.
pub fn with_deep_value(body: &Value, place: &str, levels: usize, shape: u64) -> Vec<u8> {
    const HOLE: &str = "\u{0}deep";
    let mut body = body.clone();
    if place == "/data/arr9" {
        set_pointer(&mut body, place, Value::Array(vec![HOLE.into()]));
    } else {
        set_pointer(&mut body, place, HOLE.into());
    }
    let text = serde_json::to_string(&body).expect("serialises");
    let array = |i: usize| shape >> (i % 64) & 1 == 1;
    let mut deep = String::with_capacity(levels * 6);
    for i in 0..levels {
        deep.push_str(if array(i) { "[" } else { "{\"k\":" });
    }
    deep.push('1');
    for i in (0..levels).rev() {
        deep.push(if array(i) { ']' } else { '}' });
    }
    let hole = serde_json::to_string(HOLE).expect("serialises");
    assert_eq!(text.matches(&hole).count(), 1);
    text.replacen(&hole, &deep, 1).into_bytes()
}

// ---------------------------------------------------------------------------
// The category sets, spelled out (property 1)
// ---------------------------------------------------------------------------

/// The four categories.
pub const CATEGORY_NAMES: [&str; 4] = ["business", "system", "delivery", "security"];

/// The seventeen event categories and the category each derives, the
/// derivation table written out apart from Herald's own.
pub const EVENT_CATEGORY_TABLE: [(&str, &str); 17] = [
    ("user_action", "business"),
    ("page_view", "business"),
    ("form_submit", "business"),
    ("click", "business"),
    ("user_lifecycle", "business"),
    ("payment", "business"),
    ("order", "business"),
    ("task", "business"),
    ("system", "system"),
    ("security", "security"),
    ("performance", "system"),
    ("error", "system"),
    ("device", "system"),
    ("device_status", "system"),
    ("telemetry", "system"),
    ("command", "system"),
    ("alert", "system"),
];

/// The category an `event_category` name derives; `None` for a name
/// outside the set.
pub fn derived_category(event_category: &str) -> Option<&'static str> {
    EVENT_CATEGORY_TABLE
        .iter()
        .find(|(ec, _)| *ec == event_category)
        .map(|(_, c)| *c)
}

pub fn event_category_names() -> Vec<&'static str> {
    EVENT_CATEGORY_TABLE.iter().map(|(ec, _)| *ec).collect()
}

/// The JSON type of a value as a person names it.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

// ---------------------------------------------------------------------------
// Redaction policies (property 15)
// ---------------------------------------------------------------------------

/// What a masked value becomes.
pub const MASK_TEXT: &str = "[REDACTED]";

/// Whether `key` names a secret under `secret_keys`: it ends with one of
/// them once both are lower-cased without `_ - .` and spaces. Written apart
/// from Herald's matcher.
pub fn is_secret_key(key: &str, secret_keys: &[String]) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let key = norm(key);
    secret_keys.iter().any(|s| key.ends_with(&norm(s)))
}

pub fn redact_action() -> BoxedStrategy<RedactAction> {
    select(vec![
        RedactAction::Drop,
        RedactAction::Mask,
        RedactAction::Hash,
    ])
    .boxed()
}

/// The secret keys a tenant might configure: the built-in list, none at
/// all (secret scrubbing off), or a short list of its own in any spelling.
pub fn secret_key_list() -> BoxedStrategy<Vec<String>> {
    prop_oneof![
        3 => Just(RedactionPolicy::default().secret_keys),
        1 => Just(Vec::new()),
        2 => proptest::sample::subsequence(vec!["TOKEN", "pass-word", "pin", "key", "Secret", "authorization"], 1..4)
            .prop_map(|keys| keys.into_iter().map(String::from).collect()),
    ]
    .boxed()
}

/// Rule paths into the parts planted and generated bodies have: named
/// fields, extra keys, nested objects and arrays, wildcards, paths that
/// miss, and parts rules cannot address.
pub const RULE_PATHS: [&str; 26] = [
    "/data/*",
    "/data/nest9/*",
    "/data/nest9/deeper9/*",
    "/data/list9/*",
    "/data/list9/0",
    "/data/list9/x",
    "/data/keys9/*",
    "/data/note9",
    "/data/nowhere9/x",
    "/metadata/*",
    "/metadata/deep9/er9/*",
    "/metadata/list9/1",
    "/actor/user_id",
    "/actor/*",
    "/actor/email_hash",
    "/actor/email",
    "/object/order_id",
    "/object/*",
    "/object/extra9/*",
    "/context/ip",
    "/context/*",
    "/context/environment",
    "/context/extra9/more9/*",
    "/correlation/trace_id",
    "/outcome/message",
    "/evidence/log_references/0",
];

pub fn rule_path() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(RULE_PATHS.to_vec()).prop_map(String::from),
        1 => (select(vec!["/data", "/actor", "/object", "/context", "/metadata"]), 0usize..10)
            .prop_map(|(part, i)| format!("{part}/plant{i}")),
    ]
    .boxed()
}

/// A tenant's policy: any secret action, each switch on or off, any secret
/// keys, and a few path rules with any action.
pub fn redaction_policy() -> BoxedStrategy<RedactionPolicy> {
    (
        redact_action(),
        any::<bool>(),
        any::<bool>(),
        secret_key_list(),
        proptest::collection::vec((rule_path(), redact_action()), 0..4),
    )
        .prop_map(
            |(secret_action, hash_emails, mask_card_numbers, secret_keys, rules)| RedactionPolicy {
                secret_keys,
                secret_action,
                hash_emails,
                mask_card_numbers,
                rules: rules
                    .into_iter()
                    .map(|(path, action)| PathRule { path, action })
                    .collect(),
            },
        )
        .boxed()
}

/// Applies one path rule to an event in its JSON form, as a tenant reads
/// the rule: `*` is any key (named fields and extra keys alike) or array
/// index; only actor, object, context (not its environment), data and
/// metadata are addressable; drop removes, mask writes `[REDACTED]`, hash
/// writes `hash:` and the keyed hash of the text (of the JSON text for a
/// value that is not a string).
pub fn apply_rule(event: &mut Value, rule: &PathRule, hasher: &EmailHasher) {
    let tokens: Vec<String> = rule
        .path
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((part, rest)) = tokens.split_first() else {
        return;
    };
    if rest.is_empty()
        || !["actor", "object", "context", "data", "metadata"].contains(&part.as_str())
    {
        return;
    }
    let Some(target) = event.get_mut(part.as_str()) else {
        return;
    };
    rule_walk(target, rest, rule.action, hasher, part == "context");
}

fn rule_redacted(v: &Value, action: RedactAction, hasher: &EmailHasher) -> Value {
    match action {
        RedactAction::Drop | RedactAction::Mask => MASK_TEXT.into(),
        RedactAction::Hash => {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("hash:{}", hasher.hash(&text)).into()
        }
    }
}

fn rule_walk(
    v: &mut Value,
    path: &[String],
    action: RedactAction,
    hasher: &EmailHasher,
    context: bool,
) {
    let Some((head, rest)) = path.split_first() else {
        return;
    };
    match v {
        Value::Object(m) => {
            let keys: Vec<String> = if head == "*" {
                m.keys().cloned().collect()
            } else {
                vec![head.clone()]
            };
            for key in keys {
                if context && key == "environment" {
                    continue;
                }
                if rest.is_empty() {
                    if action == RedactAction::Drop {
                        m.shift_remove(&key);
                    } else if let Some(x) = m.get_mut(&key) {
                        *x = rule_redacted(x, action, hasher);
                    }
                } else if let Some(x) = m.get_mut(&key) {
                    rule_walk(x, rest, action, hasher, false);
                }
            }
        }
        Value::Array(items) => {
            let indices: Vec<usize> = if head == "*" {
                (0..items.len()).collect()
            } else {
                head.parse()
                    .ok()
                    .filter(|i| *i < items.len())
                    .into_iter()
                    .collect()
            };
            for i in indices.into_iter().rev() {
                if rest.is_empty() {
                    if action == RedactAction::Drop {
                        items.remove(i);
                    } else {
                        items[i] = rule_redacted(&items[i], action, hasher);
                    }
                } else {
                    rule_walk(&mut items[i], rest, action, hasher, false);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Business keys (property 10)
// ---------------------------------------------------------------------------

/// The keys an event without trace context correlates by, strongest first
/// (the correlation keys' order, span id left out: it names one operation).
pub const BUSINESS_KEYS: [CorrelationKey; 7] = [
    CorrelationKey::CorrelationId,
    CorrelationKey::RequestId,
    CorrelationKey::OrderId,
    CorrelationKey::SessionId,
    CorrelationKey::TicketId,
    CorrelationKey::UserId,
    CorrelationKey::EmailHash,
];

/// Where a business key is sent: its section and every spelling.
fn business_key_place(key: CorrelationKey) -> (&'static str, &'static [&'static str]) {
    match key {
        CorrelationKey::CorrelationId => ("correlation", &["correlation_id", "correlationId"]),
        CorrelationKey::RequestId => ("object", &["request_id", "requestId"]),
        CorrelationKey::OrderId => ("object", &["order_id", "orderId"]),
        CorrelationKey::SessionId => ("object", &["session_id", "sessionId"]),
        CorrelationKey::TicketId => ("object", &["ticket_id", "ticketId"]),
        CorrelationKey::UserId => ("actor", &["user_id", "userId"]),
        CorrelationKey::EmailHash => ("actor", &["email_hash"]),
        CorrelationKey::TraceId | CorrelationKey::SpanId => unreachable!("not a business key"),
    }
}

/// Removes every trace id and traceparent from a body (span ids stay: they
/// are not trace context on their own).
pub fn strip_trace_context(body: &mut Value) {
    let map = body.as_object_mut().expect("a body object");
    map.remove("traceparent");
    if let Some(Value::Object(c)) = map.get_mut("correlation") {
        c.remove("trace_id");
        c.remove("traceId");
    }
}

/// Prefixes every business key of a body with `side`, so the keys of two
/// bodies differ; an actor's email gets the prefix too (its hash is one).
pub fn distinguish_business_keys(body: &mut Value, side: &str) {
    let map = body.as_object_mut().expect("a body object");
    if let Some(v) = map.get_mut("user_id") {
        *v = Value::from(format!("{side}-{}", id_text(v).expect("an id")));
    }
    for key in BUSINESS_KEYS {
        let (section, spellings) = business_key_place(key);
        if let Some(Value::Object(m)) = map.get_mut(section) {
            for k in spellings {
                if let Some(v) = m.get_mut(*k) {
                    *v = Value::from(format!("{side}-{}", id_text(v).expect("an id")));
                }
            }
        }
    }
    if let Some(Value::Object(actor)) = map.get_mut("actor")
        && let Some(Value::String(email)) = actor.get_mut("email")
    {
        *email = format!("{side}-{email}");
    }
}

/// Sets one business key (and only one spelling of it).
pub fn set_business_key(body: &mut Value, key: CorrelationKey, value: String) {
    if key == CorrelationKey::UserId {
        body.as_object_mut()
            .expect("a body object")
            .remove("user_id");
    }
    let (section, spellings) = business_key_place(key);
    put_named(body, section, spellings, Value::from(value));
}

/// The strongest business key of a body, worked out from the body: the
/// first of [`BUSINESS_KEYS`] it sends (non-empty), the email hash being the
/// one sent or else the hash of `actor.email`.
pub fn strongest_business_key(
    body: &Value,
    hasher: &EmailHasher,
) -> Option<(CorrelationKey, String)> {
    let section = |s: &str| body.get(s).and_then(Value::as_object);
    BUSINESS_KEYS.into_iter().find_map(|key| {
        let (s, spellings) = business_key_place(key);
        let mut value = first_id(section(s), spellings);
        if key == CorrelationKey::UserId {
            value = body.get("user_id").and_then(id_text).or(value);
        }
        if key == CorrelationKey::EmailHash && value.is_none() {
            value = section("actor")
                .and_then(|a| a.get("email"))
                .and_then(Value::as_str)
                .map(|e| hasher.hash(e));
        }
        value.filter(|v| !v.is_empty()).map(|v| (key, v))
    })
}
