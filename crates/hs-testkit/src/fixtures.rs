//! Fixture builders: rows as a registration would store them, and pending interactive
//! registrations as a client would file them.

use chrono::{DateTime, Utc};
use hs_control::ControlState;
use hs_types::model::{Node, RegisterMethod};
use hs_types::tailcfg::{Hostinfo, RegisterRequest};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic, UserId};
use rand::Rng as _;

/// A user to create, with only a name.
pub fn new_user(name: &str) -> hs_db::NewUser {
    hs_db::NewUser {
        name: name.to_owned(),
        ..hs_db::NewUser::default()
    }
}

/// A node as a pre-auth-key registration stores it, with keys derived from `seed`; the
/// database gives it its id.
pub fn node(seed: u8, name: &str, user: Option<UserId>, at: DateTime<Utc>) -> Node {
    Node {
        id: NodeId(0),
        machine_key: MachinePublic::from_bytes([seed; 32]),
        node_key: NodePublic::from_bytes([seed.wrapping_add(1); 32]),
        disco_key: DiscoPublic::from_bytes([seed.wrapping_add(2); 32]),
        endpoints: vec![],
        hostinfo: None,
        ipv4: None,
        ipv6: None,
        hostname: name.to_owned(),
        given_name: name.to_owned(),
        user_id: user,
        register_method: RegisterMethod::AuthKey,
        tags: vec![],
        auth_key_id: None,
        expiry: None,
        last_seen: Some(at),
        approved_routes: vec![],
        created_at: at,
        updated_at: at,
    }
}

/// Files a pending interactive registration under `auth_id`, as a client with a fresh
/// machine key and Hostinfo `hostname` would, for `auth register` to decide.
///
/// # Panics
/// When `auth_id` is already pending (a test set-up error).
pub fn pending_registration(state: &ControlState, auth_id: &str, hostname: &str) {
    let mut rng = rand::thread_rng();
    let req = RegisterRequest {
        node_key: NodePublic::from_bytes(rng.r#gen()),
        hostinfo: Some(Hostinfo {
            hostname: hostname.to_owned(),
            ..Hostinfo::default()
        }),
        ..RegisterRequest::default()
    };
    #[allow(
        clippy::expect_used,
        reason = "test set-up: a failure is the test's error"
    )]
    state
        .debug_pending_registration(auth_id, MachinePublic::from_bytes(rng.r#gen()), req)
        .expect("filing the pending registration");
}
