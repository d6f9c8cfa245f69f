//! Faults under the real `headscale serve`: its PostgreSQL stopped and restarted under load,
//! its disk filling up, its SQLite database locked by another process. Clients are
//! Tailscale's Rust client over Noise; operator writes go through the CLI. Each fault must
//! give clear errors, keep serving what memory holds, lose no acknowledged write and need no
//! restart of the server once the fault is gone.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use hs_testkit::pg::PgServer;
use ts_http_util::ClientExt as _;

use super::headscale;

/// A running `headscale serve` with its config; killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) config: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `database:` section for an SQLite file.
pub(crate) fn sqlite_section(path: &Path) -> String {
    format!(
        "database:
  type: sqlite
  sqlite:
    path: {}
    write_ahead_log: true
",
        path.display()
    )
}

/// Writes a loopback-only config (no DERP URL is fetched) with `database` as its database
/// section, into `dir`.
pub(crate) fn write_config(dir: &Path, database: &str) -> PathBuf {
    let d = dir.display();
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "server_url: http://127.0.0.1:8080
listen_addr: 127.0.0.1:0
metrics_listen_addr: 127.0.0.1:0
grpc_listen_addr: 127.0.0.1:0
unix_socket: {d}/headscale.sock
noise:
  private_key_path: {d}/noise.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
{database}
dns:
  magic_dns: false
  override_local_dns: false
derp:
  urls: []
  server:
    enabled: false
"
        ),
    )
    .unwrap();
    config
}

/// The `database:` section for a fresh database on a PostgreSQL server on loopback, and that
/// database's name.
pub(crate) fn postgres_section(pg: &PgServer) -> (String, String) {
    let hs_db::DbConfig::Postgres(p) = pg.fresh_db() else {
        unreachable!("fresh_db is a PostgreSQL config")
    };
    let section = format!(
        "database:
  type: postgres
  postgres:
    host: 127.0.0.1
    port: {}
    name: {}
    user: {}
    pass: \"\"
    max_open_conns: 4
",
        p.port, p.name, p.user
    );
    (section, p.name)
}

/// The port of the last endpoint in a stored `endpoints` column (a JSON list of
/// `ip:port`), as the endpoint reports of these tests write them.
pub(crate) fn last_endpoint_port(stored: &str) -> Option<u32> {
    stored
        .rsplit(':')
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

impl Server {
    /// Starts `headscale serve` (through `wrap`, a command prefix, when given) and waits for
    /// its address.
    pub(crate) fn start(config: &Path, wrap: &[&str]) -> Self {
        let mut cmd = match wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(env!("CARGO_BIN_EXE_headscale"));
                c
            }
            None => headscale(),
        };
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("HEADSCALE_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("-c").arg(config);
        let (child, addr) = super::serve::start_with(&mut cmd);
        Self {
            child,
            addr,
            config: config.to_owned(),
        }
    }

    /// Runs a CLI command against this server.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        headscale()
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a CLI command that must succeed, and parses its `-o json` output.
    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "headscale {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A new user and a reusable pre-auth key of theirs.
    pub(crate) fn user_and_key(&self, name: &str) -> String {
        let user = self.json(&["users", "create", name]);
        let id = user["id"].as_u64().unwrap().to_string();
        let key = self.json(&["preauthkeys", "create", "-u", &id, "--reusable"]);
        key["key"].as_str().unwrap().to_owned()
    }

    /// `GET path` over plain HTTP: the status, or `None` when the server does not answer.
    pub(crate) fn get(&self, path: &str) -> Option<u16> {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(&self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .ok()?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).ok()?;
        raw.split(' ').nth(1)?.parse().ok()
    }

    pub(crate) fn url(&self) -> url::Url {
        format!("http://{}", self.addr).parse().unwrap()
    }
}

/// Polls `f` every 200 ms until it is true; panics naming `what` after `limit` (a hang
/// guard, not a timing assert).
pub(crate) fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let step = Duration::from_millis(200);
    let mut waited = Duration::ZERO;
    while !f() {
        assert!(waited < limit, "{what}: not within {limit:?}");
        std::thread::sleep(step);
        waited += step;
    }
}

/// A registered client: Tailscale's Rust client with its keys and Noise connection.
pub(crate) struct Client {
    keys: ts_keys::NodeState,
    conn: ts_control::client::HttpConn,
    cfg: ts_control::Config,
    url: url::Url,
}

