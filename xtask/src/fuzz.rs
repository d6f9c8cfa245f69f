//! `cargo xtask fuzz`: builds and runs the cargo-fuzz targets, one for every parser of
//! network, file or API input: the ts2021 endpoint (`crates/hs-noise/fuzz`: Noise records
//! and handshake, its WebSocket framing and query parameter, the RegisterRequest and
//! MapRequest JSON read inside the tunnel), the policy and config files
//! (`crates/hs-policy/fuzz`), the DERP relay (`crates/hs-derp/fuzz`: frames, STUN, DERP over
//! WebSocket) and the admin API (`crates/hs-api/fuzz`: REST bodies and gRPC messages).
//! cargo-fuzz needs a nightly compiler: `+nightly` when rustup has one, otherwise the stable
//! compiler with `RUSTC_BOOTSTRAP=1`. cargo-fuzz itself is installed with
//! `cargo install cargo-fuzz --locked` when missing.
//!
//! ```text
//! cargo xtask fuzz                      # every target, 30 s each
//! cargo xtask fuzz frame --seconds 10   # one target
//! cargo xtask fuzz --build-only         # compile all targets
//! cargo xtask fuzz --seconds 4          # what CI runs after building
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Each target and the cargo-fuzz project it lives in, grouped by project (`--build-only`
/// builds each project once).
const TARGETS: &[(&str, &str)] = &[
    ("frame", "crates/hs-noise/fuzz"),
    ("handshake", "crates/hs-noise/fuzz"),
    ("ts2021_ws", "crates/hs-noise/fuzz"),
    ("control_json", "crates/hs-noise/fuzz"),
    ("policy", "crates/hs-policy/fuzz"),
    ("config", "crates/hs-policy/fuzz"),
    ("derp_frame", "crates/hs-derp/fuzz"),
    ("stun", "crates/hs-derp/fuzz"),
    ("derp_ws", "crates/hs-derp/fuzz"),
    ("api_bodies", "crates/hs-api/fuzz"),
];

/// Parses `[target] [--seconds N] [--build-only]` and runs.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut seconds: u64 = 30;
    let mut build_only = false;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--build-only" => build_only = true,
            "--seconds" => {
                let v = it.next().context("--seconds needs a number")?;
                seconds = v
                    .parse()
                    .with_context(|| format!("--seconds: {v:?} is not a whole number"))?;
            }
            t if TARGETS.iter().any(|(name, _)| *name == t) => {
                targets.extend(TARGETS.iter().filter(|(name, _)| *name == t));
            }
            other => bail!(
                "xtask fuzz: unknown argument {other:?} (targets: {})",
                TARGETS
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    let root = root();
    ensure_cargo_fuzz()?;
    let nightly = has_nightly();
    if build_only {
        let mut dirs: Vec<&str> = TARGETS.iter().map(|(_, dir)| *dir).collect();
        dirs.dedup();
        for dir in dirs {
            cargo_fuzz(&root, nightly, &["build", "--fuzz-dir", dir])?;
        }
        return Ok(());
    }
    for (t, dir) in targets {
        seed(&root, t, dir)?;
        let limit = format!("-max_total_time={seconds}");
        println!("xtask fuzz: {t} for {seconds} s");
        cargo_fuzz(&root, nightly, &["run", "--fuzz-dir", dir, t, "--", &limit])?;
    }
    Ok(())
}

/// Starts an empty corpus from real inputs, so the fuzzer mutates them rather than
/// discovering JSON, YAML or framing from random bytes: every conformance scenario's policy
/// text for `policy`, Headscale's example and fixture configs for `config` (both from
/// ../shared, skipped with a notice when it is absent), and for the other targets the inputs
/// the project's own tests send, written out in [`built_in_seeds`].
fn seed(root: &Path, target: &str, dir: &str) -> Result<()> {
    let corpus = root.join(dir).join("corpus").join(target);
    let empty = std::fs::read_dir(&corpus).map_or(true, |mut d| d.next().is_none());
    if !empty {
        return Ok(());
    }
    let shared = root.join("../shared");
    let seeds = match target {
        "policy" => policy_seeds(&shared.join("conformance/tailscale-saas"))?,
        "config" => config_seeds(&shared.join("headscale-compat/config"))?,
        other => built_in_seeds(other),
    };
    if seeds.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(&corpus)?;
    for (name, bytes) in &seeds {
        std::fs::write(corpus.join(name), bytes)?;
    }
    println!("xtask fuzz: seeded {target} with {} inputs", seeds.len());
    Ok(())
}

type Seeds = Vec<(String, Vec<u8>)>;

fn policy_seeds(base: &Path) -> Result<Seeds> {
    let mut seeds = Vec::new();
    if !base.is_dir() {
        println!(
            "xtask fuzz: {} is absent, policy starts unseeded",
            base.display()
        );
        return Ok(seeds);
    }
    for category in std::fs::read_dir(base).with_context(|| base.display().to_string())? {
        let category = category?.path();
        if !category.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&category)? {
            let f = f?.path();
            let text = std::fs::read_to_string(&f)?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", f.display()))?;
            if let Some(p) = v["policy_hujson"].as_str() {
                let name = f
                    .file_stem()
                    .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
                seeds.push((name, p.as_bytes().to_vec()));
            }
        }
    }
    Ok(seeds)
}

