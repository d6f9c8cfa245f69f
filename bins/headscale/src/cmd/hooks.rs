//! The admin API's hooks into the running control plane: after the API has written the
//! database, node changes and deletions are applied to the NodeStore (and so pushed to every
//! connected peer), and pending interactive logins are decided by the control state.
//! A policy set through the API is compiled and put in force at once.
//! Tag changes are checked against the policy in force.
//! `debug create-node` files a pending registration in the control state.
//! `nodes backfillips` allocates from the control state's address allocator.
//! What the control state does not offer yet (route discovery) falls back to
//! [`hs_api::DbOnly`].

use chrono::{DateTime, Utc};
use hs_api::{ApiError, ControlHooks, DbOnly};
use hs_control::ControlState;
use hs_nodestore::Op;
use hs_types::model::{Node, RegisterMethod, User};
use hs_types::tailcfg::{Hostinfo, RegisterRequest};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic};
use ipnet::IpNet;
use rand::Rng as _;

/// The forms an operator's auth id may take for the control plane: as given, and with the
/// `hskey-authreq-` prefix removed or added. Our `AuthURL`s carry the prefixed form
/// (`hskey-authreq-` and 24 hex characters), as Go Headscale 0.29 prints it; an operator may
/// still type only the 24 characters.
fn auth_id_forms(id: &str) -> Vec<String> {
    let other = match id.strip_prefix(hs_api::AUTH_ID_PREFIX) {
        Some(bare) => bare.to_owned(),
        None => format!("{}{id}", hs_api::AUTH_ID_PREFIX),
    };
    vec![id.to_owned(), other]
}

/// [`ControlHooks`] on the live [`ControlState`].
#[derive(Clone)]
pub(crate) struct LiveHooks {
    state: ControlState,
}

impl LiveHooks {
    pub(crate) fn new(state: ControlState) -> Self {
        Self { state }
    }

    /// Applies `ops` in the background: the database already holds the change, so the
    /// admin call need not wait for the fan-out.
    fn apply(&self, what: &'static str, ops: Vec<Op>) {
        let state = self.state.clone();
        tokio::spawn(async move {
            if let Err(e) = state.apply(ops).await {
                tracing::warn!(error = %e, "{what}: not pushed to connected nodes");
            }
        });
    }
}

/// Runs an async control-plane call from the synchronous hook, on the server's
/// multi-threaded runtime.
fn block_on<T>(fut: impl Future<Output = T>) -> Result<T, ApiError> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| ApiError::Internal("no async runtime for the control plane".into()))?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return Err(ApiError::Internal(
            "the control plane needs the multi-threaded runtime".into(),
        ));
    }
    Ok(tokio::task::block_in_place(|| handle.block_on(fut)))
}

impl ControlHooks for LiveHooks {
    fn node_changed(&self, node: &Node) {
        self.apply("node change", vec![Op::Upsert(Box::new(node.clone()))]);
    }

    fn node_deleted(&self, id: NodeId) {
        self.apply("node deletion", vec![Op::Remove(id)]);
    }

