//! Pebble, Let's Encrypt's ACME test server, as a child process on loopback: a real ACME CA
//! that validates HTTP-01 and TLS-ALPN-01 by connecting back to the name it is asked for.
//! Its resolver is Pebble's own mock DNS server (`pebble-challtestsrv`, also on loopback),
//! which answers every name with 127.0.0.1 and no IPv6 address, so any hostname a test picks
//! is validated on this machine and nothing else is ever contacted. Both are built from the Go
//! module proxy on first use and cached in `~/.cache/hs-integration/pebble-v2.10.3`, like the
//! Tailscale clients.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test set-up: a Pebble that does not start is the test's failure"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "a bounded wait for a child process to listen"
)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

const VERSION: &str = "v2.10.3";
const MODULE: &str = "github.com/letsencrypt/pebble/v2";

/// A running Pebble; killed when dropped.
pub struct Pebble {
    child: Child,
    dns: Child,
    /// The ACME directory (`acme_url`).
    pub directory_url: String,
    /// The CA that signed Pebble's own HTTPS certificate: what the ACME client must trust
    /// (`SSL_CERT_FILE`).
    pub api_root: PathBuf,
    management_port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in [&mut self.child, &mut self.dns] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn go(args: &[&str]) -> Command {
    let mut c = Command::new("go");
    c.args(args)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod");
    c
}

/// The module's source directory (for its test certificates).
fn module_dir() -> PathBuf {
    let out = go(&["mod", "download", "-json", &format!("{MODULE}@{VERSION}")])
        .output()
        .expect("running go (Go is part of this project's machines)");
    assert!(
        out.status.success(),
        "go mod download pebble: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let dir = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"Dir\": \""))
        .and_then(|l| l.strip_suffix("\","))
        .expect("go mod download -json names the module's Dir");
    PathBuf::from(dir)
}

/// `pebble` or `pebble-challtestsrv`, built once per machine.
fn binary(name: &str) -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME");
    let dir = Path::new(&home).join(format!(".cache/hs-integration/pebble-{VERSION}"));
    let bin = dir.join(name);
    if !bin.exists() {
        let st = go(&["install", &format!("{MODULE}/cmd/{name}@{VERSION}")])
            .env("GOBIN", &dir)
            .status()
            .expect("running go install");
        assert!(st.success(), "building {name} {VERSION}");
    }
    bin
}

impl Pebble {
    /// Starts Pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port`,
    /// issuing certificates valid for `validity` (rounded to seconds).
    pub fn start(http_port: u16, tls_port: u16, validity: Duration) -> Self {
        let src = module_dir();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let management_port = free_port();
        let config = dir.path().join("pebble.json");
        let cfg = serde_json_like(&[
            ("listenAddress", format!("\"127.0.0.1:{port}\"")),
            (
                "managementListenAddress",
                format!("\"127.0.0.1:{management_port}\""),
            ),
            (
                "certificate",
                format!(
                    "\"{}\"",
                    src.join("test/certs/localhost/cert.pem").display()
                ),
            ),
            (
                "privateKey",
                format!("\"{}\"", src.join("test/certs/localhost/key.pem").display()),
            ),
            ("httpPort", http_port.to_string()),
            ("tlsPort", tls_port.to_string()),
            ("ocspResponderURL", "\"\"".into()),
            ("externalAccountBindingRequired", "false".into()),
            (
                "profiles",
                format!(
                    "{{\"default\":{{\"description\":\"test\",\"validityPeriod\":{}}}}}",
                    validity.as_secs().max(1)
                ),
            ),
        ]);
        std::fs::write(&config, cfg).unwrap();
        let dns_port = free_port();
        let dns_log = std::fs::File::create(dir.path().join("dns.log")).unwrap();
        let dns = Command::new(binary("pebble-challtestsrv"))
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", ""])
            .stdout(Stdio::from(dns_log.try_clone().unwrap()))
            .stderr(Stdio::from(dns_log))
            .spawn()
            .expect("starting pebble-challtestsrv");
        let log = std::fs::File::create(dir.path().join("pebble.log")).unwrap();
        let child = Command::new(binary("pebble"))
            .arg("-config")
            .arg(&config)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting pebble");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err()
            || TcpStream::connect(("127.0.0.1", management_port)).is_err()
            || TcpStream::connect(("127.0.0.1", dns_port)).is_err()
        {
            assert!(Instant::now() < deadline, "Pebble did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            dns,
            directory_url: format!("https://127.0.0.1:{port}/dir"),
            api_root: src.join("test/certs/pebble.minica.pem"),
            management_port,
            dir,
        }
    }

    /// The root that signs issued certificates (it is new on every start), as PEM.
    pub fn issuing_root(&self) -> String {
        let minica = std::fs::read_to_string(&self.api_root).unwrap();
        let r = crate::tls::https_get(self.management_port, "localhost", &minica, "/roots/0")
            .expect("Pebble's management API");
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// Pebble's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }
}

fn serde_json_like(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{\"pebble\":{{{}}}}}", body.join(","))
}
