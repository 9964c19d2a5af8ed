//! The closed sets and rule-carrying values of the canonical event:
//! categories, sources, statuses, and the newtypes (`EventId`, `TenantId`,
//! `EventType`, `StreamId`) that can only be built by parsing, so an invalid
//! one cannot exist past the edge.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares a string-valued enum with its wire names, `ALL`, parsing and
/// serde in one place so the names cannot drift apart.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The snake_case wire name.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// Parses a wire name; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }

            /// The allowed wire names joined for an error message.
            pub fn allowed() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { s.serialize_str(self.as_str()) }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| serde::de::Error::custom(format!(
                    "unknown {} `{}`; expected one of: {}", stringify!($name), s, $name::allowed())))
            }
        }
    };
}

string_enum! {
    /// The four categories. Every event has exactly one.
    Category { Business = "business", System = "system", Delivery = "delivery", Security = "security" }
}

string_enum! {
    /// The finer classification; optional, and derives `Category`
    /// when that is absent.
    EventCategory {
        UserAction = "user_action", PageView = "page_view", FormSubmit = "form_submit", Click = "click",
        UserLifecycle = "user_lifecycle", Payment = "payment", Order = "order", Task = "task",
        System = "system", Security = "security", Performance = "performance", Error = "error",
        Device = "device", DeviceStatus = "device_status", Telemetry = "telemetry",
        Command = "command", Alert = "alert",
    }
}

impl EventCategory {
    /// The derivation table: security → security; system,
    /// performance, error, device*, telemetry, command, alert → system; the
    /// rest → business.
    pub const fn category(self) -> Category {
        use EventCategory::*;
        match self {
            Security => Category::Security,
            System | Performance | Error | Device | DeviceStatus | Telemetry | Command | Alert => {
                Category::System
            }
            UserAction | PageView | FormSubmit | Click | UserLifecycle | Payment | Order | Task => {
                Category::Business
            }
        }
    }
}

string_enum! {
    /// Where an event came from. Default `backend`.
    EventSource {
        Frontend = "frontend", Backend = "backend", System = "system",
        IotDevice = "iot_device", ExternalApi = "external_api", Scheduled = "scheduled",
    }
}

string_enum! {
    /// The result an event reports (Property 8: Outcome Classification).
    /// Default `success`.
    OutcomeStatus { Success = "success", Failure = "failure", Pending = "pending" }
}

string_enum! {
    /// Herald's processing lifecycle of a stored event: `pending` when
    /// stored, then `processing`, `processed` or `failed`; `archived` last.
    EventStatus {
        Pending = "pending", Processing = "processing", Processed = "processed",
        Failed = "failed", Archived = "archived",
    }
}

/// Why a string was refused as one of the newtypes below.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// Herald's id for an event: a UUIDv7, assigned at ingest, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "uuid::Uuid", into = "uuid::Uuid")]
pub struct EventId(uuid::Uuid);

impl EventId {
    /// Accepts only version-7 UUIDs: ids Herald issued.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let uuid = uuid::Uuid::try_parse(s)
            .map_err(|_| ParseError(format!("`{}` is not a UUID", truncate(s, 64))))?;
        Self::try_from(uuid)
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Result<Self, ParseError> {
        Self::try_from(uuid::Uuid::from_bytes(bytes))
    }

    /// Wraps a UUID the caller built as version 7 (an [`crate::clock::IdSource`]).
    pub(crate) fn from_v7(uuid: uuid::Uuid) -> Self {
        debug_assert_eq!(uuid.get_version_num(), 7);
        EventId(uuid)
    }

    pub fn as_uuid(&self) -> &uuid::Uuid {
        &self.0
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl TryFrom<uuid::Uuid> for EventId {
    type Error = ParseError;
    fn try_from(u: uuid::Uuid) -> Result<Self, ParseError> {
        if u.get_version_num() == 7 {
            Ok(EventId(u))
        } else {
            Err(ParseError(format!("`{u}` is not a UUIDv7 event id")))
        }
    }
}

impl From<EventId> for uuid::Uuid {
    fn from(id: EventId) -> Self {
        id.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Declares a validated string newtype with `parse`, `as_str`, `Display`
/// and serde that re-validates on the way in.
macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident, $check:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, ParseError> {
                let s = s.into();
                $check(&s)?;
                Ok($name(s))
            }
            pub fn as_str(&self) -> &str { &self.0 }
        }
        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, ParseError> { Self::parse(s) }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String { v.0 }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str { &self.0 }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(&self.0) }
        }
    };
}

