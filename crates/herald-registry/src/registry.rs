//! One tenant's registry, as an immutable snapshot: every version of every
//! stored definition plus the built-in vocabulary (as definitions
//! without schemas, hidden when the tenant defines the same type), indexed
//! for the ingest hot path. It is the tenant's [`Vocabulary`]: which
//! category a type belongs to, and what its definition demands of an event.
//!
//! Resolution of an event type: the tenant's exact definition, else a
//! built-in type, else the most specific matching pattern.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use herald_core::vocabulary::{BUILTIN_TYPES, CategorySet};
use herald_core::{
    Category, DefinitionCheck, ErrorKind, EventSource, FieldError, Fold, RawEvent, TenantId,
    Timestamp, Vocabulary,
};
use jsonschema::Validator;

use crate::cache::ValidatorCache;
use crate::definition::{EventDefinition, ProjectionRule};
use crate::pattern::TypePattern;

/// Id prefix of the built-in definitions (`builtin.payment_authorized`).
pub const BUILTIN_PREFIX: &str = "builtin.";

/// The built-in vocabulary ([`BUILTIN_TYPES`]) as definitions:
/// no schema, any source.
pub fn builtin_definitions() -> Vec<EventDefinition> {
    // A fixed instant, so built-ins look the same on every instance and run.
    let since = Timestamp::parse("2025-01-01T00:00:00Z").expect("a valid constant");
    BUILTIN_TYPES
        .iter()
        .flat_map(|(category, types)| {
            types.iter().map(move |t| EventDefinition {
                definition_id: format!("{BUILTIN_PREFIX}{t}"),
                version: 1,
                event_type: TypePattern::parse(t).expect("built-in types are valid"),
                category: *category,
                event_category: None,
                name: t.replace('_', " "),
                description: Some(format!(
                    "Built-in {category} event type. Register a definition for `{t}` to give it a payload schema."
                )),
                payload_schema: None,
                allowed_sources: Vec::new(),
                examples: Vec::new(),
                ui: serde_json::Map::new(),
                projection: None,
                compatibility: None,
                builtin: true,
                created_at: since,
                updated_at: since,
            })
        })
        .collect()
}

/// One stored version with its validator, compiled on first use.
#[derive(Debug)]
pub struct CompiledVersion {
    pub definition: EventDefinition,
    validator: OnceLock<Result<Arc<Validator>, String>>,
}

/// One definition: its versions, oldest first (never empty).
#[derive(Debug)]
pub struct Entry {
    versions: Vec<CompiledVersion>,
}

impl Entry {
    pub fn latest(&self) -> &EventDefinition {
        &self.latest_compiled().definition
    }

    fn latest_compiled(&self) -> &CompiledVersion {
        self.versions.last().expect("an entry has a version")
    }

    pub fn version(&self, v: u32) -> Option<&EventDefinition> {
        self.compiled(v).map(|c| &c.definition)
    }

    fn compiled(&self, v: u32) -> Option<&CompiledVersion> {
        self.versions.iter().find(|c| c.definition.version == v)
    }

    /// Every version number, ascending.
    pub fn versions(&self) -> Vec<u32> {
        self.versions.iter().map(|c| c.definition.version).collect()
    }
}

/// Filters for listing definitions; all given ones must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefinitionFilter {
    pub category: Option<Category>,
    /// Definitions this source may send (those listing it, or allowing any).
    pub source: Option<EventSource>,
    pub type_prefix: Option<String>,
    /// Every whitespace-separated term, case-insensitively, in the type,
    /// name, description or UI metadata.
    pub text: Option<String>,
    pub builtin: Option<bool>,
    pub limit: usize,
    pub offset: usize,
}

/// One tenant's definitions, ready for ingest and discovery.
#[derive(Debug)]
pub struct Registry {
    tenant: TenantId,
    cache: Arc<ValidatorCache>,
    /// Sorted by event type.
    entries: Vec<Arc<Entry>>,
    by_id: HashMap<String, Arc<Entry>>,
    exact: HashMap<String, Arc<Entry>>,
    /// Most specific first.
    patterns: Vec<Arc<Entry>>,
}

