//! `/api/v2` over real HTTP on the whole server: OAuth clients made through `/api/v1`,
//! the client-credentials token endpoint, scopes, the policy's ETags and `If-Match`, DNS
//! edits, and the state file they are kept in.

use hs_testkit::TestServer;
use hs_testkit::oidc::{HttpResponse, http_request};
use serde_json::{Value, json};

async fn call(
    srv: &TestServer,
    method: &str,
    path: &str,
    auth: Option<&str>,
    extra: &[(&str, &str)],
    body: Option<&str>,
) -> HttpResponse {
    let bearer = auth.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(b) = &bearer {
        headers.push(("authorization", b));
    }
    http_request(method, &format!("{}{path}", srv.url), &headers, body)
        .await
        .unwrap()
}

async fn admin_key(srv: &TestServer) -> String {
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    srv.admin.create_api_key(Some(expires)).await.unwrap()
}

async fn make_client(
    srv: &TestServer,
    key: &str,
    scopes: &[&str],
    tags: &[&str],
) -> (String, String) {
    let body = json!({"scopes": scopes, "tags": tags, "description": "test"}).to_string();
    let r = call(
        srv,
        "POST",
        "/api/v1/oauth-client",
        Some(key),
        &[("content-type", "application/json")],
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 200, "creating a client: {}", r.body);
    let v = r.json().unwrap();
    (
        v["oauthClient"]["id"].as_str().unwrap().to_owned(),
        v["oauthClient"]["secret"].as_str().unwrap().to_owned(),
    )
}

