//! The `tsrs` subcommand: Tailscale's Rust client (`ts_control` 0.6.1, the control half of the
//! `tailscale` crate) as a node of the scenario. It connects to the control server (`/key`,
//! Noise over `/ts2021`), registers with the pre-auth key from `HSIT_TS_AUTH_KEY` (the
//! environment, so the key never shows in a process list), holds the map stream and reports on
//! stderr what it learns: `tsrs: registered`, `tsrs: self <name> <v4> <v6>` and
//! `tsrs: peers [<hostnames>]` whenever the peer set changes. The scenario asserts on those
//! lines. It runs until killed.

use std::collections::BTreeMap;

use anyhow::Context as _;
use futures_util::StreamExt as _;

/// Runs the client against `url` as `hostname`.
pub(crate) fn run(url: &str, hostname: &str) -> anyhow::Result<()> {
    let url: url::Url = url.parse().with_context(|| format!("--url {url:?}"))?;
    let host_ok = url
        .host_str()
        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        host_ok,
        "tsrs --url {url}: only loopback control servers are allowed"
    );
    let key = std::env::var("HSIT_TS_AUTH_KEY").context("HSIT_TS_AUTH_KEY is not set")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(client(url, hostname.to_owned(), key))
}

async fn client(url: url::Url, hostname: String, key: String) -> anyhow::Result<()> {
    let cfg = ts_control::Config {
        server_url: url.clone(),
        hostname: Some(hostname),
        client_name: Some("hs-integration-tsrs".to_owned()),
        tags: Vec::new(),
        ephemeral: false,
    };
    let keys = ts_keys::NodeState::generate();
    let conn = ts_control::client::connect(&url, &keys.machine_keys)
        .await
        .context("connecting to the control server")?;
    ts_control::register(&cfg, &url, Some(&key), None, &keys, &conn)
        .await
        .map_err(|e| anyhow::anyhow!("registering: {e:?}"))?;
    eprintln!("tsrs: registered");
    let mut stream = Box::pin(
        ts_control::client::start_stream(&url, &keys, &cfg, conn)
            .await
            .map_err(|e| anyhow::anyhow!("starting the map stream: {e:?}"))?,
    );
    let mut peers: BTreeMap<String, String> = BTreeMap::new();
    let mut shown = String::new();
    while let Some(u) = stream.next().await {
        if let Some(n) = &u.node {
            let a = &n.tailnet_address;
            eprintln!("tsrs: self {} {} {}", n.hostname, a.ipv4, a.ipv6);
        }
        match u.peer_update {
            Some(ts_control::PeerUpdate::Full(all)) => {
                peers = all
                    .iter()
                    .map(|p| (format!("{:?}", p.id), p.hostname.clone()))
                    .collect();
            }
            Some(ts_control::PeerUpdate::Delta { upsert, remove, .. }) => {
                for p in &upsert {
                    peers.insert(format!("{:?}", p.id), p.hostname.clone());
                }
                for id in &remove {
                    peers.remove(&format!("{id:?}"));
                }
            }
            None => {}
        }
        let mut names: Vec<&String> = peers.values().collect();
        names.sort();
        let now = format!("{names:?}");
        if now != shown {
            eprintln!("tsrs: peers {now}");
            shown = now;
        }
    }
    anyhow::bail!("the map stream ended")
}
