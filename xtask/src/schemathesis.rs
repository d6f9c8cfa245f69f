//! `cargo xtask schemathesis [--examples N] [--seed S]`: fuzzes `/api/v1` against its own
//! OpenAPI document with schemathesis (from PyPI, in a cached virtualenv): a debug
//! `headscale serve` on loopback with an SQLite database, an API key, a user, a pre-auth key
//! and a stored policy, then every operation with generated valid and invalid requests and
//! schemathesis' stateful sequences. It fails on any 5xx and on any response the document
//! does not describe (status, content type, headers, body schema).
//!
//! Two things are left out, each for a reason the report prints: expiring or deleting API
//! keys (the run would revoke its own key and see only 401s afterwards), and the
//! `positive_data_acceptance` check (the API refuses requests the schema cannot describe as
//! wrong: an unparsable policy, a user name of one letter, a malformed auth ID).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

/// The schemathesis release the project is checked with.
const VERSION: &str = "4.32.5";

/// Parses `[--examples N] [--seed S]` and runs.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut examples: u32 = 200;
    let mut seed: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--examples" => {
                examples = it
                    .next()
                    .context("--examples needs a number")?
                    .parse()
                    .context("--examples needs a number")?;
            }
            "--seed" => seed = Some(it.next().context("--seed needs a number")?.clone()),
            other => bail!(
                "xtask schemathesis: unknown argument {other:?} (known: --examples N, --seed S)"
            ),
        }
    }
    let root = crate::ci::project_root();
    let st = ensure_schemathesis()?;
    let bin = build_headscale(&root)?;
    let dir = tempfile_dir()?;
    let config = write_config(&dir)?;
    let mut server = Server::start(&bin, &config)?;
    let cli = |args: &[&str]| -> Result<String> {
        let out = Command::new(&bin)
            .arg("-c")
            .arg(&config)
            .args(args)
            .output()
            .with_context(|| format!("running headscale {args:?}"))?;
        if !out.status.success() {
            bail!(
                "headscale {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let api_key = cli(&["apikeys", "create"])?;
    cli(&["users", "create", "alice"])?;
    cli(&["preauthkeys", "create", "-u", "1", "--reusable"])?;
    let policy = dir.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#,
    )?;
    cli(&["policy", "set", "-f", policy.to_str().context("temp path")?])?;

    let base = format!("http://{}", server.addr);
    let mut cmd = Command::new(&st);
    cmd.arg("run")
        .arg(format!("{base}/api/v1/openapi.yaml"))
        .args(["--url", &base])
        .args(["-H", &format!("Authorization: Bearer {api_key}")])
        .args(["--checks", "all"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--exclude-operation-id-regex", "^(expire|delete)ApiKey"])
        .args(["--max-examples", &examples.to_string()])
        .args(["--workers", "2"])
        .arg("--no-color");
    if let Some(s) = &seed {
        cmd.args(["--seed", s]);
    }
    // The key is passed in a header on the command line of a child that lives as long as
    // this loopback-only server; schemathesis masks it in its own report.
    println!("xtask schemathesis: {examples} examples per operation against {base}");
    let status = cmd.status().context("running schemathesis")?;
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    if !status.success() {
        bail!("schemathesis found failures (the report above lists each with a curl to replay)");
    }
    println!("xtask schemathesis: no failures");
    Ok(())
}

/// The `st` executable in the cached virtualenv, installed on first use.
fn ensure_schemathesis() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let venv = Path::new(&home).join(".cache/headscale-rs/schemathesis-venv");
    let st = venv.join("bin/st");
    let have = Command::new(&st)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(VERSION));
    if have {
        return Ok(st);
    }
    println!(
        "xtask schemathesis: installing schemathesis {VERSION} into {}",
        venv.display()
    );
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("running python3 -m venv (is Python 3 installed?)")?;
    if !ok.success() {
        bail!("python3 -m venv failed");
    }
    let ok = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", &format!("schemathesis=={VERSION}")])
        .status()
        .context("running pip")?;
    if !ok.success() {
        bail!("pip install schemathesis=={VERSION} failed");
    }
    Ok(st)
}

/// Builds the debug `headscale` with the features CI's test step uses (so the build is
/// shared) and returns its path.
fn build_headscale(root: &Path) -> Result<PathBuf> {
    let ok = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "headscale",
            "--features",
            "headscale/test-fault",
        ])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !ok.success() {
        bail!("cargo build -p headscale failed");
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("debug/headscale"))
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("hs-schemathesis-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A loopback-only config: no DERP URL is fetched, every listener on a free port.
fn write_config(dir: &Path) -> Result<PathBuf> {
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
database:
  type: sqlite
  sqlite:
    path: {d}/db.sqlite
dns:
  magic_dns: false
  override_local_dns: false
derp:
  urls: []
policy:
  mode: database
"
        ),
    )?;
    Ok(config)
}

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(bin: &Path, config: &Path) -> Result<Self> {
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(config)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting headscale serve")?;
        let stdout = child.stdout.take().context("serve's stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("headscale: listening on http://") {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Ok(Self { child, addr }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("headscale serve did not report its address within 60 s")
            }
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
