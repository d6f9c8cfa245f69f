//! Fixtures: a real SQLite (or PostgreSQL) database, hs-control's real control state over
//! it (through hs-testkit), and a fixed clock for the API's own timestamps.

#![allow(unreachable_pub, reason = "shared by the test modules of this binary")]

use std::sync::Arc;

use axum::body::Body;
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use tower::ServiceExt;

use hs_api::{Admin, PolicyMode};
use hs_control::ControlState;
use hs_db::{Db, DbConfig, SqliteConfig};
use hs_types::UserId;
use hs_types::model::{Node, PreAuthKey, User};

/// The fixed "now" of every test.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).single().unwrap()
}

/// An API-key expiration 90 days after [`now`] (the CLI's default lifetime). Without one a
/// key is stored with Go's zero time and is born expired, as in Go Headscale.
pub fn later() -> DateTime<Utc> {
    now() + chrono::Duration::days(90)
}

/// A valid auth id (`hskey-authreq-` + 24 characters).
pub const AUTH_ID: &str = "hskey-authreq-abcdefabcdefabcdefabcdef";

/// A node as a registration would store it, with keys derived from `seed`.
pub fn node(seed: u8, name: &str, user: Option<UserId>) -> Node {
    hs_testkit::node(seed, name, user, now())
}

/// A database (SQLite in a temp dir, or a fresh PostgreSQL database) with an [`Admin`] over it.
pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub _pg: Option<Arc<hs_testkit::pg::PgServer>>,
    pub db: Db,
    pub state: ControlState,
    pub admin: Admin,
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with(PolicyMode::Database).await
    }

    pub async fn with(mode: PolicyMode) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DbConfig::Sqlite(SqliteConfig::new(dir.path().join("db.sqlite")));
        Self::open(dir, &cfg, mode).await
    }

    /// The same fixture on a fresh PostgreSQL database.
    pub async fn postgres() -> Self {
        let pg = hs_testkit::pg::PgServer::get();
        let cfg = pg.fresh_db();
        let dir = tempfile::tempdir().unwrap();
        let mut f = Self::open(dir, &cfg, PolicyMode::Database).await;
        f._pg = Some(pg);
        f
    }

    async fn open(dir: tempfile::TempDir, cfg: &DbConfig, mode: PolicyMode) -> Self {
        let db = Db::open(cfg).unwrap();
        // Go Headscale's parity goldens register nodes without addresses (no tailnet
        // prefixes in their set-up); the same here, so bodies compare field for field.
        let state =
            hs_testkit::control_state_with(&db, hs_testkit::test_config(), (None, None)).await;
        let admin = Admin::new(Arc::new(db.clone()), state.clone(), Arc::new(now), mode);
        Self {
            _dir: dir,
            _pg: None,
            db,
            state,
            admin,
        }
    }

    /// Files a pending interactive registration from a client named `hostname`.
    pub fn pending(&self, auth_id: &str, hostname: &str) {
        hs_testkit::pending_registration(&self.state, auth_id, hostname);
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

    /// [`Self::node_with_key`], then announced to the control plane, as a registration
    /// would be.
    pub async fn live_node(&self, seed: u8, name: &str, owner: &User, tags: &[&str]) -> Node {
        let n = self.node_with_key(seed, name, owner, tags);
        self.state.reload_node(n.id).await.unwrap()
    }

    pub fn api_key_row(&self, expiration: Option<DateTime<Utc>>) -> hs_types::model::ApiKey {
        let k = hs_db::NewApiKey { expiration };
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
    } else if ct.starts_with("text/plain") {
        // The 401 answer, plain text as Go's.
        serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
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
