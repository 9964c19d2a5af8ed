//! The ingest request's objects taken apart by key: each known key into its
//! slot, every other key (in the sender's order) into `rest`. Built straight
//! from JSON bytes by a serde visitor, with no map built and no string
//! allocated for a known key, or from an already parsed `Value`. Either way
//! the same keys land in the same slots, a repeated key keeps its last value
//! (as in a `serde_json::Map`), and serde_json's own reader reports syntax
//! errors and enforces its nesting limit exactly as when parsing a `Value`.

use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The known keys of one kind of object; a key's slot is its position.
pub(crate) struct Shape {
    keys: &'static [&'static str],
    /// The slot of a key: comparisons against constants, unrolled.
    slot: fn(&str) -> Option<usize>,
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys).finish()
    }
}

macro_rules! shape {
    ($($key:literal),+ $(,)?) => {{
        fn slot(key: &str) -> Option<usize> {
            let mut i = 0;
            $(
                if key == $key {
                    return Some(i);
                }
                i += 1;
            )+
            let _ = i;
            None
        }
        Shape { keys: &[$($key),+], slot }
    }};
}

/// The top level's keys other than the six parts below.
pub(crate) const TOP: Shape = shape![
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
    "user_id",
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

/// The parts of an event that are objects of named fields.
const PARTS: [&str; 6] = [
    "actor",
    "object",
    "correlation",
    "outcome",
    "evidence",
    "context",
];
pub(crate) const ACTOR: usize = 0;
pub(crate) const OBJECT: usize = 1;
pub(crate) const CORRELATION: usize = 2;
pub(crate) const OUTCOME: usize = 3;
pub(crate) const EVIDENCE: usize = 4;
pub(crate) const CONTEXT: usize = 5;

const PART_SHAPES: [Shape; 6] = [
    shape![
        "user_id",
        "userId",
        "email_hash",
        "service_name",
        "serviceName",
        "role",
        "anonymous_id",
        "anonymousId",
    ],
    shape![
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
    ],
    shape![
        "trace_id",
        "traceId",
        "span_id",
        "spanId",
        "correlation_id",
        "correlationId",
        "parent_event_id",
        "parentEventId",
    ],
    shape![
        "status",
        "error_class",
        "errorClass",
        "error_code",
        "errorCode",
        "message",
    ],
    shape![
        "github",
        "raw_pointer",
        "raw_s3_pointer",
        "trace_url",
        "log_references",
    ],
    shape![
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
    ],
];

/// Where each object's slots start in [`Body::slots`]: the top level's,
/// then each part's, and the end.
const OFFSETS: [usize; 8] = {
    let mut offsets = [0; 8];
    offsets[1] = TOP.keys.len();
    let mut i = 0;
    while i < 6 {
        offsets[i + 2] = offsets[i + 1] + PART_SHAPES[i].keys.len();
        i += 1;
    }
    offsets
};
const SLOTS: usize = OFFSETS[7];

/// Takes a key's value out, like `Map::shift_remove`.
pub(crate) trait Take {
    fn take(&mut self, key: &str) -> Option<Value>;
}

impl Take for Map<String, Value> {
    fn take(&mut self, key: &str) -> Option<Value> {
        self.shift_remove(key)
    }
}

/// How a part was sent.
#[derive(Debug, PartialEq)]
enum Sent {
    Absent,
    Object,
    /// Anything but an object, kept for the error message.
    Other(Value),
}

/// A top-level JSON object by slot, its parts taken apart too: every
/// object's known keys in one array of slots, its other keys in a map of
/// its own (made only when there is one). Decoded in place, by reference.
#[derive(Debug, PartialEq)]
pub(crate) struct Body {
    slots: Vec<Option<Value>>,
    /// Unknown keys, in order: the top level's, then each part's.
    rests: [Option<Map<String, Value>>; 7],
    parts: [Sent; 6],
}

/// One object of a [`Body`]: its slots and its unknown keys.
pub(crate) struct FieldsMut<'b> {
    shape: &'b Shape,
    slots: &'b mut [Option<Value>],
    rest: &'b mut Option<Map<String, Value>>,
}

