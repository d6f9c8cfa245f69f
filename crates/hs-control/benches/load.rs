//! Load generator speaking the real protocol: N Tailscale Rust clients (`ts_control` 0.6.1)
//! each fetch `/key`, open a Noise session, register with a pre-auth key and hold a map
//! stream against an in-process server on 127.0.0.1 (SQLite file, the server's real routes).
//!
//! Reports registrations per second and the time until every client's map lists every other
//! client. Run: `cargo bench -p hs-control --bench load` (`LOAD_NODES=200` for fewer).
//!
//! `LOAD_SERVER=spawn` drives the real `headscale serve` process instead (see [`spawned`]):
//! build it first (`cargo build --release -p headscale`), then
//! `LOAD_SERVER=spawn LOAD_NODES=1000 cargo bench -p hs-control --bench load`.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::disallowed_methods,
    missing_docs,
    reason = "a measuring tool: it prints its results, fails loudly and reads the clock"
)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt as _;
use hs_control::{ControlState, StateConfig, control_routes};
use hs_db::{AllocationStrategy, Db, DbConfig, NewPreAuthKey, NewUser, SqliteConfig};
use hs_mapper::MapperConfig;
use hs_noise::Ts2021;
use hs_types::MachinePrivate;
use hs_types::tailcfg::DERPMap;
use tokio::sync::{Semaphore, mpsc};
use ts_control::PeerUpdate;

