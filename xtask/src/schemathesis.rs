//! `cargo xtask schemathesis [--examples N] [--seed S]`: fuzzes `/api/v1` and `/api/v2`,
//! each against its own OpenAPI document, with schemathesis (from PyPI, in a cached
//! virtualenv). Each API gets its own debug `headscale serve` on loopback with an SQLite
//! database, so one run's deletions cannot starve the other: an API key, a user and a
//! pre-auth key, and for v2 also a registered node that advertises a route and a policy
//! that defines tags, so device operations get past 404. Then every operation with
//! generated valid and invalid requests and schemathesis' stateful sequences, authenticated
//! with the API key as a bearer token. It fails on any 5xx and on any response the document
//! does not describe (status, content type, headers, body schema).
//!
//! Left out, each for a reason the report prints: expiring or deleting API keys (the run
//! would revoke its own key and see only 401s afterwards), and the
//! `positive_data_acceptance` check (the APIs refuse requests the schema cannot describe as
//! wrong: an unparsable policy, a user name of one letter, a malformed auth ID, a tag no
//! policy defines).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

/// The schemathesis release the project is checked with.
const VERSION: &str = "4.32.5";

/// The auth ID of the v2 run's node (`hskey-authreq-` and 24 characters).
const AUTH_ID: &str = "hskey-authreq-schemathesisschemathesis";

/// Per-operation settings for the v2 run. `If-Match` is checked before the policy in the
/// body, as RFC 9110 §13.2.1 has preconditions evaluated before the content is processed,
/// so a request with both a stale ETag and an invalid policy is rightly a 412, which
/// schemathesis does not count as a rejection by default.
const V2_CONFIG: &str = r#"[[operations]]
include-operation-id = "setPolicy"
checks.negative_data_rejection.expected-statuses = [400, 401, 403, 404, 405, 406, 409, 412, 415, 422, 428, 429, "5xx"]
"#;

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
    let runs = [
        ("v1", v1(&st, &bin, examples, seed.as_deref())?),
        ("v2", v2(&st, &bin, examples, seed.as_deref())?),
    ];
    let failed: Vec<&str> = runs
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(api, _)| *api)
        .collect();
    if !failed.is_empty() {
        bail!(
            "schemathesis found failures in /api/{} (the report above lists each with a curl to replay)",
            failed.join(" and /api/")
        );
    }
    println!("xtask schemathesis: no failures");
    Ok(())
}

/// `/api/v1`; whether schemathesis passed.
fn v1(st: &Path, bin: &Path, examples: u32, seed: Option<&str>) -> Result<bool> {
    let h = Instance::start(bin, "v1", None)?;
    let api_key = h.cli(&["apikeys", "create"])?;
    h.cli(&["users", "create", "alice"])?;
    h.cli(&["preauthkeys", "create", "-u", "1", "--reusable"])?;
    h.set_policy(r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#)?;
    let mut cmd = h.schemathesis(st, "v1", None, &api_key, examples, seed);
    cmd.args(["--exclude-operation-id-regex", "^(expire|delete)ApiKey"])
        .args(["--workers", "2"]);
    h.run(cmd)
}

/// `/api/v2`; whether schemathesis passed.
fn v2(st: &Path, bin: &Path, examples: u32, seed: Option<&str>) -> Result<bool> {
    let h = Instance::start(bin, "v2", Some("example.com"))?;
    let api_key = h.cli(&["apikeys", "create"])?;
    h.cli(&["users", "create", "alice"])?;
    h.cli(&["preauthkeys", "create", "-u", "1", "--reusable"])?;
    h.set_policy(
        r#"{"tagOwners": {"tag:ci": ["alice@"], "tag:prod": ["alice@"]},
            "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#,
    )?;
    h.cli(&[
        "debug",
        "create-node",
        "--name",
        "web",
        "-u",
        "alice",
        "-k",
        AUTH_ID,
        "-r",
        "10.0.0.0/24",
    ])?;
    h.cli(&["auth", "register", "--user", "alice", "--auth-id", AUTH_ID])?;
    let config = h.dir.join("schemathesis.toml");
    std::fs::write(&config, V2_CONFIG)?;
    let mut cmd = h.schemathesis(st, "v2", Some(&config), &api_key, examples, seed);
    // One worker: with two, hypothesis describes its filters by parsing Python source in two
    // threads at once, which CPython 3.11 (the cached venv's) can fail with "AST constructor
    // recursion depth mismatch" (the counter is per interpreter; python/cpython#106905).
    // The v2 operations hit it reliably; one worker costs a few seconds.
    cmd.args(["--workers", "1"]);
    h.run(cmd)
}

/// One `headscale serve` with its own directory, config and database.
struct Instance {
    bin: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    server: Server,
}

impl Instance {
    fn start(bin: &Path, name: &str, base_domain: Option<&str>) -> Result<Self> {
        let dir = tempfile_dir(name)?;
        let config = write_config(&dir, base_domain)?;
        let server = Server::start(bin, &config)?;
        Ok(Self {
            bin: bin.to_owned(),
            dir,
            config,
            server,
        })
    }

    fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
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
    }

    fn set_policy(&self, policy: &str) -> Result<()> {
        let file = self.dir.join("policy.json");
        std::fs::write(&file, policy)?;
        self.cli(&["policy", "set", "-f", file.to_str().context("temp path")?])?;
        Ok(())
    }

    /// `st run` against `/api/{api}/openapi.yaml` of this server, with `config` (a
    /// `schemathesis.toml`) if given.
    fn schemathesis(
        &self,
        st: &Path,
        api: &str,
        config: Option<&Path>,
        api_key: &str,
        examples: u32,
        seed: Option<&str>,
    ) -> Command {
        let base = format!("http://{}", self.server.addr);
        let mut cmd = Command::new(st);
        if let Some(c) = config {
            cmd.arg("--config-file").arg(c);
        }
        cmd.arg("run")
            .arg(format!("{base}/api/{api}/openapi.yaml"))
            .args(["--url", &base])
            .args(["-H", &format!("Authorization: Bearer {api_key}")])
            .args(["--checks", "all"])
            .args(["--exclude-checks", "positive_data_acceptance"])
            .args(["--max-examples", &examples.to_string()])
            .arg("--no-color");
        if let Some(s) = seed {
            cmd.args(["--seed", s]);
        }
        println!(
            "xtask schemathesis: /api/{api}: {examples} examples per operation against {base}"
        );
        cmd
    }

    /// Runs `cmd` (from [`Self::schemathesis`]) and stops the server.
    fn run(mut self, mut cmd: Command) -> Result<bool> {
        // The key is passed in a header on the command line of a child that lives as long
        // as this loopback-only server; schemathesis masks it in its own report.
        let status = cmd.status().context("running schemathesis")?;
        self.server.stop();
        Ok(status.success())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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

fn tempfile_dir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("hs-schemathesis-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A loopback-only config: no DERP URL is fetched, every listener on a free port.
fn write_config(dir: &Path, base_domain: Option<&str>) -> Result<PathBuf> {
    let d = dir.display();
    let base_domain = base_domain.map_or_else(String::new, |b| format!("\n  base_domain: {b}"));
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
  override_local_dns: false{base_domain}
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
