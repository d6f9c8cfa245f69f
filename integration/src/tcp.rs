//! Real TCP traffic between clients for the ACL scenarios. The `http` subcommand is a minimal
//! HTTP responder on a loopback port inside the scenario's namespace: with userspace
//! networking, tailscaled hands a connection to its Tailscale address on port P (once its
//! packet filter allowed it) to 127.0.0.1:P in its own namespace, so this one listener
//! serves every client of the scenario. A client dials a peer with `tailscale nc`, which goes
//! through its own tailscaled and the tailnet.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::client::Client;

/// What the responder answers with; a reply containing it proves the connection went through.
pub(crate) const MARKER: &str = "hs-integration-http-ok";

/// Serves `listen` until killed: every connection gets one HTTP response carrying [`MARKER`].
pub(crate) fn serve(listen: &str) -> anyhow::Result<()> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("http --listen {listen:?} is not an address"))?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "http --listen {addr}: only loopback addresses are allowed"
    );
    let l = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    eprintln!("hs-integration http: listening on {addr}");
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        std::thread::spawn(move || {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let body = format!("{MARKER}\n");
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        });
    }
    Ok(())
}

/// `tailscale nc <target> <port>` from `c`, sending an HTTP request; returns what came back
/// within `limit` (the process is killed then: a connection the peer's filter drops never
/// answers).
pub(crate) fn nc_get(
    c: &Client,
    target: &str,
    port: u16,
    limit: Duration,
) -> anyhow::Result<String> {
    let mut cmd = c.cli_command(&["nc", target, &port.to_string()]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{}: starting tailscale nc", c.name))?;
    // Kept open until the end: closing stdin can end nc before the answer arrives.
    let mut stdin = child.stdin.take();
    if let Some(w) = stdin.as_mut() {
        let _ = w.write_all(b"GET / HTTP/1.0\r\n\r\n");
    }
    let mut stdout = child.stdout.take().context("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let until = Instant::now() + limit;
    while Instant::now() < until && !reader.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(stdin);
    let out = reader.join().unwrap_or_default();
    Ok(String::from_utf8_lossy(&out).into_owned())
}