/// Longest event type, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 256;
/// Longest tenant id, in bytes.
pub const MAX_TENANT_ID_LEN: usize = 64;
/// Longest stream id, in bytes.
pub const MAX_STREAM_ID_LEN: usize = 512;

fn check_tenant_id(s: &str) -> Result<(), ParseError> {
    if s.is_empty() || s.len() > MAX_TENANT_ID_LEN {
        return Err(ParseError(format!(
            "a tenant id has 1 to {MAX_TENANT_ID_LEN} characters"
        )));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ParseError(
            "a tenant id uses only ASCII letters, digits, `-` and `_`".into(),
        ));
    }
    Ok(())
}

fn check_event_type(s: &str) -> Result<(), ParseError> {
    if s.is_empty() {
        return Err(ParseError("an event type must not be empty".into()));
    }
    if s.len() > MAX_EVENT_TYPE_LEN {
        return Err(ParseError(format!(
            "an event type has at most {MAX_EVENT_TYPE_LEN} bytes, got {}",
            s.len()
        )));
    }
    if s.trim() != s {
        return Err(ParseError(
            "an event type must not start or end with whitespace".into(),
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control() || *c == '*' || *c == '>') {
        return Err(ParseError(format!(
            "an event type must not contain {c:?}: control characters are refused and `*` and `>` are pattern wildcards"
        )));
    }
    Ok(())
}

fn check_stream_id(s: &str) -> Result<(), ParseError> {
    if s.len() > MAX_STREAM_ID_LEN {
        return Err(ParseError(format!(
            "a stream id has at most {MAX_STREAM_ID_LEN} bytes"
        )));
    }
    let Some((entity_type, entity_id)) = s.split_once(':') else {
        return Err(ParseError(format!(
            "a stream id is `{{entity_type}}:{{entity_id}}`, like `order:123`; got `{}`",
            truncate(s, 64)
        )));
    };
    if entity_type.is_empty() || entity_id.is_empty() {
        return Err(ParseError(
            "both halves of `{entity_type}:{entity_id}` must be non-empty".into(),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ParseError(
            "a stream id must not contain control characters".into(),
        ));
    }
    Ok(())
}

string_newtype! {
    /// A tenant: 1–64 ASCII letters, digits, `-`, `_`. Always from the API
    /// key, never from a request body.
    TenantId, check_tenant_id
}

string_newtype! {
    /// An event's name (`payment_authorized`, `user.registered`): 1–256
    /// bytes, no control characters, no surrounding whitespace, no `*`/`>`.
    EventType, check_event_type
}

string_newtype! {
    /// `{entity_type}:{entity_id}`: the entity whose event stream an event
    /// is appended to.
    StreamId, check_stream_id
}

impl StreamId {
    pub fn entity_type(&self) -> &str {
        self.0.split_once(':').map_or("", |(t, _)| t)
    }
    pub fn entity_id(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, id)| id)
    }
}

/// Cuts `s` to at most `max` bytes on a char boundary, for quoting input in
/// messages without echoing megabytes back.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_category_derivation_matches_design_table() {
        use EventCategory::*;
        let system = [
            System,
            Performance,
            Error,
            Device,
            DeviceStatus,
            Telemetry,
            Command,
            Alert,
        ];
        for ec in EventCategory::ALL {
            let want = if *ec == Security {
                Category::Security
            } else if system.contains(ec) {
                Category::System
            } else {
                Category::Business
            };
            assert_eq!(ec.category(), want, "{ec}");
        }
    }

    #[test]
    fn newtypes_refuse_bad_input() {
        assert!(EventType::parse("order.created").is_ok());
        assert!(EventType::parse("Order Completed").is_ok());
        assert!(EventType::parse("").is_err());
        assert!(EventType::parse(" padded").is_err());
        assert!(EventType::parse("order.*").is_err());
        assert!(EventType::parse("a\u{0}b").is_err());
        assert!(StreamId::parse("order:1").is_ok());
        assert!(StreamId::parse("order").is_err());
        assert!(StreamId::parse(":1").is_err());
        assert!(TenantId::parse("acme_1-x").is_ok());
        assert!(TenantId::parse("acme corp").is_err());
        assert!(EventId::parse(&uuid::Uuid::nil().to_string()).is_err());
        let id = crate::clock::IdSource::event_id(
            &crate::clock::UuidV7Ids::default(),
            crate::Timestamp::now(),
        );
        assert_eq!(EventId::parse(&id.to_string()), Ok(id));
    }
}
