//! An in-process control server on 127.0.0.1 over a real SQLite file, and helpers to drive
//! it with Tailscale's Rust client (`ts_control` 0.6.1).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures_util::StreamExt as _;
use hs_control::{ControlState, StateConfig, control_routes};
use hs_db::{AllocationStrategy, Db, DbConfig, NewPreAuthKey, NewUser, SqliteConfig};
use hs_mapper::MapperConfig;
use hs_noise::Ts2021;
use hs_types::model::Node;
use hs_types::tailcfg::DERPMap;
use hs_types::{MachinePrivate, UserId};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::net::TcpListener;
use ts_http_util::{ClientExt as _, ResponseExt as _};
use url::Url;

pub(crate) struct Harness {
    pub(crate) url: Url,
    pub(crate) st: ControlState,
    pub(crate) db: Db,
    pub(crate) user: UserId,
    _dir: tempfile::TempDir,
}

/// One DERP region on loopback (the client wants a non-null region map; nothing dials it).
pub(crate) fn derp_map() -> DERPMap {
    serde_json::from_str(
        r#"{"Regions":{"999":{"RegionID":999,"RegionCode":"test","RegionName":"Test",
            "Nodes":[{"Name":"999a","RegionID":999,"HostName":"127.0.0.1","DERPPort":1}]}}}"#,
    )
    .unwrap()
}

pub(crate) fn state_config(url: &str) -> StateConfig {
    StateConfig {
        server_url: url.to_owned(),
        node_expiry: None,
        ephemeral_inactivity_timeout: Duration::from_millis(300),
        offline_grace: Duration::from_millis(100),
        register_cache_expiration: Duration::from_secs(15 * 60),
    }
}

/// The control state the harness serves, over `db`; called again on the same database it is
/// what a restarted server would load.
pub(crate) async fn start_state(db: &Db, url: &Url) -> ControlState {
    start_state_with(db, state_config(url.as_str().trim_end_matches('/'))).await
}

/// The same with explicit settings.
async fn start_state_with(db: &Db, cfg: StateConfig) -> ControlState {
    let mapper = MapperConfig::new("example.com", &derp_map(), None, false, false, false).unwrap();
    ControlState::start(
        db.clone(),
        cfg,
        mapper,
        (
            Some("100.64.0.0/10".parse().unwrap()),
            Some("fd7a:115c:a1e0::/48".parse().unwrap()),
            AllocationStrategy::Sequential,
        ),
    )
    .await
    .unwrap()
}

impl Harness {
    pub(crate) async fn start() -> Self {
        Self::start_serving(None, None).await
    }

    /// The same with `tuning.register_cache_expiration` set to `expiration`.
    pub(crate) async fn start_expiring(expiration: Duration) -> Self {
        Self::start_serving(None, Some(expiration)).await
    }

    /// The same, served by [`hs_control::Server`] (the production listener, with its
    /// per-client limits) with `limits` instead of a bare `axum::serve`.
    pub(crate) async fn start_limited(limits: hs_config::LimitsConfig) -> Self {
        Self::start_serving(Some(limits), None).await
    }

    async fn start_serving(
        limits: Option<hs_config::LimitsConfig>,
        expiration: Option<Duration>,
    ) -> Self {
        let config = |url: &Url| {
            let mut c = state_config(url.as_str().trim_end_matches('/'));
            if let Some(e) = expiration {
                c.register_cache_expiration = e;
            }
            c
        };
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&DbConfig::Sqlite(SqliteConfig::new(
            dir.path().join("db.sqlite"),
        )))
        .unwrap();
        let user = db
            .tx(|c| {
                c.create_user(
                    &NewUser {
                        name: "alice".into(),
                        email: "alice@example.com".into(),
                        ..NewUser::default()
                    },
                    Utc::now(),
                )
            })
            .unwrap()
            .id;
        let ts = Arc::new(Ts2021::new(Arc::new(MachinePrivate::generate(
            &mut rand::rngs::OsRng,
        ))));
        let (url, st) = if let Some(limits) = limits {
            let server = hs_control::Server::bind_addr("127.0.0.1:0").await.unwrap();
            let url: Url = format!("http://{}", server.local_addr()).parse().unwrap();
            let st = start_state_with(&db, config(&url)).await;
            let server = server
                .with_limits(limits)
                .with_routes(control_routes(st.clone(), ts));
            tokio::spawn(server.serve(std::future::pending()));
            (url, st)
        } else {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let url: Url = format!("http://{addr}").parse().unwrap();
            let st = start_state_with(&db, config(&url)).await;
            let app = control_routes(st.clone(), ts);
            tokio::spawn(async move { axum::serve(listener, app).await });
            (url, st)
        };
        Self {
            url,
            st,
            db,
            user,
            _dir: dir,
        }
    }

    pub(crate) fn key(&self, reusable: bool, ephemeral: bool) -> String {
        self.key_with(NewPreAuthKey {
            user_id: Some(self.user),
            reusable,
            ephemeral,
            ..NewPreAuthKey::default()
        })
    }

    pub(crate) fn key_with(&self, k: NewPreAuthKey) -> String {
        self.db
            .create_pre_auth_key(&mut rand::rngs::OsRng, &k, Utc::now())
            .unwrap()
            .1
    }

    pub(crate) fn node_count(&self) -> usize {
        self.db.tx(|c| c.list_nodes()).unwrap().len()
    }

    /// Registers a new client as `user` with a fresh single-use key; returns it with its
    /// stored node.
    pub(crate) async fn join_as(&self, host: &str, user: UserId) -> (Client, Node) {
        let key = self.key_with(NewPreAuthKey {
            user_id: Some(user),
            ..NewPreAuthKey::default()
        });
        let c = Client::registered(self, host, &key).await;
        let node = self
            .db
            .tx(|t| t.list_nodes())
            .unwrap()
            .into_iter()
            .find(|n| n.hostname == host)
            .unwrap();
        (c, node)
    }
}

