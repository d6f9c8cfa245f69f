//! Interactive registrations waiting for an operator: the table of pending auth IDs
//! (`hskey-authreq-` and 24 random lowercase hex digits, as Go Headscale 0.29 issues them)
//! and the commands that decide them, [`ControlState::approve_registration`] and
//! [`ControlState::reject_registration`]. The HTTP side (the `AuthURL`, the follow-up long
//! poll, the page) is `crate::http::interactive`.
//!
//! A leaked auth ID is worth nothing: the follow-up must come from the machine key that
//! started the registration, the page shows only the command, and approval needs an operator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hs_types::model::{Node, RegisterMethod};
use hs_types::tailcfg::{RegisterRequest, RegisterResponse};
use hs_types::{MachinePublic, UserId};
use rand::RngCore as _;
use tokio::sync::watch;

use super::ControlState;
use super::registration::Registration;
use crate::clock::now;
use crate::error::Error;
use crate::http::register::{new_expiry, response_for};

/// What every auth ID starts with (Go Headscale 0.29).
pub(crate) const AUTH_ID_PREFIX: &str = "hskey-authreq-";
/// Random characters after the prefix (Headscale's length).
const AUTH_ID_RANDOM_LEN: usize = 24;

/// A new auth ID: the prefix and 24 hex digits (96 random bits).
pub(crate) fn new_auth_id() -> String {
    let mut b = [0u8; AUTH_ID_RANDOM_LEN / 2];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let mut id = String::with_capacity(AUTH_ID_PREFIX.len() + AUTH_ID_RANDOM_LEN);
    id.push_str(AUTH_ID_PREFIX);
    for x in b {
        id.push_str(&format!("{x:02x}"));
    }
    id
}

/// The form an auth ID is filed under: operators may type the 24 random characters alone
/// (the form of Headscale 0.25-0.28, which the admin API still accepts).
pub(crate) fn canonical(id: &str) -> std::borrow::Cow<'_, str> {
    if id.starts_with(AUTH_ID_PREFIX) {
        std::borrow::Cow::Borrowed(id)
    } else {
        std::borrow::Cow::Owned(format!("{AUTH_ID_PREFIX}{id}"))
    }
}

/// Whether `id` looks like an auth ID (either form) at all.
pub(crate) fn well_formed(id: &str) -> bool {
    let random = id.strip_prefix(AUTH_ID_PREFIX).unwrap_or(id);
    random.len() == AUTH_ID_RANDOM_LEN
        && random
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) type Outcome = Option<Result<RegisterResponse, String>>;

/// One registration waiting for an operator.
pub(crate) struct Pending {
    pub(crate) machine: MachinePublic,
    pub(crate) req: RegisterRequest,
    pub(crate) created: DateTime<Utc>,
    pub(crate) done: watch::Sender<Outcome>,
}

/// Registrations waiting for an operator, by auth ID.
#[derive(Default)]
pub(crate) struct PendingAuths {
    map: Mutex<HashMap<String, Arc<Pending>>>,
}

impl PendingAuths {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Pending>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Pending>> {
        self.lock().get(canonical(id).as_ref()).cloned()
    }
}

