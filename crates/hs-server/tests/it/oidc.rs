//! OIDC login end to end: a real OpenID provider on loopback (`oidc-provider`, a certified
//! implementation, through `hs_testkit::oidc`), the whole server in-process configured with
//! it, Tailscale's Rust client registering interactively, and the test as the user's browser
//! (cookies and all): `/register/{auth_id}` → provider login → `/oidc/callback` → the
//! confirmation page → `POST /register/confirm/{auth_id}`.

use std::time::Duration;

use hs_testkit::TestServer;
use hs_testkit::oidc::{Account, Client, Provider, ProviderOptions, http_request};
use hs_types::model::RegisterMethod;

/// A cookie jar: the `name=value` of every `Set-Cookie` seen (later ones replace earlier).
#[derive(Default)]
struct Browser {
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn take(&mut self, r: &hs_testkit::oidc::HttpResponse) {
        for (k, v) in &r.headers {
            if !k.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let pair = v.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(n, _)| n != name);
                if !value.is_empty() {
                    self.cookies.push((name.to_owned(), value.to_owned()));
                }
            }
        }
    }

    fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, url: &str) -> hs_testkit::oidc::HttpResponse {
        let cookie = self.header();
        let r = http_request("GET", url, &[("Cookie", &cookie)], None)
            .await
            .unwrap();
        self.take(&r);
        r
    }

    async fn post_form(&mut self, url: &str, form: &str) -> hs_testkit::oidc::HttpResponse {
        let cookie = self.header();
        let r = http_request(
            "POST",
            url,
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(form),
        )
        .await
        .unwrap();
        self.take(&r);
        r
    }
}

const SERVER_URL: &str = "http://127.0.0.1:8080";

