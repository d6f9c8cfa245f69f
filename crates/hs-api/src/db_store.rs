//! [`Store`] on hs-db: each method is one hs-db transaction. Rules that need more than one
//! statement (a node name must be unique, a tagged node has no user) run inside that
//! transaction so concurrent admin calls cannot interleave them.

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use hs_db::Db;
use hs_types::model::{ApiKey, Node, PreAuthKey, User};
use hs_types::{NodeId, UserId};

use crate::store::{
    NewApiKey, NewPreAuthKey, NewUser, Store, StoreError, StoreResult, StoredPolicy,
};

impl From<hs_db::Error> for StoreError {
    fn from(e: hs_db::Error) -> Self {
        match e {
            hs_db::Error::NotFound(m) => Self::NotFound(m),
            hs_db::Error::Conflict(m) => Self::Conflict(m),
            other => Self::Backend(other.to_string()),
        }
    }
}

/// Inside a transaction, a rule broken by the request; carried out through hs-db's error
/// type so the transaction rolls back, then turned back into [`StoreError::Invalid`].
const INVALID_MARK: &str = "invalid-request: ";

fn invalid(msg: String) -> hs_db::Error {
    hs_db::Error::Config(format!("{INVALID_MARK}{msg}"))
}

fn map(e: hs_db::Error) -> StoreError {
    match e {
        hs_db::Error::Config(m) if m.starts_with(INVALID_MARK) => {
            StoreError::Invalid(m.trim_start_matches(INVALID_MARK).to_owned())
        }
        other => other.into(),
    }
}

fn node_or_missing(n: Option<Node>, id: NodeId) -> hs_db::Result<Node> {
    n.ok_or_else(|| hs_db::Error::NotFound(format!("node {}", id.get())))
}

impl Store for Db {
    fn ping(&self) -> bool {
        self.tx(|c| c.execute_raw("SELECT 1")).is_ok()
    }

    fn create_user(&self, u: NewUser, now: DateTime<Utc>) -> StoreResult<User> {
        let new = hs_db::NewUser {
            name: u.name,
            display_name: u.display_name,
            email: u.email,
            provider_identifier: None,
            provider: String::new(),
            profile_pic_url: u.profile_pic_url,
        };
        self.tx(|c| {
            if !c.users_by_name(&new.name)?.is_empty() {
                return Err(hs_db::Error::Conflict(format!("user {:?}", new.name)));
            }
            c.create_user(&new, now)
        })
        .map_err(map)
    }

    fn user(&self, id: UserId) -> StoreResult<Option<User>> {
        self.tx(|c| c.get_user(id)).map_err(map)
    }

    fn list_users(&self) -> StoreResult<Vec<User>> {
        self.tx(|c| c.list_users()).map_err(map)
    }

    fn rename_user(&self, id: UserId, new_name: &str, now: DateTime<Utc>) -> StoreResult<User> {
        self.tx(|c| {
            if c.users_by_name(new_name)?.iter().any(|u| u.id != id) {
                return Err(hs_db::Error::Conflict(format!("user {new_name:?}")));
            }
            c.rename_user(id, new_name, now)
        })
        .map_err(map)
    }

    fn delete_user(&self, id: UserId) -> StoreResult<()> {
        self.tx(|c| {
            let owned = c.list_nodes_by_user(id)?.len();
            if owned > 0 {
                return Err(invalid(format!(
                    "user {} still owns {owned} node(s): delete or retag them first",
                    id.get()
                )));
            }
            c.delete_user(id)
        })
        .map_err(map)
    }

    fn create_preauth_key(&self, k: NewPreAuthKey, now: DateTime<Utc>) -> StoreResult<PreAuthKey> {
        let new = hs_db::NewPreAuthKey {
            user_id: k.user_id,
            reusable: k.reusable,
            ephemeral: k.ephemeral,
            tags: k.tags,
            expiration: k.expiration,
            description: String::new(),
        };
        self.tx(|c| c.insert_pre_auth_key(&new, &k.prefix, &k.hash, now))
            .map_err(map)
    }

    fn preauth_key(&self, id: u64) -> StoreResult<Option<PreAuthKey>> {
        self.tx(|c| c.get_pre_auth_key(id)).map_err(map)
    }

    fn list_preauth_keys(&self) -> StoreResult<Vec<PreAuthKey>> {
        self.tx(|c| c.list_pre_auth_keys(None)).map_err(map)
    }