pub(crate) fn config(url: &Url, host: &str) -> ts_control::Config {
    ts_control::Config {
        server_url: url.clone(),
        hostname: Some(host.to_owned()),
        client_name: None,
        tags: Vec::new(),
        ephemeral: false,
    }
}

/// A client with its own keys and Noise connection.
pub(crate) struct Client {
    pub(crate) keys: ts_keys::NodeState,
    pub(crate) conn: ts_control::client::HttpConn,
    pub(crate) cfg: ts_control::Config,
}

impl Client {
    pub(crate) async fn connect(h: &Harness, host: &str) -> Self {
        let keys = ts_keys::NodeState::generate();
        let conn = ts_control::client::connect(&h.url, &keys.machine_keys)
            .await
            .unwrap();
        Self {
            keys,
            conn,
            cfg: config(&h.url, host),
        }
    }

    /// A new client registered with `key` (which must be accepted).
    pub(crate) async fn registered(h: &Harness, host: &str, key: &str) -> Self {
        let c = Self::connect(h, host).await;
        c.register(h, key).await.unwrap();
        c
    }

    pub(crate) async fn register(
        &self,
        h: &Harness,
        key: &str,
    ) -> Result<(), ts_control::RegistrationError> {
        ts_control::register(&self.cfg, &h.url, Some(key), None, &self.keys, &self.conn).await
    }

    pub(crate) async fn stream(
        &self,
        h: &Harness,
    ) -> impl futures_util::Stream<Item = ts_control::StateUpdate> + Unpin + use<> {
        Box::pin(
            ts_control::client::start_stream(&h.url, &self.keys, &self.cfg, self.conn.clone())
                .await
                .unwrap(),
        )
    }
}

/// The next non-empty update, within a generous bound (a hang guard, not a timing assert).
pub(crate) async fn next_update(
    s: &mut (impl futures_util::Stream<Item = ts_control::StateUpdate> + Unpin),
) -> ts_control::StateUpdate {
    loop {
        let u = tokio::time::timeout(Duration::from_secs(20), s.next())
            .await
            .expect("no map update within 20 s")
            .expect("map stream ended");
        if u.node.is_some() || u.peer_update.is_some() || u.packetfilter.is_some() {
            return u;
        }
    }
}

/// Opens a streaming map request for `c` (with `hostinfo` when given) and returns the body
/// to read frames from with [`read_frame`].
pub(crate) async fn open_map(
    c: &Client,
    h: &Harness,
    hostinfo: Option<serde_json::Value>,
) -> impl AsyncRead + Unpin + Send + use<> {
    let mut fields = serde_json::json!({"KeepAlive": true, "Stream": true});
    if let Some(hi) = hostinfo {
        fields["Hostinfo"] = hi;
    }
    post_map(c, h, fields).await
}

/// Posts a zstd-compressed map request for `c` with `fields` added, checks it is answered
/// 200 and returns the response body.
pub(crate) async fn post_map(
    c: &Client,
    h: &Harness,
    fields: serde_json::Value,
) -> impl AsyncRead + Unpin + Send + use<> {
    let mut req = serde_json::json!({"Version": 130, "Compress": "zstd",
        "NodeKey": c.keys.node_keys.public.to_string()});
    for (k, v) in fields.as_object().expect("fields is an object") {
        req[k] = v.clone();
    }
    let resp = c
        .conn
        .post(
            &h.url.join("/machine/map").unwrap(),
            [],
            Bytes::from(req.to_string()).into(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_read()
}

/// The next frame's JSON, or `None` at a clean end of stream (within a hang guard).
pub(crate) async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> Option<serde_json::Value> {
    let read = async {
        let mut len = [0u8; 4];
        if r.read_exact(&mut len).await.is_err() {
            return None;
        }
        let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut buf).await.unwrap();
        let mut whole = len.to_vec();
        whole.extend_from_slice(&buf);
        let (json, rest) = hs_mapper::decode_frame(&whole).unwrap();
        assert!(rest.is_empty());
        Some(serde_json::from_slice(&json).unwrap())
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("no frame within 20 s")
}
