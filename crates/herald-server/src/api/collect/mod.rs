//! Collection: events sent by browsers and by analytics SDKs with a
//! **write key** (a key holding the `collect` scope, safe to put in a page).
//! What every collection route shares is here: finding the write key
//! (`?writeKey=`, HTTP Basic user, `Bearer`, or the body), the key's
//! allowed origins, rate limits per key and per client address, the
//! client's context (address through trusted proxies, `User-Agent`,
//! `Referer`), and storing decoded events through the same
//! `EventProcessor` and store path as `POST /api/v1/events/batch`. The
//! formats themselves are pure decoders in `herald-collect`.

pub mod cloudevents;
pub mod cors;
pub mod frontend;
pub mod keys;
mod limits;
pub mod rudderstack;
pub mod schemas;
pub mod segment;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Uri, header};
use herald_collect::ClientContext;
use herald_collect::client::{IpNet, IpPolicy, client_ip};
use herald_core::EventId;
use herald_store::{ApiKey, AppendOutcome, NewEvent, Scope};
use serde_json::Value;

pub use limits::RateLimits;

use super::events::{check_body_tenant, processing_context, reject, rejection, version_conflict};
use crate::App;
use crate::config::Config;
use crate::http::audit::AuditSlot;
use crate::http::auth::{Principal, find_tenant_key};
use crate::http::params::{Param, ParamKind};
use crate::http::problem::ApiError;

/// Collection's settings and state, built once from the config.
#[derive(Debug)]
pub struct CollectState {
    trusted_proxies: Vec<IpNet>,
    pub(crate) ip_policy: IpPolicy,
    pub limits: RateLimits,
}

impl CollectState {
    /// From a validated config (its collection settings were checked when
    /// it loaded).
    pub fn new(config: &Config) -> CollectState {
        CollectState {
            trusted_proxies: config.trusted_proxies().unwrap_or_default(),
            ip_policy: config.client_ip_policy().unwrap_or_default(),
            limits: RateLimits::new(config.collect_key_rate, config.collect_ip_rate),
        }
    }
}

/// The write key a request names: `?writeKey=` (from the parameters
/// parsed with [`WRITE_KEY_PARAMS`]), then the `Authorization` header
/// (HTTP Basic with the key as user, as Segment's and RudderStack's SDKs
/// send it, or `Bearer`), then the body's `writeKey`.
pub fn write_key_secret(
    query: Option<&str>,
    headers: &HeaderMap,
    body_key: Option<&str>,
) -> Option<String> {
    query
        .map(str::to_string)
        .or_else(|| authorization_key(headers))
        .or_else(|| body_key.map(str::to_string))
        .filter(|k| !k.is_empty())
}

/// `writeKey` of the query string, percent-decoded (read outside
/// `params::parse` only by the CORS preflight, which answers no errors).
pub fn query_write_key(uri: &Uri) -> Option<String> {
    let axum::extract::Query(pairs) =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri).ok()?;
    pairs
        .into_iter()
        .find(|(n, _)| n == "writeKey")
        .map(|(_, v)| v)
}

/// The query parameter of every collection route.
pub const WRITE_KEY_PARAMS: &[Param] = &[Param {
    name: "writeKey",
    kind: ParamKind::String,
    description: "the write key (a key with the `collect` scope), as a browser snippet sends it; or HTTP Basic user, `Authorization: Bearer`, or the body's `writeKey`",
}];

/// The key of an `Authorization: Basic base64(key:)` or `Bearer key` header.
pub fn authorization_key(headers: &HeaderMap) -> Option<String> {
    let h = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, value) = h.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(value.trim().to_string());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.as_str(), |(user, _)| user)
            .to_string(),
    )
}

