//! Node, UserProfile, DNSConfig, DNSResolver, DNSRecord.

use chrono::{TimeZone, Utc};
use hs_types::tailcfg::{
    CapMap, CapabilityVersion, DNSConfig, DNSRecord, DNSResolver, Hostinfo, Node, UserProfile,
    gojson,
};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic, UserId};
use serde_json::json;

use super::{assert_lossless, parse, to_json};

fn key_hex(b: u8) -> String {
    format!("{b:02x}").repeat(32)
}

/// A self node as Headscale sends it (Go field order, Go omissions).
fn self_node() -> (Node, String) {
    let node = Node {
        id: NodeId(1),
        stable_id: "1".into(),
        name: "router.tailnet.example.com.".into(),
        user: UserId(1),
        key: NodePublic::from_bytes([1; 32]),
        key_expiry: Some(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()),
        machine: MachinePublic::from_bytes([2; 32]),
        disco_key: DiscoPublic::from_bytes([3; 32]),
        addresses: vec![
            "100.64.0.1/32".parse().expect("literal"),
            "fd7a:115c:a1e0::1/128".parse().expect("literal"),
        ],
        allowed_ips: Some(vec![
            "100.64.0.1/32".parse().expect("literal"),
            "fd7a:115c:a1e0::1/128".parse().expect("literal"),
            "10.1.0.0/16".parse().expect("literal"),
        ]),
        endpoints: vec![
            "192.0.2.1:41641".parse().expect("literal"),
            "[2001:db8::1]:41641".parse().expect("literal"),
        ],
        legacy_derp_string: "127.3.3.40:999".into(),
        home_derp: 999,
        hostinfo: Some(Hostinfo {
            hostname: "router".into(),
            os: "linux".into(),
            ..Default::default()
        }),
        created: Some(Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap()),
        cap: CapabilityVersion(130),
        tags: vec!["tag:router".into()],
        primary_routes: vec!["10.1.0.0/16".parse().expect("literal")],
        online: Some(true),
        machine_authorized: true,
        cap_map: CapMap::from([
            ("default-auto-update".to_owned(), vec![json!(false)]),
            ("https://tailscale.com/cap/is-admin".to_owned(), vec![]),
            ("https://tailscale.com/cap/ssh".to_owned(), vec![]),
        ]),
        ..Default::default()
    };
    let json = format!(
        concat!(
            r#"{{"ID":1,"StableID":"1","Name":"router.tailnet.example.com.","User":1,"#,
            r#""Key":"nodekey:{k}","KeyExpiry":"2030-01-01T00:00:00Z","Machine":"mkey:{m}","#,
            r#""DiscoKey":"discokey:{d}","Addresses":["100.64.0.1/32","fd7a:115c:a1e0::1/128"],"#,
            r#""AllowedIPs":["100.64.0.1/32","fd7a:115c:a1e0::1/128","10.1.0.0/16"],"#,
            r#""Endpoints":["192.0.2.1:41641","[2001:db8::1]:41641"],"DERP":"127.3.3.40:999","#,
            r#""HomeDERP":999,"Hostinfo":{{"OS":"linux","Hostname":"router"}},"#,
            r#""Created":"2024-05-06T07:08:09Z","Cap":130,"Tags":["tag:router"],"#,
            r#""PrimaryRoutes":["10.1.0.0/16"],"Online":true,"MachineAuthorized":true,"#,
            r#""CapMap":{{"default-auto-update":[false],"https://tailscale.com/cap/is-admin":[],"#,
            r#""https://tailscale.com/cap/ssh":[]}}}}"#
        ),
        k = key_hex(1),
        m = key_hex(2),
        d = key_hex(3),
    );
    (node, json)
}

#[test]
fn self_node_serializes_like_go() {
    let (node, json) = self_node();
    assert_eq!(to_json(&node), json);
    assert_eq!(assert_lossless::<Node>(&json), node);
}

#[test]
fn minimal_node_writes_only_go_required_fields() {
    assert_eq!(
        to_json(&Node::default()),
        format!(
            r#"{{"ID":0,"StableID":"","Name":"","User":0,"Key":"nodekey:{}","Addresses":[]}}"#,
            key_hex(0)
        )
    );
}

