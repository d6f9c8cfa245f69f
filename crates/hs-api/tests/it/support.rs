//! Fixtures: a real SQLite database in a temp dir, a fixed clock, and a stand-in control
//! plane that holds pending registrations the way hs-control's cache does.

#![allow(unreachable_pub, reason = "shared by the test modules of this binary")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use ipnet::IpNet;
use tower::ServiceExt;

use hs_api::{Admin, ApiError, ControlHooks, DbOnly, PolicyMode};
use hs_db::{Db, DbConfig, SqliteConfig};
use hs_types::model::{Node, PreAuthKey, RegisterMethod, User};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic, UserId};

/// The fixed "now" of every test.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).single().unwrap()
}

/// An API-key expiration 90 days after [`now`] (the CLI's default lifetime). Without one a
/// key is stored with Go's zero time and is born expired, as in Go Headscale.
pub fn later() -> DateTime<Utc> {
    now() + chrono::Duration::days(90)
}

/// A control plane stand-in: pending registrations by auth id, nodes created on register,
/// and a record of the notifications the API sent.
#[derive(Default)]
pub struct FakeControl {
    pub db: Mutex<Option<Db>>,
    pub pending: Mutex<HashMap<String, String>>,
    pub owned_tags: Vec<String>,
    pub changed: Mutex<Vec<u64>>,
    pub deleted: Mutex<Vec<u64>>,
    pub policies: Mutex<Vec<String>>,
}

impl ControlHooks for FakeControl {
    fn node_changed(&self, node: &Node) {
        self.changed.lock().unwrap().push(node.id.get());
    }
    fn node_deleted(&self, id: NodeId) {
        self.deleted.lock().unwrap().push(id.get());
    }
    fn policy_changed(&self, policy: &str) {
        self.policies.lock().unwrap().push(policy.to_owned());
    }
    fn check_policy(&self, policy: &str, users: &[User], nodes: &[Node]) -> Result<(), String> {
        DbOnly.check_policy(policy, users, nodes)
    }
    fn check_tags(&self, tags: &[String]) -> Result<(), String> {
        match tags.iter().find(|t| !self.owned_tags.contains(t)) {
            None => Ok(()),
            Some(t) => Err(format!("tag {t:?} is not owned")),
        }
    }
    fn is_online(&self, _id: NodeId) -> bool {
        false
    }
    fn available_routes(&self, node: &Node) -> Vec<IpNet> {
        hs_api::hooks::routable_ips(node)
    }
    fn auth_register(&self, auth_id: &str, user: &User) -> Result<Node, ApiError> {
        let hostname = self
            .pending
            .lock()
            .unwrap()
            .remove(auth_id)
            .ok_or_else(|| ApiError::not_found("no pending registration"))?;
        let mut n = node(200, &hostname, Some(user.id));
        n.register_method = RegisterMethod::Cli;
        let db = self.db.lock().unwrap().clone().unwrap();
        Ok(db.tx(|c| c.create_node(&n)).unwrap())
    }
    fn auth_approve(&self, auth_id: &str) -> Result<(), ApiError> {
        self.pending
            .lock()
            .unwrap()
            .remove(auth_id)
            .map(|_| ())
            .ok_or_else(|| ApiError::not_found("no pending authentication"))
    }
    fn auth_reject(&self, auth_id: &str) -> Result<(), ApiError> {
        self.auth_approve(auth_id)
    }
    fn debug_create_node(
        &self,
        auth_id: &str,
        user: &User,
        name: &str,
        _routes: &[IpNet],
    ) -> Result<Node, ApiError> {
        let mut n = node(201, name, Some(user.id));
        n.register_method = RegisterMethod::Cli;
        self.pending
            .lock()
            .unwrap()
            .insert(auth_id.to_owned(), name.to_owned());
        Ok(n)
    }
    fn backfill_ips(&self, confirmed: bool) -> Result<Vec<String>, ApiError> {
        DbOnly.backfill_ips(confirmed)
    }
}

/// A valid auth id (`hskey-authreq-` + 24 characters).
pub const AUTH_ID: &str = "hskey-authreq-abcdefabcdefabcdefabcdef";