async fn token_form(srv: &TestServer, form: &str, basic: Option<(&str, &str)>) -> HttpResponse {
    use base64::Engine as _;
    let auth = basic.map(|(i, s)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{i}:{s}"))
        )
    });
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    http_request(
        "POST",
        &format!("{}/api/v2/oauth/token", srv.url),
        &headers,
        Some(form),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_clients_tokens_and_scopes() {
    let srv = TestServer::start().await;
    let key = admin_key(&srv).await;
    // The v1 endpoints need the admin key.
    let r = call(&srv, "GET", "/api/v1/oauth-client", None, &[], None).await;
    assert_eq!(r.status, 401);
    let r = call(
        &srv,
        "POST",
        "/api/v1/oauth-client",
        Some(&key),
        &[],
        Some(r#"{"scopes":["auth_keys"]}"#),
    )
    .await;
    assert_eq!(
        r.status, 400,
        "a key-minting client without tags: {}",
        r.body
    );
    assert!(r.body.contains("needs tags"), "{}", r.body);

    let (id, secret) = make_client(&srv, &key, &["dns:read", "devices:core:read"], &[]).await;
    let state = std::fs::read_to_string(srv.dir.path().join("api_v2.json")).unwrap();
    assert!(
        state.contains(&id),
        "the client is kept in the state directory"
    );
    assert!(!state.contains(&secret), "the secret is stored hashed");
    let listed = call(&srv, "GET", "/api/v1/oauth-client", Some(&key), &[], None).await;
    assert!(
        listed.body.contains(&id) && !listed.body.contains("secret"),
        "{}",
        listed.body
    );

    // Credentials in the form, then by HTTP Basic with a narrower scope.
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let r = token_form(&srv, &form, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = r.json().unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    let token = t["access_token"].as_str().unwrap().to_owned();
    let r = token_form(
        &srv,
        "grant_type=client_credentials&scope=dns:read",
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let narrow = r.json().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let bad = token_form(
        &srv,
        "grant_type=client_credentials",
        Some((&id, "hskey-client-nope")),
    )
    .await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.json().unwrap()["error"], "invalid_client");
    let wider = token_form(
        &srv,
        "grant_type=client_credentials&scope=dns",
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(
        wider.status, 400,
        "a scope the client lacks: {}",
        wider.body
    );
    let grant = token_form(&srv, "grant_type=password", Some((&id, &secret))).await;
    assert_eq!(grant.json().unwrap()["error"], "unsupported_grant_type");

    let ns = "/api/v2/tailnet/-/dns/nameservers";
    assert_eq!(
        call(&srv, "GET", ns, Some(&token), &[], None).await.status,
        200
    );
    assert_eq!(
        call(
            &srv,
            "GET",
            "/api/v2/tailnet/-/devices",
            Some(&token),
            &[],
            None
        )
        .await
        .status,
        200
    );
    let r = call(
        &srv,
        "GET",
        "/api/v2/tailnet/-/devices",
        Some(&narrow),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 403, "the narrowed token lacks devices:core:read");
    assert!(
        r.json().unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("devices:core:read")
    );
    let r = call(
        &srv,
        "POST",
        ns,
        Some(&token),
        &[],
        Some(r#"{"dns":["9.9.9.9"]}"#),
    )
    .await;
    assert_eq!(r.status, 403, "dns:read cannot write");
    let r = call(
        &srv,
        "GET",
        "/api/v2/tailnet/-/acl",
        Some(&token),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(&srv, "GET", ns, None, &[], None).await;
    assert_eq!(r.status, 401);
    assert!(r.json().unwrap()["message"].as_str().is_some());
    let r = call(&srv, "GET", ns, Some("hskey-oauth-garbage"), &[], None).await;
    assert_eq!(r.status, 401);

    // Deleting the client ends its tokens at once.
    let r = call(
        &srv,
        "DELETE",
        &format!("/api/v1/oauth-client/{id}"),
        Some(&key),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        call(&srv, "GET", ns, Some(&token), &[], None).await.status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_etags_refuse_a_stale_write() {
    let srv = TestServer::start_with(|c| c.policy.mode = hs_config::PolicyMode::Database).await;
    let key = admin_key(&srv).await;
    let acl = "/api/v2/tailnet/-/acl";
    let r = call(&srv, "GET", acl, Some(&key), &[], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json().unwrap(), json!({}), "no policy stored yet");
    let e0 = r.header("etag").unwrap().to_owned();

    let text = "// allow alice's nodes\n{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"]},],}";
    let r = call(
        &srv,
        "POST",
        acl,
        Some(&key),
        &[("if-match", &e0), ("content-type", "application/hujson")],
        Some(text),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let e1 = r.header("etag").unwrap().to_owned();
    assert_ne!(e0, e1);
    let v: Value = r.json().unwrap();
    assert_eq!(
        v["acls"][0]["action"], "accept",
        "answered as standard JSON"
    );

    let r = call(
        &srv,
        "POST",
        acl,
        Some(&key),
        &[("if-match", &e0)],
        Some("{\"acls\": []}"),
    )
    .await;
    assert_eq!(
        r.status, 412,
        "a write over a version it did not read: {}",
        r.body
    );
    assert!(
        srv.admin.get_policy().await.unwrap().data.contains("alice"),
        "nothing changed"
    );

    let raw = call(
        &srv,
        "GET",
        acl,
        Some(&key),
        &[("accept", "application/hujson")],
        None,
    )
    .await;
    assert_eq!(raw.body, text, "HuJSON comes back as written");
    assert_eq!(raw.header("etag"), Some(e1.as_str()));

    let v = "/api/v2/tailnet/-/acl/validate";
    let ok = call(&srv, "POST", v, Some(&key), &[], Some("{\"acls\": []}")).await;
    assert_eq!((ok.status, ok.body.as_str()), (200, ""));
    let bad = call(
        &srv,
        "POST",
        v,
        Some(&key),
        &[],
        Some("{\"acls\": [{\"action\": \"maybe\"}]}"),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.json().unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("invalid policy"),
        "{}",
        bad.body
    );
    assert!(
        srv.admin.get_policy().await.unwrap().data.contains("alice"),
        "validate stores nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_edits_are_kept_and_validated() {
    let srv = TestServer::start().await;
    let key = admin_key(&srv).await;
    let ns = "/api/v2/tailnet/-/dns/nameservers";
    let r = call(
        &srv,
        "POST",
        ns,
        Some(&key),
        &[],
        Some(r#"{"dns":["9.9.9.9","https://dns.example/q"]}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json().unwrap()["dns"],
        json!(["9.9.9.9", "https://dns.example/q"])
    );
    assert_eq!(
        srv.state.dns_settings().unwrap().nameservers_global,
        ["9.9.9.9", "https://dns.example/q"]
    );
    let r = call(
        &srv,
        "POST",
        ns,
        Some(&key),
        &[],
        Some(r#"{"dns":["banana"]}"#),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("banana"), "{}", r.body);
    assert_eq!(
        srv.state.dns_settings().unwrap().nameservers_global[0],
        "9.9.9.9",
        "a refused edit changes nothing"
    );

    let split = "/api/v2/tailnet/-/dns/split-dns";
    let r = call(
        &srv,
        "PATCH",
        split,
        Some(&key),
        &[],
        Some(r#"{"corp.example":["10.1.0.53"],"lab.example":["10.2.0.53"]}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(
        &srv,
        "PATCH",
        split,
        Some(&key),
        &[],
        Some(r#"{"lab.example":null}"#),
    )
    .await;
    assert_eq!(r.json().unwrap(), json!({"corp.example": ["10.1.0.53"]}));
    let sp = "/api/v2/tailnet/-/dns/searchpaths";
    let r = call(
        &srv,
        "POST",
        sp,
        Some(&key),
        &[],
        Some(r#"{"searchPaths":["corp.example"]}"#),
    )
    .await;
    assert_eq!(r.json().unwrap(), json!({"searchPaths": ["corp.example"]}));
    let r = call(
        &srv,
        "POST",
        "/api/v2/tailnet/-/dns/preferences",
        Some(&key),
        &[],
        Some(r#"{"magicDNS":false}"#),
    )
    .await;
    assert_eq!(r.json().unwrap(), json!({"magicDNS": false}));

    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(srv.dir.path().join("api_v2.json")).unwrap())
            .unwrap();
    assert_eq!(
        state["dns"]["nameservers"],
        json!(["9.9.9.9", "https://dns.example/q"])
    );
    assert_eq!(
        state["dns"]["split"],
        json!({"corp.example": ["10.1.0.53"]})
    );
    assert_eq!(state["dns"]["magic_dns"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailnet_settings_come_from_the_config() {
    let srv = TestServer::start_with(|c| {
        c.node.expiry = std::time::Duration::from_secs(30 * 86_400);
    })
    .await;
    let key = admin_key(&srv).await;
    let path = "/api/v2/tailnet/-/settings";
    let r = call(&srv, "GET", path, Some(&key), &[], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json().unwrap();
    assert_eq!(v["devicesKeyDurationDays"], 30);
    assert_eq!(v["devicesApprovalOn"], false);

    let same = call(
        &srv,
        "PATCH",
        path,
        Some(&key),
        &[],
        Some(r#"{"devicesKeyDurationDays":30}"#),
    )
    .await;
    assert_eq!(
        same.status, 200,
        "asking for what is in force: {}",
        same.body
    );
    let change = call(
        &srv,
        "PATCH",
        path,
        Some(&key),
        &[],
        Some(r#"{"devicesKeyDurationDays":7}"#),
    )
    .await;
    assert_eq!(change.status, 400);
    assert!(
        change.body.contains("node.expiry"),
        "names the config key: {}",
        change.body
    );
    let unknown = call(
        &srv,
        "PATCH",
        path,
        Some(&key),
        &[],
        Some(r#"{"frobnicate":true}"#),
    )
    .await;
    assert_eq!(unknown.status, 400);

    let (id, secret) = make_client(&srv, &key, &["feature_settings:read"], &[]).await;
    let r = token_form(&srv, "grant_type=client_credentials", Some((&id, &secret))).await;
    let token = r.json().unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        call(&srv, "GET", path, Some(&token), &[], None)
            .await
            .status,
        200
    );
    let r = call(&srv, "PATCH", path, Some(&token), &[], Some("{}")).await;
    assert_eq!(r.status, 403, "a :read token cannot patch");
}