fn config_seeds(base: &Path) -> Result<Seeds> {
    let mut seeds = Vec::new();
    if !base.is_dir() {
        println!(
            "xtask fuzz: {} is absent, config starts unseeded",
            base.display()
        );
        return Ok(seeds);
    }
    for f in std::fs::read_dir(base).with_context(|| base.display().to_string())? {
        let f = f?.path();
        let name = f
            .file_name()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        seeds.push((name, std::fs::read(&f)?));
    }
    Ok(seeds)
}

/// Seeds for the targets whose inputs live in the project's tests rather than in files:
/// control JSON as tailscaled and Tailscale's Rust client write it (hs-types' and
/// hs-control's tests), WebSocket streams as clients frame them, and the admin API bodies
/// of hs-api's golden tests. Each input starts with the byte its target reads first.
fn built_in_seeds(target: &str) -> Seeds {
    let named = |v: Vec<(&str, Vec<u8>)>| v.into_iter().map(|(n, b)| (n.to_owned(), b)).collect();
    match target {
        "control_json" => named(control_json_seeds()),
        "derp_ws" => named(derp_ws_seeds()),
        "ts2021_ws" => named(ts2021_ws_seeds()),
        "api_bodies" => named(api_bodies_seeds()),
        _ => Vec::new(),
    }
}

fn hex_key(prefix: &str, byte: u8) -> String {
    format!("{prefix}{}", format!("{byte:02x}").repeat(32))
}

fn control_json_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use serde_json::json;
    let (nk, ok, dk) = (
        hex_key("nodekey:", 0x11),
        hex_key("nodekey:", 0x22),
        hex_key("discokey:", 0x33),
    );
    let docs = [
        (
            "register_auth_key",
            json!({"Version": 145, "NodeKey": nk, "OldNodeKey": hex_key("nodekey:", 0),
                "NLKey": hex_key("nlpub:", 0x44), "Auth": {"AuthKey": "hskey-auth-abc&def"},
                "Expiry": "0001-01-01T00:00:00Z", "Followup": "",
                "Hostinfo": {"IPNVersion": "1.84.0", "OS": "linux", "Hostname": "router",
                    "RoutableIPs": ["10.1.0.0/16"], "RequestTags": ["tag:router"]},
                "Ephemeral": true, "NodeKeySignature": null}),
        ),
        (
            "register_rotate_signed",
            json!({"Version": 130, "NodeKey": nk, "OldNodeKey": ok,
                "Expiry": "1970-01-01T00:02:03Z", "Followup": "https://hs.example.com/register/abc",
                "Hostinfo": null, "NodeKeySignature": "AQID", "SignatureType": "signature-v2",
                "Timestamp": "2026-01-01T00:00:00.5Z", "DeviceCert": "BAU=", "Signature": "Bg==",
                "Tailnet": "example.com"}),
        ),
        (
            "map_stream",
            json!({"Version": 145, "Compress": "zstd", "KeepAlive": true, "NodeKey": nk,
                "DiscoKey": dk, "Stream": true,
                "Hostinfo": {"OS": "linux", "Hostname": "a&b", "RoutableIPs": ["192.168.0.0/24"],
                    "NetInfo": {"PreferredDERP": 999}},
                "Endpoints": ["192.0.2.1:41641", "[2001:db8::1]:41641"], "EndpointTypes": [2, 1],
                "DebugFlags": ["warn-ip-forwarding-off"]}),
        ),
        (
            "map_lite",
            json!({"Version": 113, "NodeKey": nk, "DiscoKey": dk, "OmitPeers": true,
                "Hostinfo": {"OS": "windows"}, "SomethingNew": [1], "MapSessionHandle": "h",
                "MapSessionSeq": 4, "TKAHead": "t", "ConnectionHandleForTest": "c",
                "HardwareAttestationKey": "hwattestpub:ab",
                "HardwareAttestationKeySignature": "AQ==",
                "HardwareAttestationKeySignatureTimestamp": "2026-01-01T00:00:00Z"}),
        ),
        (
            // Tailscale's Rust client spells keys its own way; Go's folding reads them.
            "map_rust_client",
            json!({"KeepAlive": true, "Stream": true, "NodeKey": nk,
                "HostInfo": {"Hostname": "rs-router", "Os": "linux", "IpnVersion": "0.6.1",
                    "RoutableIps": ["10.9.0.0/24"], "NetInfo": {"PreferredDerp": 1}}}),
        ),
    ];
    docs.into_iter()
        .map(|(n, d)| (n, d.to_string().into_bytes()))
        .collect()
}

