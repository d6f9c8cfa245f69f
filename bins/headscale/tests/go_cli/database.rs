//! Drop-in both ways, on SQLite and on PostgreSQL: Go Headscale 0.29.3 serves a fresh
//! database and makes a user, an API key, a pre-auth key, a node (`debug create-node` then
//! `auth register`) and a policy in database mode; this server takes over the same config and
//! database and everything Go made works here (Go's API key over REST, Go's pre-auth key with
//! Tailscale's Rust client, Go's policy and node); it makes its own user, keys and policy;
//! then Go 0.29.3 serves the database again (on SQLite it validates the schema first and
//! refuses to start on any difference) and everything made here works there.
//!
//! Also: the databases this server creates, and those an earlier headscale-rs wrote, open
//! in Go 0.29.3.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, go_headscale, run, support};

/// This crate's directory, read when the test runs: `cargo test` sets it, and the
/// compile-time value may name another checkout that built this binary into the shared
/// target directory.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        std::path::PathBuf::from,
    )
}

fn ours_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_headscale"))
}

/// One plain HTTP/1.1 GET with a bearer key; status and body.
pub(super) fn get(port: u16, path: &str, key: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A config both servers read, with `database` as given (`{dir}` stands for `dir`).
pub(super) fn write_config(dir: &Path, http: u16, database: &str) -> std::path::PathBuf {
    write_config_with(dir, http, database, "").0
}

/// As [`write_config`], with `extra` top-level keys; also returns the gRPC port.
pub(super) fn write_config_with(
    dir: &Path,
    http: u16,
    database: &str,
    extra: &str,
) -> (std::path::PathBuf, u16) {
    let (metrics, grpc, stun) = (free_port(), free_port(), free_port());
    let d = dir.display();
    let database = database.replace("{dir}", &d.to_string());
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "server_url: http://127.0.0.1:{http}
listen_addr: 127.0.0.1:{http}
metrics_listen_addr: 127.0.0.1:{metrics}
grpc_listen_addr: 127.0.0.1:{grpc}
unix_socket: {d}/headscale.sock
noise:
  private_key_path: {d}/noise.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
{database}
dns:
  magic_dns: false
  base_domain: example.com
  override_local_dns: false
derp:
  urls: []
  server:
    enabled: true
    region_id: 999
    region_code: hs
    region_name: hs
    stun_listen_addr: 127.0.0.1:{stun}
    private_key_path: {d}/derp.key
policy:
  mode: database
{extra}"
        ),
    )
    .unwrap();
    (config, grpc)
}

/// Go's `serve`, waited for until its HTTP port answers; its log goes to `log` so a refusal
/// to start (a schema it does not accept) is reported with Go's own words.
pub(super) fn go_serve(config: &Path, http: u16, log: &Path) -> Child {
    let mut child = Command::new(go_headscale())
        .arg("-c")
        .arg(config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    // 600 polls of 100 ms: a minute for a cold start.
    for _ in 0..600 {
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "Go Headscale exited ({st}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if std::net::TcpStream::connect(("127.0.0.1", http)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(child);
    panic!("Go Headscale did not start");
}

pub(super) fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// Runs a CLI command that must succeed; its trimmed stdout.
fn ok(bin: &Path, config: &Path, args: &[&str]) -> String {
    let out = run(bin, config, args);
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn json(bin: &Path, config: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(bin, config, args)).unwrap()
}

/// Tailscale's Rust client registers with `auth_key` at the server on `http`.
pub(super) fn register(http: u16, auth_key: &str, hostname: &str) -> Result<(), String> {
    let url: url::Url = format!("http://127.0.0.1:{http}").parse().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let keys = ts_keys::NodeState::generate();
            let conn = ts_control::client::connect(&url, &keys.machine_keys)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let cfg = ts_control::Config {
                server_url: url.clone(),
                hostname: Some(hostname.into()),
                client_name: None,
                tags: Vec::new(),
                ephemeral: false,
            };
            ts_control::register(&cfg, &url, Some(auth_key), None, &keys, &conn)
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        })
}

