//! Headscale's CLI and API-authentication scenarios with real nodes (`cli_test.go`,
//! `cli_policy_test.go`, `api_auth_test.go`, one of `acl_test.go`): API keys, node
//! expire/rename, policy get/set/check with good and broken policies, pre-auth key variants,
//! and REST and gRPC requests without, with a wrong, an expired or a deleted key.
//!
//! REST requests are `curl` inside the scenario's namespace. The remote CLI is the `headscale`
//! binary run inside the namespace against `grpc_listen_addr` (127.0.0.1:50443), which the
//! server serves over TLS with its HTTPS certificate, as Headscale's tests run it.

use std::process::Output;

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use crate::eventually::eventually;
use crate::scenarios::{Ctx, Env, Scenario, WAIT, cli_json, two_users_with};
use crate::scenarios_auth::{id_str, list_nodes};
use crate::scenarios_policy::start_http;
use crate::server::KeyOpts;
use crate::tcp::{MARKER, nc_get};

/// This family's scenarios, in the order they run.
pub(crate) const SCENARIOS: &[Scenario] = &[
    ("TestAPIAuthenticationBypass", api_authentication_bypass),
    (
        "TestAPIAuthenticationBypassCurl",
        api_authentication_bypass_curl,
    ),
    ("TestGRPCAuthenticationBypass", grpc_authentication_bypass),
    (
        "TestCLIWithConfigAuthenticationBypass",
        cli_with_config_authentication_bypass,
    ),
    ("TestApiKeyCommand", api_key_command),
    ("TestNodeExpireCommand", node_expire_command),
    ("TestNodeRenameCommand", node_rename_command),
    ("TestPolicyCommand", policy_command),
    (
        "TestPolicyBrokenConfigCommand",
        policy_broken_config_command,
    ),
    (
        "TestPreAuthKeyCommandReusableEphemeral",
        pre_auth_key_reusable_ephemeral,
    ),
    (
        "TestPreAuthKeyCommandWithoutExpiry",
        pre_auth_key_without_expiry,
    ),
    (
        "TestPreAuthKeyCorrectUserLoggedInCommand",
        pre_auth_key_correct_user_logged_in,
    ),
    ("TestPolicyCheckCommand", policy_check_command),
    (
        "TestSSHTestsRejectFailingPolicy",
        ssh_tests_reject_failing_policy,
    ),
    (
        "TestPolicyUpdateWhileRunningWithCLIInDatabase",
        policy_update_while_running_cli_in_database,
    ),
];

/// Where the server serves remote gRPC inside the namespace (`grpc_listen_addr`).
const GRPC_ADDR: &str = "127.0.0.1:50443";
/// The user id tagged nodes are shown under (Headscale's `tagged-devices`).
const TAGGED_DEVICES_ID: u64 = 2_147_455_555;
/// The zero `time.Time` as a protobuf timestamp (Go's `timestamppb.New(time.Time{})`).
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// The wall clock in Unix seconds, to compare expirations against.
#[allow(
    clippy::disallowed_methods,
    reason = "the harness compares expirations the server set with the wall clock"
)]
fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A protobuf timestamp as the CLI's `-o json` prints it (`{"seconds", "nanos"}`), in Unix
/// seconds; `None` when absent.
fn ts_secs(v: &Value) -> Option<i64> {
    if v.is_null() {
        return None;
    }
    Some(v["seconds"].as_i64().unwrap_or(0))
}

/// The CLI's JSON list (`null` for none) as a vector.
fn json_list(v: Value, what: &str) -> anyhow::Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Null => Ok(Vec::new()),
        other => bail!("{what} is not a list: {other}"),
    }
}

/// `headscale apikeys create --expiration 24h`: the key, as printed.
fn create_api_key(e: &Env, ctx: &Ctx) -> anyhow::Result<String> {
    let key = e
        .server
        .cli(
            &ctx.server_bin,
            &["apikeys", "create", "--expiration", "24h"],
        )?
        .trim()
        .to_owned();
    ensure!(
        key.starts_with("hskey-api-"),
        "apikeys create printed {key:?}, not an API key"
    );
    Ok(key)
}

/// The prefix `apikeys list` shows for a key (`hskey-api-<prefix>-<secret>`).
fn api_key_prefix(key: &str) -> anyhow::Result<String> {
    key.strip_prefix("hskey-api-")
        .and_then(|r| r.split_once('-'))
        .map(|(p, _)| p.to_owned())
        .with_context(|| format!("{key:?} has no prefix"))
}

/// `curl` inside the namespace (trusting the scenario's CA when TLS is on): the status code
/// and the body, split the way Headscale's test splits `-w '\nHTTP_CODE:%{http_code}'`.
fn curl(e: &Env, url: &str, headers: &[&str]) -> anyhow::Result<(u16, String)> {
    let mut cmd = e.ns.command("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "30",
        "--noproxy",
        "*",
        "-w",
        "\nHTTP_CODE:%{http_code}",
    ]);
    if let Some(ca) = e.server.tls_root() {
        cmd.arg("--cacert").arg(ca);
    }
    for h in headers {
        cmd.arg("-H").arg(h);
    }
    cmd.arg(url);
    let out = cmd
        .output()
        .context("running curl in the namespace (is curl installed?)")?;
    ensure!(
        out.status.success(),
        "curl {url} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut code = None;
    let mut body = String::new();
    for line in text.split('\n') {
        match line.strip_prefix("HTTP_CODE:") {
            Some(c) => code = c.trim().parse::<u16>().ok(),
            None => body.push_str(line),
        }
    }
    let code = code.with_context(|| format!("curl {url}: no status code in {text:?}"))?;
    Ok((code, body))
}