impl ControlState {
    /// How long a pending registration or SSH check lives
    /// (`tuning.register_cache_expiration`, Go Headscale's auth cache lifetime).
    pub(crate) fn register_ttl(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config().register_cache_expiration)
            .unwrap_or(chrono::Duration::MAX)
    }

    /// How long until an entry filed at `created` lapses (zero once it has).
    pub(crate) fn lapses_in(&self, created: DateTime<Utc>) -> Duration {
        created
            .checked_add_signed(self.register_ttl())
            .map_or(Duration::MAX, |end| {
                (end - now()).to_std().unwrap_or(Duration::ZERO)
            })
    }

    /// The registration filed under `auth_id` (either form), decided or not, unless it has
    /// lapsed: a lapsed entry may linger in the table until the next insertion prunes it.
    pub(crate) fn live_registration(&self, auth_id: &str) -> Option<Arc<Pending>> {
        let ttl = self.register_ttl();
        let t = now();
        self.pending().get(auth_id).filter(|p| t - p.created < ttl)
    }

    /// The registration waiting under `auth_id` that nobody has decided yet.
    fn undecided(&self, auth_id: &str) -> Result<Arc<Pending>, Error> {
        self.live_registration(auth_id)
            .filter(|p| p.done.borrow().is_none())
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no pending registration with auth ID {auth_id:?} (it may have expired or been decided)"
                ))
            })
    }

    /// Approves a pending interactive registration for `user` (`headscale auth register`):
    /// the node is created (or the machine's node for that user updated) and the waiting
    /// client is answered.
    pub async fn approve_registration(&self, auth_id: &str, user: UserId) -> Result<Node, Error> {
        self.approve(auth_id, user, RegisterMethod::Cli, None).await
    }

    /// Registers the node waiting under `auth_id` for `user` after an OIDC login: recorded
    /// as an OIDC registration, expiring at `token_expiry` when `oidc.use_expiry_from_token`
    /// asked for it (else as any new node).
    pub(crate) async fn approve_oidc_registration(
        &self,
        auth_id: &str,
        user: UserId,
        token_expiry: Option<DateTime<Utc>>,
    ) -> Result<Node, Error> {
        self.approve(auth_id, user, RegisterMethod::Oidc, token_expiry)
            .await
    }

    /// Whether `auth_id` names a registration nobody has decided yet.
    pub(crate) fn is_undecided(&self, auth_id: &str) -> bool {
        self.undecided(auth_id).is_ok()
    }

    /// Go Headscale's interactive registration: the machine's node for `user` is logged in
    /// again, or else the machine's tagged node (a tagged node logging in as a user), or else
    /// a new node is made. The client's `RequestTags` decide the tags (see
    /// [`crate::state::tags`]): every requested tag must be owned by `user` (or by the node's
    /// own user), else nothing changes and the refusal is returned; granted tags make the node
    /// tagged, and none at all return a tagged node to `user`.
    async fn approve(
        &self,
        auth_id: &str,
        user: UserId,
        method: RegisterMethod,
        expiry: Option<DateTime<Utc>>,
    ) -> Result<Node, Error> {
        use crate::state::tags::{normalized, refusal};
        let p = self.undecided(auth_id)?;
        if !self.ensure_user(user).await? {
            return Err(Error::Config(format!("user {} does not exist", user.get())));
        }
        let t = now();
        let req = &p.req;
        let requested: Vec<String> = req
            .hostinfo
            .as_ref()
            .map(|h| h.request_tags.clone())
            .unwrap_or_default();
        // The key expiry a user's node gets: the OIDC token's, else the client's, else the
        // configured default.
        let user_expiry = expiry.or_else(|| new_expiry(self, req, false, false, t));
        let on_machine: Vec<Node> = self
            .store()
            .load()
            .nodes_by_machine_key(&p.machine)
            .map(|e| e.node.clone())
            .collect();
        let same_user = on_machine
            .iter()
            .find(|n| !n.is_tagged() && n.user_id == Some(user))
            .cloned();
        let tagged = on_machine.iter().find(|n| n.is_tagged()).cloned();
        let other_user = on_machine
            .iter()
            .any(|n| !n.is_tagged() && n.user_id != Some(user));
        if tagged.is_some() && (same_user.is_some() || other_user) {
            return Err(Error::Conflict(
                "machine key maps to ambiguous node ownership".into(),
            ));
        }
        let n = if let Some(old) = same_user.or(tagged) {
            let rejected = self
                .unowned_tags(Some(&old), Some(user), &requested)
                .await?;
            if !rejected.is_empty() {
                return Err(Error::Invalid(refusal(&rejected)));
            }
            let reg = Registration::from_request(p.machine, req, method, t);
            let convert = old.is_tagged();
            let tags = normalized(&requested);
            self.store_registration(
                old,
                Box::new(move |row| relogin(row, reg, user, tags, convert, user_expiry)),
                crate::state::registration::nothing(),
            )
            .await?
        } else {
            let rejected = self.unowned_tags(None, Some(user), &requested).await?;
            if !rejected.is_empty() {
                return Err(Error::Invalid(refusal(&rejected)));
            }
            let tags = normalized(&requested);
            let is_tagged = !tags.is_empty();
            let reg = Registration {
                user_id: (!is_tagged).then_some(user),
                tags: Some(tags),
                expiry: if is_tagged { None } else { user_expiry },
                ..Registration::from_request(p.machine, req, method, t)
            };
            crate::state::registration::store(
                self,
                reg,
                None,
                crate::state::registration::nothing(),
            )
            .await?
        };
        // The entry stays (until its TTL) so a follow-up that arrives after the decision still
        // gets it; `send_replace` stores the answer even when nobody is waiting yet.
        p.done.send_replace(Some(Ok(response_for(self, &n, t))));
        tracing::info!(
            node = n.id.get(),
            user = user.get(),
            method = method.as_str(),
            tags = ?n.tags,
            "interactive registration approved"
        );
        Ok(n)
    }

    /// Debug (`headscale debug create-node`): files a pending registration under `auth_id`
    /// as if a client with `machine` had sent `req`; an operator then decides it like any
    /// other. Refused when that auth ID is already pending.
    pub fn debug_pending_registration(
        &self,
        auth_id: &str,
        machine: MachinePublic,
        req: RegisterRequest,
    ) -> Result<(), Error> {
        let t = now();
        let ttl = self.register_ttl();
        let auth_id = canonical(auth_id).into_owned();
        let mut map = self.pending().lock();
        map.retain(|_, p| t - p.created < ttl);
        if map.contains_key(&auth_id) {
            return Err(Error::Config(format!(
                "a registration with auth ID {auth_id:?} is already pending"
            )));
        }
        let (done, _) = watch::channel(None);
        map.insert(
            auth_id,
            Arc::new(Pending {
                machine,
                req,
                created: t,
                done,
            }),
        );
        Ok(())
    }

    /// Whether a registration waits undecided under `auth_id` (either form).
    pub fn is_registration_pending(&self, auth_id: &str) -> bool {
        self.undecided(auth_id).is_ok()
    }

    /// Rejects a pending registration; the waiting client is told so.
    pub fn reject_registration(&self, auth_id: &str) -> Result<(), Error> {
        let p = self.undecided(auth_id)?;
        p.done
            .send_replace(Some(Err("registration rejected".to_owned())));
        Ok(())
    }
}