fn names(v: &serde_json::Value, field: &str) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .filter_map(|x| x[field].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

fn round_trip(database: &str) {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let config = write_config(dir.path(), http, database);
    let log = dir.path().join("go.log");
    let go = go_headscale();
    let policy_file = |name: &str, tag: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!("{{\"tagOwners\": {{\"{tag}\": []}}, \"acls\": [{{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"]}}]}}\n"),
        )
        .unwrap();
        p
    };

    // 1. Go makes everything.
    let g = go_serve(&config, http, &log);
    ok(&go, &config, &["users", "create", "gouser"]);
    let go_api_key = ok(&go, &config, &["apikeys", "create", "-e", "1h"]);
    let go_auth_key = ok(
        &go,
        &config,
        &["preauthkeys", "create", "-u", "1", "-e", "1h", "--reusable"],
    );
    let go_policy = policy_file("go.hujson", "tag:made-by-go");
    ok(
        &go,
        &config,
        &["policy", "set", "-f", go_policy.to_str().unwrap()],
    );
    let auth_id = "hskey-authreq-GoGoGoGoGoGoGoGoGoGoGoGo";
    ok(
        &go,
        &config,
        &[
            "debug",
            "create-node",
            "--name",
            "go-node",
            "-u",
            "gouser",
            "-k",
            auth_id,
        ],
    );
    ok(
        &go,
        &config,
        &["auth", "register", "--auth-id", auth_id, "--user", "gouser"],
    );
    stop(g);

    // 2. This server takes over: everything Go made works.
    let (ours, _) = support::spawn_serve(&config);
    let (status, body) = get(http, "/api/v1/user", &go_api_key);
    assert_eq!(status, 200, "Go's API key refused here: {body}");
    assert!(body.contains("\"gouser\""), "{body}");
    let registered = register(http, &go_auth_key, "rust-on-ours");
    let policy = ok(ours_bin(), &config, &["policy", "get"]);
    assert!(policy.contains("tag:made-by-go"), "{policy}");
    ok(ours_bin(), &config, &["users", "create", "rsuser"]);
    let our_api_key = ok(ours_bin(), &config, &["apikeys", "create", "-e", "1h"]);
    let our_auth_key = ok(
        ours_bin(),
        &config,
        &["preauthkeys", "create", "-u", "2", "-e", "1h", "--reusable"],
    );
    let our_policy = policy_file("ours.hujson", "tag:made-here");
    ok(
        ours_bin(),
        &config,
        &["policy", "set", "-f", our_policy.to_str().unwrap()],
    );
    let nodes_here = json(ours_bin(), &config, &["nodes", "list", "-o", "json"]);
    stop(ours);
    registered.expect("registering here with Go's pre-auth key");
    assert_eq!(
        names(&nodes_here, "given_name"),
        ["go-node", "rust-on-ours"],
        "{nodes_here}"
    );

    // 3. Go 0.29.3 serves it again: everything made here works there.
    let g = go_serve(&config, http, &log);
    let (status, body) = get(http, "/api/v1/user", &our_api_key);
    let registered = register(http, &our_auth_key, "rust-on-go");
    let users = json(&go, &config, &["users", "list", "-o", "json"]);
    let nodes = json(&go, &config, &["nodes", "list", "-o", "json"]);
    let policy = ok(&go, &config, &["policy", "get"]);
    stop(g);
    assert_eq!(status, 200, "our API key refused by Go: {body}");
    assert!(
        body.contains("\"gouser\"") && body.contains("\"rsuser\""),
        "{body}"
    );
    assert_eq!(names(&users, "name"), ["gouser", "rsuser"], "{users}");
    registered.expect("registering on Go with a pre-auth key made here");
    assert_eq!(
        names(&nodes, "given_name"),
        ["go-node", "rust-on-go", "rust-on-ours"],
        "{nodes}"
    );
    assert!(policy.contains("tag:made-here"), "{policy}");
}

#[test]
fn sqlite_database_goes_from_go_to_here_and_back() {
    round_trip("database:\n  type: sqlite\n  sqlite:\n    path: {dir}/db.sqlite");
}

#[test]
fn postgres_database_goes_from_go_to_here_and_back() {
    let pg = hs_testkit::pg::PgServer::get();
    let hs_db::DbConfig::Postgres(c) = pg.fresh_db() else {
        unreachable!("fresh_db makes a PostgreSQL database")
    };
    round_trip(&format!(
        "database:\n  type: postgres\n  postgres:\n    host: 127.0.0.1\n    port: {}\n    name: {}\n    user: postgres\n    pass: \"\"\n    ssl: \"false\"",
        c.port, c.name
    ));
}

/// What Go 0.29.3 says when it opens `config`'s database directly (migrations, then its
/// schema validation on SQLite).
fn go_opens(config: &Path) {
    let out = run(
        &go_headscale(),
        config,
        &[
            "policy",
            "get",
            "--bypass-grpc-and-access-database-directly",
            "--force",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // An empty policy table is Go's only acceptable complaint.
    assert!(
        out.status.success() || stderr.contains("acl policy not found"),
        "Go refused the database: {stderr}"
    );
    assert!(!stderr.contains("validating schema"), "{stderr}");
}

#[test]
fn go_opens_databases_this_server_created_or_converted() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        free_port(),
        "database:\n  type: sqlite\n  sqlite:\n    path: {dir}/db.sqlite",
    );
    let bypass = [
        "policy",
        "get",
        "--bypass-grpc-and-access-database-directly",
        "--force",
    ];
    // Created here.
    let _ = run(ours_bin(), &config, &bypass);
    assert!(dir.path().join("db.sqlite").exists());
    go_opens(&config);

    // Written by an earlier headscale-rs (diesel's table, three columns of Go 0.30).
    std::fs::remove_file(dir.path().join("db.sqlite")).unwrap();
    let fixture =
        manifest_dir().join("../../crates/hs-db/tests/testdata/headscale-rs-diesel-era.sql");
    let st = Command::new("sqlite3")
        .arg(dir.path().join("db.sqlite"))
        .stdin(std::fs::File::open(fixture).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    let ours = run(ours_bin(), &config, &bypass);
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    go_opens(&config);
    // Go's view of the converted rows.
    let out = run(&go_headscale(), &config, &bypass);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "{\"acls\":[]}");
}
