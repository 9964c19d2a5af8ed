//! Tests of herald-filter: compile-time checks, evaluation semantics,
//! selectors, and properties (never panics; agrees with a plain-Rust oracle).

mod compile;
mod eval;
mod props;
mod selector;
mod support;
