//! What a definition applies to: one exact event type (`order.created`) or a
//! NATS-style pattern over `.`-separated tokens, where `*` stands for exactly
//! one token and `>` (last only) for one or more trailing tokens
//! (`order.*`, `order.>`). Exact definitions win over patterns; among
//! patterns the more specific one wins ([`TypePattern::specificity`]).

use std::cmp::Ordering;
use std::fmt;

use herald_core::EventType;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One token of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Token {
    Literal(String),
    /// `*`: exactly one token.
    Star,
    /// `>`: one or more trailing tokens.
    Tail,
}

/// An exact event type or a wildcard pattern, parsed once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TypePattern {
    text: String,
    /// Empty for an exact type.
    tokens: Vec<Token>,
}

impl TypePattern {
    /// Parses `s`: anything with `*` or `>` is a pattern whose wildcards
    /// must be whole tokens; anything else must be a valid event type.
    pub fn parse(s: &str) -> Result<TypePattern, String> {
        if !s.contains(['*', '>']) {
            return EventType::parse(s)
                .map(|t| TypePattern {
                    text: t.into(),
                    tokens: Vec::new(),
                })
                .map_err(|e| e.0);
        }
        if s.len() > herald_core::model::MAX_EVENT_TYPE_LEN {
            return Err(format!(
                "a pattern has at most {} bytes",
                herald_core::model::MAX_EVENT_TYPE_LEN
            ));
        }
        let parts: Vec<&str> = s.split('.').collect();
        let mut tokens = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let token = match *part {
                "*" => Token::Star,
                ">" if i + 1 == parts.len() => Token::Tail,
                ">" => return Err("`>` may only be the last token, as in `order.>`".into()),
                "" => {
                    return Err(
                        "a pattern's tokens are non-empty: no leading, trailing or double `.`"
                            .into(),
                    );
                }
                p if p.contains(['*', '>']) => {
                    return Err(format!(
                        "`{p}` mixes a wildcard with other characters; wildcards are whole tokens: `order.*`, `order.>`"
                    ));
                }
                p if p.chars().any(|c| c.is_control() || c.is_whitespace()) => {
                    return Err(
                        "a pattern's tokens contain no whitespace or control characters".into(),
                    );
                }
                p => Token::Literal(p.to_string()),
            };
            tokens.push(token);
        }
        Ok(TypePattern {
            text: s.to_string(),
            tokens,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_pattern(&self) -> bool {
        !self.tokens.is_empty()
    }

    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Whether `event_type` is this exact type or matches this pattern.
    pub fn matches(&self, event_type: &str) -> bool {
        if self.tokens.is_empty() {
            return self.text == event_type;
        }
        let mut parts = event_type.split('.');
        for token in &self.tokens {
            match token {
                Token::Tail => return parts.next().is_some(),
                Token::Star => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Token::Literal(l) => {
                    if parts.next() != Some(l.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }

    /// How specific a pattern is; greater wins. More literal tokens first,
    /// then no `>` over `>`, then more tokens, then literals further left,
    /// then the text (so the order is total and stable).
    pub fn specificity(&self) -> Specificity<'_> {
        let literals = self
            .tokens
            .iter()
            .filter(|t| matches!(t, Token::Literal(_)))
            .count();
        let has_tail = matches!(self.tokens.last(), Some(Token::Tail));
        Specificity {
            exact: self.tokens.is_empty(),
            literals,
            no_tail: !has_tail,
            len: self.tokens.len(),
            shape: self
                .tokens
                .iter()
                .map(|t| matches!(t, Token::Literal(_)))
                .collect(),
            text: &self.text,
        }
    }
}

/// The ordering key of [`TypePattern::specificity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Specificity<'a> {
    exact: bool,
    literals: usize,
    no_tail: bool,
    len: usize,
    /// Literal (`true`) or wildcard per position: literals further left win.
    shape: Vec<bool>,
    text: &'a str,
}

impl Ord for Specificity<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.exact, self.literals, self.no_tail, self.len)
            .cmp(&(other.exact, other.literals, other.no_tail, other.len))
            .then_with(|| self.shape.cmp(&other.shape))
            // Reversed so that, all else equal, the alphabetically first wins.
            .then_with(|| other.text.cmp(self.text))
    }
}

impl PartialOrd for Specificity<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for TypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for TypePattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for TypePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TypePattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> TypePattern {
        TypePattern::parse(s).unwrap()
    }

    #[test]
    fn wildcards_follow_nats() {
        assert!(p("order.*").matches("order.created"));
        assert!(!p("order.*").matches("order"));
        assert!(!p("order.*").matches("order.created.v2"));
        assert!(p("order.>").matches("order.created"));
        assert!(p("order.>").matches("order.created.v2"));
        assert!(!p("order.>").matches("order"));
        assert!(p("*.created").matches("user.created"));
        assert!(p(">").matches("anything.at.all"));
        assert!(p("*").matches("db_error"));
        assert!(!p("*").matches("a.b"));
        assert!(p("order.created").matches("order.created"));
        assert!(!p("order.created").matches("order.created.v2"));
        assert!(!p("order.created").is_pattern());
    }

    #[test]
    fn malformed_patterns_are_refused_with_a_reason() {
        for bad in [
            "order*",
            "order.>.x",
            "order..*",
            ".order.*",
            "or der.*",
            "*.",
            "",
            " x",
        ] {
            assert!(TypePattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            TypePattern::parse("Order Completed").is_ok(),
            "exact types may hold spaces"
        );
    }

    #[test]
    fn the_more_specific_pattern_wins() {
        let mut ps = [
            p(">"),
            p("order.>"),
            p("order.*"),
            p("*.created"),
            p("order.created.*"),
        ];
        ps.sort_by(|a, b| b.specificity().cmp(&a.specificity()));
        let order: Vec<&str> = ps.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            order,
            ["order.created.*", "order.*", "*.created", "order.>", ">"]
        );
        assert!(p("order.created").specificity() > p("order.created.*").specificity());
    }
}
