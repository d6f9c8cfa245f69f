//! Admin API costs on a real SQLite file: listing 1,000 nodes through the REST router
//! (JSON of the whole tailnet, what `headscale nodes list` pays), and one authenticated
//! request (bcrypt verification of the bearer key dominates).

#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark harness")]

use std::sync::Arc;

use axum::body::Body;
use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use tower::ServiceExt;

use hs_api::{Admin, PolicyMode};
use hs_db::{Db, DbConfig, SqliteConfig};
use hs_types::model::{Node, RegisterMethod};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic};

async fn setup(dir: &std::path::Path, nodes: u32) -> Admin {
    let db = Db::open(&DbConfig::Sqlite(SqliteConfig::new(dir.join("db.sqlite")))).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).single().unwrap();
    let user = hs_db::NewUser {
        name: "alice".into(),
        display_name: String::new(),
        email: String::new(),
        provider_identifier: None,
        provider: String::new(),
        profile_pic_url: String::new(),
    };
    let u = db.tx(|c| c.create_user(&user, now)).unwrap();
    db.tx(|c| {
        for i in 0..nodes {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            let n = Node {
                id: NodeId(0),
                machine_key: MachinePublic::from_bytes(k),
                node_key: NodePublic::from_bytes(k),
                disco_key: DiscoPublic::from_bytes(k),
                endpoints: vec![],
                hostinfo: None,
                ipv4: Some(std::net::Ipv4Addr::from(0x6440_0000 + i + 1)),
                ipv6: None,
                hostname: format!("node-{i}"),
                given_name: format!("node-{i}"),
                user_id: Some(u.id),
                register_method: RegisterMethod::AuthKey,
                tags: vec![],
                auth_key_id: None,
                expiry: None,
                last_seen: Some(now),
                approved_routes: vec![],
                created_at: now,
                updated_at: now,
            };
            c.create_node(&n)?;
        }
        Ok(())
    })
    .unwrap();
    let state = hs_testkit::control_state(&db).await;
    Admin::new(
        Arc::new(db),
        state,
        Arc::new(move || now),
        PolicyMode::Database,
    )
}

async fn get(router: axum::Router, uri: &str, bearer: Option<&str>) -> usize {
    let mut req = http::Request::get(uri);
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let resp = router
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap().to_bytes().len()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let admin = rt.block_on(setup(dir.path(), 1000));
    let open = hs_api::serve::app(admin.clone(), false);
    c.bench_function("rest_list_1000_nodes", |b| {
        b.iter(|| rt.block_on(get(open.clone(), "/api/v1/node", None)))
    });
    // Without an expiration the key would be born expired (Go zero time), as in Headscale.
    let expires = Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).single();
    let key = rt.block_on(admin.create_api_key(expires)).unwrap();
    let authed = hs_api::serve::http_router(admin);
    c.bench_function("rest_authenticated_list_users", |b| {
        b.iter(|| rt.block_on(get(authed.clone(), "/api/v1/user", Some(&key))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
