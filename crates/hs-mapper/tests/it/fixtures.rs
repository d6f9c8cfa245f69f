//! Builders: nodes, users, a mapper config, policies and decoding helpers.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use hs_mapper::{Mapper, MapperConfig, Outgoing, decode_frame};
use hs_nodestore::{NodeAttr, PolicyView};
use hs_types::model::{Node, RegisterMethod, User};
use hs_types::tailcfg::{DERPMap, DERPNode, DERPRegion, DNSConfig, DNSResolver};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic, UserId};
use serde_json::Value;

pub(crate) fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap()
}

pub(crate) const NOW: i64 = 1_700_000_000;

fn key(tag: u8, id: u64) -> [u8; 32] {
    let mut b = [tag; 32];
    b[..8].copy_from_slice(&id.to_le_bytes());
    b
}

pub(crate) fn node(id: u64, user: u64) -> Node {
    Node {
        id: NodeId(id),
        machine_key: MachinePublic::from_bytes(key(1, id)),
        node_key: NodePublic::from_bytes(key(2, id)),
        disco_key: DiscoPublic::from_bytes(key(3, id)),
        endpoints: vec!["192.0.2.1:41641".parse().unwrap()],
        hostinfo: Some(
            serde_json::from_value(serde_json::json!({
                "Hostname": format!("host-{id}"),
                "OS": "linux",
                "NetInfo": {"PreferredDERP": 900}
            }))
            .unwrap(),
        ),
        ipv4: Some(Ipv4Addr::new(100, 64, (id >> 8) as u8, id as u8)),
        ipv6: Some(Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, id as u16)),
        hostname: format!("host-{id}"),
        given_name: String::new(),
        user_id: Some(UserId(user)),
        register_method: RegisterMethod::AuthKey,
        tags: vec![],
        auth_key_id: None,
        expiry: None,
        last_seen: None,
        approved_routes: vec![],
        created_at: t(1_600_000_000),
        updated_at: t(1_600_000_000),
    }
}

pub(crate) fn user(id: u64) -> User {
    User {
        id: UserId(id),
        name: format!("user{id}"),
        display_name: String::new(),
        email: format!("user{id}@example.com"),
        provider_identifier: None,
        provider: String::new(),
        profile_pic_url: String::new(),
        created_at: t(0),
        updated_at: t(0),
        groups: Vec::new(),
    }
}

pub(crate) fn derp_map(region: i64) -> DERPMap {
    DERPMap {
        regions: Some(BTreeMap::from([(
            region,
            DERPRegion {
                region_id: region,
                region_code: "test".into(),
                region_name: "Test".into(),
                nodes: vec![DERPNode {
                    name: format!("{region}a"),
                    region_id: region,
                    host_name: "127.0.0.1".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )])),
        omit_default_regions: true,
        ..Default::default()
    }
}

pub(crate) fn config() -> MapperConfig {
    let dns = DNSConfig {
        resolvers: vec![DNSResolver::new("1.1.1.1")],
        domains: vec!["ts.example.com".into()],
        proxied: true,
        ..Default::default()
    };
    MapperConfig::new(
        "ts.example.com",
        &derp_map(900),
        Some(&dns),
        true,
        false,
        false,
    )
    .unwrap()
}

pub(crate) fn mapper() -> Mapper {
    Mapper::new(config())
}

/// Nodes see each other iff their IDs are equal modulo `m`; lists what a viewer sees
/// ([`PolicyView::visible_ids`], over the IDs the tests use, 1 to 8), so switching between two
/// of these takes the mapper's list-diffing path for a recompiled policy.
#[derive(Debug)]
pub(crate) struct Modulo {
    m: u64,
    filter: Arc<str>,
}

impl Modulo {
    pub(crate) fn new(m: u64) -> Self {
        Self {
            m,
            filter: Arc::from(format!(
                r#"[{{"SrcIPs":["100.64.0.{m}"],"DstPorts":[{{"IP":"*","Ports":{{"First":0,"Last":65535}}}}]}}]"#
            )),
        }
    }
}

impl PolicyView for Modulo {
    fn can_see(&self, viewer: &Node, peer: &Node) -> bool {
        viewer.id.0 % self.m == peer.id.0 % self.m
    }

    fn visible_ids(&self, viewer: &Node) -> Option<Vec<NodeId>> {
        Some(
            (1..=8)
                .filter(|i| *i != viewer.id.0 && i % self.m == viewer.id.0 % self.m)
                .map(NodeId)
                .collect(),
        )
    }

    fn viewers_of(&self, node: &Node) -> Option<Vec<NodeId>> {
        // Same residue: symmetric.
        self.visible_ids(node)
    }

    fn packet_filter(&self, _viewer: &Node) -> Arc<str> {
        Arc::clone(&self.filter)
    }

    fn ssh_policy(&self, _viewer: &Node) -> Option<Arc<str>> {
        None
    }

    fn node_attrs(&self, _node: &Node) -> Vec<NodeAttr> {
        Vec::new()
    }
}

/// Nodes see each other iff they have the same owner; each owner group gets its own filter
/// (shared `Arc` within the group), and user 0's group gets the deny-all filter `[]`.
#[derive(Debug)]
pub(crate) struct SameUser {
    filters: std::sync::Mutex<BTreeMap<Option<UserId>, Arc<str>>>,
    /// A marker to make policies distinguishable in node attributes.
    pub(crate) attr: Option<String>,
}

impl SameUser {
    pub(crate) fn new(attr: Option<&str>) -> Self {
        Self {
            filters: Default::default(),
            attr: attr.map(str::to_owned),
        }
    }
}

impl PolicyView for SameUser {
    fn can_see(&self, viewer: &Node, peer: &Node) -> bool {
        viewer.user_id == peer.user_id
    }

    fn packet_filter(&self, viewer: &Node) -> Arc<str> {
        let mut f = self.filters.lock().unwrap();
        Arc::clone(f.entry(viewer.user_id).or_insert_with(|| {
            match viewer.user_id {
                Some(UserId(0)) => Arc::from("[]"),
                u => Arc::from(format!(
                    r#"[{{"SrcIPs":["100.64.0.{}"],"DstPorts":[{{"IP":"*","Ports":{{"First":0,"Last":65535}}}}]}}]"#,
                    u.map_or(0, |u| u.0)
                )),
            }
        }))
    }

    fn ssh_policy(&self, viewer: &Node) -> Option<Arc<str>> {
        (viewer.user_id == Some(UserId(1))).then(|| {
            Arc::from(r#"{"rules":[{"principals":[{"any":true}],"sshUsers":{"*":"="},"action":{"accept":true}}]}"#)
        })
    }

    fn node_attrs(&self, _node: &Node) -> Vec<NodeAttr> {
        self.attr
            .iter()
            .map(|a| NodeAttr {
                cap: a.clone(),
                values: vec!["true".into()],
            })
            .collect()
    }
}

pub(crate) fn json(bytes: &[u8]) -> Value {
    let (j, rest) = decode_frame(bytes).unwrap();
    assert!(rest.is_empty());
    serde_json::from_slice(&j).unwrap()
}

/// The decoded frame per node; panics on closes.
pub(crate) fn frames(out: &[Outgoing]) -> BTreeMap<NodeId, Value> {
    out.iter()
        .map(|o| match o {
            Outgoing::Frame { node, frame } => (*node, json(frame)),
            Outgoing::Close { node, reason } => panic!("unexpected close of {node}: {reason:?}"),
        })
        .collect()
}
