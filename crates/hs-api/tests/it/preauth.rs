//! Pre-auth key expiration as Go Headscale stores and shows it: a create request without an
//! expiration stores Go's zero instant (`time.Time{}`), which is already expired, and every
//! listing shows it as `0001-01-01T00:00:00Z` rather than as "never".

use std::time::Duration;

use hs_api::client::RemoteTls;
use hs_api::proto as pb;

use super::support::{Fixture, later, now};

const ZERO: &str = "0001-01-01T00:00:00Z";
const ZERO_SECS: i64 = -62_135_596_800;

#[tokio::test]
async fn rest_create_without_expiration_stores_and_lists_zero() {
    for f in [Fixture::new().await, Fixture::postgres().await] {
        f.user("alice");
        let (status, _, body) = f
            .call(
                "POST",
                "/api/v1/preauthkey",
                Some(r#"{"user":"1","reusable":true}"#),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["preAuthKey"]["expiration"], ZERO);

        let exp = later();
        let with = format!(r#"{{"user":"1","expiration":"{}"}}"#, exp.to_rfc3339());
        let (status, _, body) = f.call("POST", "/api/v1/preauthkey", Some(&with)).await;
        assert_eq!(status, 200, "{body}");
        assert_ne!(body["preAuthKey"]["expiration"], ZERO);

        // A row as Go's GORM writes the zero time, in a database imported from Go.
        f.db.tx(|c| {
            c.execute_raw(
                "INSERT INTO pre_auth_keys (key, user_id, reusable, ephemeral, used, tags, expiration) \
                 VALUES ('00112233445566778899aabbccddeeff0011223344556677', 1, true, false, false, '[]', '0001-01-01 00:00:00+00:00')",
            )
        })
        .unwrap();

        let (status, _, body) = f.call("GET", "/api/v1/preauthkey", None).await;
        assert_eq!(status, 200, "{body}");
        let exps: Vec<_> = body["preAuthKeys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["expiration"].clone())
            .collect();
        assert_eq!(exps.len(), 3);
        assert_eq!(exps[0], ZERO);
        assert_ne!(exps[1], ZERO);
        assert!(exps[1].is_string());
        assert_eq!(exps[2], ZERO);

        let keys = f.admin.list_preauth_keys().await.unwrap();
        let now = now();
        assert!(keys[0].key.is_expired(now), "zero expiration is expired");
        assert!(!keys[1].key.is_expired(now));
        assert!(keys[2].key.is_expired(now), "Go's zero row is expired");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_create_without_expiration_is_the_zero_timestamp() {
    let f = Fixture::new().await;
    f.user("alice");
    let key = f.admin.create_api_key(Some(later())).await.unwrap();
    let (addr, stop) = super::grpc::serve(&f).await;
    let mut c = hs_api::client::connect_remote(
        &format!("http://{addr}"),
        &key,
        RemoteTls::Plain,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let created = c
        .create_pre_auth_key(pb::CreatePreAuthKeyRequest {
            user: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .pre_auth_key
        .unwrap();
    let zero = Some(prost_types::Timestamp {
        seconds: ZERO_SECS,
        nanos: 0,
    });
    assert_eq!(created.expiration, zero);
    let listed = c
        .list_pre_auth_keys(pb::ListPreAuthKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .pre_auth_keys;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].expiration, zero);
    stop.send(()).ok();
}
