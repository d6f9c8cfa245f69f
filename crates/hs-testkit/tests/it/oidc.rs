//! The test OpenID provider end to end: discovery, a login played as the browser, the code
//! exchanged at the token endpoint, and the ID token's claims as configured.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hs_testkit::oidc::{
    Account, Client, HttpResponse, Provider, ProviderOptions, TokenAuthMethod, http_request,
};
use serde_json::Value;
use url::Url;

const REDIRECT: &str = "http://127.0.0.1:9/oidc/callback";

fn alice() -> Account {
    Account {
        sub: "alice-sub".into(),
        email: Some("alice@example.com".into()),
        email_verified: Some(true),
        name: Some("Alice Liddell".into()),
        preferred_username: Some("alice".into()),
        picture: Some("http://127.0.0.1:9/alice.png".into()),
        groups: vec!["admins".into(), "devs".into()],
    }
}

async fn discovery(p: &Provider) -> Value {
    let r = http_request("GET", &p.discovery_url(), &[], None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().unwrap()
}

/// The authorization URL a relying party would send the browser to.
fn authorize_url(doc: &Value, client_id: &str, challenge: Option<&str>) -> String {
    let mut u = Url::parse(doc["authorization_endpoint"].as_str().unwrap()).unwrap();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("scope", "openid email profile groups")
            .append_pair("state", "state-123")
            .append_pair("nonce", "nonce-456");
        if let Some(c) = challenge {
            q.append_pair("code_challenge", c)
                .append_pair("code_challenge_method", "S256");
        }
    }
    u.into()
}

fn query(location: &str, key: &str) -> Option<String> {
    Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn exchange(
    doc: &Value,
    client: &Client,
    code: &str,
    verifier: Option<&str>,
) -> HttpResponse {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", REDIRECT);
    if let Some(v) = verifier {
        form.append_pair("code_verifier", v);
    }
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", client.client_id, client.client_secret))
    );
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    match client.auth_method {
        TokenAuthMethod::ClientSecretBasic => headers.push(("authorization", &basic)),
        TokenAuthMethod::ClientSecretPost => {
            form.append_pair("client_id", &client.client_id)
                .append_pair("client_secret", &client.client_secret);
        }
    }
    let body = form.finish();
    let token_endpoint = doc["token_endpoint"].as_str().unwrap();
    http_request("POST", token_endpoint, &headers, Some(&body))
        .await
        .unwrap()
}

/// The ID token's payload (no signature check: that is the relying party's job).
fn id_token_claims(token_response: &HttpResponse) -> Value {
    assert_eq!(token_response.status, 200, "{}", token_response.body);
    let json = token_response.json().unwrap();
    let jwt = json["id_token"].as_str().unwrap();
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn code_flow_with_pkce_returns_the_configured_id_token() {
    let client = Client::new("headscale", "s3cret", REDIRECT);
    let mut opts = ProviderOptions::new(client.clone());
    opts.accounts.push(alice());
    opts.id_token_ttl = Duration::from_secs(120);
    opts.pkce_required = true;
    let p = Provider::start(opts).await;
    assert_eq!(p.client_id(), "headscale");
    assert_eq!(p.client_secret(), "s3cret");

    let doc = discovery(&p).await;
    assert_eq!(doc["issuer"], p.issuer().as_str());
    let scopes = doc["scopes_supported"].as_array().unwrap();
    for s in ["openid", "profile", "email", "groups"] {
        assert!(scopes.iter().any(|v| v == s), "{s} not in {scopes:?}");
    }

    let (challenge, verifier) = openidconnect::PkceCodeChallenge::new_random_sha256();
    let url = authorize_url(&doc, &client.client_id, Some(challenge.as_str()));
    let location = p.login(&url, "alice-sub").await.unwrap();
    assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
    assert_eq!(query(&location, "state").as_deref(), Some("state-123"));
    assert_eq!(query(&location, "iss"), Some(p.issuer()));
    let code = query(&location, "code").expect("a code");

    // A wrong verifier is refused (PKCE is really checked), and the code is then spent.
    let wrong = exchange(&doc, &client, &code, Some(&"x".repeat(43))).await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);

    let location = p.login(&url, "alice-sub").await.unwrap();
    let code = query(&location, "code").expect("a code");
    let resp = exchange(&doc, &client, &code, Some(verifier.secret())).await;
    let claims = id_token_claims(&resp);
    assert_eq!(claims["iss"], p.issuer().as_str());
    assert_eq!(claims["aud"], "headscale");
    assert_eq!(claims["sub"], "alice-sub");
    assert_eq!(claims["nonce"], "nonce-456");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Alice Liddell");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["picture"], "http://127.0.0.1:9/alice.png");
    assert_eq!(claims["groups"], serde_json::json!(["admins", "devs"]));
    let (exp, iat) = (
        claims["exp"].as_i64().unwrap(),
        claims["iat"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 120);

    // A code is single-use.
    let again = exchange(&doc, &client, &code, Some(verifier.secret())).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.body.contains("invalid_grant"), "{}", again.body);
}