impl FieldsMut<'_> {
    /// The keys the shape does not know, in the sender's order.
    pub(crate) fn take_rest(&mut self) -> Map<String, Value> {
        self.rest.take().unwrap_or_default()
    }

    /// Whether every known key has been taken.
    pub(crate) fn slots_taken(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }
}

impl Take for FieldsMut<'_> {
    fn take(&mut self, key: &str) -> Option<Value> {
        match (self.shape.slot)(key) {
            Some(i) => self.slots[i].take(),
            None => self.rest.as_mut()?.shift_remove(key),
        }
    }
}

/// A part as sent: an object by slot, or anything else (`null` counts as
/// absent).
pub(crate) enum PartMut<'b> {
    Object(FieldsMut<'b>),
    Other(&'b Value),
}

impl Body {
    fn new() -> Box<Body> {
        Box::new(Body {
            slots: std::iter::repeat_with(|| None).take(SLOTS).collect(),
            rests: Default::default(),
            parts: [const { Sent::Absent }; 6],
        })
    }

    /// The top level's slots and unknown keys.
    pub(crate) fn top(&mut self) -> FieldsMut<'_> {
        FieldsMut {
            shape: &TOP,
            slots: &mut self.slots[..OFFSETS[1]],
            rest: &mut self.rests[0],
        }
    }

    /// A part, when it was sent.
    pub(crate) fn part(&mut self, part: usize) -> Option<PartMut<'_>> {
        match &self.parts[part] {
            Sent::Absent => None,
            Sent::Other(value) => Some(PartMut::Other(value)),
            Sent::Object => Some(PartMut::Object(FieldsMut {
                shape: &PART_SHAPES[part],
                slots: &mut self.slots[OFFSETS[part + 1]..OFFSETS[part + 2]],
                rest: &mut self.rests[part + 1],
            })),
        }
    }

    /// Starts part `part` afresh: a repeated key's last value wins whole.
    fn reset_part(&mut self, part: usize, sent: Sent) {
        if self.parts[part] == Sent::Object {
            self.slots[OFFSETS[part + 1]..OFFSETS[part + 2]].fill(None);
            self.rests[part + 1] = None;
        }
        self.parts[part] = sent;
    }

    /// Puts `value` under `key` of object `object` (0 the top level, then
    /// the parts), given the key's slot in that object's shape if known.
    fn put(&mut self, object: usize, slot: Option<usize>, key: &str, value: Value) {
        match slot {
            Some(i) => self.slots[OFFSETS[object] + i] = Some(value),
            None => {
                self.rests[object]
                    .get_or_insert_with(Map::new)
                    .insert(key.to_owned(), value);
            }
        }
    }

    /// The body of an already parsed value; anything but an object is
    /// handed back.
    pub(crate) fn from_value(value: Value) -> Result<Box<Body>, Value> {
        let Value::Object(map) = value else {
            return Err(value);
        };
        let mut body = Body::new();
        for (key, value) in map {
            if let Some(part) = PARTS.iter().position(|p| *p == key) {
                let Value::Object(fields) = value else {
                    body.reset_part(part, Sent::Other(value));
                    continue;
                };
                body.reset_part(part, Sent::Object);
                for (key, value) in fields {
                    let slot = (PART_SHAPES[part].slot)(&key);
                    body.put(part + 1, slot, &key, value);
                }
            } else {
                body.put(0, (TOP.slot)(&key), &key, value);
            }
        }
        Ok(body)
    }

    /// The body read from JSON bytes; a JSON value that is not an object is
    /// handed back (as `Ok(Err(value))`).
    pub(crate) fn from_slice(bytes: &[u8]) -> serde_json::Result<Result<Box<Body>, Value>> {
        // Valid UTF-8 is checked once for the whole body, not string by
        // string; invalid bytes take the slice reader, which says where.
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::read(&mut serde_json::Deserializer::from_str(text)),
            Err(_) => Self::read(&mut serde_json::Deserializer::from_slice(bytes)),
        }
    }

    fn read<'de, R: serde_json::de::Read<'de>>(
        de: &mut serde_json::Deserializer<R>,
    ) -> serde_json::Result<Result<Box<Body>, Value>> {
        let mut body = Body::new();
        let read = de.deserialize_any(ObjectOr(Fill {
            body: &mut body,
            object: 0,
        }))?;
        de.end()?;
        Ok(read.map(|()| body))
    }
}

