//! Shared by the CLI test binaries: starting a real `headscale serve` process and learning the
//! address it listens on.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a debug build may take to start listening before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts `headscale -c <config> serve` and waits for the line that reports its listening
/// address (`listen_addr: 127.0.0.1:0` picks a free port). The caller owns the child and must
/// kill it; on a start-up failure it is killed here before panicking.
pub(crate) fn spawn_serve(config: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_headscale"))
        .arg("-c")
        .arg(config)
        .arg("serve")
        .env_remove("HEADSCALE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => {
                // https:// when a certificate is configured (the remote-gRPC tests set one).
                let rest = line
                    .strip_prefix("headscale: listening on http://")
                    .or_else(|| line.strip_prefix("headscale: listening on https://"));
                if let Some(rest) = rest {
                    let addr = rest.split_whitespace().next().unwrap().to_owned();
                    return (child, addr);
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not report its address: {e}");
            }
        }
    }
}
