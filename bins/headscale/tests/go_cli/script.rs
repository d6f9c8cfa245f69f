//! One script of Go's CLI commands, run against Go Headscale 0.29.3 and against this server
//! (each on a fresh database): every command prints the same stdout, stderr and exit code,
//! with only keys and times masked. Over the unix socket, and over remote gRPC with TLS and
//! an API key.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use super::database::{go_serve, stop, write_config_with};
use super::{free_port, go_headscale, support};

/// What differs between two servers by nature: generated keys (API, pre-auth, and the
/// machine and node keys `debug create-node` makes up) and the clock.
fn mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&mask_line(line));
    }
    out
}

fn mask_line(line: &str) -> String {
    let mut s = line.to_owned();
    // hskey-{api,auth}-<prefix>-<secret>, made-up machine and node keys, and below the
    // prefixes of listed keys.
    for kind in ["hskey-api-", "hskey-auth-", "mkey:", "nodekey:"] {
        while let Some(i) = s.find(kind) {
            let end = s[i + kind.len()..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .map_or(s.len(), |e| i + kind.len() + e);
            s.replace_range(i..end, "<KEY>");
        }
    }
    for field in [
        "\"prefix\":",
        "\"key\":",
        "prefix: ",
        "key: ",
        "\"seconds\":",
        "seconds: ",
        "\"nanos\":",
        "nanos: ",
    ] {
        let mut from = 0;
        while let Some(off) = s[from..].find(field) {
            let at = from + off;
            let start = at + field.len();
            // A whole field name (`key:` but not `preauthkey:`), and not Go's zero time
            // (negative seconds), which both servers must print alike.
            let whole = at == 0 || !s.as_bytes()[at - 1].is_ascii_alphanumeric();
            let rest = &s[start..];
            let skip = rest.len() - rest.trim_start().len();
            if !whole || rest.trim_start().starts_with('-') {
                from = start;
                continue;
            }
            let end = s[start + skip..]
                .find([',', '}'])
                .map_or(s.len(), |e| start + skip + e);
            s.replace_range(start + skip..end, "<X>");
            from = start + skip + 3;
        }
    }
    // RFC 3339 and Go's `2006-01-02 15:04:05` times in table output.
    let bytes: Vec<char> = s.chars().collect();
    let mut res = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let is_date = i + 10 <= bytes.len()
            && bytes[i..i + 4].iter().all(char::is_ascii_digit)
            && bytes[i + 4] == '-'
            && bytes[i + 7] == '-';
        if is_date {
            let mut j = i + 10;
            while j < bytes.len() && !matches!(bytes[j], '"' | ',' | ' ' | '|' | '\'') {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == ' ' && j + 9 <= bytes.len() && bytes[j + 3] == ':' {
                j += 9;
            }
            res.push_str("<TIME>");
            i = j;
        } else {
            res.push(bytes[i]);
            i += 1;
        }
    }
    res
}

struct Side {
    config: PathBuf,
    http: u16,
    /// Remote gRPC: the port and an API key; `None` talks over the unix socket.
    remote: Option<(u16, String)>,
    child: Option<Child>,
}

impl Side {
    /// Go's CLI against this side.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(go_headscale());
        c.arg("-c").arg(&self.config).args(args);
        c.env_remove("HEADSCALE_CONFIG");
        match &self.remote {
            None => c.env_remove("HEADSCALE_CLI_ADDRESS"),
            Some((port, key)) => c
                .env("HEADSCALE_CLI_ADDRESS", format!("127.0.0.1:{port}"))
                .env("HEADSCALE_CLI_API_KEY", key)
                .env("HEADSCALE_CLI_INSECURE", "true"),
        };
        c.output().unwrap()
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            stop(c);
        }
    }
}

fn policy(dir: &Path) -> PathBuf {
    let p = dir.join("policy.hujson");
    std::fs::write(
        &p,
        r#"{
  "tagOwners": {"tag:web": ["alice@"], "tag:db": ["alice@"]},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]
}
"#,
    )
    .unwrap();
    p
}

