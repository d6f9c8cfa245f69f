//! `headscale debug create-node`: a made-up client (random keys, `TestOS`) waiting under an
//! auth id for `auth register`, as Go Headscale's debug command makes one.

use hs_control::ControlState;
use hs_types::model::{Node, RegisterMethod, User};
use hs_types::tailcfg::{Hostinfo, RegisterRequest};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic};
use ipnet::IpNet;
use rand::Rng as _;

use crate::error::ApiError;

/// Files the pending registration and returns the node it would create (not stored).
pub(super) fn pending(
    control: &ControlState,
    auth_id: &str,
    user: &User,
    name: &str,
    routes: Vec<IpNet>,
) -> Result<Node, ApiError> {
    let mut rng = rand::thread_rng();
    let machine = MachinePublic::from_bytes(rng.r#gen());
    let node_key = NodePublic::from_bytes(rng.r#gen());
    let hostinfo = Hostinfo {
        hostname: name.to_owned(),
        os: "TestOS".to_owned(),
        routable_ips: routes,
        ..Hostinfo::default()
    };
    let req = RegisterRequest {
        node_key,
        hostinfo: Some(hostinfo.clone()),
        ..RegisterRequest::default()
    };
    control
        .debug_pending_registration(auth_id, machine, req)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Go prints the cached registration as it stands: no name given yet, no method, and
    // Go's zero time in every time field.
    let t = super::validate::zero_instant();
    Ok(Node {
        id: NodeId(0),
        machine_key: machine,
        node_key,
        disco_key: DiscoPublic::default(),
        endpoints: Vec::new(),
        hostinfo: serde_json::to_value(&hostinfo).ok(),
        ipv4: None,
        ipv6: None,
        hostname: name.to_owned(),
        given_name: String::new(),
        user_id: Some(user.id),
        register_method: RegisterMethod::Unspecified,
        tags: Vec::new(),
        auth_key_id: None,
        expiry: Some(t),
        last_seen: Some(t),
        approved_routes: Vec::new(),
        created_at: t,
        updated_at: t,
    })
}
