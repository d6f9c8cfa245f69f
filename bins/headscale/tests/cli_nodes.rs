//! Node commands against a real `headscale serve` whose database already holds a node:
//! list, rename, approve routes, tag refusal, expire and delete through the CLI, and the
//! running control plane (its node store, seen through the DERP `/verify` endpoint)
//! following the deletion.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{TimeZone as _, Utc};
use hs_db::{Db, DbConfig, NewUser, SqliteConfig};
use hs_types::model::{Node, RegisterMethod};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic};

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

/// The server's config; `extra` is appended (top-level YAML keys).
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "server_url: http://127.0.0.1:8080
listen_addr: 127.0.0.1:0
unix_socket: {}
noise:
  private_key_path: noise_private.key
prefixes:
  v4: 100.64.0.0/10
database:
  type: sqlite
  sqlite:
    path: {}
dns:
  magic_dns: false
  override_local_dns: false
derp:
  server:
    enabled: true
    region_id: 999
    region_code: test
    region_name: Test
    verify_clients: true
    stun_listen_addr: 127.0.0.1:{}
    private_key_path: derp_server_private.key
    automatically_add_embedded_derp_region: true
    ipv4: 127.0.0.1
  urls: []
{extra}
",
            dir.join("headscale.sock").display(),
            dir.join("db.sqlite").display(),
            std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        ),
    )
    .unwrap();
    path
}

/// Seeds user `alice` and one node of hers, `host1`, with `key` as its node key.
fn seed(db_path: &Path, key: NodePublic) {
    let db = Db::open(&DbConfig::Sqlite(SqliteConfig::new(db_path))).unwrap();
    let t = Utc.timestamp_opt(1_700_000_000, 0).single().unwrap();
    let alice = db
        .tx(|c| {
            c.create_user(
                &NewUser {
                    name: "alice".into(),
                    ..NewUser::default()
                },
                t,
            )
        })
        .unwrap();
    let node = Node {
        id: NodeId(0),
        machine_key: MachinePublic::from_bytes([1; 32]),
        node_key: key,
        disco_key: DiscoPublic::from_bytes([3; 32]),
        endpoints: vec![],
        hostinfo: Some(
            serde_json::from_value(serde_json::json!({
                "Hostname": "host1",
                "OS": "linux",
                "RoutableIPs": ["10.1.0.0/24"]
            }))
            .unwrap(),
        ),
        ipv4: Some(std::net::Ipv4Addr::new(100, 64, 0, 1)),
        ipv6: None,
        hostname: "host1".into(),
        given_name: "host1".into(),
        user_id: Some(alice.id),
        register_method: RegisterMethod::AuthKey,
        tags: vec![],
        auth_key_id: None,
        expiry: Some(Utc.timestamp_opt(4_000_000_000, 0).single().unwrap()),
        last_seen: Some(t),
        approved_routes: vec![],
        created_at: t,
        updated_at: t,
    };
    db.tx(|c| c.create_node(&node)).unwrap();
}

fn start(key: NodePublic, extra: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), extra);
    seed(&dir.path().join("db.sqlite"), key);
    let (child, addr) = support::spawn_serve(&config);
    Server {
        child,
        addr,
        config,
        _dir: dir,
    }
}

