use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn non_public_addresses_are_named() {
    use NonPublic::*;
    for (address, why) in [
        ("0.0.0.0", Unspecified),
        ("0.1.2.3", ThisNetwork),
        ("127.0.0.1", Loopback),
        ("127.255.255.254", Loopback),
        ("10.1.2.3", Private),
        ("172.16.0.1", Private),
        ("172.31.255.255", Private),
        ("192.168.1.1", Private),
        ("100.64.0.1", SharedAddressSpace),
        ("100.127.255.255", SharedAddressSpace),
        ("169.254.1.1", LinkLocal),
        ("169.254.169.254", CloudMetadata),
        ("224.0.0.1", Multicast),
        ("239.255.255.250", Multicast),
        ("255.255.255.255", Broadcast),
        ("240.0.0.1", Reserved),
        ("192.0.0.170", Reserved),
        ("192.0.2.1", Documentation),
        ("198.51.100.7", Documentation),
        ("203.0.113.9", Documentation),
        ("198.18.0.1", Benchmarking),
        ("198.19.255.255", Benchmarking),
        ("::", Unspecified),
        ("::1", Loopback),
        ("fc00::1", UniqueLocal),
        ("fd00:ec2::254", UniqueLocal),
        ("fe80::1", LinkLocal),
        ("febf::1", LinkLocal),
        ("ff02::1", Multicast),
        ("2001:db8::1", Documentation),
        ("3fff::1", Documentation),
        ("2001:2::1", Benchmarking),
        ("2001::1", Reserved),
        ("100::1", Reserved),
        ("4000::1", Reserved),
        // IPv6 forms of IPv4 addresses are judged by the IPv4 address.
        ("::ffff:127.0.0.1", Loopback),
        ("::ffff:169.254.169.254", CloudMetadata),
        ("::ffff:10.0.0.1", Private),
        ("::127.0.0.1", Loopback),
        ("::192.168.0.1", Private),
        ("64:ff9b::a9fe:a9fe", CloudMetadata),
        ("2002:7f00:1::", Loopback),
        ("2002:c0a8:101::1", Private),
    ] {
        assert_eq!(classify(ip(address)), Err(why), "{address}");
    }
}

#[test]
fn public_addresses_pass() {
    for address in [
        "1.1.1.1",
        "8.8.8.8",
        "93.184.216.34",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "169.253.255.255",
        "192.169.0.1",
        "198.20.0.1",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "2a00:1450:4001::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "2001:4860:4860::8888",
    ] {
        assert_eq!(classify(ip(address)), Ok(()), "{address}");
    }
}

#[test]
fn allowed_networks_parse_with_clear_errors() {
    let allowed = AllowedNetworks::parse(" 127.0.0.0/8, ::1/128 ,10.1.2.3,").unwrap();
    assert_eq!(allowed.networks().len(), 3);
    assert!(allowed.contains(ip("127.1.2.3")));
    assert!(allowed.contains(ip("::1")));
    assert!(allowed.contains(ip("10.1.2.3")));
    assert!(!allowed.contains(ip("10.1.2.4")));
    // An IPv4-mapped address matches its IPv4 range.
    assert!(allowed.contains(ip("::ffff:127.0.0.1")));
    assert!(!allowed.contains(ip("::2")));
    assert_eq!(
        AllowedNetworks::parse("").unwrap(),
        AllowedNetworks::default()
    );

    let error = AllowedNetworks::parse("127.0.0.0/8,10.0.0.1/8").unwrap_err();
    assert_eq!((error.position, error.entry.as_str()), (2, "10.0.0.1/8"));
    assert!(error.to_string().contains("10.0.0.0/8"), "{error}");
    let error = AllowedNetworks::parse("10.0.0.0/33").unwrap_err();
    assert!(error.reason.contains("at most 32"), "{error}");
    let error = AllowedNetworks::parse("::1/128, localhost").unwrap_err();
    assert_eq!((error.position, error.entry.as_str()), (2, "localhost"));
    assert!(
        error
            .to_string()
            .starts_with("entry 2 `localhost`: expected an IP address")
    );
}

#[derive(Debug, Default)]
struct Table(HashMap<&'static str, Vec<IpAddr>>);

impl Resolver for Table {
    fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        self.0
            .get(host)
            .cloned()
            .ok_or_else(|| "no such host".to_string())
    }
}

fn table() -> Table {
    Table(HashMap::from([
        (
            "hooks.example.com",
            vec![
                ip("93.184.216.34"),
                ip("2606:2800:220:1::1"),
                ip("93.184.216.34"),
            ],
        ),
        ("localhost", vec![ip("127.0.0.1"), ip("::1")]),
        (
            "mixed.example.com",
            vec![ip("93.184.216.34"), ip("10.0.0.5")],
        ),
        ("empty.example.com", vec![]),
    ]))
}