/// A refused REST request: 401, a short body saying "Unauthorized", and none of `users`.
fn expect_unauthorized(e: &Env, url: &str, headers: &[&str], users: &[&str]) -> anyhow::Result<()> {
    let shown = if headers.is_empty() {
        "no Authorization header".to_owned()
    } else {
        headers.join("; ")
    };
    let (code, body) = curl(e, url, headers)?;
    ensure!(
        code == 401,
        "GET {url} with {shown}: status {code}, want 401 (body {body:?})"
    );
    ensure!(
        body.contains("Unauthorized"),
        "GET {url} with {shown}: the 401 body does not say Unauthorized: {body:?}"
    );
    for u in users {
        ensure!(
            !body.contains(u),
            "GET {url} with {shown}: the 401 leaks user {u}: {body:?}"
        );
    }
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&body) {
        ensure!(
            !m.contains_key("users") && !m.contains_key("user"),
            "GET {url} with {shown}: the 401 carries user data: {body}"
        );
    }
    ensure!(
        body.len() < 100,
        "GET {url} with {shown}: the 401 body should be minimal, got {} bytes: {body:?}",
        body.len()
    );
    Ok(())
}

/// An accepted `GET /api/v1/user`: 200 and exactly `users` by name.
fn expect_users(e: &Env, url: &str, key: &str, users: &[&str]) -> anyhow::Result<()> {
    let (code, body) = curl(e, url, &[&format!("Authorization: Bearer {key}")])?;
    ensure!(
        code == 200,
        "GET {url} with a valid API key: status {code}, want 200 (body {body:?})"
    );
    let v: Value = serde_json::from_str(&body)
        .with_context(|| format!("GET {url}: the answer is not JSON: {body:?}"))?;
    let mut got: Vec<String> = v["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["name"].as_str().map(str::to_owned))
        .collect();
    got.sort();
    ensure!(
        got == users,
        "GET {url}: users {got:?}, want {users:?}: {body}"
    );
    Ok(())
}

/// An environment with no clients, users `users` and the server started (TLS when `tls`).
fn users_env(ctx: &Ctx, name: &str, users: &[&str], tls: bool) -> anyhow::Result<Env> {
    let mut e = Env::new(ctx, name, true)?;
    for u in users {
        e.server.create_user(u)?;
    }
    if tls {
        e.server.enable_tls()?;
    }
    e.start_server(ctx)?;
    Ok(e)
}

/// A key that was valid and was then expired, and one that was then deleted (`apikeys expire`
/// and `apikeys delete` by prefix).
fn expired_and_deleted_keys(e: &Env, ctx: &Ctx) -> anyhow::Result<(String, String)> {
    let expired = create_api_key(e, ctx)?;
    e.server.cli(
        &ctx.server_bin,
        &["apikeys", "expire", "--prefix", &api_key_prefix(&expired)?],
    )?;
    let deleted = create_api_key(e, ctx)?;
    e.server.cli(
        &ctx.server_bin,
        &["apikeys", "delete", "--prefix", &api_key_prefix(&deleted)?],
    )?;
    Ok((expired, deleted))
}

/// `TestAPIAuthenticationBypass`: `/api/v1/user` over HTTPS answers 401 with a bare
/// "Unauthorized" and no user data without a key, with a malformed header and with a wrong
/// bearer token (and, beyond Headscale's test, with an expired and a deleted key); with a
/// valid key it lists the three users.
fn api_authentication_bypass(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let users = ["user1", "user2", "user3"];
    let e = users_env(ctx, name, &users, true)?;
    let key = create_api_key(&e, ctx)?;
    let url = format!("{}/api/v1/user", e.server.url());
    ensure!(
        url.starts_with("https://"),
        "the server should serve TLS: {url}"
    );
    expect_unauthorized(&e, &url, &[], &users)?;
    expect_unauthorized(&e, &url, &["Authorization: InvalidToken"], &users)?;
    expect_unauthorized(
        &e,
        &url,
        &["Authorization: Bearer invalid-token-12345"],
        &users,
    )?;
    let (expired, deleted) = expired_and_deleted_keys(&e, ctx)?;
    expect_unauthorized(
        &e,
        &url,
        &[&format!("Authorization: Bearer {expired}")],
        &users,
    )
    .context("an expired API key")?;
    expect_unauthorized(
        &e,
        &url,
        &[&format!("Authorization: Bearer {deleted}")],
        &users,
    )
    .context("a deleted API key")?;
    expect_users(&e, &url, &key, &users)?;
    Ok(())
}

/// `TestAPIAuthenticationBypassCurl`: the same with curl against a plain-HTTP listener: 401
/// and "Unauthorized" without a key and with a malformed header, 200 and both users with a
/// valid key.
fn api_authentication_bypass_curl(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let users = ["testuser1", "testuser2"];
    let e = users_env(ctx, name, &users, false)?;
    let key = create_api_key(&e, ctx)?;
    let url = format!("{}/api/v1/user", e.server.url());
    ensure!(
        url.starts_with("http://"),
        "the server should serve plain HTTP: {url}"
    );
    expect_unauthorized(&e, &url, &[], &users)?;
    expect_unauthorized(&e, &url, &["Authorization: InvalidToken"], &users)?;
    expect_users(&e, &url, &key, &users)?;
    Ok(())
}

/// Runs the `headscale` CLI inside the namespace with only `env` to find the server (no
/// config file of the scenario's, no `HEADSCALE_CLI_*` from the harness's environment).
fn remote_cli(
    e: &Env,
    ctx: &Ctx,
    config: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> anyhow::Result<Output> {
    let mut cmd = e.ns.command(&ctx.server_bin.display().to_string());
    cmd.arg("--config").arg(config).args(args);
    for k in [
        "HEADSCALE_CONFIG",
        "HEADSCALE_CLI_ADDRESS",
        "HEADSCALE_CLI_API_KEY",
        "HEADSCALE_CLI_INSECURE",
        "HEADSCALE_CLI_TIMEOUT",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(std::process::Stdio::null());
    cmd.output()
        .with_context(|| format!("running headscale {} in the namespace", args.join(" ")))
}

/// Stdout and stderr together, as `2>&1` gives them.
fn combined(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The remote CLI must have failed, saying why (`needle`, lowercase, when given), without
/// any of `users` in its output.
fn expect_cli_refused(
    out: &Output,
    what: &str,
    needles: &[&str],
    users: &[&str],
) -> anyhow::Result<()> {
    let text = combined(out);
    ensure!(
        !out.status.success(),
        "{what}: the CLI succeeded, it must be refused: {text}"
    );
    let lower = text.to_lowercase();
    ensure!(
        needles.is_empty() || needles.iter().any(|n| lower.contains(n)),
        "{what}: the error should say one of {needles:?}: {text}"
    );
    for u in users {
        ensure!(
            !text.contains(u),
            "{what}: the output leaks user {u}: {text}"
        );
    }
    Ok(())
}

/// The remote CLI's `users list -o json` succeeded and lists exactly `users`.
fn expect_cli_users(out: &Output, what: &str, users: &[&str]) -> anyhow::Result<()> {
    ensure!(
        out.status.success(),
        "{what}: the CLI failed ({}): {}",
        out.status,
        combined(out)
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{what}: not JSON: {}", combined(out)))?;
    let mut got: Vec<String> = json_list(v, "users list")?
        .iter()
        .filter_map(|u| u["name"].as_str().map(str::to_owned))
        .collect();
    got.sort();
    ensure!(got == users, "{what}: users {got:?}, want {users:?}");
    Ok(())
}

/// What an authentication failure says (Headscale's test accepts any of these).
const AUTH_WORDS: &[&str] = &[
    "unauthenticated",
    "invalid token",
    "validating token",
    "authentication",
];

/// `TestGRPCAuthenticationBypass`: the remote CLI (`HEADSCALE_CLI_ADDRESS` to the TLS gRPC
/// listener, `HEADSCALE_CLI_INSECURE=true`) fails without an API key, fails with an
/// authentication error and no user data with a wrong key (and, beyond Headscale's test,
/// with an expired and a deleted key), and lists both users with a valid key; beyond it too,
/// the same valid key works with the server's certificate verified against the scenario's CA
/// instead of `insecure`, and the REST gateway on the gRPC port refuses a request without a key.
fn grpc_authentication_bypass(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let users = ["grpcuser1", "grpcuser2"];
    let e = users_env(ctx, name, &users, true)?;
    let key = create_api_key(&e, ctx)?;
    let (expired, deleted) = expired_and_deleted_keys(&e, ctx)?;
    // Only the environment names the server; the file just sets a timeout for a loaded host.
    let config = e.dir.join("cli-env-only.yaml");
    std::fs::write(&config, "cli:\n  timeout: 30s\n").context("writing the CLI config")?;
    let list = ["users", "list", "--output", "json"];
    let base = [
        ("HEADSCALE_CLI_ADDRESS", GRPC_ADDR),
        ("HEADSCALE_CLI_INSECURE", "true"),
    ];
    let with_key = |k: &str| -> anyhow::Result<Output> {
        let mut env = base.to_vec();
        env.push(("HEADSCALE_CLI_API_KEY", k));
        remote_cli(&e, ctx, &config, &env, &list)
    };
    let out = remote_cli(&e, ctx, &config, &base, &list)?;
    expect_cli_refused(&out, "remote CLI without an API key", &["api key"], &users)?;
    expect_cli_refused(
        &with_key("invalid-key-12345")?,
        "remote CLI with an invalid API key",
        AUTH_WORDS,
        &users,
    )?;
    expect_cli_refused(
        &with_key(&expired)?,
        "remote CLI with an expired API key",
        AUTH_WORDS,
        &users,
    )?;
    expect_cli_refused(
        &with_key(&deleted)?,
        "remote CLI with a deleted API key",
        AUTH_WORDS,
        &users,
    )?;
    expect_cli_users(&with_key(&key)?, "remote CLI with a valid API key", &users)?;
    let ca = e
        .server
        .tls_root()
        .context("the server has no CA")?
        .display()
        .to_string();
    let verified = remote_cli(
        &e,
        ctx,
        &config,
        &[
            ("HEADSCALE_CLI_ADDRESS", GRPC_ADDR),
            ("HEADSCALE_CLI_API_KEY", &key),
            ("SSL_CERT_FILE", &ca),
        ],
        &list,
    )?;
    expect_cli_users(
        &verified,
        "remote CLI verifying the server's certificate against the scenario's CA",
        &users,
    )?;
    let url = format!("https://{GRPC_ADDR}/api/v1/user");
    expect_unauthorized(&e, &url, &[], &users).context("REST on the gRPC port")?;
    expect_users(&e, &url, &key, &users).context("REST on the gRPC port")?;
    Ok(())
}

/// `TestCLIWithConfigAuthenticationBypass`: the remote CLI configured by a file holding only
/// a `cli:` section (address, timeout, `insecure: true`) fails without `api_key`, fails with
/// an authentication error and no user data with a wrong one, and lists both users with a
/// valid one.
fn cli_with_config_authentication_bypass(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let users = ["cliuser1", "cliuser2"];
    let e = users_env(ctx, name, &users, true)?;
    let key = create_api_key(&e, ctx)?;
    let write = |file: &str, key_line: &str| -> anyhow::Result<std::path::PathBuf> {
        let p = e.dir.join(file);
        std::fs::write(
            &p,
            format!("cli:\n  address: {GRPC_ADDR}\n{key_line}  timeout: 30s\n  insecure: true\n"),
        )
        .with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    };
    let list = ["users", "list", "--output", "json"];
    let no_key = write("config_no_key.yaml", "")?;
    let out = remote_cli(&e, ctx, &no_key, &[], &list)?;
    expect_cli_refused(&out, "CLI config without api_key", &[], &users)?;
    let bad = write("config_invalid_key.yaml", "  api_key: invalid-key-12345\n")?;
    let out = remote_cli(&e, ctx, &bad, &[], &list)?;
    expect_cli_refused(
        &out,
        "CLI config with an invalid api_key",
        AUTH_WORDS,
        &users,
    )?;
    let good = write("config_valid_key.yaml", &format!("  api_key: {key}\n"))?;
    let out = remote_cli(&e, ctx, &good, &[], &list)?;
    expect_cli_users(&out, "CLI config with a valid api_key", &users)?;
    Ok(())
}

/// `headscale apikeys list -o json`.
fn list_api_keys(e: &Env, ctx: &Ctx) -> anyhow::Result<Vec<Value>> {
    json_list(cli_json(e, ctx, &["apikeys", "list"])?, "apikeys list")
}

/// `TestApiKeyCommand`: five keys with 24 h expiry are listed with ids 1-5, prefixes and
/// expirations within 26 h; three expired by prefix are in the past and the others not;
/// deleting one by prefix leaves four; expiring one by id puts it in the past; deleting one by
/// id leaves three without it.
fn api_key_command(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let e = users_env(ctx, name, &["user1", "user2"], false)?;
    for _ in 0..5 {
        let out = e.server.cli(
            &ctx.server_bin,
            &[
                "apikeys",
                "create",
                "--expiration",
                "24h",
                "--output",
                "json",
            ],
        )?;
        ensure!(
            !out.trim().is_empty(),
            "apikeys create -o json printed nothing"
        );
    }
    let listed = list_api_keys(&e, ctx)?;
    ensure!(
        listed.len() == 5,
        "apikeys list shows {} keys, want 5",
        listed.len()
    );
    let now = now_secs();
    for (i, k) in listed.iter().enumerate() {
        ensure!(
            k["id"].as_u64() == Some(i as u64 + 1),
            "key {i} has id {}, want {}",
            k["id"],
            i + 1
        );
        ensure!(
            k["prefix"].as_str().is_some_and(|p| !p.is_empty()),
            "key {} has no prefix: {k}",
            k["id"]
        );
        let exp = ts_secs(&k["expiration"]).with_context(|| format!("no expiration: {k}"))?;
        ensure!(
            exp > now && exp < now + 26 * 3600,
            "key {} expires at {exp}, want within 26 h of now ({now})",
            k["id"]
        );
    }
    let prefix = |k: &Value| k["prefix"].as_str().unwrap_or_default().to_owned();
    let expired: Vec<String> = listed[..3].iter().map(prefix).collect();
    for p in &expired {
        e.server
            .cli(&ctx.server_bin, &["apikeys", "expire", "--prefix", p])?;
    }
    let now = now_secs();
    for k in list_api_keys(&e, ctx)? {
        let exp = ts_secs(&k["expiration"]).unwrap_or(i64::MAX);
        if expired.contains(&prefix(&k)) {
            ensure!(
                exp <= now,
                "key {} was expired but expires at {exp} (now {now})",
                prefix(&k)
            );
        } else {
            ensure!(
                exp > now,
                "key {} was not expired but expires at {exp} (now {now})",
                prefix(&k)
            );
        }
    }
    e.server.cli(
        &ctx.server_bin,
        &["apikeys", "delete", "--prefix", &expired[0]],
    )?;
    let after_delete = list_api_keys(&e, ctx)?;
    ensure!(
        after_delete.len() == 4,
        "after deleting {} by prefix: {} keys, want 4",
        expired[0],
        after_delete.len()
    );
    let by_id = id_str(&after_delete[0]["id"]).context("listed key without id")?;
    e.server
        .cli(&ctx.server_bin, &["apikeys", "expire", "--id", &by_id])?;
    let after_expire = list_api_keys(&e, ctx)?;
    let now = now_secs();
    let k = after_expire
        .iter()
        .find(|k| id_str(&k["id"]).as_deref() == Some(by_id.as_str()))
        .with_context(|| format!("key {by_id} vanished after expire --id"))?;
    let exp = ts_secs(&k["expiration"]).unwrap_or(i64::MAX);
    ensure!(
        exp <= now,
        "key {by_id} expired by id still expires at {exp} (now {now})"
    );
    let gone = id_str(&after_expire[1]["id"]).context("listed key without id")?;
    e.server
        .cli(&ctx.server_bin, &["apikeys", "delete", "--id", &gone])?;
    let last = list_api_keys(&e, ctx)?;
    ensure!(
        last.len() == 3,
        "after deleting {gone} by id: {} keys, want 3",
        last.len()
    );
    ensure!(
        last.iter()
            .all(|k| id_str(&k["id"]).as_deref() != Some(gone.as_str())),
        "key {gone} is still listed after delete --id"
    );
    Ok(())
}

/// A fresh auth id in Headscale 0.29's form (`hskey-authreq-` and 24 characters).
fn auth_id() -> String {
    use rand::Rng as _;
    let tail: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("hskey-authreq-{tail}")
}

/// Five nodes `node-1` … `node-5` for `user`, each a `debug create-node` registration
/// approved with `auth register`, as Headscale's tests make them; returns `nodes list`.
fn five_debug_nodes(e: &Env, ctx: &Ctx, user: &str) -> anyhow::Result<Vec<Value>> {
    for i in 1..=5 {
        let id = auth_id();
        let node_name = format!("node-{i}");
        e.server.cli(
            &ctx.server_bin,
            &[
                "debug",
                "create-node",
                "--name",
                &node_name,
                "--user",
                user,
                "--key",
                &id,
                "--output",
                "json",
            ],
        )?;
        let node = cli_json(
            e,
            ctx,
            &["auth", "register", "--user", user, "--auth-id", &id],
        )?;
        ensure!(
            node["name"] == node_name.as_str(),
            "auth register for {node_name} returned {node}"
        );
    }
    let all = list_nodes(e, ctx, None)?;
    ensure!(
        all.len() == 5,
        "nodes list shows {} nodes, want 5",
        all.len()
    );
    Ok(all)
}

/// A node's expiry is unset: absent, or Go's zero time (both mean "never expires").
fn no_expiry(n: &Value) -> bool {
    ts_secs(&n["expiry"]).is_none_or(|s| s == GO_ZERO_TIME_SECONDS)
}

/// `TestNodeExpireCommand`: five registered nodes have no expiry (`node.expiry` is 0);
/// `nodes expire` on the first three puts their expiry in the past and leaves the other two
/// without one.
fn node_expire_command(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let user = "node-expire-user";
    let e = users_env(ctx, name, &[user], false)?;
    let all = five_debug_nodes(&e, ctx, user)?;
    for n in &all {
        ensure!(
            no_expiry(n),
            "node {} should have no expiry: {}",
            n["name"],
            n["expiry"]
        );
    }
    for n in &all[..3] {
        let id = id_str(&n["id"]).context("node without id")?;
        e.server
            .cli(&ctx.server_bin, &["nodes", "expire", "--identifier", &id])?;
    }
    let after = list_nodes(&e, ctx, None)?;
    ensure!(
        after.len() == 5,
        "nodes list shows {} nodes after expiry",
        after.len()
    );
    let now = now_secs();
    for n in &after[..3] {
        let exp = ts_secs(&n["expiry"]).filter(|s| *s != GO_ZERO_TIME_SECONDS);
        ensure!(
            exp.is_some_and(|s| s <= now),
            "node {} was expired but its expiry is {} (now {now})",
            n["name"],
            n["expiry"]
        );
    }
    for n in &after[3..] {
        ensure!(
            no_expiry(n),
            "node {} was not expired but has expiry {}",
            n["name"],
            n["expiry"]
        );
    }
    Ok(())
}

/// The given names in `nodes list` order.
fn given_names(nodes: &[Value]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| n["given_name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `TestNodeRenameCommand`: five nodes named `node-1` … `node-5`; renaming the first three
/// prints "Node renamed" and lists them as `newnode-1` … `newnode-3`; a 64-character name is
/// refused with "is too long, max length is 63 bytes" and changes nothing.
fn node_rename_command(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let user = "node-rename-command";
    let e = users_env(ctx, name, &[user], false)?;
    let all = five_debug_nodes(&e, ctx, user)?;
    let names = given_names(&all);
    for (i, g) in names.iter().enumerate() {
        ensure!(
            g.contains(&format!("node-{}", i + 1)),
            "given names {names:?}"
        );
    }
    for (i, n) in all[..3].iter().enumerate() {
        let id = id_str(&n["id"]).context("node without id")?;
        let out = e.server.cli(
            &ctx.server_bin,
            &[
                "nodes",
                "rename",
                "--identifier",
                &id,
                &format!("newnode-{}", i + 1),
            ],
        )?;
        ensure!(out.contains("Node renamed"), "nodes rename printed {out:?}");
    }
    let check = |nodes: &[Value], when: &str| -> anyhow::Result<()> {
        let g = given_names(nodes);
        ensure!(
            g.len() == 5
                && g[..3] == ["newnode-1", "newnode-2", "newnode-3"]
                && g[3].contains("node-4")
                && g[4].contains("node-5"),
            "{when}: given names {g:?}"
        );
        Ok(())
    };
    check(&list_nodes(&e, ctx, None)?, "after renaming three nodes")?;
    let id = id_str(&all[4]["id"]).context("node without id")?;
    let long = "t".repeat(64);
    match e.server.cli(
        &ctx.server_bin,
        &["nodes", "rename", "--identifier", &id, &long],
    ) {
        Ok(out) => bail!("renaming to a 64-character name succeeded: {out}"),
        Err(err) => {
            let msg = format!("{err:#}");
            ensure!(
                msg.contains("is too long, max length is 63 bytes"),
                "the refusal should say the name is too long: {msg}"
            );
        }
    }
    check(&list_nodes(&e, ctx, None)?, "after the refused rename")?;
    Ok(())
}

/// Writes `text` into the scenario's directory and returns the path.
fn write_file(e: &Env, file: &str, text: &str) -> anyhow::Result<String> {
    let p = e.dir.join(file);
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    Ok(p.display().to_string())
}

/// An environment with no clients, `users`, the policy kept in the database and the server
/// started.
fn database_policy_env(ctx: &Ctx, name: &str, users: &[&str]) -> anyhow::Result<Env> {
    let mut e = Env::new(ctx, name, true)?;
    for u in users {
        e.server.create_user(u)?;
    }
    e.server.set_policy_database_mode()?;
    e.start_server(ctx)?;
    Ok(e)
}

/// `TestPolicyCommand`: with the policy in the database, `policy set -f` stores a policy with
/// one ACL and one tag owner, and `policy get -o json` returns it with one of each.
fn policy_command(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let e = database_policy_env(ctx, name, &["user1"])?;
    let policy = r#"{"tagOwners":{"tag:exists":["user1@"]},"acls":[{"action":"accept","proto":"tcp","src":["*"],"dst":["*:*"]}]}"#;
    let path = write_file(&e, "policy.json", policy)?;
    e.server
        .cli(&ctx.server_bin, &["policy", "set", "-f", &path])?;
    let got = cli_json(&e, ctx, &["policy", "get"])?;
    let owners = got["tagOwners"].as_object().map_or(0, serde_json::Map::len);
    let acls = got["acls"].as_array().map_or(0, Vec::len);
    ensure!(
        owners == 1 && acls == 1,
        "policy get: {owners} tag owners and {acls} ACLs, want 1 and 1: {got}"
    );
    Ok(())
}

/// `TestPolicyBrokenConfigCommand`: a policy with an unknown ACL action is refused naming it,
/// and no policy is stored. The refusal is worded as Tailscale's hosted service words it
/// (`action="…" is not supported`, in the conformance corpus); Go Headscale appends
/// `: invalid ACL action`, which is not checked here (docs/policy.md).
fn policy_broken_config_command(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, _) = two_users_with(ctx, name, 1, KeyOpts::default(), &[], true, &|e| {
        e.server.set_policy_database_mode()
    })?;
    e.alive()?;
    let policy = r#"{"tagOwners":{"tag:exists":["user1@"]},"acls":[{"action":"unknown-action","proto":"tcp","src":["*"],"dst":["*:*"]}]}"#;
    let path = write_file(&e, "policy.json", policy)?;
    match e
        .server
        .cli(&ctx.server_bin, &["policy", "set", "-f", &path])
    {
        Ok(out) => bail!("a policy with action unknown-action was stored: {out}"),
        Err(err) => {
            let msg = format!("{err:#}");
            ensure!(
                msg.contains(r#"action="unknown-action" is not supported"#),
                "the refusal should name the unsupported action: {msg}"
            );
        }
    }
    match e
        .server
        .cli(&ctx.server_bin, &["policy", "get", "--output", "json"])
    {
        Ok(out) => bail!("policy get found a policy after the refused set: {out}"),
        Err(err) => {
            let msg = format!("{err:#}");
            ensure!(
                msg.contains("acl policy not found"),
                "policy get should say no policy is stored: {msg}"
            );
        }
    }
    Ok(())
}

/// A user with one pre-auth key made through the CLI, as Headscale's scenario setup makes
/// one per user; returns the user's id.
fn user_with_one_key(e: &Env, ctx: &Ctx, user: &str) -> anyhow::Result<String> {
    let u = cli_json(e, ctx, &["users", "create", user])?;
    let uid = id_str(&u["id"]).with_context(|| format!("users create: no id in {u}"))?;
    cli_json(
        e,
        ctx,
        &[
            "preauthkeys",
            "create",
            "--user",
            &uid,
            "--reusable",
            "--expiration",
            "24h",
        ],
    )?;
    Ok(uid)
}

/// `headscale preauthkeys list -o json`.
fn list_keys(e: &Env, ctx: &Ctx) -> anyhow::Result<Vec<Value>> {
    json_list(
        cli_json(e, ctx, &["preauthkeys", "list"])?,
        "preauthkeys list",
    )
}

/// `TestPreAuthKeyCommandReusableEphemeral`: `preauthkeys --user 1 create --reusable=true`
/// and `--ephemeral=true` (Go's flag forms) make a reusable and an ephemeral, non-reusable
/// key; with the setup's key, three are listed.
fn pre_auth_key_reusable_ephemeral(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = Env::new(ctx, name, true)?;
    e.start_server(ctx)?;
    let uid = user_with_one_key(&e, ctx, "pre-auth-key-reus-ephm-user")?;
    let reusable = cli_json(
        &e,
        ctx,
        &["preauthkeys", "--user", &uid, "create", "--reusable=true"],
    )?;
    ensure!(
        reusable["reusable"] == true,
        "--reusable=true made {reusable}"
    );
    let ephemeral = cli_json(
        &e,
        ctx,
        &["preauthkeys", "--user", &uid, "create", "--ephemeral=true"],
    )?;
    ensure!(
        ephemeral["ephemeral"] == true && !ephemeral["reusable"].as_bool().unwrap_or(false),
        "--ephemeral=true should make an ephemeral, non-reusable key: {ephemeral}"
    );
    let n = list_keys(&e, ctx)?.len();
    ensure!(n == 3, "preauthkeys list shows {n} keys, want 3");
    Ok(())
}

/// `TestPreAuthKeyCommandWithoutExpiry`: a key made without `--expiration` is listed (beside
/// the setup's) with an expiry in the future and within 70 minutes (the 1 h default).
fn pre_auth_key_without_expiry(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = Env::new(ctx, name, true)?;
    e.start_server(ctx)?;
    let uid = user_with_one_key(&e, ctx, "pre-auth-key-without-exp-user")?;
    cli_json(
        &e,
        ctx,
        &["preauthkeys", "--user", &uid, "create", "--reusable"],
    )?;
    let keys = list_keys(&e, ctx)?;
    ensure!(
        keys.len() == 2,
        "preauthkeys list shows {} keys, want 2",
        keys.len()
    );
    let now = now_secs();
    let exp = ts_secs(&keys[1]["expiration"])
        .with_context(|| format!("the key has no expiration: {}", keys[1]))?;
    ensure!(
        exp > now && exp < now + 70 * 60,
        "the key expires at {exp}, want within 70 minutes of now ({now})"
    );
    Ok(())
}

/// `TestPreAuthKeyCorrectUserLoggedInCommand`: user1's node logs out and back in with a
/// reusable key of user2 carrying tags `tag:test1,tag:test2`: it runs as the tagged-devices
/// user, and `nodes list` then has user1's old node and a new node owned by `tagged-devices`.
fn pre_auth_key_correct_user_logged_in(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let mut e = Env::new(ctx, name, true)?;
    let u1 = e.server.create_user("user1")?;
    let key1 = e.server.create_key(u1, KeyOpts::default())?;
    e.start_server(ctx)?;
    e.add_client("u1-n1", &[])?;
    e.clients[0].up(&key1)?;
    e.wait_running()?;
    let u2 = cli_json(&e, ctx, &["users", "create", "user2"])?;
    let u2 = id_str(&u2["id"]).context("users create: no id")?;
    let key2 = cli_json(
        &e,
        ctx,
        &[
            "preauthkeys",
            "--user",
            &u2,
            "create",
            "--reusable",
            "--expiration",
            "24h",
            "--tags",
            "tag:test1,tag:test2",
        ],
    )?;
    let key2 = key2["key"]
        .as_str()
        .with_context(|| format!("no key in {key2}"))?
        .to_owned();
    eventually("one node, owned by user1", WAIT, || {
        e.alive()?;
        let nodes = list_nodes(&e, ctx, None)?;
        ensure!(
            nodes.len() == 1 && nodes[0]["user"]["name"] == "user1",
            "nodes list: {nodes:?}"
        );
        Ok(())
    })?;
    e.logout_all()?;
    e.clients[0].up(&key2)?;
    eventually("u1-n1 runs as the tagged-devices user", WAIT, || {
        e.alive()?;
        let st = e.clients[0].status()?;
        let state = st["BackendState"].as_str().unwrap_or_default();
        let uid = st["Self"]["UserID"].as_u64();
        ensure!(
            state == "Running" && uid == Some(TAGGED_DEVICES_ID),
            "BackendState {state:?}, Self.UserID {uid:?} (want Running and {TAGGED_DEVICES_ID})"
        );
        Ok(())
    })?;
    eventually("user1's node and a tagged node", WAIT, || {
        e.alive()?;
        let nodes = list_nodes(&e, ctx, None)?;
        let owners: Vec<&str> = nodes
            .iter()
            .map(|n| n["user"]["name"].as_str().unwrap_or_default())
            .collect();
        ensure!(
            owners == ["user1", "tagged-devices"],
            "node owners {owners:?}, want [user1, tagged-devices]"
        );
        Ok(())
    })?;
    Ok(())
}

/// The ACL `policy check` fixtures: user1 may reach user2 on port 22, alone, with a test that
/// holds, and with one that fails (the reverse direction).
const CHECK_FIXTURES: [(&str, &str, bool); 3] = [
    (
        "acl-only",
        r#"{"acls":[{"action":"accept","proto":"tcp","src":["user1@"],"dst":["user2@:22"]}]}"#,
        true,
    ),
    (
        "acl-plus-passing-tests",
        r#"{"acls":[{"action":"accept","proto":"tcp","src":["user1@"],"dst":["user2@:22"]}],"tests":[{"src":"user1@","accept":["user2@:22"]}]}"#,
        true,
    ),
    (
        "acl-plus-failing-tests",
        r#"{"acls":[{"action":"accept","proto":"tcp","src":["user1@"],"dst":["user2@:22"]}],"tests":[{"src":"user2@","accept":["user1@:22"]}]}"#,
        false,
    ),
];

/// `TestPolicyCheckCommand`: for the server in file and in database mode (one environment
/// each, user1 and user2 with a node each), `policy check -f` through the server and with
/// `--bypass-grpc-and-access-database-directly --force` says "Policy is valid" for the ACL
/// alone and with a passing test, and fails with "test(s) failed" for a failing test.
fn policy_check_command(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    for mode in ["file", "database"] {
        let env_name = format!("{name}-{mode}");
        let (mut e, _) = two_users_with(ctx, &env_name, 1, KeyOpts::default(), &[], true, &|e| {
            if mode == "database" {
                e.server.set_policy_database_mode()
            } else {
                Ok(())
            }
        })?;
        for (fixture, policy, valid) in CHECK_FIXTURES {
            let path = write_file(&e, &format!("{fixture}.json"), policy)?;
            for bypass in [false, true] {
                e.alive()?;
                let row = format!(
                    "{mode}-{fixture}-{}",
                    if bypass { "bypass" } else { "no-bypass" }
                );
                let mut args = vec!["policy", "check", "-f", path.as_str()];
                if bypass {
                    args.extend(["--bypass-grpc-and-access-database-directly", "--force"]);
                }
                match (e.server.cli(&ctx.server_bin, &args), valid) {
                    (Ok(out), true) => ensure!(
                        out.contains("Policy is valid"),
                        "{row}: policy check printed {out:?}"
                    ),
                    (Ok(out), false) => bail!("{row}: a failing test passed the check: {out}"),
                    (Err(err), true) => bail!("{row}: policy check failed: {err:#}"),
                    (Err(err), false) => {
                        let msg = format!("{err:#}");
                        ensure!(
                            msg.contains("test(s) failed"),
                            "{row}: the failure should say test(s) failed: {msg}"
                        );
                    }
                }
                println!("  {name}: {row} as expected");
            }
        }
    }
    Ok(())
}

/// `TestSSHTestsRejectFailingPolicy`: a policy whose `sshTests` hold is stored and served
/// back as stored; one whose `sshTests` fail (user2 is not admitted) is refused with
/// "test(s) failed" and the stored policy stays the good one.
fn ssh_tests_reject_failing_policy(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (e, _) = two_users_with(ctx, name, 1, KeyOpts::default(), &[], true, &|e| {
        e.server.set_policy_database_mode()
    })?;
    let good = r#"{"ssh":[{"action":"accept","src":["user1@"],"dst":["autogroup:member"],"users":["root"]}],"sshTests":[{"src":"user1@","dst":["autogroup:member"],"accept":["root"]}]}"#;
    let bad = r#"{"ssh":[{"action":"accept","src":["user1@"],"dst":["autogroup:member"],"users":["root"]}],"sshTests":[{"src":"user2@","dst":["autogroup:member"],"accept":["root"]}]}"#;
    let good_path = write_file(&e, "policy-good.json", good)?;
    let bad_path = write_file(&e, "policy-bad.json", bad)?;
    let want: Value = serde_json::from_str(good).context("the good policy")?;
    e.server
        .cli(&ctx.server_bin, &["policy", "set", "-f", &good_path])
        .context("setting the good policy must succeed")?;
    let get = |when: &str| -> anyhow::Result<()> {
        let out = e.server.cli(&ctx.server_bin, &["policy", "get"])?;
        let got: Value = serde_json::from_str(&out)
            .with_context(|| format!("{when}: policy get is not JSON: {out}"))?;
        ensure!(
            got == want,
            "{when}: policy get returned {got}, want {want}"
        );
        Ok(())
    };
    get("after the good set")?;
    match e
        .server
        .cli(&ctx.server_bin, &["policy", "set", "-f", &bad_path])
    {
        Ok(out) => bail!("a policy with failing sshTests was stored: {out}"),
        Err(err) => {
            let msg = format!("{err:#}");
            ensure!(
                msg.contains("test(s) failed"),
                "the refusal should say test(s) failed: {msg}"
            );
        }
    }
    get("after the refused set")?;
    Ok(())
}

/// Every client in `from` reaches (or, with `!allowed`, cannot reach) every client in `to`
/// by its MagicDNS name on port 80, all at once.
fn reach_by_name(e: &Env, from: &[usize], to: &[usize], allowed: bool) -> anyhow::Result<()> {
    for &f in from {
        for &t in to {
            if f == t {
                continue;
            }
            let fqdn = e.clients[t].fqdn()?;
            let out = nc_get(&e.clients[f], &fqdn, 80, std::time::Duration::from_secs(5))?;
            let got = out.contains(MARKER);
            ensure!(
                got == allowed,
                "{} {} {fqdn}:80 (answer {:?})",
                e.clients[f].name,
                if allowed {
                    "cannot reach"
                } else {
                    "still reaches"
                },
                out.trim()
            );
        }
    }
    Ok(())
}

/// `TestPolicyUpdateWhileRunningWithCLIInDatabase`: with no policy stored every node reaches
/// every other over HTTP by name; `policy set` then stores "user1 may reach user2", `policy
/// get` returns exactly it, and user1's node reaches user2's while user2's no longer reaches
/// user1's.
fn policy_update_while_running_cli_in_database(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let (mut e, _) = two_users_with(ctx, name, 1, KeyOpts::default(), &[], true, &|e| {
        e.server.set_policy_database_mode()
    })?;
    let _http = start_http(ctx, &e, 80)?;
    eventually("every node reaches every other over HTTP", WAIT, || {
        e.alive()?;
        reach_by_name(&e, &[0, 1], &[0, 1], true)
    })?;
    let policy = r#"{"hosts":{},"acls":[{"action":"accept","src":["user1@"],"dst":["user2@:*"]}]}"#;
    let path = write_file(&e, "policy.json", policy)?;
    e.server
        .cli(&ctx.server_bin, &["policy", "set", "-f", &path])?;
    let want: Value = serde_json::from_str(policy).context("the policy")?;
    eventually("policy get returns the new policy", WAIT, || {
        e.alive()?;
        let got = cli_json(&e, ctx, &["policy", "get"])?;
        ensure!(got == want, "policy get returned {got}, want {want}");
        Ok(())
    })?;
    eventually(
        "the new policy reaches the nodes (user1 -> user2 only)",
        WAIT,
        || {
            e.alive()?;
            reach_by_name(&e, &[0], &[1], true)?;
            reach_by_name(&e, &[1], &[0], false)
        },
    )?;
    Ok(())
}
