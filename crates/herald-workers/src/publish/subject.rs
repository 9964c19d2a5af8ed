//! NATS subjects of what the publisher sends, and the escaping of their
//! tokens (the layout and the escape rule are in the `publish` module doc).

/// One escaped subject token (see the module doc).
pub fn subject_token(s: &str) -> String {
    if s.is_empty() {
        return "~".into();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    out
}

/// An event type as subject tokens: its dots separate tokens.
pub fn type_tokens(event_type: &str) -> String {
    event_type
        .split('.')
        .map(subject_token)
        .collect::<Vec<_>>()
        .join(".")
}

/// The text of one escaped token; `None` if it is not a valid escape.
pub fn unescape_token(token: &str) -> Option<String> {
    if token == "~" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'~' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The subject of a stored event.
pub fn event_subject(prefix: &str, tenant: &str, category: &str, event_type: &str) -> String {
    format!(
        "{prefix}.events.{}.{}.{}",
        subject_token(tenant),
        subject_token(category),
        type_tokens(event_type)
    )
}

/// The subject of a lifecycle notification (`kind` like `event.stored`).
pub fn lifecycle_subject(prefix: &str, tenant: &str, kind: &str) -> String {
    format!(
        "{prefix}.lifecycle.{}.{}",
        subject_token(tenant),
        type_tokens(kind)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_keep_type_dots_and_escape_everything_else() {
        assert_eq!(
            event_subject("herald", "acme", "business", "order.created"),
            "herald.events.acme.business.order.created"
        );
        assert_eq!(
            event_subject("h", "a-b_c", "system", "db error*>"),
            "h.events.a-b_c.system.db~20error~2A~3E"
        );
        assert_eq!(type_tokens("a..b."), "a.~.b.~");
        assert_eq!(type_tokens("ünï~"), "~C3~BCn~C3~AF~7E");
        assert_eq!(
            lifecycle_subject("herald", "acme", "event.processed.success"),
            "herald.lifecycle.acme.event.processed.success"
        );
    }

    #[test]
    fn every_token_is_a_valid_nats_token_and_unescapes_to_its_text() {
        for s in [
            "",
            "plain",
            "with space",
            "tab\there",
            "*",
            ">",
            "~",
            "~41",
            "日本語",
            "emoji 😀",
            "a/b\\c",
        ] {
            let t = subject_token(s);
            assert!(!t.is_empty());
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'~'),
                "{s:?} → {t:?}"
            );
            assert_eq!(unescape_token(&t).as_deref(), Some(s), "{t}");
        }
    }
}
