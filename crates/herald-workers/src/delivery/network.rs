//! The network guard against server-side request forgery: a webhook URL
//! is sent to only when every address its host resolves to is public, or
//! inside a range the operator allowed (`HERALD_DELIVERY_ALLOWED_NETWORKS`,
//! e.g. `127.0.0.0/8,::1/128` for a receiver on the same machine). The DNS
//! resolver is passed in, and the checked addresses are returned, so the
//! sender connects to exactly what was checked (a second lookup could
//! answer differently).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use url::{Host, Url};

/// The setting that allows non-public ranges, named in every refusal.
pub const ALLOWED_NETWORKS_SETTING: &str = "HERALD_DELIVERY_ALLOWED_NETWORKS";

/// The cloud providers' instance metadata address.
const CLOUD_METADATA: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonPublic {
    Unspecified,
    /// 0.0.0.0/8: "this network".
    ThisNetwork,
    Loopback,
    /// 10/8, 172.16/12, 192.168/16.
    Private,
    /// 100.64/10, carrier-grade NAT.
    SharedAddressSpace,
    LinkLocal,
    /// 169.254.169.254, the instance metadata service.
    CloudMetadata,
    Multicast,
    Broadcast,
    Documentation,
    Benchmarking,
    /// IPv6 fc00::/7.
    UniqueLocal,
    /// Reserved or special-purpose (protocol assignments, 240/4, IPv6
    /// outside global unicast, ...).
    Reserved,
}

impl fmt::Display for NonPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NonPublic::Unspecified => "the unspecified address",
            NonPublic::ThisNetwork => "a \"this network\" address (0.0.0.0/8)",
            NonPublic::Loopback => "a loopback address",
            NonPublic::Private => "a private address",
            NonPublic::SharedAddressSpace => "a carrier-grade NAT address (100.64.0.0/10)",
            NonPublic::LinkLocal => "a link-local address",
            NonPublic::CloudMetadata => "the cloud instance metadata address",
            NonPublic::Multicast => "a multicast address",
            NonPublic::Broadcast => "the broadcast address",
            NonPublic::Documentation => "a documentation address",
            NonPublic::Benchmarking => "a benchmarking address",
            NonPublic::UniqueLocal => "a unique local address (fc00::/7)",
            NonPublic::Reserved => "a reserved or special-purpose address",
        })
    }
}

/// True for an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    classify(ip).is_ok()
}

/// `Ok` for a public address; otherwise why not. IPv6 addresses that embed
/// an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`) are judged by it.
pub fn classify(ip: IpAddr) -> Result<(), NonPublic> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, network: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(network)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> Result<(), NonPublic> {
    use NonPublic::*;
    let ranges: [([u8; 4], u32, NonPublic); 15] = [
        ([0, 0, 0, 0], 8, ThisNetwork),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedAddressSpace),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Reserved),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Benchmarking),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    if ip.is_unspecified() {
        return Err(Unspecified);
    }
    if ip == CLOUD_METADATA {
        return Err(CloudMetadata);
    }
    if ip.is_broadcast() {
        return Err(Broadcast);
    }
    match ranges
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
    {
        Some((_, _, why)) => Err(*why),
        None => Ok(()),
    }
}

/// The IPv4 address an IPv6 address stands for, if it embeds one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // Mapped ::ffff:0:0/96 and compatible ::/96 (but not :: and ::1 themselves).
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_unspecified() && !ip.is_loopback() => Some(tail),
        // NAT64, 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // 6to4, 2002::/16: the IPv4 address sits in bits 16..48.
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

fn classify_v6(ip: Ipv6Addr) -> Result<(), NonPublic> {
    use NonPublic::*;
    if ip.is_unspecified() {
        return Err(Unspecified);
    }
    if ip.is_loopback() {
        return Err(Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let first = s[0];
    if first & 0xff00 == 0xff00 {
        return Err(Multicast);
    }
    if first & 0xfe00 == 0xfc00 {
        return Err(UniqueLocal);
    }
    if first & 0xffc0 == 0xfe80 {
        return Err(LinkLocal);
    }
    // Only global unicast, 2000::/3, reaches the public internet.
    if first & 0xe000 != 0x2000 {
        return Err(Reserved);
    }
    // Documentation: 2001:db8::/32 and 3fff::/20.
    if (first == 0x2001 && s[1] == 0x0db8) || first & 0xfff0 == 0x3ff0 {
        return Err(Documentation);
    }
    // Benchmarking 2001:2::/48, inside the protocol assignments 2001::/23.
    if first == 0x2001 && s[1] == 0x0002 && s[2] == 0 {
        return Err(Benchmarking);
    }
    if first == 0x2001 && s[1] < 0x0200 {
        return Err(Reserved);
    }
    Ok(())
}

/// The ranges an operator allows beyond the public internet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedNetworks(Vec<IpNet>);

/// Why an allowed-networks list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {position} `{entry}`: {reason}")]
pub struct NetworkListError {
    /// 1-based position in the comma-separated list.
    pub position: usize,
    pub entry: String,
    pub reason: String,
}

impl AllowedNetworks {
    /// Parses a comma-separated list of CIDR ranges (`127.0.0.0/8,
    /// ::1/128`); a bare address means just that address; empty entries
    /// are skipped. A range with host bits set (`10.0.0.1/8`) is refused,
    /// since it usually means a typo.
    pub fn parse(list: &str) -> Result<AllowedNetworks, NetworkListError> {
        let mut networks = Vec::new();
        for (index, entry) in list.split(',').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let refuse = |reason: String| NetworkListError {
                position: index + 1,
                entry: entry.to_string(),
                reason,
            };
            let network = if entry.contains('/') {
                let network: IpNet = entry.parse().map_err(|_| {
                    refuse("expected a CIDR range like 10.0.0.0/8 or fd00::/8 (address/prefix length, at most 32 for IPv4 and 128 for IPv6)".into())
                })?;
                if network.trunc() != network {
                    return Err(refuse(format!(
                        "has host bits set; the range is written {}",
                        network.trunc()
                    )));
                }
                network
            } else {
                let ip: IpAddr = entry.parse().map_err(|_| {
                    refuse("expected an IP address or a CIDR range like 127.0.0.0/8".into())
                })?;
                IpNet::from(ip)
            };
            networks.push(network);
        }
        Ok(AllowedNetworks(networks))
    }

    /// True when `ip`, or the IPv4 address it embeds, is in an allowed range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.0
            .iter()
            .any(|net| net.contains(&ip) || embedded.is_some_and(|v4| net.contains(&v4)))
    }

    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }
}

