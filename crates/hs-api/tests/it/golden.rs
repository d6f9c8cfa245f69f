//! Every case in `shared/headscale-compat/apiv1-golden/`: the same state is built in a real
//! SQLite database, the same request goes through the router, and status and body must
//! match Go Headscale's (timestamps and keys normalised as the goldens are). Error goldens
//! carry no body; ours must then be grpc-gateway's error JSON, as Go Headscale 0.29.3 answers.

use serde_json::Value;

use super::support::{AUTH_ID, Fixture, now};

/// This crate's directory, read when the test runs: `cargo test` sets it, and the
/// compile-time value may name another checkout that built this binary into the shared
/// target directory.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        std::path::PathBuf::from,
    )
}

fn golden_dir() -> std::path::PathBuf {
    manifest_dir().join("../../../shared/headscale-compat/apiv1-golden")
}

const POLICY: &str = r#"{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}"#;

fn normalise(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                let time = matches!(
                    k.as_str(),
                    "createdAt" | "lastSeen" | "expiration" | "expiry" | "updatedAt"
                );
                let secret = matches!(
                    k.as_str(),
                    "machineKey" | "nodeKey" | "discoKey" | "key" | "prefix"
                );
                if val.is_string() && time {
                    *val = Value::String("<timestamp>".into());
                } else if val.is_string() && secret {
                    *val = Value::String("<secret>".into());
                } else {
                    normalise(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

async fn check(name: &str, f: &Fixture, method: &str, uri: &str, body: Option<&str>) {
    let path = golden_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let golden: Value = serde_json::from_str(&text).unwrap();
    let want_status = golden["status"].as_u64().unwrap();
    let (status, ct, mut got) = f.call(method, uri, body).await;
    assert_eq!(
        u64::from(status),
        want_status,
        "{name}: {method} {uri} answered {status}: {got}"
    );
    if golden["body"].is_null() {
        // The goldens (Go's main branch) carry no error body; ours is what Go 0.29.3's
        // grpc-gateway answers: the gRPC code, a message, no details.
        assert_eq!(ct, "application/json", "{name}: {got}");
        assert!(got["code"].as_i64().is_some_and(|c| c > 0), "{name}: {got}");
        assert_eq!(got["details"], serde_json::json!([]), "{name}: {got}");
        assert!(
            got["message"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}: error without message: {got}"
        );
    } else {
        normalise(&mut got);
        assert_eq!(got, golden["body"], "{name}: body differs");
    }
}

/// One golden case, run on SQLite and on PostgreSQL.
macro_rules! golden {
    ($test:ident, $name:literal, |$f:ident| $setup:block, $method:literal, $uri:expr, $body:expr) => {
        mod $test {
            #[allow(unused_imports)]
            use super::*;

            async fn run($f: Fixture) {
                $setup
                let uri: String = $uri.into();
                check($name, &$f, $method, &uri, $body).await;
            }

            #[tokio::test]
            async fn sqlite() {
                run(Fixture::new().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                run(Fixture::postgres().await).await;
            }
        }
    };
}

// ---- API keys

golden!(
    apikey_delete_both,
    "TestAPIV1ApiKeyDelete_both_id_and_prefix_parity",
    |f| {
        f.api_key_row(None);
    },
    "DELETE",
    "/api/v1/apikey/abcdefabcdef?id=1",
    None
);
golden!(
    apikey_delete_invalid_id,
    "TestAPIV1ApiKeyDelete_invalid_id_parity",
    |f| {},
    "DELETE",
    "/api/v1/apikey/?id=abc",
    None
);
golden!(
    apikey_delete_not_found,
    "TestAPIV1ApiKeyDelete_not_found_by_prefix_parity",
    |f| {},
    "DELETE",
    "/api/v1/apikey/abcdefabcdef",
    None
);
golden!(
    apikey_delete_path_and_query,
    "TestAPIV1ApiKeyDelete_path_prefix_with_id_query_is_both_->_400_parity",
    |f| {
        f.api_key_row(None);
    },
    "DELETE",
    "/api/v1/apikey/x?id=1",
    None
);
golden!(
    apikey_expire_both,
    "TestAPIV1ApiKeyExpire_both_id_and_prefix_parity",
    |f| {
        f.api_key_row(None);
    },
    "POST",
    "/api/v1/apikey/expire",
    Some(r#"{"prefix":"abcdefabcdef","id":"1"}"#)
);
golden!(
    apikey_expire_by_id,
    "TestAPIV1ApiKeyExpire_by_id_parity",
    |f| {
        f.api_key_row(None);
    },
    "POST",
    "/api/v1/apikey/expire",
    Some(r#"{"id":"1"}"#)
);
#[tokio::test]
async fn apikey_expire_by_prefix() {
    let f = Fixture::new().await;
    let k = f.api_key_row(None);
    let body = format!(r#"{{"prefix":"{}"}}"#, k.prefix);
    check(
        "TestAPIV1ApiKeyExpire_by_prefix_parity",
        &f,
        "POST",
        "/api/v1/apikey/expire",
        Some(&body),
    )
    .await;
    let after = f.db.tx(|c| c.get_api_key(k.id)).unwrap().unwrap();
    assert_eq!(after.expiration, Some(now()));
}
golden!(
    apikey_expire_neither,
    "TestAPIV1ApiKeyExpire_neither_id_nor_prefix_parity",
    |f| {},
    "POST",
    "/api/v1/apikey/expire",
    Some("{}")
);
golden!(
    apikey_expire_not_found,
    "TestAPIV1ApiKeyExpire_not_found_by_id_parity",
    |f| {},
    "POST",
    "/api/v1/apikey/expire",
    Some(r#"{"id":"99"}"#)
);
golden!(
    apikey_list_empty,
    "TestAPIV1ApiKeyList_empty_parity",
    |f| {},
    "GET",
    "/api/v1/apikey",
    None
);
golden!(
    apikey_list_nil,
    "TestAPIV1ApiKeyList_nil_timestamps_emitted_as_null_parity",
    |f| {
        f.api_key_row(None);
    },
    "GET",
    "/api/v1/apikey",
    None
);
golden!(
    apikey_list_populated,
    "TestAPIV1ApiKeyList_populated_parity",
    |f| {
        f.api_key_row(None);
        f.api_key_row(None);
    },
    "GET",
    "/api/v1/apikey",
    None
);
golden!(
    apikey_list_zero,
    "TestAPIV1ApiKeyList_zero_expiration_emitted_as_zero_instant_parity",
    |f| {
        f.api_key_row(Some(hs_api::zero_instant()));
    },
    "GET",
    "/api/v1/apikey",
    None
);

// ---- auth

golden!(
    auth_approve_invalid,
    "TestAPIV1AuthApprove_invalid_auth_id_parity",
    |f| {},
    "POST",
    "/api/v1/auth/approve",
    Some(r#"{"authId":"nope"}"#)
);
golden!(
    auth_approve_none,
    "TestAPIV1AuthApprove_no_pending_session_parity",
    |f| {},
    "POST",
    "/api/v1/auth/approve",
    Some(&format!(r#"{{"authId":"{AUTH_ID}"}}"#))
);
golden!(
    auth_register_happy,
    "TestAPIV1AuthRegister_happy_path_parity",
    |f| {
        f.user("alice");
        f.pending(AUTH_ID, "regnode");
    },
    "POST",
    "/api/v1/auth/register",
    Some(&format!(r#"{{"user":"alice","authId":"{AUTH_ID}"}}"#))
);
golden!(
    auth_register_invalid,
    "TestAPIV1AuthRegister_invalid_auth_id_parity",
    |f| {
        f.user("alice");
    },
    "POST",
    "/api/v1/auth/register",
    Some(r#"{"user":"alice","authId":"bad"}"#)
);
golden!(
    auth_register_none,
    "TestAPIV1AuthRegister_no_pending_session_parity",
    |f| {
        f.user("alice");
    },
    "POST",
    "/api/v1/auth/register",
    Some(&format!(r#"{{"user":"alice","authId":"{AUTH_ID}"}}"#))
);
golden!(
    auth_register_unknown_user,
    "TestAPIV1AuthRegister_unknown_user_parity",
    |f| {
        f.pending(AUTH_ID, "regnode");
    },
    "POST",
    "/api/v1/auth/register",
    Some(&format!(r#"{{"user":"nobody","authId":"{AUTH_ID}"}}"#))
);
golden!(
    auth_reject_invalid,
    "TestAPIV1AuthReject_invalid_auth_id_parity",
    |f| {},
    "POST",
    "/api/v1/auth/reject",
    Some(r#"{"authId":"x"}"#)
);
golden!(
    auth_reject_none,
    "TestAPIV1AuthReject_no_pending_session_parity",
    |f| {},
    "POST",
    "/api/v1/auth/reject",
    Some(&format!(r#"{{"authId":"{AUTH_ID}"}}"#))
);

// ---- pre-auth keys

golden!(
    pak_create_invalid_tag,
    "TestAPIV1CreatePreAuthKey_invalid_tag_parity",
    |f| {
        f.user("alice");
    },
    "POST",
    "/api/v1/preauthkey",
    Some(r#"{"user":"1","aclTags":["notatag"]}"#)
);
golden!(
    pak_create_invalid_user,
    "TestAPIV1CreatePreAuthKey_invalid_user_id_parity",
    |f| {},
    "POST",
    "/api/v1/preauthkey",
    Some(r#"{"user":"abc"}"#)
);
golden!(
    pak_create_neither,
    "TestAPIV1CreatePreAuthKey_neither_tagged_nor_owned_parity",
    |f| {},
    "POST",
    "/api/v1/preauthkey",
    Some(r#"{"reusable":true}"#)
);
golden!(
    pak_create_no_user,
    "TestAPIV1CreatePreAuthKey_nonexistent_user_parity",
    |f| {},
    "POST",
    "/api/v1/preauthkey",
    Some(r#"{"user":"999"}"#)
);
golden!(
    pak_delete_invalid,
    "TestAPIV1DeletePreAuthKey_invalid_id_parity",
    |f| {},
    "DELETE",
    "/api/v1/preauthkey?id=abc",
    None
);
golden!(
    pak_delete_missing,
    "TestAPIV1DeletePreAuthKey_nonexistent_parity",
    |f| {},
    "DELETE",
    "/api/v1/preauthkey?id=42",
    None
);
golden!(
    pak_delete,
    "TestAPIV1DeletePreAuthKey_parity",
    |f| {
        let u = f.user("alice");
        f.pak(Some(u.id), &[], false, false, None);
    },
    "DELETE",
    "/api/v1/preauthkey?id=1",
    None
);
golden!(
    pak_expire_invalid,
    "TestAPIV1ExpirePreAuthKey_invalid_id_parity",
    |f| {},
    "POST",
    "/api/v1/preauthkey/expire",
    Some(r#"{"id":"abc"}"#)
);
golden!(
    pak_expire_missing,
    "TestAPIV1ExpirePreAuthKey_nonexistent_parity",
    |f| {},
    "POST",
    "/api/v1/preauthkey/expire",
    Some(r#"{"id":"42"}"#)
);
golden!(
    pak_expire,
    "TestAPIV1ExpirePreAuthKey_parity",
    |f| {
        let u = f.user("alice");
        f.pak(Some(u.id), &[], false, false, None);
    },
    "POST",
    "/api/v1/preauthkey/expire",
    Some(r#"{"id":"1"}"#)
);
golden!(
    pak_list_all,
    "TestAPIV1ListPreAuthKeys_all_parity",
    |f| {
        let u = f.user("alice");
        let later = now() + chrono::Duration::hours(1);
        f.pak(Some(u.id), &[], true, false, Some(later));
        f.pak(None, &["tag:test"], false, true, Some(later));
    },
    "GET",
    "/api/v1/preauthkey",
    None
);
// Go emits a zero (already expired) expiration as a timestamp, never as null: the same
// golden holds for keys stored with `time.Time{}`.
golden!(
    pak_list_zero_expiration,
    "TestAPIV1ListPreAuthKeys_all_parity",
    |f| {
        let u = f.user("alice");
        let zero = Some(hs_api::zero_instant());
        f.pak(Some(u.id), &[], true, false, zero);
        f.pak(None, &["tag:test"], false, true, zero);
    },
    "GET",
    "/api/v1/preauthkey",
    None
);
golden!(
    pak_list_empty,
    "TestAPIV1ListPreAuthKeys_empty_parity",
    |f| {},
    "GET",
    "/api/v1/preauthkey",
    None
);

// ---- users

golden!(
    user_create_dup,
    "TestAPIV1CreateUser_duplicate_name_parity",
    |f| {
        f.user("test");
    },
    "POST",
    "/api/v1/user",
    Some(r#"{"name":"test"}"#)
);
golden!(
    user_create,
    "TestAPIV1CreateUser_parity",
    |f| {},
    "POST",
    "/api/v1/user",
    Some(r#"{"name":"test","displayName":"Test","email":"t@example.com"}"#)
);
golden!(
    user_delete_missing,
    "TestAPIV1DeleteUser_nonexistent_parity",
    |f| {},
    "DELETE",
    "/api/v1/user/42",
    None
);
golden!(
    user_delete,
    "TestAPIV1DeleteUser_parity",
    |f| {
        f.user("alice");
    },
    "DELETE",
    "/api/v1/user/1",
    None
);
golden!(
    users_all,
    "TestAPIV1ListUsers_all_parity",
    |f| {
        f.user("alice");
        f.user("bob");
        f.user("carol");
    },
    "GET",
    "/api/v1/user",
    None
);
golden!(
    users_empty,
    "TestAPIV1ListUsers_empty_parity",
    |f| {},
    "GET",
    "/api/v1/user",
    None
);
golden!(
    users_by_id,
    "TestAPIV1ListUsers_filter_by_id_parity",
    |f| {
        f.user("alice");
        f.user("bob");
    },
    "GET",
    "/api/v1/user?id=2",
    None
);
golden!(
    users_by_name,
    "TestAPIV1ListUsers_filter_by_name_parity",
    |f| {
        f.user("alice");
        f.user("bob");
    },
    "GET",
    "/api/v1/user?name=alice",
    None
);
golden!(
    users_invalid_id,
    "TestAPIV1ListUsers_invalid_id_parity",
    |f| {},
    "GET",
    "/api/v1/user?id=abc",
    None
);
golden!(
    user_rename_invalid,
    "TestAPIV1RenameUser_invalid_id_parity",
    |f| {},
    "POST",
    "/api/v1/user/abc/rename/bob",
    None
);
golden!(
    user_rename_missing,
    "TestAPIV1RenameUser_nonexistent_parity",
    |f| {},
    "POST",
    "/api/v1/user/42/rename/bob",
    None
);
golden!(
    user_rename,
    "TestAPIV1RenameUser_parity",
    |f| {
        f.user("alice");
    },
    "POST",
    "/api/v1/user/1/rename/bob",
    None
);

// ---- health

golden!(
    health,
    "TestAPIV1Health_parity_with_gateway",
    |f| {},
    "GET",
    "/api/v1/health",
    None
);

// ---- nodes

golden!(
    backfill_confirmed,
    "TestAPIV1NodeBackfillIPs_confirmed_empty_parity",
    |f| {},
    "POST",
    "/api/v1/node/backfillips?confirmed=true",
    None
);
golden!(
    backfill_unconfirmed,
    "TestAPIV1NodeBackfillIPs_unconfirmed_parity",
    |f| {},
    "POST",
    "/api/v1/node/backfillips",
    None
);
golden!(
    debug_create_invalid_key,
    "TestAPIV1NodeDebugCreate_invalid_key_parity",
    |f| {
        f.user("alice");
    },
    "POST",
    "/api/v1/debug/node",
    Some(r#"{"user":"alice","key":"bad","name":"dbg"}"#)
);
golden!(
    debug_create_unknown_user,
    "TestAPIV1NodeDebugCreate_unknown_user_parity",
    |f| {},
    "POST",
    "/api/v1/debug/node",
    Some(&format!(
        r#"{{"user":"nobody","key":"{AUTH_ID}","name":"dbg"}}"#
    ))
);
golden!(
    node_delete,
    "TestAPIV1NodeDelete_happy_parity",
    |f| {
        let u = f.user("alice");
        f.node_with_key(1, "node-a", &u, &[]);
    },
    "DELETE",
    "/api/v1/node/1",
    None
);
golden!(
    node_delete_invalid,
    "TestAPIV1NodeDelete_invalid_id_parity",
    |f| {},
    "DELETE",
    "/api/v1/node/abc",
    None
);
golden!(
    node_delete_missing,
    "TestAPIV1NodeDelete_not_found_parity",
    |f| {},
    "DELETE",
    "/api/v1/node/42",
    None
);
golden!(
    node_expire_invalid,
    "TestAPIV1NodeExpire_invalid_id_parity",
    |f| {},
    "POST",
    "/api/v1/node/abc/expire",
    None
);
golden!(
    node_expire_missing,
    "TestAPIV1NodeExpire_not_found_parity",
    |f| {},
    "POST",
    "/api/v1/node/42/expire",
    None
);
golden!(
    node_get,
    "TestAPIV1NodeGet_happy_parity",
    |f| {
        let u = f.user("alice");
        f.node_with_key(1, "node-a", &u, &[]);
    },
    "GET",
    "/api/v1/node/1",
    None
);
golden!(
    node_get_invalid,
    "TestAPIV1NodeGet_invalid_id_parity",
    |f| {},
    "GET",
    "/api/v1/node/abc",
    None
);
golden!(
    node_get_missing,
    "TestAPIV1NodeGet_not_found_parity",
    |f| {},
    "GET",
    "/api/v1/node/42",
    None
);
golden!(
    node_get_tagged,
    "TestAPIV1NodeGet_tagged_node_parity",
    |f| {
        let u = f.user("bob");
        f.node_with_key(1, "node-b", &u, &["tag:initial"]);
    },
    "GET",
    "/api/v1/node/1",
    None
);
golden!(
    node_list_all,
    "TestAPIV1NodeList_all_parity",
    |f| {
        let a = f.user("alice");
        let b = f.user("bob");
        f.node_with_key(1, "node-a", &a, &[]);
        f.node_with_key(10, "node-b", &b, &[]);
    },
    "GET",
    "/api/v1/node",
    None
);
golden!(
    node_list_empty,
    "TestAPIV1NodeList_empty_parity",
    |f| {},
    "GET",
    "/api/v1/node",
    None
);
golden!(
    node_list_by_user,
    "TestAPIV1NodeList_filter_by_user_parity",
    |f| {
        let a = f.user("alice");
        let b = f.user("bob");
        f.node_with_key(1, "node-a", &a, &[]);
        f.node_with_key(10, "node-b", &b, &[]);
    },
    "GET",
    "/api/v1/node?user=alice",
    None
);
golden!(
    node_list_unknown_user,
    "TestAPIV1NodeList_unknown_user_parity",
    |f| {},
    "GET",
    "/api/v1/node?user=nobody",
    None
);
golden!(
    node_register,
    "TestAPIV1NodeRegister_happy_parity",
    |f| {
        f.user("alice");
        f.pending(AUTH_ID, "registered-node");
    },
    "POST",
    format!("/api/v1/node/register?user=alice&key={AUTH_ID}"),
    None
);
golden!(
    node_register_invalid_key,
    "TestAPIV1NodeRegister_invalid_key_parity",
    |f| {
        f.user("alice");
    },
    "POST",
    "/api/v1/node/register?user=alice&key=bad",
    None
);
golden!(
    node_register_unknown_user,
    "TestAPIV1NodeRegister_unknown_user_parity",
    |f| {},
    "POST",
    format!("/api/v1/node/register?user=nobody&key={AUTH_ID}"),
    None
);
golden!(
    node_rename_invalid,
    "TestAPIV1NodeRename_invalid_id_parity",
    |f| {},
    "POST",
    "/api/v1/node/abc/rename/x",
    None
);
golden!(
    node_rename_missing,
    "TestAPIV1NodeRename_not_found_parity",
    |f| {},
    "POST",
    "/api/v1/node/42/rename/x",
    None
);
golden!(
    routes_invalid,
    "TestAPIV1NodeSetApprovedRoutes_invalid_id_parity",
    |f| {},
    "POST",
    "/api/v1/node/abc/approve_routes",
    Some(r#"{"routes":[]}"#)
);
golden!(
    routes_missing,
    "TestAPIV1NodeSetApprovedRoutes_not_found_parity",
    |f| {},
    "POST",
    "/api/v1/node/42/approve_routes",
    Some(r#"{"routes":["10.0.0.0/24"]}"#)
);
golden!(
    tags_empty,
    "TestAPIV1NodeSetTags_empty_tags_parity",
    |f| {
        let u = f.user("alice");
        f.node_with_key(1, "node-a", &u, &[]);
    },
    "POST",
    "/api/v1/node/1/tags",
    Some(r#"{"tags":[]}"#)
);
golden!(
    tags_invalid_id,
    "TestAPIV1NodeSetTags_invalid_id_parity",
    |f| {},
    "POST",
    "/api/v1/node/abc/tags",
    Some(r#"{"tags":["tag:a"]}"#)
);
golden!(
    tags_missing,
    "TestAPIV1NodeSetTags_not_found_parity",
    |f| {},
    "POST",
    "/api/v1/node/42/tags",
    Some(r#"{"tags":["tag:a"]}"#)
);
golden!(
    tags_unauthorized,
    "TestAPIV1NodeSetTags_unauthorized_tag_parity",
    |f| {
        let u = f.user("alice");
        f.node_with_key(1, "node-a", &u, &[]);
    },
    "POST",
    "/api/v1/node/1/tags",
    Some(r#"{"tags":["tag:notowned"]}"#)
);

// ---- policy

golden!(
    policy_check_invalid,
    "TestAPIV1PolicyCheck_invalid_parity",
    |f| {},
    "POST",
    "/api/v1/policy/check",
    Some(r#"{"policy":"{ not json"}"#)
);
golden!(
    policy_check_valid,
    "TestAPIV1PolicyCheck_valid_parity",
    |f| {},
    "POST",
    "/api/v1/policy/check",
    Some(&serde_json::json!({"policy": POLICY}).to_string())
);
golden!(
    policy_get_empty,
    "TestAPIV1PolicyGet_empty_parity",
    |f| {},
    "GET",
    "/api/v1/policy",
    None
);
golden!(
    policy_get_set,
    "TestAPIV1PolicyGet_set_parity",
    |f| {
        f.db.tx(|c| c.set_policy(POLICY, now())).unwrap();
    },
    "GET",
    "/api/v1/policy",
    None
);
golden!(
    policy_set_invalid,
    "TestAPIV1PolicySet_invalid_parity",
    |f| {},
    "PUT",
    "/api/v1/policy",
    Some(r#"{"policy":"[1,2"}"#)
);
golden!(
    policy_set_valid,
    "TestAPIV1PolicySet_valid_parity",
    |f| {},
    "PUT",
    "/api/v1/policy",
    Some(&serde_json::json!({"policy": POLICY}).to_string())
);

/// Every golden file has a test above; a new golden must not go unnoticed.
#[test]
fn every_golden_is_covered() {
    let this = include_str!("golden.rs");
    let mut missing = vec![];
    for e in std::fs::read_dir(golden_dir()).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let stem = name.trim_end_matches(".json");
        if !this.contains(&format!("\"{stem}\"")) {
            missing.push(stem.to_owned());
        }
    }
    assert!(missing.is_empty(), "goldens without a test: {missing:?}");
}
