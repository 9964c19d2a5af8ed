//! Sensitive things inside free text: email addresses, card numbers and
//! secrets written inline (`password=…`, `"token": "…"`, `Authorization:
//! Bearer …`). Each finder returns the rewritten text, or `None` when there
//! was nothing to rewrite, so clean text (the common case) costs a scan and
//! no allocation.

use serde_json::Number;

use super::EmailHasher;

/// What an email becomes inside text: this prefix, then its keyed hash.
pub const EMAIL_MARKER: &str = "email_hash:";

/// Replaces every email in `s` with `email_hash:<hash>`; `None` when there
/// is none. Records the first hash in `first` when that is still empty.
pub(super) fn replace_emails(
    s: &str,
    hasher: &EmailHasher,
    first: &mut Option<String>,
) -> Option<String> {
    let bytes = s.as_bytes();
    let local = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
    let domain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-');
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while let Some(at) = bytes[i..].iter().position(|b| *b == b'@').map(|p| p + i) {
        let mut start = at;
        while start > copied && local(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < bytes.len() && domain(bytes[end]) {
            end += 1;
        }
        // A domain does not end with a dot ("mail me at a@b.com.").
        while end > at + 1 && bytes[end - 1] == b'.' {
            end -= 1;
        }
        let dom = &s[at + 1..end];
        let tld_ok = dom.rsplit_once('.').is_some_and(|(host, tld)| {
            !host.is_empty() && tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())
        });
        if start < at && tld_ok && !dom.starts_with('.') && !dom.contains("..") {
            let hash = hasher.hash(&s[start..end]);
            if first.is_none() {
                *first = Some(hash.clone());
            }
            out.push_str(&s[copied..start]);
            out.push_str(EMAIL_MARKER);
            out.push_str(&hash);
            copied = end;
        }
        i = end.max(at + 1);
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&s[copied..]);
    Some(out)
}

/// The keyed hash of `s` when `s` is one email and nothing else (surrounding
/// whitespace aside).
pub(super) fn whole_email_hash(s: &str, hasher: &EmailHasher) -> Option<String> {
    let s = s.trim();
    let mut first = None;
    let replaced = replace_emails(s, hasher, &mut first)?;
    (replaced.len() == EMAIL_MARKER.len() + 64).then_some(first?)
}

/// Fewest and most digits a card number has.
const CARD_MIN: usize = 13;
const CARD_MAX: usize = 19;
/// Most separator characters (spaces, dashes) between two digit groups.
const MAX_SEPARATOR: usize = 3;

/// Masks every card-like number inside `s` as `****` and its last four
/// digits. A card-like number is a run of 13–19 digits, written whole or in
/// groups joined by spaces or dashes (`4111 1111 1111 1111`), with neither
/// a letter nor a digit right before or after it (so a hex id's digits are
/// not one), a card network's prefix and a valid Luhn sum. Within a longer
/// run of groups, the longest card-like span wins.
pub(super) fn mask_cards(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.iter().filter(|c| c.is_ascii_digit()).count() < CARD_MIN {
        return None;
    }
    let mut out = String::new();
    let mut copied = 0;
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // One run: digit groups joined by short separators.
        let glued_left = i > 0 && b[i - 1].is_ascii_alphabetic();
        groups.clear();
        let mut j = i;
        loop {
            let start = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            groups.push((start, j));
            let mut k = j;
            while k < b.len() && k - j < MAX_SEPARATOR && matches!(b[k], b' ' | b'-') {
                k += 1;
            }
            if k > j && k < b.len() && b[k].is_ascii_digit() {
                j = k;
            } else {
                break;
            }
        }
        let glued_right = j < b.len() && b[j].is_ascii_alphabetic();
        let mut g = usize::from(glued_left);
        while g < groups.len() {
            let candidates = &groups[g..groups.len() - usize::from(glued_right)];
            match longest_card(b, candidates) {
                Some((n, last4)) => {
                    out.push_str(&s[copied..groups[g].0]);
                    out.push_str("****");
                    out.push_str(std::str::from_utf8(&last4).unwrap_or_default());
                    copied = groups[g + n - 1].1;
                    g += n;
                }
                None => g += 1,
            }
        }
        i = j;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&s[copied..]);
    Some(out)
}

