//! A scrape of the metrics listener after real clients registered and polled: Headscale's
//! `headscale_nodestore_*` set and what a dashboard needs (connected nodes, registrations by
//! method and outcome, map bytes sent), and the `/debug` endpoints beside them.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{Client, Harness, next_update};

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// The value of the sample whose name-and-labels is exactly `series`.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_reports_nodestore_connections_registrations_and_bytes() {
    let h = Harness::start().await;
    let key = h.key(true, false);
    let a = Client::registered(&h, "alpha", &key).await;
    let _b = Client::registered(&h, "bravo", &key).await;
    let stranger = Client::connect(&h, "stranger").await;
    assert!(stranger.register(&h, "not-a-key").await.is_err());
    let mut sa = a.stream(&h).await;
    next_update(&mut sa).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hs_control::serve_metrics_on(
        listener,
        std::sync::Arc::clone(h.st.metrics()),
        hs_control::debug::routes(h.st.clone(), &debug_config()),
        async move {
            let _ = stopped.await;
        },
    ));
    let text = scrape(addr).await;

    let ok = r#"headscale_registrations_total{method="authkey",status="ok"}"#;
    let refused = r#"headscale_registrations_total{method="authkey",status="refused"}"#;
    assert_eq!(value(&text, ok), 2.0);
    assert_eq!(value(&text, refused), 1.0);
    assert_eq!(value(&text, "headscale_connected_nodes"), 1.0);
    assert_eq!(value(&text, "headscale_nodestore_nodes"), 2.0);
    assert_eq!(value(&text, "headscale_nodestore_queue_depth"), 0.0);
    let puts = r#"headscale_nodestore_operations_total{operation="put"}"#;
    assert!(value(&text, puts) >= 2.0, "two registrations put two nodes");
    let put_count = r#"headscale_nodestore_operation_duration_seconds_count{operation="put"}"#;
    assert_eq!(value(&text, put_count), value(&text, puts));
    assert!(value(&text, "headscale_nodestore_batch_size_count") >= 2.0);
    assert!(value(&text, "headscale_nodestore_batch_duration_seconds_count") >= 2.0);
    assert!(
        value(
            &text,
            "headscale_nodestore_snapshot_build_duration_seconds_count"
        ) >= 2.0
    );
    assert!(
        value(
            &text,
            "headscale_nodestore_peers_calculation_duration_seconds_count"
        ) >= 2.0
    );
    assert!(value(&text, "headscale_mapresponse_bytes_sent_total") > 0.0);
    assert!(text.contains("# TYPE headscale_nodestore_batch_size histogram\n"));
    // Go's process metrics, under its names.
    assert!(value(&text, "process_open_fds") > 0.0);
    assert!(value(&text, "process_resident_memory_bytes") > 0.0);
    assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));

    // Every metric the example dashboard (docs/dashboards/headscale.json) queries is exported.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    );
    let dashboard =
        std::fs::read_to_string(manifest.join("../../docs/dashboards/headscale.json")).unwrap();
    let mut queried = std::collections::BTreeSet::new();
    for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("headscale_") || word.starts_with("process_") {
            queried.insert(word.trim_end_matches("_bucket").to_owned());
        }
    }
    assert!(
        queried.len() >= 10,
        "too few metrics found in the dashboard: {queried:?}"
    );
    for name in &queried {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "the dashboard queries {name}, which the scrape lacks"
        );
    }

    // The debug endpoints on the same listener, asked from loopback.
    let overview = get(addr, "/debug/overview", "").await;
    assert!(
        overview.contains("nodes: 2 (1 online, 0 tagged)"),
        "{overview}"
    );
    let o: serde_json::Value =
        serde_json::from_str(&get(addr, "/debug/overview", "application/json").await).unwrap();
    assert_eq!(o["nodes"]["total"], 2, "{o}");
    assert_eq!(o["policy"], "none (every node may reach every node)");
    let nodes: serde_json::Value =
        serde_json::from_str(&get(addr, "/debug/nodestore", "").await).unwrap();
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["given_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "bravo"]);
    assert_eq!(nodes[0]["online"], true);
    let filters: serde_json::Value =
        serde_json::from_str(&get(addr, "/debug/filter", "").await).unwrap();
    assert_eq!(
        filters.as_object().unwrap().len(),
        2,
        "one filter per node: {filters}"
    );
    for path in ["/debug/ssh", "/debug/registration-cache"] {
        let v: serde_json::Value = serde_json::from_str(&get(addr, path, "").await).unwrap();
        assert!(v.is_object(), "{path}: {v}");
    }
    // Go's DebugRoutes: no route anywhere, so empty maps and no `unhealthy_nodes`; the text
    // form (no JSON asked for) has no line.
    let routes: serde_json::Value =
        serde_json::from_str(&get(addr, "/debug/routes", "application/json").await).unwrap();
    assert_eq!(
        routes,
        serde_json::json!({"available_routes": {}, "primary_routes": {}}),
        "{routes}"
    );
    assert_eq!(get(addr, "/debug/routes", "").await, "");
    assert!(get(addr, "/debug/", "").await.contains("/debug/nodestore"));
    // The map a node would get now, the open streams, and what the policy gives each node.
    let (alpha, bravo) = (
        nodes[0]["id"].as_u64().unwrap(),
        nodes[1]["id"].as_u64().unwrap(),
    );
    let list: serde_json::Value =
        serde_json::from_str(&get(addr, "/debug/mapresponses", "").await).unwrap();
    assert_eq!(list["nodes"].as_array().unwrap().len(), 2, "{list}");
    let map: serde_json::Value =
        serde_json::from_str(&get(addr, &format!("/debug/mapresponses?node={alpha}"), "").await)
            .unwrap();
    assert_eq!(map["Node"]["ID"], alpha, "{map}");
    let peers: Vec<u64> = map["Peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ID"].as_u64().unwrap())
        .collect();
    assert_eq!(peers, [bravo]);
    assert!(
        status(addr, "/debug/mapresponses?node=banana")
            .await
            .starts_with("HTTP/1.1 400")
    );
    assert!(
        status(addr, "/debug/mapresponses?node=999999")
            .await
            .starts_with("HTTP/1.1 404")
    );
    let batcher: serde_json::Value =
        serde_json::from_str(&get(addr, "/debug/batcher", "").await).unwrap();
    assert_eq!(batcher["total_nodes"], 2, "{batcher}");
    assert_eq!(batcher["connected_nodes"], 1, "{batcher}");
    assert_eq!(batcher["streams"][0]["node"], alpha, "{batcher}");
    let pm: serde_json::Value =
        serde_json::from_str(&get(addr, "/debug/policy-manager", "").await).unwrap();
    assert_eq!(pm["nodes"][alpha.to_string()]["peers"], 1, "{pm}");
    assert_eq!(pm["nodes"][bravo.to_string()]["peers"], 1, "{pm}");
    let derp: serde_json::Value =
        serde_json::from_str(&get(addr, "/debug/derp", "").await).unwrap();
    assert!(derp["Regions"].is_object(), "{derp}");
    let policy = get(addr, "/debug/policy", "").await;
    assert!(policy.starts_with("no policy in force"), "{policy}");
    let config = get(addr, "/debug/config", "").await;
    assert!(config.contains("https://hs.example.com"), "{config}");
    assert!(!config.contains("TOPSECRET"), "a secret is shown: {config}");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// One GET; the whole response (status line first).
