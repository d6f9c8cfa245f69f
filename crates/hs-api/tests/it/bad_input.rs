//! Bad input gets a 4xx with grpc-gateway's error JSON (`code`, `message`, `details`, as Go
//! Headscale 0.29.3 answers) naming what is wrong, never a 500.

use super::support::{Fixture, call};

async fn expect(
    f: &Fixture,
    method: &str,
    uri: &str,
    body: Option<&str>,
    status: u16,
    needle: &str,
) {
    let (got, ct, json) = f.call(method, uri, body).await;
    assert_eq!(got, status, "{method} {uri}: {json}");
    assert_eq!(ct, "application/json", "{method} {uri}");
    let code = json["code"].as_i64().unwrap_or_default();
    let want = match status {
        400 => 3,
        404 => 5,
        405 => 12,
        409 => 6,
        _ => 13,
    };
    assert_eq!(code, want, "{method} {uri}: {json}");
    assert_eq!(json["details"], serde_json::json!([]), "{method} {uri}");
    let message = json["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{method} {uri}: message {message:?} lacks {needle:?}"
    );
}

#[tokio::test]
async fn malformed_cidr_in_approve_routes_names_the_route() {
    let f = Fixture::new().await;
    let u = f.user("alice");
    f.node_with_key(1, "node-a", &u, &[]);
    expect(
        &f,
        "POST",
        "/api/v1/node/1/approve_routes",
        Some(r#"{"routes":["10.0.0.0/24","10.0.0.300/24"]}"#),
        400,
        "routes[1]",
    )
    .await;
}

#[tokio::test]
async fn approve_routes_stores_prefixes_and_expands_exit_routes() {
    let f = Fixture::new().await;
    let u = f.user("alice");
    f.node_with_key(1, "node-a", &u, &[]);
    let (status, _, body) = f
        .call(
            "POST",
            "/api/v1/node/1/approve_routes",
            Some(r#"{"routes":["10.0.0.1/24","0.0.0.0/0"]}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["node"]["approvedRoutes"],
        serde_json::json!(["0.0.0.0/0", "10.0.0.0/24", "::/0"])
    );
    // The control plane holds what the database holds.
    let live = f.state.store().load_full();
    let n = live.node(hs_types::NodeId(1)).expect("the node is live");
    assert_eq!(n.node.approved_routes.len(), 3);
}

#[tokio::test]
async fn unknown_user_is_404_with_its_name() {
    let f = Fixture::new().await;
    expect(&f, "GET", "/api/v1/node?user=ghost", None, 404, "ghost").await;
}

#[tokio::test]
async fn duplicate_user_name_is_409_and_rename_onto_existing_too() {
    let f = Fixture::new().await;
    f.user("alice");
    f.user("bob");
    expect(
        &f,
        "POST",
        "/api/v1/user",
        Some(r#"{"name":"alice"}"#),
        409,
        "alice",
    )
    .await;
    expect(
        &f,
        "POST",
        "/api/v1/user/2/rename/alice",
        None,
        409,
        "alice",
    )
    .await;
}

#[tokio::test]
async fn duplicate_node_name_is_400() {
    let f = Fixture::new().await;
    let u = f.user("alice");
    f.node_with_key(1, "node-a", &u, &[]);
    f.node_with_key(10, "node-b", &u, &[]);
    expect(
        &f,
        "POST",
        "/api/v1/node/2/rename/node-a",
        None,
        400,
        "node-a",
    )
    .await;
    expect(
        &f,
        "POST",
        "/api/v1/node/2/rename/Bad_Name",
        None,
        400,
        "Bad_Name",
    )
    .await;
    let (status, _, body) = f.call("POST", "/api/v1/node/2/rename/node-c", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["node"]["givenName"], "node-c");
}

#[tokio::test]
async fn bad_policy_is_400_naming_the_problem_and_not_stored() {
    let f = Fixture::new().await;
    let unknown_host = serde_json::json!({
        "policy": r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["nohost:22"]}]}"#
    })
    .to_string();
    expect(
        &f,
        "PUT",
        "/api/v1/policy",
        Some(&unknown_host),
        400,
        "nohost",
    )
    .await;
    let truncated = serde_json::json!({"policy": r#"{"acls": ["#}).to_string();
    expect(
        &f,
        "PUT",
        "/api/v1/policy",
        Some(&truncated),
        400,
        "invalid policy",
    )
    .await;
    assert!(f.db.tx(|c| c.get_policy()).unwrap().is_none());
    assert!(
        f.state.policy().await.unwrap().is_none(),
        "nothing put in force"
    );
}

#[tokio::test]
async fn policy_set_refused_in_file_mode_and_notifies_in_database_mode() {
    let f = Fixture::with(hs_api::PolicyMode::File).await;
    expect(
        &f,
        "PUT",
        "/api/v1/policy",
        Some(r#"{"policy":"{}"}"#),
        400,
        "database",
    )
    .await;
    let f = Fixture::new().await;
    let (status, _, _) = f
        .call("PUT", "/api/v1/policy", Some(r#"{"policy":"{}"}"#))
        .await;
    assert_eq!(status, 200);
    assert!(
        f.state.policy().await.unwrap().is_some(),
        "the stored policy is in force"
    );
}

#[tokio::test]
async fn malformed_json_body_is_400_not_500() {
    let f = Fixture::new().await;
    expect(
        &f,
        "POST",
        "/api/v1/user",
        Some("{\"name\":"),
        400,
        "request body",
    )
    .await;
    expect(
        &f,
        "POST",
        "/api/v1/user",
        Some(r#"{"name":""}"#),
        400,
        "at least 2 characters",
    )
    .await;
}

#[tokio::test]
async fn deleting_a_user_who_owns_nodes_is_refused_with_go_headscales_message() {
    let f = Fixture::new().await;
    let u = f.user("alice");
    f.live_node(1, "node-a", &u, &[]).await;
    expect(
        &f,
        "DELETE",
        "/api/v1/user/1",
        None,
        409,
        "user not empty: node(s) found",
    )
    .await;
    // Nothing was deleted, in the database or in the control plane.
    assert!(f.db.tx(|c| c.get_user(u.id)).unwrap().is_some());
    assert_eq!(f.db.tx(|c| c.list_nodes()).unwrap().len(), 1);
    assert_eq!(f.state.store().load().len(), 1, "the node is still live");
}

#[tokio::test]
async fn set_tags_makes_node_tagged_and_notifies() {
    let f = Fixture::new().await;
    let u = f.user("alice");
    f.state
        .set_policy_text(
            "the test policy",
            Some(r#"{"tagOwners": {"tag:server": ["alice@"]}}"#),
        )
        .await
        .unwrap();
    f.node_with_key(1, "node-a", &u, &[]);
    let (status, _, body) = f
        .call(
            "POST",
            "/api/v1/node/1/tags",
            Some(r#"{"tags":["tag:server"]}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["node"]["tags"], serde_json::json!(["tag:server"]));
    assert!(body["node"]["user"].is_null());
    let live = f.state.store().load_full();
    assert_eq!(
        live.node(hs_types::NodeId(1)).unwrap().node.tags,
        vec!["tag:server".to_owned()]
    );

    // Listed, a tagged node is owned by Headscale's tagged-devices pseudo user.
    let (status, _, list) = f.call("GET", "/api/v1/node", None).await;
    assert_eq!(status, 200, "{list}");
    let owner = &list["nodes"][0]["user"];
    assert_eq!(owner["id"], "2147455555", "{list}");
    assert_eq!(owner["name"], "tagged-devices", "{list}");
    assert_eq!(owner["displayName"], "Tagged Devices", "{list}");
    assert_eq!(owner["createdAt"], "0001-01-01T00:00:00Z", "{list}");
    assert_eq!(owner["email"], "", "{list}");

    // Removing every tag is refused in Headscale's words, and nothing changes.
    expect(
        &f,
        "POST",
        "/api/v1/node/1/tags",
        Some(r#"{"tags":[]}"#),
        400,
        "cannot remove all tags from a node - tagged nodes must have at least one tag",
    )
    .await;
    let (_, _, after) = f.call("GET", "/api/v1/node/1", None).await;
    assert_eq!(after["node"]["tags"], serde_json::json!(["tag:server"]));
}

#[tokio::test]
async fn only_tagged_nodes_are_listed_as_tagged_devices() {
    let f = Fixture::new().await;
    let u = f.user("alice");
    f.node_with_key(1, "owned", &u, &[]);
    f.node_with_key(2, "tagged", &u, &["tag:server"]);
    let (status, _, list) = f.call("GET", "/api/v1/node", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["nodes"][0]["user"]["name"], "alice", "{list}");
    assert_eq!(list["nodes"][1]["user"]["name"], "tagged-devices", "{list}");
    // A single node shows its stored owner, none for a tagged node, as Headscale's GetNode
    // does (golden `TestAPIV1NodeGet_tagged_node`).
    let (_, _, one) = f.call("GET", "/api/v1/node/2", None).await;
    assert!(one["node"]["user"].is_null(), "{one}");
}

#[tokio::test]
async fn unknown_path_is_grpc_gateway_404() {
    let f = Fixture::new().await;
    let (status, ct, body) = call(
        hs_api::serve::app(f.admin.clone(), false),
        "GET",
        "/api/v1/nope",
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(ct, "application/json");
    // Byte for byte what Go 0.29.3 answers.
    assert_eq!(
        body,
        serde_json::json!({"code": 5, "message": "Not Found", "details": []})
    );
    expect(&f, "PATCH", "/api/v1/user", None, 405, "PATCH").await;
}

#[tokio::test]
async fn node_shows_advertised_and_serving_routes() {
    let f = Fixture::new().await;
    let u = f.user("alice");
    let mut n = super::support::node(1, "router", Some(u.id));
    // Built from JSON so the test does not depend on which Rust type carries Hostinfo.
    n.hostinfo = Some(
        serde_json::from_value(serde_json::json!({
            "Hostname": "router",
            "RoutableIPs": ["10.0.0.0/24", "192.168.0.0/24"]
        }))
        .unwrap(),
    );
    n.approved_routes = vec![
        "10.0.0.0/24".parse().unwrap(),
        "172.16.0.0/12".parse().unwrap(),
    ];
    let n = f.db.tx(|c| c.create_node(&n)).unwrap();
    // What a node announces is the control plane's (its Hostinfo as the node last sent it).
    f.state.reload_node(n.id).await.unwrap();
    let (status, _, body) = f.call("GET", "/api/v1/node/1", None).await;
    assert_eq!(status, 200, "{body}");
    let node = &body["node"];
    assert_eq!(
        node["availableRoutes"],
        serde_json::json!(["10.0.0.0/24", "192.168.0.0/24"])
    );
    assert_eq!(
        node["approvedRoutes"],
        serde_json::json!(["10.0.0.0/24", "172.16.0.0/12"])
    );
    assert_eq!(node["subnetRoutes"], serde_json::json!(["10.0.0.0/24"]));
}

#[tokio::test]
async fn file_mode_get_reads_the_policy_file() {
    let mut f = Fixture::with(hs_api::PolicyMode::File).await;
    let (status, ct, _) = f.call("GET", "/api/v1/policy", None).await;
    assert_eq!((status, ct.as_str()), (500, "application/json"));
    let path = f._dir.path().join("policy.hujson");
    std::fs::write(&path, "{ // from the file\n}").unwrap();
    f.admin = f.admin.clone().with_policy_file(&path);
    let (status, _, body) = f.call("GET", "/api/v1/policy", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["policy"], "{ // from the file\n}");
    assert!(body["updatedAt"].as_str().is_some_and(|t| t.ends_with('Z')));
}

/// Bodies are read as grpc-gateway reads them (protojson): a null field is a field left
/// unset, so `{"tags": null}` is no tags and `{"expiration": null}` no expiry; a null inside
/// a list is still refused.
#[tokio::test]
async fn null_fields_are_unset_fields() {
    let f = Fixture::new().await;
    let u = f.user("alice");
    f.node_with_key(1, "node-a", &u, &[]);
    let (status, _, body) = f
        .call(
            "POST",
            "/api/v1/preauthkey",
            Some(&format!(
                r#"{{"user":"{}","reusable":null,"expiration":null,"aclTags":null}}"#,
                u.id.get()
            )),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["preAuthKey"]["reusable"], false, "{body}");
    expect(
        &f,
        "POST",
        "/api/v1/node/1/tags",
        Some(r#"{"tags":[null]}"#),
        400,
        "invalid request body",
    )
    .await;
}

/// A body that is JSON but not an object (serde would read a struct from an array) is
/// refused, as protojson refuses it.
#[tokio::test]
async fn a_body_that_is_not_an_object_is_refused() {
    let f = Fixture::new().await;
    for body in ["[]", "[\"2030-01-01T00:00:00Z\"]", "42", "\"x\""] {
        expect(
            &f,
            "POST",
            "/api/v1/apikey",
            Some(body),
            400,
            "expected a JSON object",
        )
        .await;
    }
}
