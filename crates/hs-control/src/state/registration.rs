//! What a successful registration stores, once for every way in (pre-auth key, operator
//! approval of an interactive login, node-key rotation): the node built from the request,
//! either as a new row or applied to the row the machine already has, and the write itself.

use chrono::{DateTime, Utc};
use hs_db::Conn;
use hs_types::model::{Node, RegisterMethod};
use hs_types::tailcfg::RegisterRequest;
use hs_types::{MachinePublic, NodeId, NodePublic, UserId};

use crate::error::Error;
use crate::state::ControlState;

/// The columns a registration sets.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub(crate) machine: MachinePublic,
    pub(crate) node_key: NodePublic,
    /// The client's Hostinfo; `None` keeps a known node's.
    pub(crate) hostinfo: Option<serde_json::Value>,
    /// From the Hostinfo; empty keeps a known node's.
    pub(crate) hostname: String,
    pub(crate) user_id: Option<UserId>,
    /// The pre-auth key's tags; `None` keeps a known node's.
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) method: RegisterMethod,
    /// The pre-auth key used; `None` keeps a known node's.
    pub(crate) auth_key_id: Option<u64>,
    pub(crate) expiry: Option<DateTime<Utc>>,
    pub(crate) at: DateTime<Utc>,
}

impl Registration {
    /// The registration's columns read from a request.
    pub(crate) fn from_request(
        machine: MachinePublic,
        req: &RegisterRequest,
        method: RegisterMethod,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            machine,
            node_key: req.node_key,
            hostinfo: req
                .hostinfo
                .as_ref()
                .and_then(|h| serde_json::to_value(h).ok()),
            hostname: req
                .hostinfo
                .as_ref()
                .map(|h| h.hostname.clone())
                .unwrap_or_default(),
            user_id: None,
            tags: None,
            method,
            auth_key_id: None,
            expiry: None,
            at,
        }
    }

    /// Applied to the row the machine already has: what the registration does not set stays
    /// (addresses, name, routes, and an operator's edits).
    pub(crate) fn renew(self, old: Node) -> Node {
        Node {
            node_key: self.node_key,
            hostinfo: self.hostinfo.or(old.hostinfo),
            hostname: if self.hostname.is_empty() {
                old.hostname
            } else {
                self.hostname
            },
            tags: self.tags.unwrap_or(old.tags),
            register_method: self.method,
            auth_key_id: self.auth_key_id.or(old.auth_key_id),
            expiry: self.expiry,
            // As Go Headscale: a registration counts as being seen.
            last_seen: Some(self.at),
            updated_at: self.at,
            ..old
        }
    }

    /// A new node with the addresses it was allocated; the database gives it its id and
    /// the NodeStore its name.
    pub(crate) fn new_node(
        self,
        v4: Option<std::net::Ipv4Addr>,
        v6: Option<std::net::Ipv6Addr>,
    ) -> Node {
        Node {
            id: NodeId(0),
            machine_key: self.machine,
            node_key: self.node_key,
            disco_key: hs_types::DiscoPublic::default(),
            endpoints: Vec::new(),
            hostinfo: self.hostinfo,
            ipv4: v4,
            ipv6: v6,
            hostname: self.hostname,
            given_name: String::new(),
            user_id: self.user_id,
            register_method: self.method,
            tags: self.tags.unwrap_or_default(),
            auth_key_id: self.auth_key_id,
            expiry: self.expiry,
            last_seen: Some(self.at),
            approved_routes: Vec::new(),
            created_at: self.at,
            updated_at: self.at,
        }
    }
}

/// Extra work in the registration's transaction (spending a single-use key).
pub(crate) type Also = Box<dyn FnOnce(&mut Conn<'_>) -> hs_db::Result<()> + Send>;

/// Stores a registration: onto `existing` (the machine's node for this owner) when there is
/// one, else as a new node with fresh addresses, which go back to the pool if the write
/// fails. Returns the node as the NodeStore holds it.
pub(crate) async fn store(
    st: &ControlState,
    reg: Registration,
    existing: Option<NodeId>,
    also: Also,
) -> Result<Node, Error> {
    if let Some(id) = existing {
        let placeholder = Node {
            id,
            ..reg.clone().new_node(None, None)
        };
        return st
            .store_registration(placeholder, Box::new(move |old| reg.renew(old)), also)
            .await;
    }
    let (v4, v6) = st.ips().allocate(&mut rand::thread_rng())?;
    let node = reg.new_node(v4, v6);
    let ips = node.ips();
    let stored = st.store_registration(node, Box::new(|n| n), also).await;
    if stored.is_err() {
        st.ips().release(ips);
    }
    stored
}

/// No extra work.
pub(crate) fn nothing() -> Also {
    Box::new(|_| Ok(()))
}
