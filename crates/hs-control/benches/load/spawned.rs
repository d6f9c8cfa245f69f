//! `LOAD_SERVER=spawn`: the load generator against the real `headscale serve` process, on
//! the embedded default configuration (no config file), in a temporary home directory.
//!
//! The binary is `LOAD_HEADSCALE_BIN`, else `target/release/headscale`, else
//! `target/debug/headscale` (whichever exists; build it first). Only loopback is used: the
//! main listener on 127.0.0.1 port 0 (the address is read from serve's start-up line), the
//! metrics listener and STUN on free 127.0.0.1 ports; the embedded default fetches no
//! `derp.urls`. A user and a reusable pre-auth key are made with the headscale CLI through
//! the unix socket, as an operator would.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::Target;

fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("LOAD_HEADSCALE_BIN") {
        // The server runs in its temporary home, so a relative path must be made absolute.
        return std::path::absolute(&p).unwrap();
    }
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("headscale"))
        .find(|p| p.is_file())
        .expect("no headscale binary: run `cargo build --release -p headscale` or set LOAD_HEADSCALE_BIN")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The process and its temporary home; the process is killed when this is dropped.
struct Server {
    _child: Child,
    _home: tempfile::TempDir,
}

fn command(bin: &Path, home: &Path) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(home)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    c
}

async fn cli(bin: &Path, home: &Path, args: &[&str]) -> String {
    let out = command(bin, home).args(args).output().await.unwrap();
    assert!(
        out.status.success(),
        "headscale {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) async fn start() -> Target {
    let bin = binary();
    let home = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let mut child = command(&bin, home.path())
        .arg("serve")
        .env("HEADSCALE_LISTEN_ADDR", "127.0.0.1:0")
        .env(
            "HEADSCALE_METRICS_LISTEN_ADDR",
            format!("127.0.0.1:{metrics_port}"),
        )
        .env("HEADSCALE_DERP_SERVER_STUN_LISTEN_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if let Some(rest) = l.strip_prefix("headscale: listening on http://") {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("headscale serve exited before listening")
    })
    .await
    .expect("headscale serve listening within 60 s");
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let user: serde_json::Value = serde_json::from_str(
        &cli(
            &bin,
            home.path(),
            &["users", "create", "load", "-o", "json"],
        )
        .await,
    )
    .unwrap();
    let id = match &user["id"] {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let key = cli(
        &bin,
        home.path(),
        &[
            "preauthkeys",
            "create",
            "-u",
            &id,
            "--reusable",
            "-e",
            "24h",
        ],
    )
    .await
    .trim()
    .to_owned();
    println!(
        "spawned {} serve (embedded default) on {addr}, pid {:?}",
        bin.display(),
        child.id()
    );
    Target {
        url: format!("http://{addr}").parse().unwrap(),
        key,
        metrics: Box::new(move || Box::pin(scrape(metrics_port))),
        _keep: Box::new(Server {
            _child: child,
            _home: home,
        }),
    }
}

async fn scrape(port: u16) -> String {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return "metrics listener not reachable".into();
    };
    let _ = s
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out.split_once("\r\n\r\n")
        .map_or(out.clone(), |(_, body)| body.to_owned())
}