/// A WebSocket frame (RFC 6455): FIN, `opcode`, masked with `mask` when given.
fn ws_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    out.push(0x80 | opcode);
    let bit = if mask.is_some() { 0x80 } else { 0 };
    match u16::try_from(payload.len()) {
        Ok(l) if l < 126 => out.push(bit | l as u8),
        Ok(l) => {
            out.push(bit | 126);
            out.extend_from_slice(&l.to_be_bytes());
        }
        Err(_) => {
            out.push(bit | 127);
            out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
}

/// `config` then frames: a data frame split around a ping, then a close.
fn ws_stream(config: u8, data: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![config];
    let (a, b) = data.split_at(data.len() / 2);
    ws_frame(&mut out, 0x2, a, mask);
    ws_frame(&mut out, 0x9, b"ping", mask);
    ws_frame(&mut out, 0x2, b, mask);
    ws_frame(&mut out, 0x8, &[0x03, 0xe8], mask);
    out
}

fn derp_ws_seeds() -> Vec<(&'static str, Vec<u8>)> {
    // A DERP ClientInfo frame (type 2, 32-byte key, 24-byte nonce, sealed JSON).
    let mut client_info = vec![0x02, 0, 0, 0, 0x58];
    client_info.extend_from_slice(&[0x5a; 0x58]);
    let mut long = vec![0x25];
    ws_frame(&mut long, 0x2, &[0x04; 300], Some([1, 2, 3, 4]));
    vec![
        (
            "masked",
            ws_stream(0x35, &client_info, Some([0x12, 0x34, 0x56, 0x78])),
        ),
        ("unmasked", ws_stream(0x0f, &client_info, None)),
        ("len16", long),
    ]
}

fn ts2021_ws_seeds() -> Vec<(&'static str, Vec<u8>)> {
    // A Noise initiation's header (version 1, type 1, 96-byte payload), then the payload.
    let mut init = vec![0x00, 0x01, 0x01, 0x00, 0x60];
    init.extend_from_slice(&[0x42; 0x60]);
    let mut structured = vec![0x93];
    structured.extend_from_slice(&init);
    structured.extend_from_slice(b"\xffhello\xff\xffworld");
    vec![
        ("frames", ws_stream(0x26, &init, Some([9, 8, 7, 6]))),
        ("structured", structured),
        ("query", b"AAEBAGB%2Bxyz%2F%2b%3D%3D+end".to_vec()),
    ]
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn api_bodies_seeds() -> Vec<(&'static str, Vec<u8>)> {
    // Bodies from hs-api's golden tests, after the byte that picks the route (the order of
    // `rest_route` in crates/hs-api/fuzz/fuzz_targets/api_bodies.rs).
    const REST: &[(&str, u8, &str)] = &[
        (
            "apikey_create",
            0,
            r#"{"expiration":"2026-08-30T12:00:00Z"}"#,
        ),
        ("apikey_expire", 1, r#"{"prefix":"abcdefabcdef","id":"1"}"#),
        (
            "user_create",
            2,
            r#"{"name":"test","displayName":"Test","email":"t@example.com"}"#,
        ),
        (
            "preauth_create",
            3,
            r#"{"user":"1","reusable":true,"aclTags":["tag:a"]}"#,
        ),
        ("preauth_expire", 4, r#"{"id":"42"}"#),
        (
            "node_expire",
            5,
            r#"{"expiry":"2026-06-01T12:00:00Z","disableExpiry":false}"#,
        ),
        ("node_tags", 6, r#"{"tags":["tag:a"]}"#),
        ("node_routes", 7, r#"{"routes":["10.0.0.0/24"]}"#),
        (
            "debug_node",
            8,
            r#"{"user":"nobody","key":"bad","name":"dbg","routes":[]}"#,
        ),
        (
            "auth_register",
            9,
            r#"{"user":"alice","authId":"hskey-authreq-abcdefabcdefabcd"}"#,
        ),
        ("policy_set", 10, r#"{"policy":"{\"acls\":[]}"}"#),
    ];
    let mut seeds: Vec<(&str, Vec<u8>)> = REST
        .iter()
        .map(|&(n, pick, body)| {
            let mut b = vec![pick];
            b.extend_from_slice(body.as_bytes());
            (n, b)
        })
        .collect();
    // gRPC messages, after 11 + the method's index in `grpc_method`.
    let mut ts = vec![0x08];
    varint(1_780_000_000, &mut ts);
    ts.extend_from_slice(&[0x10, 0x05]);
    let mut preauth = vec![11 + 8, 0x08, 0x01, 0x10, 0x01, 0x22, ts.len() as u8];
    preauth.extend_from_slice(&ts);
    preauth.extend_from_slice(b"\x2a\x05tag:a");
    let mut expire = vec![11 + 17, 0x08, 0x07, 0x12, ts.len() as u8];
    expire.extend_from_slice(&ts);
    seeds.push(("grpc_preauth_create", preauth));
    seeds.push(("grpc_node_expire", expire));
    seeds.push(("grpc_apikey_expire", b"\x0c\x0a\x03abc\x10\x03".to_vec()));
    seeds.push((
        "grpc_debug_node",
        b"\x1f\x0a\x05alice\x12\x03key\x1a\x03dbg\x22\x0b10.1.0.0/16".to_vec(),
    ));
    seeds
}

fn root() -> PathBuf {
    crate::ci::project_root()
}

fn ensure_cargo_fuzz() -> Result<()> {
    let present = Command::new(env!("CARGO"))
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    println!("xtask fuzz: installing cargo-fuzz");
    let status = Command::new(env!("CARGO"))
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("running cargo install cargo-fuzz")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed ({status})");
    }
    Ok(())
}

fn has_nightly() -> bool {
    Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn cargo_fuzz(root: &Path, nightly: bool, args: &[&str]) -> Result<()> {
    // Through rustup's `cargo` proxy so that `+nightly` selects the toolchain; the CARGO
    // variable points at the stable toolchain's binary, which ignores it.
    let mut cmd = Command::new("cargo");
    if nightly {
        cmd.arg("+nightly");
    } else {
        println!("xtask fuzz: no nightly toolchain, using RUSTC_BOOTSTRAP=1 on stable");
        cmd.env("RUSTC_BOOTSTRAP", "1");
    }
    let (sub, rest) = args
        .split_first()
        .context("cargo fuzz needs a subcommand")?;
    cmd.arg("fuzz").arg(sub).current_dir(root);
    // Sanitizer builds get a target dir of their own (different flags would rebuild
    // everything in the shared one), kept in the user's cache so a fresh clone (CI) does not
    // rebuild every dependency.
    cmd.env_remove("CARGO_TARGET_DIR");
    if let Some(home) = std::env::var_os("HOME") {
        cmd.arg("--target-dir")
            .arg(Path::new(&home).join(".cache/headscale-rs/fuzz-target"));
    }
    cmd.args(rest);
    let status = cmd
        .status()
        .with_context(|| format!("running cargo fuzz {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo fuzz {} failed ({status})", args.join(" "));
    }
    Ok(())
}