/// One step of the script.
enum Step {
    /// A CLI command; both servers must answer it alike.
    Same(String),
    /// A CLI command about the node the script registered; skipped where nothing registers.
    Node(String),
    /// Tailscale's Rust client registers `hostname` with the pre-auth key the previous
    /// command printed on each side.
    Register(&'static str),
}

fn script(policy: &str) -> Vec<Step> {
    use Step::{Node, Register, Same};
    let authreq = "hskey-authreq-PendingPendingPendingPen";
    vec![
        Same("users list".into()),
        Same("users list -o json".into()),
        Same("users create alice".into()),
        Same("users create bob --email bob@example.com --display-name Bob".into()),
        Same("users list".into()),
        Same("users list -o json".into()),
        Same("users list -o yaml".into()),
        Same("users list -o json-line".into()),
        Same("users list -n bob -o json".into()),
        Same("users list -i 1 -o yaml".into()),
        Same("users rename -i 2 -r robert -o json".into()),
        Same("users rename -i 99 -r x".into()),
        Same(format!("policy set -f {policy}")),
        Same("policy get".into()),
        Same(format!("policy check -f {policy}")),
        Same("preauthkeys create -u 1 --ephemeral --tags tag:web -o yaml".into()),
        Same("preauthkeys list -o json".into()),
        Same("preauthkeys list -o yaml".into()),
        Same("preauthkeys expire -i 1 -o json".into()),
        Same("preauthkeys delete -i 1 -o json".into()),
        Same("apikeys list -o json".into()),
        Same("preauthkeys create -u 1 --reusable -e 1h".into()),
        Register("script-node"),
        Same("preauthkeys list -o json".into()),
        Same("nodes list -o json".into()),
        Same("nodes list -o yaml".into()),
        Same("nodes list -u alice -o json".into()),
        Same("nodes list-routes -o json".into()),
        Node("nodes approve-routes -i 1 -r 10.20.0.0/24 -o json".into()),
        Same("nodes list-routes -o json".into()),
        Node("nodes rename -i 1 renamed-node -o json".into()),
        Node("nodes tag -i 1 -t tag:web -o json".into()),
        Node("nodes tag -i 1 -t tag:nobody".into()),
        Node("nodes expire -i 1 -o json".into()),
        Same("nodes list -o json".into()),
        Same("nodes delete -i 99 --force".into()),
        Same(format!(
            "debug create-node --name pending-node -u alice -k {authreq} -o json"
        )),
        Same(format!("auth approve --auth-id {authreq}")),
        Same("auth approve --auth-id hskey-authreq-NobodyNobodyNobodyNobody".into()),
        Same(format!("auth reject --auth-id {authreq}")),
        Node("nodes delete -i 1 --force -o json".into()),
        Same("nodes list -o json".into()),
        Same("users destroy -i 2 --force -o json".into()),
        Same("users list -o json".into()),
    ]
}

/// Where this server answers differently on purpose (docs/cli.md, "Where the answers
/// differ from Go Headscale 0.29.3"): the command, Go's exit code, and what our stderr
/// must say. Run after the script, since some of them change state on Go.
const DELIBERATE: &[(&str, i32, &str)] = &[
    // Go: Internal, with SQLite's constraint text.
    ("users create alice", 1, "code = AlreadyExists"),
    // Go 0.29.3's API does not apply its own user-name rules.
    ("users create 1bad", 0, "username must start with a letter"),
    // Go: Unknown "user not found".
    ("preauthkeys create -u 99", 1, "code = NotFound"),
    // Go: "Key expired", exit 0, for a key that does not exist.
    ("preauthkeys expire -i 99", 0, "code = NotFound"),
    // Go: Unknown "node no longer exists in NodeStore".
    ("nodes expire -i 99", 1, "code = NotFound"),
    // Go: InvalidArgument / Unknown "node no longer exists in NodeStore".
    (
        "nodes approve-routes -i 99 -r 10.0.0.0/8",
        1,
        "code = NotFound",
    ),
    ("nodes rename -i 99 other-name", 1, "code = NotFound"),
    // Go: Unknown, its DNS-label message.
    ("nodes rename -i 1 Bad_Name", 1, "code = InvalidArgument"),
    // Go: Unknown "node not found in registration cache".
    (
        "auth register --auth-id hskey-authreq-NobodyNobodyNobodyNobody --user alice",
        1,
        "code = NotFound",
    ),
];

fn text(b: &[u8]) -> String {
    mask(&String::from_utf8_lossy(b))
}

fn run_script(go_side: &Side, ours_side: &Side, policy: &str) {
    let mut diffs = Vec::new();
    let steps = script(policy);
    let (mut last_go, mut last_ours) = (String::new(), String::new());
    for step in &steps {
        let line = match step {
            Step::Same(line) => line,
            Step::Node(_) if go_side.remote.is_some() => continue,
            Step::Node(line) => line,
            // Over remote gRPC the servers speak TLS with a self-signed certificate, which
            // the Rust client has no way to trust; the socket run covers registered nodes.
            Step::Register(_) if go_side.remote.is_some() => continue,
            Step::Register(host) => {
                for (side, key) in [(go_side, &last_go), (ours_side, &last_ours)] {
                    super::database::register(side.http, key.trim(), host)
                        .unwrap_or_else(|e| panic!("registering {host}: {e}"));
                }
                continue;
            }
        };
        let a: Vec<&str> = line.split(' ').collect();
        let (g, o) = (go_side.cli(&a), ours_side.cli(&a));
        last_go = String::from_utf8_lossy(&g.stdout).into_owned();
        last_ours = String::from_utf8_lossy(&o.stdout).into_owned();
        let (gs, os) = (text(&g.stdout), text(&o.stdout));
        let (ge, oe) = (text(&g.stderr), text(&o.stderr));
        if gs != os || g.status.code() != o.status.code() || ge != oe {
            diffs.push(format!(
                "$ headscale {line}\n--- Go 0.29.3 (exit {:?})\n{gs}{ge}\n--- here (exit {:?})\n{os}{oe}",
                g.status.code(),
                o.status.code()
            ));
        }
    }
    for (line, go_exit, ours_says) in DELIBERATE {
        let a: Vec<&str> = line.split(' ').collect();
        let (g, o) = (go_side.cli(&a), ours_side.cli(&a));
        let oe = String::from_utf8_lossy(&o.stderr);
        if g.status.code() != Some(*go_exit)
            || o.status.code() != Some(1)
            || !oe.contains(ours_says)
        {
            diffs.push(format!(
                "$ headscale {line} (a known difference)\n--- Go 0.29.3 (exit {:?}, expected {go_exit})\n{}\n--- here (exit {:?}, expected 1 and {ours_says:?})\n{oe}",
                g.status.code(),
                text(&g.stderr),
                o.status.code(),
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} commands differ:\n\n{}",
        diffs.len(),
        steps.len() + DELIBERATE.len(),
        diffs.join("\n\n")
    );
}

/// Starts Go and this server on fresh databases (with `extra` config keys) and runs the
/// script; `remote` runs it over remote gRPC with an API key made on each side.
fn compare(extra: &str, remote: bool) {
    let gd = tempfile::tempdir().unwrap();
    let od = tempfile::tempdir().unwrap();
    let sqlite = "database:\n  type: sqlite\n  sqlite:\n    path: {dir}/db.sqlite";
    let ghttp = free_port();
    let extra_go = extra.replace("{dir}", &gd.path().display().to_string());
    let (go_cfg, ggrpc) = write_config_with(gd.path(), ghttp, sqlite, &extra_go);
    let mut go_side = Side {
        child: Some(go_serve(&go_cfg, ghttp, &gd.path().join("go.log"))),
        config: go_cfg,
        http: ghttp,
        remote: None,
    };
    let ohttp = free_port();
    let extra_ours = extra.replace("{dir}", &od.path().display().to_string());
    let (ours_cfg, ogrpc) = write_config_with(od.path(), ohttp, sqlite, &extra_ours);
    let mut ours_side = Side {
        child: Some(support::spawn_serve(&ours_cfg).0),
        config: ours_cfg,
        http: ohttp,
        remote: None,
    };
    if remote {
        for (side, port) in [(&mut go_side, ggrpc), (&mut ours_side, ogrpc)] {
            let made = side.cli(&["apikeys", "create", "-e", "1h"]);
            assert!(made.status.success(), "{}", text(&made.stderr));
            let key = String::from_utf8(made.stdout).unwrap().trim().to_owned();
            side.remote = Some((port, key));
        }
    }
    let p = policy(gd.path());
    run_script(&go_side, &ours_side, p.to_str().unwrap());
    if !remote {
        rest_errors_match(&go_side, &ours_side);
    }
}

#[test]
fn every_command_prints_what_go_prints_over_the_socket() {
    compare("", false);
}

/// REST errors: the same status and the same grpc-gateway body (`code`, `message`,
/// `details`), or Go's plain `Unauthorized`.
fn rest_errors_match(go_side: &Side, ours_side: &Side) {
    let key = |side: &Side| {
        let made = side.cli(&["apikeys", "create", "-e", "1h"]);
        assert!(made.status.success(), "{}", text(&made.stderr));
        String::from_utf8(made.stdout).unwrap().trim().to_owned()
    };
    let (gk, ok) = (key(go_side), key(ours_side));
    for (path, with_key) in [
        ("/api/v1/node/99", true),
        ("/api/v1/nope", true),
        ("/api/v1/user", false),
    ] {
        let pick = |k: &str| {
            if with_key {
                k.to_owned()
            } else {
                String::new()
            }
        };
        let g = super::database::get(go_side.http, path, &pick(&gk));
        let o = super::database::get(ours_side.http, path, &pick(&ok));
        assert_eq!(g, o, "GET {path}");
    }
}

#[test]
fn every_command_prints_what_go_prints_over_remote_grpc() {
    let certs = tempfile::tempdir().unwrap();
    let (crt, key) = super::self_signed(certs.path());
    compare(
        &format!(
            "tls_cert_path: {}\ntls_key_path: {}\n",
            crt.display(),
            key.display()
        ),
        true,
    );
}

#[test]
fn masking_keeps_what_is_not_a_key_or_a_time() {
    assert_eq!(
        mask_line(r#"{"id":"1","key":"abc","name":"alice","created_at":{"seconds":17,"nanos":5}}"#),
        r#"{"id":"1","key":<X>,"name":"alice","created_at":{"seconds":<X>,"nanos":<X>}}"#
    );
    assert_eq!(
        mask_line("| 1 | alice | 2026-12-04 03:59:57 | hskey-auth-abc_def-ghi |"),
        "| 1 | alice | <TIME> | <KEY> |"
    );
    assert_eq!(
        mask_line("Error: expiring preauthkey: not found; seconds: -62135596800"),
        "Error: expiring preauthkey: not found; seconds: -62135596800"
    );
    assert_eq!(
        mask_line("expiration: 2026-12-04T03:59:57.123Z"),
        "expiration: <TIME>"
    );
}
