//! One-shot commands: configtest, version, generate.

use std::str::FromStr as _;

use hs_types::MachinePrivate;

use super::{fixture, headscale, run, stderr, stdout};

#[test]
fn configtest_accepts_the_example_config() {
    let out = run(headscale()
        .arg("configtest")
        .arg("-c")
        .arg(fixture("config-example.yaml")));
    assert!(out.status.success(), "stderr: {}", stderr(&out));
}

#[test]
fn configtest_refuses_a_bad_server_url_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "server_url: \"ftp://x\"\n").unwrap();
    let out = run(headscale().arg("configtest").arg("-c").arg(&path));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("server_url"), "stderr: {err}");
    assert!(err.contains("ftp://x"), "stderr: {err}");
}

#[test]
fn configtest_names_env_override_and_base_domain_conflict() {
    let out = run(headscale()
        .arg("configtest")
        .arg("-c")
        .arg(fixture("base-domain-in-server-url.yaml")));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("server_url") && err.contains("dns.base_domain"),
        "{err}"
    );

    // HEADSCALE_CONFIG is read when -c is absent; env overrides apply to its keys.
    let out = run(headscale()
        .arg("configtest")
        .env("HEADSCALE_CONFIG", fixture("config-example.yaml"))
        .env("HEADSCALE_PREFIXES_ALLOCATION", "diagonal"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("prefixes.allocation"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn configtest_warns_about_unknown_keys_but_passes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let text = std::fs::read_to_string(fixture("config-example.yaml")).unwrap();
    std::fs::write(&path, text + "\nnot_a_headscale_key: 1\n").unwrap();
    let out = run(headscale().arg("configtest").arg("-c").arg(&path));
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("not_a_headscale_key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn configtest_reports_a_missing_file() {
    let out = run(headscale()
        .arg("configtest")
        .arg("-c")
        .arg("/nonexistent/headscale.yaml"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/nonexistent/headscale.yaml"));
}

#[test]
fn version_json_and_text() {
    let out = run(headscale().args(["version", "-o", "json"]));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(v["version"].is_string());
    assert!(v["commit"].is_string());
    assert!(v["go"]["arch"].is_string());

    let out = run(headscale().args(["version", "-o", "json-line"]));
    assert_eq!(stdout(&out).lines().count(), 1);
    serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap();

    let out = run(headscale().arg("version"));
    assert!(stdout(&out).starts_with("headscale version "));

    // `--version` and `version` name the same version.
    let sub = stdout(&out);
    let version = sub
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("headscale version ");
    let flag = run(headscale().arg("--version"));
    assert_eq!(stdout(&flag).trim(), format!("headscale {version}"));
}

#[test]
fn generate_private_key_prints_a_parseable_key() {
    let out = run(headscale().args(["generate", "private-key"]));
    assert!(out.status.success());
    let text = stdout(&out);
    let line = text.trim();
    assert!(line.starts_with("privkey:"), "{line}");
    MachinePrivate::from_str(line).unwrap();

    let out = run(headscale().args(["gen", "private-key", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    MachinePrivate::from_str(v["private_key"].as_str().unwrap()).unwrap();
}

#[test]
fn table_is_the_default_output_format() {
    let default = run(headscale().arg("version"));
    let table = run(headscale().args(["version", "-o", "table"]));
    assert!(table.status.success());
    assert_eq!(stdout(&default), stdout(&table));
}

#[test]
fn unknown_output_format_is_refused() {
    let out = run(headscale().args(["version", "-o", "xml"]));
    assert!(!out.status.success());
}

/// Go Headscale's short command names work here too (`users c`, `apikeys exp`, `nodes del`,
/// `preauthkeys del`), and `completion` prints a script for each shell cobra supports.
#[test]
fn go_aliases_and_completion() {
    let bin = env!("CARGO_BIN_EXE_headscale");
    for args in [
        &["users", "c", "--help"][..],
        &["users", "new", "--help"],
        &["apikeys", "new", "--help"],
        &["apikeys", "exp", "--help"],
        &["apikeys", "e", "--help"],
        &["apikeys", "del", "--help"],
        &["preauthkeys", "new", "--help"],
        &["preauthkeys", "exp", "--help"],
        &["preauthkeys", "del", "--help"],
        &["nodes", "del", "--help"],
    ] {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = std::process::Command::new(bin)
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("preauthkeys"), "{shell}: {script}");
    }
}

/// `headscale policy get | head -1`: a reader that leaves early is not a failure (it was a
/// panic, exit 101). The document is larger than a pipe's buffer, so the write does hit the
/// closed pipe.
#[test]
fn a_closed_pipe_is_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "server_url: http://127.0.0.1:8080
listen_addr: 127.0.0.1:0
noise:
  private_key_path: {d}/noise.key
prefixes:
  v4: 100.64.0.0/10
database:
  type: sqlite
  sqlite:
    path: {d}/db.sqlite
dns:
  magic_dns: false
  override_local_dns: false
policy:
  mode: database
"
        ),
    )
    .unwrap();
    let policy = dir.path().join("big.hujson");
    std::fs::write(&policy, format!("{{\n// {}\n}}\n", "x".repeat(200_000))).unwrap();
    let bypass = "--bypass-server-and-access-database-directly";
    let set = run(headscale()
        .arg("-c")
        .arg(&config)
        .args(["policy", "set", "--force", bypass, "-f"])
        .arg(&policy));
    assert!(set.status.success(), "{}", stderr(&set));
    let mut child = headscale()
        .arg("-c")
        .arg(&config)
        .args(["policy", "get", "--force", bypass])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Read as _;
        let mut first = [0u8; 16];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        // The read end is dropped here, with most of the document unread.
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
