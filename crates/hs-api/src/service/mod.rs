//! The admin operations, once, for both front ends (REST and gRPC): input checks, reads and
//! key writes through the [`Store`] on the blocking pool, every change to users, nodes and
//! the policy through hs-control's commands ([`ControlState`]), and the error each failure
//! maps to.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use hs_types::UserId;
use hs_types::model::{ApiKey, Node, PreAuthKey, User};

use crate::apikey;
use crate::error::ApiError;
use crate::store::{NewApiKey, NewPreAuthKey, NewUser, Store, StoreError, StoredPolicy};
use hs_control::ControlState;

mod debug_node;
mod nodes;
mod validate;

pub(crate) use validate::validate_tag;
use validate::validate_user_name;
pub use validate::{AUTH_ID_PREFIX, zero_instant};

/// Where the policy lives (`policy.mode` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyMode {
    /// Read from `policy.path`; `policy set` is refused.
    #[default]
    File,
    /// Stored in the database; `policy set` writes it.
    Database,
}

/// The wall clock, as a parameter so tests can fix time.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system clock: the one place hs-api reads time.
pub fn system_clock() -> Clock {
    #[allow(
        clippy::disallowed_methods,
        reason = "the admin API's single clock read"
    )]
    Arc::new(Utc::now)
}

/// A node with what the API shows alongside it.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// The node.
    pub node: Node,
    /// Its owner, when untagged.
    pub user: Option<User>,
    /// The pre-auth key it registered with, with that key's owner.
    pub preauth_key: Option<(PreAuthKey, Option<User>)>,
    /// Whether it is connected now.
    pub online: bool,
    /// Routes it advertises.
    pub available_routes: Vec<IpNet>,
}

/// A pre-auth key with its owner.
#[derive(Debug, Clone)]
pub struct PreAuthKeyView {
    /// The key; `full` is set only in the answer to create.
    pub key: PreAuthKey,
    /// The full key text, only right after creation.
    pub full: Option<String>,
    /// Its owner.
    pub user: Option<User>,
}

/// Which API key an expire/delete request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeyRef {
    /// By database id.
    Id(u64),
    /// By public prefix.
    Prefix(String),
}

/// Filters for listing users; all that are set must match.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// User id.
    pub id: Option<UserId>,
    /// Exact name.
    pub name: Option<String>,
    /// Exact e-mail.
    pub email: Option<String>,
}

/// The admin API service shared by the REST and gRPC front ends.
#[derive(Clone)]
pub struct Admin {
    store: Arc<dyn Store>,
    control: ControlState,
    clock: Clock,
    policy_mode: PolicyMode,
    policy_path: Option<PathBuf>,
    keys: Arc<hs_control::SecretCache>,
    oauth: crate::v2::OAuthStore,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("policy_mode", &self.policy_mode)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// A service reading through `store` and changing the tailnet through `control`.
    pub fn new(
        store: Arc<dyn Store>,
        control: ControlState,
        clock: Clock,
        policy_mode: PolicyMode,
    ) -> Self {
        Self {
            store,
            control,
            clock,
            policy_mode,
            policy_path: None,
            keys: Arc::default(),
            oauth: crate::v2::OAuthStore::in_memory(),
        }
    }

    /// Keeps `/api/v2`'s OAuth clients and DNS edits in `store` (by default in memory).
    #[must_use]
    pub fn with_oauth_store(mut self, store: crate::v2::OAuthStore) -> Self {
        self.oauth = store;
        self
    }

    /// `/api/v2`'s OAuth clients and DNS edits.
    pub fn oauth(&self) -> &crate::v2::OAuthStore {
        &self.oauth
    }

