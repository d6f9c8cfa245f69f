//! `headscale serve` as a process: start on a free loopback port, wait (bounded) for the
//! "listening" line, ask for /health, stop it with SIGTERM.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::headscale;

/// How long a debug build may take to start listening before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

struct Running {
    child: Child,
    addr: String,
    lines: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd serve` and waits (bounded) for its address; for other test modules.
pub(crate) fn start_with(cmd: &mut std::process::Command) -> (Child, String) {
    let (child, addr, _) = launch(cmd);
    (child, addr)
}

fn start(cmd: &mut std::process::Command) -> Running {
    let (child, addr, lines) = launch(cmd);
    Running { child, addr, lines }
}

/// The child, its address and the lines it printed up to the address.
fn launch(cmd: &mut std::process::Command) -> (Child, String, Vec<String>) {
    let mut child = cmd
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(l) => l,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not report its address ({e}); output so far: {lines:?}");
            }
        };
        if let Some(rest) = line.strip_prefix("headscale: listening on http://") {
            let addr = rest.split_whitespace().next().unwrap().to_owned();
            lines.push(line);
            return (child, addr, lines);
        }
        lines.push(line);
    }
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
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

fn sigterm(child: &Child) {
    let st = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        "server_url: http://127.0.0.1:8080
listen_addr: 127.0.0.1:0
noise:
  private_key_path: keys/noise_private.key
prefixes:
  v4: 100.64.0.0/10
database:
  type: sqlite
  sqlite:
    path: db.sqlite
dns:
  magic_dns: false
  override_local_dns: false
derp:
  urls: []
",
    )
    .unwrap();
    path
}

#[test]
fn serve_with_a_config_file_answers_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut running = start(headscale().arg("-c").arg(&config));

    let (status, body) = http_get(&running.addr, "/health");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "pass");

    // The relative key path is resolved next to the config file and the key is created.
    let key = std::fs::read_to_string(dir.path().join("keys/noise_private.key")).unwrap();
    assert!(key.starts_with("privkey:"));
    // The database was created (and migrated) where the config says, next to it.
    assert!(dir.path().join("db.sqlite").is_file());

    sigterm(&running.child);
    let status = running.child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn serve_without_config_uses_the_embedded_default_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(
        headscale()
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("HEADSCALE_LISTEN_ADDR", "127.0.0.1:0")
            // Keep the embedded DERP's STUN address away from any real one.
            .env("HEADSCALE_DERP_SERVER_STUN_LISTEN_ADDR", "127.0.0.1:0"),
    );
    let data_dir = dir.path().join("data/headscale-rs");
    assert!(
        running
            .lines
            .iter()
            .any(|l| l.contains(&data_dir.display().to_string())),
        "{:?}",
        running.lines
    );
    // What a first-time user does next is printed, with this server's URL.
    for hint in [
        "headscale users create",
        "headscale preauthkeys create --user",
        "tailscale up --login-server http",
    ] {
        assert!(
            running.lines.iter().any(|l| l.contains(hint)),
            "no {hint:?} hint in {:?}",
            running.lines
        );
    }
    let (status, _) = http_get(&running.addr, "/health");
    assert_eq!(status, 200);
    assert!(data_dir.join("noise_private.key").is_file());
    assert!(data_dir.join("derp_server_private.key").is_file());
    assert!(data_dir.join("db.sqlite").is_file());
}
