//! Redaction before anything is stored (Property 15: Sensitive Data
//! Handling). Every string of actor, object, correlation, outcome, evidence,
//! context, data and metadata (named fields, extra keys, nested values, array
//! items and object keys) is scrubbed: card numbers (by value, Luhn-checked,
//! whole or inside text) keep their last four digits, secrets written inline
//! (`token=…`) are masked, and emails become a keyed per-tenant hash: the
//! actor's own email goes to `actor.email_hash`, any other is replaced in its
//! text by `email_hash:<hash>`, so the same address correlates within a
//! tenant but not across tenants. Values under secret keys (`password`,
//! `api_key`, …) are masked, hashed or dropped whole. A tenant's own path
//! rules (drop / mask / hash) run last. The policy is a plain serde value so
//! a tenant can configure it.
//!
//! The `idempotency_key` only has its emails hashed, in place, with the same
//! keyed hasher: that is deterministic, so a retry carrying the same key
//! still finds the first event; masking a card or a secret there would make
//! different keys equal and drop events as duplicates. Left alone on
//! purpose: `event_type` and `stream_id`, names a client addresses exactly
//! (a stream is read back by its id, a type is matched by definitions and
//! subscriptions), which decoding already constrains (no control
//! characters; `{entity_type}:{entity_id}`); a client that puts personal
//! data in them has to change that, since rewriting them would break what
//! they name.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::event::CanonicalEvent;
use crate::model::TenantId;

mod rules;
mod text;

