//! The Debian package, installed on this machine: `cargo deb` packs the binary this test
//! run built (`--no-build`, the dev profile), `dpkg -i` installs it (the `headscale` account,
//! `/var/lib/headscale`, `/etc/headscale/config.yaml`, the systemd unit), the unit's
//! `ExecStart` runs as the unit's user with its working directory (and the runtime directory
//! systemd would create; no systemd runs here), `/health` answers and the CLI reaches it
//! over the packaged socket path; then `dpkg --purge` removes everything it added.
//!
//! Needs root, dpkg and cargo-deb (`cargo xtask ci` installs cargo-deb); it changes the
//! machine's package database while it runs and leaves it as it found it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::manifest_dir;
use hs_testkit::free_port;

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Purges the package when the test ends, passed or not.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "headscale"]).output();
        let _ = std::fs::remove_dir_all("/run/headscale");
    }
}

fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .to_owned()
}

#[test]
fn the_debian_package_installs_serves_and_purges() {
    let dir = tempfile::tempdir().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_headscale"));
    // cargo-deb finds the binary under the target directory by profile.
    let target_dir = bin.parent().unwrap().parent().unwrap().to_owned();
    let deb = dir.path().join("headscale.deb");
    ok(Command::new("cargo")
        .args([
            "deb",
            "-p",
            "headscale",
            "--no-build",
            "--no-strip",
            "--profile",
            "dev",
            "-o",
        ])
        .arg(&deb)
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(manifest_dir()));
    let listing = ok(Command::new("dpkg").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/headscale",
        "./etc/headscale/config.yaml",
        "./lib/systemd/system/headscale.service",
    ] {
        assert!(
            listing.contains(path),
            "{path} not in the package:\n{listing}"
        );
    }

    ok(Command::new("dpkg").arg("-i").arg(&deb));
    let installed = Installed;
    ok(Command::new("id").arg("headscale"));
    assert!(Path::new("/var/lib/headscale").is_dir());
    let unit = std::fs::read_to_string("/lib/systemd/system/headscale.service").unwrap();
    let exec = unit_value(&unit, "ExecStart");
    let user = unit_value(&unit, "User");
    let workdir = unit_value(&unit, "WorkingDirectory");
    // What systemd's RuntimeDirectory= would make.
    ok(Command::new("install").args([
        "-d",
        "-o",
        &user,
        "-g",
        &user,
        "-m",
        "0750",
        "/run/headscale",
    ]));

    let port = free_port();
    let mut parts = exec.split_whitespace();
    let mut server = Command::new("setpriv")
        .args(["--reuid", &user, "--regid", &user, "--init-groups", "--"])
        .arg(parts.next().unwrap())
        .args(parts)
        .current_dir(&workdir)
        // The packaged config, with ports no other test or service uses.
        .env("HEADSCALE_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("HEADSCALE_SERVER_URL", format!("http://127.0.0.1:{port}"))
        .env(
            "HEADSCALE_METRICS_LISTEN_ADDR",
            format!("127.0.0.1:{}", free_port()),
        )
        .env(
            "HEADSCALE_GRPC_LISTEN_ADDR",
            format!("127.0.0.1:{}", free_port()),
        )
        .env(
            "HEADSCALE_DERP_SERVER_STUN_LISTEN_ADDR",
            format!("127.0.0.1:{}", free_port()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("serve.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let mut status = None;
    for _ in 0..300 {
        if let Some(st) = server.try_wait().unwrap() {
            panic!(
                "the packaged server exited ({st}): {}",
                std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
            );
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read as _, Write as _};
            let _ = write!(
                s,
                "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            status = out.split_whitespace().nth(1).map(str::to_owned);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cli = Command::new("/usr/bin/headscale")
        .args(["users", "create", "first"])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        status.as_deref(),
        Some("200"),
        "/health of the packaged server"
    );
    assert!(
        cli.status.success(),
        "the CLI over /var/run/headscale/headscale.sock: {}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(Path::new("/var/lib/headscale/db.sqlite").is_file());

    drop(installed);
    assert!(
        !Path::new("/usr/bin/headscale").exists(),
        "purge left the binary"
    );
    assert!(
        !Path::new("/var/lib/headscale").exists(),
        "purge left the state"
    );
    assert!(
        !Command::new("id")
            .arg("headscale")
            .output()
            .unwrap()
            .status
            .success(),
        "purge left the account"
    );
}
