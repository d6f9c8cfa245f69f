//! Property tests: any value we can build survives serialize → deserialize unchanged, and the
//! Go time formatter agrees with the parser for any instant.

use chrono::{DateTime, Utc};
use hs_types::tailcfg::{
    CapGrant, CapMap, DERPMap, DERPNode, DERPRegion, FilterRule, Hostinfo, MapResponse,
    NetPortRange, Node, OptBool, PeerChange, PortRange, SSHAction, SSHPolicy, SSHPrincipal,
    SSHRule, gotime,
};
use hs_types::{NodeId, NodePublic, UserId};
use ipnet::IpNet;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
    let json = serde_json::to_string(v).expect("serialize");
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(&back, v, "{json}");
}

/// Instants between year 1 and 9999 with nanosecond precision (Go's JSON time range).
fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (-62_135_596_800i64..253_402_300_799, 0u32..1_000_000_000)
        .prop_map(|(s, ns)| DateTime::from_timestamp(s, ns).expect("in range"))
}

/// `ip:port` as Go's netip.AddrPort has it: no IPv6 flow info or numeric scope.
fn addr_port() -> impl Strategy<Value = std::net::SocketAddr> {
    (any::<std::net::IpAddr>(), any::<u16>())
        .prop_map(|(ip, port)| std::net::SocketAddr::new(ip, port))
}

fn prefix() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, l)| IpNet::new(a.into(), l).expect("len")),
        (any::<[u8; 16]>(), 0u8..=128).prop_map(|(a, l)| IpNet::new(a.into(), l).expect("len")),
    ]
}

/// Strings including the characters Go escapes and non-ASCII text.
fn text() -> impl Strategy<Value = String> {
    "[a-z0-9&<>\"\\\\ é\u{2028}:*/.-]{0,12}"
}

fn opt_bool() -> impl Strategy<Value = OptBool> {
    prop_oneof![
        Just(OptBool::Empty),
        Just(OptBool::ExplicitlyUnset),
        Just(OptBool::True),
        Just(OptBool::False)
    ]
}

fn cap_map() -> impl Strategy<Value = CapMap> {
    btree_map(
        text(),
        vec(
            prop_oneof![
                Just(json!(null)),
                Just(json!({"a": [1, "b"]})),
                any::<i64>().prop_map(|n| json!(n))
            ],
            0..3,
        ),
        0..3,
    )
    .prop_map(CapMap::from)
}

fn filter_rule() -> impl Strategy<Value = FilterRule> {
    let port_range =
        (any::<u16>(), any::<u16>()).prop_map(|(first, last)| PortRange { first, last });
    let dst = (text(), option::of(0i64..129), port_range)
        .prop_map(|(ip, bits, ports)| NetPortRange { ip, bits, ports });
    let grant =
        (vec(prefix(), 0..3), vec(text(), 0..2), cap_map()).prop_map(|(dsts, caps, cap_map)| {
            CapGrant {
                dsts,
                caps,
                cap_map,
            }
        });
    (
        vec(text(), 0..3),
        vec(0i64..33, 0..2),
        vec(dst, 0..3),
        vec(0i64..256, 0..3),
        vec(grant, 0..2),
    )
        .prop_map(
            |(src_ips, src_bits, dst_ports, ip_proto, cap_grant)| FilterRule {
                src_ips,
                src_bits,
                dst_ports,
                ip_proto,
                cap_grant,
            },
        )
}

fn ssh_policy() -> impl Strategy<Value = SSHPolicy> {
    let principal =
        (text(), text(), text(), any::<bool>()).prop_map(|(node, node_ip, user_login, any)| {
            SSHPrincipal {
                node,
                node_ip,
                user_login,
                any,
                ..Default::default()
            }
        });
    let action = (
        text(),
        any::<bool>(),
        any::<bool>(),
        any::<u32>(),
        text(),
        vec(addr_port(), 0..2),
    )
        .prop_map(
            |(message, reject, accept, secs, hold_and_delegate, recorders)| SSHAction {
                message,
                reject,
                accept,
                session_duration: std::time::Duration::from_nanos(u64::from(secs) * 1_000),
                hold_and_delegate,
                recorders,
                ..Default::default()
            },
        );
    let rule = (
        option::of(time()),
        vec(principal, 0..3),
        btree_map(text(), text(), 0..3),
        option::of(action),
        vec(text(), 0..2),
    )
        .prop_map(
            |(rule_expires, principals, ssh_users, action, accept_env)| SSHRule {
                rule_expires,
                principals,
                ssh_users,
                action,
                accept_env,
            },
        );
    vec(rule, 0..3).prop_map(|rules| SSHPolicy { rules })
}