pub use text::EMAIL_MARKER;
use text::{mask_card_number, mask_cards, mask_inline_secrets, replace_emails, whole_email_hash};

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
        let normalised = value.trim().as_bytes();
        if normalised.iter().any(u8::is_ascii_uppercase) {
            // Lower-cased through a buffer on the stack, not a new string.
            let mut buf = [0u8; 64];
            for chunk in normalised.chunks(buf.len()) {
                let lower = &mut buf[..chunk.len()];
                lower.copy_from_slice(chunk);
                lower.make_ascii_lowercase();
                mac.update(lower);
            }
        } else {
            mac.update(normalised);
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

/// A tenant rule: a JSON pointer into the event's actor, object, context,
/// data or metadata (`/data/customer/phone`, `/actor/user_id`), where `*`
/// matches any one key (named fields included) or array index.
/// `/context/environment` is not addressable: every event has one.
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
    /// `_ - .` and spaces, matching as a suffix (`password` matches
    /// `db_password`, `apikey` matches `X-Api-Key`). Also the keys of
    /// secrets written inline in text (`token=…`).
    pub secret_keys: Vec<String>,
    pub secret_action: RedactAction,
    /// Emails anywhere become hashes.
    pub hash_emails: bool,
    /// Card-like numbers (13–19 digits, a card network prefix, valid Luhn),
    /// whole values or inside text, keep only their last four digits.
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

impl RedactionPolicy {
    /// Redacts `event` in place.
    pub fn apply(&self, event: &mut CanonicalEvent, hasher: &EmailHasher) {
        let mut walk = Walk {
            policy: self,
            secret_keys: SecretKeys::new(&self.secret_keys),
            hasher,
            naming_actor: true,
            first_email: None,
        };

        // The actor's email: sent as `actor.email`, else the first one found
        // in the actor (named fields, then extra keys), else in `data`.
        let actor = &mut event.actor;
        let mut actor_email = None;
        // With email hashing off, `actor.email` stays where it was sent.
        if self.hash_emails
            && matches!(actor.extra.get("email"), Some(Value::String(_)))
            && let Some(Value::String(email)) = actor.extra.shift_remove("email")
        {
            actor_email = Some(hasher.hash(&email));
        }
        if let Some(given) = actor.email_hash.as_mut()
            && self.hash_emails
        {
            // An email sent where its hash belongs is hashed, not stored.
            match whole_email_hash(given, hasher) {
                Some(hash) => *given = hash,
                None => walk.text(given),
            }
        }
        walk.opt(&mut actor.user_id);
        walk.opt(&mut actor.service_name);
        walk.opt(&mut actor.role);
        walk.opt(&mut actor.anonymous_id);
        walk.map(&mut actor.extra);
        walk.value(&mut event.data);

        // Emails found from here on are hashed in place but do not name the
        // actor: they may be anyone's.
        walk.naming_actor = false;
        let actor_email = actor_email.or(walk.first_email.take());

        let object = &mut event.object;
        for field in [
            &mut object.order_id,
            &mut object.request_id,
            &mut object.session_id,
            &mut object.ticket_id,
            &mut object.resource_id,
        ] {
            walk.opt(field);
        }
        walk.map(&mut object.extra);
        let correlation = &mut event.correlation;
        for field in [
            &mut correlation.trace_id,
            &mut correlation.span_id,
            &mut correlation.correlation_id,
            &mut correlation.parent_event_id,
        ] {
            walk.opt(field);
        }
        let outcome = &mut event.outcome;
        for field in [
            &mut outcome.error_class,
            &mut outcome.error_code,
            &mut outcome.message,
        ] {
            walk.opt(field);
        }
        let evidence = &mut event.evidence;
        if let Some(github) = evidence.github.as_mut() {
            for field in [
                &mut github.commit_sha,
                &mut github.pr,
                &mut github.repository,
            ] {
                walk.opt(field);
            }
        }
        walk.opt(&mut evidence.raw_pointer);
        walk.opt(&mut evidence.trace_url);
        evidence
            .log_references
            .iter_mut()
            .for_each(|r| walk.text(r));
        let context = &mut event.context;
        walk.text(&mut context.environment);
        for field in [
            &mut context.service,
            &mut context.endpoint,
            &mut context.version,
            &mut context.ip,
            &mut context.user_agent,
            &mut context.referer,
        ] {
            walk.opt(field);
        }
        walk.map(&mut context.extra);
        walk.map(&mut event.metadata);

        if event.actor.email_hash.is_none() {
            event.actor.email_hash = actor_email;
        }
        if self.hash_emails
            && let Some(key) = event.idempotency_key.as_mut()
            && Suspects::of(key).email
            && let Some(hashed) = replace_emails(key, hasher, &mut None)
        {
            *key = hashed;
        }

        for rule in &self.rules {
            rules::apply(event, rule, hasher);
        }
    }

    /// `text` as it is stored when sent in a named field of an event (an
    /// id, a name): cards masked, inline secrets masked, emails replaced by
    /// `email_hash:<hash>`. A query for an identifier that may have been an
    /// email (`user_id=ada@example.com`) must look for this form.
    pub fn stored_text(&self, text: &str, hasher: &EmailHasher) -> String {
        let mut walk = Walk {
            policy: self,
            secret_keys: SecretKeys::new(&self.secret_keys),
            hasher,
            naming_actor: false,
            first_email: None,
        };
        walk.scrubbed(text, false)
            .unwrap_or_else(|| text.to_string())
    }

    #[cfg(test)]
    fn is_secret_key(&self, key: &str) -> bool {
        SecretKeys::new(&self.secret_keys).matches(key)
    }

    /// What a secret written inline becomes.
    fn secret_replacement(&self, value: &str, hasher: &EmailHasher) -> String {
        match self.secret_action {
            RedactAction::Drop | RedactAction::Mask => MASK.to_string(),
            RedactAction::Hash => format!("hash:{}", hasher.hash(value)),
        }
    }
}

/// The policy's secret keys, with a filter on the last two characters
/// (normalised): most keys (`amount`, `sku`) share no ending with any
/// secret key and are told apart without comparing them all.
struct SecretKeys<'p> {
    keys: &'p [String],
    /// A bit per secret key's ending; all set when a secret key is too short
    /// to have one.
    endings: [u64; 4],
}

