//! Hostinfo, NetInfo, Service, Location, TPMInfo, OptBool and the Go time helper.

use chrono::{DateTime, TimeZone, Utc};
use hs_types::tailcfg::{Hostinfo, Location, NetInfo, OptBool, Service, gotime};
use serde::{Deserialize, Serialize};

use super::{assert_lossless, parse, to_json};

/// Hostinfo in the shape tailscaled on Linux sends it, as Go's encoding/json writes it
/// (`&` escaped as `\u0026`), with a NetInfo field older clients still send (`HairPinning`)
/// and a top-level field newer than this server (`FutureThing`).
const LINUX_HOSTINFO: &str = r#"{"IPNVersion":"1.80.3-t8f2a1b0c4-g5e1d2f3a4","BackendLogID":"8b1c6a0d3e","OS":"linux","OSVersion":"6.1.0-28-amd64","Desktop":false,"Package":"tgz","Hostname":"db\u0026cache \u003cprod\u003e","Machine":"x86_64","GoArch":"amd64","GoArchVar":"v1","GoVersion":"go1.23.5","RoutableIPs":["10.0.0.0/24","192.168.1.0/24","0.0.0.0/0","::/0"],"RequestTags":["tag:server"],"Services":[{"Proto":"peerapi4","Port":63098},{"Proto":"peerapi6","Port":63098},{"Proto":"peerapi-dns-proxy","Port":1},{"Proto":"tcp","Port":22,"Description":"sshd"}],"NetInfo":{"MappingVariesByDestIP":false,"HairPinning":null,"WorkingIPv6":false,"OSHasIPv6":true,"WorkingUDP":true,"WorkingICMPv4":true,"UPnP":false,"PMP":false,"PCP":false,"PreferredDERP":999,"LinkType":"wired","DERPLatency":{"1-v4":0.0213,"999-v4":0.000731},"FirewallMode":"ipt-default"},"sshHostKeys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH"],"Userspace":false,"UserspaceRouter":false,"FutureThing":{"a":[1,2]}}"#;

#[test]
fn linux_client_hostinfo_parses() {
    let h: Hostinfo = parse(LINUX_HOSTINFO);
    assert_eq!(h.os, "linux");
    assert_eq!(h.ipn_version, "1.80.3-t8f2a1b0c4-g5e1d2f3a4");
    assert_eq!(h.hostname, "db&cache <prod>");
    assert_eq!(h.desktop, OptBool::False);
    assert_eq!(h.container, OptBool::Empty);
    assert_eq!(
        h.routable_ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["10.0.0.0/24", "192.168.1.0/24", "0.0.0.0/0", "::/0"]
    );
    assert_eq!(h.request_tags, ["tag:server"]);
    assert_eq!(h.services.len(), 4);
    assert_eq!(
        h.services[3],
        Service {
            proto: "tcp".into(),
            port: 22,
            description: "sshd".into()
        }
    );
    assert_eq!(h.services[0].description, "");
    let ni = h.net_info.as_ref().expect("NetInfo");
    assert_eq!(ni.preferred_derp, 999);
    assert_eq!(ni.os_has_ipv6, OptBool::True);
    assert_eq!(ni.working_ipv6, OptBool::False);
    assert_eq!(ni.derp_latency.get("999-v4"), Some(&0.000731));
    assert_eq!(ni.firewall_mode, "ipt-default");
    assert_eq!(ni.extra.get("HairPinning"), Some(&serde_json::Value::Null));
    assert_eq!(h.ssh_host_keys.len(), 1);
    assert_eq!(
        h.extra.get("FutureThing"),
        Some(&serde_json::json!({"a": [1, 2]}))
    );
}

