//! MapRequest, MapResponse, PeerChange, PingRequest, Debug, ClientVersion and the other
//! MapResponse parts.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use hs_types::tailcfg::{
    ClientVersion, ControlDialPlan, Debug, DisplayMessage, DisplayMessageAction, FilterRule,
    MapRequest, MapResponse, Node, OptBool, PeerChange, PingRequest, PingResponse, TKAInfo,
    endpoint_type, gojson,
};
use hs_types::{DiscoPublic, NodeId, NodePublic};
use serde_json::json;

use super::{assert_lossless, parse, to_json};

fn key_hex(b: u8) -> String {
    format!("{b:02x}").repeat(32)
}

/// The streaming poll a current tailscaled sends.
fn streaming_request() -> String {
    format!(
        concat!(
            r#"{{"Version":145,"Compress":"zstd","KeepAlive":true,"NodeKey":"nodekey:{n}","#,
            r#""DiscoKey":"discokey:{d}","Stream":true,"Hostinfo":{{"OS":"linux","Hostname":"a\u0026b","#,
            r#""RoutableIPs":["192.168.0.0/24"],"NetInfo":{{"PreferredDERP":999}}}},"#,
            r#""Endpoints":["192.0.2.1:41641","[2001:db8::1]:41641"],"EndpointTypes":[2,1],"#,
            r#""DebugFlags":["warn-ip-forwarding-off"]}}"#
        ),
        n = key_hex(5),
        d = key_hex(6)
    )
}

#[test]
fn streaming_request_parses() {
    let json = streaming_request();
    let r: MapRequest = parse(&json);
    assert_eq!(r.version.0, 145);
    assert_eq!(r.compress, "zstd");
    assert!(r.keep_alive && r.stream && !r.omit_peers);
    assert!(!r.is_lite_update());
    assert_eq!(r.node_key, NodePublic::from_bytes([5; 32]));
    assert_eq!(r.disco_key, DiscoPublic::from_bytes([6; 32]));
    let hi = r.hostinfo.as_ref().unwrap();
    assert_eq!(hi.hostname, "a&b");
    assert_eq!(hi.net_info.as_ref().unwrap().preferred_derp, 999);
    assert_eq!(r.endpoints[1].to_string(), "[2001:db8::1]:41641");
    assert_eq!(
        r.endpoint_types,
        [endpoint_type::STUN, endpoint_type::LOCAL]
    );
    assert_eq!(to_json(&r), json.replace(r"\u0026", "&"));
    assert_eq!(
        String::from_utf8(gojson::to_vec(&r).unwrap()).unwrap(),
        json
    );
    assert_lossless::<MapRequest>(&json);
}

#[test]
fn lite_update_without_endpoints_and_with_unknown_fields() {
    // A fresh client has no endpoints yet: Go omits the field entirely.
    let json = format!(
        r#"{{"Version":113,"NodeKey":"nodekey:{}","DiscoKey":"discokey:{}","OmitPeers":true,"Hostinfo":{{"OS":"windows"}},"SomethingNew":[1],"MapSessionHandle":"h","MapSessionSeq":4,"TKAHead":"t","ReadOnly":false,"ConnectionHandleForTest":"c","HardwareAttestationKey":"hwattestpub:ab","HardwareAttestationKeySignature":"AQ==","HardwareAttestationKeySignatureTimestamp":"2026-01-01T00:00:00Z"}}"#,
        key_hex(1),
        key_hex(2)
    );
    let r: MapRequest = parse(&json);
    assert!(r.is_lite_update());
    assert!(r.endpoints.is_empty() && r.endpoint_types.is_empty());
    assert_eq!(r.map_session_seq, 4);
    assert_eq!(r.hardware_attestation_key_signature, [1]);
    assert!(r.hardware_attestation_key_signature_timestamp.is_some());
    let out = to_json(&r);
    assert!(
        !out.contains("Endpoints") && !out.contains("SomethingNew") && !out.contains("ReadOnly")
    );
    assert_eq!(parse::<MapRequest>(&out), r);
}