impl<'p> SecretKeys<'p> {
    fn new(keys: &'p [String]) -> Self {
        let mut endings = [0u64; 4];
        for key in keys {
            match ending(key) {
                Some(bit) => endings[bit / 64] |= 1 << (bit % 64),
                None => endings = [u64::MAX; 4],
            }
        }
        SecretKeys { keys, endings }
    }

    fn matches(&self, key: &str) -> bool {
        let possible = match ending(key) {
            Some(bit) => self.endings[bit / 64] & (1 << (bit % 64)) != 0,
            // Only a secret key as short as this one could match it.
            None => self.endings == [u64::MAX; 4],
        };
        possible && self.keys.iter().any(|s| ends_with_normalised(key, s))
    }
}

/// A bit (0–255) for the last two characters of `key`, lower-cased and
/// without `_ - . space`; `None` when it has fewer.
fn ending(key: &str) -> Option<usize> {
    let mut kept = key
        .bytes()
        .rev()
        .filter(|b| !matches!(b, b'_' | b'-' | b'.' | b' '))
        .map(|b| usize::from(b.to_ascii_lowercase()));
    let (last, before) = (kept.next()?, kept.next()?);
    Some((before * 31 + last) & 255)
}

/// `key` ends with `suffix` when both are lower-cased and `_ - . space` are
/// ignored (so a tenant may list `API_KEY` or `apikey`). No allocation.
fn ends_with_normalised(key: &str, suffix: &str) -> bool {
    let kept = |b: &u8| !matches!(b, b'_' | b'-' | b'.' | b' ');
    let mut k = key.bytes().rev().filter(kept);
    for want in suffix.bytes().rev().filter(kept) {
        match k.next() {
            Some(got) if got.eq_ignore_ascii_case(&want) => {}
            _ => return false,
        }
    }
    true
}

/// One pass of scrubbing over the parts of an event.
struct Walk<'p> {
    policy: &'p RedactionPolicy,
    secret_keys: SecretKeys<'p>,
    hasher: &'p EmailHasher,
    /// Whether an email found now may name the actor (in actor and data).
    naming_actor: bool,
    /// The hash of the first email that may name the actor.
    first_email: Option<String>,
}

impl Walk<'_> {
    fn opt(&mut self, field: &mut Option<String>) {
        if let Some(s) = field {
            self.text(s);
        }
    }

    fn text(&mut self, s: &mut String) {
        if let Some(scrubbed) = self.scrubbed(s, self.naming_actor) {
            *s = scrubbed;
        }
    }

    /// `s` with cards masked, inline secrets masked and emails hashed, in
    /// that order; `None` when nothing changed.
    fn scrubbed(&mut self, s: &str, naming_actor: bool) -> Option<String> {
        let policy = self.policy;
        let hasher = self.hasher;
        let suspects = Suspects::of(s);
        let mut changed: Option<String> = None;
        if policy.mask_card_numbers
            && suspects.card_digits >= 13
            && let Some(masked) = mask_cards(s)
        {
            changed = Some(masked);
        }
        let secret_keys = &self.secret_keys;
        if suspects.inline_secret
            && !policy.secret_keys.is_empty()
            && let Some(masked) = mask_inline_secrets(
                changed.as_deref().unwrap_or(s),
                |key| secret_keys.matches(key),
                |value| policy.secret_replacement(value, hasher),
            )
        {
            changed = Some(masked);
        }
        if policy.hash_emails && suspects.email {
            let current = changed.as_deref().unwrap_or(s);
            let mut unnamed = None;
            let first = if naming_actor {
                &mut self.first_email
            } else {
                &mut unnamed
            };
            if let Some(replaced) = replace_emails(current, hasher, first) {
                changed = Some(replaced);
            }
        }
        changed
    }

    fn map(&mut self, map: &mut Map<String, Value>) {
        let policy = self.policy;
        let mut dropped = Vec::new();
        let mut rekey = false;
        for (i, (key, value)) in map.iter_mut().enumerate() {
            // A null is no secret: there is nothing to hide.
            if self.secret_keys.matches(key) && !matches!(value, Value::Null) {
                match policy.secret_action {
                    RedactAction::Drop => dropped.push(i),
                    RedactAction::Mask => *value = Value::String(MASK.into()),
                    RedactAction::Hash => redact_value(value, RedactAction::Hash, self.hasher),
                }
            } else {
                self.value(value);
            }
            rekey |= may_hide_something(key);
        }
        if !dropped.is_empty() {
            let mut i = 0;
            map.retain(|_, _| {
                i += 1;
                !dropped.contains(&(i - 1))
            });
        }
        if rekey {
            self.rekey(map);
        }
    }

    /// Scrubs the keys of `map` too, keeping their order. Keys never name
    /// the actor. Two keys that scrub to the same text keep the later value.
    fn rekey(&mut self, map: &mut Map<String, Value>) {
        if !map.keys().any(|k| self.scrubbed(k, false).is_some()) {
            return;
        }
        for (key, value) in std::mem::take(map) {
            let key = self.scrubbed(&key, false).unwrap_or(key);
            map.insert(key, value);
        }
    }

    fn value(&mut self, value: &mut Value) {
        match value {
            Value::Object(m) => self.map(m),
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::String(s) => self.text(s),
            Value::Number(n) if self.policy.mask_card_numbers => {
                if let Some(masked) = mask_card_number(n) {
                    *value = Value::String(masked);
                }
            }
            _ => {}
        }
    }
}