fn account(sub: &str, user: &str, email: &str, verified: bool, groups: &[&str]) -> Account {
    Account {
        sub: sub.into(),
        email: Some(email.into()),
        email_verified: Some(verified),
        name: Some(format!("{user} Example")),
        preferred_username: Some(user.into()),
        picture: Some(format!("https://pics.example/{user}.png")),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

async fn provider(accounts: Vec<Account>, ttl: Duration) -> Provider {
    let client = Client::new(
        "headscale",
        "s3cret-for-tests",
        &format!("{SERVER_URL}/oidc/callback"),
    );
    let mut opts = ProviderOptions::new(client);
    opts.accounts = accounts;
    opts.id_token_ttl = ttl;
    Provider::start(opts).await
}

/// The server with `oidc.*` pointing at `p`; `edit` adjusts the section further.
async fn server(p: &Provider, edit: impl FnOnce(&mut hs_config::OidcConfig)) -> TestServer {
    let issuer = p.issuer();
    let (id, secret) = (p.client_id(), p.client_secret());
    TestServer::start_with(move |c| {
        c.server_url = SERVER_URL.into();
        c.oidc.issuer = issuer;
        c.oidc.client_id = id;
        c.oidc.client_secret = hs_config::Secret::new(secret);
        c.oidc.scope = ["openid", "profile", "email", "groups"]
            .map(String::from)
            .to_vec();
        edit(&mut c.oidc);
    })
    .await
}

/// A client that asked to register without a key: its keys, connection and the AuthURL.
struct Pending {
    keys: ts_keys::NodeState,
    conn: ts_control::client::HttpConn,
    cfg: ts_control::Config,
    url: url::Url,
    auth_url: url::Url,
}

async fn pending(s: &TestServer, host: &str) -> Pending {
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
    Pending {
        keys,
        conn,
        cfg,
        url,
        auth_url,
    }
}

impl Pending {
    /// The client's follow-up long poll, answered once the login is confirmed.
    fn follow_up(&self) -> tokio::task::JoinHandle<Result<(), String>> {
        let (cfg, url, keys, conn, f) = (
            self.cfg.clone(),
            self.url.clone(),
            self.keys.clone(),
            self.conn.clone(),
            self.auth_url.clone(),
        );
        tokio::spawn(async move {
            ts_control::register(&cfg, &url, None, Some(f), &keys, &conn)
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        })
    }

    fn auth_path(&self) -> String {
        self.auth_url.path().to_owned()
    }
}

/// The server's URL for `path_and_query` (the provider redirects to `SERVER_URL`, which is
/// not where the test server listens).
fn on(s: &TestServer, path_and_query: &str) -> String {
    format!("{}{path_and_query}", s.url)
}

/// Drives the browser from the registration link through the provider back to the server:
/// the callback's answer.
async fn through_provider(
    s: &TestServer,
    p: &Provider,
    b: &mut Browser,
    pend: &Pending,
    sub: &str,
) -> hs_testkit::oidc::HttpResponse {
    let r = b.get(&on(s, &pend.auth_path())).await;
    assert_eq!(r.status, 302, "/register: {}", r.body);
    let to = r.header("location").unwrap().to_owned();
    assert!(to.starts_with(&p.issuer()), "redirected to {to}");
    assert!(to.contains("nonce=") && to.contains("state="), "{to}");
    let back: url::Url = p.login(&to, sub).await.unwrap().parse().unwrap();
    assert_eq!(back.path(), "/oidc/callback");
    b.get(&on(
        s,
        &format!("/oidc/callback?{}", back.query().unwrap_or_default()),
    ))
    .await
}

/// The CSRF value in the confirmation page's form.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"headscale_register_confirm\" value=\"")
        .expect("the confirmation form");
    let rest = &page[at + "name=\"headscale_register_confirm\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Logs `sub` in for `pend` and confirms; the final page.
async fn log_in_and_confirm(
    s: &TestServer,
    p: &Provider,
    pend: &Pending,
    sub: &str,
) -> hs_testkit::oidc::HttpResponse {
    let mut b = Browser::default();
    let page = through_provider(s, p, &mut b, pend, sub).await;
    assert_eq!(page.status, 200, "callback: {}", page.body);
    assert!(page.body.contains("Confirm the machine"), "{}", page.body);
    let csrf = csrf_of(&page.body);
    let action = format!(
        "/register/confirm/{}",
        pend.auth_path().rsplit('/').next().unwrap()
    );
    b.post_form(
        &on(s, &action),
        &format!("headscale_register_confirm={csrf}"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_login_creates_the_user_and_registers_the_node() {
    let p = provider(
        vec![account(
            "sub-alice",
            "alice",
            "alice@corp.example",
            true,
            &["eng"],
        )],
        Duration::from_secs(3600),
    )
    .await;
    let s = server(&p, |_| {}).await;
    let pend = pending(&s, "laptop").await;
    let wait = pend.follow_up();
    let done = log_in_and_confirm(&s, &p, &pend, "sub-alice").await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Machine registered"), "{}", done.body);
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the client's follow-up was answered")
        .unwrap()
        .unwrap();

    let snap = s.state.store().load();
    let users: Vec<_> = snap.users().cloned().collect();
    assert_eq!(users.len(), 1, "{users:?}");
    let alice = &users[0];
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.email, "alice@corp.example");
    assert_eq!(alice.display_name, "alice Example");
    assert_eq!(alice.provider, "oidc");
    let issuer = p.issuer();
    assert_eq!(
        alice.provider_identifier.as_deref(),
        Some(format!("{}/sub-alice", issuer.trim_end_matches('/')).as_str())
    );
    let nodes: Vec<_> = snap.nodes().map(|e| e.node.clone()).collect();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].user_id, Some(alice.id));
    assert_eq!(nodes[0].register_method, RegisterMethod::Oidc);
    assert_eq!(
        nodes[0].expiry, None,
        "no expiry unless use_expiry_from_token"
    );

    // A second machine, the same person: the same user, a second node.
    let pend2 = pending(&s, "desktop").await;
    let wait2 = pend2.follow_up();
    let done = log_in_and_confirm(&s, &p, &pend2, "sub-alice").await;
    assert_eq!(done.status, 200, "{}", done.body);
    wait2.await.unwrap().unwrap();
    let snap = s.state.store().load();
    assert_eq!(snap.users().count(), 1, "one user per issuer and subject");
    assert_eq!(snap.nodes().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_lists_and_unverified_email_are_refused_with_a_clear_page() {
    let p = provider(
        vec![
            account(
                "sub-mallory",
                "mallory",
                "mallory@evil.example",
                true,
                &["eng"],
            ),
            account("sub-eve", "eve", "eve@corp.example", true, &["sales"]),
            account("sub-carol", "carol", "carol@corp.example", false, &["eng"]),
            account("sub-dave", "dave", "dave@corp.example", true, &["eng"]),
        ],
        Duration::from_secs(3600),
    )
    .await;
    let s = server(&p, |o| {
        o.allowed_domains = vec!["corp.example".into()];
        o.allowed_groups = vec!["eng".into()];
        o.email_verified_required = true;
    })
    .await;
    for (sub, reason) in [
        ("sub-mallory", "unauthorised domain"),
        ("sub-eve", "unauthorised group"),
        ("sub-carol", "unverified email"),
    ] {
        let pend = pending(&s, sub).await;
        let mut b = Browser::default();
        let r = through_provider(&s, &p, &mut b, &pend, sub).await;
        assert_eq!(r.status, 401, "{sub}: {}", r.body);
        assert!(r.body.contains("You are not authorized"), "{}", r.body);
        assert!(r.body.contains(reason), "{sub}: {}", r.body);
    }
    let snap = s.state.store().load();
    assert_eq!(snap.users().count(), 0, "a refused login creates no user");
    assert_eq!(snap.nodes().count(), 0);
    // The allowed one goes through.
    let pend = pending(&s, "dave").await;
    let wait = pend.follow_up();
    assert_eq!(
        log_in_and_confirm(&s, &p, &pend, "sub-dave").await.status,
        200
    );
    wait.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_from_token_sets_the_node_expiry() {
    let p = provider(
        vec![account("sub-bob", "bob", "bob@corp.example", true, &[])],
        Duration::from_secs(600),
    )
    .await;
    let s = server(&p, |o| o.use_expiry_from_token = true).await;
    let pend = pending(&s, "bob-laptop").await;
    let wait = pend.follow_up();
    let before = chrono::Utc::now();
    assert_eq!(
        log_in_and_confirm(&s, &p, &pend, "sub-bob").await.status,
        200
    );
    wait.await.unwrap().unwrap();
    let node = s.state.store().load().nodes().next().unwrap().node.clone();
    let expiry = node.expiry.expect("the token's expiry");
    let ttl = (expiry - before).num_seconds();
    assert!(
        (540..=660).contains(&ttl),
        "expiry {ttl} s after login, token lived 600 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_callback_or_confirmation_registers_nothing() {
    let p = provider(
        vec![account(
            "sub-alice",
            "alice",
            "alice@corp.example",
            true,
            &[],
        )],
        Duration::from_secs(3600),
    )
    .await;
    let s = server(&p, |_| {}).await;

    // The callback in another browser (no state cookie): refused before the code is used.
    let pend = pending(&s, "a").await;
    let mut victim = Browser::default();
    let r = victim.get(&on(&s, &pend.auth_path())).await;
    let to = r.header("location").unwrap().to_owned();
    let back: url::Url = p.login(&to, "sub-alice").await.unwrap().parse().unwrap();
    let mut attacker = Browser::default();
    let cb = on(&s, &format!("/oidc/callback?{}", back.query().unwrap()));
    let r = attacker.get(&cb).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("state not found"), "{}", r.body);

    // The right state cookie but a nonce cookie that is not the token's nonce.
    victim.cookies.retain(|(n, _)| !n.starts_with("nonce_"));
    let r = victim.get(&cb).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("nonce did not match"), "{}", r.body);
    // The code and state were spent by that attempt; replaying them is refused too.
    let r = victim.get(&cb).await;
    assert_eq!(r.status, 410, "{}", r.body);

    // Missing parameters.
    let r = victim.get(&on(&s, "/oidc/callback")).await;
    assert_eq!(r.status, 400);

    // A confirmation without the CSRF cookie, or with the wrong token, registers nothing.
    let pend = pending(&s, "b").await;
    let mut b = Browser::default();
    let page = through_provider(&s, &p, &mut b, &pend, "sub-alice").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = csrf_of(&page.body);
    let action = on(
        &s,
        &format!(
            "/register/confirm/{}",
            pend.auth_path().rsplit('/').next().unwrap()
        ),
    );
    let r = Browser::default()
        .post_form(&action, &format!("headscale_register_confirm={csrf}"))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = b
        .post_form(&action, "headscale_register_confirm=wrong")
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(s.state.store().load().nodes().count(), 0);
    // The right one still works.
    let wait = pend.follow_up();
    let r = b
        .post_form(&action, &format!("headscale_register_confirm={csrf}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    wait.await.unwrap().unwrap();
    assert_eq!(s.state.store().load().nodes().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_stops_the_start_or_falls_back_to_the_cli() {
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let env = |k: &str| match k {
        "HEADSCALE_LISTEN_ADDR" | "HEADSCALE_DERP_SERVER_STUN_LISTEN_ADDR" => {
            Some("127.0.0.1:0".to_owned())
        }
        "HEADSCALE_METRICS_LISTEN_ADDR" | "HEADSCALE_GRPC_LISTEN_ADDR" => Some(String::new()),
        _ => None,
    };
    let (mut c, _) = hs_config::Config::embedded_default(dir.path(), &env).unwrap();
    c.oidc.issuer = issuer.clone();
    c.oidc.client_id = "headscale".into();
    c.oidc.only_start_if_oidc_is_available = true;
    let Err(err) = hs_server::App::build(&c).await else {
        panic!("the server started without its OIDC provider");
    };
    let msg = err.to_string();
    assert!(
        msg.contains(&issuer) && msg.contains("only_start_if_oidc_is_available"),
        "{msg}"
    );

    // Allowed to start without it: registrations wait for the CLI, as without OIDC.
    let s = TestServer::start_with(move |c| {
        c.oidc.issuer = issuer;
        c.oidc.client_id = "headscale".into();
        c.oidc.only_start_if_oidc_is_available = false;
    })
    .await;
    let pend = pending(&s, "laptop").await;
    let r = Browser::default().get(&on(&s, &pend.auth_path())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("headscale auth register --auth-id"),
        "{}",
        r.body
    );
}

/// Account takeover by email (a past Headscale security fix): users are matched by issuer and
/// subject only. A second provider account claiming the same (verified) email and username
/// as an existing OIDC user, or as a user made with the CLI, gets a user of its own and none
/// of the others' nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_email_from_another_subject_takes_over_no_user() {
    let p = provider(
        vec![
            account("sub-owner", "owner", "owner@corp.example", true, &[]),
            account("sub-impostor", "owner", "owner@corp.example", true, &[]),
            account("sub-cli-twin", "carol", "carol@corp.example", true, &[]),
        ],
        Duration::from_secs(3600),
    )
    .await;
    let s = server(&p, |_| {}).await;
    let carol = s
        .state
        .create_user(hs_db::NewUser {
            name: "carol".into(),
            email: "carol@corp.example".into(),
            ..hs_db::NewUser::default()
        })
        .await
        .unwrap();
    for (host, sub) in [
        ("owner-laptop", "sub-owner"),
        ("impostor-laptop", "sub-impostor"),
        ("twin-laptop", "sub-cli-twin"),
    ] {
        let pend = pending(&s, host).await;
        let wait = pend.follow_up();
        assert_eq!(log_in_and_confirm(&s, &p, &pend, sub).await.status, 200);
        wait.await.unwrap().unwrap();
    }
    let snap = s.state.store().load();
    assert_eq!(snap.users().count(), 4, "CLI carol + three OIDC subjects");
    let owner_of = |host: &str| {
        snap.nodes()
            .find(|e| e.node.hostname == host)
            .and_then(|e| e.node.user_id)
            .unwrap()
    };
    let (owner, impostor, twin) = (
        owner_of("owner-laptop"),
        owner_of("impostor-laptop"),
        owner_of("twin-laptop"),
    );
    assert_ne!(owner, impostor, "the impostor got the owner's user");
    assert_ne!(twin, carol.id, "an OIDC login took over the CLI user carol");
    let user = |id| (**snap.users().find(|u| u.id == id).unwrap()).clone();
    assert_eq!(
        user(carol.id).provider_identifier,
        None,
        "carol is untouched"
    );
    assert!(
        user(impostor)
            .provider_identifier
            .unwrap()
            .ends_with("/sub-impostor")
    );
}

/// SSH `check` approved by OIDC: the destination node's question files a check whose link
/// (`/auth/{auth_id}`) sends the browser to the provider; the source node's owner logging in
/// lets the held connection through, anyone else is refused with 403 and the check stays
/// pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_check_is_approved_by_the_source_owner_logging_in() {
    use ts_http_util::{ClientExt as _, ResponseExt as _};
    let p = provider(
        vec![
            account("sub-alice", "alice", "alice@corp.example", true, &[]),
            account("sub-bob", "bob", "bob@corp.example", true, &[]),
        ],
        Duration::from_secs(3600),
    )
    .await;
    let s = server(&p, |_| {}).await;
    let mut nodes = Vec::new();
    for host in ["src", "dst"] {
        let pend = pending(&s, host).await;
        let wait = pend.follow_up();
        assert_eq!(
            log_in_and_confirm(&s, &p, &pend, "sub-alice").await.status,
            200
        );
        wait.await.unwrap().unwrap();
        nodes.push(pend);
    }
    s.state
        .set_policy_text(
            "test",
            Some(
                r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
                    "ssh": [{"action": "check", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"]}]}"#,
            ),
        )
        .await
        .unwrap();
    let snap = s.state.store().load();
    let id = |h: &str| {
        snap.nodes()
            .find(|e| e.node.hostname == h)
            .unwrap()
            .node
            .id
            .get()
    };
    let (src, dst) = (id("src"), id("dst"));
    let dst_node = &nodes[1];
    let ask = |path: String| {
        let (conn, url) = (dst_node.conn.clone(), dst_node.url.join(&path).unwrap());
        async move {
            let body = conn
                .get(&url, [])
                .await
                .unwrap()
                .collect_bytes()
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        }
    };
    let action = ask(format!(
        "/machine/ssh/action/{src}/to/{dst}?local_user=root"
    ))
    .await;
    let hold = action["holdAndDelegate"]
        .as_str()
        .expect("a check")
        .to_owned();
    let auth_id = hold
        .split("auth_id=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let follow = hold
        .replace("$SRC_NODE_ID", &src.to_string())
        .replace("$DST_NODE_ID", &dst.to_string())
        .replace("$LOCAL_USER", "root");
    let follow: url::Url = follow.parse().unwrap();
    let waiting = tokio::spawn(ask(format!(
        "{}?{}",
        follow.path(),
        follow.query().unwrap()
    )));

    // Bob does not own the source node.
    let mut b = Browser::default();
    let r = b.get(&on(&s, &format!("/auth/{auth_id}"))).await;
    assert_eq!(r.status, 302, "{}", r.body);
    let back: url::Url = p
        .login(r.header("location").unwrap(), "sub-bob")
        .await
        .unwrap()
        .parse()
        .unwrap();
    let r = b
        .get(&on(
            &s,
            &format!("/oidc/callback?{}", back.query().unwrap()),
        ))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("not the owner of the SSH source node"),
        "{}",
        r.body
    );
    assert!(!waiting.is_finished());
    assert!(s.state.is_ssh_check_pending(&auth_id));

    // Alice does.
    let mut a = Browser::default();
    let r = a.get(&on(&s, &format!("/auth/{auth_id}"))).await;
    let back: url::Url = p
        .login(r.header("location").unwrap(), "sub-alice")
        .await
        .unwrap()
        .parse()
        .unwrap();
    let r = a
        .get(&on(
            &s,
            &format!("/oidc/callback?{}", back.query().unwrap()),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("SSH session authorized"), "{}", r.body);
    let verdict = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verdict["accept"], true, "{verdict}");
}

/// Re-authentication keeps the node: an expired node logs in again through OIDC and comes
/// back under the same ID, unexpired, for the same user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_authentication_keeps_the_node() {
    let p = provider(
        vec![account(
            "sub-alice",
            "alice",
            "alice@corp.example",
            true,
            &[],
        )],
        Duration::from_secs(3600),
    )
    .await;
    let s = server(&p, |_| {}).await;
    let pend = pending(&s, "laptop").await;
    let wait = pend.follow_up();
    assert_eq!(
        log_in_and_confirm(&s, &p, &pend, "sub-alice").await.status,
        200
    );
    wait.await.unwrap().unwrap();
    let node = s.state.store().load().nodes().next().unwrap().node.clone();
    s.state
        .expire_node(
            node.id,
            Some(chrono::Utc::now() - chrono::Duration::minutes(1)),
        )
        .await
        .unwrap();

    // The same machine asks again, as tailscaled does after NodeKeyExpired: a new node key,
    // the old one named, no auth key; it gets a new AuthURL.
    use ts_http_util::{ClientExt as _, ResponseExt as _};
    let register = |body: serde_json::Value| {
        let (conn, url) = (
            pend.conn.clone(),
            pend.url.join("/machine/register").unwrap(),
        );
        async move {
            let resp = conn
                .post(&url, [], bytes::Bytes::from(body.to_string()).into())
                .await
                .unwrap();
            let body = resp.collect_bytes().await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        }
    };
    let old_key = pend.keys.node_keys.public.to_string();
    let expired = register(serde_json::json!({"Version": 130, "NodeKey": old_key})).await;
    assert_eq!(expired["NodeKeyExpired"], true, "{expired}");
    let new_key = ts_keys::NodeState::generate().node_keys.public.to_string();
    let r = register(
        serde_json::json!({"Version": 130, "NodeKey": new_key, "OldNodeKey": old_key,
        "Hostinfo": {"Hostname": "laptop"}}),
    )
    .await;
    let auth_url: url::Url = r["AuthURL"]
        .as_str()
        .expect("an AuthURL")
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {r}"));
    let again = Pending {
        keys: pend.keys.clone(),
        conn: pend.conn.clone(),
        cfg: pend.cfg.clone(),
        url: pend.url.clone(),
        auth_url: auth_url.clone(),
    };
    let wait = tokio::spawn(register(
        serde_json::json!({"Version": 130, "NodeKey": new_key,
        "OldNodeKey": old_key, "Followup": auth_url.as_str()}),
    ));
    assert_eq!(
        log_in_and_confirm(&s, &p, &again, "sub-alice").await.status,
        200
    );
    let done = tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done["MachineAuthorized"], true, "{done}");
    let snap = s.state.store().load();
    assert_eq!(snap.nodes().count(), 1, "the node is kept, not duplicated");
    let back = snap.nodes().next().unwrap().node.clone();
    assert_eq!(back.id, node.id);
    assert_eq!(back.user_id, node.user_id);
    assert!(
        back.expiry.is_none_or(|e| e > chrono::Utc::now()),
        "expiry cleared or in the future: {:?}",
        back.expiry
    );
}

/// PKCE: against a provider that requires it, a server with `oidc.pkce` (S256) logs in; one
/// without it is sent back with the provider's error and registers nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_is_sent_when_configured_and_a_provider_requiring_it_refuses_without() {
    let client = Client::new(
        "headscale",
        "s3cret-for-tests",
        &format!("{SERVER_URL}/oidc/callback"),
    );
    let mut opts = ProviderOptions::new(client);
    opts.accounts = vec![account(
        "sub-alice",
        "alice",
        "alice@corp.example",
        true,
        &[],
    )];
    opts.pkce_required = true;
    let p = Provider::start(opts).await;

    let with = server(&p, |o| {
        o.pkce.enabled = true;
        o.pkce.method = "S256".into();
    })
    .await;
    let pend = pending(&with, "laptop").await;
    let wait = pend.follow_up();
    assert_eq!(
        log_in_and_confirm(&with, &p, &pend, "sub-alice")
            .await
            .status,
        200
    );
    wait.await.unwrap().unwrap();
    assert_eq!(with.state.store().load().nodes().count(), 1);

    let without = server(&p, |o| o.pkce.enabled = false).await;
    let pend = pending(&without, "desktop").await;
    let mut b = Browser::default();
    let r = b.get(&on(&without, &pend.auth_path())).await;
    let to = r.header("location").unwrap().to_owned();
    assert!(!to.contains("code_challenge"), "{to}");
    let back: url::Url = p.login(&to, "sub-alice").await.unwrap().parse().unwrap();
    assert!(
        back.query().unwrap_or_default().contains("error="),
        "the provider refuses a request without PKCE: {back}"
    );
    let r = b
        .get(&on(
            &without,
            &format!("/oidc/callback?{}", back.query().unwrap()),
        ))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(without.state.store().load().nodes().count(), 0);
}

/// The provider's `groups` claim reaches the policy: a policy group with an
/// `idp-group:eng` member lets alice's node reach bob's while her login says `eng`; when
/// she logs in again without it, access ends; the groups are kept beside the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_provider_groups_grant_access_until_a_login_drops_them() {
    let p = provider(
        vec![
            account(
                "sub-alice",
                "alice",
                "alice@corp.example",
                true,
                &["eng", "staff"],
            ),
            account("sub-bob", "bob", "bob@corp.example", true, &[]),
        ],
        Duration::from_secs(3600),
    )
    .await;
    let s = server(&p, |_| {}).await;
    s.state
        .set_policy_text(
            "test",
            Some(
                r#"{"groups": {"group:eng": ["idp-group:eng"]},
                    "acls": [{"action": "accept", "src": ["group:eng"], "dst": ["bob@corp.example:*"]}]}"#,
            ),
        )
        .await
        .unwrap();
    for (host, sub) in [("alice-laptop", "sub-alice"), ("bob-laptop", "sub-bob")] {
        let pend = pending(&s, host).await;
        let wait = pend.follow_up();
        let done = log_in_and_confirm(&s, &p, &pend, sub).await;
        assert_eq!(done.status, 200, "{}", done.body);
        wait.await.unwrap().unwrap();
    }
    let node_of = |host: &str| {
        s.state
            .store()
            .load()
            .nodes()
            .find(|e| e.node.hostname == host)
            .unwrap()
            .node
            .id
    };
    let (alice_node, bob_node) = (node_of("alice-laptop"), node_of("bob-laptop"));
    let sees = |a, b| s.state.store().load().peers_of(a).any(|e| e.node.id == b);
    let snap = s.state.store().load();
    let alice = snap.users().find(|u| u.name == "alice").unwrap().clone();
    assert_eq!(alice.groups, ["eng", "staff"]);
    assert!(
        sees(alice_node, bob_node),
        "eng at the provider reaches bob"
    );
    let kept = std::fs::read_to_string(s.dir.path().join("oidc_groups.json")).unwrap();
    assert!(kept.contains("\"eng\""), "{kept}");

    // Alice leaves the group at the provider; her next login refreshes it.
    let profile = hs_control::oidc::Profile {
        name: Some("alice".into()),
        email: Some("alice@corp.example".into()),
        display_name: alice.display_name.clone(),
        picture: alice.profile_pic_url.clone(),
        identifier: alice.provider_identifier.clone().unwrap(),
        groups: vec!["staff".into()],
    };
    s.state.oidc_login_user(profile).await.unwrap();
    let mut gone = false;
    for _ in 0..50 {
        if !sees(alice_node, bob_node) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "access ended once her login no longer carried eng");
    let kept = std::fs::read_to_string(s.dir.path().join("oidc_groups.json")).unwrap();
    assert!(!kept.contains("\"eng\""), "{kept}");
}
