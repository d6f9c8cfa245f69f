//! Go Headscale 0.29.3's own CLI against this server over the unix socket: it works (grpc-go
//! sends the socket path as `:authority`), and for the same commands on the same server it
//! prints exactly what our CLI prints, in every `-o` format, success and failure.
//!
//! The Go binary is built from the Go module proxy on first use and cached in
//! `~/.cache/hs-integration/go-headscale-0.29.3` (`HS_GO_HEADSCALE` names another), as the
//! integration harness caches the Tailscale clients; Go is installed on this project's
//! machines, and its absence fails the test rather than skipping it.
//!
//! [`database`]: the same database served by Go, then here, then by Go again.
//! [`acme`]: the same Let's Encrypt cache used by Go, then here, and the other way round.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

#[path = "go_cli/acme.rs"]
mod acme;
#[path = "go_cli/database.rs"]
mod database;
#[path = "go_cli/script.rs"]
mod script;
mod support;

use std::path::{Path, PathBuf};

use hs_testkit::free_port;
use std::process::{Child, Command, Output};

const GO_VERSION: &str = "v0.29.3";

/// The Go CLI, built once per machine.
fn go_headscale() -> PathBuf {
    if let Some(p) = std::env::var_os("HS_GO_HEADSCALE") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").expect("HOME");
    let bin = Path::new(&home).join(".cache/hs-integration/go-headscale-0.29.3");
    if bin.exists() {
        return bin;
    }
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    // `go install …@v0.29.3` is refused (the proxy hides the version list); download the
    // module and build inside it.
    let out = Command::new("go")
        .args(["mod", "download", "-json"])
        .arg(format!("github.com/juanfont/headscale@{GO_VERSION}"))
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("running go (Go 1.26 is part of this project's machines)");
    assert!(
        out.status.success(),
        "go mod download: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir = info["Dir"].as_str().unwrap();
    let st = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg("./cmd/headscale")
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .status()
        .unwrap();
    assert!(st.success(), "building Go Headscale {GO_VERSION}");
    bin
}

struct Server {
    child: Child,
    ours: PathBuf,
    go: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("headscale.sock");
    let common = format!(
        "server_url: http://127.0.0.1:8080
unix_socket: {}
unix_socket_permission: \"0770\"
prefixes:
  v4: 100.64.0.0/10
dns:
  magic_dns: false
  base_domain: example.com
  override_local_dns: false
derp:
  urls: []
",
        socket.display()
    );
    let ours = dir.path().join("config.yaml");
    std::fs::write(
        &ours,
        format!(
            "{common}listen_addr: 127.0.0.1:0
grpc_listen_addr: \"\"
noise:
  private_key_path: noise_private.key
database:
  type: sqlite
  sqlite:
    path: db.sqlite
"
        ),
    )
    .unwrap();
    // What the Go CLI reads (it only uses the socket, but loads a whole config): its own
    // database and key paths, which it never opens.
    let go = dir.path().join("go-config.yaml");
    std::fs::write(
        &go,
        format!(
            "{common}listen_addr: 127.0.0.1:1
noise:
  private_key_path: {}
database:
  type: sqlite
  sqlite:
    path: {}
",
            dir.path().join("go-noise.key").display(),
            dir.path().join("go.sqlite").display()
        ),
    )
    .unwrap();
    let (child, _) = support::spawn_serve(&ours);
    Server {
        child,
        ours,
        go,
        _dir: dir,
    }
}

fn run(bin: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("HEADSCALE_CONFIG")
        .env_remove("HEADSCALE_CLI_ADDRESS")
        .output()
        .unwrap()
}

impl Server {
    fn ours(&self, args: &[&str]) -> Output {
        run(Path::new(env!("CARGO_BIN_EXE_headscale")), &self.ours, args)
    }
    fn go(&self, args: &[&str]) -> Output {
        run(&go_headscale(), &self.go, args)
    }
    /// Both CLIs, the same command: the same stdout, stderr and exit code.
    fn same(&self, args: &[&str]) -> String {
        let (o, g) = (self.ours(args), self.go(args));
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert_eq!(text(&o.stdout), text(&g.stdout), "stdout of {args:?}");
        assert_eq!(
            o.status.code(),
            g.status.code(),
            "exit code of {args:?}: {}",
            text(&g.stderr)
        );
        if !g.status.success() {
            assert_eq!(text(&o.stderr), text(&g.stderr), "stderr of {args:?}");
        }
        text(&g.stdout)
    }
}

#[test]
fn the_go_cli_works_over_the_socket_and_prints_what_ours_prints() {
    let s = start();
    // Made with each CLI in turn: Go's writes go through this server's API too.
    let made = s.go(&["users", "create", "alice", "-o", "json"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(
        s.ours(&["users", "create", "bob", "--email", "bob@example.com"])
            .status
            .success()
    );
    let key = s.go(&[
        "preauthkeys",
        "create",
        "-u",
        "1",
        "--reusable",
        "-e",
        "1h",
        "--tags",
        "tag:x",
    ]);
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    assert!(s.ours(&["apikeys", "create", "-e", "1h"]).status.success());

    for format in ["json", "json-line", "yaml"] {
        for cmd in [
            &["users", "list"][..],
            &["users", "list", "-n", "bob"],
            &["nodes", "list"],
            &["preauthkeys", "list"],
            &["apikeys", "list"],
        ] {
            let mut args = cmd.to_vec();
            args.extend(["-o", format]);
            let out = s.same(&args);
            assert!(!out.trim().is_empty(), "{args:?} printed nothing");
        }
    }
    let listed = s.same(&["users", "list", "-o", "json"]);
    assert!(listed.contains("\"bob@example.com\""), "{listed}");
    // Renamed by Go's CLI (by id: 0.29.3's CLI sends id 0 when given only a name, which
    // its own server refuses too), seen by both.
    let renamed = s.go(&["users", "rename", "-i", "2", "-r", "robert"]);
    assert!(
        renamed.status.success(),
        "{}",
        String::from_utf8_lossy(&renamed.stderr)
    );
    assert!(
        s.same(&["users", "list", "-o", "yaml"])
            .contains("name: robert")
    );
    // Failures: the same `Error: <what>: rpc error: code = … desc = …` on stderr, and exit 1.
    for args in [
        &["users", "create", "1bad"][..],
        &["nodes", "delete", "-i", "99", "--force"],
        &["nodes", "expire", "-i", "99"],
        &["nodes", "rename", "-i", "99", "newname"],
        &["nodes", "tag", "-i", "99", "-t", "tag:x"],
        &["preauthkeys", "expire", "-i", "99"],
        &["preauthkeys", "delete", "-i", "99"],
        &["apikeys", "expire", "-p", "nope"],
        &["apikeys", "delete", "-p", "nope"],
    ] {
        s.same(args);
        let mut json = args.to_vec();
        json.extend(["-o", "json"]);
        s.same(&json);
    }
    // A user who owns nothing is destroyed by either; both print `{}`.
    let gone = s.go(&["users", "destroy", "-i", "2", "--force", "-o", "json"]);
    assert_eq!(String::from_utf8_lossy(&gone.stdout), "{}\n");
}

/// A database Go Headscale 0.29.3 created from scratch (gormigrate's `SCHEMA_INIT` beside
/// every migration id of that release) opens here, with what Go stored in it.
#[test]
fn a_database_go_created_opens_here() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "server_url: http://127.0.0.1:8080
listen_addr: 127.0.0.1:0
grpc_listen_addr: \"\"
unix_socket: {dir}/headscale.sock
noise:
  private_key_path: {dir}/noise_private.key
prefixes:
  v4: 100.64.0.0/10
database:
  type: sqlite
  sqlite:
    path: {dir}/db.sqlite
dns:
  magic_dns: false
  base_domain: example.com
  override_local_dns: false
derp:
  urls: []
policy:
  mode: database
",
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let policy = dir.path().join("policy.hujson");
    std::fs::write(&policy, "{\"tagOwners\": {\"tag:made-by-go\": []}}\n").unwrap();
    let policy = policy.to_str().unwrap();
    let flag = "--bypass-grpc-and-access-database-directly";
    let go = run(
        &go_headscale(),
        &config,
        &["policy", "set", "-f", policy, flag, "--force"],
    );
    assert!(
        go.status.success(),
        "{}",
        String::from_utf8_lossy(&go.stderr)
    );

    let ours = Path::new(env!("CARGO_BIN_EXE_headscale"));
    let read = run(ours, &config, &["policy", "get", flag, "--force"]);
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert!(String::from_utf8_lossy(&read.stdout).contains("tag:made-by-go"));
    // And it serves: a user made here is listed.
    let (mut child, _) = support::spawn_serve(&config);
    let made = run(ours, &config, &["users", "create", "alice"]);
    let listed = run(ours, &config, &["users", "list", "-o", "json"]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("\"alice\""));
}

/// Remote gRPC over TLS with an API key (`cli.address`, `cli.api_key`, `cli.insecure`): Go's
/// CLI lists what ours lists. The certificate is a throwaway self-signed one (openssl).
#[test]
fn the_go_cli_works_over_remote_grpc() {
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path());
    let grpc = free_port();
    let d = dir.path().display();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "server_url: http://127.0.0.1:8080
listen_addr: 127.0.0.1:0
grpc_listen_addr: 127.0.0.1:{grpc}
tls_cert_path: {d}/tls.crt
tls_key_path: {d}/tls.key
unix_socket: {d}/headscale.sock
noise:
  private_key_path: {d}/noise.key
prefixes:
  v4: 100.64.0.0/10
database:
  type: sqlite
  sqlite:
    path: {d}/db.sqlite
dns:
  magic_dns: false
  base_domain: example.com
  override_local_dns: false
derp:
  urls: []
"
        ),
    )
    .unwrap();
    let (mut server, _) = support::spawn_serve(&config);
    let ours = Path::new(env!("CARGO_BIN_EXE_headscale"));
    assert!(
        run(ours, &config, &["users", "create", "alice"])
            .status
            .success()
    );
    let api_key = String::from_utf8(run(ours, &config, &["apikeys", "create", "-e", "1h"]).stdout)
        .unwrap()
        .trim()
        .to_owned();
    let remote = |bin: &Path| {
        Command::new(bin)
            .arg("-c")
            .arg(&config)
            .args(["users", "list", "-o", "json"])
            .env("HEADSCALE_CLI_ADDRESS", format!("127.0.0.1:{grpc}"))
            .env("HEADSCALE_CLI_API_KEY", &api_key)
            .env("HEADSCALE_CLI_INSECURE", "true")
            .output()
            .unwrap()
    };
    let (go, rs) = (remote(&go_headscale()), remote(ours));
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        go.status.success(),
        "{}",
        String::from_utf8_lossy(&go.stderr)
    );
    let text = String::from_utf8_lossy(&go.stdout);
    assert!(text.contains("\"alice\""), "{text}");
    assert_eq!(text, String::from_utf8_lossy(&rs.stdout));
}

/// A throwaway self-signed certificate for `localhost` and 127.0.0.1 (openssl), written as
/// `tls.crt` and `tls.key` in `dir`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (crt, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl (part of this project's machines)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (crt, key)
}
