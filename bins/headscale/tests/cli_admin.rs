//! The operator CLI against a real `headscale serve` process: SQLite in a temp dir, a free
//! loopback port, the admin API on a unix socket in the same dir.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

struct Server {
    child: Child,
    addr: String,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    let socket = dir.join("headscale.sock");
    std::fs::write(
        &path,
        format!(
            "server_url: http://127.0.0.1:8080
listen_addr: 127.0.0.1:0
unix_socket: {}
unix_socket_permission: \"0770\"
noise:
  private_key_path: noise_private.key
prefixes:
  v4: 100.64.0.0/10
database:
  type: sqlite
  sqlite:
    path: db.sqlite
dns:
  magic_dns: false
  override_local_dns: false
{extra}",
            socket.display()
        ),
    )
    .unwrap();
    path
}

fn start() -> Server {
    // No remote gRPC listener: the CLI uses the unix socket.
    start_with("grpc_listen_addr: \"\"\n")
}

fn start_with(extra: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), extra);
    let (child, addr) = support::spawn_serve(&config);
    let server = Server {
        child,
        addr,
        config,
        _dir: dir,
    };
    let (status, _) = http_get(&server.addr, "/health");
    assert_eq!(status, 200, "/health");
    server
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_owned(),
    )
}

fn http_req(addr: &str, path: &str, bearer: Option<&str>) -> (u16, String) {
    let auth = bearer
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_owned(),
    )
}

impl Server {
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_headscale"))
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env_remove("HEADSCALE_CONFIG")
            .env_remove("HEADSCALE_CLI_ADDRESS")
            .env_remove("HEADSCALE_CLI_API_KEY")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs the CLI against a remote gRPC address with an API key.
    fn remote(&self, addr: &str, key: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_headscale"))
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env_remove("HEADSCALE_CONFIG")
            .env("HEADSCALE_CLI_ADDRESS", addr)
            .env("HEADSCALE_CLI_API_KEY", key)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail and returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            !out.status.success(),
            "{args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }
}

#[test]
fn users_and_preauthkeys_through_the_unix_socket() {
    let s = start();

    let created = s.json(&[
        "users",
        "create",
        "alice",
        "-e",
        "alice@example.com",
        "-o",
        "json",
    ]);
    assert_eq!(created["name"], "alice");
    assert_eq!(created["email"], "alice@example.com");
    let uid = created["id"].as_u64().unwrap();
    assert!(uid > 0);

    // Default output is human text, not JSON.
    assert_eq!(s.ok(&["users", "create", "bob"]).trim(), "User created");

    let key = s.json(&[
        "preauthkeys",
        "create",
        "-u",
        &uid.to_string(),
        "--reusable",
        "-e",
        "2h",
        "-o",
        "json",
    ]);
    assert_eq!(key["reusable"], true);
    // Go's encoding/json omits false, as Go Headscale's CLI prints it.
    assert!(key.get("ephemeral").is_none(), "{key}");
    assert_eq!(key["user"]["name"], "alice");
    let key_id = key["id"].as_u64().unwrap();
    let secret = key["key"].as_str().unwrap().to_owned();
    assert!(!secret.is_empty());

    // JSON list, then YAML list of the same users.
    let users = s.json(&["users", "list", "-o", "json"]);
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    // YAML keys are Go's lower-cased field names, and nothing is omitted.
    let yaml: serde_json::Value =
        serde_yaml_ng::from_str(&s.ok(&["user", "ls", "-o", "yaml"])).unwrap();
    assert_eq!(yaml[1]["name"], "bob", "{yaml}");
    assert_eq!(yaml[1]["displayname"], "", "{yaml}");
    assert_eq!(
        yaml[1]["createdat"]["seconds"], users[1]["created_at"]["seconds"],
        "{yaml}"
    );
    let one_line = s.ok(&["users", "list", "-n", "bob", "-o", "json-line"]);
    assert_eq!(one_line.trim().lines().count(), 1);
    let bob: serde_json::Value = serde_json::from_str(&one_line).unwrap();
    assert_eq!(bob.as_array().unwrap().len(), 1);
    assert_eq!(bob[0]["name"], "bob");

    // The table names the users.
    let table = s.ok(&["users", "list"]);
    assert!(table.contains("alice") && table.contains("bob"), "{table}");

    // No nodes: Go prints its nil slice, `null`, in JSON, and `[]` in YAML.
    let nodes = s.json(&["nodes", "list", "-o", "json"]);
    assert_eq!(nodes, serde_json::Value::Null);
    let nodes_yaml: serde_json::Value =
        serde_yaml_ng::from_str(&s.ok(&["node", "list", "-o", "yaml"])).unwrap();
    assert_eq!(nodes_yaml, serde_json::json!([]));

    // The key is listed (with its secret) and can be expired.
    let keys = s.json(&["preauthkeys", "list", "-o", "json"]);
    assert_eq!(keys[0]["id"].as_u64(), Some(key_id));
    let exp_before = keys[0]["expiration"]["seconds"].as_i64().unwrap();
    s.ok(&["preauthkeys", "expire", "-i", &key_id.to_string()]);
    let keys = s.json(&["authkey", "list", "-o", "json"]);
    let exp_after = keys[0]["expiration"]["seconds"].as_i64().unwrap();
    assert!(exp_after < exp_before, "{exp_after} !< {exp_before}");

    let renamed = s.json(&[
        "users",
        "rename",
        "-n",
        "alice",
        "--new-name",
        "carol",
        "-o",
        "json",
    ]);
    assert_eq!(renamed["name"], "carol");
    assert_eq!(renamed["id"].as_u64(), Some(uid));

    s.ok(&["users", "destroy", "-i", &uid.to_string(), "--force"]);
    let users = s.json(&["users", "list", "-o", "json"]);
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["name"], "bob");