impl Registry {
    /// Builds the snapshot from every stored version of the tenant's
    /// definitions, and drops cached validators it no longer needs.
    pub fn build(
        tenant: TenantId,
        stored: Vec<EventDefinition>,
        cache: Arc<ValidatorCache>,
    ) -> Registry {
        let mut grouped: HashMap<String, Vec<EventDefinition>> = HashMap::new();
        for d in stored {
            grouped.entry(d.definition_id.clone()).or_default().push(d);
        }
        let live: HashSet<(String, u32)> = grouped
            .values()
            .flatten()
            .map(|d| (d.definition_id.clone(), d.version))
            .collect();
        cache.retain_tenant(&tenant, |id, v| live.contains(&(id.to_string(), v)));

        let mut entries: Vec<Arc<Entry>> = grouped
            .into_values()
            .map(|mut versions| {
                versions.sort_by_key(|d| d.version);
                Arc::new(Entry {
                    versions: versions
                        .into_iter()
                        .map(|definition| CompiledVersion {
                            definition,
                            validator: OnceLock::new(),
                        })
                        .collect(),
                })
            })
            .collect();
        let defined: HashSet<String> = entries
            .iter()
            .map(|e| e.latest().event_type.as_str().to_string())
            .collect();
        entries.extend(
            builtin_definitions()
                .into_iter()
                .filter(|d| !defined.contains(d.event_type.as_str()))
                .map(|definition| {
                    Arc::new(Entry {
                        versions: vec![CompiledVersion {
                            definition,
                            validator: OnceLock::new(),
                        }],
                    })
                }),
        );
        entries.sort_by(|a, b| {
            a.latest()
                .event_type
                .as_str()
                .cmp(b.latest().event_type.as_str())
        });

        let mut by_id = HashMap::new();
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        for e in &entries {
            let d = e.latest();
            by_id.insert(d.definition_id.clone(), e.clone());
            if d.event_type.is_pattern() {
                patterns.push(e.clone());
            } else {
                exact.insert(d.event_type.as_str().to_string(), e.clone());
            }
        }
        patterns.sort_by(|a: &Arc<Entry>, b: &Arc<Entry>| {
            b.latest()
                .event_type
                .specificity()
                .cmp(&a.latest().event_type.specificity())
        });
        Registry {
            tenant,
            cache,
            entries,
            by_id,
            exact,
            patterns,
        }
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<Entry>> {
        self.by_id.get(id)
    }

    /// The definition whose event type (or pattern) is exactly `t`.
    pub fn by_type(&self, t: &str) -> Option<&Arc<Entry>> {
        self.exact.get(t).or_else(|| {
            self.patterns
                .iter()
                .find(|e| e.latest().event_type.as_str() == t)
        })
    }

    /// The definition that applies to events of type `event_type`.
    pub fn resolve(&self, event_type: &str) -> Option<&Arc<Entry>> {
        self.exact.get(event_type).or_else(|| {
            self.patterns
                .iter()
                .find(|e| e.latest().event_type.matches(event_type))
        })
    }

    /// How events of `event_type` fold into their stream's projection: the
    /// rule of the latest version of the definition that applies to the
    /// type, else a merge patch at the state's root.
    pub fn fold_for(&self, event_type: &str) -> Fold {
        self.resolve(event_type)
            .and_then(|e| e.latest().projection.as_ref())
            .map(ProjectionRule::fold)
            .unwrap_or_default()
    }

    /// A short fingerprint of every fold rule of this tenant. A projection
    /// snapshot keeps the fingerprint it was folded under, and a read uses
    /// only snapshots with the current one: a changed rule makes every
    /// older snapshot of the tenant stale, and projections are folded (and
    /// snapshotted) afresh under the new rule.
    pub fn fold_rules_fingerprint(&self) -> String {
        use sha2::Digest;
        let mut rules: Vec<(String, &ProjectionRule)> = self
            .entries
            .iter()
            .filter_map(|e| {
                let d = e.latest();
                d.projection
                    .as_ref()
                    .map(|r| (d.event_type.as_str().to_string(), r))
            })
            .collect();
        rules.sort_by(|a, b| a.0.cmp(&b.0));
        let mut h = sha2::Sha256::new();
        for (t, r) in rules {
            h.update(t.as_bytes());
            h.update([0]);
            h.update(r.fold.as_bytes());
            h.update([0]);
            h.update(r.path.as_bytes());
            h.update([1]);
        }
        h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// By id, else by its exact type or pattern, else the definition that
    /// applies to that type: what `GET /api/v1/event-definitions/{id}`
    /// answers.
    pub fn lookup(&self, id_or_type: &str) -> Option<&Arc<Entry>> {
        self.by_id(id_or_type)
            .or_else(|| self.by_type(id_or_type))
            .or_else(|| self.resolve(id_or_type))
    }

    /// One page of latest versions matching `f`, sorted by type, and how
    /// many match in all.
    pub fn list(&self, f: &DefinitionFilter) -> (Vec<&Arc<Entry>>, usize) {
        let terms: Vec<String> = f
            .text
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        let matching: Vec<&Arc<Entry>> = self
            .entries
            .iter()
            .filter(|e| {
                let d = e.latest();
                f.category.is_none_or(|c| d.category == c)
                    && f.source.is_none_or(|s| {
                        d.allowed_sources.is_empty() || d.allowed_sources.contains(&s)
                    })
                    && f.type_prefix
                        .as_deref()
                        .is_none_or(|p| d.event_type.as_str().starts_with(p))
                    && f.builtin.is_none_or(|b| d.builtin == b)
                    && (terms.is_empty() || {
                        let hay = format!(
                            "{} {} {} {}",
                            d.event_type,
                            d.name,
                            d.description.as_deref().unwrap_or(""),
                            serde_json::Value::Object(d.ui.clone())
                        )
                        .to_lowercase();
                        terms.iter().all(|t| hay.contains(t.as_str()))
                    })
            })
            .collect();
        let total = matching.len();
        let page = matching.into_iter().skip(f.offset).take(f.limit).collect();
        (page, total)
    }

    fn validator<'a>(&self, v: &'a CompiledVersion) -> &'a Result<Arc<Validator>, String> {
        v.validator.get_or_init(|| {
            let d = &v.definition;
            match &d.payload_schema {
                Some(schema) => {
                    self.cache
                        .get_or_compile(&self.tenant, &d.definition_id, d.version, schema)
                }
                None => Err("no schema".into()),
            }
        })
    }
}