/// What a visitor makes of a JSON object; anything else becomes a `Value`.
trait OnObject<'de> {
    type Out;
    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error>;
    fn other(self, value: Value) -> Self::Out;
}

/// A visitor handing objects to `T` and building anything else exactly as
/// serde_json's own `Value` visitor would.
struct ObjectOr<T>(T);

impl<'de, T: OnObject<'de>> Visitor<'de> for ObjectOr<T> {
    type Value = T::Out;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<T::Out, E> {
        Ok(self.0.other(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<T::Out, E> {
        Ok(self.0.other(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<T::Out, E> {
        Ok(self.0.other(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<T::Out, E> {
        Ok(self
            .0
            .other(Number::from_f64(v).map_or(Value::Null, Value::Number)))
    }
    fn visit_str<E>(self, v: &str) -> Result<T::Out, E> {
        Ok(self.0.other(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<T::Out, E> {
        Ok(self.0.other(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<T::Out, E> {
        Ok(self.0.other(Value::Null))
    }
    fn visit_none<E>(self) -> Result<T::Out, E> {
        Ok(self.0.other(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T::Out, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(self.0.other(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T::Out, A::Error> {
        self.0.object(map)
    }
}

/// Where a key goes.
enum Key {
    Part(usize),
    Slot(usize),
    Other(String),
}

/// Reads a key as borrowed text (no allocation unless it is unknown) and
/// finds its place: a part (at the top level only) or a slot of `shape`.
struct KeySeed {
    shape: &'static Shape,
    top: bool,
}

impl KeySeed {
    fn place(&self, key: &str) -> Option<Key> {
        if self.top
            && let Some(i) = PARTS.iter().position(|p| *p == key)
        {
            return Some(Key::Part(i));
        }
        (self.shape.slot)(key).map(Key::Slot)
    }
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, key: &str) -> Result<Key, E> {
        Ok(self
            .place(key)
            .unwrap_or_else(|| Key::Other(key.to_owned())))
    }
    fn visit_string<E>(self, key: String) -> Result<Key, E> {
        Ok(self.place(&key).unwrap_or(Key::Other(key)))
    }
}

/// Reads one object of the body (0 the top level, then the parts) straight
/// into its slots.
struct Fill<'b> {
    body: &'b mut Body,
    object: usize,
}

impl<'de> OnObject<'de> for Fill<'_> {
    /// At the top level, a value that is not an object is handed back.
    type Out = Result<(), Value>;

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let object = self.object;
        if object > 0 {
            self.body.reset_part(object - 1, Sent::Object);
        }
        let shape = if object == 0 {
            &TOP
        } else {
            &PART_SHAPES[object - 1]
        };
        let keys = || KeySeed {
            shape,
            top: object == 0,
        };
        while let Some(key) = map.next_key_seed(keys())? {
            match key {
                Key::Part(part) => map.next_value_seed(Fill {
                    body: &mut *self.body,
                    object: part + 1,
                })?,
                Key::Slot(i) => {
                    self.body.slots[OFFSETS[object] + i] = Some(map.next_value()?);
                }
                Key::Other(key) => {
                    let value = map.next_value()?;
                    self.body.rests[object]
                        .get_or_insert_with(Map::new)
                        .insert(key, value);
                }
            }
        }
        Ok(Ok(()))
    }

    fn other(self, value: Value) -> Self::Out {
        if self.object == 0 {
            return Err(value);
        }
        self.body.reset_part(self.object - 1, Sent::Other(value));
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Fill<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // A part is never the top level, so never handed back.
        d.deserialize_any(ObjectOr(self)).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of building a body agree, on every key kind, on repeated
    /// keys (the last value wins, the first position stays; a repeated part
    /// is replaced whole) and on anything that is not an object.
    #[test]
    fn bytes_and_values_take_a_body_apart_alike() {
        let text = r#"{"zeta":1,"actor":{"role":"a","x":1,"role":"b","y":{"z":[1]},"x":2},
            "event_type":"t","data":{"k":[true,null,1.5]},"alpha":2,"zeta":3,"object":[1],
            "context":null,"user_id":7,"evidence":{"github":{"pr":1}},"event_type":"u",
            "outcome":{"status":"failure","q":1},"outcome":{"message":"m"},
            "correlation":{"trace_id":"t"},"correlation":"no"}"#;
        let mut b = Body::from_slice(text.as_bytes()).unwrap().unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(b, Body::from_value(value).unwrap());

        let mut top = b.top();
        assert_eq!(top.take("event_type"), Some(Value::from("u")));
        assert_eq!(top.take("user_id"), Some(Value::from(7)));
        assert_eq!(top.take("type"), None);
        let rest = top.take_rest();
        assert_eq!(rest.keys().collect::<Vec<_>>(), ["zeta", "alpha"]);
        assert_eq!(rest["zeta"], 3);
        let Some(PartMut::Object(mut actor)) = b.part(ACTOR) else {
            panic!("actor is an object")
        };
        assert_eq!(actor.take("role"), Some(Value::from("b")));
        assert!(actor.slots_taken());
        assert_eq!(
            actor.take_rest(),
            serde_json::from_str::<Map<String, Value>>(r#"{"x":2,"y":{"z":[1]}}"#).unwrap()
        );
        let Some(PartMut::Object(mut outcome)) = b.part(OUTCOME) else {
            panic!("outcome is an object")
        };
        assert_eq!(outcome.take("status"), None, "the first outcome is gone");
        assert_eq!(outcome.take("message"), Some(Value::from("m")));
        assert!(outcome.take_rest().is_empty());
        assert!(matches!(
            b.part(CORRELATION),
            Some(PartMut::Other(Value::String(_)))
        ));
        assert!(matches!(
            b.part(OBJECT),
            Some(PartMut::Other(Value::Array(_)))
        ));
        assert!(matches!(b.part(CONTEXT), Some(PartMut::Other(Value::Null))));

        for not_an_object in ["[1,{\"a\":2}]", "\"s\"", "12", "-1", "1.5", "true", "null"] {
            let want: Value = serde_json::from_str(not_an_object).unwrap();
            let got = Body::from_slice(not_an_object.as_bytes())
                .unwrap()
                .unwrap_err();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn every_key_finds_its_slot_and_no_other_key_does() {
        for shape in std::iter::once(&TOP).chain(PART_SHAPES.iter()) {
            for (i, key) in shape.keys.iter().enumerate() {
                assert_eq!((shape.slot)(key), Some(i), "{key}");
            }
            for other in [
                "",
                "x",
                "event_typ",
                "event_type_",
                "Event_type",
                "userid",
                "ééé",
            ] {
                assert_eq!((shape.slot)(other), None, "{other}");
            }
        }
    }

    #[test]
    fn bytes_fail_as_serde_json_fails() {
        for bad in [
            "{\"a\":1,}",
            "{\"a\":1e400}",
            "[1e400]",
            "{} x",
            "{\"actor\":{\"a\" 1}}",
            "",
            "{\"a\":\"\u{0}\"}",
        ] {
            let want = serde_json::from_str::<Value>(bad).unwrap_err().to_string();
            let got = Body::from_slice(bad.as_bytes()).unwrap_err().to_string();
            assert_eq!(got, want, "{bad}");
        }
        // Invalid UTF-8, in a key or a value: the slice reader's message.
        for bad in [
            &b"{\"a\":\"\xff\"}"[..],
            b"{\"\xc3\":1}",
            b"{\"data\":[\"ok\",\"\xe2\x82\"]}",
        ] {
            let want = serde_json::from_slice::<Value>(bad)
                .unwrap_err()
                .to_string();
            let got = Body::from_slice(bad).unwrap_err().to_string();
            assert_eq!(got, want);
        }
        let deep = format!("{{\"actor\":{}1{}}}", "[".repeat(127), "]".repeat(127));
        let want = serde_json::from_str::<Value>(&deep)
            .unwrap_err()
            .to_string();
        assert_eq!(
            Body::from_slice(deep.as_bytes()).unwrap_err().to_string(),
            want
        );
    }
}