/// The live write key named by `secret`: 401 when unknown, 403 without
/// the `collect` scope. Records the key in the audit slot.
pub async fn resolve_write_key(
    app: &App,
    slot: &AuditSlot,
    secret: Option<String>,
) -> Result<ApiKey, ApiError> {
    let secret = secret.ok_or_else(|| {
        ApiError::unauthorized(
            "send the write key as `?writeKey=<key>`, HTTP Basic user (`<key>:`), `Authorization: Bearer <key>` or the body's `writeKey`",
        )
    })?;
    let key = find_tenant_key(app, &secret)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked write key"))?;
    let principal = Principal::Tenant(key);
    slot.set_principal(&principal);
    let key = principal.require(Scope::Collect)?.clone();
    Ok(key)
}

/// A browser (a request with an `Origin`) may use the key only from one of
/// its allowed origins.
pub fn check_origin(key: &ApiKey, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let how = format!(
        "set them with PUT /api/v1/admin/tenants/{}/keys/{}/collect {{\"allowed_origins\": [\"https://your.site\"]}}",
        key.tenant_id, key.key_id
    );
    match &key.collect.allowed_origins {
        None => Err(ApiError::forbidden(format!(
            "write key {} has no allowed origins, so browsers may not use it; {how}",
            key.key_id
        ))),
        Some(list) if origin_allowed(list, origin) => Ok(()),
        Some(_) => Err(ApiError::forbidden(format!(
            "origin `{}` is not among write key {}'s allowed origins; {how}",
            origin.chars().take(200).collect::<String>(),
            key.key_id
        ))),
    }
}

/// `origin` is one of `list` (`*`: any), compared without case.
pub fn origin_allowed(list: &[String], origin: &str) -> bool {
    list.iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
}

/// The client's address: the socket's peer, or what trusted proxies say.
pub fn client_addr(app: &App, peer: &Peer, headers: &HeaderMap) -> IpAddr {
    let peer = peer.0.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    client_ip(peer, &forwarded, &app.collect.trusted_proxies)
}

/// What is stored about the client: its address as the policy keeps it
/// (hashed with the tenant's keyed hasher), `User-Agent`, `Referer`.
pub async fn client_context(
    app: &App,
    key: &ApiKey,
    ip: IpAddr,
    headers: &HeaderMap,
) -> Result<ClientContext, ApiError> {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(1024).collect::<String>())
    };
    let ip = match app.collect.ip_policy {
        IpPolicy::Hash => {
            let tenant = app.tenant_context(&key.tenant_id).await?;
            IpPolicy::Hash.apply(ip, |s| tenant.hasher.hash(s))
        }
        policy => policy.apply(ip, |_| String::new()),
    };
    Ok(ClientContext {
        ip,
        user_agent: text(header::USER_AGENT),
        referer: text(header::REFERER),
    })
}

/// The IP policy for an address a message itself reports (a server-side
/// SDK reporting its end user's): the same policy as a captured address.
/// What is not an address is kept only when addresses are kept as sent.
pub async fn reported_ip_policy(
    app: &App,
    key: &ApiKey,
) -> Result<Box<dyn Fn(&str) -> Option<String> + Send + Sync>, ApiError> {
    let policy = app.collect.ip_policy;
    let tenant = match policy {
        IpPolicy::Hash => Some(app.tenant_context(&key.tenant_id).await?),
        _ => None,
    };
    Ok(Box::new(move |s: &str| match s.trim().parse::<IpAddr>() {
        Ok(ip) => policy.apply(ip, |x| {
            tenant
                .as_ref()
                .map(|t| t.hasher.hash(x))
                .unwrap_or_default()
        }),
        Err(_) => matches!(policy, IpPolicy::Keep).then(|| s.to_string()),
    }))
}

/// The length of `value` as compact JSON, counted without building it.
fn encoded_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    match serde_json::to_writer(&mut n, value) {
        Ok(()) => n.0,
        Err(_) => usize::MAX,
    }
}

/// One decoded event's fate.
#[derive(Debug)]
pub enum Fate {
    Stored(EventId),
    /// Its idempotency key was stored before: the first event's id.
    Duplicate(EventId),
    Rejected(ApiError),
}