fn error(field: &str, kind: ErrorKind, message: String) -> FieldError {
    FieldError {
        field: field.to_string(),
        message,
        kind,
    }
}

impl Vocabulary for Registry {
    fn categories_of(&self, event_type: &str) -> Option<CategorySet> {
        self.resolve(event_type)
            .map(|e| CategorySet::of(e.latest().category))
    }

    fn types_of(&self, category: Category) -> Vec<String> {
        self.entries
            .iter()
            .map(|e| e.latest())
            .filter(|d| d.category == category)
            .map(|d| d.event_type.as_str().to_string())
            .collect()
    }

    fn check_definition(&self, raw: &RawEvent) -> DefinitionCheck {
        // `schema_version` records the definition version an event was
        // checked against; without a definition there is none to pin.
        let Some(entry) = self.resolve(raw.event_type.as_str()) else {
            return raw
                .schema_version
                .map(|v| DefinitionCheck {
                    errors: vec![error(
                        "/schema_version",
                        ErrorKind::InvalidValue,
                        format!(
                            "`{}` has no definition, so there is no version {v} to check against; \
                             leave schema_version out or register a definition first",
                            raw.event_type
                        ),
                    )],
                    ..DefinitionCheck::default()
                })
                .unwrap_or_default();
        };
        let latest = entry.latest_compiled();
        let current = &latest.definition;
        // A pin selects the payload schema only: who may send a type and how
        // it is classified are the definition's now, whatever version the
        // sender was written against.
        let pinned = match raw.schema_version {
            None => latest,
            Some(v) => match entry.compiled(v) {
                Some(c) => c,
                None => {
                    return DefinitionCheck {
                        errors: vec![error(
                            "/schema_version",
                            ErrorKind::InvalidValue,
                            format!(
                                "definition `{}` of `{}` has no version {v}; its versions are: {}",
                                current.definition_id,
                                current.event_type,
                                entry
                                    .versions()
                                    .iter()
                                    .map(u32::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )],
                        ..DefinitionCheck::default()
                    };
                }
            },
        };
        let mut errors = Vec::new();
        if !current.allowed_sources.is_empty() {
            let source = raw.event_source.unwrap_or(EventSource::Backend);
            if !current.allowed_sources.contains(&source) {
                errors.push(error(
                    "/event_source",
                    ErrorKind::NotAllowed,
                    format!(
                        "`{}` events may be sent only by: {} (definition {} v{}); this one is from {source}",
                        raw.event_type,
                        current
                            .allowed_sources
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        current.definition_id,
                        current.version
                    ),
                ));
            }
        }
        if let (Some(want), Some(got)) = (current.event_category, raw.event_category)
            && want != got
        {
            errors.push(error(
                "/event_category",
                ErrorKind::InvalidValue,
                format!(
                    "`{}` events have event_category {want} (definition {} v{}), not {got}; \
                     send {want} or leave event_category out",
                    raw.event_type, current.definition_id, current.version
                ),
            ));
        }
        let d = &pinned.definition;
        if d.payload_schema.is_some() {
            match self.validator(pinned) {
                Ok(v) => errors.extend(crate::schema::validate(v, &raw.data, "/data")),
                Err(why) => errors.push(error(
                    "/data",
                    ErrorKind::InvalidValue,
                    format!(
                        "definition {} v{} has a payload schema that no longer compiles ({why}); fix it with a new version",
                        d.definition_id, d.version
                    ),
                )),
            }
        }
        DefinitionCheck {
            errors,
            // A built-in is not stored, so an event is recorded against it
            // only when it pins its one version.
            schema_version: (!d.builtin).then_some(d.version),
            event_category: current.event_category,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::parse_input;
    use herald_core::{EventType, Limits};
    use serde_json::json;

    fn def(id: &str, version: u32, body: serde_json::Value) -> EventDefinition {
        parse_input(&body, None)
            .unwrap()
            .into_definition(id.into(), version, Timestamp::now())
    }

    fn raw(ty: &str, data: serde_json::Value) -> RawEvent {
        let body = json!({"event_type": ty, "category": "business", "data": data});
        let (mut r, _) = herald_core::decode::decode_event(body, &Limits::default()).unwrap();
        r.event_type = EventType::parse(ty).unwrap();
        r
    }

    #[test]
    fn validators_are_compiled_once_per_version_and_dropped_with_it() {
        let cache = Arc::new(ValidatorCache::new());
        let (acme, globex) = (
            TenantId::parse("acme").unwrap(),
            TenantId::parse("globex").unwrap(),
        );
        let schema = |field: &str| json!({"type": "object", "required": [field]});
        let v1 = def(
            "d",
            1,
            json!({"event_type": "t", "category": "business", "payload_schema": schema("a")}),
        );
        let v2 = def(
            "d",
            2,
            json!({"event_type": "t", "category": "business", "payload_schema": schema("b")}),
        );

        let r = Registry::build(acme.clone(), vec![v1.clone()], cache.clone());
        assert_eq!(
            r.check_definition(&raw("t", json!({}))).errors[0].field,
            "/data/a"
        );
        let other = Registry::build(globex.clone(), vec![v1.clone()], cache.clone());
        assert!(
            !other
                .check_definition(&raw("t", json!({})))
                .errors
                .is_empty()
        );
        assert_eq!(cache.len(), 2, "one per (tenant, definition, version)");
        let compiled = cache.get_or_compile(&acme, "d", 1, &json!(false)).unwrap();

        // The update: v2 validates at once, v1's validator is reused for pinned events.
        let r = Registry::build(acme.clone(), vec![v1.clone(), v2.clone()], cache.clone());
        let check = r.check_definition(&raw("t", json!({})));
        assert_eq!(
            (check.errors[0].field.as_str(), check.schema_version),
            ("/data/b", Some(2))
        );
        assert!(Arc::ptr_eq(
            &compiled,
            &cache.get_or_compile(&acme, "d", 1, &json!(false)).unwrap()
        ));
        assert_eq!(cache.len(), 3);

        // A rebuild without a version drops its validator, and only that tenant's.
        let _ = Registry::build(acme.clone(), vec![], cache.clone());
        assert_eq!(cache.len(), 1, "globex keeps its own");
    }

    #[test]
    fn a_pin_selects_the_schema_only_sources_and_event_category_are_the_latest() {
        let v1 = def(
            "d",
            1,
            json!({"event_type": "t", "event_category": "order", "allowed_sources": ["frontend"],
                "payload_schema": {"required": ["a"]}}),
        );
        let v2 = def(
            "d",
            2,
            json!({"event_type": "t", "event_category": "payment", "allowed_sources": ["backend"],
                "payload_schema": {"required": ["b"]}}),
        );
        let r = Registry::build(
            TenantId::parse("acme").unwrap(),
            vec![v1, v2],
            Arc::new(ValidatorCache::new()),
        );
        let mut pinned = raw("t", json!({"b": 1}));
        pinned.schema_version = Some(1);
        pinned.event_source = Some(EventSource::Frontend);
        pinned.event_category = Some(herald_core::EventCategory::Order);
        let check = r.check_definition(&pinned);
        let fields: Vec<&str> = check.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["/event_source", "/event_category", "/data/a"]);
        assert_eq!(
            (check.schema_version, check.event_category),
            (Some(1), Some(herald_core::EventCategory::Payment))
        );
    }

    #[test]
    fn a_builtin_type_has_version_1_and_no_other() {
        let r = Registry::build(
            TenantId::parse("acme").unwrap(),
            vec![],
            Arc::new(ValidatorCache::new()),
        );
        let mut e = raw("checkout_started", json!({}));
        assert_eq!(r.check_definition(&e), DefinitionCheck::default());
        e.schema_version = Some(1);
        assert_eq!(r.check_definition(&e), DefinitionCheck::default());
        e.schema_version = Some(2);
        let check = r.check_definition(&e);
        assert_eq!(check.errors.len(), 1);
        assert_eq!(check.errors[0].field, "/schema_version");
        assert!(
            check.errors[0].message.ends_with("its versions are: 1"),
            "{}",
            check.errors[0].message
        );
    }

    #[test]
    fn resolution_prefers_exact_then_builtin_then_the_most_specific_pattern() {
        let r = Registry::build(
            TenantId::parse("acme").unwrap(),
            vec![
                def("p1", 1, json!({"event_type": ">", "category": "system"})),
                def(
                    "p2",
                    1,
                    json!({"event_type": "a.*", "category": "business"}),
                ),
                def(
                    "p3",
                    1,
                    json!({"event_type": "a.>", "category": "business"}),
                ),
                def(
                    "e1",
                    1,
                    json!({"event_type": "a.b", "category": "security"}),
                ),
            ],
            Arc::new(ValidatorCache::new()),
        );
        let id = |t: &str| r.resolve(t).map(|e| e.latest().definition_id.clone());
        assert_eq!(id("a.b").as_deref(), Some("e1"));
        assert_eq!(id("a.c").as_deref(), Some("p2"));
        assert_eq!(id("a.c.d").as_deref(), Some("p3"));
        assert_eq!(id("db_error").as_deref(), Some("builtin.db_error"));
        assert_eq!(id("x").as_deref(), Some("p1"));
        assert_eq!(
            r.categories_of("a.b"),
            Some(CategorySet::of(Category::Security))
        );
        assert_eq!(
            r.list(&DefinitionFilter {
                limit: 100,
                ..Default::default()
            })
            .1,
            16
        );
    }
}
