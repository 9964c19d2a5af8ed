//! Why a store call failed, as kinds a caller can match on. Database
//! errors stay attached as the `source` of the kind they caused, so a log
//! can show the whole chain while an HTTP answer shows only the kind.

use std::borrow::Cow;

/// Any error kept as the cause of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A rule of the data refused the write; the reason says which.
    #[error("conflict: {0}")]
    Conflict(ConflictReason),
    /// The store cannot take writes or reads right now (connection lost,
    /// disk full, I/O error, commit failure). Retry later.
    #[error("store unavailable: {context}")]
    Unavailable {
        context: Cow<'static, str>,
        #[source]
        source: Option<BoxError>,
    },
    /// The store is shutting down.
    #[error("store is closed")]
    Closed,
    /// The caller asked for something the store cannot do as asked (a bad
    /// database URL or schema name, a cursor moved backwards).
    #[error("invalid request to the store: {context}")]
    Invalid {
        context: Cow<'static, str>,
        #[source]
        source: Option<BoxError>,
    },
    /// Stored bytes do not decode: a bug or tampering, never the client's fault.
    #[error("corrupt stored data: {context}")]
    Corrupt {
        context: Cow<'static, str>,
        #[source]
        source: Option<BoxError>,
    },
}

/// Which rule refused a write. Its text is the same on every backend and
/// names no database internals, so it may be shown to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConflictReason {
    #[error("tenant {tenant_id} already exists")]
    TenantExists { tenant_id: String },
    /// A key's id or secret is taken, or its tenant does not exist.
    #[error(
        "key for tenant {tenant_id} not inserted: its id or secret is already in use, or the tenant does not exist"
    )]
    KeyNotInserted { tenant_id: String },
    /// Version 1 of a definition for a type (or pattern) the tenant already has.
    #[error("tenant {tenant_id} already has a definition for `{event_type}`")]
    DefinitionExists {
        tenant_id: String,
        event_type: String,
    },
    /// That version of the definition exists already (a concurrent update).
    #[error("definition {definition_id} already has a version {version}")]
    DefinitionVersionExists { definition_id: String, version: u32 },
    /// The tenant already has a subscription with this subscriber name.
    #[error("tenant {tenant_id} already has a subscription named `{subscriber_name}`")]
    SubscriptionNameExists {
        tenant_id: String,
        subscriber_name: String,
    },
    /// The tenant already has a processor with this name.
    #[error("tenant {tenant_id} already has a processor named `{processor_name}`")]
    ProcessorNameExists {
        tenant_id: String,
        processor_name: String,
    },
    /// A compare-and-set cursor move found the cursor elsewhere: another
    /// follower sharing its name moved it first.
    #[error("cursor {name} is at {actual}, not {expected}: another follower moved it")]
    CursorMoved {
        name: String,
        expected: i64,
        actual: i64,
    },
}

impl StoreError {
    pub(crate) fn unavailable(
        context: impl Into<Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> StoreError {
        StoreError::Unavailable {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    pub(crate) fn unavailable_because(context: impl Into<Cow<'static, str>>) -> StoreError {
        StoreError::Unavailable {
            context: context.into(),
            source: None,
        }
    }

    pub(crate) fn invalid(context: impl Into<Cow<'static, str>>) -> StoreError {
        StoreError::Invalid {
            context: context.into(),
            source: None,
        }
    }

    pub(crate) fn invalid_because(
        context: impl Into<Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> StoreError {
        StoreError::Invalid {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    pub(crate) fn corrupt(context: impl Into<Cow<'static, str>>) -> StoreError {
        StoreError::Corrupt {
            context: context.into(),
            source: None,
        }
    }

    /// The same failure for another waiter: a group commit's failure is
    /// answered to every request in it, and a cause cannot be cloned, so
    /// each gets its text.
    pub(crate) fn for_each_waiter(&self) -> StoreError {
        match self {
            StoreError::Conflict(r) => StoreError::Conflict(r.clone()),
            StoreError::Closed => StoreError::Closed,
            e => StoreError::Unavailable {
                context: "group commit failed".into(),
                source: Some(error_chain(e).into()),
            },
        }
    }
}

/// An error and its causes on one line (`a: b: c`), for logs.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_every_cause_and_the_kind_only_its_own_context() {
        let e = StoreError::unavailable("commit failed", std::io::Error::other("disk full"));
        assert_eq!(e.to_string(), "store unavailable: commit failed");
        assert_eq!(
            error_chain(&e),
            "store unavailable: commit failed: disk full"
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