impl Client {
    pub(crate) async fn join(url: &url::Url, key: &str, host: &str) -> Self {
        Self::try_join(url, key, host).await.unwrap()
    }

    /// Registers a new node with `key`; the error as text when the server refused it or the
    /// connection failed.
    pub(crate) async fn try_join(url: &url::Url, key: &str, host: &str) -> Result<Self, String> {
        let keys = ts_keys::NodeState::generate();
        let conn = ts_control::client::connect(url, &keys.machine_keys)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let cfg = ts_control::Config {
            server_url: url.clone(),
            hostname: Some(host.to_owned()),
            client_name: None,
            tags: Vec::new(),
            ephemeral: false,
        };
        ts_control::register(&cfg, url, Some(key), None, &keys, &conn)
            .await
            .map_err(|e| format!("{e:?}"))?;
        Ok(Self {
            keys,
            conn,
            cfg,
            url: url.clone(),
        })
    }

    /// The same node, over a new Noise connection to `url` (a restarted server).
    pub(crate) async fn reconnect(&self, url: &url::Url) -> Result<Self, String> {
        let conn = ts_control::client::connect(url, &self.keys.machine_keys)
            .await
            .map_err(|e| format!("{e:?}"))?;
        Ok(Self {
            keys: self.keys.clone(),
            conn,
            cfg: self.cfg.clone(),
            url: url.clone(),
        })
    }

    pub(crate) async fn stream(
        &self,
    ) -> impl futures_util::Stream<Item = ts_control::StateUpdate> + Unpin + use<> {
        Box::pin(
            ts_control::client::start_stream(&self.url, &self.keys, &self.cfg, self.conn.clone())
                .await
                .unwrap(),
        )
    }

    /// Reports one endpoint (`127.0.0.1:port`) in a non-streaming map request, as a client
    /// does when its endpoints change; the HTTP status (0 when the request failed).
    pub(crate) async fn report_endpoint(&self, port: u32) -> u16 {
        let body = serde_json::json!({
            "Version": 130,
            "NodeKey": self.keys.node_keys.public.to_string(),
            "OmitPeers": true,
            "Stream": false,
            "Endpoints": [format!("127.0.0.1:{port}")],
        });
        let url = self.url.join("/machine/map").unwrap();
        match tokio::time::timeout(
            Duration::from_secs(60),
            self.conn
                .post(&url, [], Bytes::from(body.to_string()).into()),
        )
        .await
        {
            Ok(Ok(r)) => r.status().as_u16(),
            _ => 0,
        }
    }
}

