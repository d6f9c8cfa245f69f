//! Tailscale's own Go API client (`tailscale.com/client/tailscale/v2`) as a command-line
//! program, `integration/apiv2-client`, for the `/api/v2` scenarios: built once with Go into
//! `~/.cache/hs-integration/apiv2-client-<hash>/` (the hash covers its `main.go`, `go.mod` and
//! `go.sum`, so an edit rebuilds it), then run inside the scenario's namespace, one API call
//! per run, its JSON answer parsed here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::netns::Netns;

/// The files the binary is built from; their contents key the cache.
const SOURCES: [&str; 3] = ["main.go", "go.mod", "go.sum"];

/// The program's exit code for an error answer from the server (its JSON on stdout).
const EXIT_API_ERROR: i32 = 3;

/// Where the Go program's sources are.
fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("apiv2-client")
}

/// FNV-1a (64 bit) over each source's name and contents: a cache key, not a defence.
fn sources_hash(dir: &Path) -> anyhow::Result<String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for name in SOURCES {
        let path = dir.join(name);
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        for b in name.bytes().chain([0]).chain(text).chain([0]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(format!("{h:016x}"))
}

/// The built `apiv2-client`, built now if the cache has no binary for the current sources.
pub(crate) fn client_bin() -> anyhow::Result<PathBuf> {
    // One build at a time, and each scenario after the first finds it in the cache.
    static BUILD: Mutex<()> = Mutex::new(());
    let _one = BUILD
        .lock()
        .map_err(|_| anyhow::anyhow!("an earlier apiv2-client build panicked"))?;
    let src = source_dir();
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let dir = PathBuf::from(home)
        .join(".cache/hs-integration")
        .join(format!("apiv2-client-{}", sources_hash(&src)?));
    let bin = dir.join("apiv2-client");
    if bin.is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!(
        "building integration/apiv2-client (Tailscale's Go API client v2) into {}",
        dir.display()
    );
    let tmp = dir.join(format!("apiv2-client.tmp{}", std::process::id()));
    let out = Command::new("go")
        .args(["build", "-trimpath", "-o"])
        .arg(&tmp)
        .arg(".")
        .current_dir(&src)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .output()
        .context("running go build for integration/apiv2-client (is Go installed? see `cargo xtask integration doctor`)")?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "go build of {} failed ({}): {}",
            src.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // Renamed into place whole: a build killed halfway never leaves a binary the cache trusts.
    std::fs::rename(&tmp, &bin)
        .with_context(|| format!("moving the build into {}", bin.display()))?;
    Ok(bin)
}

/// How the program authenticates.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    /// An OAuth client (`tailscale.OAuth`), optionally asking for fewer scopes.
    OAuth {
        id: String,
        secret: String,
        scopes: Vec<String>,
    },
    /// An admin API key (`Client.APIKey`).
    ApiKey(String),
}

/// What one call answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// Success: the subcommand's JSON.
    Ok(Value),
    /// The server refused: its status and message.
    Refused { status: u16, message: String },
}

/// The Go client with one set of credentials, run in a scenario's namespace.
#[derive(Debug, Clone)]
pub(crate) struct ApiV2 {
    bin: PathBuf,
    url: String,
    auth: Auth,
    /// What the caller calls it in messages (`admin client`, `dns:read client`).
    pub(crate) label: String,
}

impl ApiV2 {
    /// A client for the server at `url` (as seen inside the namespace).
    pub(crate) fn new(bin: &Path, url: &str, auth: Auth, label: &str) -> Self {
        Self {
            bin: bin.to_owned(),
            url: url.to_owned(),
            auth,
            label: label.to_owned(),
        }
    }

    /// The same credentials asking for `scopes` only (OAuth clients).
    pub(crate) fn with_scopes(&self, scopes: &[&str], label: &str) -> Self {
        let mut c = self.clone();
        if let Auth::OAuth { scopes: s, .. } = &mut c.auth {
            *s = scopes.iter().map(|x| (*x).to_owned()).collect();
        }
        c.label = label.to_owned();
        c
    }

    /// The same client id with another secret (to check that a wrong secret is refused).
    pub(crate) fn with_secret(&self, secret: &str, label: &str) -> Self {
        let mut c = self.clone();
        if let Auth::OAuth { secret: s, .. } = &mut c.auth {
            secret.clone_into(s);
        }
        c.label = label.to_owned();
        c
    }

