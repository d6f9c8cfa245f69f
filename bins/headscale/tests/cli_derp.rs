//! `headscale serve` with the embedded DERP relay: its HTTP endpoints on the main listener,
//! `/verify` answered from the node store, and the STUN responder.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::Child;
use std::time::Duration;

struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, stun_port: u16) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "server_url: http://127.0.0.1:8080
listen_addr: 127.0.0.1:0
unix_socket: {}
noise:
  private_key_path: noise_private.key
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
  server:
    enabled: true
    region_id: 999
    region_code: test
    region_name: Test
    verify_clients: true
    stun_listen_addr: 127.0.0.1:{stun_port}
    private_key_path: derp_server_private.key
    automatically_add_embedded_derp_region: true
    ipv4: 127.0.0.1
  urls: []
",
            dir.join("headscale.sock").display()
        ),
    )
    .unwrap();
    path
}

fn start(stun_port: u16) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), stun_port);
    let (child, addr) = support::spawn_serve(&config);
    Server {
        child,
        addr,
        _dir: dir,
    }
}

fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_owned(),
    )
}

#[test]
fn derp_endpoints_verify_and_stun() {
    // A free UDP port for STUN: bind, note, release.
    let stun_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = start(stun_port);

    assert_eq!(http(&s.addr, "GET", "/generate_204", "").0, 204);
    assert_eq!(http(&s.addr, "GET", "/derp/probe", "").0, 200);
    assert_eq!(http(&s.addr, "GET", "/derp/latency-check", "").0, 200);
    // Without an Upgrade header the relay refuses the request.
    assert_eq!(http(&s.addr, "GET", "/derp", "").0, 426);

    // An unknown node key is not admitted.
    let key = format!("nodekey:{}", "11".repeat(32));
    let (status, body) = http(
        &s.addr,
        "POST",
        "/verify",
        &format!(r#"{{"NodePublic":"{key}","Source":"127.0.0.1"}}"#),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Allow"], false);
    assert_eq!(http(&s.addr, "POST", "/verify", "not json").0, 400);

    // STUN answers a binding request with the address it came from.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let tx = [7u8; 12];
    udp.send_to(
        &hs_derp::stun::binding_request(&tx),
        ("127.0.0.1", stun_port),
    )
    .unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    let (got_tx, mapped) = hs_derp::stun::parse_response(&buf[..n]).unwrap();
    assert_eq!(got_tx, tx);
    assert_eq!(mapped, udp.local_addr().unwrap());
}
