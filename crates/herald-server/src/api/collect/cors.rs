//! CORS for the collection routes, judged per write key: tower-http's
//! `CorsLayer` with an origin predicate that looks the key up. A preflight
//! carries no credentials, so the key is the one in its `writeKey` query
//! parameter (what a browser snippet sends); an actual request may also
//! name it in `Authorization`. Only an origin the key allows is answered
//! with `Access-Control-Allow-Origin`; the handler refuses any other
//! (403), so a page on a foreign origin can neither read the answer nor
//! store events, even through a request that needs no preflight.

use std::time::Duration;

use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, header};
use herald_store::Scope;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::{authorization_key, origin_allowed, query_write_key};
use crate::App;
use crate::http::auth::find_tenant_key;
use crate::http::routes::method_not_allowed;
use axum::routing::MethodRouter;

/// A collection route's method router under the CORS layer. Its 405
/// fallback is set here, inside the layer, so the preflight (`OPTIONS`,
/// which no row documents) reaches the layer rather than the router's
/// default 405.
pub fn mounted(route: MethodRouter<App>) -> MethodRouter<App> {
    route.fallback(method_not_allowed).layer(layer())
}

/// The layer every collection route is mounted with. The `App` comes from
/// the request's extensions (the router puts it there).
pub fn layer() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::async_predicate(
            |origin: HeaderValue, parts: &Parts| {
                let app = parts.extensions.get::<App>().cloned();
                let secret =
                    query_write_key(&parts.uri).or_else(|| authorization_key(&parts.headers));
                async move {
                    let (Some(app), Some(secret), Ok(origin)) = (app, secret, origin.to_str())
                    else {
                        return false;
                    };
                    match find_tenant_key(&app, &secret).await {
                        Ok(Some(key)) if key.scopes.contains(&Scope::Collect) => key
                            .collect
                            .allowed_origins
                            .as_deref()
                            .is_some_and(|list| origin_allowed(list, origin)),
                        _ => false,
                    }
                }
            },
        ))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
            header::AUTHORIZATION,
            HeaderName::from_static("traceparent"),
        ])
        .expose_headers([header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}