    fn expire_preauth_key(&self, id: u64, at: DateTime<Utc>) -> StoreResult<()> {
        self.tx(|c| c.expire_pre_auth_key(id, at)).map_err(map)
    }

    fn delete_preauth_key(&self, id: u64) -> StoreResult<()> {
        self.tx(|c| c.delete_pre_auth_key(id)).map_err(map)
    }

    fn create_api_key(&self, k: NewApiKey, now: DateTime<Utc>) -> StoreResult<ApiKey> {
        let new = hs_db::NewApiKey {
            expiration: k.expiration,
            user_id: None,
        };
        self.tx(|c| c.insert_api_key(&new, &k.prefix, &k.hash, now))
            .map_err(map)
    }

    fn api_key(&self, id: u64) -> StoreResult<Option<ApiKey>> {
        self.tx(|c| c.get_api_key(id)).map_err(map)
    }

    fn api_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<ApiKey>> {
        self.tx(|c| c.api_key_by_prefix(prefix)).map_err(map)
    }

    fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.tx(|c| c.list_api_keys()).map_err(map)
    }

    fn expire_api_key(&self, id: u64, at: DateTime<Utc>) -> StoreResult<()> {
        self.tx(|c| c.expire_api_key(id, at)).map_err(map)
    }

    fn delete_api_key(&self, id: u64) -> StoreResult<()> {
        self.tx(|c| c.delete_api_key(id)).map_err(map)
    }

    fn touch_api_key(&self, id: u64, at: DateTime<Utc>) -> StoreResult<()> {
        self.tx(|c| c.touch_api_key(id, at)).map_err(map)
    }

    fn node(&self, id: NodeId) -> StoreResult<Option<Node>> {
        self.tx(|c| c.get_node(id)).map_err(map)
    }

    fn list_nodes(&self) -> StoreResult<Vec<Node>> {
        self.tx(|c| c.list_nodes()).map_err(map)
    }

    fn delete_node(&self, id: NodeId) -> StoreResult<()> {
        self.tx(|c| c.delete_node(id)).map_err(map)
    }

    fn set_node_expiry(
        &self,
        id: NodeId,
        expiry: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<Node> {
        self.tx(|c| {
            c.set_node_expiry(id, expiry, now)?;
            node_or_missing(c.get_node(id)?, id)
        })
        .map_err(map)
    }

    fn rename_node(&self, id: NodeId, given_name: &str, now: DateTime<Utc>) -> StoreResult<Node> {
        self.tx(|c| {
            node_or_missing(c.get_node(id)?, id)?;
            if c.list_nodes()?
                .iter()
                .any(|n| n.id != id && n.given_name == given_name)
            {
                return Err(invalid(format!(
                    "node name {given_name:?} is already used by another node"
                )));
            }
            c.set_node_given_name(id, given_name, now)?;
            node_or_missing(c.get_node(id)?, id)
        })
        .map_err(map)
    }

    fn set_node_tags(&self, id: NodeId, tags: &[String], now: DateTime<Utc>) -> StoreResult<Node> {
        self.tx(|c| {
            let mut node = node_or_missing(c.get_node(id)?, id)?;
            node.tags = tags.to_vec();
            // Tags and user ownership are exclusive: tags own a tagged node.
            if !node.tags.is_empty() {
                node.user_id = None;
            }
            node.updated_at = now;
            c.upsert_node(&node)?;
            node_or_missing(c.get_node(id)?, id)
        })
        .map_err(map)
    }

    fn set_approved_routes(
        &self,
        id: NodeId,
        routes: &[IpNet],
        now: DateTime<Utc>,
    ) -> StoreResult<Node> {
        self.tx(|c| {
            c.set_node_approved_routes(id, routes, now)?;
            node_or_missing(c.get_node(id)?, id)
        })
        .map_err(map)
    }

    fn policy(&self) -> StoreResult<Option<StoredPolicy>> {
        Ok(self
            .tx(|c| c.get_policy())
            .map_err(map)?
            .map(|p| StoredPolicy {
                data: p.data,
                updated_at: p.updated_at,
            }))
    }

    fn set_policy(&self, data: &str, now: DateTime<Utc>) -> StoreResult<StoredPolicy> {
        let p = self.tx(|c| c.set_policy(data, now)).map_err(map)?;
        Ok(StoredPolicy {
            data: p.data,
            updated_at: p.updated_at,
        })
    }
}