/// The answer to a batch of collected events, the fates in input order:
/// `all_stored` when none was rejected, else 207, with
/// `{"count": stored, "event_ids": [id or null, ...], "errors": [{index, status, error}]}`.
pub fn batch_answer(
    slot: &AuditSlot,
    fates: impl IntoIterator<Item = Fate>,
    all_stored: axum::http::StatusCode,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (mut count, mut ids, mut errors) = (0, Vec::new(), Vec::new());
    for (index, fate) in fates.into_iter().enumerate() {
        match fate {
            Fate::Stored(id) => {
                count += 1;
                ids.push(serde_json::json!(id));
            }
            Fate::Duplicate(id) => ids.push(serde_json::json!(id)),
            Fate::Rejected(e) => {
                ids.push(Value::Null);
                errors.push(
                    serde_json::json!({ "index": index, "status": e.status.as_u16(), "error": e.body() }),
                );
            }
        }
    }
    slot.detail(format!("stored {count}, rejected {}", errors.len()));
    let status = if errors.is_empty() {
        all_stored
    } else {
        axum::http::StatusCode::MULTI_STATUS
    };
    (
        status,
        axum::Json(serde_json::json!({ "count": count, "event_ids": ids, "errors": errors })),
    )
        .into_response()
}

/// Stores decoded ingest requests the way `POST /api/v1/events/batch`
/// does: each through the tenant's `EventProcessor` (validate, normalise,
/// redact), the good ones in one commit, answered after it.
pub async fn ingest(
    app: &App,
    slot: &AuditSlot,
    key: &ApiKey,
    headers: &HeaderMap,
    requests: Vec<Value>,
) -> Result<Vec<Fate>, ApiError> {
    let _room = app.admission.admit(requests.len()).await?;
    let tenant = app.tenant_context(&key.tenant_id).await?;
    let ctx = processing_context(app, &key.tenant_id, &tenant, headers);
    let mut plan: Vec<Result<usize, ApiError>> = Vec::with_capacity(requests.len());
    let mut accepted = Vec::new();
    let max_event_bytes = app.config.max_event_bytes;
    for request in requests {
        let checked = if encoded_len(&request) > max_event_bytes {
            // Over the limit: the bytes path, whose 413 states the size.
            let bytes = serde_json::to_vec(&request).map_err(ApiError::internal)?;
            tenant
                .processor
                .process_json(&bytes, &ctx)
                .map_err(|result| reject(slot, &key.tenant_id, &bytes, result))
        } else {
            // The decoders built a value: no need to print and parse it again.
            let named = match request.get("tenant_id") {
                Some(Value::String(t)) => Some(t.clone()),
                _ => None,
            };
            tenant
                .processor
                .process_value(request, &ctx)
                .map_err(|result| {
                    check_body_tenant(slot, &key.tenant_id, named.as_deref())
                        .err()
                        .unwrap_or_else(|| rejection(result))
                })
        }
        .and_then(|p| {
            check_body_tenant(slot, &key.tenant_id, p.body_tenant_id.as_deref()).map(|()| p)
        });
        plan.push(checked.map(|p| {
            accepted.push(NewEvent {
                event: p.event,
                expected_version: p.expected_version,
            });
            accepted.len() - 1
        }));
    }
    let n_accepted = accepted.len();
    let outcomes = if accepted.is_empty() {
        Vec::new()
    } else {
        let outcomes = app.store.append(accepted).await?;
        app.after_commit();
        outcomes
    };
    if outcomes.len() != n_accepted {
        return Err(ApiError::internal(
            "store returned a different number of outcomes",
        ));
    }
    Ok(plan
        .into_iter()
        .map(|p| match p.map(|i| &outcomes[i]) {
            Err(e) => Fate::Rejected(e),
            Ok(AppendOutcome::Stored(e)) => Fate::Stored(e.event_id),
            Ok(AppendOutcome::Duplicate(s)) => Fate::Duplicate(s.event.event_id),
            Ok(AppendOutcome::VersionConflict {
                stream_id,
                expected,
                actual,
            }) => Fate::Rejected(version_conflict(stream_id, *expected, *actual)),
        })
        .collect())
}

/// The socket's peer, when the server was started with connect info (the
/// binary and the tests are; a router mounted elsewhere may not be).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}
