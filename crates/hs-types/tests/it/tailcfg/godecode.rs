//! `tailcfg::godecode::from_slice`: client bodies with keys spelled as Tailscale's Rust client
//! (or any other case) reach the same fields Go's decoder would fill.

use hs_types::tailcfg::godecode::from_slice;
use hs_types::tailcfg::{Hostinfo, MapRequest, RegisterRequest};
use serde::Deserialize;

const NK: &str = "nodekey:1111111111111111111111111111111111111111111111111111111111111111";
const DK: &str = "discokey:2222222222222222222222222222222222222222222222222222222222222222";

/// A map request as tailscale/ts_control 0.6.1 writes it (PascalCase of its snake_case
/// fields), from a router announcing a subnet.
fn rust_client_map_request() -> String {
    format!(
        concat!(
            r#"{{"Version":130,"KeepAlive":true,"NodeKey":"{}","DiscoKey":"{}","Stream":true,"#,
            r#""HostInfo":{{"Hostname":"rs-router","App":"tailscale-rs","IpnVersion":"0.6.1","#,
            r#""Os":"linux","RoutableIps":["10.77.0.0/24","0.0.0.0/0"],"FrontendLogId":"f","#,
            r#""WolMacs":["aa:bb:cc:dd:ee:ff"],"SshHostKeys":["ssh-ed25519 AAAA"],"ExitNodeId":"n1","#,
            r#""NetInfo":{{"PreferredDerp":7,"DerpLatency":{{"7-v4":0.0125,"9-V6":0.5}},"LinkType":"wired"}},"#,
            r#""SomethingNew":{{"Inner":1}}}},"#,
            r#""Endpoints":["192.0.2.1:41641"],"EndpointTypes":[1]}}"#
        ),
        NK, DK
    )
}

