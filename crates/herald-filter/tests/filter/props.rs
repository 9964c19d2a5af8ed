//! Properties: untrusted filters and selectors never panic, and matching
//! agrees with an independent oracle written in plain Rust.

use herald_filter::{EventView, Filter, Selector};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::support::event_data;

/// Text that looks like CEL often enough to reach deep into the parser.
fn cel_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("event".to_string()),
        Just(".data".to_string()),
        Just(".".to_string()),
        Just("has(".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(" && ".to_string()),
        Just(" || ".to_string()),
        Just(" ? ".to_string()),
        Just(" : ".to_string()),
        Just(" > ".to_string()),
        Just(" == ".to_string()),
        Just(" in ".to_string()),
        Just("!".to_string()),
        Just("-".to_string()),
        Just(",".to_string()),
        Just(".exists(x, ".to_string()),
        Just("x".to_string()),
        Just("'s'".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("\\".to_string()),
        Just("1.5e3".to_string()),
        Just("18446744073709551616".to_string()),
        Just("0x".to_string()),
        Just("u".to_string()),
        Just("b'".to_string()),
        Just("r\"".to_string()),
        Just("\n".to_string()),
        Just("é".to_string()),
        "[a-z_]{1,6}",
        "[0-9]{1,4}",
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
        "(order|payment|user|\\*|>)(\\.(\\*|>|[a-z]{1,4})){0,3}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("event_types".to_string()),
                    Just("event_sources".to_string()),
                    Just("event_categories".to_string()),
                    Just("filter".to_string()),
                    "[a-z]{1,5}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compiling_any_text_never_panics(src in prop_oneof![any::<String>(), cel_like()]) {
        // Either outcome is fine; a compiled filter also evaluates without
        // panicking, whatever it says.
        if let Ok(filter) = Filter::compile(&src) {
            let event = event_data(json!({"x": 1, "s": "a", "l": [1, 2]}));
            let _ = filter.matches(&EventView::new(&event));
        }
    }

    #[test]
    fn parsing_any_selector_never_panics(body in arbitrary_json(), filter in cel_like()) {
        let _ = Selector::from_json(&body, "");
        let mut with_filter = body;
        if let Value::Object(fields) = &mut with_filter {
            fields.insert("filter".into(), Value::from(filter));
        }
        let _ = Selector::from_json(&with_filter, "/s");
    }
}

/// A number in the generated events and filters.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn cel(self) -> String {
        match self {
            Num::Int(i) => i.to_string(),
            Num::Float(f) => format!("{f:?}"),
        }
    }

    fn json(self) -> Value {
        match self {
            Num::Int(i) => json!(i),
            Num::Float(f) => json!(f),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Gt,
    Lt,
    Ge,
    Eq,
    Ne,
}

/// A generated filter over `data.n0..n2` (numbers) and `data.s0..s2`
/// (strings); every leaf tests presence first, so evaluation never errors.
#[derive(Debug, Clone)]
enum Expr {
    Num(usize, Cmp, Num),
    Str(usize, bool, String),
    NumIn(usize, Vec<Num>),
    StrIn(usize, Vec<String>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

/// The event data the oracle reads.
#[derive(Debug, Clone)]
struct Data {
    nums: [Option<Num>; 3],
    strs: [Option<String>; 3],
}

fn num() -> impl Strategy<Value = Num> {
    prop_oneof![
        (-50i64..50).prop_map(Num::Int),
        (-200i64..200).prop_map(|h| Num::Float(h as f64 / 4.0)),
    ]
}

fn word() -> impl Strategy<Value = String> {
    "[ab]{0,2}"
}

fn cmp() -> impl Strategy<Value = Cmp> {
    prop_oneof![
        Just(Cmp::Gt),
        Just(Cmp::Lt),
        Just(Cmp::Ge),
        Just(Cmp::Eq),
        Just(Cmp::Ne)
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        (0..3usize, cmp(), num()).prop_map(|(k, c, n)| Expr::Num(k, c, n)),
        (0..3usize, any::<bool>(), word()).prop_map(|(k, eq, s)| Expr::Str(k, eq, s)),
        (0..3usize, prop::collection::vec(num(), 0..4)).prop_map(|(k, l)| Expr::NumIn(k, l)),
        (0..3usize, prop::collection::vec(word(), 0..4)).prop_map(|(k, l)| Expr::StrIn(k, l)),
    ];
    leaf.prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Expr::Not(Box::new(a))),
        ]
    })
}