/// What a string could hide, from one pass over its bytes: most strings
/// (`checkout`, `ord_99812`, a hex trace id) need none of the finders.
struct Suspects {
    /// The most digits in one run of digits, spaces and dashes: a card
    /// number's digits are never further apart.
    card_digits: usize,
    /// A `=` or a `:`, or a `b` and a space (of a bare `bearer x`).
    inline_secret: bool,
    email: bool,
}

impl Suspects {
    fn of(s: &str) -> Self {
        const SEPARATOR: u8 = 1;
        const AT: u8 = 2;
        const DIGIT: u8 = 4;
        const B: u8 = 8;
        const SPACE: u8 = 16;
        const DASH: u8 = 32;
        const CLASS: [u8; 256] = {
            let mut class = [0u8; 256];
            class[b'=' as usize] = SEPARATOR;
            class[b':' as usize] = SEPARATOR;
            class[b'b' as usize] = B;
            class[b'B' as usize] = B;
            class[b' ' as usize] = SPACE;
            class[b'-' as usize] = DASH;
            class[b'@' as usize] = AT;
            let mut d = b'0';
            while d <= b'9' {
                class[d as usize] = DIGIT;
                d += 1;
            }
            class
        };
        let (mut digits, mut seen) = (0, 0);
        for &b in s.as_bytes() {
            let c = CLASS[usize::from(b)];
            digits += usize::from(c & DIGIT != 0);
            seen |= c;
        }
        // Only text with enough digits at all is looked at again, for a run.
        let mut card_digits = 0;
        if digits >= 13 {
            let mut run = 0;
            for &b in s.as_bytes() {
                let c = CLASS[usize::from(b)];
                if c & DIGIT != 0 {
                    run += 1;
                    card_digits = card_digits.max(run);
                } else if c & (SPACE | DASH) == 0 {
                    run = 0;
                }
            }
        }
        Suspects {
            card_digits,
            inline_secret: seen & SEPARATOR != 0 || (seen & B != 0 && seen & SPACE != 0),
            email: seen & AT != 0,
        }
    }
}

/// Whether a key could hold an email, a card number or an inline secret;
/// most keys (`sku`, `order_id`) cannot, and are not scrubbed at all.
fn may_hide_something(key: &str) -> bool {
    key.len() >= 5
        && (key.bytes().any(|b| matches!(b, b'@' | b'=' | b':' | b' '))
            || key.bytes().filter(u8::is_ascii_digit).count() >= 13)
}

/// What a value under a secret key or a rule becomes.
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

#[cfg(test)]
mod tests;
