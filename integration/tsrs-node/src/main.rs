//! `hs-tsrs-node`: Tailscale's Rust client (the full `tailscale` crate 0.6.1: control client,
//! WireGuard, DERP, netstack) as a node of an integration scenario. It joins the control
//! server given by `--url` (loopback only) with the pre-auth key from `HSIT_TS_AUTH_KEY` (the
//! environment keeps the key out of process lists) and serves a TCP echo on its tailnet IPv4
//! address, port `--port`. On stderr it reports `tsrs-node: up <v4> <v6>` once addressed and
//! `tsrs-node: echoed <n> bytes` per connection; the scenario asserts on those lines.
//! Built on demand by the harness, outside the main workspace (about 265 crates).

use std::net::SocketAddr;

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, hostname, port) = match args.as_slice() {
        [u, url, h, hostname, p, port] if u == "--url" && h == "--hostname" && p == "--port" => (
            url.clone(),
            hostname.clone(),
            port.parse::<u16>().context("--port")?,
        ),
        _ => anyhow::bail!(
            "usage: HSIT_TS_AUTH_KEY=… hs-tsrs-node --url http://127.0.0.1:PORT --hostname NAME --port PORT"
        ),
    };
    let url: url::Url = url.parse().with_context(|| format!("--url {url:?}"))?;
    let loopback = url
        .host_str()
        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        loopback,
        "--url {url}: only loopback control servers are allowed"
    );
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let key = std::env::var("HSIT_TS_AUTH_KEY").context("HSIT_TS_AUTH_KEY is not set")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(node(url, hostname, port, key))
}

async fn node(url: url::Url, hostname: String, port: u16, key: String) -> anyhow::Result<()> {
    let config = tailscale::Config {
        control_server_url: url,
        requested_hostname: Some(hostname),
        ..tailscale::Config::default()
    };
    let dev = tailscale::Device::new(&config, Some(key))
        .await
        .map_err(|e| anyhow::anyhow!("starting the device: {e:?}"))?;
    let v4 = dev
        .ipv4_addr()
        .await
        .map_err(|e| anyhow::anyhow!("waiting for an IPv4 address: {e:?}"))?;
    let v6 = dev
        .ipv6_addr()
        .await
        .map_err(|e| anyhow::anyhow!("waiting for an IPv6 address: {e:?}"))?;
    let at: SocketAddr = (v4, port).into();
    let listener = dev
        .tcp_listen(at)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {at}: {e:?}"))?;
    eprintln!("tsrs-node: up {v4} {v6}");
    loop {
        let conn = listener
            .accept()
            .await
            .map_err(|e| anyhow::anyhow!("accepting: {e:?}"))?;
        tokio::spawn(async move {
            let from = conn.remote_addr();
            let (mut r, mut w) = tokio::io::split(conn);
            match tokio::io::copy(&mut r, &mut w).await {
                Ok(n) => eprintln!("tsrs-node: echoed {n} bytes to {from}"),
                Err(e) => eprintln!("tsrs-node: echo to {from} failed: {e}"),
            }
        });
    }
}