    // Without --force and with nothing on stdin, nothing is deleted.
    let err = s.fails(&["users", "destroy", "-n", "bob"]);
    assert!(err.contains("not confirmed"), "{err}");
    assert_eq!(s.json(&["users", "list", "-o", "json"])[0]["name"], "bob");
}

#[test]
fn bad_input_fails_with_a_message_naming_the_problem() {
    let s = start();
    s.ok(&["users", "create", "dave"]);

    let err = s.fails(&["users", "create", "dave"]);
    assert!(
        err.contains("dave") && err.contains("already exists"),
        "{err}"
    );

    let err = s.fails(&["preauthkeys", "create", "-u", "4242"]);
    assert!(err.contains("4242") && err.contains("not found"), "{err}");

    let err = s.fails(&["users", "rename", "-n", "nobody", "-r", "x"]);
    assert!(err.contains("no user named \"nobody\""), "{err}");

    let err = s.fails(&["preauthkeys", "create", "-e", "soon"]);
    assert!(err.contains("invalid duration \"soon\""), "{err}");

    // Interactive logins are decided by the running control plane, which knows no such
    // pending request.
    let auth_id = format!("hskey-authreq-{}", "a".repeat(24));
    let err = s.fails(&["auth", "register", "--auth-id", &auth_id, "-u", "dave"]);
    assert!(
        err.contains(&auth_id) && err.contains("may have expired or been decided"),
        "{err}"
    );
    let err = s.fails(&["auth", "reject", "--auth-id", &auth_id]);
    assert!(err.contains(&auth_id), "{err}");
    let err = s.fails(&["auth", "register", "--auth-id", "nope", "-u", "dave"]);
    assert!(err.contains("invalid auth id"), "{err}");

    let health = s.json(&["health", "-o", "json"]);
    assert_eq!(health["database_connectivity"], true);
}

