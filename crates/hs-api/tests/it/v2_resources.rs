//! `/api/v2` devices, keys and users over a real database and control plane: Tailscale's
//! shapes, the scopes each endpoint needs, the tags an OAuth client may assign, and the
//! 400/401/403/404 answers.

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use hs_api::v2::{V2, router};
use hs_types::NodeId;

use super::support::{Fixture, later, node, now};

const POLICY: &str = r#"{
    "tagOwners": {
        "tag:ci": ["alice@"],
        "tag:build": ["tag:ci"],
        "tag:prod": ["alice@"]
    },
    "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]
}"#;

struct Api {
    f: Fixture,
    router: axum::Router,
    admin: String,
}

impl Api {
    /// A tailnet under `example.com` with user alice, the test policy and an admin API key.
    async fn new() -> Self {
        let f = Fixture::new().await;
        f.user("alice");
        f.state
            .reload_dns(&hs_config::DnsConfig {
                magic_dns: true,
                base_domain: "example.com".to_owned(),
                override_local_dns: false,
                nameservers_global: vec![],
                nameservers_split: Default::default(),
                search_domains: vec![],
                extra_records: vec![],
                extra_records_path: None,
            })
            .await
            .unwrap();
        f.state
            .set_policy_text("the test policy", Some(POLICY))
            .await
            .unwrap();
        let admin = f.admin.create_api_key(Some(later())).await.unwrap();
        let router = router(V2::new(f.admin.clone()));
        Self { f, router, admin }
    }

    fn alice(&self) -> hs_types::model::User {
        self.f
            .db
            .tx(|c| c.get_user(hs_types::UserId(1)))
            .unwrap()
            .unwrap()
    }

    /// An access token of a new OAuth client with `scopes` and `tags`.
    fn token(&self, scopes: &[&str], tags: &[&str]) -> String {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let store = self.f.admin.oauth();
        let (client, secret) = store
            .create_client(&own(scopes), &own(tags), "test", now())
            .unwrap();
        store
            .issue_token(&client.id, &secret, &[], now())
            .unwrap()
            .0
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let (status, _, json) =
            super::support::call(self.router.clone(), method, uri, body.as_deref(), token).await;
        (status, json)
    }

    /// As the admin API key.
    async fn admin(&self, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, uri, body, Some(&self.admin.clone()))
            .await
    }
}

fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn devices_list_get_and_delete() {
    let api = Api::new().await;
    let alice = api.alice();
    api.f.live_node(1, "laptop", &alice, &[]).await;
    api.f.live_node(2, "runner", &alice, &["tag:ci"]).await;

    let (status, body) = api.admin("GET", "/api/v2/tailnet/-/devices", None).await;
    assert_eq!(status, 200, "{body}");
    let devices = body["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    let laptop = &devices[0];
    assert_eq!(laptop["id"], "1");
    assert_eq!(laptop["nodeId"], "1");
    assert_eq!(laptop["name"], "laptop.example.com");
    assert_eq!(laptop["hostname"], "laptop");
    assert_eq!(laptop["user"], "alice");
    assert_eq!(laptop["authorized"], true);
    assert_eq!(laptop["keyExpiryDisabled"], true);
    assert_eq!(laptop["expires"], "0001-01-01T00:00:00Z");
    assert_eq!(laptop["created"], hs_api::json::rfc3339(now()));
    assert_eq!(laptop["lastSeen"], hs_api::json::rfc3339(now()));
    assert_eq!(laptop["connectedToControl"], false);
    assert_eq!(laptop["isEphemeral"], false);
    assert_eq!(laptop["updateAvailable"], false);
    assert!(laptop["machineKey"].as_str().unwrap().starts_with("mkey:"));
    assert!(laptop["nodeKey"].as_str().unwrap().starts_with("nodekey:"));
    assert!(
        laptop.get("advertisedRoutes").is_none(),
        "only with fields=all"
    );
    let runner = &devices[1];
    assert_eq!(runner["user"], "tagged-devices");
    assert_eq!(runner["tags"], json!(["tag:ci"]));

    let (status, body) = api
        .admin("GET", "/api/v2/tailnet/-/devices?fields=all", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["devices"][0]["advertisedRoutes"], json!([]));
    assert!(body["devices"][0]["clientConnectivity"].is_object());

    // Filters the Go client sends as query parameters.
    let (_, body) = api
        .admin("GET", "/api/v2/tailnet/-/devices?tags=tag:ci", None)
        .await;
    let ids: Vec<&Value> = body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["id"])
        .collect();
    assert_eq!(ids, [&json!("2")]);
    let (status, body) = api
        .admin("GET", "/api/v2/tailnet/-/devices?fields=some", None)
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("fields"), "{body}");

    let (status, body) = api.admin("GET", "/api/v2/device/2?fields=all", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "runner.example.com");
    assert_eq!(body["enabledRoutes"], json!([]));

    let (status, body) = api.admin("DELETE", "/api/v2/device/1", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(api.f.db.tx(|c| c.get_node(NodeId(1))).unwrap().is_none());
    assert!(api.f.state.store().load().node(NodeId(1)).is_none());
    let (status, body) = api.admin("GET", "/api/v2/device/1", None).await;
    assert_eq!(status, 404);
    assert_eq!(message(&body), "device 1 not found");
    let (status, body) = api.admin("DELETE", "/api/v2/device/1", None).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn malformed_and_unknown_ids() {
    let api = Api::new().await;
    for uri in [
        "/api/v2/device/abc",
        "/api/v2/device/nABC123CNTRL/routes",
        "/api/v2/tailnet/-/keys/kABC",
        "/api/v2/users/-1",
    ] {
        let (status, body) = api.admin("GET", uri, None).await;
        assert_eq!(status, 400, "{uri}: {body}");
        assert!(message(&body).contains("decimal"), "{uri}: {body}");
    }
    for (uri, msg) in [
        ("/api/v2/device/99", "device 99 not found"),
        ("/api/v2/device/99/routes", "device 99 not found"),
        ("/api/v2/tailnet/-/keys/99", "key 99 not found"),
        ("/api/v2/users/99", "user 99 not found"),
    ] {
        let (status, body) = api.admin("GET", uri, None).await;
        assert_eq!(status, 404, "{uri}: {body}");
        assert_eq!(message(&body), msg);
    }
    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/99/tags",
            Some(json!({"tags": ["tag:ci"]})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn credentials_and_scopes() {
    let api = Api::new().await;
    let alice = api.alice();
    api.f.live_node(1, "laptop", &alice, &[]).await;

    let (status, body) = api
        .call("GET", "/api/v2/tailnet/-/devices", None, None)
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(!message(&body).is_empty());
    let (status, _) = api
        .call(
            "GET",
            "/api/v2/tailnet/-/devices",
            None,
            Some("hskey-api-nope"),
        )
        .await;
    assert_eq!(status, 401);

    let dns_only = api.token(&["dns:read"], &[]);
    let (status, body) = api
        .call("GET", "/api/v2/tailnet/-/devices", None, Some(&dns_only))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("devices:core:read"), "{body}");

    let reader = api.token(&["devices:core:read"], &[]);
    let (status, body) = api
        .call("GET", "/api/v2/tailnet/-/devices", None, Some(&reader))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .call("DELETE", "/api/v2/device/1", None, Some(&reader))
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = api
        .call("GET", "/api/v2/device/1/routes", None, Some(&reader))
        .await;
    assert_eq!(status, 403, "routes need devices:routes:read");
    let (status, _) = api
        .call("GET", "/api/v2/tailnet/-/users", None, Some(&reader))
        .await;
    assert_eq!(status, 403, "users need users:read");
    let (status, _) = api
        .call("GET", "/api/v2/tailnet/-/keys", None, Some(&reader))
        .await;
    assert_eq!(status, 403, "keys need auth_keys:read");
}

#[tokio::test]
async fn device_tags_and_the_client_tag_limit() {
    let api = Api::new().await;
    let alice = api.alice();
    api.f.live_node(1, "laptop", &alice, &[]).await;

    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/1/tags",
            Some(json!({"tags": ["tag:prod"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = api.admin("GET", "/api/v2/device/1", None).await;
    assert_eq!(body["tags"], json!(["tag:prod"]));
    assert_eq!(body["user"], "tagged-devices");
    let live = api.f.state.store().load_full();
    assert_eq!(live.node(NodeId(1)).unwrap().node.tags, ["tag:prod"]);

    let ci = api.token(&["devices:core"], &["tag:ci"]);
    // Its own tag, and a tag its tag owns in the policy.
    let (status, body) = api
        .call(
            "POST",
            "/api/v2/device/1/tags",
            Some(json!({"tags": ["tag:ci", "tag:build"]})),
            Some(&ci),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .call(
            "POST",
            "/api/v2/device/1/tags",
            Some(json!({"tags": ["tag:ci", "tag:prod"]})),
            Some(&ci),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("tag:prod"), "{body}");
    let (_, body) = api.admin("GET", "/api/v2/device/1", None).await;
    assert_eq!(
        body["tags"],
        json!(["tag:ci", "tag:build"]),
        "refused change kept nothing"
    );

    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/1/tags",
            Some(json!({"tags": ["prod"]})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).starts_with("tags[0]"), "{body}");
    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/1/tags",
            Some(json!({"tags": "tag:ci"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).starts_with("tags:"), "{body}");
    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/1/tags",
            Some(json!({"tags": ["tag:nobody"]})),
        )
        .await;
    assert_eq!(status, 400, "undefined in tagOwners: {body}");
}

#[tokio::test]
async fn routes_set_and_get() {
    let api = Api::new().await;
    let alice = api.alice();
    let mut n = node(1, "router", Some(alice.id));
    n.hostinfo = Some(json!({
        "OS": "linux",
        "IPNVersion": "1.80.0",
        "RoutableIPs": ["10.0.0.0/24", "0.0.0.0/0", "::/0"],
    }));
    let n = api.f.db.tx(|c| c.create_node(&n)).unwrap();
    api.f.state.reload_node(n.id).await.unwrap();

    let (status, body) = api.admin("GET", "/api/v2/device/1/routes", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"advertisedRoutes": ["0.0.0.0/0", "10.0.0.0/24", "::/0"], "enabledRoutes": []})
    );

    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/1/routes",
            Some(json!({"routes": ["10.0.0.0/24"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enabledRoutes"], json!(["10.0.0.0/24"]));
    assert_eq!(
        api.f
            .db
            .tx(|c| c.get_node(n.id))
            .unwrap()
            .unwrap()
            .approved_routes
            .len(),
        1
    );

    let (_, body) = api.admin("GET", "/api/v2/device/1?fields=all", None).await;
    assert_eq!(body["enabledRoutes"], json!(["10.0.0.0/24"]));
    assert_eq!(body["os"], "linux");
    assert_eq!(body["clientVersion"], "1.80.0");

    let core = api.token(&["devices:core"], &["tag:ci"]);
    let (status, _) = api
        .call(
            "POST",
            "/api/v2/device/1/routes",
            Some(json!({"routes": []})),
            Some(&core),
        )
        .await;
    assert_eq!(status, 403, "devices:core does not cover routes");
    let routes = api.token(&["devices:routes"], &[]);
    let (status, body) = api
        .call(
            "POST",
            "/api/v2/device/1/routes",
            Some(json!({"routes": null})),
            Some(&routes),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enabledRoutes"], json!([]));

    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/1/routes",
            Some(json!({"routes": ["10.0.0.300/24"]})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("routes[0]"), "{body}");
}

#[tokio::test]
async fn name_key_expiry_and_authorized() {
    let api = Api::new().await;
    let alice = api.alice();
    api.f.live_node(1, "laptop", &alice, &[]).await;
    api.f.live_node(2, "desktop", &alice, &[]).await;

    for (name, label) in [
        ("web", "web"),
        ("web2.example.com", "web2"),
        ("web3.example.com.", "web3"),
    ] {
        let (status, body) = api
            .admin(
                "POST",
                "/api/v2/device/1/name",
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(status, 200, "{name}: {body}");
        let (_, body) = api.admin("GET", "/api/v2/device/1", None).await;
        assert_eq!(body["name"], format!("{label}.example.com"));
    }
    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/1/name",
            Some(json!({"name": "web.other.org"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("example.com"), "{body}");
    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/1/name",
            Some(json!({"name": "desktop"})),
        )
        .await;
    assert_eq!(status, 400, "taken: {body}");
    assert!(message(&body).contains("already used"), "{body}");
    let (status, body) = api
        .admin("POST", "/api/v2/device/1/name", Some(json!({})))
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).starts_with("name:"), "{body}");

    api.f
        .admin
        .expire_node(NodeId(1), Some(later()), false)
        .await
        .unwrap();
    let (_, body) = api.admin("GET", "/api/v2/device/1", None).await;
    assert_eq!(body["keyExpiryDisabled"], false);
    assert_eq!(body["expires"], hs_api::json::rfc3339(later()));
    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/1/key",
            Some(json!({"keyExpiryDisabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = api.admin("GET", "/api/v2/device/1", None).await;
    assert_eq!(body["keyExpiryDisabled"], true);
    assert_eq!(body["expires"], "0001-01-01T00:00:00Z");
    assert!(
        api.f
            .db
            .tx(|c| c.get_node(NodeId(1)))
            .unwrap()
            .unwrap()
            .expiry
            .is_none()
    );
    // Without node.expiry configured, re-enabling leaves the node without expiry.
    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/1/key",
            Some(json!({"keyExpiryDisabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/1/key",
            Some(json!({"keyExpiryDisabled": "no"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).starts_with("keyExpiryDisabled:"), "{body}");

    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/1/authorized",
            Some(json!({"authorized": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/1/authorized",
            Some(json!({"authorized": false})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("no device authorization"), "{body}");
    let (status, body) = api.admin("POST", "/api/v2/device/1/authorized", None).await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("missing request body"), "{body}");
    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/device/1/authorized",
            Some(json!({"authorized": null})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).starts_with("authorized: required"), "{body}");
}

fn key_request(tags: &[&str]) -> Value {
    json!({
        "capabilities": {"devices": {"create": {
            "reusable": true, "ephemeral": true, "preauthorized": true, "tags": tags,
        }}},
        "expirySeconds": 3600,
        "description": "ci runners",
    })
}

#[tokio::test]
async fn keys_create_list_get_delete() {
    let api = Api::new().await;

    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/tailnet/-/keys",
            Some(key_request(&["tag:prod"])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(
        body["key"].as_str().unwrap().starts_with("hskey-auth-"),
        "{body}"
    );
    assert_eq!(body["keyType"], "auth");
    assert_eq!(body["description"], "ci runners");
    assert_eq!(body["created"], hs_api::json::rfc3339(now()));
    assert_eq!(
        body["expires"],
        hs_api::json::rfc3339(now() + chrono::Duration::seconds(3600))
    );
    assert_eq!(body["invalid"], false);
    assert_eq!(
        body["capabilities"]["devices"]["create"],
        json!({"reusable": true, "ephemeral": true, "preauthorized": true, "tags": ["tag:prod"]})
    );
    let stored = api.f.admin.list_preauth_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].key.tags, ["tag:prod"]);
    assert!(stored[0].key.user_id.is_none());

    let (status, body) = api.admin("GET", "/api/v2/tailnet/-/keys", None).await;
    assert_eq!(status, 200, "{body}");
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], id.as_str());
    assert!(
        keys[0].get("key").is_none(),
        "no secret in a listing: {body}"
    );
    let (status, body) = api
        .admin("GET", &format!("/api/v2/tailnet/-/keys/{id}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("key").is_none());
    assert_eq!(
        body["capabilities"]["devices"]["create"]["tags"],
        json!(["tag:prod"])
    );

    let (status, body) = api
        .admin("DELETE", &format!("/api/v2/tailnet/-/keys/{id}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(api.f.admin.list_preauth_keys().await.unwrap().is_empty());
    let (status, body) = api
        .admin("GET", &format!("/api/v2/tailnet/-/keys/{id}"), None)
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = api
        .admin("DELETE", &format!("/api/v2/tailnet/-/keys/{id}"), None)
        .await;
    assert_eq!(status, 404);

    // Refusals.
    let (status, body) = api
        .admin("POST", "/api/v2/tailnet/-/keys", Some(key_request(&[])))
        .await;
    assert_eq!(status, 400);
    assert!(
        message(&body).contains("capabilities.devices.create.tags"),
        "{body}"
    );
    let mut client = key_request(&["tag:ci"]);
    client["keyType"] = json!("client");
    let (status, body) = api
        .admin("POST", "/api/v2/tailnet/-/keys", Some(client))
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("not supported"), "{body}");
    let (status, body) = api
        .admin("POST", "/api/v2/tailnet/-/keys", Some(key_request(&["ci"])))
        .await;
    assert_eq!(status, 400);
    assert!(
        message(&body).starts_with("capabilities.devices.create.tags[0]"),
        "{body}"
    );
    let mut negative = key_request(&["tag:ci"]);
    negative["expirySeconds"] = json!(-5);
    let (status, body) = api
        .admin("POST", "/api/v2/tailnet/-/keys", Some(negative))
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).starts_with("expirySeconds"), "{body}");
    let (status, body) = api
        .admin(
            "POST",
            "/api/v2/tailnet/-/keys",
            Some(json!({"capabilities": {"devices": {"create": {"reusable": "yes"}}}})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        message(&body).starts_with("capabilities.devices.create.reusable"),
        "{body}"
    );
    assert!(api.f.admin.list_preauth_keys().await.unwrap().is_empty());
}

#[tokio::test]
async fn oauth_client_keys_carry_only_its_tags() {
    let api = Api::new().await;
    let store = api.f.admin.oauth();
    let (client, secret) = store
        .create_client(
            &["auth_keys".to_owned()],
            &["tag:ci".to_owned()],
            "ci",
            now(),
        )
        .unwrap();
    // The token as a client library gets it.
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={secret}",
        client.id
    );
    let req = http::Request::builder()
        .method("POST")
        .uri("/api/v2/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let resp = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();

    let (status, body) = api
        .call(
            "POST",
            "/api/v2/tailnet/-/keys",
            Some(key_request(&["tag:ci"])),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .call(
            "POST",
            "/api/v2/tailnet/-/keys",
            Some(key_request(&["tag:build"])),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "tag:build is owned by tag:ci: {body}");
    let (status, body) = api
        .call(
            "POST",
            "/api/v2/tailnet/-/keys",
            Some(key_request(&["tag:ci", "tag:prod"])),
            Some(&token),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("tag:prod"), "{body}");
    let (status, body) = api
        .call(
            "POST",
            "/api/v2/tailnet/-/keys",
            Some(key_request(&[])),
            Some(&token),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(api.f.admin.list_preauth_keys().await.unwrap().len(), 2);

    let (status, body) = api
        .call("GET", "/api/v2/tailnet/-/keys", None, Some(&token))
        .await;
    assert_eq!(status, 200, "auth_keys covers auth_keys:read: {body}");
    assert_eq!(body["keys"].as_array().unwrap().len(), 2);

    let reader = api.token(&["auth_keys:read"], &[]);
    let (status, body) = api
        .call(
            "POST",
            "/api/v2/tailnet/-/keys",
            Some(key_request(&["tag:ci"])),
            Some(&reader),
        )
        .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn users_list_and_get() {
    let api = Api::new().await;
    let alice = api.alice();
    let bob = api.f.user("bob");
    api.f.live_node(1, "laptop", &alice, &[]).await;
    api.f.live_node(2, "phone", &alice, &[]).await;
    api.f.live_node(3, "runner", &alice, &["tag:ci"]).await;

    let token = api.token(&["users:read"], &[]);
    let (status, body) = api
        .call("GET", "/api/v2/tailnet/-/users", None, Some(&token))
        .await;
    assert_eq!(status, 200, "{body}");
    let users = body["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["id"], "1");
    assert_eq!(users[0]["loginName"], "alice");
    assert_eq!(users[0]["displayName"], "alice");
    assert_eq!(users[0]["type"], "member");
    assert_eq!(users[0]["role"], "member");
    assert_eq!(users[0]["status"], "active");
    assert_eq!(users[0]["deviceCount"], 2, "tagged nodes are nobody's");
    assert_eq!(users[0]["currentlyConnected"], false);
    assert_eq!(users[0]["lastSeen"], hs_api::json::rfc3339(now()));
    assert_eq!(users[0]["created"], hs_api::json::rfc3339(now()));
    assert_eq!(users[1]["loginName"], "bob");
    assert_eq!(users[1]["deviceCount"], 0);
    assert_eq!(users[1]["lastSeen"], "0001-01-01T00:00:00Z");

    let (_, body) = api
        .call(
            "GET",
            "/api/v2/tailnet/-/users?role=owner",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(body, json!({"users": []}));
    let (status, _) = api
        .call(
            "GET",
            "/api/v2/tailnet/-/users?role=boss",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(status, 400);

    let (status, body) = api
        .call(
            "GET",
            &format!("/api/v2/users/{}", bob.id.get()),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["loginName"], "bob");
}

#[tokio::test]
async fn re_enabling_key_expiry_gives_the_configured_node_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let db = hs_db::Db::open(&hs_db::DbConfig::Sqlite(hs_db::SqliteConfig::new(
        dir.path().join("db.sqlite"),
    )))
    .unwrap();
    let mut cfg = hs_testkit::test_config();
    cfg.node_expiry = Some(std::time::Duration::from_secs(86_400));
    let state = hs_testkit::control_state_with(&db, cfg, (None, None)).await;
    let admin = hs_api::Admin::new(
        std::sync::Arc::new(db.clone()),
        state.clone(),
        std::sync::Arc::new(now),
        hs_api::PolicyMode::Database,
    );
    let key = admin.create_api_key(Some(later())).await.unwrap();
    let router = router(V2::new(admin));
    let alice = db
        .tx(|c| c.create_user(&hs_testkit::new_user("alice"), now()))
        .unwrap();
    let laptop = db
        .tx(|c| c.create_node(&node(1, "laptop", Some(alice.id))))
        .unwrap();
    let mut tagged = node(2, "runner", None);
    tagged.tags = vec!["tag:ci".to_owned()];
    let tagged = db.tx(|c| c.create_node(&tagged)).unwrap();
    for id in [laptop.id, tagged.id] {
        state.reload_node(id).await.unwrap();
    }

    for id in [laptop.id, tagged.id] {
        let uri = format!("/api/v2/device/{id}/key");
        let body = json!({"keyExpiryDisabled": false}).to_string();
        let (status, _, body) =
            super::support::call(router.clone(), "POST", &uri, Some(&body), Some(&key)).await;
        assert_eq!(status, 200, "{body}");
    }
    let expiry = |id| db.tx(|c| c.get_node(id)).unwrap().unwrap().expiry;
    assert_eq!(expiry(laptop.id), Some(now() + chrono::Duration::days(1)));
    assert_eq!(expiry(tagged.id), None, "tagged nodes have no key expiry");
}
