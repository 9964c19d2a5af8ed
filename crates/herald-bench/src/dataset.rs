//! A deterministic, realistic event dataset: stories rather than random
//! rows. Checkouts span business and system events under one trace and
//! order; browsing sessions produce page views and clicks; a few deploys and
//! security events; payload sizes from 200 B to 4 KiB with a median near
//! 600 B. The same seed always gives the same bodies.

use serde_json::{Value, json};

/// SplitMix64: small, fast, and good enough for workload generation.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    pub fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len);
        while s.len() < len {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(len);
        s
    }
}

const WORDS: &[&str] = &[
    "widget", "gadget", "premium", "basket", "invoice", "retry", "timeout", "card", "express",
    "gift", "blue", "red", "refund", "coupon", "winter", "summer", "bundle", "upgrade", "trial",
    "annual",
];

/// Generates `n` ingest bodies (the JSON Herald's create/batch routes
/// take), serialised as it goes so a million events cost their bytes, not
/// their parsed trees.
pub fn generate_bytes(seed: u64, n: usize) -> Vec<bytes::Bytes> {
    let mut g = Gen {
        rng: Rng::new(seed),
        out: Vec::with_capacity(64),
        clock_ms: 1_735_689_600_000,
        users: (n / 40).max(10) as u64,
    };
    let mut bytes = Vec::with_capacity(n);
    while bytes.len() < n {
        match g.rng.below(100) {
            0..=54 => g.checkout(),
            55..=89 => g.browsing(),
            90..=95 => g.security(),
            _ => g.deploy(),
        }
        bytes.extend(
            g.out
                .drain(..)
                .map(|v| bytes::Bytes::from(serde_json::to_vec(&v).unwrap_or_default())),
        );
    }
    bytes.truncate(n);
    bytes
}

struct Gen {
    rng: Rng,
    out: Vec<Value>,
    clock_ms: i64,
    users: u64,
}