#[test]
fn remote_cli_over_grpc_needs_a_valid_api_key() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = start_with(&format!(
        "grpc_listen_addr: 127.0.0.1:{port}\ngrpc_allow_insecure: true\n"
    ));
    s.ok(&["users", "create", "erin"]);
    let key = s.ok(&["apikeys", "create", "-e", "1d"]).trim().to_owned();
    assert!(key.starts_with("hskey-api-"), "{key}");
    let addr = format!("http://127.0.0.1:{port}");

    let out = s.remote(&addr, &key, &["users", "list", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(users[0]["name"], "erin");

    let bad = s.remote(
        &addr,
        "hskey-api-000000000000-0000000000000000",
        &["users", "list"],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("invalid or expired API key"), "{err}");

    // REST on the main listener takes the same bearer key.
    let (status, _) = http_req(&s.addr, "/api/v1/user", None);
    assert_eq!(status, 401);
    let (status, body) = http_req(&s.addr, "/api/v1/user", Some(&key));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"erin\""), "{body}");

    // The listed key (by prefix) can be expired; then it no longer works.
    let keys = s.json(&["apikeys", "list", "-o", "json"]);
    let prefix = keys[0]["prefix"].as_str().unwrap().to_owned();
    assert!(key.contains(&prefix));
    s.ok(&["apikeys", "expire", "-p", &prefix]);
    let out = s.remote(&addr, &key, &["users", "list"]);
    assert!(!out.status.success());
}

