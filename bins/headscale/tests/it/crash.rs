//! SIGKILL during bursts of mixed writes, on SQLite and PostgreSQL: the real server is
//! killed at a random moment while users are created over REST, nodes register over Noise
//! and registered nodes report new endpoints, then started again on the same database, 100
//! times (`HS_CRASH_KILLS` changes the count). At the end every acknowledged write must be
//! there (no lost user, node, or endpoint older than the last acknowledged one) and no row
//! may be torn (every node has its user and addresses; SQLite's integrity check passes).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hs_testkit::pg::PgServer;
use rand::Rng as _;

use super::faults::{
    Client, Server, last_endpoint_port, postgres_section, sqlite_section, write_config,
};

/// Kills per backend unless `HS_CRASH_KILLS` says otherwise.
const KILLS: usize = 100;
/// Nodes registered up front that report endpoints in every burst.
const REPORTERS: usize = 3;

/// What the server acknowledged, across all bursts.
#[derive(Default)]
struct Acked {
    users: Vec<String>,
    nodes: Vec<String>,
    /// The highest endpoint port acknowledged per reporting node.
    endpoints: BTreeMap<String, u32>,
}

fn kills() -> usize {
    std::env::var("HS_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(KILLS)
}

/// `POST /api/v1/user` with the API key; whether it was answered 200.
async fn create_user_rest(addr: &str, api_key: &str, name: &str) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body = format!("{{\"name\":\"{name}\"}}");
    let req = format!(
        "POST /api/v1/user HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {api_key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let go = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(req.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw);
        Some(text.starts_with("HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(30), go)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// What every burst shares.
struct Writers {
    rt: tokio::runtime::Runtime,
    api_key: String,
    auth_key: String,
    reporters: Vec<(String, Client)>,
    acked: Arc<Mutex<Acked>>,
    port: Arc<AtomicU32>,
}

/// One burst against a freshly started server: writers run until it is killed.
fn burst(w: &Writers, srv: &mut Server, round: usize) {
    let Writers {
        rt,
        api_key,
        auth_key,
        reporters,
        acked,
        port,
    } = w;
    let url = srv.url();
    let addr = srv.addr.clone();
    let mut tasks = Vec::new();
    // Users over REST.
    {
        let (acked, addr, key) = (acked.clone(), addr.clone(), api_key.clone());
        tasks.push(rt.spawn(async move {
            for i in 0.. {
                let name = format!("u{round}x{i}");
                if !create_user_rest(&addr, &key, &name).await {
                    break;
                }
                acked.lock().unwrap().users.push(name);
            }
        }));
    }
    // Registrations over Noise.
    {
        let (acked, url, key) = (acked.clone(), url.clone(), auth_key.clone());
        tasks.push(rt.spawn(async move {
            for i in 0.. {
                let host = format!("n{round}x{i}");
                if Client::try_join(&url, &key, &host).await.is_err() {
                    break;
                }
                acked.lock().unwrap().nodes.push(host);
            }
        }));
    }
    // Endpoint reports from the standing nodes, each port larger than any before.
    for (host, c) in reporters {
        let (acked, url, port, host) = (acked.clone(), url.clone(), port.clone(), host.clone());
        let c = rt.block_on(c.reconnect(&url));
        let Ok(c) = c else { continue };
        tasks.push(rt.spawn(async move {
            loop {
                let p = port.fetch_add(1, Ordering::Relaxed);
                if c.report_endpoint(p).await != 200 {
                    break;
                }
                let mut a = acked.lock().unwrap();
                let e = a.endpoints.entry(host.clone()).or_default();
                *e = (*e).max(p);
            }
        }));
    }
    // Kill somewhere between a quiet moment and the thick of it.
    let wait = rand::thread_rng().gen_range(50..600);
    std::thread::sleep(Duration::from_millis(wait));
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
    rt.block_on(async {
        for t in tasks {
            // Writers end on their first failure; the bound only guards a hang.
            let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
        }
    });
}

/// `query`'s rows as `a|b` lines, through the backend's own shell.
fn sql(backend: &Backend, query: &str) -> Vec<String> {
    let out = match backend {
        Backend::Sqlite(path) => Command::new("sqlite3").arg(path).arg(query).output(),
        Backend::Postgres(pg, db) => Command::new(pg.bin().join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port().to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", db, "-At", "-c", query])
            .output(),
    }
    .unwrap();
    assert!(
        out.status.success(),
        "{query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

enum Backend {
    Sqlite(std::path::PathBuf),
    Postgres(Arc<PgServer>, String),
}

#[allow(
    clippy::print_stderr,
    reason = "the figures docs/reliability.md quotes, shown with --nocapture"
)]
fn run(dir: &Path, section: &str, backend: &Backend) {
    let config = write_config(dir, section);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut srv = Server::start(&config, &[]);
    let auth_key = srv.user_and_key("crash");
    let out = srv.cli(&["apikeys", "create"]);
    assert!(out.status.success());
    let api_key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let url = srv.url();
    let reporters: Vec<(String, Client)> = (0..REPORTERS)
        .map(|i| {
            let host = format!("reporter{i}");
            let c = rt.block_on(Client::join(&url, &auth_key, &host));
            (host, c)
        })
        .collect();
    let w = Writers {
        rt,
        api_key,
        auth_key,
        reporters,
        acked: Arc::new(Mutex::new(Acked::default())),
        port: Arc::new(AtomicU32::new(1024)),
    };
    let n = kills();
    for round in 0..n {
        burst(&w, &mut srv, round);
        srv = Server::start(&config, &[]);
    }

    let port = &w.port;
    let acked = w.acked.lock().unwrap();
    eprintln!(
        "{n} kills: {} users, {} registrations, {} endpoint reports sent",
        acked.users.len(),
        acked.nodes.len(),
        port.load(Ordering::Relaxed) - 1024
    );
    assert!(
        !acked.users.is_empty() && !acked.nodes.is_empty() && !acked.endpoints.is_empty(),
        "the bursts wrote nothing; the test proves nothing"
    );
    let users: Vec<String> = srv
        .json(&["users", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect();
    for u in &acked.users {
        assert!(users.contains(u), "acknowledged user {u} lost");
    }
    let nodes = srv.json(&["nodes", "list"]);
    let hosts: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    for h in &acked.nodes {
        assert!(hosts.contains(&h.as_str()), "acknowledged node {h} lost");
    }
    for (host, port) in &acked.endpoints {
        let rows = sql(
            backend,
            &format!("SELECT endpoints FROM nodes WHERE hostname = '{host}'"),
        );
        let stored = rows
            .first()
            .and_then(|r| last_endpoint_port(r))
            .unwrap_or_else(|| panic!("{host}: stored endpoints {rows:?}"));
        assert!(
            stored >= *port,
            "{host}: acknowledged port {port} lost, stored {stored}"
        );
    }
    // No torn rows: every node has its owner and an address, and the server lists them all.
    let torn = sql(
        backend,
        "SELECT id FROM nodes WHERE user_id IS NULL OR ipv4 IS NULL OR ipv4 = '' \
         OR machine_key IS NULL OR node_key IS NULL",
    );
    assert!(torn.is_empty(), "torn node rows: {torn:?}");
    let count = sql(backend, "SELECT count(*) FROM nodes");
    assert_eq!(
        count,
        [hosts.len().to_string()],
        "rows the server does not list"
    );
    if let Backend::Sqlite(_) = backend {
        assert_eq!(sql(backend, "PRAGMA integrity_check"), ["ok"]);
    }
}

#[test]
fn sigkill_during_mixed_write_bursts_loses_nothing_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    run(
        dir.path(),
        &sqlite_section(&db),
        &Backend::Sqlite(db.clone()),
    );
}

#[test]
fn sigkill_during_mixed_write_bursts_loses_nothing_postgres() {
    let pg = PgServer::get();
    let (section, db_name) = postgres_section(&pg);
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &section, &Backend::Postgres(pg, db_name));
}
