//! Map requests spelled as Tailscale's Rust client spells them (`HostInfo`, `RoutableIps`,
//! `Os`, `PreferredDerp`) are read as Go Headscale reads them: case-insensitively.

use serde_json::json;

use crate::harness::{Harness, post_map};
use crate::routes::{AUTO, Peers, SUBNET, join};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_spelled_map_request_announces_its_routes() {
    let h = Harness::start().await;
    h.st.set_policy_text("test policy", Some(AUTO))
        .await
        .unwrap();
    let (viewer, _) = join(&h, "viewer").await;
    let (router, rid) = join(&h, "rs-router").await;
    let mut v = Peers::open(&viewer, &h, "viewer", &[]).await;
    let _stream = post_map(
        &router,
        &h,
        json!({"KeepAlive": true, "Stream": true, "HostInfo": {
            "Hostname": "rs-router", "Os": "linux", "IpnVersion": "0.6.1",
            "RoutableIps": [SUBNET], "NetInfo": {"PreferredDerp": 1}}}),
    )
    .await;
    v.until("the Rust router's subnet reaches the viewer", |v| {
        v.primary(rid, SUBNET)
    })
    .await;
    let peer = &v.peers[&rid.get()];
    assert_eq!(peer["Hostinfo"]["OS"], "linux", "{peer}");
    assert_eq!(peer["Hostinfo"]["IPNVersion"], "0.6.1", "{peer}");
    assert_eq!(peer["Hostinfo"]["RoutableIPs"], json!([SUBNET]), "{peer}");
    assert!(peer["Hostinfo"].get("Os").is_none(), "{peer}");
    assert_eq!(peer["HomeDERP"], 1, "{peer}");
}
