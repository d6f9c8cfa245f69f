//! What the admin API needs from persistence, as one object-safe trait.
//!
//! hs-api knows no SQL: the wiring implements [`Store`] on top of hs-db's repository
//! functions. The methods are synchronous because hs-db is (diesel); the service runs them on
//! tokio's blocking pool. Secrets reach the store only as bcrypt hashes.

use chrono::{DateTime, Utc};

use hs_types::model::{ApiKey, Node, PreAuthKey, User};
use hs_types::{NodeId, UserId};

/// Why a store operation failed, in the terms the API maps to status codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The row the operation names does not exist (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// A uniqueness rule would be broken, e.g. a user name that exists (409).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The request breaks a rule the store enforces, e.g. deleting a user who still owns
    /// nodes (400).
    #[error("{0}")]
    Invalid(String),
    /// The database failed (500); the message is logged, not shown to clients verbatim.
    #[error("database error: {0}")]
    Backend(String),
    /// The database cannot take writes right now (503): why, for the operator, and the
    /// driver's message, for the log. Retrying later can succeed.
    #[error("database unavailable: {0}: {1}")]
    Unavailable(&'static str, String),
}

/// The result alias for [`Store`] methods.
pub type StoreResult<T> = Result<T, StoreError>;

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Unique login name.
    pub name: String,
    /// Display name, possibly empty.
    pub display_name: String,
    /// E-mail, possibly empty.
    pub email: String,
    /// Avatar URL, possibly empty.
    pub profile_pic_url: String,
}

/// A pre-auth key to create; the secret is already hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPreAuthKey {
    /// Public 12-hex-character prefix.
    pub prefix: String,
    /// bcrypt hash of the secret part.
    pub hash: Vec<u8>,
    /// Owner, or `None` for a tagged key.
    pub user_id: Option<UserId>,
    /// May register more than one node.
    pub reusable: bool,
    /// Nodes registered with it are ephemeral.
    pub ephemeral: bool,
    /// Tags given to nodes it registers.
    pub tags: Vec<String>,
    /// When it stops working.
    pub expiration: Option<DateTime<Utc>>,
}

/// An API key to create; the secret is already hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// Public 12-hex-character prefix.
    pub prefix: String,
    /// bcrypt hash of the secret part.
    pub hash: Vec<u8>,
    /// When it stops working (Headscale stores the zero instant when none is given).
    pub expiration: Option<DateTime<Utc>>,
}

/// The stored policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// The HuJSON text exactly as set.
    pub data: String,
    /// When it was last written.
    pub updated_at: DateTime<Utc>,
}

/// Persistence for the admin API. Every method is one short transaction.
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers.
    fn ping(&self) -> bool;
    /// One user by id.
    fn user(&self, id: UserId) -> StoreResult<Option<User>>;
    /// All users, ascending by id.
    fn list_users(&self) -> StoreResult<Vec<User>>;

    /// Stores a new pre-auth key.
    fn create_preauth_key(&self, key: NewPreAuthKey, now: DateTime<Utc>)
    -> StoreResult<PreAuthKey>;
    /// One pre-auth key by id.
    fn preauth_key(&self, id: u64) -> StoreResult<Option<PreAuthKey>>;
    /// All pre-auth keys, ascending by id.
    fn list_preauth_keys(&self) -> StoreResult<Vec<PreAuthKey>>;
    /// Sets a pre-auth key's expiration.
    fn expire_preauth_key(&self, id: u64, at: DateTime<Utc>) -> StoreResult<()>;
    /// Deletes a pre-auth key.
    fn delete_preauth_key(&self, id: u64) -> StoreResult<()>;

    /// Stores a new API key.
    fn create_api_key(&self, key: NewApiKey, now: DateTime<Utc>) -> StoreResult<ApiKey>;
    /// One API key by id.
    fn api_key(&self, id: u64) -> StoreResult<Option<ApiKey>>;
    /// One API key by its public prefix.
    fn api_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<ApiKey>>;
    /// All API keys, ascending by id.
    fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>>;
    /// Sets an API key's expiration.
    fn expire_api_key(&self, id: u64, at: DateTime<Utc>) -> StoreResult<()>;
    /// Deletes an API key.
    fn delete_api_key(&self, id: u64) -> StoreResult<()>;

    /// One node by id.
    fn node(&self, id: NodeId) -> StoreResult<Option<Node>>;
    /// All nodes, ascending by id.
    fn list_nodes(&self) -> StoreResult<Vec<Node>>;

    /// The stored policy, `None` when none was ever set.
    fn policy(&self) -> StoreResult<Option<StoredPolicy>>;
}