#[test]
fn linux_client_hostinfo_round_trips_losslessly() {
    let h: Hostinfo = assert_lossless(LINUX_HOSTINFO);
    // Unknown fields survive a second hop too (what a peer receives in Node.Hostinfo).
    let out = to_json(&h);
    assert!(out.contains(r#""FutureThing":{"a":[1,2]}"#), "{out}");
    assert!(out.contains(r#""HairPinning":null"#), "{out}");
}

#[test]
fn default_hostinfo_is_empty_object() {
    assert_eq!(to_json(&Hostinfo::default()), "{}");
    assert_eq!(to_json(&NetInfo::default()), "{}");
    assert_eq!(to_json(&Location::default()), "{}");
}

#[test]
fn serializes_go_names_and_omissions_exactly() {
    let h = Hostinfo {
        ipn_version: "1.82.0".into(),
        os: "windows".into(),
        hostname: "pc".into(),
        container: OptBool::ExplicitlyUnset,
        shields_up: true,
        routable_ips: vec!["fd00::/64".parse().unwrap()],
        wol_macs: vec!["aa:bb:cc:dd:ee:ff".into()],
        services: vec![Service {
            proto: "udp".into(),
            port: 0,
            description: String::new(),
        }],
        net_info: Some(NetInfo {
            preferred_derp: 2,
            have_port_map: true,
            ..Default::default()
        }),
        ssh_host_keys: vec!["k".into()],
        exit_node_id: "nEXIT".into(),
        location: Some(Location {
            city_code: "YSE".into(),
            priority: 5,
            ..Default::default()
        }),
        state_encrypted: OptBool::True,
        ..Default::default()
    };
    assert_eq!(
        to_json(&h),
        concat!(
            r#"{"IPNVersion":"1.82.0","OS":"windows","Container":null,"Hostname":"pc","ShieldsUp":true,"#,
            r#""RoutableIPs":["fd00::/64"],"WoLMACs":["aa:bb:cc:dd:ee:ff"],"#,
            r#""Services":[{"Proto":"udp","Port":0}],"NetInfo":{"HavePortMap":true,"PreferredDERP":2},"#,
            r#""sshHostKeys":["k"],"ExitNodeID":"nEXIT","Location":{"CityCode":"YSE","Priority":5},"#,
            r#""StateEncrypted":true}"#
        )
    );
}

#[test]
fn null_slices_and_absent_fields_are_lenient() {
    let h: Hostinfo = parse(r#"{"RoutableIPs":null,"Services":null,"NetInfo":null,"OS":"linux"}"#);
    assert!(h.routable_ips.is_empty());
    assert!(h.services.is_empty());
    assert!(h.net_info.is_none());
    assert_eq!(to_json(&h), r#"{"OS":"linux"}"#);
}

#[test]
fn bad_input_is_an_error_naming_the_problem() {
    let err = serde_json::from_str::<Hostinfo>(r#"{"RoutableIPs":["10.0.0.0/33"]}"#).unwrap_err();
    assert!(err.to_string().contains("invalid IP"), "{err}");
    let err = serde_json::from_str::<Hostinfo>(r#"{"Desktop":"true"}"#).unwrap_err();
    assert!(err.to_string().contains("boolean"), "{err}");
    let err = serde_json::from_str::<Service>(r#"{"Proto":"tcp","Port":70000}"#).unwrap_err();
    assert!(err.to_string().contains("70000"), "{err}");
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Times {
    #[serde(with = "gotime")]
    plain: DateTime<Utc>,
    #[serde(
        with = "gotime::zero_is_none",
        skip_serializing_if = "Option::is_none",
        default
    )]
    omitzero: Option<DateTime<Utc>>,
    #[serde(with = "gotime::zero_is_none", default)]
    zero_written: Option<DateTime<Utc>>,
    #[serde(with = "gotime::ptr", skip_serializing_if = "Option::is_none", default)]
    pointer: Option<DateTime<Utc>>,
}

#[test]
fn go_time_shapes() {
    let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap()
        + chrono::Duration::nanoseconds(120_000_000);
    let v = Times {
        plain: t,
        omitzero: None,
        zero_written: None,
        pointer: Some(gotime::zero_time()),
    };
    let json = to_json(&v);
    assert_eq!(
        json,
        r#"{"plain":"2024-01-02T03:04:05.12Z","zero_written":"0001-01-01T00:00:00Z","pointer":"0001-01-01T00:00:00Z"}"#
    );
    assert_eq!(parse::<Times>(&json), v);

    let v: Times = parse(
        r#"{"plain":"0001-01-01T00:00:00Z","omitzero":"2030-05-06T07:08:09Z","zero_written":null,"pointer":null}"#,
    );
    assert!(gotime::is_zero_time(&v.plain));
    assert_eq!(
        v.omitzero,
        Some(Utc.with_ymd_and_hms(2030, 5, 6, 7, 8, 9).unwrap())
    );
    assert_eq!(v.zero_written, None);
    assert_eq!(v.pointer, None);

    let err = serde_json::from_str::<Times>(r#"{"plain":"soon"}"#).unwrap_err();
    assert!(err.to_string().contains("invalid time \"soon\""), "{err}");
}