fn main() {
    let n: usize = std::env::var("LOAD_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(n));
}

#[path = "load/spawned.rs"]
mod spawned;

/// Where the load goes: the server's URL, a reusable pre-auth key, and how to read the
/// server's metrics at the end.
struct Target {
    url: url::Url,
    key: String,
    metrics: Box<dyn Fn() -> futures_util::future::BoxFuture<'static, String>>,
    /// Keeps the server (process or state) alive for the run.
    _keep: Box<dyn std::any::Any>,
}

async fn run(n: usize) {
    let target = match std::env::var("LOAD_SERVER").as_deref() {
        Ok("spawn") => spawned::start().await,
        Ok("in-process") | Err(_) => in_process().await,
        Ok(other) => panic!("LOAD_SERVER={other:?}: expected spawn or in-process"),
    };
    println!("server: {}", target.url);
    drive(n, &target).await;
}

async fn in_process() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&DbConfig::Sqlite(SqliteConfig::new(
        dir.path().join("db.sqlite"),
    )))
    .unwrap();
    let user = db
        .tx(|c| {
            c.create_user(
                &NewUser {
                    name: "load".into(),
                    ..NewUser::default()
                },
                Utc::now(),
            )
        })
        .unwrap()
        .id;
    let (_, key) = db
        .create_pre_auth_key(
            &mut rand::rngs::OsRng,
            &NewPreAuthKey {
                user_id: Some(user),
                reusable: true,
                ..NewPreAuthKey::default()
            },
            Utc::now(),
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url: url::Url = format!("http://{}", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let derp: DERPMap = serde_json::from_str(
        r#"{"Regions":{"999":{"RegionID":999,"RegionCode":"t","RegionName":"T","Nodes":[{"Name":"999a","RegionID":999,"HostName":"127.0.0.1","DERPPort":1}]}}}"#,
    )
    .unwrap();
    let st = ControlState::start(
        db,
        StateConfig {
            server_url: url.as_str().trim_end_matches('/').to_owned(),
            node_expiry: None,
            ephemeral_inactivity_timeout: Duration::from_secs(1800),
            offline_grace: Duration::from_secs(10),
            register_cache_expiration: Duration::from_secs(15 * 60),
        },
        MapperConfig::new("example.com", &derp, None, false, false, false).unwrap(),
        (
            Some("100.64.0.0/10".parse().unwrap()),
            Some("fd7a:115c:a1e0::/48".parse().unwrap()),
            AllocationStrategy::Sequential,
        ),
    )
    .await
    .unwrap();
    let ts = Arc::new(Ts2021::new(Arc::new(MachinePrivate::generate(
        &mut rand::rngs::OsRng,
    ))));
    let app = control_routes(st.clone(), ts);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let m = Arc::clone(st.metrics());
    Target {
        url,
        key,
        metrics: Box::new(move || {
            let text = m.render();
            Box::pin(async move { text })
        }),
        _keep: Box::new((st, dir)),
    }
}

async fn drive(n: usize, target: &Target) {
    let url = target.url.clone();
    let key = Arc::new(target.key.clone());
    let limit = Arc::new(Semaphore::new(32));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let (reg_tx, mut reg_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let start = Instant::now();
    for i in 0..n {
        let (url, key, limit, done_tx, reg_tx) = (
            url.clone(),
            Arc::clone(&key),
            Arc::clone(&limit),
            done_tx.clone(),
            reg_tx.clone(),
        );
        tokio::spawn(async move {
            let keys = ts_keys::NodeState::generate();
            let cfg = ts_control::Config {
                server_url: url.clone(),
                hostname: Some(format!("load{i}")),
                client_name: None,
                tags: Vec::new(),
                ephemeral: false,
            };
            let conn: ts_control::client::HttpConn = {
                let _p = limit.acquire().await.unwrap();
                let conn = match ts_control::client::connect(&url, &keys.machine_keys).await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = reg_tx.send(Err(format!("connect: {e:?}")));
                        return;
                    }
                };
                let r = ts_control::register(&cfg, &url, Some(&key), None, &keys, &conn).await;
                let _ = reg_tx.send(r.map_err(|e| format!("register: {e:?}")));
                conn
            };
            // A stream the server closes (a client that fell behind) is reopened, as
            // tailscaled does; the new stream starts with a full map.
            let mut reported = false;
            let mut reconnects = 0u32;
            while !reported && reconnects < 20 {
                let Ok(stream) =
                    ts_control::client::start_stream(&url, &keys, &cfg, conn.clone()).await
                else {
                    reconnects += 1;
                    continue;
                };
                let mut stream = Box::pin(stream);
                let mut peers: HashSet<i64> = HashSet::new();
                while let Some(u) = stream.next().await {
                    match u.peer_update {
                        Some(PeerUpdate::Full(v)) => {
                            peers = v.into_iter().map(|p| p.id).collect();
                        }
                        Some(PeerUpdate::Delta { upsert, remove, .. }) => {
                            for r in remove {
                                peers.remove(&r);
                            }
                            peers.extend(upsert.into_iter().map(|p| p.id));
                        }
                        None => {}
                    }
                    if !reported && peers.len() == n - 1 {
                        reported = true;
                        let _ = done_tx.send((i, Instant::now()));
                    }
                }
                reconnects += 1;
            }
            // Keep the connection (and so the node online) until the run ends.
            std::future::pending::<()>().await;
        });
    }
    drop(done_tx);
    drop(reg_tx);
    let mut ok = 0usize;
    let mut errors = Vec::new();
    while ok + errors.len() < n {
        match reg_rx.recv().await {
            Some(Ok(())) => ok += 1,
            Some(Err(e)) => errors.push(e),
            None => break,
        }
    }
    let reg_elapsed = start.elapsed();
    println!("nodes: {n}");
    println!(
        "registrations: {ok} ok, {} failed, in {:.2} s = {:.1} registrations/s",
        errors.len(),
        reg_elapsed.as_secs_f64(),
        ok as f64 / reg_elapsed.as_secs_f64()
    );
    for e in errors.iter().take(5) {
        println!("  error: {e}");
    }
    let mut complete = 0usize;
    let mut last = start;
    let deadline = tokio::time::sleep(Duration::from_secs(600));
    tokio::pin!(deadline);
    while complete < ok {
        tokio::select! {
            r = done_rx.recv() => match r {
                Some((_, at)) => { complete += 1; last = last.max(at); }
                None => break,
            },
            () = &mut deadline => break,
        }
    }
    println!(
        "maps complete (every peer listed) at {complete}/{ok} clients; last one {:.2} s after start ({:.2} s after the last registration)",
        (last - start).as_secs_f64(),
        (last - start).saturating_sub(reg_elapsed).as_secs_f64()
    );
    println!(
        "metrics:\n{}",
        (target.metrics)()
            .await
            .lines()
            .filter(|l| !l.starts_with('#') && !l.contains("_bucket"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