    fn policy_changed(&self, policy: &str) {
        // The API checked the policy before storing it; compiling it again here only fails
        // if the tailnet changed in between, and then the policy in force stays.
        match block_on(
            self.state
                .set_policy_text("the policy set through the API", Some(policy)),
        ) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "new policy not put in force"),
            Err(e) => tracing::error!(error = %e, "new policy not put in force"),
        }
    }

    fn check_policy(&self, policy: &str, users: &[User], nodes: &[Node]) -> Result<(), String> {
        DbOnly.check_policy(policy, users, nodes)
    }

    /// Headscale's rule for operator tag changes: the admin may set any tag the policy in
    /// force defines in `tagOwners` (who owns it does not matter here); with no policy, or a
    /// tag it does not define, the change is refused with Headscale's wording.
    fn check_tags(&self, tags: &[String]) -> Result<(), String> {
        let policy = self.state.policy();
        let undefined: Vec<&str> = tags
            .iter()
            .filter(|t| {
                !policy
                    .as_ref()
                    .is_some_and(|p| p.tag_owners.contains_key(t.as_str()))
            })
            .map(String::as_str)
            .collect();
        if undefined.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "requested tags [{}] are invalid or not permitted",
                undefined.join(" ")
            ))
        }
    }

    fn is_online(&self, id: NodeId) -> bool {
        self.state.store().load().node(id).is_some_and(|e| e.online)
    }

    fn available_routes(&self, node: &Node) -> Vec<IpNet> {
        DbOnly.available_routes(node)
    }

    fn auth_register(&self, auth_id: &str, user: &User) -> Result<Node, ApiError> {
        let mut first = None;
        for id in auth_id_forms(auth_id) {
            match block_on(self.state.approve_registration(&id, user.id))? {
                Ok(node) => return Ok(node),
                Err(e) => {
                    // Report the form the operator typed.
                    first.get_or_insert(e);
                }
            }
        }
        Err(ApiError::not_found(first.map_or_else(
            || format!("no pending registration with auth ID {auth_id:?}"),
            |e| e.to_string(),
        )))
    }

    fn auth_approve(&self, auth_id: &str) -> Result<(), ApiError> {
        DbOnly.auth_approve(auth_id)
    }

    fn auth_reject(&self, auth_id: &str) -> Result<(), ApiError> {
        let mut first = None;
        for id in auth_id_forms(auth_id) {
            match self.state.reject_registration(&id) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    // Report the form the operator typed.
                    first.get_or_insert(e);
                }
            }
        }
        Err(ApiError::not_found(first.map_or_else(
            || format!("no pending registration with auth ID {auth_id:?}"),
            |e| e.to_string(),
        )))
    }

    fn debug_create_node(
        &self,
        auth_id: &str,
        user: &User,
        name: &str,
        routes: &[IpNet],
    ) -> Result<Node, ApiError> {
        // As Go Headscale: a made-up client (random keys, `TestOS`) waiting under `auth_id`
        // for `auth register`; nothing is stored until then.
        let mut rng = rand::thread_rng();
        let machine = MachinePublic::from_bytes(rng.r#gen());
        let node_key = NodePublic::from_bytes(rng.r#gen());
        let hostinfo = Hostinfo {
            hostname: name.to_owned(),
            os: "TestOS".to_owned(),
            routable_ips: routes.to_vec(),
            ..Hostinfo::default()
        };
        let req = RegisterRequest {
            node_key,
            hostinfo: Some(hostinfo.clone()),
            ..RegisterRequest::default()
        };
        self.state
            .debug_pending_registration(auth_id, machine, req)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let hostinfo = serde_json::to_value(&hostinfo).ok();
        let t = DateTime::<Utc>::UNIX_EPOCH;
        Ok(Node {
            id: NodeId(0),
            machine_key: machine,
            node_key,
            disco_key: DiscoPublic::default(),
            endpoints: Vec::new(),
            hostinfo,
            ipv4: None,
            ipv6: None,
            hostname: name.to_owned(),
            given_name: name.to_owned(),
            user_id: Some(user.id),
            register_method: RegisterMethod::Cli,
            tags: Vec::new(),
            auth_key_id: None,
            expiry: None,
            last_seen: None,
            approved_routes: Vec::new(),
            created_at: t,
            updated_at: t,
        })
    }

    /// Go Headscale's backfill: a node missing an address of a configured family gets one
    /// from the shared allocator; an address of a family no longer configured is removed.
    /// Each changed node is written, then pushed to its peers.
    fn backfill_ips(&self, confirmed: bool) -> Result<Vec<String>, ApiError> {
        if !confirmed {
            return DbOnly.backfill_ips(confirmed);
        }
        let ips = self.state.ip_allocator();
        let (has4, has6) = (ips.v4_prefix().is_some(), ips.v6_prefix().is_some());
        let db = self.state.db().clone();
        let nodes = tokio::task::block_in_place(|| db.tx(|c| c.list_nodes()))
            .map_err(|e| ApiError::Internal(format!("backfilling IPs: {e}")))?;
        let mut changes = Vec::new();
        let mut changed = Vec::new();
        let mut assigned = Vec::new();
        for mut n in nodes {
            // Headscale's wording, one line per change.
            let who = format!("Node({}) {:?}", n.id.get(), n.hostname);
            let before = changes.len();
            if (has4 && n.ipv4.is_none()) || (has6 && n.ipv6.is_none()) {
                let (v4, v6) = ips
                    .allocate(&mut rand::thread_rng())
                    .map_err(|e| ApiError::Internal(format!("backfilling IPs: {e}")))?;
                // `allocate` gives one of each family; hand back what this node keeps.
                let mut unused = Vec::new();
                match (n.ipv4, v4) {
                    (None, Some(a)) => {
                        changes.push(format!("assigned IPv4 \"{a}\" to {who}"));
                        assigned.push(std::net::IpAddr::V4(a));
                        n.ipv4 = Some(a);
                    }
                    (_, a) => unused.extend(a.map(std::net::IpAddr::V4)),
                }
                match (n.ipv6, v6) {
                    (None, Some(a)) => {
                        changes.push(format!("assigned IPv6 \"{a}\" to {who}"));
                        assigned.push(std::net::IpAddr::V6(a));
                        n.ipv6 = Some(a);
                    }
                    (_, a) => unused.extend(a.map(std::net::IpAddr::V6)),
                }
                ips.release(unused);
            }
            if !has4 && let Some(a) = n.ipv4.take() {
                changes.push(format!("removing IPv4 \"{a}\" from {who}"));
            }
            if !has6 && let Some(a) = n.ipv6.take() {
                changes.push(format!("removing IPv6 \"{a}\" from {who}"));
            }
            if changes.len() > before {
                changed.push(n);
            }
        }
        let stored = tokio::task::block_in_place(|| {
            db.tx(|c| changed.iter().try_for_each(|n| c.upsert_node(n)))
        });
        if let Err(e) = stored {
            // Nothing was written (one transaction): give the new addresses back.
            ips.release(assigned);
            return Err(ApiError::Internal(format!("backfilling IPs: {e}")));
        }
        if !changed.is_empty() {
            self.apply(
                "address backfill",
                changed
                    .into_iter()
                    .map(|n| Op::Upsert(Box::new(n)))
                    .collect(),
            );
        }
        Ok(changes)
    }
}