#[tokio::test]
async fn client_secret_post_and_a_short_lifetime() {
    let mut client = Client::new("hs-post", "post-secret", REDIRECT);
    client.auth_method = TokenAuthMethod::ClientSecretPost;
    let mut opts = ProviderOptions::new(client.clone());
    opts.accounts.push(Account {
        sub: "bob".into(),
        email: Some("bob@example.com".into()),
        email_verified: Some(false),
        ..Account::default()
    });
    opts.id_token_ttl = Duration::from_secs(2);
    let p = Provider::start(opts).await;
    let doc = discovery(&p).await;

    // PKCE is optional here.
    let location = p
        .login(&authorize_url(&doc, "hs-post", None), "bob")
        .await
        .unwrap();
    let code = query(&location, "code").expect("a code");
    let claims = id_token_claims(&exchange(&doc, &client, &code, None).await);
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["email_verified"], false);
    assert_eq!(claims["groups"], serde_json::json!([]));
    assert!(claims.get("name").is_none(), "{claims}");
    let (exp, iat) = (
        claims["exp"].as_i64().unwrap(),
        claims["iat"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 2);
}

#[tokio::test]
async fn pkce_required_refuses_a_request_without_a_challenge() {
    let mut opts = ProviderOptions::new(Client::new("headscale", "s3cret", REDIRECT));
    opts.accounts.push(alice());
    opts.pkce_required = true;
    let p = Provider::start(opts).await;
    let doc = discovery(&p).await;
    let location = p
        .login(&authorize_url(&doc, "headscale", None), "alice-sub")
        .await
        .unwrap();
    assert_eq!(
        query(&location, "error").as_deref(),
        Some("invalid_request"),
        "{location}"
    );
    assert_eq!(query(&location, "code"), None);
}

#[tokio::test]
async fn login_fails_clearly_for_an_unknown_account_or_a_foreign_url() {
    let mut opts = ProviderOptions::new(Client::new("headscale", "s3cret", REDIRECT));
    opts.accounts.push(alice());
    let p = Provider::start(opts).await;
    let doc = discovery(&p).await;
    let url = authorize_url(&doc, "headscale", None);

    let err = p.login(&url, "mallory").await.unwrap_err();
    assert!(err.contains("no account with sub \"mallory\""), "{err}");
    assert!(err.contains("HTTP 404"), "{err}");

    let err = p
        .login("http://127.0.0.1:9/auth?client_id=headscale", "alice-sub")
        .await
        .unwrap_err();
    assert!(err.contains("is not on this provider"), "{err}");

    // A redirect_uri the client did not register is the provider's error, not a redirect.
    let bad = url.replace("oidc%2Fcallback", "elsewhere");
    let err = p.login(&bad, "alice-sub").await.unwrap_err();
    assert!(err.contains("redirect_uri"), "{err}");
}
