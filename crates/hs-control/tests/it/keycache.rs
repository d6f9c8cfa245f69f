//! The verified-secret cache for pre-auth keys must only save bcrypt: a reusable key whose
//! secret was already verified is still refused when the presented secret differs, and when
//! its row says expired or is gone.

use chrono::{Duration as ChronoDuration, Utc};

use crate::harness::{Client, Harness};
use crate::refusals::register_error;

/// The same prefix with another (well-formed) secret.
fn other_secret(key: &str) -> String {
    let (head, secret) = key.rsplit_once('-').unwrap();
    let flipped: String = secret
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    assert_ne!(flipped, secret);
    format!("{head}-{flipped}")
}

fn only_key_id(h: &Harness) -> u64 {
    let keys = h.db.tx(|c| c.list_pre_auth_keys(None)).unwrap();
    assert_eq!(keys.len(), 1);
    keys[0].id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_under_a_verified_prefix_is_refused() {
    let h = Harness::start().await;
    let key = h.key(true, false);
    assert!(key.starts_with("hskey-auth-"));
    let _a = Client::registered(&h, "a", &key).await;

    let forged = other_secret(&key);
    let b = Client::connect(&h, "b").await;
    assert_eq!(
        register_error(&h, &b, &forged).await,
        "invalid pre auth key"
    );
    assert_eq!(h.node_count(), 1);

    // The refusal did not spoil the entry for the real secret.
    let _c = Client::registered(&h, "c", &key).await;
    assert_eq!(h.node_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_key_expired_later_is_refused() {
    let h = Harness::start().await;
    let key = h.key(true, false);
    let _a = Client::registered(&h, "a", &key).await;
    let id = only_key_id(&h);
    h.db.tx(|c| c.expire_pre_auth_key(id, Utc::now() - ChronoDuration::seconds(1)))
        .unwrap();
    let b = Client::connect(&h, "b").await;
    assert_eq!(register_error(&h, &b, &key).await, "authkey expired");
    assert_eq!(h.node_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_key_deleted_later_is_refused() {
    let h = Harness::start().await;
    let key = h.key(true, false);
    let _a = Client::registered(&h, "a", &key).await;
    let id = only_key_id(&h);
    h.db.tx(|c| c.delete_pre_auth_key(id)).unwrap();
    let b = Client::connect(&h, "b").await;
    assert_eq!(register_error(&h, &b, &key).await, "invalid pre auth key");
    assert_eq!(h.node_count(), 1);
}
