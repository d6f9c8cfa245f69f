//! The registration plan decided from a snapshot, a request and a time, without a server.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use hs_nodestore::{AllowAll, NodeStore, Op, Snapshot};
use hs_types::model::{Node, RegisterMethod, User};
use hs_types::tailcfg::{RegisterRequest, RegisterResponseAuth};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic, UserId};
use http::StatusCode;

use super::{Plan, plan};

fn t() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).single().unwrap()
}

const MACHINE: MachinePublic = MachinePublic::from_bytes([1; 32]);
const KEY: NodePublic = NodePublic::from_bytes([2; 32]);
const NEW_KEY: NodePublic = NodePublic::from_bytes([3; 32]);

/// A tailnet with one node (machine 1, node key 2), expiring at `expiry`.
fn snapshot(expiry: Option<DateTime<Utc>>) -> Arc<Snapshot> {
    let (store, mut w) = NodeStore::new(Arc::new(AllowAll::new()));
    let user = User {
        id: UserId(1),
        name: "alice".into(),
        display_name: String::new(),
        email: String::new(),
        provider_identifier: None,
        provider: String::new(),
        profile_pic_url: String::new(),
        created_at: t(),
        updated_at: t(),
        groups: Vec::new(),
    };
    let node = Node {
        id: NodeId(1),
        machine_key: MACHINE,
        node_key: KEY,
        disco_key: DiscoPublic::default(),
        endpoints: vec![],
        hostinfo: None,
        ipv4: None,
        ipv6: None,
        hostname: "n".into(),
        given_name: "n".into(),
        user_id: Some(UserId(1)),
        register_method: RegisterMethod::AuthKey,
        tags: vec![],
        auth_key_id: None,
        expiry,
        last_seen: None,
        approved_routes: vec![],
        created_at: t(),
        updated_at: t(),
    };
    w.apply([Op::UpsertUser(Box::new(user)), Op::Upsert(Box::new(node))]);
    store.load_full()
}

fn req(node_key: NodePublic) -> RegisterRequest {
    RegisterRequest {
        node_key,
        ..RegisterRequest::default()
    }
}

#[test]
fn identity_comes_first() {
    let snap = snapshot(None);
    let p = plan(&snap, MACHINE, &req(NodePublic::from_bytes([0; 32])), t());
    assert!(matches!(p, Plan::Refused(r) if r.status == StatusCode::BAD_REQUEST));
    // Someone else's node key, even with a pre-auth key: refused, nothing else considered.
    let other = MachinePublic::from_bytes([9; 32]);
    let with_key = RegisterRequest {
        auth: Some(RegisterResponseAuth {
            auth_key: "hskey-auth-x".into(),
            ..RegisterResponseAuth::default()
        }),
        ..req(KEY)
    };
    let p = plan(&snap, other, &with_key, t());
    assert!(matches!(p, Plan::Refused(r) if r.status == StatusCode::UNAUTHORIZED));
}

#[test]
fn a_past_expiry_is_a_logout_of_the_named_node() {
    let snap = snapshot(None);
    let logout = RegisterRequest {
        expiry: Some(t() - Duration::seconds(1)),
        ..req(KEY)
    };
    assert!(matches!(plan(&snap, MACHINE, &logout, t()), Plan::Logout(n) if n.id == NodeId(1)));
    let unknown = RegisterRequest {
        expiry: Some(t()),
        ..req(NEW_KEY)
    };
    assert!(matches!(
        plan(&snap, MACHINE, &unknown, t()),
        Plan::Refused(_)
    ));
}

#[test]
fn known_rotated_expired_and_new_nodes() {
    let snap = snapshot(None);
    assert!(matches!(
        plan(&snap, MACHINE, &req(KEY), t()),
        Plan::Known(_)
    ));
    let rotate = RegisterRequest {
        old_node_key: KEY,
        ..req(NEW_KEY)
    };
    // A new key without credentials (`tailscale up --force-reauth`): log in again, as Go
    // Headscale asks, even though the old key is still valid.
    assert!(matches!(
        plan(&snap, MACHINE, &rotate, t()),
        Plan::Interactive
    ));
    let expired = snapshot(Some(t() - Duration::hours(1)));
    // The expired key itself: told it expired. Its replacement: log in again.
    assert!(matches!(
        plan(&expired, MACHINE, &req(KEY), t()),
        Plan::Expired(_)
    ));
    assert!(matches!(
        plan(&expired, MACHINE, &rotate, t()),
        Plan::Interactive
    ));
    assert!(matches!(
        plan(&snap, MACHINE, &req(NEW_KEY), t()),
        Plan::Interactive
    ));
    let followup = RegisterRequest {
        followup: "http://h/register/x".into(),
        ..req(NEW_KEY)
    };
    assert!(matches!(
        plan(&snap, MACHINE, &followup, t()),
        Plan::Followup
    ));
}

#[test]
fn a_pre_auth_key_names_the_node_it_renews() {
    let snap = snapshot(None);
    let with_key = RegisterRequest {
        auth: Some(RegisterResponseAuth {
            auth_key: "hskey-auth-x".into(),
            ..RegisterResponseAuth::default()
        }),
        ..req(KEY)
    };
    match plan(&snap, MACHINE, &with_key, t()) {
        Plan::AuthKey { key, existing } => {
            assert_eq!(key, "hskey-auth-x");
            assert_eq!(existing.map(|n| n.id), Some(NodeId(1)));
        }
        other => panic!("{other:?}"),
    }
}