fn data() -> impl Strategy<Value = Data> {
    (
        prop::array::uniform3(prop::option::of(num())),
        prop::array::uniform3(prop::option::of(word())),
    )
        .prop_map(|(nums, strs)| Data { nums, strs })
}

impl Expr {
    fn cel(&self) -> String {
        let list = |items: Vec<String>| format!("[{}]", items.join(", "));
        match self {
            Expr::Num(k, c, n) => {
                let op = match c {
                    Cmp::Gt => ">",
                    Cmp::Lt => "<",
                    Cmp::Ge => ">=",
                    Cmp::Eq => "==",
                    Cmp::Ne => "!=",
                };
                format!("(has(event.data.n{k}) && event.data.n{k} {op} {})", n.cel())
            }
            Expr::Str(k, eq, s) => {
                let op = if *eq { "==" } else { "!=" };
                format!("(has(event.data.s{k}) && event.data.s{k} {op} '{s}')")
            }
            Expr::NumIn(k, l) => format!(
                "(has(event.data.n{k}) && event.data.n{k} in {})",
                list(l.iter().map(|n| n.cel()).collect())
            ),
            Expr::StrIn(k, l) => format!(
                "(has(event.data.s{k}) && event.data.s{k} in {})",
                list(l.iter().map(|s| format!("'{s}'")).collect())
            ),
            Expr::And(a, b) => format!("({} && {})", a.cel(), b.cel()),
            Expr::Or(a, b) => format!("({} || {})", a.cel(), b.cel()),
            Expr::Not(a) => format!("!{}", a.cel()),
        }
    }

    /// The oracle: what the filter should say, computed in plain Rust.
    fn holds(&self, data: &Data) -> bool {
        match self {
            Expr::Num(k, c, n) => data.nums[*k].is_some_and(|v| {
                let (v, n) = (v.as_f64(), n.as_f64());
                match c {
                    Cmp::Gt => v > n,
                    Cmp::Lt => v < n,
                    Cmp::Ge => v >= n,
                    Cmp::Eq => v == n,
                    Cmp::Ne => v != n,
                }
            }),
            Expr::Str(k, eq, s) => data.strs[*k].as_ref().is_some_and(|v| (v == s) == *eq),
            Expr::NumIn(k, l) => {
                data.nums[*k].is_some_and(|v| l.iter().any(|n| n.as_f64() == v.as_f64()))
            }
            Expr::StrIn(k, l) => data.strs[*k].as_ref().is_some_and(|v| l.contains(v)),
            Expr::And(a, b) => a.holds(data) && b.holds(data),
            Expr::Or(a, b) => a.holds(data) || b.holds(data),
            Expr::Not(a) => !a.holds(data),
        }
    }
}

impl Data {
    fn json(&self) -> Value {
        let mut object = Map::new();
        for (i, n) in self.nums.iter().enumerate() {
            if let Some(n) = n {
                object.insert(format!("n{i}"), n.json());
            }
        }
        for (i, s) in self.strs.iter().enumerate() {
            if let Some(s) = s {
                object.insert(format!("s{i}"), Value::from(s.as_str()));
            }
        }
        Value::Object(object)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matching_agrees_with_the_oracle(expr in expr(), data in data()) {
        let src = expr.cel();
        let filter = Filter::compile(&src).map_err(|e| TestCaseError::fail(format!("{src}: {e}")))?;
        let event = event_data(data.json());
        let got = filter.matches(&EventView::new(&event));
        prop_assert_eq!(got, Ok(expr.holds(&data)), "{} on {}", src, data.json());
    }
}