async fn status(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// One GET with an `Accept` header; the body of a 200.
async fn get(addr: std::net::SocketAddr, path: &str, accept: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{path}: {out}");
    out.split_once("\r\n\r\n").unwrap().1.to_owned()
}

/// Debug endpoints answer only loopback, private and tailnet addresses: the same router
/// asked "from" a public address (the peer address is what the listener reports) is 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_endpoints_refuse_public_addresses() {
    use tower::ServiceExt as _;
    let h = Harness::start().await;
    for (peer, want) in [
        ("203.0.113.7:5555", 403),
        ("10.0.0.5:5555", 200),
        ("[::1]:5555", 200),
    ] {
        let peer: std::net::SocketAddr = peer.parse().unwrap();
        let router = hs_control::debug::routes(h.st.clone(), &debug_config())
            .layer(axum::extract::connect_info::MockConnectInfo(peer));
        let resp = router
            .oneshot(
                http::Request::get("/debug/nodestore")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want, "{peer}");
    }
    // A public peer that claims a loopback or private origin in forwarding headers is still
    // refused: only the TCP peer counts.
    let public: std::net::SocketAddr = "203.0.113.7:5555".parse().unwrap();
    for (name, value) in [
        ("x-forwarded-for", "127.0.0.1"),
        ("x-real-ip", "10.0.0.5"),
        ("forwarded", "for=127.0.0.1"),
    ] {
        let router = hs_control::debug::routes(h.st.clone(), &debug_config())
            .layer(axum::extract::connect_info::MockConnectInfo(public));
        let resp = router
            .oneshot(
                http::Request::get("/debug/nodestore")
                    .header(name, value)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{name}: {value}");
    }
}

/// A configuration with secrets in it, for `/debug/config`.
pub(crate) fn debug_config() -> hs_config::Config {
    let yaml = "server_url: https://hs.example.com
listen_addr: 127.0.0.1:8080
noise:
  private_key_path: /tmp/noise.key
prefixes:
  v4: 100.64.0.0/10
database:
  type: postgres
  postgres:
    host: localhost
    name: hs
    user: hs
    pass: TOPSECRET-db
oidc:
  issuer: https://idp.example.com
  client_id: hs
  client_secret: TOPSECRET-oidc
cli:
  api_key: hskey-api-TOPSECRET
dns:
  magic_dns: false
  override_local_dns: false
";
    hs_config::Config::from_yaml_str(yaml, &|_| None).unwrap().0
}
