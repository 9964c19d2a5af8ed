//! The `EventProcessor`: decode → validate → normalise → redact, one call per
//! event. Validation covers the category vocabulary and modes (property 6),
//! the type's definition (payload schema, allowed sources, through
//! [`Vocabulary::check_definition`]) and outcome sanity (property 8);
//! decoding covers shapes, types and sizes (properties 1, 2, 13).

use std::sync::Arc;

use serde_json::Value;

use crate::clock::IdSource;
use crate::decode::{self, Body, Limits, RawEvent};
use crate::error::{ErrorKind, FieldWarning, Findings, ValidationResult};
use crate::event::CanonicalEvent;
use crate::model::{OutcomeStatus, TenantId};
use crate::normalize::normalize;
use crate::redact::{EmailHasher, RedactionPolicy};
use crate::stream::ExpectedVersion;
use crate::timestamp::Timestamp;
use crate::vocabulary::{BuiltinVocabulary, ValidationMode, Vocabulary};

/// What the server knows about a request.
#[derive(Debug, Clone, Copy)]
pub struct ProcessingContext<'a> {
    pub tenant_id: &'a TenantId,
    pub email_hasher: &'a EmailHasher,
    pub processing_timestamp: Timestamp,
    /// Mints the id of each accepted event (only accepted ones use one).
    pub ids: &'a dyn IdSource,
    /// The request's `traceparent` header, if any.
    pub traceparent: Option<&'a str>,
}

/// An accepted event, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    pub event: CanonicalEvent,
    pub warnings: Vec<FieldWarning>,
    /// Optimistic-concurrency check the store must apply to the stream append.
    pub expected_version: ExpectedVersion,
    /// A `tenant_id` named in the body (the server refuses a mismatch).
    pub body_tenant_id: Option<String>,
}

/// One tenant's rules for turning input into canonical events.
#[derive(Clone)]
pub struct EventProcessor {
    pub vocabulary: Arc<dyn Vocabulary>,
    pub mode: ValidationMode,
    pub limits: Limits,
    pub redaction: RedactionPolicy,
}

impl std::fmt::Debug for EventProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProcessor")
            .field("mode", &self.mode)
            .field("limits", &self.limits)
            .field("redaction", &self.redaction)
            .finish_non_exhaustive()
    }
}

impl Default for EventProcessor {
    fn default() -> Self {
        EventProcessor {
            vocabulary: Arc::new(BuiltinVocabulary),
            mode: ValidationMode::Permissive,
            limits: Limits::default(),
            redaction: RedactionPolicy::default(),
        }
    }
}

impl EventProcessor {
    /// Every finding for one JSON event, without
    /// producing it.
    pub fn validate(&self, value: &Value) -> ValidationResult {
        let size = serde_json::to_vec(value).map_or(0, |v| v.len());
        if size > self.limits.max_event_bytes {
            return decode::too_large(size, &self.limits);
        }
        match self.decode_and_check(Body::from_value(value.clone())) {
            Ok((_, warnings)) => ValidationResult::from_parts(Vec::new(), warnings),
            Err(result) => result,
        }
    }

    /// The whole path from request bytes to a canonical event.
    pub fn process_json(
        &self,
        bytes: &[u8],
        ctx: &ProcessingContext<'_>,
    ) -> Result<Processed, ValidationResult> {
        let body = decode::parse_body(bytes, &self.limits)?;
        self.process_body(body, ctx)
    }

    /// The path from an already-parsed value (size checked by the caller).
    pub fn process_value(
        &self,
        value: Value,
        ctx: &ProcessingContext<'_>,
    ) -> Result<Processed, ValidationResult> {
        self.process_body(Body::from_value(value), ctx)
    }

    fn process_body(
        &self,
        body: Result<Box<Body>, Value>,
        ctx: &ProcessingContext<'_>,
    ) -> Result<Processed, ValidationResult> {
        let (raw, warnings) = self.decode_and_check(body)?;
        let mut findings = Findings {
            errors: Vec::new(),
            warnings,
        };
        let expected_version = raw.expected_version;
        let body_tenant_id = raw.tenant_id.clone();
        let mut event = normalize(
            raw,
            ctx.ids.event_id(ctx.processing_timestamp),
            ctx.tenant_id,
            ctx.processing_timestamp,
            ctx.traceparent,
            &mut findings,
        );
        self.redaction.apply(&mut event, ctx.email_hasher);
        Ok(Processed {
            event,
            warnings: findings.warnings,
            expected_version,
            body_tenant_id,
        })
    }

    fn decode_and_check(
        &self,
        body: Result<Box<Body>, Value>,
    ) -> Result<(RawEvent, Vec<FieldWarning>), ValidationResult> {
        // Leniently, so the vocabulary and definition checks can name their
        // findings alongside any decoding errors.
        let (raw, mut f) = decode::decode_body(body, &self.limits);
        let Some(mut raw) = raw else {
            return Err(ValidationResult::from_parts(f.errors, f.warnings));
        };
        self.check_vocabulary(&raw, &mut f);
        // Before normalisation and redaction: schemas see the sender's payload.
        let checked = self.vocabulary.check_definition(&raw);
        // A field that failed decoding is absent from `raw`; its default must
        // not earn it a second, misleading error.
        let decode_failed: Vec<String> = f.errors.iter().map(|e| e.field.clone()).collect();
        f.errors.extend(
            checked
                .errors
                .into_iter()
                .filter(|e| !decode_failed.contains(&e.field)),
        );
        if raw.schema_version.is_none() {
            raw.schema_version = checked.schema_version;
        }
        if raw.event_category.is_none() {
            raw.event_category = checked.event_category;
        }
        if let Some(o) = &raw.outcome {
            if o.status == OutcomeStatus::Failure
                && o.error_class.is_none()
                && o.error_code.is_none()
            {
                f.warn(
                    "/outcome",
                    "outcome.status is failure but neither error_class nor error_code says why",
                );
            }
            if o.status == OutcomeStatus::Success
                && (o.error_class.is_some() || o.error_code.is_some())
            {
                f.warn(
                    "/outcome",
                    "outcome.status is success but error details are given",
                );
            }
        }
        if f.errors.is_empty() {
            Ok((raw, f.warnings))
        } else {
            Err(ValidationResult::from_parts(f.errors, f.warnings))
        }
    }

    fn check_vocabulary(&self, raw: &RawEvent, f: &mut Findings) {
        let ty = raw.event_type.as_str();
        let allowed = || {
            let types = self.vocabulary.types_of(raw.category);
            if types.is_empty() {
                "none defined".to_string()
            } else {
                types.join(", ")
            }
        };
        match self.vocabulary.categories_of(ty) {
            Some(set) if set.contains(raw.category) => {}
            Some(set) => f.error(
                "/event_type",
                ErrorKind::NotAllowed,
                format!(
                    "event type `{ty}` belongs to category {}, not {}; {} allows: {}",
                    set.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" or "),
                    raw.category,
                    raw.category,
                    allowed()
                ),
            ),
            None if self.mode == ValidationMode::Strict => f.error(
                "/event_type",
                ErrorKind::NotAllowed,
                format!(
                    "event type `{}` has no definition and this tenant validates in strict mode; {} allows: {}",
                    crate::model::truncate(ty, 64),
                    raw.category,
                    allowed()
                ),
            ),
            None => {}
        }
    }
}
