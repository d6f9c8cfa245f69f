//! [`Store`] on hs-db: each method is one hs-db transaction. Only reads and the keys live
//! here; changes to users, nodes and the policy are hs-control's commands.

use chrono::{DateTime, Utc};

use hs_db::Db;
use hs_types::model::{ApiKey, Node, PreAuthKey, User};
use hs_types::{NodeId, UserId};

use crate::store::{NewApiKey, NewPreAuthKey, Store, StoreError, StoreResult, StoredPolicy};

impl From<hs_db::Error> for StoreError {
    fn from(e: hs_db::Error) -> Self {
        match e {
            hs_db::Error::NotFound(m) => Self::NotFound(m),
            hs_db::Error::Conflict(m) => Self::Conflict(m),
            e => match e.unavailable_reason() {
                Some(why) => Self::Unavailable(why, e.to_string()),
                None => Self::Backend(e.to_string()),
            },
        }
    }
}

fn map(e: hs_db::Error) -> StoreError {
    e.into()
}

impl Store for Db {
    fn ping(&self) -> bool {
        self.tx(|c| c.execute_raw("SELECT 1")).is_ok()
    }

    fn user(&self, id: UserId) -> StoreResult<Option<User>> {
        self.tx(|c| c.get_user(id)).map_err(map)
    }

    fn list_users(&self) -> StoreResult<Vec<User>> {
        self.tx(|c| c.list_users()).map_err(map)
    }

    fn create_preauth_key(&self, k: NewPreAuthKey, now: DateTime<Utc>) -> StoreResult<PreAuthKey> {
        let new = hs_db::NewPreAuthKey {
            user_id: k.user_id,
            reusable: k.reusable,
            ephemeral: k.ephemeral,
            tags: k.tags,
            expiration: k.expiration,
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

    fn node(&self, id: NodeId) -> StoreResult<Option<Node>> {
        self.tx(|c| c.get_node(id)).map_err(map)
    }

    fn list_nodes(&self) -> StoreResult<Vec<Node>> {
        self.tx(|c| c.list_nodes()).map_err(map)
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
}