/// How many of `groups` (from the first) make the longest card number, and
/// its last four digits.
fn longest_card(b: &[u8], groups: &[(usize, usize)]) -> Option<(usize, [u8; 4])> {
    let mut digits = [0u8; CARD_MAX];
    let mut len = 0;
    let mut best = None;
    for (n, &(start, end)) in groups.iter().enumerate() {
        if len + (end - start) > CARD_MAX {
            break;
        }
        for &d in &b[start..end] {
            digits[len] = d - b'0';
            len += 1;
        }
        if len >= CARD_MIN && is_card(&digits[..len]) {
            let mut last4 = [0u8; 4];
            for (o, d) in last4.iter_mut().zip(&digits[len - 4..len]) {
                *o = b'0' + d;
            }
            best = Some((n + 1, last4));
        }
    }
    best
}

/// `****1111` for a JSON number that is a card number (a non-negative
/// integer; a negative or fractional number is not one).
pub(super) fn mask_card_number(n: &Number) -> Option<String> {
    let u = n.as_u64()?;
    if u < 10u64.pow(CARD_MIN as u32 - 1) {
        return None;
    }
    mask_cards(&u.to_string())
}

/// 13–19 digits (as numbers 0–9) with a card network's prefix and a valid
/// Luhn check digit.
fn is_card(d: &[u8]) -> bool {
    (CARD_MIN..=CARD_MAX).contains(&d.len()) && card_prefix(d) && luhn(d)
}

fn card_prefix(d: &[u8]) -> bool {
    let n = |k: usize| d[..k].iter().fold(0u32, |acc, x| acc * 10 + u32::from(*x));
    matches!(d[0], 4) // Visa
        || (51..=55).contains(&n(2)) || (2221..=2720).contains(&n(4)) // Mastercard
        || matches!(n(2), 34 | 37) // Amex
        || n(4) == 6011 || n(2) == 65 || (644..=649).contains(&n(3)) // Discover
        || (3528..=3589).contains(&n(4)) // JCB
        || matches!(n(2), 36 | 38 | 62) || (300..=305).contains(&n(3)) // Diners, UnionPay
}

fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                if x * 2 > 9 { x * 2 - 9 } else { x * 2 }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Authorization schemes whose credential follows after a space.
const AUTH_SCHEMES: [&str; 6] = ["bearer", "basic", "digest", "token", "negotiate", "apikey"];

/// Replaces the values written after secret keys inside text, with whatever
/// `replacement` makes of each: `password=hunter2`, `api_key: x`,
/// `"token": "x"`, `?access_token=x&…`, `Authorization: Bearer x` (scheme
/// and credential), and a bare `Bearer x`. A key is the run of letters,
/// digits, `_ - .` before `=`, or before `:` followed by a space or a quote
/// (spaces and a closing quote between key and separator are allowed); a
/// value runs to the next space or `& ; , " ' < > ) ] }`, or to its closing
/// quote when quoted.
pub(super) fn mask_inline_secrets(
    s: &str,
    is_secret_key: impl Fn(&str) -> bool,
    mut replacement: impl FnMut(&str) -> String,
) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let value_from = match b[i] {
            // `key=value`, or `key: value` and `"key":"value"`; a colon
            // straight before text (`auth:google|12`) is an identifier's.
            b'=' | b':'
                if b[i] == b'='
                    || b.get(i + 1)
                        .is_none_or(|c| matches!(c, b' ' | b'\t' | b'"' | b'\''))
                    || (i > 0 && matches!(b[i - 1], b'"' | b'\'')) =>
            {
                let mut k = i;
                while k > copied && b[k - 1] == b' ' {
                    k -= 1;
                }
                if k > copied && matches!(b[k - 1], b'"' | b'\'') {
                    k -= 1;
                }
                let key_end = k;
                while k > copied && is_key_byte(b[k - 1]) {
                    k -= 1;
                }
                (k < key_end && is_secret_key(&s[k..key_end])).then_some(i + 1)
            }
            // A bare `Bearer <token>`, as a word of its own.
            b'b' | b'B'
                if (i == 0 || !is_key_byte(b[i - 1]))
                    && b.len() > i + 6
                    && b[i..i + 6].eq_ignore_ascii_case(b"bearer")
                    && b[i + 6] == b' ' =>
            {
                Some(i + 6)
            }
            _ => None,
        };
        let Some(from) = value_from else {
            i += 1;
            continue;
        };
        let Some((start, end)) = value_span(b, from) else {
            i = from;
            continue;
        };
        if s[start..].starts_with(super::MASK) {
            i = start + super::MASK.len();
            continue;
        }
        out.push_str(&s[copied..start]);
        out.push_str(&replacement(&s[start..end]));
        copied = end;
        i = end;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&s[copied..]);
    Some(out)
}

fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

fn is_value_end(c: u8) -> bool {
    c.is_ascii_whitespace()
        || matches!(
            c,
            b'&' | b';' | b',' | b'"' | b'\'' | b'<' | b'>' | b')' | b']' | b'}'
        )
}

/// The length of the authorization scheme word at `i` followed by a space.
fn scheme_at(b: &[u8], i: usize) -> Option<usize> {
    AUTH_SCHEMES.iter().find_map(|scheme| {
        let end = i + scheme.len();
        (end < b.len() && b[i..end].eq_ignore_ascii_case(scheme.as_bytes()) && b[end] == b' ')
            .then_some(scheme.len())
    })
}

/// Where the value starting at `from` (after a separator) lies; `None` when
/// it is empty.
fn value_span(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut start = from;
    while start < b.len() && b[start] == b' ' {
        start += 1;
    }
    let quote = *b.get(start)?;
    let (start, end) = if matches!(quote, b'"' | b'\'') {
        let inner = start + 1;
        let close = b[inner..].iter().position(|c| *c == quote);
        (inner, close.map_or(b.len(), |p| inner + p))
    } else {
        let mut end = start;
        while end < b.len() && !is_value_end(b[end]) {
            end += 1;
        }
        // `Authorization: Bearer x`: the scheme and its credential.
        if scheme_at(b, start) == Some(end - start) {
            let mut cred = end;
            while cred < b.len() && b[cred] == b' ' {
                cred += 1;
            }
            let mut cred_end = cred;
            while cred_end < b.len() && !is_value_end(b[cred_end]) {
                cred_end += 1;
            }
            if cred_end > cred {
                end = cred_end;
            }
        }
        (start, end)
    };
    (end > start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_all(s: &str) -> Option<String> {
        let secret = |k: &str| {
            let k = k.to_ascii_lowercase().replace(['_', '-', '.'], "");
            [
                "password",
                "token",
                "apikey",
                "authorization",
                "secret",
                "cvc",
                "auth",
            ]
            .iter()
            .any(|s| k.ends_with(s))
        };
        mask_inline_secrets(s, secret, |_| "[REDACTED]".to_string())
    }

    #[test]
    fn emails_are_found_inside_text() {
        let h = EmailHasher::new(b"k");
        let mut first = None;
        let out =
            replace_emails("mail Bob.Smith+x@Example.co.uk, or a@b.io.", &h, &mut first).unwrap();
        assert!(!out.contains('@'), "{out}");
        assert!(out.starts_with("mail email_hash:"));
        assert!(out.ends_with('.'));
        assert_eq!(first.unwrap(), h.hash("bob.smith+x@example.co.uk"));
        assert_eq!(
            replace_emails("no @ here, user@localhost, @x.com", &h, &mut None),
            None
        );
    }

    #[test]
    fn a_whole_email_is_told_from_text_holding_one() {
        let h = EmailHasher::new(b"k");
        assert_eq!(
            whole_email_hash(" Ada@Example.com ", &h),
            Some(h.hash("ada@example.com"))
        );
        assert_eq!(
            whole_email_hash("ada@example.com, bob@example.com", &h),
            None
        );
        assert_eq!(whole_email_hash("mail ada@example.com", &h), None);
        assert_eq!(whole_email_hash("ada", &h), None);
    }

    #[test]
    fn cards_need_prefix_and_luhn() {
        assert_eq!(
            mask_cards("4111 1111 1111 1111").as_deref(),
            Some("****1111")
        );
        assert_eq!(
            mask_cards("5500-0000-0000-0004").as_deref(),
            Some("****0004")
        );
        assert_eq!(mask_cards("4111111111111112"), None); // bad Luhn
        assert_eq!(mask_cards("9111111111111111"), None); // no network
        assert_eq!(mask_cards("12345"), None);
    }

    #[test]
    fn cards_are_found_inside_text() {
        assert_eq!(
            mask_cards("card 4111 1111 1111 1111 declined").as_deref(),
            Some("card ****1111 declined")
        );
        assert_eq!(
            mask_cards("paid with 340000000000009, refunded to 5500-0000-0000-0004.").as_deref(),
            Some("paid with ****0009, refunded to ****0004.")
        );
        // Next to punctuation, grouped oddly, or after other digits.
        assert_eq!(
            mask_cards("card#4111111111111111!").as_deref(),
            Some("card#****1111!")
        );
        assert_eq!(
            mask_cards("4111 - 1111 - 1111 - 1111").as_deref(),
            Some("****1111")
        );
        assert_eq!(
            mask_cards("order 12 4111 1111 1111 1111").as_deref(),
            Some("order 12 ****1111")
        );
        // Not cards: too long a digit run, dates, a bad check digit in text.
        assert_eq!(mask_cards("id 41111111111111111111111"), None);
        assert_eq!(mask_cards("2025-12-30 10:00:00 and 2025-12-31"), None);
        assert_eq!(mask_cards("card 4111 1111 1111 1112 declined"), None);
        // Digits glued to letters are part of an identifier (a hex trace id).
        assert_eq!(mask_cards("0000000000000000a522275180553569"), None);
        assert_eq!(mask_cards("card4111111111111111"), None);
        assert_eq!(mask_cards("4111111111111111ab"), None);
        assert_eq!(
            mask_cards("x4111 4111 1111 1111 1111").as_deref(),
            Some("x4111 ****1111")
        );
    }

    #[test]
    fn card_numbers_as_json_numbers() {
        let n = |v: serde_json::Value| match v {
            serde_json::Value::Number(n) => mask_card_number(&n),
            _ => unreachable!(),
        };
        assert_eq!(
            n(serde_json::json!(4111111111111111u64)).as_deref(),
            Some("****1111")
        );
        assert_eq!(n(serde_json::json!(-4111111111111111i64)), None);
        assert_eq!(n(serde_json::json!(4111111111111111.0)), None);
        assert_eq!(n(serde_json::json!(4111111111111112u64)), None);
        assert_eq!(n(serde_json::json!(1999)), None);
        assert_eq!(n(serde_json::json!(1.5e15)), None);
    }

    #[test]
    fn inline_secrets_lose_their_values() {
        for (text, want) in [
            ("password=hunter2", "password=[REDACTED]"),
            (
                "GET /cb?code=1&access_token=abc.def&x=2",
                "GET /cb?code=1&access_token=[REDACTED]&x=2",
            ),
            (
                r#"{"user": "ada", "Password" : "two words"}"#,
                r#"{"user": "ada", "Password" : "[REDACTED]"}"#,
            ),
            ("X-Api-Key: k-123 sent", "X-Api-Key: [REDACTED] sent"),
            (
                "Authorization: Bearer eyJhbGci.x.y; retry",
                "Authorization: [REDACTED]; retry",
            ),
            ("sent bearer eyJhbGci.x.y", "sent bearer [REDACTED]"),
            ("db_token:'q w'", "db_token:'[REDACTED]'"),
            ("cvc: 123", "cvc: [REDACTED]"),
        ] {
            assert_eq!(mask_all(text).as_deref(), Some(want), "{text}");
        }
        for text in [
            "https://example.com/a:b",
            "10:30 tokens: none here",
            "password= ",
            "password=[REDACTED]",
            "key=value",
            "cvc:a12 and auth:google-oauth2|42",
            "bearers are fine",
        ] {
            assert_eq!(mask_all(text), None, "{text}");
        }
    }
}