#[test]
fn check_url_returns_the_checked_addresses_with_the_port() {
    let none = AllowedNetworks::default();
    assert_eq!(
        check_url("https://hooks.example.com/herald", &table(), &none).unwrap(),
        vec![
            "93.184.216.34:443".parse::<SocketAddr>().unwrap(),
            "[2606:2800:220:1::1]:443".parse().unwrap()
        ]
    );
    assert_eq!(
        check_url("http://user:pw@8.8.8.8:8080/x", &table(), &none).unwrap(),
        vec!["8.8.8.8:8080".parse::<SocketAddr>().unwrap()]
    );
}

#[test]
fn check_url_refuses_non_public_hosts_naming_the_setting() {
    let none = AllowedNetworks::default();
    let refusal = check_url("http://localhost:9000/hook", &table(), &none).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::NotPublic {
            host: "localhost".into(),
            address: ip("127.0.0.1"),
            why: NonPublic::Loopback
        }
    );
    assert!(
        refusal.to_string().contains(ALLOWED_NETWORKS_SETTING),
        "{refusal}"
    );
    // One private answer refuses the whole name.
    assert!(matches!(
        check_url("https://mixed.example.com/", &table(), &none),
        Err(Refusal::NotPublic {
            why: NonPublic::Private,
            ..
        })
    ));
    // The URL parser's reading of odd IPv4 spellings is the one checked.
    for url in [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/latest/meta-data/",
    ] {
        assert!(
            matches!(
                check_url(url, &table(), &none),
                Err(Refusal::NotPublic { .. })
            ),
            "{url}"
        );
    }
}

#[test]
fn the_allow_list_admits_local_receivers() {
    let allowed = AllowedNetworks::parse("127.0.0.0/8,::1/128").unwrap();
    assert_eq!(
        check_url("http://localhost:9000/hook", &table(), &allowed).unwrap(),
        vec![
            "127.0.0.1:9000".parse::<SocketAddr>().unwrap(),
            "[::1]:9000".parse().unwrap()
        ]
    );
    // The allow-list opens only what it names.
    assert!(check_url("http://10.0.0.5/", &table(), &allowed).is_err());
}

#[test]
fn a_target_is_parsed_once_and_checked_against_what_resolved() {
    let target = WebhookTarget::parse("https://Hooks.Example.com./in").unwrap();
    assert_eq!(target.host, TargetHost::Name("hooks.example.com.".into()));
    assert_eq!(target.port, 443);
    let allowed = AllowedNetworks::default();
    assert_eq!(
        target.check(&[ip("8.8.8.8")], &allowed).unwrap(),
        vec!["8.8.8.8:443".parse::<SocketAddr>().unwrap()]
    );
    assert!(matches!(
        target.check(&[ip("8.8.8.8"), ip("fd00::1")], &allowed),
        Err(Refusal::NotPublic {
            why: NonPublic::UniqueLocal,
            ..
        })
    ));
    let literal = WebhookTarget::parse("http://[2606:4700::1111]:8443/").unwrap();
    assert_eq!(literal.host, TargetHost::Address(ip("2606:4700::1111")));
    assert_eq!(literal.port, 8443);
    assert!(is_public(ip("2606:4700::1111")) && !is_public(ip("10.0.0.1")));
}

#[test]
fn check_url_refuses_bad_urls_and_lookups() {
    let none = AllowedNetworks::default();
    assert!(matches!(
        check_url("not a url", &table(), &none),
        Err(Refusal::InvalidUrl { .. })
    ));
    assert_eq!(
        check_url("ftp://hooks.example.com/", &table(), &none),
        Err(Refusal::UnsupportedScheme("ftp".into()))
    );
    assert_eq!(
        check_url("https://nowhere.example.com/", &table(), &none),
        Err(Refusal::Unresolved {
            host: "nowhere.example.com".into(),
            reason: "no such host".into()
        })
    );
    assert_eq!(
        check_url("https://empty.example.com/", &table(), &none),
        Err(Refusal::NoAddress("empty.example.com".into()))
    );
}

proptest! {
    #[test]
    fn allowed_network_lists_never_panic(text in "[0-9a-fA-F:./, x-]{0,40}") {
        let _ = AllowedNetworks::parse(&text);
    }

    #[test]
    fn any_unicode_list_parses_or_names_its_entry(text in "\\PC{0,40}") {
        if let Err(error) = AllowedNetworks::parse(&text) {
            let entries: Vec<&str> = text.split(',').map(str::trim).collect();
            prop_assert_eq!(entries[error.position - 1], error.entry.as_str());
        }
    }

    #[test]
    fn a_parsed_range_contains_its_own_network_address(v4 in any::<u32>(), prefix in 0u8..=32) {
        let network = Ipv4Addr::from(v4 & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0));
        let allowed = AllowedNetworks::parse(&format!("{network}/{prefix}")).unwrap();
        prop_assert!(allowed.contains(IpAddr::V4(network)));
        prop_assert!(allowed.contains(IpAddr::V4(Ipv4Addr::from(v4))));
    }

    #[test]
    fn mapped_addresses_are_judged_like_their_ipv4(v4 in any::<u32>()) {
        let v4 = Ipv4Addr::from(v4);
        prop_assert_eq!(classify(IpAddr::V6(v4.to_ipv6_mapped())), classify(IpAddr::V4(v4)));
    }
}
