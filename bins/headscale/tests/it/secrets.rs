//! Secrets never reach the logs (a past Headscale security fix: bearer tokens were logged).
//! `headscale serve` runs at `log.level: trace` with stdout and stderr captured while an API
//! key is used over REST (right, wrong and malformed), a pre-auth key registers Tailscale's
//! Rust client (and a wrong one is refused), and the CLI creates both over the socket; then
//! no log line holds either key, the secret half of either, or the Noise private key.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use super::headscale;
use hs_testkit::free_port;

fn get(port: u16, path: &str, bearer: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bearer}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn register(port: u16, auth_key: &str) -> Result<(), String> {
    let url: url::Url = format!("http://127.0.0.1:{port}").parse().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let keys = ts_keys::NodeState::generate();
            let conn = ts_control::client::connect(&url, &keys.machine_keys)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let cfg = ts_control::Config {
                server_url: url.clone(),
                hostname: Some("secret-test".into()),
                client_name: None,
                tags: Vec::new(),
                ephemeral: false,
            };
            ts_control::register(&cfg, &url, Some(auth_key), None, &keys, &conn)
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        })
}

#[test]
fn keys_and_tokens_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "server_url: http://127.0.0.1:{port}
listen_addr: 127.0.0.1:{port}
metrics_listen_addr: 127.0.0.1:0
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
derp:
  urls: []
  server:
    enabled: true
    region_id: 999
    region_code: hs
    region_name: hs
    stun_listen_addr: 127.0.0.1:{stun}
    private_key_path: {d}/derp.key
log:
  level: trace
",
            stun = free_port()
        ),
    )
    .unwrap();
    let (out_path, err_path) = (dir.path().join("out.log"), dir.path().join("err.log"));
    let mut server = headscale()
        .arg("-c")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::from(std::fs::File::create(&out_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
        .spawn()
        .unwrap();
    // 600 polls of 100 ms: a minute for a debug build to come up.
    let mut up = false;
    for _ in 0..600 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && dir.path().join("headscale.sock").exists()
        {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cli = |args: &[&str]| {
        let out = headscale()
            .arg("-c")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let result = std::panic::catch_unwind(|| {
        assert!(up, "serve did not come up");
        cli(&["users", "create", "alice"]);
        let api_key = cli(&["apikeys", "create", "-e", "1h"]);
        let auth_key = cli(&["preauthkeys", "create", "-u", "1", "-e", "1h", "--reusable"]);
        assert_eq!(get(port, "/api/v1/user", &api_key), 200);
        let (prefix_part, secret) = api_key.rsplit_once('-').unwrap();
        let wrong = format!("{prefix_part}-{}", "0".repeat(secret.len()));
        assert_eq!(get(port, "/api/v1/user", &wrong), 401);
        assert_eq!(get(port, "/api/v1/user", "hskey-api-garbage"), 401);
        register(port, &auth_key).expect("registering with the pre-auth key");
        let (auth_prefix, auth_secret) = auth_key.rsplit_once('-').unwrap();
        let wrong_auth = format!("{auth_prefix}-{}", "1".repeat(auth_secret.len()));
        assert!(
            register(port, &wrong_auth).is_err(),
            "a wrong pre-auth key registers"
        );
        (api_key, auth_key)
    });
    let _ = server.kill();
    let _ = server.wait();
    let (api_key, auth_key) = result.unwrap_or_else(|e| std::panic::resume_unwind(e));

    let logs =
        std::fs::read_to_string(&out_path).unwrap() + &std::fs::read_to_string(&err_path).unwrap();
    assert!(
        logs.lines().count() > 20,
        "trace logging produced too little to judge: {logs}"
    );
    let noise = std::fs::read_to_string(dir.path().join("noise.key")).unwrap();
    let noise_hex = noise.trim().trim_start_matches("privkey:");
    let secret_of = |k: &str| k.rsplit_once('-').unwrap().1.to_owned();
    for (what, needle) in [
        ("the API key", api_key.clone()),
        ("the API key's secret", secret_of(&api_key)),
        ("the pre-auth key", auth_key.clone()),
        ("the pre-auth key's secret", secret_of(&auth_key)),
        ("the Noise private key", noise_hex.to_owned()),
    ] {
        assert!(needle.len() >= 16, "{what} is too short to search for");
        if let Some(line) = logs.lines().find(|l| l.contains(&needle)) {
            panic!("{what} is in the log: {line}");
        }
    }
    assert!(
        !logs.to_ascii_lowercase().contains("bearer hskey"),
        "an Authorization header is in the log"
    );
}
