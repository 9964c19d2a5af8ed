//! Redaction before anything is stored (seed 000 property 15, seed 003 "PII
//! filtering"). Emails become a keyed per-tenant hash (`actor.email_hash`),
//! so the same address correlates within a tenant but not across tenants;
//! secrets (by key name) and card numbers (by value, Luhn-checked) are
//! masked or dropped wherever they occur in the free-form parts; and a
//! tenant's own path rules (drop / mask / hash) run last. The policy is a
//! plain serde value so a tenant can configure it.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::event::CanonicalEvent;
use crate::model::TenantId;

/// What replaces a masked value.
pub const MASK: &str = "[REDACTED]";

/// Keyed HMAC-SHA256 of normalised (trimmed, lower-cased) emails.
#[derive(Clone)]
pub struct EmailHasher {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for EmailHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmailHasher(..)")
    }
}

impl EmailHasher {
    /// A hasher keyed directly by `key`.
    pub fn new(key: &[u8]) -> Self {
        let mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
        EmailHasher { mac }
    }

    /// The tenant's hasher, derived from the server secret: tenants never
    /// share hashes, and the secret never leaves the server.
    pub fn for_tenant(server_secret: &[u8], tenant: &TenantId) -> Self {
        let mut derive = Self::new(server_secret).mac;
        derive.update(b"herald/email-hash/v1/");
        derive.update(tenant.as_str().as_bytes());
        Self::new(&derive.finalize().into_bytes())
    }

    /// 64 lowercase hex characters.
    pub fn hash(&self, value: &str) -> String {
        let mut mac = self.mac.clone();
        let normalised = value.trim();
        if normalised.bytes().any(|b| b.is_ascii_uppercase()) {
            mac.update(normalised.to_ascii_lowercase().as_bytes());
        } else {
            mac.update(normalised.as_bytes());
        }
        hex(&mac.finalize().into_bytes())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// What to do with a value a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactAction {
    /// Remove the key.
    Drop,
    /// Replace the value with `[REDACTED]`.
    Mask,
    /// Replace the value with `hash:<keyed hash>` (still correlatable).
    Hash,
}

/// A tenant rule: a JSON pointer into the event (`/data/customer/phone`),
/// where `*` matches any one key or array index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRule {
    pub path: String,
    pub action: RedactAction,
}

/// A tenant's redaction policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedactionPolicy {
    /// Key names treated as secrets, compared case-insensitively ignoring
    /// `_ - .` and matching as a suffix (`db_password`, `X-Api-Key`).
    pub secret_keys: Vec<String>,
    pub secret_action: RedactAction,
    /// Emails anywhere become hashes.
    pub hash_emails: bool,
    /// Card-like numbers (13–19 digits, a card network prefix, valid Luhn)
    /// keep only their last four digits.
    pub mask_card_numbers: bool,
    pub rules: Vec<PathRule>,
}

impl Default for RedactionPolicy {
    fn default() -> Self {
        RedactionPolicy {
            secret_keys: [
                "password",
                "passwd",
                "passphrase",
                "pwd",
                "secret",
                "token",
                "apikey",
                "accesskey",
                "privatekey",
                "authorization",
                "auth",
                "cookie",
                "ssn",
                "cvv",
                "cvc",
                "cardnumber",
                "creditcard",
            ]
            .map(String::from)
            .to_vec(),
            secret_action: RedactAction::Mask,
            hash_emails: true,
            mask_card_numbers: true,
            rules: Vec::new(),
        }
    }
}

/// The parts of the event redaction walks, and the pointer prefix of each.
const FREE_PARTS: [&str; 5] = ["actor", "object", "context", "data", "metadata"];

