//! The pages a person sees, rendered by a real browser: headless Chromium (Debian's
//! `chromium`) loads each page from the whole server in-process at a phone's viewport, a test
//! checks the text the reader needs in the rendered DOM, and a screenshot of each is kept in
//! `$CARGO_TARGET_TMPDIR/pages/` for a human to look at. Chromium is pointed at a closed
//! proxy, so it can reach only the loopback server.

use std::path::{Path, PathBuf};
use std::process::Command;

use hs_testkit::TestServer;

fn chromium() -> Command {
    let mut c = Command::new("chromium");
    c.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        // Anything but loopback goes to a closed port and fails.
        "--proxy-server=http://127.0.0.1:9",
        // An iPhone-sized viewport: the pages must read on a phone.
        "--window-size=390,844",
        "--hide-scrollbars",
    ]);
    c
}

/// The rendered DOM of `url`, and a screenshot of it at `shot`.
fn render(url: &str, shot: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium()
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("running chromium (Debian's chromium package; cargo xtask ci installs it)");
    assert!(
        dom.status.success(),
        "chromium --dump-dom {url}: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let out = chromium()
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success() && shot.is_file(),
        "no screenshot of {url}"
    );
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pages");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_in_chromium_with_what_its_reader_needs() {
    let s = TestServer::start().await;
    let url = s.url.trim_end_matches('/').to_owned();
    // What the pages tell clients: the configured server_url, not the test's port.
    let server_url = s.state.config().server_url.clone();
    let auth_id = "hskey-authreq-PagesPagesPagesPagesPage";
    hs_testkit::pending_registration(&s.state, auth_id, "laptop");
    let dir = artifacts();

    let pages: Vec<(&str, String, Vec<String>)> = vec![
        (
            "windows",
            "/windows".into(),
            vec![
                format!("tailscale login --login-server {server_url}"),
                "LoginURL".into(),
            ],
        ),
        (
            "apple",
            "/apple".into(),
            vec![
                format!("tailscale login --login-server {server_url}"),
                "iPhone and iPad".into(),
            ],
        ),
        (
            "register",
            format!("/register/{auth_id}"),
            vec![format!(
                "headscale auth register --auth-id {auth_id} --user USERNAME"
            )],
        ),
        (
            "register-unknown",
            "/register/hskey-authreq-NobodyNobodyNobodyNobody".into(),
            vec![
                "Registration not found".into(),
                "Run tailscale up again".into(),
            ],
        ),
    ];
    for (name, path, needs) in &pages {
        let page_url = format!("{url}{path}");
        let shot = dir.join(format!("{name}.png"));
        let dom = tokio::task::spawn_blocking(move || render(&page_url, &shot))
            .await
            .unwrap();
        let text = strip_tags(&dom);
        for need in needs {
            assert!(
                text.contains(need.as_str()),
                "{name}: no {need:?} in {text}"
            );
        }
        assert!(
            dom.contains("name=\"viewport\""),
            "{name}: no viewport meta"
        );
    }

    // Approved: the same link now says the machine is in, as a success, not an error.
    let user = s
        .state
        .create_user(hs_testkit::new_user("alice"))
        .await
        .unwrap();
    s.state
        .approve_registration(auth_id, user.id)
        .await
        .unwrap();
    let page_url = format!("{url}/register/{auth_id}");
    let shot = dir.join("register-done.png");
    let dom = tokio::task::spawn_blocking(move || render(&page_url, &shot))
        .await
        .unwrap();
    let text = strip_tags(&dom);
    assert!(text.contains("Machine registered"), "{text}");
    assert!(text.contains("added to the network"), "{text}");
}

/// The visible text of a DOM dump: tags dropped, entities and whitespace normalised.
fn strip_tags(html: &str) -> String {
    let body = html.split("<body>").nth(1).unwrap_or(html);
    let mut out = String::new();
    let mut in_tag = false;
    for ch in body.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