#[test]
fn rust_client_spelling_reaches_every_field() {
    let req: MapRequest = from_slice(rust_client_map_request().as_bytes()).unwrap();
    assert_eq!(req.node_key.to_string(), NK);
    assert!(req.stream && req.keep_alive);
    let h = req.hostinfo.expect("HostInfo read as Hostinfo");
    assert_eq!(h.hostname, "rs-router");
    assert_eq!(h.os, "linux");
    assert_eq!(h.ipn_version, "0.6.1");
    assert_eq!(h.frontend_log_id, "f");
    assert_eq!(h.exit_node_id, "n1");
    assert_eq!(h.wol_macs, ["aa:bb:cc:dd:ee:ff"]);
    assert_eq!(h.ssh_host_keys, ["ssh-ed25519 AAAA"]);
    assert_eq!(
        h.routable_ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["10.77.0.0/24", "0.0.0.0/0"]
    );
    let ni = h.net_info.expect("NetInfo");
    assert_eq!(ni.preferred_derp, 7);
    assert_eq!(ni.link_type, "wired");
    // Map keys are data, not field names: kept exactly as sent.
    assert_eq!(ni.derp_latency.keys().collect::<Vec<_>>(), ["7-v4", "9-V6"]);
    assert!(ni.extra.is_empty(), "{:?}", ni.extra);
    // Only the key no field claims is left over, under its own spelling.
    assert_eq!(
        h.extra.keys().collect::<Vec<_>>(),
        ["SomethingNew"],
        "{:?}",
        h.extra
    );
    assert_eq!(req.endpoints.len(), 1);

    // And it is written back in Go's spelling.
    let out = serde_json::to_string(&Hostinfo {
        os: "linux".into(),
        ..Hostinfo::default()
    })
    .unwrap();
    assert_eq!(out, r#"{"OS":"linux"}"#);
}

#[test]
fn plain_serde_still_misses_them() {
    // Guards the test above: without the Go rules these keys are lost.
    let req: MapRequest = serde_json::from_str(&rust_client_map_request()).unwrap();
    assert!(req.hostinfo.is_none());
}

#[test]
fn go_spelling_and_any_case_decode_alike() {
    let go: Hostinfo =
        from_slice(br#"{"OS":"linux","IPNVersion":"1.2","NetInfo":{"PreferredDERP":3}}"#).unwrap();
    let odd: Hostinfo =
        from_slice(br#"{"os":"linux","ipnversion":"1.2","NETINFO":{"preferredderp":3}}"#).unwrap();
    assert_eq!(go, odd);
    assert_eq!(go.os, "linux");
    assert_eq!(go.net_info.unwrap().preferred_derp, 3);
}

#[test]
fn register_request_in_rust_spelling() {
    let body = format!(
        r#"{{"Version":130,"NodeKey":"{NK}","Auth":{{"AuthKey":"k-1"}},"Hostinfo":{{"Hostname":"h","App":"tailscale-rs","IpnVersion":"0.6.1","Os":"linux"}},"Ephemeral":true}}"#
    );
    let req: RegisterRequest = from_slice(body.as_bytes()).unwrap();
    assert_eq!(req.auth.unwrap().auth_key, "k-1");
    assert!(req.ephemeral);
    let h = req.hostinfo.unwrap();
    assert_eq!((h.os.as_str(), h.ipn_version.as_str()), ("linux", "0.6.1"));
}

#[test]
fn last_key_for_a_field_wins_as_in_go() {
    // Go decodes every key into the field it names, in order, so the last one stays;
    // plain serde rejected such an object as a duplicate field.
    let a: Hostinfo = from_slice(br#"{"OS":"exact","Os":"folded"}"#).unwrap();
    assert_eq!(a.os, "folded");
    let b: Hostinfo = from_slice(br#"{"Os":"folded","OS":"exact"}"#).unwrap();
    assert_eq!(b.os, "exact");
    let c: MapRequest = from_slice(br#"{"Hostinfo":{"OS":"a"},"HostInfo":{"OS":"b"}}"#).unwrap();
    assert_eq!(c.hostinfo.unwrap().os, "b");
}

/// Two fields differing only by case, as Go allows.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct TwoCases {
    #[serde(rename = "Name")]
    upper: String,
    #[serde(rename = "name")]
    lower: String,
    #[serde(rename = "Inner")]
    inner: Option<Box<TwoCases>>,
    #[serde(rename = "List")]
    list: Vec<TwoCases>,
}

#[test]
fn exact_match_wins_then_first_declared_field() {
    let v: TwoCases = from_slice(br#"{"name":"l","Name":"u"}"#).unwrap();
    assert_eq!((v.upper.as_str(), v.lower.as_str()), ("u", "l"));
    // No exact match: Go picks the first field in declaration order.
    let v: TwoCases = from_slice(br#"{"NAME":"x"}"#).unwrap();
    assert_eq!((v.upper.as_str(), v.lower.as_str()), ("x", ""));
    // Nested in options and sequences too.
    let v: TwoCases =
        from_slice(br#"{"inner":{"nAmE":"i"},"LIST":[{"name":"a"},{"NAME":"b"}]}"#).unwrap();
    assert_eq!(v.inner.unwrap().upper, "i");
    assert_eq!(v.list[0].lower, "a");
    assert_eq!(v.list[1].upper, "b");
}

#[test]
fn unicode_folding_like_go() {
    // U+212A KELVIN SIGN folds to 'k' in Go's EqualFold.
    let req: MapRequest = from_slice("{\"\u{212A}eepAlive\":true}".as_bytes()).unwrap();
    assert!(req.keep_alive);
}

#[test]
fn errors_name_the_field_at_fault() {
    let e = from_slice::<MapRequest>(br#"{"HostInfo":{"NetInfo":{"PreferredDerp":"seven"}}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("Hostinfo.NetInfo.PreferredDERP: invalid type: string \"seven\""),
        "{e}"
    );
    assert!(e.contains("line 1 column"), "{e}");

    let e = from_slice::<MapRequest>(br#"{"Version":130,"NodeKey":"nodekey:zz"}"#)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("NodeKey: "), "{e}");

    let e = from_slice::<MapRequest>(br#"{"Version":130,"Stream":"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("EOF while parsing"), "{e}");

    let e = from_slice::<MapRequest>(br#"{"Version":130} x"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("trailing characters"), "{e}");

    let e = from_slice::<MapRequest>(b"[1,2]").unwrap_err().to_string();
    assert!(e.contains("invalid"), "{e}");
}
