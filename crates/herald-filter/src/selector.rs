//! The whole rule by which a subscription, processor, wait or live tail
//! picks events: event types, sources, categories and an optional CEL
//! filter. Every list that is empty or absent allows anything; the cheap
//! checks run first and the CEL filter last.
//!
//! A category name is either one of the four categories (`business`,
//! `system`, `delivery`, `security`), matched against the event's
//! `category`, or one of the finer event categories (`payment`, `order`,
//! `page_view`, …), matched against its `event_category`. `system` and
//! `security` are both; they mean the category, which every event with
//! that event category also has.

use herald_core::{Category, ErrorKind, EventCategory, EventSource, FieldError};
use herald_registry::TypePattern;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::cel_filter::{EvalError, Filter};
use crate::event_value::EventView;

/// The most entries one list of a selector may hold.
pub const MAX_SELECTOR_ENTRIES: usize = 256;

/// A category a selector allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CategoryName {
    Category(Category),
    EventCategory(EventCategory),
}

impl CategoryName {
    pub fn parse(s: &str) -> Option<CategoryName> {
        Category::parse(s)
            .map(CategoryName::Category)
            .or_else(|| EventCategory::parse(s).map(CategoryName::EventCategory))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CategoryName::Category(c) => c.as_str(),
            CategoryName::EventCategory(c) => c.as_str(),
        }
    }

    fn allows(self, category: Category, event_category: Option<EventCategory>) -> bool {
        match self {
            CategoryName::Category(c) => c == category,
            CategoryName::EventCategory(c) => Some(c) == event_category,
        }
    }
}

/// A parsed, checked selector.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    event_types: Vec<TypePattern>,
    event_sources: Vec<EventSource>,
    event_categories: Vec<CategoryName>,
    filter: Option<Filter>,
}

impl Selector {
    /// A selector that matches every event.
    pub fn any() -> Selector {
        Selector::default()
    }

    /// Reads `event_types`, `event_sources`, `event_categories` and `filter`
    /// from the object `body`, ignoring its other keys (a selector lives
    /// inside a subscription, processor or wait). Every bad field is
    /// reported, named by a JSON pointer under `at` (`""` for the root).
    pub fn from_json(body: &Value, at: &str) -> Result<Selector, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(object) = body.as_object() else {
            return Err(vec![field_error(
                at.to_string(),
                ErrorKind::InvalidType,
                "a selector is a JSON object".into(),
            )]);
        };
        let event_types = list(object, at, "event_types", &mut errors, |s| {
            TypePattern::parse(s)
        });
        let event_sources = list(object, at, "event_sources", &mut errors, |s| {
            EventSource::parse(s).ok_or_else(|| {
                format!(
                    "unknown event source `{s}`; expected one of: {}",
                    EventSource::allowed()
                )
            })
        });
        let event_categories = list(object, at, "event_categories", &mut errors, |s| {
            CategoryName::parse(s).ok_or_else(|| {
                format!(
                    "unknown category `{s}`; expected one of: {}, {}",
                    Category::allowed(),
                    EventCategory::allowed()
                )
            })
        });
        let filter = match object.get("filter") {
            None | Some(Value::Null) => None,
            Some(Value::String(src)) => match Filter::compile(src) {
                Ok(f) => Some(f),
                Err(e) => {
                    let kind = match e {
                        crate::FilterError::TooLong { .. } => ErrorKind::TooLarge,
                        _ => ErrorKind::InvalidValue,
                    };
                    errors.push(field_error(format!("{at}/filter"), kind, e.to_string()));
                    None
                }
            },
            Some(_) => {
                errors.push(field_error(
                    format!("{at}/filter"),
                    ErrorKind::InvalidType,
                    "`filter` is a CEL expression in a string, as in \"event.data.amount > 100\""
                        .into(),
                ));
                None
            }
        };
        if errors.is_empty() {
            Ok(Selector {
                event_types,
                event_sources,
                event_categories,
                filter,
            })
        } else {
            Err(errors)
        }
    }

    pub fn event_types(&self) -> &[TypePattern] {
        &self.event_types
    }

    pub fn event_sources(&self) -> &[EventSource] {
        &self.event_sources
    }

    pub fn event_categories(&self) -> &[CategoryName] {
        &self.event_categories
    }

    pub fn filter(&self) -> Option<&Filter> {
        self.filter.as_ref()
    }

    /// Whether the event passes every part of the selector. `Err` means the
    /// CEL filter could not judge the event: no match, to be counted.
    pub fn matches(&self, view: &EventView<'_>) -> Result<bool, EvalError> {
        let event = view.event();
        if !self.event_types.is_empty()
            && !self
                .event_types
                .iter()
                .any(|p| p.matches(event.event_type.as_str()))
        {
            return Ok(false);
        }
        if !self.event_sources.is_empty() && !self.event_sources.contains(&event.event_source) {
            return Ok(false);
        }
        if !self.event_categories.is_empty()
            && !self
                .event_categories
                .iter()
                .any(|c| c.allows(event.category, event.event_category))
        {
            return Ok(false);
        }
        match &self.filter {
            Some(filter) => filter.matches(view),
            None => Ok(true),
        }
    }

    /// The selector as JSON, in the shape [`Selector::from_json`] reads.
    pub fn to_json(&self) -> Value {
        let strings = |items: Vec<&str>| Value::from(items);
        let mut object = Map::new();
        object.insert(
            "event_types".into(),
            strings(self.event_types.iter().map(|p| p.as_str()).collect()),
        );
        object.insert(
            "event_sources".into(),
            strings(self.event_sources.iter().map(|s| s.as_str()).collect()),
        );
        object.insert(
            "event_categories".into(),
            strings(self.event_categories.iter().map(|c| c.as_str()).collect()),
        );
        object.insert(
            "filter".into(),
            self.filter
                .as_ref()
                .map_or(Value::Null, |f| Value::from(f.source())),
        );
        Value::Object(object)
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

fn field_error(field: String, kind: ErrorKind, message: String) -> FieldError {
    FieldError {
        field,
        message,
        kind,
    }
}

/// Reads the optional list of strings `key`, parsing each with `parse`.
fn list<T>(
    object: &Map<String, Value>,
    at: &str,
    key: &str,
    errors: &mut Vec<FieldError>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Vec<T> {
    let items = match object.get(key) {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(field_error(
                format!("{at}/{key}"),
                ErrorKind::InvalidType,
                format!("`{key}` is a list of strings"),
            ));
            return Vec::new();
        }
    };
    if items.len() > MAX_SELECTOR_ENTRIES {
        errors.push(field_error(
            format!("{at}/{key}"),
            ErrorKind::TooLarge,
            format!(
                "`{key}` has {} entries; at most {MAX_SELECTOR_ENTRIES} are allowed",
                items.len()
            ),
        ));
        return Vec::new();
    }
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str().map(&parse) {
            Some(Ok(v)) => parsed.push(v),
            Some(Err(message)) => {
                errors.push(field_error(
                    format!("{at}/{key}/{i}"),
                    ErrorKind::InvalidValue,
                    message,
                ));
            }
            None => errors.push(field_error(
                format!("{at}/{key}/{i}"),
                ErrorKind::InvalidType,
                "expected a string".into(),
            )),
        }
    }
    parsed
}
