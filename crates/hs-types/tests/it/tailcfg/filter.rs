//! FilterRule, NetPortRange, PortRange, CapGrant.

use hs_types::tailcfg::{CapGrant, FilterRule, NetPortRange, PortRange, ipproto};
use serde_json::json;

use super::{assert_lossless, parse, to_json};

#[test]
fn allow_all_matches_go_filter_allow_all() {
    assert_eq!(
        to_json(&FilterRule::allow_all()),
        r#"{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}"#
    );
}

#[test]
fn port_rule_with_protocols() {
    let json = r#"{"SrcIPs":["100.64.0.2","fd7a:115c:a1e0::2"],"DstPorts":[{"IP":"100.64.0.1/32","Ports":{"First":22,"Last":22}},{"IP":"10.0.0.0-10.0.0.9","Ports":{"First":80,"Last":443}}],"IPProto":[6,17]}"#;
    let r: FilterRule = assert_lossless(json);
    assert_eq!(r.src_ips, ["100.64.0.2", "fd7a:115c:a1e0::2"]);
    assert_eq!(
        r.dst_ports[0],
        NetPortRange {
            ip: "100.64.0.1/32".into(),
            bits: None,
            ports: PortRange::single(22)
        }
    );
    assert_eq!(
        r.dst_ports[1].ports,
        PortRange {
            first: 80,
            last: 443
        }
    );
    assert_eq!(r.ip_proto, [ipproto::TCP, ipproto::UDP]);
    assert!(r.cap_grant.is_empty());
    assert_eq!(to_json(&r), json);
}

#[test]
fn cap_grant_rule() {
    let json = r#"{"SrcIPs":["*"],"CapGrant":[{"Dsts":["0.0.0.0/0","::/0"],"CapMap":{"tailscale.com/cap/relay":[]}},{"Dsts":["100.64.0.5/32"],"CapMap":{"example.com/cap/app":[{"x":1},"y"]}}]}"#;
    let r: FilterRule = assert_lossless(json);
    assert!(r.dst_ports.is_empty());
    assert_eq!(r.cap_grant.len(), 2);
    let g = &r.cap_grant[0];
    assert_eq!(
        g.dsts.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["0.0.0.0/0", "::/0"]
    );
    // An empty value list still grants the capability: the key must be written.
    assert_eq!(g.cap_map.get("tailscale.com/cap/relay"), Some(&vec![]));
    assert_eq!(
        r.cap_grant[1].cap_map["example.com/cap/app"],
        vec![json!({"x": 1}), json!("y")]
    );
    assert_eq!(to_json(&r), json);
}

#[test]
fn deprecated_fields_round_trip() {
    let json = r#"{"SrcIPs":["100.64.0.0"],"SrcBits":[10],"DstPorts":[{"IP":"100.64.0.1","Bits":32,"Ports":{"First":0,"Last":65535}}]}"#;
    let r: FilterRule = assert_lossless(json);
    assert_eq!(r.src_bits, [10]);
    assert_eq!(r.dst_ports[0].bits, Some(32));
    let g: CapGrant = assert_lossless(
        r#"{"Dsts":["100.64.0.1/32"],"Caps":["https://tailscale.com/cap/file-send"]}"#,
    );
    assert_eq!(g.caps, ["https://tailscale.com/cap/file-send"]);
}

#[test]
fn empty_rule_writes_src_ips_and_nothing_else() {
    assert_eq!(to_json(&FilterRule::default()), r#"{"SrcIPs":[]}"#);
    assert_eq!(to_json(&CapGrant::default()), r#"{"Dsts":[]}"#);
}

#[test]
fn go_nulls_and_unknown_fields_are_accepted() {
    // What Go writes for a zero FilterRule, plus a field from a future version.
    let r: FilterRule = parse(r#"{"SrcIPs":null,"DstPorts":null,"IPProto":null,"Future":1}"#);
    assert_eq!(r, FilterRule::default());
    // A rule with only sources (which tailscale-rs rejects) is valid for Go.
    let r: FilterRule = parse(r#"{"SrcIPs":["*"]}"#);
    assert_eq!(r.src_ips, ["*"]);
}

#[test]
fn bad_input_errors() {
    let err =
        serde_json::from_str::<FilterRule>(r#"{"DstPorts":[{"IP":"*","Ports":{"First":-1}}]}"#)
            .unwrap_err();
    assert!(err.to_string().contains("-1"), "{err}");
    let err = serde_json::from_str::<CapGrant>(r#"{"Dsts":["not-a-prefix"]}"#).unwrap_err();
    assert!(err.to_string().contains("invalid IP"), "{err}");
}
