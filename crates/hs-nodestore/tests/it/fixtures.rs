//! Node and user builders shared by the tests.

use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, TimeZone, Utc};
use hs_types::model::{Node, RegisterMethod, User};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic, UserId};

pub(crate) fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap()
}

fn key_bytes(tag: u8, id: u64) -> [u8; 32] {
    let mut b = [tag; 32];
    b[..8].copy_from_slice(&id.to_le_bytes());
    b
}

pub(crate) fn node(id: u64, user: u64, hostname: &str) -> Node {
    Node {
        id: NodeId(id),
        machine_key: MachinePublic::from_bytes(key_bytes(1, id)),
        node_key: NodePublic::from_bytes(key_bytes(2, id)),
        disco_key: DiscoPublic::from_bytes(key_bytes(3, id)),
        endpoints: vec![],
        hostinfo: None,
        ipv4: Some(Ipv4Addr::new(100, 64, (id >> 8) as u8, id as u8)),
        ipv6: Some(Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, id as u16)),
        hostname: hostname.to_owned(),
        given_name: String::new(),
        user_id: Some(UserId(user)),
        register_method: RegisterMethod::AuthKey,
        tags: vec![],
        auth_key_id: None,
        expiry: None,
        last_seen: None,
        approved_routes: vec![],
        created_at: t(0),
        updated_at: t(0),
    }
}

pub(crate) fn with_routes(mut n: Node, announced: &[&str], approved: &[&str]) -> Node {
    n.hostinfo = Some(serde_json::json!({ "RoutableIPs": announced }));
    n.approved_routes = approved.iter().map(|p| p.parse().unwrap()).collect();
    n
}

pub(crate) fn user(id: u64, name: &str) -> User {
    User {
        id: UserId(id),
        name: name.to_owned(),
        display_name: String::new(),
        email: format!("{name}@example.com"),
        provider_identifier: None,
        provider: String::new(),
        profile_pic_url: String::new(),
        created_at: t(0),
        updated_at: t(0),
        groups: Vec::new(),
    }
}