    /// Runs `apiv2-client … <args>` in `ns`; the secret travels in the environment, so
    /// it is in no argument list and no message.
    pub(crate) fn call(&self, ns: &Netns, args: &[&str]) -> anyhow::Result<Answer> {
        let mut cmd = ns.command(&self.bin.display().to_string());
        cmd.arg("--url").arg(&self.url);
        match &self.auth {
            Auth::OAuth { id, secret, scopes } => {
                cmd.arg("--client-id")
                    .arg(id)
                    .env("APIV2_CLIENT_SECRET", secret);
                if !scopes.is_empty() {
                    cmd.arg("--scopes").arg(scopes.join(","));
                }
            }
            Auth::ApiKey(k) => {
                cmd.env("APIV2_API_KEY", k);
            }
        }
        cmd.args(args);
        let out = cmd
            .output()
            .with_context(|| format!("{}: running apiv2-client {}", self.label, args.join(" ")))?;
        parse_answer(
            out.status.code(),
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
        )
        .with_context(|| format!("{}: apiv2-client {}", self.label, args.join(" ")))
    }

    /// [`ApiV2::call`] that must succeed; a refusal is an error naming the request and the
    /// server's answer.
    pub(crate) fn ok(&self, ns: &Netns, args: &[&str]) -> anyhow::Result<Value> {
        match self.call(ns, args)? {
            Answer::Ok(v) => Ok(v),
            Answer::Refused { status, message } => bail!(
                "{}: `apiv2-client {}` was refused by the server: {status} {message:?}",
                self.label,
                args.join(" ")
            ),
        }
    }

    /// [`ApiV2::call`] that must be refused with `status`; returns the server's message.
    pub(crate) fn refused(&self, ns: &Netns, args: &[&str], status: u16) -> anyhow::Result<String> {
        match self.call(ns, args)? {
            Answer::Refused {
                status: got,
                message,
            } if got == status => Ok(message),
            Answer::Refused {
                status: got,
                message,
            } => bail!(
                "{}: `apiv2-client {}` expected HTTP {status}, the server answered {got} {message:?}",
                self.label,
                args.join(" ")
            ),
            Answer::Ok(v) => bail!(
                "{}: `apiv2-client {}` expected HTTP {status}, the server accepted it: {v}",
                self.label,
                args.join(" ")
            ),
        }
    }
}

/// Reads the program's exit code and output: 0 and JSON, 3 and `{"status","message"}`, or a
/// failure carrying its stderr.
fn parse_answer(code: Option<i32>, stdout: &str, stderr: &str) -> anyhow::Result<Answer> {
    let parse = || -> anyhow::Result<Value> {
        serde_json::from_str(stdout.trim())
            .with_context(|| format!("stdout is not JSON: {:?}", stdout.trim()))
    };
    match code {
        Some(0) => Ok(Answer::Ok(parse()?)),
        Some(EXIT_API_ERROR) => {
            let v = parse()?;
            let status = v["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .with_context(|| format!("an error answer without a status: {v}"))?;
            Ok(Answer::Refused {
                status,
                message: v["message"].as_str().unwrap_or_default().to_owned(),
            })
        }
        other => bail!(
            "failed ({}): {}",
            other.map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}")),
            stderr.trim()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_by_exit_code() {
        assert_eq!(
            parse_answer(Some(0), "{\"ok\":true}\n", "").unwrap(),
            Answer::Ok(serde_json::json!({"ok": true}))
        );
        assert_eq!(
            parse_answer(Some(3), "{\"status\":412,\"message\":\"stale\"}\n", "").unwrap(),
            Answer::Refused {
                status: 412,
                message: "stale".to_owned()
            }
        );
        let e = parse_answer(Some(1), "", "apiv2-client: connection refused\n").unwrap_err();
        assert!(format!("{e:#}").contains("connection refused"), "{e:#}");
        assert!(parse_answer(Some(0), "not json", "").is_err());
        assert!(parse_answer(Some(3), "{\"message\":\"no status\"}", "").is_err());
        assert!(parse_answer(None, "", "").is_err());
    }

    #[test]
    fn the_cache_key_follows_the_sources() {
        let dir = std::env::temp_dir().join(format!("hsit-apiv2-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in SOURCES {
            std::fs::write(dir.join(name), name).unwrap();
        }
        let a = sources_hash(&dir).unwrap();
        assert_eq!(a, sources_hash(&dir).unwrap());
        std::fs::write(dir.join("go.sum"), "changed").unwrap();
        let b = sources_hash(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn the_real_sources_are_there() {
        let h = sources_hash(&source_dir()).unwrap();
        assert_eq!(h.len(), 16);
    }
}
