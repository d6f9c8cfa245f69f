//! The scenario's network namespace: created with `ip netns add`, given only a loopback
//! interface, so nothing started inside it can reach any other host. Dropping the guard deletes
//! it, also when a scenario fails or panics. Without `ip netns` (no root, no iproute2) the
//! harness falls back to the host's loopback and says so; the client environment variables
//! still keep the clients away from anything but loopback.

use std::path::{Path, PathBuf};
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

/// Where a run's marker lives: `/tmp/hsit-<run>/pid`, holding the harness's full pid (the run
/// id keeps only its low 16 bits, so two runs can share one).
fn marker_dir(tmp: &Path, run: &str) -> PathBuf {
    tmp.join(format!("hsit-{run}"))
}

/// Marks this run as alive for the lifetime of the guard; dropping it removes the marker.
#[derive(Debug)]
pub(crate) struct RunMarker {
    dir: PathBuf,
}

impl Drop for RunMarker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// At harness start: removes what runs killed with SIGKILL left behind (their `hsit-*`
/// namespaces, the processes still running in them, their `/tmp/hsit-*` directories), then
/// marks run `run` as alive. Anything not named `hsit-<hex run id>[-…]` is left alone, and so
/// is everything of a run whose harness is still running.
pub(crate) fn claim_run(run: &str) -> RunMarker {
    let tmp = Path::new("/tmp");
    let alive = |r: &str| run_alive(tmp, r);
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output()
        && out.status.success()
    {
        for ns in stale(
            namespace_names(&String::from_utf8_lossy(&out.stdout)),
            &alive,
        ) {
            stop_processes_in(&ns);
            match ip(&["netns", "delete", &ns]) {
                Ok(()) => eprintln!("hs-integration: removed namespace {ns} of a killed run"),
                Err(e) => eprintln!("hs-integration: removing stale namespace {ns}: {e:#}"),
            }
        }
    }
    remove_stale_dirs(tmp, &alive);
    let dir = marker_dir(tmp, run);
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("pid"), std::process::id().to_string()));
    if let Err(e) = written {
        eprintln!(
            "hs-integration: writing the run marker {}: {e}",
            dir.display()
        );
    }
    RunMarker { dir }
}

/// The run id in `hsit-<run>[-…]`, when it is one (hex digits).
fn run_of(name: &str) -> Option<&str> {
    let run = name.strip_prefix("hsit-")?.split('-').next()?;
    (!run.is_empty() && run.len() <= 4 && run.bytes().all(|b| b.is_ascii_hexdigit())).then_some(run)
}

/// Namespace names in `ip netns list` output (`name` or `name (id: N)` per line).
fn namespace_names(list: &str) -> Vec<String> {
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The names among `names` that belong to a run that is not alive.
fn stale(names: Vec<String>, alive: &dyn Fn(&str) -> bool) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| run_of(n).is_some_and(|r| !alive(r)))
        .collect()
}

/// Removes `<tmp>/hsit-<run>…` directories of runs that are not alive.
fn remove_stale_dirs(tmp: &Path, alive: &dyn Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let names = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    for name in stale(names, alive) {
        let p = tmp.join(&name);
        if let Err(e) = std::fs::remove_dir_all(&p) {
            eprintln!("hs-integration: removing {}: {e}", p.display());
        }
    }
}

/// Whether run `run` has a live harness: the pid in its marker is a running harness, or,
/// without a marker (a run from before markers), some running harness has that run id.
/// Another harness is one with this process's command name.
fn run_alive(tmp: &Path, run: &str) -> bool {
    let me = std::process::id();
    let comm = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok();
    let ours = comm(me);
    let harness = |pid: u32| pid != me && comm(pid).is_some_and(|c| Some(&c) == ours.as_ref());
    if let Ok(pid) = std::fs::read_to_string(marker_dir(tmp, run).join("pid")) {
        return pid.trim().parse().is_ok_and(harness);
    }
    let Ok(want) = u32::from_str_radix(run, 16) else {
        return true;
    };
    std::fs::read_dir("/proc").is_ok_and(|d| {
        d.filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .any(|pid| pid & 0xffff == want && harness(pid))
    })
}

/// SIGKILLs what still runs inside a dead run's namespace (its servers and clients, orphaned
/// when the harness was killed), so deleting the namespace does not leave them running.
fn stop_processes_in(ns: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if pid.parse::<u32>().is_ok() {
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hsit_names_with_a_hex_run_id_are_considered() {
        assert_eq!(run_of("hsit-e6d-exitnodes"), Some("e6d"));
        assert_eq!(run_of("hsit-1a2b"), Some("1a2b"));
        assert_eq!(run_of("hsit-1a2b-hub-lan0"), Some("1a2b"));
        assert_eq!(run_of("hsit-derp-tls-4242"), None);
        assert_eq!(run_of("hsit-"), None);
        assert_eq!(run_of("other-1a2b"), None);
        assert_eq!(run_of("xhsit-1a2b"), None);
    }

    #[test]
    fn stale_keeps_live_runs_and_foreign_names() {
        let names = namespace_names("hsit-aa-one (id: 3)\nhsit-bb-two\ndocker0ns\nhsit-aa\n");
        assert_eq!(
            names,
            ["hsit-aa-one", "hsit-bb-two", "docker0ns", "hsit-aa"]
        );
        let alive = |r: &str| r == "bb";
        assert_eq!(stale(names, &alive), ["hsit-aa-one", "hsit-aa"]);
    }

    #[test]
    fn dead_run_dirs_go_live_and_foreign_ones_stay() {
        let tmp = tempdir();
        for d in [
            "hsit-aa-x",
            "hsit-aa",
            "hsit-bb-y",
            "hsit-derp-tls-1",
            "keep",
        ] {
            std::fs::create_dir_all(tmp.join(d).join("sub")).unwrap();
        }
        std::fs::write(tmp.join("hsit-cc-file"), "a file, not a run directory").unwrap();
        remove_stale_dirs(&tmp, &|r: &str| r == "bb");
        let mut left: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["hsit-bb-y", "hsit-cc-file", "hsit-derp-tls-1", "keep"]
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn a_marker_of_a_dead_pid_is_dead_and_of_this_harness_alive_only_for_others() {
        let tmp = tempdir();
        std::fs::create_dir_all(marker_dir(&tmp, "ab")).unwrap();
        // Pid 0 is never a process.
        std::fs::write(marker_dir(&tmp, "ab").join("pid"), "0").unwrap();
        assert!(!run_alive(&tmp, "ab"));
        // Our own pid: this process is starting the run, so it is not another live harness.
        std::fs::write(
            marker_dir(&tmp, "ab").join("pid"),
            std::process::id().to_string(),
        )
        .unwrap();
        assert!(!run_alive(&tmp, "ab"));
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "netns-sweep-test-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
