//! A CEL expression over the canonical event whose *value* is wanted, not
//! a yes or no: an enrich processor's field (`event.data.amount > 1000 ?
//! 'high' : 'low'`). Checked when saved like a [`crate::Filter`] (syntax,
//! variables, event fields, length), and its result turned into JSON.

use std::sync::Arc;

use cel::{Context, Program, Value};
use serde_json::{Map, Number, Value as Json};

use crate::cel_filter::{EvalError, FilterError, MAX_FILTER_LEN, compile_program};
use crate::event_value::EventView;
use crate::{cel_filter, checks};

/// A compiled, checked CEL expression; cloning shares the program.
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    program: Arc<Program>,
}

impl Expression {
    /// Compiles `src`, refusing what a filter refuses except a result that
    /// is not a bool.
    pub fn compile(src: &str) -> Result<Expression, FilterError> {
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
        checks::check_names(&program, src)?;
        Ok(Expression {
            source: src.to_string(),
            program: Arc::new(program),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The expression's value on this event, as JSON. Timestamps become
    /// RFC 3339 strings, durations their seconds, bytes a list of numbers.
    pub fn evaluate(&self, event: &EventView<'_>) -> Result<Json, EvalError> {
        let root: &Context<'_, '_> = &cel_filter::ROOT;
        let mut scope = root.new_inner_scope();
        scope.set_variable_resolver(event.variable());
        let value = self
            .program
            .execute(&scope)
            .map_err(|e| EvalError::Execution(e.to_string()))?;
        to_json(&value)
    }
}

fn to_json(value: &Value) -> Result<Json, EvalError> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.to_string()),
        Value::Bytes(b) => Json::from(b.as_slice().to_vec()),
        Value::Timestamp(t) => Json::String(t.to_rfc3339()),
        Value::Duration(d) => {
            Number::from_f64(d.num_milliseconds() as f64 / 1000.0).map_or(Json::Null, Json::Number)
        }
        Value::List(items) => Json::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Map(map) => {
            let mut out = Map::new();
            for (k, v) in map.map.iter() {
                let key = match k {
                    cel::objects::Key::String(s) => s.to_string(),
                    cel::objects::Key::Int(i) => i.to_string(),
                    cel::objects::Key::Uint(u) => u.to_string(),
                    cel::objects::Key::Bool(b) => b.to_string(),
                };
                out.insert(key, to_json(v)?);
            }
            Json::Object(out)
        }
        other => {
            return Err(EvalError::Execution(format!(
                "the expression gave a {} value, which has no JSON form",
                other.type_of()
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::CanonicalEvent;

    fn event(data: Json) -> CanonicalEvent {
        serde_json::from_value(serde_json::json!({
            "event_id": "0190f5b2-7c3a-7b4e-9a1d-0123456789ab",
            "tenant_id": "acme",
            "event_type": "order.placed",
            "category": "business",
            "event_source": "backend",
            "timestamp": "2026-03-01T12:00:00Z",
            "processing_timestamp": "2026-03-01T12:00:01.250Z",
            "status": "pending",
            "data": data,
        }))
        .expect("a valid canonical event")
    }

    #[test]
    fn an_expression_gives_its_value_as_json() {
        let e = event(serde_json::json!({"amount": 1500, "region": "eu"}));
        let view = EventView::new(&e);
        let risk = Expression::compile("event.data.amount > 1000 ? 'high' : 'low'").unwrap();
        assert_eq!(risk.evaluate(&view).unwrap(), Json::from("high"));
        let doubled = Expression::compile("event.data.amount * 2").unwrap();
        assert_eq!(doubled.evaluate(&view).unwrap(), Json::from(3000));
        let list = Expression::compile("[event.data.region, size(event.data.region)]").unwrap();
        assert_eq!(list.evaluate(&view).unwrap(), serde_json::json!(["eu", 2]));
    }

    #[test]
    fn an_expression_is_checked_like_a_filter_but_may_give_any_value() {
        assert!(matches!(
            Expression::compile("order.amount"),
            Err(FilterError::UnknownVariable { .. })
        ));
        assert!(matches!(
            Expression::compile("event.amount"),
            Err(FilterError::UnknownField { .. })
        ));
        assert!(matches!(
            Expression::compile("1 +"),
            Err(FilterError::Syntax { .. })
        ));
        assert!(Expression::compile("'a string'").is_ok());
    }

    #[test]
    fn a_missing_field_is_an_evaluation_error() {
        let e = event(serde_json::json!({}));
        let x = Expression::compile("event.data.amount * 2").unwrap();
        assert!(x.evaluate(&EventView::new(&e)).is_err());
    }
}