impl RedactionPolicy {
    /// Redacts `event` in place.
    pub fn apply(&self, event: &mut CanonicalEvent, hasher: &EmailHasher) {
        let mut walk = Walk {
            policy: self,
            hasher,
            first_email: None,
        };

        if let Some(email) = event.actor.extra.remove("email") {
            if let Value::String(email) = &email {
                if self.hash_emails {
                    walk.first_email = Some(hasher.hash(email));
                }
            } else {
                event.actor.extra.insert("email".into(), email);
            }
        }
        walk.map(&mut event.actor.extra);
        walk.value(&mut event.data);
        // Emails found after actor and data are hashed in place but do not
        // name the actor: they may be anyone's.
        let actor_email = walk.first_email.take();
        walk.map(&mut event.object.extra);
        walk.map(&mut event.context.extra);
        walk.map(&mut event.metadata);
        if event.actor.email_hash.is_none() {
            event.actor.email_hash = actor_email;
        }
        if let Some(message) = event.outcome.message.as_mut()
            && self.hash_emails
            && message.contains('@')
            && let Some(replaced) = replace_emails(message, hasher, &mut None)
        {
            *message = replaced;
        }

        for rule in &self.rules {
            let mut segments = rule.path.trim_start_matches('/').split('/');
            let Some(part) = segments.next() else {
                continue;
            };
            let rest: Vec<String> = segments.map(unescape).collect();
            if !FREE_PARTS.contains(&part) {
                continue;
            }
            if let [name] = rest.as_slice()
                && let Some(field) = named_field(event, part, name)
            {
                if field.is_some() {
                    *field = match rule.action {
                        RedactAction::Drop => None,
                        RedactAction::Mask => Some(MASK.to_string()),
                        RedactAction::Hash => {
                            field.as_deref().map(|v| format!("hash:{}", hasher.hash(v)))
                        }
                    };
                }
                continue;
            }
            match part {
                "data" => rule_value(&mut event.data, &rest, rule.action, hasher),
                "metadata" => rule_map(&mut event.metadata, &rest, rule.action, hasher),
                "actor" => rule_map(&mut event.actor.extra, &rest, rule.action, hasher),
                "object" => rule_map(&mut event.object.extra, &rest, rule.action, hasher),
                _ => rule_map(&mut event.context.extra, &rest, rule.action, hasher),
            }
        }
    }

    fn is_secret_key(&self, key: &str) -> bool {
        self.secret_keys
            .iter()
            .any(|s| ends_with_normalised(key, s))
    }
}

/// The named string fields a rule may address directly.
fn named_field<'e>(
    event: &'e mut CanonicalEvent,
    part: &str,
    name: &str,
) -> Option<&'e mut Option<String>> {
    Some(match (part, name) {
        ("actor", "user_id") => &mut event.actor.user_id,
        ("actor", "anonymous_id") => &mut event.actor.anonymous_id,
        ("actor", "role") => &mut event.actor.role,
        ("context", "ip") => &mut event.context.ip,
        ("context", "user_agent") => &mut event.context.user_agent,
        ("context", "referer") => &mut event.context.referer,
        ("context", "endpoint") => &mut event.context.endpoint,
        _ => return None,
    })
}

/// `key` ends with `suffix` when both are lower-cased and `_ - . space` are
/// ignored; `suffix` is given already normalised. No allocation.
fn ends_with_normalised(key: &str, suffix: &str) -> bool {
    let mut k = key
        .bytes()
        .rev()
        .filter(|b| !matches!(b, b'_' | b'-' | b'.' | b' '));
    for want in suffix.bytes().rev() {
        match k.next() {
            Some(got) if got.to_ascii_lowercase() == want => {}
            _ => return false,
        }
    }
    true
}

struct Walk<'p> {
    policy: &'p RedactionPolicy,
    hasher: &'p EmailHasher,
    /// The hash of the first email seen, for `actor.email_hash`.
    first_email: Option<String>,
}

impl Walk<'_> {
    fn map(&mut self, map: &mut Map<String, Value>) {
        let policy = self.policy;
        let mut dropped = false;
        for (key, value) in map.iter_mut() {
            if policy.is_secret_key(key) && !matches!(value, Value::Null) {
                match policy.secret_action {
                    RedactAction::Drop => {
                        *value = Value::Null;
                        dropped = true;
                    }
                    RedactAction::Mask => *value = Value::String(MASK.into()),
                    RedactAction::Hash => redact_value(value, RedactAction::Hash, self.hasher),
                }
            } else {
                self.value(value);
            }
        }
        if dropped {
            map.retain(|k, v| !(policy.is_secret_key(k) && v.is_null()));
        }
    }

    fn value(&mut self, value: &mut Value) {
        match value {
            Value::Object(m) => self.map(m),
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::String(s) => {
                if self.policy.mask_card_numbers
                    && let Some(masked) = mask_card(s)
                {
                    *s = masked;
                    return;
                }
                if self.policy.hash_emails
                    && s.contains('@')
                    && let Some(replaced) = replace_emails(s, self.hasher, &mut self.first_email)
                {
                    *s = replaced;
                }
            }
            Value::Number(n) if self.policy.mask_card_numbers => {
                if let Some(masked) = n.as_u64().and_then(|u| mask_card(&u.to_string())) {
                    *value = Value::String(masked);
                }
            }
            _ => {}
        }
    }
}