/// An interactive login applied to the machine's node as the row holds it now: the new node
/// key and Hostinfo, then the tags (`tags`, already granted: none return a tagged node to
/// `user`, some make the node tagged), then the key expiry for the node's new kind. A tagged
/// node logging in as a user (`convert`) takes the login's method; otherwise the node keeps
/// the method it registered with.
fn relogin(
    row: Node,
    reg: Registration,
    user: UserId,
    tags: Vec<String>,
    convert: bool,
    user_expiry: Option<DateTime<Utc>>,
) -> Node {
    let was_tagged = row.is_tagged();
    let mut n = Node {
        node_key: reg.node_key,
        hostinfo: reg.hostinfo.or(row.hostinfo),
        hostname: if reg.hostname.is_empty() {
            row.hostname
        } else {
            reg.hostname
        },
        register_method: if convert {
            reg.method
        } else {
            row.register_method
        },
        last_seen: Some(reg.at),
        updated_at: reg.at,
        ..row
    };
    if tags.is_empty() {
        if n.is_tagged() {
            n.tags = Vec::new();
            n.user_id = Some(user);
            // No longer a key's node: an ephemeral tagged key must not make it ephemeral.
            n.auth_key_id = None;
        }
    } else {
        n.tags = tags;
        n.user_id = None;
    }
    if !n.is_tagged() {
        n.expiry = user_expiry;
    } else if !was_tagged || n.is_expired(reg.at) {
        // Tagged nodes do not expire; a past expiry left by a logout is cleared too.
        n.expiry = None;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_auth_ids_have_headscales_shape() {
        let a = new_auth_id();
        assert_eq!(a.len(), 38);
        let random = a.strip_prefix("hskey-authreq-").unwrap_or_default();
        assert_eq!(random.len(), 24);
        assert!(
            random
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(well_formed(&a));
        assert_ne!(a, new_auth_id());
    }

    #[test]
    fn both_auth_id_forms_name_the_same_registration() {
        let full = "hskey-authreq-0123456789abcdef01234567";
        assert_eq!(canonical(full), full);
        assert_eq!(canonical("0123456789abcdef01234567"), full);
        assert!(well_formed("0123456789abcdef01234567"));
        assert!(!well_formed("hskey-authreq-0123"));
        assert!(!well_formed("hskey-authreq-0123456789abcdef0123456!"));
    }
}