/// A node as the control plane would store it, with keys derived from `seed`.
pub fn node(seed: u8, name: &str, user: Option<UserId>) -> Node {
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
        last_seen: Some(now()),
        approved_routes: vec![],
        created_at: now(),
        updated_at: now(),
    }
}

/// A database (SQLite in a temp dir, or a fresh PostgreSQL database) with an [`Admin`] over it.
pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub _pg: Option<Arc<super::pg::PgServer>>,
    pub db: Db,
    pub control: Arc<FakeControl>,
    pub admin: Admin,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with(FakeControl::default(), PolicyMode::Database)
    }

    pub fn with(control: FakeControl, mode: PolicyMode) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DbConfig::Sqlite(SqliteConfig::new(dir.path().join("db.sqlite")));
        Self::open(dir, &cfg, control, mode)
    }

    /// The same fixture on a fresh PostgreSQL database.
    pub fn postgres() -> Self {
        let pg = super::pg::PgServer::get();
        let cfg = pg.fresh_db();
        let dir = tempfile::tempdir().unwrap();
        let mut f = Self::open(dir, &cfg, FakeControl::default(), PolicyMode::Database);
        f._pg = Some(pg);
        f
    }

    fn open(
        dir: tempfile::TempDir,
        cfg: &DbConfig,
        control: FakeControl,
        mode: PolicyMode,
    ) -> Self {
        let db = Db::open(cfg).unwrap();
        *control.db.lock().unwrap() = Some(db.clone());
        let control = Arc::new(control);
        let admin = Admin::new(Arc::new(db.clone()), control.clone(), Arc::new(now), mode);
        Self {
            _dir: dir,
            _pg: None,
            db,
            control,
            admin,
        }
    }

    pub fn user(&self, name: &str) -> User {
        let u = hs_db::NewUser {
            name: name.to_owned(),
            display_name: String::new(),
            email: String::new(),
            provider_identifier: None,
            provider: String::new(),
            profile_pic_url: String::new(),
        };
        self.db.tx(|c| c.create_user(&u, now())).unwrap()
    }

    pub fn pak(
        &self,
        user: Option<UserId>,
        tags: &[&str],
        reusable: bool,
        ephemeral: bool,
        expiration: Option<DateTime<Utc>>,
    ) -> PreAuthKey {
        let k = hs_db::NewPreAuthKey {
            user_id: user,
            reusable,
            ephemeral,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            expiration,
            description: String::new(),
        };
        let prefix = format!("{:012x}", rand::random::<u64>());
        self.db
            .tx(|c| c.insert_pre_auth_key(&k, &prefix, b"$2a$10$notarealhash", now()))
            .unwrap()
    }

    /// A node registered with a fresh single-use key of `owner` (`tags` on both).
    pub fn node_with_key(&self, seed: u8, name: &str, owner: &User, tags: &[&str]) -> Node {
        let k = self.pak(Some(owner.id), tags, false, false, None);
        self.db.tx(|c| c.mark_pre_auth_key_used(k.id)).unwrap();
        let mut n = node(seed, name, (tags.is_empty()).then_some(owner.id));
        n.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        n.auth_key_id = Some(k.id);
        self.db.tx(|c| c.create_node(&n)).unwrap()
    }

    pub fn api_key_row(&self, expiration: Option<DateTime<Utc>>) -> hs_types::model::ApiKey {
        let k = hs_db::NewApiKey {
            expiration,
            user_id: None,
        };
        let prefix = format!("{:012x}", rand::random::<u64>());
        self.db
            .tx(|c| c.insert_api_key(&k, &prefix, b"$2a$10$notarealhash", now()))
            .unwrap()
    }

    /// Sends a request through the unauthenticated router (the unix-socket surface).
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<&str>,
    ) -> (u16, String, serde_json::Value) {
        call(
            hs_api::serve::app(self.admin.clone(), false),
            method,
            uri,
            body,
            None,
        )
        .await
    }
}

/// One request through `router`; returns status, content type and JSON body (or Null).
pub async fn call(
    router: axum::Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
    bearer: Option<&str>,
) -> (u16, String, serde_json::Value) {
    let mut req = http::Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let req = req.body(Body::from(body.unwrap_or("").to_owned())).unwrap();
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{method} {uri}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, ct, json)
}
