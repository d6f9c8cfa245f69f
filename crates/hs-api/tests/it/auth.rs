//! API-key authentication on the authenticated surface (the gRPC/TCP listener and the main
//! HTTP listener): refused without a key, with a malformed, wrong, expired or deleted key;
//! accepted with a valid one, whose last-seen time is then recorded.

use http_body_util::BodyExt;
use tower::ServiceExt;

use super::support::{Fixture, call, later, now};

async fn status_with(f: &Fixture, key: Option<&str>) -> (u16, String, serde_json::Value) {
    call(
        hs_api::serve::http_router(f.admin.clone()),
        "GET",
        "/api/v1/user",
        None,
        key,
    )
    .await
}

#[tokio::test]
async fn valid_key_is_accepted_and_its_use_not_written() {
    let f = Fixture::new().await;
    let key = f.admin.create_api_key(Some(later())).await.unwrap();
    assert!(key.starts_with("hskey-api-"));
    let (status, _, body) = status_with(&f, Some(&key)).await;
    assert_eq!(status, 200, "{body}");
    let keys = f.admin.list_api_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].last_seen, None, "as Go 0.29.3, use is not recorded");
    // Only a hash is stored: the secret part appears nowhere in the row.
    let secret = key.rsplit('-').next().unwrap();
    assert!(!String::from_utf8_lossy(&keys[0].hash).contains(secret));
}

#[tokio::test]
async fn missing_key_is_refused() {
    let f = Fixture::new().await;
    let (status, ct, body) = status_with(&f, None).await;
    assert_eq!(status, 401);
    // As Go 0.29.3's API-key check: plain text, before grpc-gateway.
    assert_eq!(ct, "text/plain; charset=utf-8");
    assert_eq!(body, "Unauthorized");
}

/// A path no route serves is a 404 with or without a key; the key guards what exists (the
/// same path with a key is not a way to probe either).
#[tokio::test]
async fn unknown_paths_are_404_not_401() {
    let f = Fixture::new().await;
    let key = f.admin.create_api_key(Some(later())).await.unwrap();
    for path in ["/nonexistent", "/api/v1/nonexistent", "/machine/register"] {
        for bearer in [None, Some(key.as_str())] {
            let router = hs_api::serve::http_router(f.admin.clone());
            let (status, _, body) = call(router, "GET", path, None, bearer).await;
            assert_eq!(status, 404, "{path} {bearer:?}: {body}");
        }
    }
    // Every real route still wants the key.
    assert_eq!(status_with(&f, None).await.0, 401);
    let router = hs_api::serve::app(f.admin.clone(), true);
    let (status, _, _) = call(router, "GET", "/api/v1/node", None, None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn wrong_and_malformed_keys_are_refused() {
    let f = Fixture::new().await;
    let key = f.admin.create_api_key(Some(later())).await.unwrap();
    let mut wrong = key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    // The good key first, so its verification is cached: the cache must not let a wrong
    // secret with the same prefix through.
    assert_eq!(status_with(&f, Some(&key)).await.0, 200);
    assert_eq!(status_with(&f, Some(&wrong)).await.0, 401);
    assert_eq!(status_with(&f, Some("garbage")).await.0, 401);
}

#[tokio::test]
async fn expired_key_is_refused() {
    let f = Fixture::new().await;
    let key = f.admin.create_api_key(Some(later())).await.unwrap();
    assert_eq!(status_with(&f, Some(&key)).await.0, 200);
    let prefix = hs_api::apikey::parse_api_key(&key)
        .unwrap()
        .prefix
        .to_owned();
    f.admin
        .expire_api_key(hs_api::ApiKeyRef::Prefix(prefix))
        .await
        .unwrap();
    assert_eq!(status_with(&f, Some(&key)).await.0, 401);
}

#[tokio::test]
async fn key_with_past_expiration_is_refused() {
    let f = Fixture::new().await;
    let key = f
        .admin
        .create_api_key(Some(now() - chrono::Duration::seconds(1)))
        .await
        .unwrap();
    assert_eq!(status_with(&f, Some(&key)).await.0, 401);
}

/// Go Headscale stores `time.Time{}` when a key is created without an expiration and
/// treats it as expired (`Expiration.Before(now)`): such a key must not authenticate, and
/// it is listed with the zero instant rather than as never expiring.
#[tokio::test]
async fn key_created_without_expiration_is_expired() {
    for f in [Fixture::new().await, Fixture::postgres().await] {
        let key = f.admin.create_api_key(None).await.unwrap();
        assert_eq!(status_with(&f, Some(&key)).await.0, 401);
        let keys = f.admin.list_api_keys().await.unwrap();
        assert_eq!(keys[0].expiration, Some(hs_api::zero_instant()));
        assert_eq!(keys[0].last_seen, None, "a refused key is not marked seen");
        let (status, _, body) = f.call("GET", "/api/v1/apikey", None).await;
        assert_eq!(status, 200);
        assert_eq!(body["apiKeys"][0]["expiration"], "0001-01-01T00:00:00Z");
    }
}

/// A zero expiration written by Go Headscale into an existing database (the row, not our
/// create path) is refused too.
#[tokio::test]
async fn stored_zero_expiration_row_is_refused() {
    let f = Fixture::new().await;
    let key = f.admin.create_api_key(Some(later())).await.unwrap();
    f.db.tx(|c| c.execute_raw("UPDATE api_keys SET expiration = '0001-01-01 00:00:00+00:00'"))
        .unwrap();
    assert_eq!(status_with(&f, Some(&key)).await.0, 401);
}

#[tokio::test]
async fn deleted_key_is_refused() {
    let f = Fixture::new().await;
    let key = f.admin.create_api_key(Some(later())).await.unwrap();
    assert_eq!(status_with(&f, Some(&key)).await.0, 200);
    f.admin
        .delete_api_key(hs_api::ApiKeyRef::Id(1))
        .await
        .unwrap();
    assert_eq!(status_with(&f, Some(&key)).await.0, 401);
}

#[tokio::test]
async fn openapi_document_is_public() {
    let f = Fixture::new().await;
    // The body is YAML, so this goes through the raw router rather than `call`.
    let r = hs_api::serve::http_router(f.admin.clone())
        .oneshot(
            http::Request::get("/api/v1/openapi.yaml")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text =
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let doc: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let ops: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(ops, 30, "every v1 operation is described");
}
