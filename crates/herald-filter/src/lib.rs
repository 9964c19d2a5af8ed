//! How Herald selects events: subscriptions, processors, workflow waits and
//! the live tail all decide "does this event concern me?" the same way,
//! with a [`Selector`]: event types (exact, or NATS-style patterns where `*`
//! is one token and `>` one or more trailing tokens), event sources,
//! categories, and an optional CEL [`Filter`] over the canonical event
//! (`event.data.amount > 100 && event.actor.user_id != ""`).
//!
//! Everything is checked when a selector is saved, so a bad one is refused
//! with the field and, for CEL, the line and column at fault; evaluation is
//! pure (no IO, no async). To test many selectors against one event, wrap
//! the event once in an [`EventView`]: it converts the event to a CEL value
//! at most once, and only when some selector's cheap checks pass and it has
//! a CEL filter.
//!
//! An evaluation error (a missing field, comparing a string with a number)
//! is *not a match*: [`Selector::matches`] returns it as `Err` so the
//! caller can count and log it, and a subscriber never receives an event
//! its filter could not judge.

mod cel_filter;
mod checks;
mod event_value;
mod expression;
mod selector;

pub use cel_filter::{Binding, EvalError, Filter, FilterError, MAX_FILTER_LEN};
pub use event_value::EventView;
pub use expression::Expression;
pub use selector::{CategoryName, MAX_SELECTOR_ENTRIES, Selector};
