//! The Let's Encrypt cache is shared with Go Headscale 0.29.3: the ACME account Go's autocert
//! registered with Pebble (Let's Encrypt's test CA, on loopback, resolving `headscale.test` to
//! 127.0.0.1) is the one this server orders with, and the certificate this server cached is
//! what Go serves after a switch back, with the CA gone. One config file serves both.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hs_testkit::pebble::Pebble;
use hs_testkit::tls::https_get;

use super::{free_port, go_headscale};

fn write_config(dir: &Path, port: u16, http01: u16, acme_url: &str) -> std::path::PathBuf {
    let d = dir.display();
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "server_url: https://headscale.test:{port}
listen_addr: 127.0.0.1:{port}
metrics_listen_addr: 127.0.0.1:{metrics}
grpc_listen_addr: 127.0.0.1:{grpc}
unix_socket: {d}/hs.sock
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
  server:
    enabled: true
    region_id: 999
    region_code: hs
    region_name: hs
    stun_listen_addr: 127.0.0.1:{stun}
    private_key_path: {d}/derp.key
acme_url: {acme_url}
acme_email: ops@example.com
tls_letsencrypt_hostname: headscale.test
tls_letsencrypt_cache_dir: {d}/cache
tls_letsencrypt_challenge_type: HTTP-01
tls_letsencrypt_listen: 127.0.0.1:{http01}
",
            metrics = free_port(),
            grpc = free_port(),
            stun = free_port(),
        ),
    )
    .unwrap();
    path
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(bin: &Path, config: &Path, ca: Option<&Path>, log: &Path) -> Proc {
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(config)
        .arg("serve")
        .env_remove("HEADSCALE_CONFIG")
        .stdout(Stdio::from(
            std::fs::File::create(log.with_extension("out")).unwrap(),
        ))
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
    match ca {
        Some(ca) => cmd.env("SSL_CERT_FILE", ca),
        // No CA to trust: any request to an ACME server would fail.
        None => cmd.env("SSL_CERT_FILE", "/nonexistent"),
    };
    Proc(cmd.spawn().unwrap())
}

/// The leaf served for `headscale.test`, once the server answers (each try may wait for a
/// certificate to be obtained during the handshake, as Go's autocert does).
fn served(p: &mut Proc, port: u16, root: &str, log: &Path, ca_log: &dyn Fn() -> String) -> Vec<u8> {
    for _ in 0..120 {
        if let Some(st) = p.0.try_wait().unwrap() {
            panic!(
                "the server exited ({st}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Ok(r) = https_get(port, "headscale.test", root, "/health")
            && r.status == 200
        {
            return r.leaf;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "no certificate served; log: {}\nACME CA log: {}",
        std::fs::read_to_string(log).unwrap_or_default(),
        ca_log()
    );
}

#[test]
fn the_lets_encrypt_cache_is_shared_with_go() {
    let dir = tempfile::tempdir().unwrap();
    let (port, http01) = (free_port(), free_port());
    let ours = Path::new(env!("CARGO_BIN_EXE_headscale"));
    let go = go_headscale();
    let account_path = dir.path().join("cache/acme_account+key");

    // Go registers an ACME account and stores its key. (Go 0.29.3's ACME client then stops
    // short of the certificate with Pebble 2.10.3: Pebble's finalize answer has no Location
    // header and x/crypto/acme polls the empty URL. Let's Encrypt sends the header.)
    let pebble = Pebble::start(http01, port, Duration::from_secs(90 * 86_400));
    let root = pebble.issuing_root();
    let config = write_config(dir.path(), port, http01, &pebble.directory_url);
    let go_log = dir.path().join("go1.log");
    let p = spawn(&go, &config, Some(&pebble.api_root), &go_log);
    for _ in 0..120 {
        // autocert asks for a certificate at the first handshake for the name.
        let _ = https_get(port, "headscale.test", &root, "/health");
        if account_path.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(p);
    let go_account = std::fs::read_to_string(&account_path).unwrap_or_else(|e| {
        panic!(
            "Go wrote no account key ({e}); log: {}",
            std::fs::read_to_string(&go_log).unwrap_or_default()
        )
    });
    assert!(
        go_account.starts_with("-----BEGIN EC PRIVATE KEY-----"),
        "{go_account}"
    );

    // This server obtains the certificate with Go's account.
    let log = dir.path().join("ours.log");
    let mut p = spawn(ours, &config, Some(&pebble.api_root), &log);
    let from_ours = served(&mut p, port, &root, &log, &|| pebble.log());
    drop(p);
    assert_eq!(
        std::fs::read_to_string(&account_path).unwrap(),
        go_account,
        "Go's account key was replaced"
    );
    assert!(
        !pebble.log().contains("There are now 2 accounts"),
        "a second account was registered instead of Go's"
    );
    drop(pebble);

    // Go, with the CA gone, serves that certificate from the cache.
    let dead = format!("https://127.0.0.1:{}/dir", free_port());
    let config = write_config(dir.path(), port, http01, &dead);
    let go_log = dir.path().join("go2.log");
    let mut p = spawn(&go, &config, None, &go_log);
    assert_eq!(
        served(&mut p, port, &root, &go_log, &String::new),
        from_ours,
        "Go did not serve the certificate this server cached"
    );
    drop(p);
}
