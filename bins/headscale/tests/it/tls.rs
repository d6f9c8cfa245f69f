//! TLS on `listen_addr`: `headscale serve` as a process with a certificate from files
//! (served, replaced on disk and served anew without a restart, a half-replaced pair
//! ignored) and from Pebble, Let's Encrypt's ACME test server, over HTTP-01 and TLS-ALPN-01
//! (obtained, renewed before a short-lived certificate expires, and reused from the cache
//! after a restart without asking the CA). Every connection stays on loopback: Pebble
//! validates `localhost`.

#![allow(
    clippy::disallowed_methods,
    reason = "bounded waits for a child process; no timing is asserted"
)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hs_testkit::pebble::Pebble;
use hs_testkit::tls::{TestCa, https_get, leaf_der};

use super::headscale;
use hs_testkit::free_port;

struct Serve {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Waits for the "listening on" line and returns it.
    fn listening(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.starts_with("headscale: listening on") => return l,
                Ok(l) => seen.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("serve did not start listening; output: {seen:?}");
    }
}

/// A config for `port` with `tls` (the `tls_*`/`acme_*` lines) added; the gRPC listener on
/// `grpc_port(port)`.
fn write_config(dir: &Path, port: u16, tls: &str) -> PathBuf {
    let d = dir.display();
    let grpc = grpc_port(dir);
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "server_url: https://localhost:{port}
listen_addr: 127.0.0.1:{port}
metrics_listen_addr: 127.0.0.1:0
grpc_listen_addr: 127.0.0.1:{grpc}
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
  override_local_dns: false
{tls}
"
        ),
    )
    .unwrap();
    path
}

/// The gRPC port of the config in `dir`, chosen once.
fn grpc_port(dir: &Path) -> u16 {
    let f = dir.join("grpc.port");
    if let Ok(p) = std::fs::read_to_string(&f) {
        return p.parse().unwrap();
    }
    let p = free_port();
    std::fs::write(&f, p.to_string()).unwrap();
    p
}

fn serve(config: &Path, env: &[(&str, &Path)]) -> Serve {
    let mut cmd = headscale();
    cmd.arg("-c").arg(config).arg("serve");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    for out in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    Serve { child, lines }
}

impl Serve {
    /// What the server printed since [`Serve::listening`].
    fn output(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Polls until `f` returns `Some`, or fails after `limit` with `what` and the log.
    fn eventually<T>(&self, limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what}; server output: {:#?}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[test]
fn a_certificate_from_files_is_served_and_replaced_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let root = ca.root_pem();
    let (cert1, key1) = ca.issue(&["localhost", "127.0.0.1"]);
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert1).unwrap();
    std::fs::write(&key_path, &key1).unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        port,
        &format!(
            "tls_cert_path: {}\ntls_key_path: {}",
            cert_path.display(),
            key_path.display()
        ),
    );
    let s = serve(&config, &[]);
    let line = s.listening();
    assert!(line.contains("listening on https://"), "{line}");

    let r = https_get(port, "localhost", &root, "/health").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.leaf, leaf_der(&cert1));

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(!buf.starts_with(b"HTTP/"), "plain HTTP was answered");

    // Half a renewal (the new certificate, the old key) is not served: the old pair stays.
    let (cert2, key2) = ca.issue(&["localhost", "127.0.0.1"]);
    std::fs::write(&cert_path, &cert2).unwrap();
    std::thread::sleep(hs_tls::files::WATCH_INTERVAL + Duration::from_secs(2));
    let r = https_get(port, "localhost", &root, "/health").unwrap();
    assert_eq!(
        r.leaf,
        leaf_der(&cert1),
        "a mismatched pair replaced the certificate"
    );

    // The key arrives: new handshakes get the new certificate, with no restart.
    std::fs::write(&key_path, &key2).unwrap();
    s.eventually(Duration::from_secs(20), "the replaced certificate", || {
        let r = https_get(port, "localhost", &root, "/health").ok()?;
        (r.leaf == leaf_der(&cert2)).then_some(())
    });
}

