//! What `Filter::compile` refuses, and where it says the problem is.

use herald_filter::{Filter, FilterError, MAX_FILTER_LEN};

fn refused(src: &str) -> FilterError {
    match Filter::compile(src) {
        Ok(_) => panic!("`{src}` should be refused"),
        Err(e) => e,
    }
}

#[test]
fn a_syntax_error_names_its_line_and_column() {
    let e = refused("event.data.amount > ");
    let FilterError::Syntax { line, column, .. } = &e else {
        panic!("expected a syntax error, got {e:?}");
    };
    assert_eq!(*line, 1);
    assert!(
        *column >= 19,
        "column {column} should be at or after the `>`"
    );
    assert!(
        e.to_string().starts_with("syntax error at line 1, column"),
        "{e}"
    );
}

#[test]
fn a_syntax_error_on_a_later_line_names_that_line() {
    let e = refused("event.data.amount > 100 &&\n  event.data.x ==");
    assert_eq!(e.position().map(|p| p.0), Some(2), "{e}");
    let e = refused("event.data.x == 'unterminated");
    assert!(matches!(e, FilterError::Syntax { .. }), "{e:?}");
}

#[test]
fn unbalanced_parentheses_are_a_syntax_error_at_the_place() {
    let e = refused("(event.data.a > 1");
    assert!(matches!(e, FilterError::Syntax { line: 1, .. }), "{e:?}");
    let e = refused("event.data.a > 1)");
    let FilterError::Syntax { column, .. } = e else {
        panic!("expected a syntax error");
    };
    assert_eq!(column, 17, "the stray `)` is the 17th character");
}

#[test]
fn variables_other_than_event_are_refused_with_their_position() {
    let e = refused("event.data.a > 1 && evnt.data.b == 2");
    assert_eq!(
        e,
        FilterError::UnknownVariable {
            name: "evnt".into(),
            line: 1,
            column: 21
        }
    );
    assert!(e.to_string().contains("`event`"), "{e}");
    let e = refused("amount > 100");
    assert!(matches!(e, FilterError::UnknownVariable { ref name, .. } if name == "amount"));
}

#[test]
fn macro_variables_are_in_scope_only_inside_their_macro() {
    Filter::compile("event.data.items.exists(i, i.price > 10)").unwrap();
    Filter::compile("event.data.items.all(i, i > 0) && event.data.tags.exists(t, t == 'x')")
        .unwrap();
    Filter::compile("event.data.items.map(i, i * 2).exists(d, d > 4)").unwrap();
    let e = refused("event.data.items.exists(i, i > 0) && i > 2");
    assert!(
        matches!(e, FilterError::UnknownVariable { ref name, .. } if name == "i"),
        "{e:?}"
    );
}

#[test]
fn top_level_fields_the_event_lacks_are_refused() {
    let e = refused("event.amount > 100");
    let FilterError::UnknownField {
        field,
        line,
        column,
        ..
    } = &e
    else {
        panic!("expected an unknown field, got {e:?}");
    };
    assert_eq!((field.as_str(), *line, *column), ("amount", 1, 7));
    assert!(
        e.to_string().contains("data"),
        "the message lists the fields: {e}"
    );
    // Inside has() too.
    assert!(matches!(
        refused("has(event.user_id)"),
        FilterError::UnknownField { .. }
    ));
    // Nested fields are free-form and accepted.
    Filter::compile("event.actor.user_id != '' && has(event.data.whatever.deep)").unwrap();
}

#[test]
fn every_canonical_field_is_accepted() {
    for field in [
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
    ] {
        Filter::compile(&format!("has(event.{field})"))
            .unwrap_or_else(|e| panic!("`{field}` refused: {e}"));
    }
}

#[test]
fn expressions_that_cannot_give_a_bool_are_refused() {
    for (src, what) in [
        ("1 + 2", "a sum"),
        ("event.data.amount * 2", "a product"),
        ("'order'", "a string"),
        ("42", "an int"),
        ("[true]", "a list"),
        ("size(event.data.items)", "a size"),
        ("event.event_type", "the event's `event_type`"),
        ("event", "the whole event"),
    ] {
        let e = refused(src);
        assert!(
            matches!(&e, FilterError::NotBoolean { what: w, .. } if w == what),
            "`{src}`: {e:?}"
        );
    }
    // What might be a bool is left to evaluation.
    Filter::compile("event.data.flag").unwrap();
    Filter::compile("true").unwrap();
}

#[test]
fn empty_and_overlong_filters_are_refused() {
    assert_eq!(refused(""), FilterError::Empty);
    assert_eq!(refused("  \n "), FilterError::Empty);
    let long = format!("event.data.a == '{}'", "x".repeat(MAX_FILTER_LEN));
    assert!(
        matches!(refused(&long), FilterError::TooLong { len, max } if len == long.len() && max == MAX_FILTER_LEN)
    );
    let fits = format!("event.data.a == '{}'", "x".repeat(MAX_FILTER_LEN - 20));
    assert!(fits.len() <= MAX_FILTER_LEN);
    Filter::compile(&fits).unwrap();
}

#[test]
fn positions_count_characters_not_bytes() {
    let e = refused("event.data.name == 'é' && nope");
    assert_eq!(e.position(), Some((1, 27)), "{e:?}");
}

#[test]
fn the_longest_chains_that_fit_compile_or_are_refused_without_crashing() {
    // Long flat chains make deep trees; they must neither overflow the
    // stack nor panic, at compile or evaluation time.
    let event = crate::support::event_data(serde_json::json!({"a": 1}));
    let view = herald_filter::EventView::new(&event);
    for unit in ["event.data.a == 1 || ", "1 + ", "!", "(", "-"] {
        let mut src = unit.repeat(MAX_FILTER_LEN / unit.len() - 2);
        src.push_str("true");
        src.truncate(MAX_FILTER_LEN);
        if let Ok(f) = Filter::compile(&src) {
            let _ = f.matches(&view);
        }
    }
}

#[test]
fn syntax_error_columns_count_characters_too() {
    let e = refused("event.data.name == 'é' && )");
    assert_eq!(e.position(), Some((1, 27)), "{e:?}");
}
