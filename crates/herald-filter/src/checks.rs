//! What can be refused in a filter before any event is seen: names other
//! than `event` (and the variables its macros bind), top-level event fields
//! the canonical event does not have, and expressions whose result cannot
//! be a bool.

use cel::Program;
use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

use crate::cel_filter::FilterError;

/// The canonical event's top-level fields.
pub const EVENT_FIELDS: &[&str] = &[
    "event_id",
    "tenant_id",
    "event_type",
    "category",
    "event_category",
    "event_source",
    "timestamp",
    "processing_timestamp",
    "actor",
    "object",
    "correlation",
    "outcome",
    "evidence",
    "context",
    "data",
    "metadata",
    "stream_id",
    "stream_version",
    "status",
    "idempotency_key",
    "schema_version",
];

/// CEL's type names, which may appear as bare identifiers (`type(x) == int`).
const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "timestamp",
    "duration",
];

/// Functions and operators whose result is never a bool.
const NON_BOOL_CALLS: &[(&str, &str)] = &[
    ("_+_", "a sum"),
    ("_-_", "a difference"),
    ("_*_", "a product"),
    ("_/_", "a quotient"),
    ("_%_", "a remainder"),
    ("-_", "a negation"),
    ("size", "a size"),
    ("int", "an int"),
    ("uint", "a uint"),
    ("double", "a double"),
    ("string", "a string"),
    ("bytes", "bytes"),
    ("timestamp", "a timestamp"),
    ("duration", "a duration"),
    ("type", "a type"),
];

/// Top-level event fields that are never a bool.
fn field_may_be_bool(field: &str) -> bool {
    // `data` and `metadata` may hold anything; the rest are strings,
    // numbers, timestamps or objects.
    matches!(field, "data" | "metadata")
}

/// Checks `program`; `extra` names variables bound beside `event` (a
/// wait's `wait`), which may be read freely.
pub fn check(program: &Program, src: &str, extra: &[&str]) -> Result<(), FilterError> {
    let root = program.expression();
    let loc = Locator { program, src };
    if let Some(what) = non_bool(root) {
        let (line, column) = loc.node(root.id);
        return Err(FilterError::NotBoolean { what, line, column });
    }
    let mut scope: Vec<String> = extra.iter().map(|v| (*v).to_string()).collect();
    walk(root, &mut scope, &loc)
}

/// The checks of [`check`] but the result's type: names and event fields.
pub fn check_names(program: &Program, src: &str) -> Result<(), FilterError> {
    let loc = Locator { program, src };
    let mut scope = Vec::new();
    walk(program.expression(), &mut scope, &loc)
}

/// What a root expression gives, when it can be told from its shape alone
/// and is not a bool.
fn non_bool(expr: &IdedExpr) -> Option<String> {
    match &expr.expr {
        Expr::Literal(LiteralValue::Boolean(_)) => None,
        Expr::Literal(LiteralValue::Null) => Some("null".into()),
        Expr::Literal(LiteralValue::Int(_)) => Some("an int".into()),
        Expr::Literal(LiteralValue::UInt(_)) => Some("a uint".into()),
        Expr::Literal(LiteralValue::Double(_)) => Some("a double".into()),
        Expr::Literal(LiteralValue::String(_)) => Some("a string".into()),
        Expr::Literal(LiteralValue::Bytes(_)) => Some("bytes".into()),
        Expr::List(_) => Some("a list".into()),
        Expr::Map(_) => Some("a map".into()),
        Expr::Struct(_) => Some("an object".into()),
        Expr::Call(call) => NON_BOOL_CALLS
            .iter()
            .find(|(name, _)| *name == call.func_name)
            .map(|(_, what)| (*what).to_string()),
        Expr::Select(select) if !select.test => match &select.operand.expr {
            Expr::Ident(name) if name == "event" && !field_may_be_bool(&select.field) => {
                Some(format!("the event's `{}`", select.field))
            }
            _ => None,
        },
        Expr::Ident(name) if name == "event" => Some("the whole event".into()),
        _ => None,
    }
}

fn walk(expr: &IdedExpr, scope: &mut Vec<String>, loc: &Locator<'_>) -> Result<(), FilterError> {
    match &expr.expr {
        Expr::Unspecified | Expr::Literal(_) => Ok(()),
        Expr::Ident(name) => {
            if name == "event" || TYPE_NAMES.contains(&name.as_str()) || scope.contains(name) {
                return Ok(());
            }
            let (line, column) = loc.node(expr.id);
            Err(FilterError::UnknownVariable {
                name: name.clone(),
                line,
                column,
            })
        }
        Expr::Select(select) => {
            if let Expr::Ident(name) = &select.operand.expr
                && name == "event"
                && !scope.contains(name)
                && !EVENT_FIELDS.contains(&select.field.as_str())
            {
                // Point at the field's name rather than at the `.` before it.
                let (line, column) = loc.field(expr.id, &select.field);
                return Err(FilterError::UnknownField {
                    field: select.field.clone(),
                    known: EVENT_FIELDS.join(", "),
                    line,
                    column,
                });
            }
            walk(&select.operand, scope, loc)
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                walk(target, scope, loc)?;
            }
            call.args.iter().try_for_each(|a| walk(a, scope, loc))
        }
        Expr::List(list) => list.elements.iter().try_for_each(|e| walk(e, scope, loc)),
        Expr::Map(map) => map.entries.iter().try_for_each(|e| match &e.expr {
            EntryExpr::MapEntry(entry) => {
                walk(&entry.key, scope, loc)?;
                walk(&entry.value, scope, loc)
            }
            EntryExpr::StructField(field) => walk(&field.value, scope, loc),
        }),
        Expr::Struct(s) => s.entries.iter().try_for_each(|e| match &e.expr {
            EntryExpr::MapEntry(entry) => {
                walk(&entry.key, scope, loc)?;
                walk(&entry.value, scope, loc)
            }
            EntryExpr::StructField(field) => walk(&field.value, scope, loc),
        }),
        Expr::Comprehension(c) => {
            walk(&c.iter_range, scope, loc)?;
            walk(&c.accu_init, scope, loc)?;
            let bound = 2 + usize::from(c.iter_var2.is_some());
            scope.push(c.iter_var.clone());
            scope.push(c.accu_var.clone());
            if let Some(v) = &c.iter_var2 {
                scope.push(v.clone());
            }
            let result = walk(&c.loop_cond, scope, loc)
                .and_then(|()| walk(&c.loop_step, scope, loc))
                .and_then(|()| walk(&c.result, scope, loc));
            scope.truncate(scope.len() - bound);
            result
        }
    }
}

/// Turns the parser's byte offsets into the line and column a person reads.
struct Locator<'a> {
    program: &'a Program,
    src: &'a str,
}

impl Locator<'_> {
    fn offset(&self, id: u64) -> usize {
        self.program
            .source_info()
            .offset_for(id)
            .map_or(0, |(start, _)| start as usize)
    }

    /// Where node `id` starts.
    fn node(&self, id: u64) -> (usize, usize) {
        line_column(self.src, self.offset(id))
    }

    /// Where the name `field` of selection `id` is: the parser places a
    /// selection at its `.`, the name follows.
    fn field(&self, id: u64, field: &str) -> (usize, usize) {
        let dot = self.offset(id);
        let name = self
            .src
            .get(dot..)
            .and_then(|rest| rest.find(field))
            .map_or(dot, |i| dot + i);
        line_column(self.src, name)
    }
}

/// The 1-based line and character column of byte `offset` in `src`.
fn line_column(src: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for (i, ch) in src.char_indices() {
        if i >= offset {
            break;
        }
        if ch == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}