/// The hostnames in the next update that carries peers (all of them for a full update,
/// the added or replaced ones for a delta), within a hang guard.
async fn next_peers(
    s: &mut (impl futures_util::Stream<Item = ts_control::StateUpdate> + Unpin),
) -> Vec<String> {
    loop {
        let u = tokio::time::timeout(Duration::from_secs(30), s.next())
            .await
            .expect("no map update within 30 s")
            .expect("map stream ended");
        match u.peer_update {
            Some(ts_control::PeerUpdate::Full(v)) => {
                return v.into_iter().map(|n| n.hostname).collect();
            }
            Some(ts_control::PeerUpdate::Delta { upsert, .. }) if !upsert.is_empty() => {
                return upsert.into_iter().map(|n| n.hostname).collect();
            }
            _ => {}
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One column of the `nodes` table, by hostname, read with `psql`.
fn pg_endpoints(pg: &PgServer, db: &str, host: &str) -> String {
    let out = Command::new(pg.bin().join("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port().to_string(),
            "-U",
            "postgres",
        ])
        .args(["-d", db, "-At", "-c"])
        .arg(format!(
            "SELECT endpoints FROM nodes WHERE hostname = '{host}'"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn postgres_restarted_under_load_is_ridden_out() {
    let pg = PgServer::private();
    let (section, db_name) = postgres_section(&pg);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &section);
    let srv = Server::start(&config, &[]);
    let key = srv.user_and_key("alice");
    let rt = runtime();
    let url = srv.url();
    let (a, b, c) = rt.block_on(async {
        (
            Client::join(&url, &key, "a").await,
            Client::join(&url, &key, "b").await,
            Client::join(&url, &key, "c").await,
        )
    });
    let ids_before = node_ids(&srv);
    assert_eq!(ids_before.len(), 3);
    let mut a_stream = rt.block_on(a.stream());
    rt.block_on(next_peers(&mut a_stream));

    // Load: c reports a new endpoint every 50 ms throughout; the last acknowledged port must
    // be in the database at the end.
    let c = Arc::new(c);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU32::new(0));
    let failed = Arc::new(AtomicU32::new(0));
    let load = {
        let (c, stop, acked, failed) = (c.clone(), stop.clone(), acked.clone(), failed.clone());
        rt.spawn(async move {
            let mut port = 1000;
            while !stop.load(Ordering::Relaxed) {
                port += 1;
                if c.report_endpoint(port).await == 200 {
                    acked.store(port, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    eventually(
        "endpoint reports acknowledged",
        Duration::from_secs(30),
        || acked.load(Ordering::Relaxed) > 0,
    );

    pg.stop();
    // 500 with `"status": "fail"`, as Go Headscale answers an unhealthy check.
    eventually(
        "/health reports the outage",
        Duration::from_secs(30),
        || srv.get("/health") == Some(500),
    );
    // An operator write fails promptly with an error that names the database.
    let out = srv.cli(&[
        "nodes",
        "rename",
        "-i",
        &ids_before[1].to_string(),
        "b-renamed",
    ]);
    assert!(
        !out.status.success(),
        "rename succeeded with PostgreSQL down"
    );
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("postgres") || err.contains("database"),
        "the error does not say the database is the cause: {err}"
    );
    eventually("endpoint reports failing", Duration::from_secs(30), || {
        failed.load(Ordering::Relaxed) > 0
    });
    // Maps are served from memory: a reconnecting client gets its full map, and a's stream
    // stays open.
    rt.block_on(async {
        let mut again = b.stream().await;
        let mut peers = next_peers(&mut again).await;
        peers.sort();
        assert_eq!(
            peers,
            ["a", "c"],
            "b's map after reconnecting during the outage"
        );
        let ended = tokio::time::timeout(Duration::from_secs(1), a_stream.next()).await;
        assert!(
            !matches!(ended, Ok(None)),
            "a's map stream ended during the outage"
        );
    });

    pg.resume();
    eventually("/health recovers", Duration::from_secs(60), || {
        srv.get("/health") == Some(200)
    });
    let out = srv.cli(&[
        "nodes",
        "rename",
        "-i",
        &ids_before[1].to_string(),
        "b-renamed",
    ]);
    assert!(
        out.status.success(),
        "rename after recovery: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // a sees the rename through the stream it held across the outage.
    rt.block_on(async {
        loop {
            let peers = next_peers(&mut a_stream).await;
            if peers.iter().any(|p| p.contains("b-renamed")) {
                break;
            }
        }
    });
    let acked_at_recovery = acked.load(Ordering::Relaxed);
    eventually(
        "endpoint reports acknowledged again",
        Duration::from_secs(30),
        || acked.load(Ordering::Relaxed) > acked_at_recovery,
    );
    stop.store(true, Ordering::Relaxed);
    rt.block_on(load).unwrap();

    // Nobody re-registered, and the last acknowledged endpoint (or a later one) is stored.
    assert_eq!(node_ids(&srv), ids_before);
    let last = acked.load(Ordering::Relaxed);
    let stored = pg_endpoints(&pg, &db_name, "c");
    let stored_port =
        last_endpoint_port(&stored).unwrap_or_else(|| panic!("stored endpoints {stored:?}"));
    assert!(
        stored_port >= last,
        "acknowledged port {last} lost: {stored}"
    );
}

/// The sorted node IDs the server reports.
pub(crate) fn node_ids(srv: &Server) -> Vec<u64> {
    let mut ids: Vec<u64> = srv
        .json(&["nodes", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// Creates user `name`; whether the server acknowledged it, and its error output.
fn create_user(srv: &Server, name: &str) -> (bool, String) {
    let out = srv.cli(&["users", "create", name]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The names of the users the server reports, sorted.
fn user_names(srv: &Server) -> Vec<String> {
    let mut names: Vec<String> = srv
        .json(&["users", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// The database lives on a 16 MiB tmpfs mounted in the server's own mount namespace
/// (`unshare -m`, so nothing outside the test sees it); the test fills it with a file, and
/// every write must then fail with an error that names the full disk, never a half-written
/// row; the server keeps serving; once the file is removed, writes succeed again without a
/// restart, nothing acknowledged is missing and SQLite's integrity check passes.
#[test]
fn disk_full_refuses_writes_clearly_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("data");
    std::fs::create_dir(&mnt).unwrap();
    let db = mnt.join("db.sqlite");
    let config = write_config(dir.path(), &sqlite_section(&db));
    let mount = "mount -t tmpfs -o size=16m hs-test-tmpfs \"$0\" && exec \"$@\"";
    let mnt_arg = mnt.to_str().unwrap();
    // Root may create a mount namespace directly; anyone else does it in a user namespace.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let unshare: &[&str] = if root {
        &["unshare", "-m"]
    } else {
        &["unshare", "-rm"]
    };
    let mut wrap = unshare.to_vec();
    wrap.extend(["sh", "-c", mount, mnt_arg]);
    let srv = Server::start(&config, &wrap);
    let pid = srv.child.id();
    let ns = |script: &str| {
        let nsenter_user: &[&str] = if root {
            &[]
        } else {
            &["-U", "--preserve-credentials"]
        };
        let mut c = Command::new("nsenter");
        c.args(["-t", &pid.to_string()]).args(nsenter_user);
        c.args(["-m", "sh", "-c", script]).output().unwrap()
    };

    let mut acked: Vec<String> = Vec::new();
    for i in 0..5 {
        let name = format!("before{i}");
        assert!(create_user(&srv, &name).0);
        acked.push(name);
    }
    // Fill the disk (cat stops at ENOSPC).
    let filler = format!("{mnt_arg}/filler");
    ns(&format!("cat /dev/zero > {filler} 2>/dev/null; true"));
    let df = ns(&format!("df -k {mnt_arg} | tail -1"));
    let df = String::from_utf8_lossy(&df.stdout).into_owned();
    assert!(
        df.contains("hs-test-tmpfs"),
        "the tmpfs is not mounted: {df}"
    );

    // SQLite may still fit a few writes in pages it already has; write until refused.
    let mut refusal = None;
    for i in 0..500 {
        let name = format!("full{i}");
        let (ok, err) = create_user(&srv, &name);
        if ok {
            acked.push(name);
        } else {
            refusal = Some(err);
            break;
        }
    }
    let refusal = refusal.expect("500 writes succeeded on a full disk");
    assert!(
        refusal.contains("disk holding the database is full"),
        "the refusal does not name the cause: {refusal}"
    );
    // Still serving: health (the database is readable) and reads.
    assert_eq!(srv.get("/health"), Some(200));
    assert_eq!(user_names(&srv).len(), acked.len());

    ns(&format!("rm -f {filler}"));
    assert!(
        create_user(&srv, "after").0,
        "a write after space was freed"
    );
    acked.push("after".into());
    acked.sort();
    assert_eq!(user_names(&srv), acked, "acknowledged users lost or extra");
    let check = ns(&format!(
        "sqlite3 {} 'PRAGMA integrity_check'",
        db.display()
    ));
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "ok",
        "integrity check: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Another process (the `sqlite3` shell) holds the database's write lock: a write waits the
/// busy timeout (10 s, as Go's) and is refused naming the lock, nothing is half-written, the
/// server keeps answering; when the other process lets go, writes succeed again.
#[test]
fn sqlite_locked_by_another_process_refuses_then_recovers() {
    use std::io::{BufRead as _, BufReader, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    // The CLI waits longer than the server's busy timeout, so the answer is the server's.
    let section = format!("{}cli:\n  timeout: 30s\n", sqlite_section(&db));
    let config = write_config(dir.path(), &section);
    let srv = Server::start(&config, &[]);
    assert!(create_user(&srv, "alice").0);

    let mut holder = Command::new("sqlite3")
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = holder.stdin.take().unwrap();
    writeln!(stdin, "BEGIN EXCLUSIVE; SELECT 'locked';").unwrap();
    stdin.flush().unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");

    let (ok, err) = create_user(&srv, "bob");
    assert!(!ok, "a write succeeded while another process held the lock");
    assert!(
        err.contains("locked by another process"),
        "the refusal does not name the cause: {err}"
    );
    assert_eq!(srv.get("/health"), Some(200));

    drop(stdin);
    holder.wait().unwrap();
    assert!(
        create_user(&srv, "bob").0,
        "a write after the lock was released"
    );
    assert_eq!(user_names(&srv), ["alice", "bob"]);
    let check = Command::new("sqlite3")
        .arg(&db)
        .arg("PRAGMA integrity_check")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");
}
