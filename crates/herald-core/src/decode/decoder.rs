//! The decoder's walk over one request: typed reads of strings, ids,
//! enums and numbers that report every bad field at its JSON pointer, the
//! parts (actor, object, correlation, outcome, evidence, context), and
//! where unknown keys are kept.

use super::*;

/// One walk's state: where findings go and the limits in force.
pub(super) struct Decoder<'a> {
    pub(super) f: &'a mut Findings,
    pub(super) limits: &'a Limits,
    /// Keys no shape knows, by their path in the request (`["zz"]`,
    /// `["correlation", "zz"]`), kept under `metadata.unknown_fields` last.
    pub(super) unknown: Vec<(Vec<String>, Value)>,
}

impl Decoder<'_> {
    /// A string under `key` of `map`, reported at `{base}/{key}`. `null`
    /// counts as absent.
    pub(super) fn string_in(
        &mut self,
        map: &mut dyn Take,
        key: &str,
        base: &str,
    ) -> Option<String> {
        match map.take(key)? {
            Value::Null => None,
            Value::String(s) => self.checked_len(s, base, key),
            other => {
                self.f.error(
                    pointer_push(base, key),
                    ErrorKind::InvalidType,
                    format!("expected a string, got {}", type_name(&other)),
                );
                None
            }
        }
    }

    pub(super) fn string_field(
        &mut self,
        map: &mut dyn Take,
        key: &str,
        base: &str,
    ) -> Option<String> {
        self.string_in(map, key, base)
    }

    /// An identifier: a string, or an integer taken as its decimal text.
    pub(super) fn id_field(&mut self, map: &mut dyn Take, key: &str, base: &str) -> Option<String> {
        match map.take(key)? {
            Value::Null => None,
            Value::String(s) => self.checked_len(s, base, key),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            other => {
                self.f.error(
                    pointer_push(base, key),
                    ErrorKind::InvalidType,
                    format!(
                        "expected a string (or an integer) identifier, got {}",
                        type_name(&other)
                    ),
                );
                None
            }
        }
    }

    /// Like `id_field`, trying camelCase aliases when the snake_case key is absent.
    pub(super) fn id_aliased(
        &mut self,
        map: &mut dyn Take,
        keys: &[&str],
        base: &str,
    ) -> Option<String> {
        let mut found = None;
        for key in keys {
            if let Some(v) = self.id_field(map, key, base) {
                match &found {
                    None => found = Some(v),
                    Some(first) if *first != v => self.f.error(
                        pointer_push(base, key),
                        ErrorKind::InvalidValue,
                        format!(
                            "`{key}` is an alias of `{}` and disagrees with it; send one",
                            keys[0]
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
        found
    }

    pub(super) fn checked_len(&mut self, s: String, base: &str, key: &str) -> Option<String> {
        if s.len() > self.limits.max_field_bytes {
            self.f.error(
                pointer_push(base, key),
                ErrorKind::TooLarge,
                format!(
                    "{} bytes; this field holds at most {} bytes",
                    s.len(),
                    self.limits.max_field_bytes
                ),
            );
            return None;
        }
        Some(s)
    }

    /// The first of several alias keys that is present; a second alias with a
    /// different value is an error.
    pub(super) fn aliased_string(
        &mut self,
        map: &mut dyn Take,
        keys: &[&'static str],
    ) -> Option<(&'static str, String)> {
        let mut found: Option<(&'static str, String)> = None;
        for &key in keys {
            if let Some(v) = self.string_in(map, key, "") {
                match &found {
                    None => found = Some((key, v)),
                    Some((first, existing)) if *existing != v => self.f.error(
                        pointer_push("", key),
                        ErrorKind::InvalidValue,
                        format!(
                            "`{key}` is an alias of `{first}` and disagrees with it (`{}` vs `{}`); send one",
                            truncate(&v, 64),
                            truncate(existing, 64)
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
        found
    }

    pub(super) fn enum_field<T>(
        &mut self,
        map: &mut dyn Take,
        key: &str,
        parse: fn(&str) -> Option<T>,
        allowed: fn() -> String,
    ) -> Option<T> {
        let s = self.string_in(map, key, "")?;
        let parsed = parse(&s);
        if parsed.is_none() {
            self.f.error(
                pointer_push("", key),
                ErrorKind::InvalidValue,
                format!(
                    "`{}` is not allowed; expected one of: {}",
                    truncate(&s, 64),
                    allowed()
                ),
            );
        }
        parsed
    }

    pub(super) fn unsigned(&mut self, map: &mut dyn Take, key: &str) -> Option<u64> {
        match map.take(key)? {
            Value::Null => None,
            Value::Number(n) if n.is_u64() => n.as_u64(),
            other => {
                self.f.error(
                    pointer_push("", key),
                    ErrorKind::InvalidType,
                    format!("expected a non-negative integer, got {}", describe(&other)),
                );
                None
            }
        }
    }

    /// A part that is a JSON object (or absent/null), reported at
    /// `pointer` otherwise.
    pub(super) fn part<'p>(
        &mut self,
        v: Option<PartMut<'p>>,
        pointer: &str,
    ) -> Option<FieldsMut<'p>> {
        match v? {
            PartMut::Object(fields) => Some(fields),
            PartMut::Other(Value::Null) => None,
            PartMut::Other(other) => {
                self.f.error(
                    pointer,
                    ErrorKind::InvalidType,
                    format!("expected a JSON object, got {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A JSON object (or absent/null), reported at `pointer` otherwise.
    pub(super) fn object_field(
        &mut self,
        v: Option<Value>,
        pointer: &str,
    ) -> Option<Map<String, Value>> {
        match v? {
            Value::Null => None,
            Value::Object(m) => Some(m),
            other => {
                self.f.error(
                    pointer,
                    ErrorKind::InvalidType,
                    format!("expected a JSON object, got {}", type_name(&other)),
                );
                None
            }
        }
    }

    pub(super) fn actor(&mut self, v: Option<PartMut<'_>>) -> Actor {
        let Some(mut m) = self.part(v, "/actor") else {
            return Actor::default();
        };
        let b = "/actor";
        Actor {
            user_id: self.id_aliased(&mut m, &["user_id", "userId"], b),
            email_hash: self.string_in(&mut m, "email_hash", b),
            service_name: self.id_aliased(&mut m, &["service_name", "serviceName"], b),
            role: self.string_in(&mut m, "role", b),
            anonymous_id: self.id_aliased(&mut m, &["anonymous_id", "anonymousId"], b),
            extra: m.take_rest(),
        }
    }

    pub(super) fn object(&mut self, v: Option<PartMut<'_>>) -> Object {
        let Some(mut m) = self.part(v, "/object") else {
            return Object::default();
        };
        let b = "/object";
        Object {
            order_id: self.id_aliased(&mut m, &["order_id", "orderId"], b),
            request_id: self.id_aliased(&mut m, &["request_id", "requestId"], b),
            session_id: self.id_aliased(&mut m, &["session_id", "sessionId"], b),
            ticket_id: self.id_aliased(&mut m, &["ticket_id", "ticketId"], b),
            resource_id: self.id_aliased(&mut m, &["resource_id", "resourceId"], b),
            extra: m.take_rest(),
        }
    }

    pub(super) fn correlation(&mut self, v: Option<PartMut<'_>>) -> Correlation {
        let Some(mut m) = self.part(v, "/correlation") else {
            return Correlation::default();
        };
        let b = "/correlation";
        let c = Correlation {
            trace_id: self.id_aliased(&mut m, &["trace_id", "traceId"], b),
            span_id: self.id_aliased(&mut m, &["span_id", "spanId"], b),
            correlation_id: self.id_aliased(&mut m, &["correlation_id", "correlationId"], b),
            parent_event_id: self.id_aliased(&mut m, &["parent_event_id", "parentEventId"], b),
        };
        self.keep_rest(m.take_rest(), &["correlation"]);
        c
    }

    pub(super) fn outcome(&mut self, v: Option<PartMut<'_>>) -> Option<Outcome> {
        let mut m = self.part(v, "/outcome")?;
        let b = "/outcome";
        let status = match self.string_in(&mut m, "status", b) {
            None => OutcomeStatus::Success,
            Some(s) => OutcomeStatus::parse(&s).unwrap_or_else(|| {
                self.f.error(
                    "/outcome/status",
                    ErrorKind::InvalidValue,
                    format!(
                        "`{}` is not allowed; expected one of: {}",
                        truncate(&s, 64),
                        OutcomeStatus::allowed()
                    ),
                );
                OutcomeStatus::Success
            }),
        };
        let o = Outcome {
            status,
            error_class: self.id_aliased(&mut m, &["error_class", "errorClass"], b),
            error_code: self.id_aliased(&mut m, &["error_code", "errorCode"], b),
            message: self.string_in(&mut m, "message", b),
        };
        self.keep_rest(m.take_rest(), &["outcome"]);
        Some(o)
    }

    pub(super) fn evidence(&mut self, v: Option<PartMut<'_>>) -> Evidence {
        let Some(mut m) = self.part(v, "/evidence") else {
            return Evidence::default();
        };
        let b = "/evidence";
        let github = self
            .object_field(m.take("github"), "/evidence/github")
            .map(|mut g| {
                let gb = "/evidence/github";
                let gh = Github {
                    commit_sha: self.id_aliased(&mut g, &["commit_sha", "commitSha"], gb),
                    pr: self.id_field(&mut g, "pr", gb),
                    repository: self.string_in(&mut g, "repository", gb),
                };
                self.keep_rest(g, &["evidence", "github"]);
                gh
            });
        let raw_pointer = self.id_aliased(&mut m, &["raw_pointer", "raw_s3_pointer"], b);
        let trace_url = self.string_in(&mut m, "trace_url", b);
        let log_references = match m.take("log_references") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Value::String(s) => Some(s),
                    other => {
                        self.f.error(
                            format!("/evidence/log_references/{i}"),
                            ErrorKind::InvalidType,
                            format!("expected a string, got {}", type_name(&other)),
                        );
                        None
                    }
                })
                .collect(),
            Some(other) => {
                self.f.error(
                    "/evidence/log_references",
                    ErrorKind::InvalidType,
                    format!("expected an array of strings, got {}", type_name(&other)),
                );
                Vec::new()
            }
        };
        self.keep_rest(m.take_rest(), &["evidence"]);
        Evidence {
            github,
            raw_pointer,
            trace_url,
            log_references,
        }
    }

    pub(super) fn context(&mut self, v: Option<PartMut<'_>>) -> (Context, bool) {
        let Some(mut m) = self.part(v, "/context") else {
            return (Context::default(), false);
        };
        let b = "/context";
        let environment = self.string_in(&mut m, "environment", b);
        if environment.as_deref() == Some("") {
            self.f.error(
                "/context/environment",
                ErrorKind::InvalidValue,
                "environment must not be empty",
            );
        }
        let given = environment.is_some();
        let c = Context {
            environment: environment
                .unwrap_or_else(|| crate::event::DEFAULT_ENVIRONMENT.to_string()),
            service: self.id_aliased(&mut m, &["service", "service_name"], b),
            endpoint: self.string_in(&mut m, "endpoint", b),
            version: self.id_field(&mut m, "version", b),
            ip: self.string_in(&mut m, "ip", b),
            user_agent: self.id_aliased(&mut m, &["user_agent", "userAgent"], b),
            referer: self.id_aliased(&mut m, &["referer", "referrer"], b),
            extra: m.take_rest(),
        };
        (c, given)
    }

    /// The keys a closed part (correlation, outcome, evidence, github) does
    /// not know: kept like unknown top-level keys, at their path.
    pub(super) fn keep_rest(&mut self, rest: Map<String, Value>, part: &[&str]) {
        for (key, value) in rest {
            let mut path: Vec<String> = part.iter().map(|p| (*p).to_owned()).collect();
            path.push(key);
            self.unknown.push((path, value));
        }
    }

    /// Keeps every unknown key under `metadata.unknown_fields`, at the path
    /// it was sent at (`/zz` at `/metadata/unknown_fields/zz`,
    /// `/correlation/zz` at `/metadata/unknown_fields/correlation/zz`),
    /// with a warning saying where. Never over a value already there: the
    /// sender's own `metadata.unknown_fields` stays whole, and a key whose
    /// place is taken is kept under the first free `<key>_2`, `<key>_3`, ...
    pub(super) fn keep_unknown(
        &mut self,
        metadata: &mut Extra,
        unknown: Vec<(Vec<String>, Value)>,
    ) {
        let root = match metadata.entry(UNKNOWN_FIELDS_KEY) {
            serde_json::map::Entry::Occupied(mut o) => {
                if !o.get().is_object() {
                    if nesting(o.get()) > MAX_UNKNOWN_NESTING {
                        self.f.error(
                            "/metadata/unknown_fields",
                            ErrorKind::InvalidValue,
                            too_deep_to_keep(
                                nesting(o.get()),
                                "/metadata/unknown_fields/_previous",
                                MAX_UNKNOWN_NESTING,
                            ),
                        );
                    }
                    let previous = o.insert(Value::Object(Map::new()));
                    o.get_mut()
                        .as_object_mut()
                        .map(|m| m.insert("_previous".into(), previous));
                }
                o.into_mut()
            }
            serde_json::map::Entry::Vacant(v) => v.insert(Value::Object(Map::new())),
        };
        let Value::Object(root) = root else {
            unreachable!("unknown_fields was made an object above")
        };
        for (path, value) in unknown {
            let sent_at = path.iter().fold(String::new(), |p, t| pointer_push(&p, t));
            // Above the value: the event, metadata, unknown_fields and every
            // step of the path but the last.
            let fits = MAX_NESTING - 2 - path.len();
            if nesting(&value) > fits {
                let wanted_at = format!("/metadata/unknown_fields{sent_at}");
                self.f.error(
                    sent_at,
                    ErrorKind::InvalidValue,
                    too_deep_to_keep(nesting(&value), &wanted_at, fits),
                );
                continue;
            }
            let mut at = &mut *root;
            let mut kept_at = String::from("/metadata/unknown_fields");
            // The first step of the path found taken, if any.
            let mut taken: Option<String> = None;
            let last = path.len() - 1;
            for (i, token) in path.into_iter().enumerate() {
                // An intermediate step may share an object already there; the
                // last must be a place of its own.
                let free = |v: &Value| i < last && v.is_object();
                let name = if at.get(&token).is_none_or(free) {
                    token
                } else {
                    taken.get_or_insert_with(|| pointer_push(&kept_at, &token));
                    (2..)
                        .map(|n| format!("{token}_{n}"))
                        .find(|k| at.get(k).is_none_or(free))
                        .expect("some suffix is free")
                };
                kept_at = pointer_push(&kept_at, &name);
                if i == last {
                    at.insert(name, value);
                    break;
                }
                at = at
                    .entry(name)
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .expect("an object, made or found");
            }
            let message = match taken {
                Some(taken) => format!("unknown field kept as {kept_at}, since {taken} was taken"),
                None => format!("unknown field kept as {kept_at}"),
            };
            self.f.warn(sent_at, message);
        }
    }
}

/// The arrays and objects nested in `v`, itself included (a scalar has 0).
pub(super) fn nesting(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

fn too_deep_to_keep(depth: usize, kept_at: &str, fits: usize) -> String {
    format!(
        "unknown field nested {depth} levels deep; kept as {kept_at} it would exceed \
         {MAX_NESTING} levels in the stored event, so at most {fits} fit \
         (send deep payloads under /data)"
    )
}

/// "a negative number", "string" and so on, for integer fields.
pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_i64() => format!("negative integer {n}"),
        Value::Number(n) => format!("non-integer number {n}"),
        other => type_name(other).to_string(),
    }
}