    /// The policy file (`policy.path`) that `get_policy` reads in [`PolicyMode::File`].
    #[must_use]
    pub fn with_policy_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.policy_path = Some(path.into());
        self
    }

    /// Where the policy is kept.
    pub fn policy_mode(&self) -> PolicyMode {
        self.policy_mode
    }

    /// The control plane this service changes.
    pub fn control(&self) -> &ControlState {
        &self.control
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Runs a store call on the blocking pool (hs-db is synchronous).
    async fn db<T, F>(&self, context: &'static str, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| ApiError::Internal(format!("{context}: task failed: {e}")))?
            .map_err(|e| ApiError::from_store(context, e))
    }

    // ---- health

    /// Whether the database answers.
    pub async fn health(&self) -> bool {
        self.db("health", |s| Ok(s.ping())).await.unwrap_or(false)
    }

    // ---- API keys

    /// Checks a bearer key; on success records it as seen now. Refuses unknown, malformed,
    /// expired and deleted keys alike with 401 so probing learns nothing.
    pub async fn authenticate(&self, key: &str) -> Result<ApiKey, ApiError> {
        let unauthorized = || ApiError::Unauthorized("invalid or expired API key".to_owned());
        let parsed = apikey::parse_api_key(key).map_err(|_| unauthorized())?;
        let prefix = parsed.prefix.to_owned();
        let secret = parsed.secret.to_owned();
        let now = self.now();
        let found = self
            .db("authenticating", move |s| s.api_key_by_prefix(&prefix))
            .await?
            .ok_or_else(unauthorized)?;
        if found.is_expired(now) {
            return Err(unauthorized());
        }
        let ok = if self.keys.hit(&found.prefix, &found.hash, &secret) {
            true
        } else {
            let (hash, s) = (found.hash.clone(), secret.clone());
            let ok = tokio::task::spawn_blocking(move || hs_db::secret::verify_secret(&s, &hash))
                .await
                .unwrap_or(false);
            if ok {
                self.keys.insert(&found.prefix, &found.hash, &secret);
            }
            ok
        };
        if !ok {
            return Err(unauthorized());
        }
        // Go Headscale 0.29.3 never records a key's use, so `last_seen` stays as it was and
        // `apikeys list` prints what Go prints; a request costs no database write either.
        Ok(found)
    }

    /// Creates an API key and returns its full text (shown once). Without an expiration the
    /// zero instant is stored, as Go Headscale does; that instant is in the past, so such a
    /// key is expired from the start (Headscale's `Expiration.Before(now)`), which is why the
    /// CLI always sends one (default 90 days).
    pub async fn create_api_key(
        &self,
        expiration: Option<DateTime<Utc>>,
    ) -> Result<String, ApiError> {
        let generated =
            tokio::task::spawn_blocking(
                || hs_db::secret::generate_api_key(&mut rand::thread_rng()),
            )
            .await
            .map_err(|e| ApiError::Internal(format!("creating API key: {e}")))?
            .map_err(|e| ApiError::Internal(format!("creating API key: {e}")))?;
        let expiration = Some(expiration.unwrap_or_else(zero_instant));
        let new = NewApiKey {
            prefix: generated.prefix.clone(),
            hash: generated.hash.clone(),
            expiration,
        };
        let now = self.now();
        self.db("creating API key", move |s| s.create_api_key(new, now))
            .await?;
        Ok(generated.full)
    }

    /// All API keys, ascending by id.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>, ApiError> {
        let mut keys = self.db("listing API keys", |s| s.list_api_keys()).await?;
        keys.sort_by_key(|k| k.id);
        Ok(keys)
    }

    async fn find_api_key(&self, r: ApiKeyRef) -> Result<ApiKey, ApiError> {
        match r {
            ApiKeyRef::Id(id) => self
                .db("looking up API key", move |s| s.api_key(id))
                .await?
                .ok_or_else(|| ApiError::not_found(format!("API key with id {id} not found"))),
            ApiKeyRef::Prefix(p) => {
                let prefix = apikey::display_prefix(&p).to_owned();
                let shown = prefix.clone();
                self.db("looking up API key", move |s| s.api_key_by_prefix(&prefix))
                    .await?
                    .ok_or_else(|| {
                        ApiError::not_found(format!("API key with prefix {shown:?} not found"))
                    })
            }
        }
    }

    /// Expires an API key now.
    pub async fn expire_api_key(&self, r: ApiKeyRef) -> Result<(), ApiError> {
        let key = self.find_api_key(r).await?;
        let now = self.now();
        self.db("expiring API key", move |s| s.expire_api_key(key.id, now))
            .await
    }

    /// Deletes an API key.
    pub async fn delete_api_key(&self, r: ApiKeyRef) -> Result<(), ApiError> {
        let key = self.find_api_key(r).await?;
        self.db("deleting API key", move |s| s.delete_api_key(key.id))
            .await
    }

    // ---- users

    /// Creates a user; 409 when the name is taken.
    pub async fn create_user(&self, new: NewUser) -> Result<User, ApiError> {
        validate_user_name(&new.name)?;
        let new = hs_db::NewUser {
            name: new.name,
            display_name: new.display_name,
            email: new.email,
            provider_identifier: None,
            provider: String::new(),
            profile_pic_url: new.profile_pic_url,
        };
        self.control
            .create_user(new)
            .await
            .map_err(|e| ApiError::from_control("creating user", e))
    }

    async fn user_required(&self, id: UserId) -> Result<User, ApiError> {
        self.db("looking up user", move |s| s.user(id))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("user with id {} not found", id.get())))
    }

    /// Looks a user up by name (or, when the text is a number, by id), 404 when absent.
    pub async fn user_by_name(&self, name: &str) -> Result<User, ApiError> {
        let users = self.db("looking up user", |s| s.list_users()).await?;
        let by_id = name.parse::<u64>().ok();
        users
            .into_iter()
            .find(|u| u.name == name || Some(u.id.get()) == by_id)
            .ok_or_else(|| ApiError::not_found(format!("user {name:?} not found")))
    }

    /// Renames a user; connected nodes see the new name at once.
    pub async fn rename_user(&self, id: UserId, new_name: String) -> Result<User, ApiError> {
        validate_user_name(&new_name)?;
        self.control
            .rename_user(id, new_name)
            .await
            .map_err(|e| ApiError::from_control("renaming user", e))
    }

    /// Deletes a user who owns no nodes (Go Headscale's rule and message otherwise).
    pub async fn delete_user(&self, id: UserId) -> Result<(), ApiError> {
        self.control
            .delete_user(id)
            .await
            .map_err(|e| ApiError::from_control("deleting user", e))
    }

    /// Users matching every set filter, ascending by id.
    pub async fn list_users(&self, f: UserFilter) -> Result<Vec<User>, ApiError> {
        let mut users = self.db("listing users", |s| s.list_users()).await?;
        users.retain(|u| {
            f.id.is_none_or(|id| u.id == id)
                && f.name.as_ref().is_none_or(|n| &u.name == n)
                && f.email.as_ref().is_none_or(|e| &u.email == e)
        });
        users.sort_by_key(|u| u.id.get());
        Ok(users)
    }

    // ---- pre-auth keys

    /// Creates a pre-auth key for `user` (or a tagged key when `user` is `None`).
    pub async fn create_preauth_key(
        &self,
        user: Option<UserId>,
        reusable: bool,
        ephemeral: bool,
        expiration: Option<DateTime<Utc>>,
        tags: Vec<String>,
    ) -> Result<PreAuthKeyView, ApiError> {
        for t in &tags {
            validate_tag(t)?;
        }
        let owner = match user {
            Some(id) => Some(self.user_required(id).await?),
            None if tags.is_empty() => {
                return Err(ApiError::bad_request(
                    "a pre-auth key needs a user or at least one tag",
                ));
            }
            None => None,
        };
        let generated = tokio::task::spawn_blocking(|| {
            hs_db::secret::generate_pre_auth_key(&mut rand::thread_rng())
        })
        .await
        .map_err(|e| ApiError::Internal(format!("creating pre-auth key: {e}")))?
        .map_err(|e| ApiError::Internal(format!("creating pre-auth key: {e}")))?;
        let new = NewPreAuthKey {
            prefix: generated.prefix.clone(),
            hash: generated.hash.clone(),
            user_id: owner.as_ref().map(|u| u.id),
            reusable,
            ephemeral,
            tags,
            expiration: Some(expiration.unwrap_or_else(zero_instant)),
        };
        let now = self.now();
        let key = self
            .db("creating pre-auth key", move |s| {
                s.create_preauth_key(new, now)
            })
            .await?;
        Ok(PreAuthKeyView {
            key,
            full: Some(generated.full),
            user: owner,
        })
    }

    async fn preauth_required(&self, id: u64) -> Result<PreAuthKey, ApiError> {
        self.db("looking up pre-auth key", move |s| s.preauth_key(id))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("pre-auth key with id {id} not found")))
    }

    /// Expires a pre-auth key now.
    pub async fn expire_preauth_key(&self, id: u64) -> Result<(), ApiError> {
        self.preauth_required(id).await?;
        let now = self.now();
        self.db("expiring pre-auth key", move |s| {
            s.expire_preauth_key(id, now)
        })
        .await
    }

    /// Deletes a pre-auth key.
    pub async fn delete_preauth_key(&self, id: u64) -> Result<(), ApiError> {
        self.preauth_required(id).await?;
        self.db("deleting pre-auth key", move |s| s.delete_preauth_key(id))
            .await
    }

    /// All pre-auth keys with their owners, ascending by id.
    pub async fn list_preauth_keys(&self) -> Result<Vec<PreAuthKeyView>, ApiError> {
        let (mut keys, users) = self
            .db("listing pre-auth keys", |s| {
                Ok((s.list_preauth_keys()?, s.list_users()?))
            })
            .await?;
        keys.sort_by_key(|k| k.id);
        Ok(keys
            .into_iter()
            .map(|key| {
                let user = find_user(&users, key.user_id);
                PreAuthKeyView {
                    key,
                    full: None,
                    user,
                }
            })
            .collect())
    }

    // ---- policy

    /// The stored policy; 500 (as Headscale answers) when none was ever stored.
    /// In file mode the configured policy file is read instead, with its modification time.
    pub async fn get_policy(&self) -> Result<StoredPolicy, ApiError> {
        self.current_policy()
            .await?
            // Go Headscale's wording ("acl policy not found"), which scripts match on.
            .ok_or_else(|| {
                ApiError::Internal("loading ACL from database: acl policy not found".into())
            })
    }

    /// The policy text in force: the file in file mode, else the stored one, `None` when
    /// none was ever stored.
    pub async fn current_policy(&self) -> Result<Option<StoredPolicy>, ApiError> {
        if self.policy_mode == PolicyMode::File {
            let path = self.policy_path.clone().ok_or_else(|| {
                ApiError::Internal(
                    "loading policy: policy.mode is file but policy.path is empty".into(),
                )
            })?;
            return tokio::task::spawn_blocking(move || read_policy_file(&path))
                .await
                .map_err(|e| ApiError::Internal(format!("loading policy: {e}")))?
                .map(Some);
        }
        self.db("loading policy", |s| s.policy()).await
    }

    /// Validates a policy against the live users and nodes without storing it.
    pub async fn check_policy(&self, policy: &str) -> Result<(), ApiError> {
        let (users, nodes) = self
            .db("checking policy", |s| {
                Ok((s.list_users()?, s.list_nodes()?))
            })
            .await?;
        crate::policy_check::check_policy_text(policy, &users, &nodes)
            .map_err(|m| ApiError::bad_request(format!("invalid policy: {m}")))
    }

    /// Validates and stores a policy (database mode only) and puts it in force, with the
    /// route approvals it causes, in one control-plane command.
    pub async fn set_policy(&self, policy: String) -> Result<StoredPolicy, ApiError> {
        self.set_policy_if(policy, None).await
    }

    /// [`Self::set_policy`] only if the stored policy is still `expected` (its text as the
    /// caller read it, `""` for none); otherwise [`ApiError::Conflict`].
    pub async fn set_policy_if(
        &self,
        policy: String,
        expected: Option<String>,
    ) -> Result<StoredPolicy, ApiError> {
        if self.policy_mode != PolicyMode::Database {
            return Err(ApiError::bad_request(
                "setting the policy is only possible when policy.mode is \"database\"",
            ));
        }
        self.check_policy(&policy).await?;
        let row = self
            .control
            .store_policy_if(policy, expected)
            .await
            .map_err(|e| match e {
                hs_control::Error::Db(hs_db::Error::Conflict(m)) => ApiError::Conflict(m),
                e => ApiError::bad_request(format!("invalid policy: {e}")),
            })?;
        Ok(StoredPolicy {
            data: row.data,
            updated_at: row.updated_at,
        })
    }
}

fn read_policy_file(path: &std::path::Path) -> Result<StoredPolicy, ApiError> {
    let err = |e: std::io::Error| {
        ApiError::Internal(format!("loading policy from {}: {e}", path.display()))
    };
    let data = std::fs::read_to_string(path).map_err(err)?;
    let updated_at = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(err)?
        .into();
    Ok(StoredPolicy { data, updated_at })
}

fn find_user(users: &[User], id: Option<UserId>) -> Option<User> {
    id.and_then(|id| users.iter().find(|u| u.id == id).cloned())
}
