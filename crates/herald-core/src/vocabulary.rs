//! Which event types belong to which category (Property 6: Category-Specific
//! Action Support), and what else a type's definition demands of an event
//! (its `data` schema, its allowed sources), behind a trait so the schema
//! registry (`herald-registry`) plugs stored definitions into the same
//! checks. The built-in vocabulary is twelve actions, three per category,
//! with no schemas ([`BUILTIN_TYPES`]).

use serde::{Deserialize, Serialize};

use crate::decode::RawEvent;
use crate::error::FieldError;
use crate::model::{Category, EventCategory};

/// A set of categories, as a bit set over the four of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CategorySet(u8);

impl CategorySet {
    pub const fn empty() -> Self {
        CategorySet(0)
    }
    pub const fn of(c: Category) -> Self {
        CategorySet(1 << c as u8)
    }
    pub const fn with(self, c: Category) -> Self {
        CategorySet(self.0 | (1 << c as u8))
    }
    pub const fn contains(self, c: Category) -> bool {
        self.0 & (1 << c as u8) != 0
    }
    pub fn iter(self) -> impl Iterator<Item = Category> {
        Category::ALL
            .iter()
            .copied()
            .filter(move |c| self.contains(*c))
    }
}

/// What to do with an event type no definition knows: accept it
/// (`permissive`, the default) or refuse it (`strict`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationMode {
    /// Accept unknown types (the default).
    #[default]
    Permissive,
    /// Reject unknown types.
    Strict,
}

/// What a type's definition found in one event beyond its category.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefinitionCheck {
    /// Every violation: `/data/...` pointers for the payload schema,
    /// `/event_source` for a source the definition does not allow,
    /// `/event_category` for one other than the definition's,
    /// `/schema_version` for a pinned version that does not exist.
    pub errors: Vec<FieldError>,
    /// The definition version the event was checked against, recorded on
    /// the stored event; `None` when no stored definition applied.
    pub schema_version: Option<u32>,
    /// The definition's `event_category`, which an event that names none
    /// takes on (as a default).
    pub event_category: Option<EventCategory>,
}

/// The source of truth for event types.
pub trait Vocabulary: Send + Sync {
    /// The categories `event_type` is defined for; `None` when it is unknown.
    fn categories_of(&self, event_type: &str) -> Option<CategorySet>;

    /// The known types of one category, for error messages.
    fn types_of(&self, category: Category) -> Vec<String>;

    /// Checks the event against its type's definition: `data` against the
    /// payload schema (as the sender sent it: this runs before redaction),
    /// the allowed sources, a pinned `schema_version`. Every error at once.
    /// The default has no definitions to check against.
    fn check_definition(&self, raw: &RawEvent) -> DefinitionCheck {
        let _ = raw;
        DefinitionCheck::default()
    }
}

/// The built-in actions, by category.
pub const BUILTIN_TYPES: &[(Category, &[&str])] = &[
    (
        Category::Business,
        &["checkout_started", "payment_authorized", "order_failed"],
    ),
    (
        Category::System,
        &["request_received", "downstream_timeout", "db_error"],
    ),
    (
        Category::Delivery,
        &["pr_merged", "deploy_completed", "rollback_initiated"],
    ),
    (
        Category::Security,
        &["permission_denied", "role_changed", "unauthorized_access"],
    ),
];

/// The vocabulary every tenant starts with.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinVocabulary;

impl Vocabulary for BuiltinVocabulary {
    fn categories_of(&self, event_type: &str) -> Option<CategorySet> {
        BUILTIN_TYPES
            .iter()
            .filter(|(_, types)| types.contains(&event_type))
            .fold(None, |acc: Option<CategorySet>, (c, _)| {
                Some(acc.unwrap_or_default().with(*c))
            })
    }

    fn types_of(&self, category: Category) -> Vec<String> {
        BUILTIN_TYPES
            .iter()
            .filter(|(c, _)| *c == category)
            .flat_map(|(_, types)| types.iter().map(|t| t.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_lookup() {
        let v = BuiltinVocabulary;
        assert_eq!(
            v.categories_of("db_error"),
            Some(CategorySet::of(Category::System))
        );
        assert_eq!(v.categories_of("nope"), None);
        assert_eq!(v.types_of(Category::Delivery).len(), 3);
        let set = CategorySet::of(Category::Business).with(Category::Security);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Category::Business, Category::Security]
        );
    }
}