#[test]
fn allowed_ips_nil_versus_empty() {
    let mut n = Node::default();
    assert!(!to_json(&n).contains("AllowedIPs"));
    n.allowed_ips = Some(vec![]);
    assert!(to_json(&n).contains(r#""AllowedIPs":[]"#));
    assert_eq!(
        parse::<Node>(r#"{"AllowedIPs":[]}"#).allowed_ips,
        Some(vec![])
    );
    assert_eq!(parse::<Node>(r#"{"AllowedIPs":null}"#).allowed_ips, None);
    assert_eq!(parse::<Node>(r#"{}"#).allowed_ips, None);
}

#[test]
fn offline_peer_with_pointer_fields() {
    let json = format!(
        r#"{{"ID":9,"StableID":"9","Name":"laptop.tailnet.example.com.","User":2,"Sharer":3,"Key":"nodekey:{}","KeySignature":"AQID","Addresses":["100.64.0.9/32"],"LastSeen":"2026-03-04T05:06:07.25Z","Online":false,"Capabilities":["https://tailscale.com/cap/file-sharing"],"Expired":true,"SelfNodeV4MasqAddrForThisPeer":"100.100.0.1","SelfNodeV6MasqAddrForThisPeer":"fd7a::1","IsWireGuardOnly":true,"IsJailed":true,"ExitNodeDNSResolvers":[{{"Addr":"1.1.1.1"}}],"ComputedName":"laptop","ComputedNameWithHost":"laptop (host)","DataPlaneAuditLogID":"log1","UnsignedPeerAPIOnly":true}}"#,
        key_hex(9)
    );
    let n: Node = parse(&json);
    assert_eq!(n.sharer, UserId(3));
    assert_eq!(n.key_signature, [1, 2, 3]);
    assert_eq!(n.online, Some(false));
    assert_eq!(
        n.last_seen,
        Some(
            Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap()
                + chrono::Duration::milliseconds(250)
        )
    );
    assert!(n.expired && n.is_jailed && n.is_wireguard_only && n.unsigned_peer_api_only);
    assert_eq!(
        n.self_node_v4_masq_addr_for_this_peer,
        Some("100.100.0.1".parse().unwrap())
    );
    assert_eq!(n.exit_node_dns_resolvers, [DNSResolver::new("1.1.1.1")]);
    assert!(n.machine.is_zero() && n.disco_key.is_zero());
    assert!(n.endpoints.is_empty(), "absent Endpoints reads as empty");
    assert_lossless::<Node>(&json);
    // Online: false must be written (a nil pointer would mean "unknown").
    assert!(to_json(&n).contains(r#""Online":false"#));
}

#[test]
fn node_cap_map_null_values_mean_present() {
    let n: Node = parse(r#"{"CapMap":{"https://tailscale.com/cap/is-admin":null}}"#);
    assert_eq!(
        n.cap_map.get("https://tailscale.com/cap/is-admin"),
        Some(&vec![])
    );
}

#[test]
fn bad_node_input_errors() {
    let err = serde_json::from_str::<Node>(r#"{"Key":"mkey:00"}"#).unwrap_err();
    assert!(err.to_string().contains("nodekey:"), "{err}");
    let err = serde_json::from_str::<Node>(r#"{"KeySignature":"!!"}"#).unwrap_err();
    assert!(err.to_string().contains("invalid base64"), "{err}");
    let err = serde_json::from_str::<Node>(r#"{"Endpoints":["1.2.3.4"]}"#).unwrap_err();
    assert!(err.to_string().contains("socket address"), "{err}");
    let err = serde_json::from_str::<Node>(r#"{"ID":-1}"#).unwrap_err();
    assert!(err.to_string().contains("-1"), "{err}");
}

#[test]
fn user_profile_shapes() {
    let p = UserProfile {
        id: UserId(1),
        login_name: "alice@example.com".into(),
        display_name: "Alice".into(),
        ..Default::default()
    };
    assert_eq!(
        to_json(&p),
        r#"{"ID":1,"LoginName":"alice@example.com","DisplayName":"Alice"}"#
    );
    let p: UserProfile = assert_lossless(
        r#"{"ID":2,"LoginName":"b","DisplayName":"B","ProfilePicURL":"https://p","Groups":["group:eng"]}"#,
    );
    assert_eq!(p.groups, ["group:eng"]);
}

#[test]
fn dns_config_like_headscale() {
    let json = r#"{"Resolvers":[{"Addr":"1.1.1.1"},{"Addr":"https://dns.example/dns-query","BootstrapResolution":["192.0.2.53"]}],"Routes":{"corp.example.":[{"Addr":"10.0.0.53","UseWithExitNode":true}],"ts.example.com.":[]},"FallbackResolvers":[{"Addr":"9.9.9.9:53"}],"Domains":["tailnet.example.com","search.example"],"Proxied":true,"Nameservers":["8.8.8.8"],"CertDomains":["router.tailnet.example.com"],"ExtraRecords":[{"Name":"grafana.tailnet.example.com","Value":"100.64.0.5"},{"Name":"txt.example","Type":"TXT","Value":"a\u0026b"}],"ExitNodeFilteredSet":[".local"],"TempCorpIssue13969":"x"}"#;
    let d: DNSConfig = assert_lossless(json);
    assert_eq!(
        d.resolvers[1].bootstrap_resolution,
        ["192.0.2.53".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(d.routes["corp.example."][0].use_with_exit_node);
    assert_eq!(d.routes["ts.example.com."], []);
    assert!(d.proxied);
    assert_eq!(
        d.extra_records[1],
        DNSRecord {
            name: "txt.example".into(),
            r#type: "TXT".into(),
            value: "a&b".into()
        }
    );
    assert_eq!(to_json(&d), json.replace(r"\u0026", "&"));
    assert_eq!(gojson::to_vec(&d).unwrap(), json.as_bytes());
    assert_eq!(to_json(&DNSConfig::default()), "{}");
    assert_eq!(to_json(&DNSResolver::default()), "{}");
    // Go writes a nil route list as null: still "answered by 100.100.100.100".
    let d: DNSConfig = parse(r#"{"Routes":{"x.":null}}"#);
    assert_eq!(d.routes["x."], []);
}