#[test]
fn policy_get_set_check_in_database_mode() {
    let s = start_with("grpc_listen_addr: \"\"\npolicy:\n  mode: database\n");
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.hujson");
    std::fs::write(
        &good,
        r#"{
  // everyone may reach everyone
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}"#,
    )
    .unwrap();
    let bad = dir.path().join("bad.hujson");
    std::fs::write(&bad, r#"{"acls": [{"action": "drop"}]}"#).unwrap();

    assert_eq!(
        s.ok(&["policy", "check", "-f", good.to_str().unwrap()])
            .trim(),
        "Policy is valid"
    );
    let err = s.fails(&["policy", "check", "-f", bad.to_str().unwrap()]);
    assert!(err.contains("bad.hujson"), "{err}");
    let err = s.fails(&["policy", "set", "-f", "/nonexistent/p.hujson"]);
    assert!(err.contains("/nonexistent/p.hujson"), "{err}");

    s.ok(&["policy", "set", "-f", good.to_str().unwrap()]);
    // Go prints the document itself, whatever -o says.
    let got = s.ok(&["policy", "get", "-o", "json"]);
    assert!(got.contains("everyone may reach everyone"), "{got}");

    // The unix socket carries the configured permission bits.
    use std::os::unix::fs::PermissionsExt as _;
    let sock = s.config.parent().unwrap().join("headscale.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o770);
}

/// Runs the CLI on `config` alone: no server is running.
fn offline_cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_headscale"))
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("HEADSCALE_CONFIG")
        .env_remove("HEADSCALE_CLI_ADDRESS")
        .env_remove("HEADSCALE_CLI_API_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `policy get|set|check --bypass-server-and-access-database-directly` work on the database
/// named by the config with no server running, and what `set` stores is what a server
/// started afterwards serves.
#[test]
fn policy_bypass_uses_the_database_without_a_server() {
    const BYPASS: &str = "--bypass-server-and-access-database-directly";
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "grpc_listen_addr: \"\"\npolicy:\n  mode: database\n",
    );
    let good = dir.path().join("good.hujson");
    std::fs::write(
        &good,
        r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}], "tagOwners": {"tag:seeded": []}}"#,
    )
    .unwrap();
    let bad = dir.path().join("bad.hujson");
    std::fs::write(&bad, r#"{"acls": [{"action": "drop"}]}"#).unwrap();
    let good = good.to_str().unwrap();
    let bad = bad.to_str().unwrap();
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // Without --force the question is asked; no answer (stdin closed) aborts.
    let out = offline_cli(&config, &["policy", "get", BYPASS]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("aborted"), "{}", stderr(&out));

    let out = offline_cli(&config, &["policy", "get", BYPASS, "--force"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("acl policy not found"),
        "{}",
        stderr(&out)
    );

    let out = offline_cli(&config, &["policy", "check", "-f", bad, BYPASS, "--force"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bad.hujson"), "{}", stderr(&out));
    let out = offline_cli(&config, &["policy", "set", "-f", bad, BYPASS, "--force"]);
    assert!(!out.status.success(), "a bad policy is not stored");

    let out = offline_cli(&config, &["policy", "check", "-f", good, BYPASS, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Policy is valid"
    );
    let out = offline_cli(&config, &["policy", "set", "-f", good, BYPASS, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Policy updated."
    );
    let out = offline_cli(&config, &["policy", "get", BYPASS, "--force", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(got.contains("tag:seeded"), "{got}");

    // A server started on the same config serves the stored policy.
    let (child, addr) = support::spawn_serve(&config);
    let s = Server {
        child,
        addr,
        config: config.clone(),
        _dir: dir,
    };
    let served = s.ok(&["policy", "get", "-o", "json"]);
    assert_eq!(served.trim_end(), got.trim_end(), "{served}");
}

/// In file mode the bypass still stores the policy (that is how Go Headscale users seed the
/// database before switching `policy.mode`), and says it is not in force yet.
#[test]
fn policy_bypass_set_in_file_mode_stores_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "grpc_listen_addr: \"\"\n");
    let good = dir.path().join("good.hujson");
    std::fs::write(&good, r#"{"acls": []}"#).unwrap();
    let args = [
        "policy",
        "set",
        "-f",
        good.to_str().unwrap(),
        "--bypass-grpc-and-access-database-directly",
        "--force",
    ];
    let out = offline_cli(&config, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("policy.mode is file"));
    let out = offline_cli(
        &config,
        &[
            "policy",
            "get",
            "--bypass-server-and-access-database-directly",
            "--force",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"acls": []}"#
    );
}

/// `debug create-node` files a made-up client's registration in the running server; `auth
/// register` completes it into a real node (with the routes it advertises), `auth reject`
/// drops one, and both accept the auth id with or without its `hskey-authreq-` prefix.
#[test]
fn debug_create_node_then_auth_register() {
    let s = start();
    s.ok(&["users", "create", "alice"]);
    let key = "hskey-authreq-AAAAbbbbCCCCdddd0123-_45";
    let pending = s.json(&[
        "debug",
        "create-node",
        "--name",
        "dbg",
        "-u",
        "alice",
        "-k",
        key,
        "-r",
        "10.9.0.0/24",
        "-o",
        "json",
    ]);
    assert_eq!(pending["name"], "dbg", "{pending}");
    assert_eq!(pending["user"]["name"], "alice", "{pending}");
    assert_eq!(
        s.json(&["nodes", "list", "-o", "json"]),
        serde_json::Value::Null,
        "nothing is stored before the registration is approved"
    );
    let err = s.fails(&[
        "debug",
        "create-node",
        "--name",
        "dbg2",
        "-u",
        "alice",
        "-k",
        key,
    ]);
    assert!(err.contains("already pending"), "{err}");
    let err = s.fails(&[
        "debug",
        "create-node",
        "--name",
        "x",
        "-u",
        "nobody",
        "-k",
        key,
    ]);
    assert!(err.contains("nobody"), "{err}");
    let err = s.fails(&[
        "debug",
        "create-node",
        "--name",
        "x",
        "-u",
        "alice",
        "-k",
        key,
        "-r",
        "10.9.0.0/99",
    ]);
    assert!(err.contains("10.9.0.0/99"), "{err}");

    let node = s.json(&[
        "auth",
        "register",
        "--auth-id",
        key,
        "--user",
        "alice",
        "-o",
        "json",
    ]);
    assert_eq!(node["user"]["name"], "alice", "{node}");
    let nodes = s.json(&["nodes", "list", "-o", "json"]);
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
    assert_eq!(nodes[0]["name"], "dbg", "{nodes}");
    assert!(nodes[0]["ip_addresses"][0].is_string(), "{nodes}");
    let routes = s.json(&["nodes", "list-routes", "-o", "json"]);
    assert_eq!(
        routes[0]["available_routes"],
        serde_json::json!(["10.9.0.0/24"]),
        "{routes}"
    );
    // Spent: a second approval finds nothing.
    let err = s.fails(&["auth", "register", "--auth-id", key, "--user", "alice"]);
    assert!(err.contains("no pending registration"), "{err}");

    // The bare form (what this server's AuthURLs carry) names the same registration.
    let bare = "ZZZZyyyyXXXXwwww01234567";
    s.ok(&[
        "debug",
        "create-node",
        "--name",
        "other",
        "-u",
        "alice",
        "-k",
        &format!("hskey-authreq-{bare}"),
    ]);
    s.ok(&["auth", "reject", "--auth-id", bare]);
    // The deprecated `nodes register -u -k` reaches the same registrations.
    let third = "hskey-authreq-333333333333333333333333";
    s.ok(&[
        "debug",
        "create-node",
        "--name",
        "third",
        "-u",
        "alice",
        "-k",
        third,
    ]);
    let node = s.json(&[
        "nodes", "register", "-u", "alice", "-k", third, "-o", "json",
    ]);
    assert_eq!(node["name"], "third", "{node}");
    let err = s.fails(&["auth", "register", "--auth-id", bare, "--user", "alice"]);
    assert!(err.contains("no pending registration"), "{err}");
    assert_eq!(
        s.json(&["nodes", "list", "-o", "json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Nodes made this way go through the rest of the node commands like any other: listed
    // the same in JSON and YAML, renamed, expired, deleted.
    let nodes = s.json(&["nodes", "list", "-o", "json"]);
    let yaml: serde_json::Value =
        serde_yaml_ng::from_str(&s.ok(&["nodes", "list", "-o", "yaml"])).unwrap();
    assert_eq!(
        yaml.as_array().unwrap().len(),
        nodes.as_array().unwrap().len()
    );
    assert_eq!(yaml[0]["givenname"], nodes[0]["given_name"], "{yaml}");
    assert_eq!(
        yaml[0]["registermethod"], nodes[0]["register_method"],
        "{yaml}"
    );
    let id = nodes[0]["id"].as_u64().unwrap().to_string();
    let renamed = s.json(&["nodes", "rename", "-i", &id, "renamed", "-o", "json"]);
    assert_eq!(renamed["given_name"], "renamed", "{renamed}");
    let expired = s.json(&["nodes", "expire", "-i", &id, "-o", "json"]);
    assert!(expired["expiry"]["seconds"].is_i64(), "{expired}");
    s.ok(&["nodes", "delete", "-i", &id, "--force"]);
    let left = s.json(&["nodes", "list", "-o", "json"]);
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    assert_ne!(left[0]["id"], nodes[0]["id"]);
}

/// `oauth-clients` over the unix socket and the remote listener: the secret is printed once,
/// works at `/api/v2/oauth/token`, is never listed, and stops working when the client is
/// deleted; bad input is refused with the server's reason.
#[test]
fn oauth_clients_create_list_delete() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = start_with(&format!(
        "grpc_listen_addr: 127.0.0.1:{port}\ngrpc_allow_insecure: true\n"
    ));
    let c = s.json(&[
        "oauth-clients",
        "create",
        "--scopes",
        "dns:read,devices:core",
        "--tags",
        "tag:ci",
        "-d",
        "ci runner",
        "-o",
        "json",
    ]);
    let id = c["id"].as_str().unwrap().to_owned();
    let secret = c["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("hskey-client-"), "{c}");
    assert_eq!(c["scopes"], serde_json::json!(["devices:core", "dns:read"]));
    assert_eq!(c["tags"], serde_json::json!(["tag:ci"]));

    // The token endpoint takes the printed credentials.
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    write!(
        conn,
        "POST /api/v2/oauth/token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        s.addr,
        form.len()
    )
    .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let token = raw
        .split("\"access_token\":\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_owned();
    let (status, body) = http_req(&s.addr, "/api/v2/tailnet/-/dns/nameservers", Some(&token));
    assert_eq!(status, 200, "{body}");

    let listed = s.json(&["oauth-clients", "list", "-o", "json"]);
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0].get("secret").is_none(), "{listed}");
    let table = s.ok(&["oauth-clients", "list"]);
    assert!(
        table.contains(&id) && table.contains("ci runner"),
        "{table}"
    );

    // The same over the remote listener with an API key.
    let key = s.ok(&["apikeys", "create", "-e", "1d"]).trim().to_owned();
    let out = s.remote(
        &format!("http://127.0.0.1:{port}"),
        &key,
        &["oauth-clients", "list", "-o", "json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));

    let err = s.fails(&["oauth-clients", "create", "--scopes", "auth_keys"]);
    assert!(err.contains("needs tags"), "{err}");
    let err = s.fails(&["oauth-clients", "create", "--scopes", "devices"]);
    assert!(err.contains("unknown scope"), "{err}");

    s.ok(&["oauth-clients", "delete", "--id", &id]);
    let (status, _) = http_req(&s.addr, "/api/v2/tailnet/-/dns/nameservers", Some(&token));
    assert_eq!(status, 401, "a deleted client's token stops working");
    let err = s.fails(&["oauth-clients", "delete", "--id", &id]);
    assert!(err.contains("not found"), "{err}");
}

/// Forms Go Headscale's CLI accepts and its integration tests use: `preauthkeys --user N
/// create`, `--reusable=true` / `--ephemeral=true`, a config file holding only a `cli:`
/// section for a remote server, and "acl policy not found" when no policy is stored.
#[test]
fn go_cli_forms_flag_values_and_a_cli_only_config() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = start_with(&format!(
        "grpc_listen_addr: 127.0.0.1:{port}\ngrpc_allow_insecure: true\npolicy:\n  mode: database\n"
    ));
    s.ok(&["users", "create", "gina"]);

    let reusable = s.json(&[
        "preauthkeys",
        "--user",
        "1",
        "create",
        "--reusable=true",
        "-o",
        "json",
    ]);
    assert_eq!(reusable["reusable"], true, "{reusable}");
    assert_eq!(reusable["user"]["name"], "gina", "{reusable}");
    let ephemeral = s.json(&[
        "preauthkeys",
        "-u",
        "1",
        "create",
        "--ephemeral=true",
        "--reusable=false",
        "-o",
        "json",
    ]);
    assert_eq!(ephemeral["ephemeral"], true, "{ephemeral}");
    assert!(ephemeral["reusable"].is_null(), "{ephemeral}");
    let err = s.fails(&["preauthkeys", "create", "-u", "1", "--reusable=maybe"]);
    assert!(err.contains("maybe"), "{err}");

    let err = s.fails(&["policy", "get"]);
    assert!(err.contains("acl policy not found"), "{err}");

    let key = s.ok(&["apikeys", "create", "-e", "1h"]).trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let cli_only = |name: &str, key_line: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!("cli:\n  address: http://127.0.0.1:{port}\n{key_line}  timeout: 5s\n"),
        )
        .unwrap();
        p
    };
    let run = |config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_headscale"))
            .arg("--config")
            .arg(config)
            .args(["users", "list", "-o", "json"])
            .env_remove("HEADSCALE_CONFIG")
            .env_remove("HEADSCALE_CLI_ADDRESS")
            .env_remove("HEADSCALE_CLI_API_KEY")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&cli_only("good.yaml", &format!("  api_key: {key}\n")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(users[0]["name"], "gina", "{users}");
    let out = run(&cli_only("nokey.yaml", ""));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("API key is required"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&cli_only("badkey.yaml", "  api_key: invalid-key-12345\n"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Unauthenticated") && !err.contains("gina"),
        "{err}"
    );
}