/// Replaces every email in `s` with `email_hash:<hash>`; `None` when there
/// is none. Records the first hash in `first` when that is still empty.
fn replace_emails(s: &str, hasher: &EmailHasher, first: &mut Option<String>) -> Option<String> {
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
            out.push_str("email_hash:");
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

/// `****1111` for a card-like number, `None` for anything else.
fn mask_card(s: &str) -> Option<String> {
    if s.len() < 13
        || s.len() > 32
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b' ' || b == b'-')
    {
        return None;
    }
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    if !(13..=19).contains(&digits.len()) || !card_prefix(&digits) || !luhn(&digits) {
        return None;
    }
    let last4: String = digits[digits.len() - 4..]
        .iter()
        .map(|d| (b'0' + d) as char)
        .collect();
    Some(format!("****{last4}"))
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

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn redact_value(value: &mut Value, action: RedactAction, hasher: &EmailHasher) {
    let replacement = match action {
        RedactAction::Drop | RedactAction::Mask => Value::String(MASK.into()),
        RedactAction::Hash => {
            let hash = match &*value {
                Value::String(s) => hasher.hash(s),
                other => hasher.hash(&other.to_string()),
            };
            Value::String(format!("hash:{hash}"))
        }
    };
    *value = replacement;
}

fn rule_map(
    map: &mut Map<String, Value>,
    path: &[String],
    action: RedactAction,
    hasher: &EmailHasher,
) {
    let Some((head, rest)) = path.split_first() else {
        return;
    };
    let keys: Vec<String> = if head == "*" {
        map.keys().cloned().collect()
    } else {
        vec![head.clone()]
    };
    for key in keys {
        if rest.is_empty() {
            if action == RedactAction::Drop {
                map.remove(&key);
            } else if let Some(v) = map.get_mut(&key) {
                redact_value(v, action, hasher);
            }
        } else if let Some(v) = map.get_mut(&key) {
            rule_value(v, rest, action, hasher);
        }
    }
}

fn rule_value(value: &mut Value, path: &[String], action: RedactAction, hasher: &EmailHasher) {
    match value {
        Value::Object(m) => rule_map(m, path, action, hasher),
        Value::Array(items) => {
            let Some((head, rest)) = path.split_first() else {
                return;
            };
            let indices: Vec<usize> = if head == "*" {
                (0..items.len()).collect()
            } else {
                head.parse()
                    .ok()
                    .filter(|i| *i < items.len())
                    .into_iter()
                    .collect()
            };
            for i in indices.into_iter().rev() {
                if rest.is_empty() {
                    if action == RedactAction::Drop {
                        items.remove(i);
                    } else {
                        redact_value(&mut items[i], action, hasher);
                    }
                } else {
                    rule_value(&mut items[i], rest, action, hasher);
                }
            }
        }
        _ if path.is_empty() => redact_value(value, action, hasher),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn cards_need_prefix_and_luhn() {
        assert_eq!(
            mask_card("4111 1111 1111 1111").as_deref(),
            Some("****1111")
        );
        assert_eq!(
            mask_card("5500-0000-0000-0004").as_deref(),
            Some("****0004")
        );
        assert_eq!(mask_card("4111111111111112"), None); // bad Luhn
        assert_eq!(mask_card("9111111111111111"), None); // no network
        assert_eq!(mask_card("12345"), None);
    }

    #[test]
    fn secret_key_matching_ignores_case_and_separators() {
        let p = RedactionPolicy::default();
        for k in [
            "password",
            "DB_PASSWORD",
            "X-Api-Key",
            "refresh.token",
            "Authorization",
            "client_secret",
        ] {
            assert!(p.is_secret_key(k), "{k}");
        }
        for k in ["author", "tokens", "email", "plan", "passwords_changed"] {
            assert!(!p.is_secret_key(k), "{k}");
        }
    }
}