fn hostinfo() -> impl Strategy<Value = Hostinfo> {
    (
        text(),
        text(),
        opt_bool(),
        vec(prefix(), 0..3),
        any::<bool>(),
        btree_map("[A-Z][a-zA-Z]{3,8}X", text(), 0..3),
    )
        .prop_map(
            |(hostname, os, desktop, routable_ips, shields_up, extra)| Hostinfo {
                hostname,
                os,
                desktop,
                routable_ips,
                shields_up,
                // Unknown fields keep their value; the trailing X keeps them from colliding with
                // modelled names.
                extra: extra.into_iter().map(|(k, v)| (k, json!(v))).collect(),
                ..Default::default()
            },
        )
}

fn node() -> impl Strategy<Value = Node> {
    (
        (
            1u64..1 << 53,
            text(),
            any::<u64>(),
            any::<[u8; 32]>(),
            option::of(time()),
        ),
        (
            vec(prefix(), 0..3),
            option::of(vec(prefix(), 0..3)),
            vec(addr_port(), 0..3),
        ),
        (
            option::of(hostinfo()),
            option::of(any::<bool>()),
            option::of(time()),
            cap_map(),
            vec(any::<u8>(), 0..8),
        ),
    )
        .prop_map(
            |(
                (id, name, user, key, key_expiry),
                (addresses, allowed_ips, endpoints),
                (hostinfo, online, last_seen, cap_map, key_signature),
            )| Node {
                id: NodeId(id),
                stable_id: id.to_string(),
                name,
                user: UserId(user),
                key: NodePublic::from_bytes(key),
                key_expiry: key_expiry.filter(|t| !gotime::is_zero_time(t)),
                addresses,
                allowed_ips,
                endpoints,
                hostinfo,
                online,
                last_seen,
                cap_map,
                key_signature,
                ..Default::default()
            },
        )
}

fn derp_map() -> impl Strategy<Value = DERPMap> {
    let node = (text(), 1i64..1000, text(), -1i64..70000, any::<bool>()).prop_map(
        |(name, region_id, host_name, stun_port, insecure_for_tests)| DERPNode {
            name,
            region_id,
            host_name,
            stun_port,
            insecure_for_tests,
            ..Default::default()
        },
    );
    let region = (1i64..1 << 53, text(), vec(node, 0..3), any::<bool>()).prop_map(
        |(region_id, region_code, nodes, no_measure_no_home)| DERPRegion {
            region_id,
            region_code,
            nodes,
            no_measure_no_home,
            ..Default::default()
        },
    );
    (
        option::of(btree_map(1i64..1 << 53, region, 0..3)),
        any::<bool>(),
    )
        .prop_map(|(regions, omit_default_regions)| DERPMap {
            regions,
            omit_default_regions,
            ..Default::default()
        })
}

proptest! {
    #[test]
    fn go_time_format_parses_back(t in time()) {
        let s = gotime::format(&t);
        prop_assert_eq!(gotime::parse(&s).expect("parse"), t);
        // Go trims trailing zeros of the fraction and never writes an empty fraction.
        if let Some((_, frac)) = s.split_once('.') {
            let digits = frac.trim_end_matches('Z');
            prop_assert!(!digits.is_empty() && !digits.ends_with('0'), "{}", s);
        }
        prop_assert!(s.ends_with('Z'));
    }

    #[test]
    fn filter_rules_round_trip(r in filter_rule()) {
        round_trip(&r);
    }

    #[test]
    fn ssh_policies_round_trip(p in ssh_policy()) {
        round_trip(&p);
    }

    #[test]
    fn hostinfo_round_trips(h in hostinfo()) {
        round_trip(&h);
    }

    #[test]
    fn nodes_round_trip(n in node()) {
        round_trip(&n);
    }

    #[test]
    fn derp_maps_round_trip(m in derp_map()) {
        round_trip(&m);
    }

    #[test]
    fn map_responses_round_trip(
        node in option::of(node()),
        peers in option::of(vec(node(), 0..3)),
        packet_filter in option::of(vec(filter_rule(), 0..3)),
        removed in vec(1u64..1 << 53, 0..3),
        online in btree_map(1u64..1 << 53, any::<bool>(), 0..3),
        health in option::of(vec(text(), 0..2)),
        control_time in option::of(time()),
    ) {
        let r = MapResponse {
            node,
            peers,
            packet_filter,
            peers_removed: removed.into_iter().map(NodeId).collect(),
            online_change: online.into_iter().map(|(k, v)| (NodeId(k), v)).collect(),
            peers_changed_patch: vec![PeerChange { node_id: NodeId(1), online: Some(false), ..Default::default() }],
            health,
            control_time,
            ..Default::default()
        };
        round_trip(&r);
    }
}