#[test]
fn keep_alive_is_exactly_go_bytes() {
    assert_eq!(to_json(&MapResponse::keep_alive()), r#"{"KeepAlive":true}"#);
    assert_eq!(to_json(&MapResponse::default()), "{}");
}

#[test]
fn packet_filter_nil_versus_empty() {
    let unchanged = MapResponse::default();
    assert!(!to_json(&unchanged).contains("PacketFilter"));
    let deny_all = MapResponse {
        packet_filter: Some(vec![]),
        ..Default::default()
    };
    assert_eq!(to_json(&deny_all), r#"{"PacketFilter":[]}"#);
    assert_eq!(
        parse::<MapResponse>(r#"{"PacketFilter":[]}"#).packet_filter,
        Some(vec![])
    );
    assert_eq!(
        parse::<MapResponse>(r#"{"PacketFilter":null}"#).packet_filter,
        None
    );

    let filters = MapResponse {
        packet_filters: Some(BTreeMap::from([
            ("*".to_owned(), None),
            ("base".to_owned(), Some(vec![FilterRule::allow_all()])),
            ("old".to_owned(), None),
        ])),
        ..Default::default()
    };
    let json = r#"{"PacketFilters":{"*":null,"base":[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}],"old":null}}"#;
    assert_eq!(to_json(&filters), json);
    assert_eq!(assert_lossless::<MapResponse>(json), filters);
}

#[test]
fn peers_health_and_change_maps() {
    let r = MapResponse {
        peers: Some(vec![]),
        peers_removed: vec![NodeId(4), NodeId(7)],
        online_change: BTreeMap::from([(NodeId(5), true), (NodeId(12), false)]),
        peer_seen_change: BTreeMap::from([(NodeId(5), true)]),
        health: Some(vec![]),
        ..Default::default()
    };
    let json = r#"{"Peers":[],"PeersRemoved":[4,7],"PeerSeenChange":{"5":true},"OnlineChange":{"12":false,"5":true},"Health":[]}"#;
    // Map keys are ordered numerically in Rust and written as decimal strings.
    let out = to_json(&r);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::from_str::<serde_json::Value>(json).unwrap()
    );
    assert!(
        out.contains(r#""OnlineChange":{"5":true,"12":false}"#),
        "{out}"
    );
    let back: MapResponse = parse(json);
    assert_eq!(back, r);
    assert_eq!(parse::<MapResponse>(r#"{"Health":null}"#).health, None);
    let err = serde_json::from_str::<MapResponse>(r#"{"OnlineChange":{"x":true}}"#).unwrap_err();
    assert!(
        err.to_string().contains("expected key to be a number"),
        "{err}"
    );
}

#[test]
fn full_first_message_shape() {
    let t = Utc.with_ymd_and_hms(2026, 11, 21, 20, 0, 0).unwrap();
    let r = MapResponse {
        node: Some(Node {
            id: NodeId(1),
            machine_authorized: true,
            ..Default::default()
        }),
        peers: Some(vec![Node {
            id: NodeId(2),
            ..Default::default()
        }]),
        domain: "tailnet.example.com".into(),
        collect_services: OptBool::False,
        packet_filter: Some(vec![FilterRule::allow_all()]),
        control_time: Some(t),
        debug: Some(Debug {
            disable_log_tail: true,
            ..Default::default()
        }),
        client_version: Some(ClientVersion {
            running_latest: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    let out = to_json(&r);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Node"]["MachineAuthorized"], json!(true));
    assert_eq!(v["Peers"][0]["ID"], json!(2));
    assert_eq!(v["CollectServices"], json!(false));
    assert_eq!(v["ControlTime"], json!("2026-11-21T20:00:00Z"));
    assert_eq!(v["Debug"], json!({"DisableLogTail": true}));
    assert_eq!(v["ClientVersion"], json!({"RunningLatest": true}));
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "ClientVersion",
        "CollectServices",
        "ControlTime",
        "Debug",
        "Domain",
        "Node",
        "PacketFilter",
        "Peers",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected, "nothing else is written");
    assert_eq!(assert_lossless::<MapResponse>(&out), r);
}

#[test]
fn rarely_used_response_fields_round_trip() {
    let json = r#"{"MapSessionHandle":"s1","Seq":3,"PingRequest":{"URL":"https://hs/ping?id=1","URLIsNoise":true,"Log":true,"Types":"c2n","IP":"100.64.0.2","Payload":"R0VUIC8gSFRUUC8xLjENCg0K"},"PopBrowserURL":"https://hs/a","DisplayMessages":{"*":null,"m1":{"Title":"T","Text":"X","Severity":"high","ImpactsConnectivity":true,"PrimaryAction":{"URL":"https://u","Label":"L"}}},"TKAInfo":{"Head":"h","Disabled":true},"DomainDataPlaneAuditLogID":"d","ControlDialPlan":{"Candidates":[{"IP":"192.0.2.9","ACEHost":"ace","DialStartDelaySec":0.5,"DialTimeoutSec":3,"Priority":2}]},"DefaultAutoUpdate":null}"#;
    let r: MapResponse = assert_lossless(json);
    let p = r.ping_request.as_ref().unwrap();
    assert_eq!(p.payload, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(p.ip, Some("100.64.0.2".parse().unwrap()));
    assert_eq!(r.display_messages["*"], None);
    assert_eq!(
        r.display_messages["m1"].as_ref().unwrap().primary_action,
        Some(DisplayMessageAction {
            url: "https://u".into(),
            label: "L".into()
        })
    );
    assert_eq!(
        r.tka_info,
        Some(TKAInfo {
            head: "h".into(),
            disabled: true
        })
    );
    let plan: &ControlDialPlan = r.control_dial_plan.as_ref().unwrap();
    assert_eq!(plan.candidates[0].dial_start_delay_sec, 0.5);
    assert_eq!(r.deprecated_default_auto_update, OptBool::ExplicitlyUnset);
    assert_eq!(
        to_json(&DisplayMessage::default()),
        r#"{"Title":"","Text":"","Severity":""}"#
    );
}

#[test]
fn small_parts_serialize_exactly() {
    assert_eq!(
        to_json(&PingRequest {
            url: "https://x".into(),
            ..Default::default()
        }),
        r#"{"URL":"https://x"}"#
    );
    assert_eq!(
        to_json(&Debug {
            sleep_seconds: 1.5,
            exit: Some(0),
            ..Default::default()
        }),
        r#"{"SleepSeconds":1.5,"Exit":0}"#
    );
    assert_eq!(to_json(&ClientVersion::default()), "{}");
    let cv: ClientVersion = assert_lossless(
        r#"{"LatestVersion":"1.90.0","UrgentSecurityUpdate":true,"Notify":true,"NotifyURL":"https://u","NotifyText":"update"}"#,
    );
    assert!(!cv.running_latest && cv.notify);
    assert_eq!(to_json(&ControlDialPlan::default()), r#"{"Candidates":[]}"#);
}

#[test]
fn peer_change_patch() {
    let none = PeerChange {
        node_id: NodeId(3),
        ..Default::default()
    };
    assert_eq!(to_json(&none), r#"{"NodeID":3}"#);
    let gone = PeerChange {
        node_id: NodeId(3),
        online: Some(false),
        key_expiry: Some(hs_types::tailcfg::gotime::zero_time()),
        ..Default::default()
    };
    assert_eq!(
        to_json(&gone),
        r#"{"NodeID":3,"Online":false,"KeyExpiry":"0001-01-01T00:00:00Z"}"#
    );
    let json = format!(
        r#"{{"NodeID":8,"DERPRegion":2,"Cap":131,"CapMap":{{"x":[1]}},"Endpoints":["198.51.100.1:1234"],"Key":"nodekey:{}","KeySignature":"AA==","DiscoKey":"discokey:{}","Online":true,"LastSeen":"2026-01-01T00:00:00Z","KeyExpiry":"2027-01-01T00:00:00Z"}}"#,
        key_hex(8),
        key_hex(9)
    );
    let p: PeerChange = assert_lossless(&json);
    assert_eq!(p.derp_region, 2);
    assert_eq!(p.key, Some(NodePublic::from_bytes([8; 32])));
    assert_eq!(p.disco_key, Some(DiscoPublic::from_bytes([9; 32])));
    assert_eq!(p.cap_map["x"], vec![json!(1)]);
    let r = MapResponse {
        peers_changed_patch: vec![p.clone()],
        ..Default::default()
    };
    assert_eq!(parse::<MapResponse>(&to_json(&r)).peers_changed_patch, [p]);
}

#[test]
fn ping_response_from_client() {
    let json = r#"{"Type":"disco","IP":"100.64.0.2","NodeIP":"100.64.0.2","NodeName":"peer","LatencySeconds":0.0123,"Endpoint":"192.0.2.7:41641","DERPRegionID":999,"DERPRegionCode":"headscale","PeerAPIPort":63098,"IsLocalIP":true,"Err":"x","PeerRelay":"192.0.2.8:7:vni:3"}"#;
    let p: PingResponse = assert_lossless(json);
    assert_eq!(p.r#type, "disco");
    assert_eq!(p.latency_seconds, 0.0123);
    assert_eq!(p.derp_region_id, 999);
    assert_eq!(p.peer_api_port, 63098);
    assert_eq!(
        to_json(&PingResponse {
            r#type: "TSMP".into(),
            ..Default::default()
        }),
        r#"{"Type":"TSMP"}"#
    );
}