/// Looks a host name up. The worker's resolver does DNS; a test's answers
/// from a table.
pub trait Resolver {
    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String>;
}

/// Why a webhook URL will not be sent to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`{url}` is not a valid URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("webhook URLs use http or https, not `{0}`")]
    UnsupportedScheme(String),
    #[error("the webhook URL has no host")]
    NoHost,
    #[error("`{host}` could not be resolved: {reason}")]
    Unresolved { host: String, reason: String },
    #[error("`{0}` resolved to no address")]
    NoAddress(String),
    #[error(
        "`{host}` resolves to {address}, {why}; webhooks go only to public addresses unless {ALLOWED_NETWORKS_SETTING} allows the range (e.g. {ALLOWED_NETWORKS_SETTING}=127.0.0.0/8,::1/128)"
    )]
    NotPublic {
        host: String,
        address: IpAddr,
        why: NonPublic,
    },
}

/// Where a webhook URL points: its host (an address, or a name to
/// resolve) and port. An async sender parses the URL, resolves
/// [`TargetHost::Name`] its own way and hands the answers to
/// [`WebhookTarget::check`]; [`check_url`] does all three with a [`Resolver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub host: TargetHost,
    pub port: u16,
}

/// A webhook URL's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetHost {
    /// An address written in the URL (as the URL standard reads it, so
    /// `http://2130706433/` is 127.0.0.1).
    Address(IpAddr),
    /// A name to resolve (lower case, IDNA-encoded).
    Name(String),
}

impl fmt::Display for TargetHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetHost::Address(ip) => ip.fmt(f),
            TargetHost::Name(name) => f.write_str(name),
        }
    }
}

impl WebhookTarget {
    /// Parses a webhook URL: http or https with a host.
    pub fn parse(url: &str) -> Result<WebhookTarget, Refusal> {
        let parsed = Url::parse(url).map_err(|e| Refusal::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Refusal::UnsupportedScheme(parsed.scheme().to_string()));
        }
        let port = parsed
            .port_or_known_default()
            .expect("http and https have default ports");
        let host = match parsed.host().ok_or(Refusal::NoHost)? {
            Host::Ipv4(v4) => TargetHost::Address(IpAddr::V4(v4)),
            Host::Ipv6(v6) => TargetHost::Address(IpAddr::V6(v6)),
            Host::Domain(name) => TargetHost::Name(name.to_string()),
        };
        Ok(WebhookTarget { host, port })
    }

    /// Checks the addresses to connect to (the URL's own address, or what
    /// its name resolved to): each public or allowed. Returns them with the
    /// port (duplicates dropped, order kept), the only ones to connect to.
    /// One forbidden address refuses the whole host: a name that answers
    /// with a public and a private address is not trusted for either.
    pub fn check(
        &self,
        addresses: &[IpAddr],
        allowed: &AllowedNetworks,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        if addresses.is_empty() {
            return Err(Refusal::NoAddress(self.host.to_string()));
        }
        let mut checked: Vec<SocketAddr> = Vec::with_capacity(addresses.len());
        for &address in addresses {
            if let Err(why) = classify(address)
                && !allowed.contains(address)
            {
                return Err(Refusal::NotPublic {
                    host: self.host.to_string(),
                    address,
                    why,
                });
            }
            let socket = SocketAddr::new(address, self.port);
            if !checked.contains(&socket) {
                checked.push(socket);
            }
        }
        Ok(checked)
    }
}

/// Checks a webhook URL: [`WebhookTarget::parse`], the name resolved by
/// `resolver` (an address in the URL is used as it is), then
/// [`WebhookTarget::check`].
pub fn check_url(
    url: &str,
    resolver: &impl Resolver,
    allowed: &AllowedNetworks,
) -> Result<Vec<SocketAddr>, Refusal> {
    let target = WebhookTarget::parse(url)?;
    let addresses = match &target.host {
        TargetHost::Address(ip) => vec![*ip],
        TargetHost::Name(name) => resolver
            .resolve(name)
            .map_err(|reason| Refusal::Unresolved {
                host: name.clone(),
                reason,
            })?,
    };
    target.check(&addresses, allowed)
}

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
