//! A CEL expression over the canonical event, compiled and checked once when
//! it is saved and evaluated per event against one shared root context.

use std::sync::{Arc, LazyLock};

use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Program, Value};
use thiserror::Error;

use crate::checks;
use crate::event_value::EventView;

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;

/// Why a filter was refused when saved. Positions are 1-based lines and
/// columns (columns count characters).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FilterError {
    #[error("the filter is empty; leave it out to match every event")]
    Empty,
    #[error("the filter is {len} bytes; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("syntax error at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "line {line}, column {column}: unknown variable `{name}`; a filter reads the event as `event`, as in `event.data.amount > 100`"
    )]
    UnknownVariable {
        name: String,
        line: usize,
        column: usize,
    },
    #[error(
        "line {line}, column {column}: the event has no field `{field}`; its fields are {known}"
    )]
    UnknownField {
        field: String,
        known: String,
        line: usize,
        column: usize,
    },
    #[error(
        "line {line}, column {column}: the filter gives {what}, not true or false; compare it, as in `event.data.amount > 100`"
    )]
    NotBoolean {
        what: String,
        line: usize,
        column: usize,
    },
}

impl FilterError {
    /// Where in the source the problem is, when it has a place.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            FilterError::Empty | FilterError::TooLong { .. } => None,
            FilterError::Syntax { line, column, .. }
            | FilterError::UnknownVariable { line, column, .. }
            | FilterError::UnknownField { line, column, .. }
            | FilterError::NotBoolean { line, column, .. } => Some((*line, *column)),
        }
    }
}

/// Why a filter could not judge one event. The event does not match; the
/// caller counts or logs the error.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EvalError {
    #[error("the filter failed on this event: {0}")]
    Execution(String),
    #[error("the filter gave {0} on this event, not true or false")]
    NotBoolean(String),
}

/// The root context every evaluation borrows: the standard functions are
/// registered once, each event gets a cheap child scope holding `event`.
pub(crate) static ROOT: LazyLock<Context<'static, 'static>> = LazyLock::new(Context::default);

/// A compiled, checked CEL filter; cloning shares the compiled program.
#[derive(Debug, Clone)]
pub struct Filter {
    source: String,
    program: Arc<Program>,
}

impl Filter {
    /// Compiles `src` and refuses what can be caught before any event is
    /// seen: syntax errors, variables other than `event`, top-level event
    /// fields that do not exist, expressions that cannot give a bool, and
    /// sources over [`MAX_FILTER_LEN`].
    pub fn compile(src: &str) -> Result<Filter, FilterError> {
        Filter::compile_with(src, &[])
    }

    /// [`Filter::compile`] for a filter that may also read the variables
    /// named in `extra` (bound at evaluation by [`Filter::matches_with`]),
    /// as a wait's filter reads `wait.context`.
    pub fn compile_with(src: &str, extra: &[&str]) -> Result<Filter, FilterError> {
        if src.len() > MAX_FILTER_LEN {
            return Err(FilterError::TooLong {
                len: src.len(),
                max: MAX_FILTER_LEN,
            });
        }
        if src.trim().is_empty() {
            return Err(FilterError::Empty);
        }
        let program = compile_program(src)?;
        checks::check(&program, src, extra)?;
        Ok(Filter {
            source: src.to_string(),
            program: Arc::new(program),
        })
    }

    /// The text the filter was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the event satisfies the filter. An `Err` means the filter
    /// could not judge it (for example it reads a field the event lacks
    /// without `has(…)`); treat it as no match.
    pub fn matches(&self, event: &EventView<'_>) -> Result<bool, EvalError> {
        let root: &Context<'_, '_> = &ROOT;
        let mut scope = root.new_inner_scope();
        // The scope borrows the event's converted value; nothing is copied.
        scope.set_variable_resolver(event.variable());
        self.run(&scope)
    }

    /// [`Filter::matches`] with `binding` bound beside `event`.
    pub fn matches_with(
        &self,
        event: &EventView<'_>,
        binding: &Binding,
    ) -> Result<bool, EvalError> {
        let both = WithBinding {
            event: event.variable(),
            binding,
        };
        let root: &Context<'_, '_> = &ROOT;
        let mut scope = root.new_inner_scope();
        scope.set_variable_resolver(&both);
        self.run(&scope)
    }

    fn run(&self, scope: &Context<'_, '_>) -> Result<bool, EvalError> {
        match self.program.execute(scope) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(EvalError::NotBoolean(describe(&other))),
            Err(e) => Err(EvalError::Execution(e.to_string())),
        }
    }
}

/// Parses `src`, a syntax error with its 1-based line and column.
pub(crate) fn compile_program(src: &str) -> Result<Program, FilterError> {
    Program::compile(src).map_err(|errors| {
        let first = errors.errors.first();
        let (line, column) = first.map_or((1, 1), |e| {
            // The parser reports 1-based lines and columns.
            (e.pos.0.max(1) as usize, e.pos.1.max(1) as usize)
        });
        let message = first.map_or_else(|| "invalid expression".to_string(), |e| e.msg.clone());
        FilterError::Syntax {
            line,
            column,
            message,
        }
    })
}

/// A named JSON value bound as a CEL variable beside `event`, converted
/// once: a wait's `wait` (`wait.context.order_id`).
#[derive(Debug)]
pub struct Binding {
    name: String,
    value: Box<dyn Val>,
}

impl Binding {
    /// `value` as the variable `name`.
    pub fn json(name: &str, value: &serde_json::Value) -> Binding {
        Binding {
            name: name.to_string(),
            value: crate::event_value::json_to_val(value.clone()),
        }
    }
}

/// Resolves the binding's name to its value and `event` to the event.
struct WithBinding<'a> {
    event: &'a crate::event_value::EventVariable,
    binding: &'a Binding,
}

impl VariableResolver for WithBinding<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        if variable == self.binding.name {
            Some(CowVal::Borrowed(self.binding.value.as_ref()))
        } else {
            self.event.resolve(variable)
        }
    }
}

impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// A value's type with its article, for messages: "an int", "a string".
fn describe(value: &Value) -> String {
    let name = value.type_of().to_string();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}
