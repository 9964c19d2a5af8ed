//! The client's address: taken from the socket, or from `X-Forwarded-For`
//! only when the socket's peer is a configured trusted proxy, and then
//! kept, truncated, hashed or dropped by the [`IpPolicy`]. An address is
//! personal data; the default keeps only its network (/24 for IPv4, /48
//! for IPv6), enough for rough location and abuse work.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use ipnet::IpNet;

/// What is kept of a client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpPolicy {
    /// The address as it is.
    Keep,
    /// Its network: the first 24 bits of IPv4, 48 of IPv6, the rest zero.
    #[default]
    Truncate,
    /// A keyed per-tenant hash of it (correlates within a tenant only).
    Hash,
    /// Nothing.
    Drop,
}

impl IpPolicy {
    pub const ALL: [IpPolicy; 4] = [
        IpPolicy::Keep,
        IpPolicy::Truncate,
        IpPolicy::Hash,
        IpPolicy::Drop,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            IpPolicy::Keep => "keep",
            IpPolicy::Truncate => "truncate",
            IpPolicy::Hash => "hash",
            IpPolicy::Drop => "drop",
        }
    }

    pub fn parse(s: &str) -> Option<IpPolicy> {
        IpPolicy::ALL.into_iter().find(|p| p.as_str() == s.trim())
    }

    /// What is kept of `ip`; `hash` is the tenant's keyed hash.
    pub fn apply(self, ip: IpAddr, hash: impl FnOnce(&str) -> String) -> Option<String> {
        match self {
            IpPolicy::Keep => Some(ip.to_string()),
            IpPolicy::Truncate => Some(truncate(ip).to_string()),
            IpPolicy::Hash => Some(format!("ip_hash:{}", hash(&ip.to_string()))),
            IpPolicy::Drop => None,
        }
    }
}

/// The /24 of an IPv4 address, the /48 of an IPv6 one (an IPv4-mapped
/// IPv6 address is truncated as the IPv4 address it is).
pub fn truncate(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => truncate(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
            }
        },
    }
}

/// The client's address. The socket's peer, unless the peer is one of
/// `trusted` proxies: then `X-Forwarded-For` is read from the right (each
/// proxy appends the address it received from), skipping trusted proxies,
/// and the first address that is not one is the client. An entry that is
/// not an address stops the walk at the last trusted hop, since whatever
/// is left of it was written by someone untrusted.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(&ip));
    let mut client = peer;
    if !is_trusted(client) {
        return client;
    }
    // Several headers are one list, in order.
    let hops = forwarded_for
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        match parse_hop(hop) {
            Some(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    return ip;
                }
            }
            None => return client,
        }
    }
    client
}

/// A comma-separated list of addresses (taken as one-address ranges) and
/// CIDR ranges; empty: none. The error names the first bad entry.
pub fn parse_networks(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
        .map(|(i, e)| {
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| format!("entry {} `{e}` is not an address or a CIDR range", i + 1))
        })
        .collect()
}

/// One `X-Forwarded-For` entry: an address, possibly with a port
/// (`1.2.3.4:80`, `[2001:db8::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn truncation_keeps_the_network() {
        assert_eq!(truncate(ip("203.0.113.77")), ip("203.0.113.0"));
        assert_eq!(
            truncate(ip("2001:db8:abcd:12:1:2:3:4")),
            ip("2001:db8:abcd::")
        );
        assert_eq!(truncate(ip("::ffff:198.51.100.9")), ip("198.51.100.0"));
    }

    #[test]
    fn network_lists() {
        assert_eq!(
            parse_networks(" 10.0.0.0/8, 192.0.2.1 ,").unwrap(),
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "192.0.2.1/32".parse().unwrap()
            ]
        );
        assert_eq!(parse_networks("").unwrap(), vec![]);
        assert!(
            parse_networks("10.0.0.0/8,nope")
                .unwrap_err()
                .contains("entry 2 `nope`")
        );
    }

    #[test]
    fn policies() {
        let a = ip("198.51.100.9");
        let h = |s: &str| format!("h({s})");
        assert_eq!(IpPolicy::Keep.apply(a, h).as_deref(), Some("198.51.100.9"));
        assert_eq!(
            IpPolicy::Truncate.apply(a, h).as_deref(),
            Some("198.51.100.0")
        );
        assert_eq!(
            IpPolicy::Hash.apply(a, h).as_deref(),
            Some("ip_hash:h(198.51.100.9)")
        );
        assert_eq!(IpPolicy::Drop.apply(a, h), None);
        assert_eq!(IpPolicy::parse("hash"), Some(IpPolicy::Hash));
        assert_eq!(IpPolicy::parse("mask"), None);
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // An untrusted peer's header is ignored: it could say anything.
        assert_eq!(
            client_ip(ip("203.0.113.5"), &["1.1.1.1"], &trusted),
            ip("203.0.113.5")
        );
        // A trusted proxy: the rightmost untrusted hop is the client, not
        // the leftmost (which the client itself may have written).
        assert_eq!(
            client_ip(
                ip("10.0.0.2"),
                &["6.6.6.6, 198.51.100.7, 10.0.0.9"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        // Several headers are one list.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["6.6.6.6", "198.51.100.7:4711"], &trusted),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["198.51.100.7, nonsense"], &trusted),
            ip("10.0.0.2")
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(ip("10.0.0.2"), &[], &trusted), ip("10.0.0.2"));
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["[2001:db8::1]:443"], &trusted),
            ip("2001:db8::1")
        );
    }
}