#[test]
fn tls_that_cannot_be_set_up_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, _) = ca.issue(&["localhost"]);
    let (_, other_key) = ca.issue(&["localhost"]);
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &other_key).unwrap();
    let cases = [
        (
            format!(
                "tls_cert_path: {}/missing.pem\ntls_key_path: {}",
                dir.path().display(),
                key_path.display()
            ),
            "tls_cert_path",
        ),
        (
            format!(
                "tls_cert_path: {}\ntls_key_path: {}",
                cert_path.display(),
                key_path.display()
            ),
            "tls_key_path: the key does not fit",
        ),
        (
            format!(
                "tls_letsencrypt_hostname: localhost\ntls_letsencrypt_cache_dir: {}/sub",
                cert_path.display()
            ),
            "tls_letsencrypt_cache_dir",
        ),
    ];
    for (tls, expect) in cases {
        let config = write_config(dir.path(), free_port(), &tls);
        let out = headscale()
            .arg("-c")
            .arg(&config)
            .arg("serve")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{tls}: serve started");
        assert!(err.contains(expect), "{tls}: expected {expect:?} in {err}");
    }
}

fn acme_config(dir: &Path, port: u16, pebble: &Pebble, challenge: &str, listen: u16) -> PathBuf {
    write_config(
        dir,
        port,
        &format!(
            "acme_url: {}
acme_email: ops@example.com
tls_letsencrypt_hostname: localhost
tls_letsencrypt_cache_dir: {}/acme
tls_letsencrypt_challenge_type: {challenge}
tls_letsencrypt_listen: 127.0.0.1:{listen}",
            pebble.directory_url,
            dir.display()
        ),
    )
}

fn served_leaf(port: u16, root: &str) -> Option<Vec<u8>> {
    let r = https_get(port, "localhost", root, "/health").ok()?;
    (r.status == 200).then_some(r.leaf)
}

#[test]
fn lets_encrypt_http01_obtains_renews_and_restarts_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (port, http01) = (free_port(), free_port());
    // 30 s certificates: renewal is due with 10 s left.
    let pebble = Pebble::start(http01, free_port(), Duration::from_secs(30));
    let root = pebble.issuing_root();
    let config = acme_config(dir.path(), port, &pebble, "HTTP-01", http01);
    let s = serve(&config, &[("SSL_CERT_FILE", &pebble.api_root)]);
    s.listening();

    let first = s.eventually(Duration::from_secs(60), "the first certificate", || {
        served_leaf(port, &root)
    });
    let cached = std::fs::read_to_string(dir.path().join("acme/localhost")).unwrap();
    assert_eq!(
        leaf_der(&cached),
        first,
        "the served certificate is not the cached one"
    );
    assert!(dir.path().join("acme/acme_account+key").exists());

    // Everything but a challenge on the HTTP-01 port is redirected to server_url.
    let mut c = TcpStream::connect(("127.0.0.1", http01)).unwrap();
    c.write_all(b"GET /a?b=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 302"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains(&format!("location: https://localhost:{port}/a?b=1")),
        "{reply}"
    );

    let renewed = s.eventually(Duration::from_secs(45), "the renewal", || {
        served_leaf(port, &root).filter(|l| *l != first)
    });
    drop(s);

    // Restart with the CA unreachable: the cached certificate is served at once.
    let stored = leaf_der(&std::fs::read_to_string(dir.path().join("acme/localhost")).unwrap());
    assert_eq!(stored, renewed);
    drop(pebble);
    let s = serve(&config, &[]);
    s.listening();
    let again = s.eventually(Duration::from_secs(10), "the cached certificate", || {
        served_leaf(port, &root)
    });
    assert_eq!(again, renewed);
}

#[test]
fn lets_encrypt_tls_alpn01_validates_on_the_main_listener() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let http01 = free_port();
    let pebble = Pebble::start(http01, port, Duration::from_secs(90 * 86_400));
    let root = pebble.issuing_root();
    let config = acme_config(dir.path(), port, &pebble, "TLS-ALPN-01", http01);
    let s = serve(&config, &[("SSL_CERT_FILE", &pebble.api_root)]);
    s.listening();
    let leaf = s.eventually(Duration::from_secs(60), "the certificate", || {
        served_leaf(port, &root)
    });
    let cached = std::fs::read_to_string(dir.path().join("acme/localhost")).unwrap();
    assert_eq!(leaf_der(&cached), leaf);
    // The remote gRPC listener serves the same certificate, as Go's does.
    let grpc = https_get(grpc_port(dir.path()), "localhost", &root, "/health").unwrap();
    assert_eq!(grpc.leaf, leaf, "gRPC listener certificate");
    // Nothing answers on Pebble's HTTP-01 port (the challenge listener runs only for
    // HTTP-01), so the name was proven on the main listener.
    assert!(
        TcpStream::connect(("127.0.0.1", http01)).is_err(),
        "an HTTP-01 listener is running in TLS-ALPN-01 mode"
    );
}
