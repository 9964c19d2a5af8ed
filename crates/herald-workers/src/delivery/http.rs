//! The production [`WebhookSender`]: one HTTP POST per attempt with
//! `reqwest` (https through rustls, verified against the system's roots),
//! redirects off, a timeout per attempt, and connections only to
//! addresses the network guard accepted (a URL's own address is checked
//! before sending; a host name is resolved by a resolver that checks every
//! answer, so the address connected to is the address checked).

use std::error::Error as StdError;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use super::classify::TransportFailure;
use super::network::{AllowedNetworks, Refusal, TargetHost, WebhookTarget};
use super::worker::{OutgoingWebhook, SendResult, WebhookSender};

/// A resolver answer the network guard refused.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct Refused(Refusal);

/// A name that did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` did not resolve: {1}")]
struct Unresolved(String, std::io::Error);

/// Resolves with the system resolver, then lets only checked addresses through.
#[derive(Debug)]
struct GuardedResolver {
    allowed: Arc<AllowedNetworks>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Unresolved(host.clone(), e))?;
            let ips: Vec<IpAddr> = found.map(|a| a.ip()).collect();
            let target = WebhookTarget {
                host: TargetHost::Name(host),
                port: 0,
            };
            let checked = target.check(&ips, &allowed).map_err(Refused)?;
            let addrs: reqwest::dns::Addrs = Box::new(checked.into_iter());
            Ok(addrs)
        })
    }
}

/// Sends webhooks over HTTP and HTTPS.
#[derive(Debug, Clone)]
pub struct HttpSender {
    client: reqwest::Client,
    allowed: Arc<AllowedNetworks>,
}

impl HttpSender {
    /// A sender that connects only to public addresses and `allowed` ones.
    pub fn new(allowed: AllowedNetworks) -> Result<HttpSender, reqwest::Error> {
        // rustls is built without a crypto provider of its own: ring is the
        // process's (`main` installs it first; this covers other callers).
        // Installing fails only when one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let allowed = Arc::new(allowed);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                allowed: allowed.clone(),
            }))
            .build()?;
        Ok(HttpSender { client, allowed })
    }

    async fn post(&self, request: OutgoingWebhook) -> SendResult {
        match WebhookTarget::parse(&request.url) {
            Err(_) => return SendResult::Failed(TransportFailure::Refused),
            Ok(target) => {
                if let TargetHost::Address(ip) = target.host
                    && target.check(&[ip], &self.allowed).is_err()
                {
                    return SendResult::Failed(TransportFailure::Refused);
                }
            }
        }
        let read_limit = request.read_limit;
        let mut builder = self
            .client
            .post(&request.url)
            .timeout(request.timeout)
            .body(request.body);
        // The request's own content type wins (headers are appended, not
        // replaced): CloudEvents deliveries carry theirs.
        if !request
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            builder = builder.header("content-type", "application/json");
        }
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut response = match builder.send().await {
            Ok(response) => response,
            Err(e) => return SendResult::Failed(failure(&e)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Only the start of the body is kept; the rest is not read.
        let mut body = Vec::new();
        while body.len() < read_limit {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        SendResult::Response {
            status,
            retry_after,
            body,
        }
    }
}

impl WebhookSender for HttpSender {
    fn send<'a>(
        &'a self,
        request: OutgoingWebhook,
    ) -> Pin<Box<dyn Future<Output = SendResult> + Send + 'a>> {
        Box::pin(self.post(request))
    }
}

/// How a request that got no answer failed.
fn failure(e: &reqwest::Error) -> TransportFailure {
    let mut source: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(s) = source {
        if s.is::<Refused>() {
            return TransportFailure::Refused;
        }
        if s.is::<Unresolved>() {
            return TransportFailure::Dns;
        }
        if is_tls(s) {
            return TransportFailure::Tls;
        }
        source = s.source();
    }
    if e.is_timeout() {
        TransportFailure::Timeout
    } else if e.is_builder() {
        // A request that could not even be built was never sent.
        TransportFailure::Refused
    } else if e.is_connect() {
        TransportFailure::Connect
    } else {
        TransportFailure::Body
    }
}

/// A handshake or certificate failure: rustls's error, bare or wrapped in
/// IO errors (as the TLS stream reports it).
fn is_tls(e: &(dyn StdError + 'static)) -> bool {
    if e.is::<rustls::Error>() {
        return true;
    }
    e.downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .is_some_and(|inner| is_tls(inner))
}
