//! ID tokens a correct provider never issues: a bad signature, the wrong audience, the wrong
//! issuer, a nonce that is not the login's, an expired token. A certified provider cannot be
//! made to mint them, so a minimal provider written here stands in (discovery, a token
//! endpoint; tokens signed with HS256 over the client secret, which the discovery document
//! advertises and OIDC allows for confidential clients). Each must be refused at the callback
//! with 403 and register nothing; the well-formed token minted the same way is accepted, so
//! the refusals are the checks', not the mock's.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::routing::{get, post};
use chrono::{Duration as TimeDelta, Utc};
use hs_testkit::TestServer;
use hs_testkit::oidc::http_request;
use openidconnect::core::{
    CoreGenderClaim, CoreHmacKey, CoreIdToken, CoreIdTokenClaims, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    Audience, EmptyAdditionalClaims, EndUserEmail, IssuerUrl, Nonce, StandardClaims,
    SubjectIdentifier,
};

const SECRET: &str = "the-client-secret-of-these-tests";
const CLIENT: &str = "headscale";

/// How the next token is minted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mint {
    Good,
    BadSignature,
    WrongAudience,
    WrongIssuer,
    WrongNonce,
    Expired,
}

#[derive(Clone)]
struct Mock {
    issuer: String,
    next: Arc<Mutex<(Mint, String)>>,
}

fn token(m: &Mock) -> String {
    let (mint, nonce) = m.next.lock().unwrap().clone();
    let now = Utc::now();
    let (iat, exp) = if mint == Mint::Expired {
        (now - TimeDelta::hours(2), now - TimeDelta::hours(1))
    } else {
        (now, now + TimeDelta::hours(1))
    };
    let issuer = if mint == Mint::WrongIssuer {
        "http://127.0.0.1:1/elsewhere".to_owned()
    } else {
        m.issuer.clone()
    };
    let aud = if mint == Mint::WrongAudience {
        "another-client"
    } else {
        CLIENT
    };
    let nonce = if mint == Mint::WrongNonce {
        "not-the-login-nonce".to_owned()
    } else {
        nonce
    };
    let claims: CoreIdTokenClaims = openidconnect::IdTokenClaims::new(
        IssuerUrl::new(issuer).unwrap(),
        vec![Audience::new(aud.into())],
        exp,
        iat,
        StandardClaims::<CoreGenderClaim>::new(SubjectIdentifier::new("sub-1".into()))
            .set_email(Some(EndUserEmail::new("one@corp.example".into())))
            .set_email_verified(Some(true))
            .set_preferred_username(Some(openidconnect::EndUserUsername::new("one".into()))),
        EmptyAdditionalClaims {},
    )
    .set_nonce(Some(Nonce::new(nonce)));
    let key = if mint == Mint::BadSignature {
        CoreHmacKey::new("some-other-secret".as_bytes())
    } else {
        CoreHmacKey::new(SECRET.as_bytes())
    };
    CoreIdToken::new(
        claims,
        &key,
        CoreJwsSigningAlgorithm::HmacSha256,
        None,
        None,
    )
    .unwrap()
    .to_string()
}

async fn start_mock() -> Mock {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", l.local_addr().unwrap());
    let m = Mock {
        issuer: issuer.clone(),
        next: Arc::new(Mutex::new((Mint::Good, String::new()))),
    };
    let (d, t) = (m.clone(), m.clone());
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || {
                let i = d.issuer.clone();
                async move {
                    Json(serde_json::json!({
                        "issuer": i,
                        "authorization_endpoint": format!("{i}/auth"),
                        "token_endpoint": format!("{i}/token"),
                        "jwks_uri": format!("{i}/jwks"),
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["HS256"],
                    }))
                }
            }),
        )
        .route(
            "/jwks",
            get(|| async { Json(serde_json::json!({"keys": []})) }),
        )
        .route(
            "/token",
            post(move || {
                let t = t.clone();
                async move {
                    Json(serde_json::json!({
                        "access_token": "an-access-token",
                        "token_type": "Bearer",
                        "expires_in": 3600,
                        "id_token": token(&t),
                    }))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(l, app).await });
    m
}

/// One login through the mock with `mint`: the callback's status and body.
async fn attempt(s: &TestServer, m: &Mock, mint: Mint, host: &str) -> (u16, String) {
    let url: url::Url = s.url.parse().unwrap();
    let keys = ts_keys::NodeState::generate();
    let conn = ts_control::client::connect(&url, &keys.machine_keys)
        .await
        .unwrap();
    let cfg = ts_control::Config {
        server_url: url.clone(),
        hostname: Some(host.into()),
        client_name: None,
        tags: Vec::new(),
        ephemeral: false,
    };
    let err = ts_control::register(&cfg, &url, None, None, &keys, &conn)
        .await
        .unwrap_err();
    let ts_control::RegistrationError::MachineNotAuthorized(Some(auth_url)) = err else {
        panic!("expected an AuthURL, got {err:?}");
    };
    let r = http_request("GET", &format!("{}{}", s.url, auth_url.path()), &[], None)
        .await
        .unwrap();
    assert_eq!(r.status, 302);
    let to: url::Url = r.header("location").unwrap().parse().unwrap();
    let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    *m.next.lock().unwrap() = (mint, q["nonce"].clone());
    let cookies: Vec<String> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.split(';').next().unwrap().to_owned())
        .collect();
    let r = http_request(
        "GET",
        &format!("{}/oidc/callback?code=c0de&state={}", s.url, q["state"]),
        &[("Cookie", &cookies.join("; "))],
        None,
    )
    .await
    .unwrap();
    (r.status, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_with_a_bad_signature_audience_issuer_nonce_or_expiry_are_refused() {
    let m = start_mock().await;
    let issuer = m.issuer.clone();
    let s = TestServer::start_with(move |c| {
        c.server_url = "http://127.0.0.1:8080".into();
        c.oidc.issuer = issuer;
        c.oidc.client_id = CLIENT.into();
        c.oidc.client_secret = hs_config::Secret::new(SECRET);
    })
    .await;
    for (i, mint) in [
        Mint::BadSignature,
        Mint::WrongAudience,
        Mint::WrongIssuer,
        Mint::WrongNonce,
        Mint::Expired,
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = attempt(&s, &m, mint, &format!("h{i}")).await;
        assert_eq!(status, 403, "{mint:?}: {body}");
        assert!(
            body.contains("failed to verify id_token"),
            "{mint:?}: {body}"
        );
    }
    let snap = s.state.store().load();
    assert_eq!(snap.users().count(), 0, "a refused token creates no user");
    assert_eq!(snap.nodes().count(), 0);
    // The same mock's well-formed token passes the checks (the confirmation page).
    let (status, body) = attempt(&s, &m, Mint::Good, "good").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Confirm the machine"), "{body}");
}