impl Gen {
    fn tick(&mut self) -> String {
        self.clock_ms += 1 + self.rng.below(400) as i64;
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(self.clock_ms as i128 * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    /// A payload of roughly log-normal size: median ~600 B of whole event.
    fn data(&mut self, mut base: Value) -> Value {
        let target = (600.0 * (0.55 * self.rng.normal()).exp()).clamp(200.0, 4096.0) as usize;
        let have = base.to_string().len() + 330; // the envelope around `data`
        if target > have {
            let mut text = String::new();
            while text.len() < target - have {
                let word = *self.rng.pick(WORDS);
                text.push_str(word);
                text.push(' ');
            }
            base["details"] = json!(text.trim_end());
        }
        base
    }

    fn user(&mut self) -> String {
        format!("user_{}", self.rng.below(self.users))
    }

    fn checkout(&mut self) {
        let (user, order, trace) = (
            self.user(),
            format!("ord_{}", self.rng.hex(10)),
            self.rng.hex(32),
        );
        let session = format!("sess_{}", self.rng.hex(8));
        let steps = 3 + self.rng.below(18) as usize;
        let fails = self.rng.chance(0.08);
        for i in 0..steps {
            let ts = self.tick();
            let span = self.rng.hex(16);
            let (event_type, category, outcome) = if i == 0 {
                ("checkout_started", "business", json!({"status": "success"}))
            } else if i + 1 == steps {
                if fails {
                    (
                        "order_failed",
                        "business",
                        json!({"status": "failure", "error_class": "PaymentDeclined", "error_code": "card_declined"}),
                    )
                } else {
                    (
                        "payment_authorized",
                        "business",
                        json!({"status": "success"}),
                    )
                }
            } else if fails && i + 2 == steps {
                (
                    "db_error",
                    "system",
                    json!({"status": "failure", "error_class": "Timeout", "error_code": "E_DB_TIMEOUT", "message": "query exceeded 2s"}),
                )
            } else {
                ("request_received", "system", json!({"status": "success"}))
            };
            let amount = 100 + self.rng.below(50_000);
            let (items, word) = (1 + self.rng.below(5), *self.rng.pick(WORDS));
            let data = self
                .data(json!({"amount": amount, "currency": "EUR", "items": items, "word": word}));
            self.out.push(json!({
                "event_type": event_type, "category": category, "event_source": "backend", "timestamp": ts,
                "actor": {"user_id": user}, "object": {"order_id": order, "session_id": session, "request_id": format!("req_{}", self.rng.hex(12))},
                "correlation": {"trace_id": trace, "span_id": span},
                "outcome": outcome,
                "context": {"environment": "production", "service": if category == "system" { "api" } else { "checkout" }, "version": "1.4.2"},
                "data": data,
            }));
        }
    }

    fn browsing(&mut self) {
        let (user, session) = (self.user(), format!("sess_{}", self.rng.hex(8)));
        for _ in 0..(2 + self.rng.below(8)) {
            let ts = self.tick();
            let click = self.rng.chance(0.4);
            let path = format!("/p/{}", self.rng.pick(WORDS));
            let data = self.data(json!({"path": path, "referrer": "https://example.com/"}));
            self.out.push(json!({
                "event_type": if click { "button_clicked" } else { "page_viewed" },
                "event_category": if click { "click" } else { "page_view" }, "event_source": "frontend", "timestamp": ts,
                "user_id": user, "object": {"session_id": session},
                "context": {"environment": "production", "service": "web", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)"},
                "data": data,
            }));
        }
    }

    fn security(&mut self) {
        let ts = self.tick();
        let user = self.user();
        let event_type =
            *self
                .rng
                .pick(&["permission_denied", "role_changed", "unauthorized_access"]);
        let resource = format!("/admin/{}", self.rng.pick(WORDS));
        let data = self.data(json!({"resource": resource, "ip_class": "external"}));
        self.out.push(json!({
            "event_type": event_type, "category": "security", "timestamp": ts, "actor": {"user_id": user, "role": "member"},
            "outcome": {"status": if event_type == "role_changed" { "success" } else { "failure" }, "error_code": "403"},
            "context": {"environment": "production", "service": "auth"}, "data": data,
        }));
    }

    fn deploy(&mut self) {
        let sha = self.rng.hex(40);
        for event_type in ["pr_merged", "deploy_completed"] {
            let ts = self.tick();
            let duration = self.rng.below(600);
            let data = self.data(json!({"service": "api", "duration_s": duration}));
            self.out.push(json!({
                "event_type": event_type, "category": "delivery", "event_source": "external_api", "timestamp": ts,
                "actor": {"service_name": "ci"}, "evidence": {"github": {"commit_sha": sha, "pr": self.rng.below(5000).to_string(), "repository": "acme/api"}},
                "context": {"environment": "production", "service": "api"}, "data": data,
            }));
        }
    }
}

/// Event definitions for every type the dataset sends, each with a typical
/// payload schema (typed properties, some required, bounded strings), as
/// `POST /api/v1/event-definitions` bodies: what a tenant that uses the
/// registry would have registered.
pub fn definitions() -> Vec<Value> {
    let details = json!({"type": "string", "maxLength": 8192});
    let checkout = json!({
        "type": "object", "required": ["amount", "currency", "items"],
        "properties": {
            "amount": {"type": "integer", "minimum": 0}, "currency": {"enum": ["EUR", "USD", "GBP"]},
            "items": {"type": "integer", "minimum": 1, "maximum": 100}, "word": {"type": "string", "maxLength": 32},
            "details": details
        }
    });
    let browsing = json!({
        "type": "object", "required": ["path"],
        "properties": {"path": {"type": "string", "minLength": 1, "maxLength": 2048}, "referrer": {"type": "string"}, "details": details}
    });
    let security = json!({
        "type": "object", "required": ["resource"],
        "properties": {"resource": {"type": "string"}, "ip_class": {"enum": ["internal", "external"]}, "details": details}
    });
    let delivery = json!({
        "type": "object", "required": ["service"],
        "properties": {"service": {"type": "string"}, "duration_s": {"type": "integer", "minimum": 0}, "details": details}
    });
    let defs: [(&str, &str, &Value); 12] = [
        ("checkout_started", "business", &checkout),
        ("payment_authorized", "business", &checkout),
        ("order_failed", "business", &checkout),
        ("request_received", "system", &checkout),
        ("db_error", "system", &checkout),
        ("button_clicked", "business", &browsing),
        ("page_viewed", "business", &browsing),
        ("permission_denied", "security", &security),
        ("role_changed", "security", &security),
        ("unauthorized_access", "security", &security),
        ("pr_merged", "delivery", &delivery),
        ("deploy_completed", "delivery", &delivery),
    ];
    defs.iter()
        .map(|(t, c, schema)| json!({"event_type": t, "category": c, "payload_schema": schema}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_event_passes_the_dataset_definitions() {
        let defs = definitions()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                herald_registry::parse_input(d, None)
                    .expect("valid definition")
                    .into_definition(format!("def_{i}"), 1, herald_core::Timestamp::now())
            })
            .collect();
        let processor = crate::floors::processor_with(defs);
        let tenant = herald_core::TenantId::parse("bench").unwrap();
        let hasher = herald_core::EmailHasher::new(b"bench");
        let ctx = herald_core::ProcessingContext {
            tenant_id: &tenant,
            email_hasher: &hasher,
            processing_timestamp: herald_core::Timestamp::now(),
            ids: &herald_core::UuidV7Ids::default(),
            traceparent: None,
        };
        for b in generate_bytes(11, 5000) {
            let p = processor.process_json(&b, &ctx);
            assert!(
                p.as_ref().is_ok_and(|p| p.event.schema_version == Some(1)),
                "{p:?}"
            );
        }
    }

    #[test]
    fn deterministic_and_sized_like_real_traffic() {
        let bytes = generate_bytes(7, 5000);
        assert_eq!(bytes, generate_bytes(7, 5000));
        let a: Vec<Value> = bytes
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect();
        let mut sizes: Vec<usize> = bytes.iter().map(|b| b.len()).collect();
        sizes.sort();
        let median = sizes[sizes.len() / 2];
        assert!((450..=800).contains(&median), "median {median}");
        assert!(
            sizes[0] >= 150 && *sizes.last().unwrap() <= 4600,
            "{} .. {}",
            sizes[0],
            sizes.last().unwrap()
        );
        let cats: std::collections::BTreeSet<String> = a
            .iter()
            .map(|e| {
                e.get("category")
                    .or(e.get("event_category"))
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert!(cats.len() >= 5, "{cats:?}");
    }
}
