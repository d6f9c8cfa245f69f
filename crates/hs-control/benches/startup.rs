//! Start-up at scale: how long [`ControlState::start`] takes to load 10k nodes (and their
//! users and keys) from SQLite into the NodeStore and be ready to serve.
//! Run: `cargo bench -p hs-control --bench startup` (`STARTUP_NODES` to change the count).

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::disallowed_methods,
    missing_docs,
    reason = "a measuring tool: it prints its results, fails loudly and reads the clock"
)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use chrono::Utc;
use hs_control::{ControlState, StateConfig};
use hs_db::{AllocationStrategy, Db, DbConfig, NewUser, SqliteConfig};
use hs_mapper::MapperConfig;
use hs_types::model::{Node, RegisterMethod};
use hs_types::tailcfg::DERPMap;
use hs_types::{DiscoPublic, MachinePrivate, NodeId, NodePrivate};

fn main() {
    let n: u32 = std::env::var("STARTUP_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&DbConfig::Sqlite(SqliteConfig::new(
        dir.path().join("db.sqlite"),
    )))
    .unwrap();
    let now = Utc::now();
    let user = db
        .tx(|c| {
            c.create_user(
                &NewUser {
                    name: "u".into(),
                    ..NewUser::default()
                },
                now,
            )
        })
        .unwrap()
        .id;
    let mut rng = rand::rngs::OsRng;
    let nodes: Vec<Node> = (0..n)
        .map(|i| Node {
            id: NodeId(0),
            machine_key: MachinePrivate::generate(&mut rng).public(),
            node_key: NodePrivate::generate(&mut rng).public(),
            disco_key: DiscoPublic::default(),
            endpoints: vec!["192.0.2.1:41641".parse().unwrap()],
            hostinfo: Some(serde_json::json!({"Hostname": format!("n{i}"), "OS": "linux"})),
            ipv4: Some(Ipv4Addr::from(0x6440_0000u32 + 1 + i)),
            ipv6: Some(Ipv6Addr::from(
                0xfd7a_115c_a1e0_u128 << 80 | u128::from(i + 1),
            )),
            hostname: format!("n{i}"),
            given_name: format!("n{i}"),
            user_id: Some(user),
            register_method: RegisterMethod::AuthKey,
            tags: Vec::new(),
            auth_key_id: None,
            expiry: None,
            last_seen: Some(now),
            approved_routes: Vec::new(),
            created_at: now,
            updated_at: now,
        })
        .collect();
    db.tx(|c| {
        for node in &nodes {
            c.create_node(node)?;
        }
        Ok(())
    })
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let derp: DERPMap = serde_json::from_str(r#"{"Regions":{}}"#).unwrap();
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let st = rt
            .block_on(ControlState::start(
                db.clone(),
                StateConfig {
                    server_url: "http://127.0.0.1:8080".into(),
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
            ))
            .unwrap();
        times.push(t.elapsed());
        assert_eq!(st.store().load().len(), n as usize);
    }
    println!("start-up with {n} nodes (SQLite, load + NodeStore build), 3 runs: {times:?}");
}
