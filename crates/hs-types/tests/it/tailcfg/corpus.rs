//! Round trips over JSON that Go really produced: the hosted Tailscale control plane's
//! packet filters, SSH policies, capability maps and DNS configs captured in
//! `../shared/conformance/tailscale-saas` (see its README).
//!
//! For every capture: it must parse as our type, and writing it back must give the same JSON
//! value, except that a `null` capability value list is written as `[]` (both mean "granted
//! without values"; see `CapMap`), a `null` capability map as `{}` and a `null` DNS route list
//! as `[]` (see `DNSConfig::routes`).

use std::path::PathBuf;

use hs_types::tailcfg::{CapMap, DNSConfig, FilterRule, SSHPolicy};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// This crate's directory, read when the test runs: `cargo test` sets it, and the
/// compile-time value may name another checkout that built this binary into the shared
/// target directory.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn corpus_dir() -> PathBuf {
    manifest_dir().join("../../../shared/conformance/tailscale-saas")
}

/// Replaces `null` value lists of a capability map with `[]`, and a `null` map with `{}`.
fn normalize_cap_map(v: &mut Value) {
    if v.is_null() {
        *v = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(m) = v {
        for val in m.values_mut() {
            if val.is_null() {
                *val = Value::Array(Vec::new());
            }
        }
    }
}

/// `DNSConfig.Routes` values: the hosted control plane writes `null` where Headscale writes
/// `[]`; the client only looks at the length (both mean "answer with 100.100.100.100").
fn normalize_dns(v: &mut Value) {
    let routes = v.get_mut("Routes").and_then(Value::as_object_mut);
    for val in routes.into_iter().flat_map(|m| m.values_mut()) {
        if val.is_null() {
            *val = Value::Array(Vec::new());
        }
    }
}

fn normalize_rules(v: &mut Value) {
    for rule in v.as_array_mut().into_iter().flatten() {
        let grants = rule.get_mut("CapGrant").and_then(Value::as_array_mut);
        for g in grants.into_iter().flatten() {
            if let Some(cm) = g.get_mut("CapMap") {
                normalize_cap_map(cm);
            }
        }
    }
}

fn check<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(
    what: &str,
    original: &Value,
    normalize: fn(&mut Value),
) {
    let parsed: T = serde_json::from_value(original.clone())
        .unwrap_or_else(|e| panic!("{what}: does not parse: {e}\n{original}"));
    let written = serde_json::to_value(&parsed).expect("serialize");
    let mut expected = original.clone();
    normalize(&mut expected);
    assert_eq!(written, expected, "{what}: round trip changed the JSON");
    let again: T = serde_json::from_value(written).expect("reparse");
    assert_eq!(again, parsed, "{what}");
}

#[test]
fn saas_captures_round_trip() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("conformance corpus present")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).expect("category dir"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut filters, mut ssh, mut caps, mut dns) = (0usize, 0usize, 0usize, 0usize);
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read corpus file");
        let doc: Value = serde_json::from_str(&text).expect("corpus file is JSON");
        let captures = doc.get("captures").and_then(Value::as_object);
        for (node, c) in captures.into_iter().flatten() {
            let what = format!("{} {node}", file.display());
            if let Some(v) = c.get("packet_filter_rules").filter(|v| !v.is_null()) {
                check::<Vec<FilterRule>>(
                    &format!("{what} packet_filter_rules"),
                    v,
                    normalize_rules,
                );
                filters += 1;
            }
            if let Some(v) = c.get("ssh_policy").filter(|v| !v.is_null()) {
                check::<SSHPolicy>(&format!("{what} ssh_policy"), v, |_| {});
                ssh += 1;
            }
            if let Some(v) = c.get("self_cap_map").filter(|v| !v.is_null()) {
                check::<CapMap>(&format!("{what} self_cap_map"), v, normalize_cap_map);
                caps += 1;
            }
            let whois = c.get("whois_cap_maps").and_then(Value::as_object);
            for (ip, v) in whois.into_iter().flatten() {
                check::<CapMap>(&format!("{what} whois {ip}"), v, normalize_cap_map);
                caps += 1;
            }
            if let Some(v) = c.get("dns").filter(|v| !v.is_null()) {
                check::<DNSConfig>(&format!("{what} dns"), v, normalize_dns);
                dns += 1;
            }
        }
    }
    // The corpus README promises 732 scenarios; make sure we really walked it.
    assert!(
        files.len() >= 700,
        "only {} corpus files found",
        files.len()
    );
    assert!(
        filters > 1000 && ssh > 50 && caps > 1000 && dns > 1000,
        "{filters} {ssh} {caps} {dns}"
    );
}