impl Server {
    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_headscale"))
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env_remove("HEADSCALE_CONFIG")
            .env_remove("HEADSCALE_CLI_ADDRESS")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Whether the running server's node store admits `key` (DERP `/verify`).
    fn admits(&self, key: &str) -> bool {
        let body = format!(r#"{{"NodePublic":"{key}"}}"#);
        let mut s = TcpStream::connect(&self.addr).unwrap();
        write!(
            s,
            "POST /verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (_, body) = raw.split_once("\r\n\r\n").unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["Allow"].as_bool().unwrap()
    }
}

#[test]
fn node_commands_reach_the_database_and_the_control_plane() {
    let key = NodePublic::from_bytes([2; 32]);
    let key_text = key.to_string();
    let s = start(key, "");

    let nodes = s.json(&["nodes", "list", "-o", "json"]);
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
    assert_eq!(nodes[0]["given_name"], "host1");
    assert_eq!(nodes[0]["user"]["name"], "alice");
    assert_eq!(nodes[0]["ip_addresses"][0], "100.64.0.1");
    let id = nodes[0]["id"].as_u64().unwrap().to_string();
    assert!(s.admits(&key_text), "the seeded node is known to the relay");

    let renamed = s.json(&["nodes", "rename", "-i", &id, "web", "-o", "json"]);
    assert_eq!(renamed["given_name"], "web");

    let routed = s.json(&[
        "nodes",
        "approve-routes",
        "-i",
        &id,
        "-r",
        "10.1.0.0/24",
        "-o",
        "json",
    ]);
    assert_eq!(
        routed["approved_routes"],
        serde_json::json!(["10.1.0.0/24"])
    );
    // One exit route approves both, as Headscale does; a malformed prefix is refused by name
    // and changes nothing.
    let exit = s.json(&[
        "nodes",
        "approve-routes",
        "-i",
        &id,
        "-r",
        "10.1.0.0/24,::/0",
        "-o",
        "json",
    ]);
    assert_eq!(
        exit["approved_routes"],
        serde_json::json!(["0.0.0.0/0", "10.1.0.0/24", "::/0"])
    );
    let out = s.cli(&["nodes", "approve-routes", "-i", &id, "-r", "10.1.0.0/33"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("10.1.0.0/33"), "{err}");
    let routed = s.json(&[
        "nodes",
        "approve-routes",
        "-i",
        &id,
        "-r",
        "10.1.0.0/24",
        "-o",
        "json",
    ]);
    assert_eq!(
        routed["approved_routes"],
        serde_json::json!(["10.1.0.0/24"])
    );
    let routes = s.json(&["nodes", "list-routes", "-o", "json"]);
    assert_eq!(
        routes[0]["available_routes"],
        serde_json::json!(["10.1.0.0/24"])
    );

    // No policy owns the tag, so tagging is refused with the tag named.
    let out = s.cli(&["nodes", "tag", "-i", &id, "-t", "tag:web"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tag:web"));

    let expired = s.json(&["nodes", "expire", "-i", &id, "-o", "json"]);
    // 2100-01-01 in Unix seconds: the seeded 2096 expiry lies before it, and "now" far before.
    let expiry = expired["expiry"]["seconds"].as_i64().unwrap();
    assert!(
        expiry < 2_000_000_000,
        "expired now, not at the seeded 2096 expiry: {expiry}"
    );

    let out = s.cli(&["nodes", "delete", "-i", &id, "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Go prints its nil slice, `null`, for an empty list.
    assert_eq!(
        s.json(&["nodes", "list", "-o", "json"]),
        serde_json::Value::Null
    );
    // The deletion reaches the running node store (applied in the background; bounded wait).
    let mut admitted = true;
    for _ in 0..100 {
        admitted = s.admits(&key_text);
        if !admitted {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!admitted, "deleted node still admitted by the relay");

    let out = s.cli(&["nodes", "rename", "-i", &id, "again"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&id));
}

/// `nodes tag` is checked against the policy in force in the running server, as Headscale's
/// `SetNodeTags` does: a tag must be defined in `tagOwners`. A policy set through the CLI
/// (database mode) takes effect for the next tag change without a restart.
#[test]
fn node_tags_follow_the_live_policy() {
    let s = start(NodePublic::from_bytes([4; 32]), "policy:\n  mode: database");
    let id = s.json(&["nodes", "list", "-o", "json"])[0]["id"]
        .as_u64()
        .unwrap()
        .to_string();

    // No policy yet: no tag is defined, so none may be set.
    let out = s.cli(&["nodes", "tag", "-i", &id, "-t", "tag:web"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("requested tags [tag:web] are invalid or not permitted"),
        "{err}"
    );

    let policy = s._dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{
  "tagOwners": {"tag:web": ["alice@"], "tag:db": []},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]
}"#,
    )
    .unwrap();
    let out = s.cli(&["policy", "set", "-f", policy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A tag with no owners is still defined: the admin may set it.
    let tagged = s.json(&[
        "nodes", "tag", "-i", &id, "-t", "tag:web", "-t", "tag:db", "-o", "json",
    ]);
    let mut tags: Vec<&str> = tagged["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("no tags in {tagged}"))
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["tag:db", "tag:web"], "{tagged}");

    // One undefined tag refuses the whole change, naming only that tag; nothing is written.
    let out = s.cli(&["nodes", "tag", "-i", &id, "-t", "tag:web", "-t", "tag:nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("requested tags [tag:nope] are invalid or not permitted"),
        "{err}"
    );
    let after = s.json(&["nodes", "list", "-o", "json"]);
    assert_eq!(after[0]["tags"], tagged["tags"], "{after}");
    // Listed, the tagged node is owned by the tagged-devices pseudo user, as in Headscale.
    assert_eq!(after[0]["user"]["name"], "tagged-devices", "{after}");
    assert_eq!(after[0]["user"]["id"], 2_147_455_555_u64, "{after}");
    let table = s.cli(&["nodes", "list"]);
    assert!(table.status.success());
    let table = String::from_utf8_lossy(&table.stdout);
    // The 80-column table may shorten the name, never show another owner.
    assert!(table.contains("tagged-devi"), "{table}");

    // No tags at all: refused in Headscale's words.
    let out = s.cli(&["nodes", "tag", "-i", &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "cannot remove all tags from a node - tagged nodes must have at least one tag"
        ),
        "{err}"
    );
}

/// `nodes backfillips` gives a node missing its IPv4 an address from the running server's
/// allocator, writes it and reports it in Headscale's wording; a second run changes nothing,
/// and without confirmation nothing happens.
#[test]
fn backfillips_assigns_missing_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let db_path = dir.path().join("db.sqlite");
    seed(&db_path, NodePublic::from_bytes([5; 32]));
    Db::open(&DbConfig::Sqlite(SqliteConfig::new(&db_path)))
        .unwrap()
        .tx(|c| c.execute_raw("UPDATE nodes SET ipv4 = NULL"))
        .unwrap();
    let (child, addr) = support::spawn_serve(&config);
    let s = Server {
        child,
        addr,
        config,
        _dir: dir,
    };
    let before = s.json(&["nodes", "list", "-o", "json"]);
    // No addresses: Go's encoding/json omits the empty list.
    assert!(before[0].get("ip_addresses").is_none(), "{before}");

    let out = s.cli(&["nodes", "backfillips"]);
    assert!(!out.status.success(), "not confirmed: nothing to do");

    let changes = s.json(&["nodes", "backfillips", "--force", "-o", "json"]);
    let changes = changes.as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    let line = changes[0].as_str().unwrap();
    assert!(line.starts_with("assigned IPv4 \"100."), "{line}");
    assert!(line.ends_with("to Node(1) \"host1\""), "{line}");

    let after = s.json(&["nodes", "list", "-o", "json"]);
    let ip = after[0]["ip_addresses"][0].as_str().unwrap();
    assert!(line.contains(ip), "{line} vs {after}");
    assert_eq!(
        s.json(&["nodes", "backfillips", "--force", "-o", "json"]),
        serde_json::Value::Null
    );
}
