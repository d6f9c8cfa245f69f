//! The scenario's network namespace: created with `ip netns add`, given only a loopback
//! interface, so nothing started inside it can reach any other host. Dropping the guard deletes
//! it, also when a scenario fails or panics. Without `ip netns` (no root, no iproute2) the
//! harness falls back to the host's loopback and says so; the client environment variables
//! still keep the clients away from anything but loopback.

use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context as _, bail};

/// A network namespace owned by one scenario (or the host, in fallback mode).
#[derive(Debug)]
pub(crate) struct Netns {
    name: Option<String>,
}

impl Netns {
    /// Creates `hsit-<id>` with its loopback up, or falls back to the host when `ip netns`
    /// is unusable (`allow_host`), or fails.
    pub(crate) fn create(id: &str, allow_host: bool) -> anyhow::Result<Self> {
        let name = format!("hsit-{id}");
        match try_create(&name) {
            Ok(()) => Ok(Self { name: Some(name) }),
            Err(e) if allow_host => {
                eprintln!(
                    "hs-integration: WARNING: no network namespace ({e:#}); running on the host loopback"
                );
                Ok(Self { name: None })
            }
            Err(e) => Err(e),
        }
    }

    /// The namespace name, `None` on the host.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// A command that runs `program` inside the namespace.
    pub(crate) fn command(&self, program: &str) -> Command {
        match &self.name {
            Some(n) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", n, program]);
                c
            }
            None => Command::new(program),
        }
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (package iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

static DUMMY_UPLINK: OnceLock<bool> = OnceLock::new();

/// Gives every namespace created from now on an "uplink": a veth pair with both ends inside
/// the namespace and one private /32 address. Clients older than 1.90 decide "no network" on
/// a loopback-only host and then never start DERP or netcheck (`TS_ASSUME_NETWORK_UP_FOR_TEST`
/// only reaches their control client). The pair connects the namespace to itself and a /32
/// adds no route, so nothing can leave the namespace.
pub(crate) fn enable_dummy_uplink() {
    let _ = DUMMY_UPLINK.set(true);
}

/// The uplink's address (private, reachable only inside the namespace).
const DUMMY_ADDR: &str = "10.255.254.1/32";

fn try_create(name: &str) -> anyhow::Result<()> {
    // A namespace left over from a killed run would make `add` fail.
    let _ = ip(&["netns", "delete", name]);
    ip(&["netns", "add", name])?;
    let mut setup = vec![vec!["-n", name, "link", "set", "lo", "up"]];
    if DUMMY_UPLINK.get().copied().unwrap_or(false) {
        // Both ends of the veth pair live in this namespace: there is no way out of it.
        setup.push(vec![
            "-n", name, "link", "add", "hsitup0", "type", "veth", "peer", "name", "hsitup1",
        ]);
        setup.push(vec![
            "-n", name, "addr", "add", DUMMY_ADDR, "dev", "hsitup0",
        ]);
        setup.push(vec!["-n", name, "link", "set", "hsitup0", "up"]);
        setup.push(vec!["-n", name, "link", "set", "hsitup1", "up"]);
    }
    for args in setup {
        if let Err(e) = ip(&args) {
            let _ = ip(&["netns", "delete", name]);
            return Err(e);
        }
    }
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(n) = &self.name
            && let Err(e) = ip(&["netns", "delete", n])
        {
            eprintln!("hs-integration: deleting namespace {n}: {e:#}");
        }
    }
}
