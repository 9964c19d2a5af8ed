//! Tenants' API keys (scoped `ingest`, `read`, `manage`, `collect`) and the
//! operator's root key (tenants and their keys): random secrets shown once,
//! stored as SHA-256, sent as `Authorization: Bearer`. A short-lived
//! in-process cache keeps key lookups off the store on the hot path;
//! revocation through this instance evicts at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use herald_core::TenantId;
use herald_store::{ApiKey, Scope};
use sha2::{Digest, Sha256};

use crate::App;
use crate::http::audit::AuditSlot;
use crate::http::problem::ApiError;

/// How long a looked-up key is trusted before it is read again (other
/// instances' revocations take effect within this).
const CACHE_TTL: Duration = Duration::from_secs(5);

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The operator's root key: manages tenants, nothing else.
    Root,
    Tenant(ApiKey),
}

impl Principal {
    /// The tenant, when the key holds `scope`.
    /// The root key reads as the operator tenant (its self events).
    pub fn require(&self, scope: Scope) -> Result<&ApiKey, ApiError> {
        match self {
            Principal::Root if scope == Scope::Read => Ok(operator_reader()),
            Principal::Root => Err(ApiError::forbidden(
                "the root key manages tenants and keys, and reads the operator tenant `_herald`; use a tenant key for this route",
            )),
            Principal::Tenant(key) if key.scopes.contains(&scope) => Ok(key),
            Principal::Tenant(key) => Err(ApiError::forbidden(format!(
                "key {} lacks the `{}` scope this route needs (it has: {})",
                key.key_id,
                scope.as_str(),
                key.scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Root, or a `manage` key of `tenant` itself.
    pub fn require_admin_of(&self, tenant: &TenantId) -> Result<(), ApiError> {
        match self {
            Principal::Root => Ok(()),
            Principal::Tenant(key)
                if key.tenant_id == *tenant && key.scopes.contains(&Scope::Manage) =>
            {
                Ok(())
            }
            Principal::Tenant(_) => Err(ApiError::forbidden(
                "needs the root key or a `manage` key of this tenant",
            )),
        }
    }
}

/// The key the root key reads with: `read` on the operator tenant
/// (`crate::self_events::OPERATOR_TENANT`) only.
fn operator_reader() -> &'static ApiKey {
    static KEY: std::sync::OnceLock<ApiKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| ApiKey {
        key_id: "root".into(),
        tenant_id: crate::self_events::operator_tenant(),
        name: "root".into(),
        scopes: vec![Scope::Read],
        secret_hash: [0; 32],
        created_at: herald_core::Timestamp::from_parts(0, 0, 0).expect("the epoch is a time"),
        collect: Default::default(),
    })
}

/// 32 random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The OS RNG failing is unrecoverable for a key issuer.
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new tenant key secret.
pub fn new_secret() -> String {
    format!("hk_{}", random_hex(32))
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Looks keys up through a small TTL cache.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<[u8; 32], (ApiKey, Instant)>>,
}

impl KeyCache {
    pub fn get(&self, hash: &[u8; 32]) -> Option<ApiKey> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(k, _)| k.clone())
    }

    pub fn put(&self, hash: [u8; 32], key: ApiKey) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() > 10_000 {
            entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        entries.insert(hash, (key, Instant::now()));
    }

    pub fn evict(&self, key_id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (k, _)| k.key_id != key_id);
    }
}

/// The live tenant key whose secret is `secret`, through the cache (the
/// root key is no tenant key, so it is not found here).
pub async fn find_tenant_key(app: &App, secret: &str) -> Result<Option<ApiKey>, ApiError> {
    let hash = hash_secret(secret);
    if let Some(key) = app.keys.get(&hash) {
        return Ok(Some(key));
    }
    let found = app.store.find_key(hash).await?;
    if let Some(key) = &found {
        app.keys.put(hash, key.clone());
    }
    Ok(found)
}

/// Compares in time independent of where the inputs differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<App> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthorized("send your API key as `Authorization: Bearer <key>`")
            })?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <key>`")
            })?;
        let hash = hash_secret(secret);
        let principal = if constant_time_eq(&hash, &app.root_key_hash) {
            Principal::Root
        } else if let Some(key) = app.keys.get(&hash) {
            Principal::Tenant(key)
        } else {
            match app.store.find_key(hash).await? {
                Some(key) => {
                    app.keys.put(hash, key.clone());
                    Principal::Tenant(key)
                }
                None => return Err(ApiError::unauthorized("unknown or revoked API key")),
            }
        };
        if let Some(slot) = parts.extensions.get::<AuditSlot>() {
            slot.set_principal(&principal);
        }
        Ok(principal)
    }
}
