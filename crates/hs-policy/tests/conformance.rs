//! Runs the hosted-service conformance corpus (`shared/conformance/tailscale-saas`) against the
//! engine: one line per category `CATEGORY passed/total`, then `total: PASSED/TOTAL`.
//!
//! Exits non-zero when a scenario fails that is not listed in
//! `tests/conformance-known-failures.txt`, or when a listed scenario now passes (a fixed entry
//! must be removed; an entry is added only with why following the language cannot meet it).
//!
//! Usage: `cargo test -p hs-policy --test conformance -- [--dir DIR] [--verbose] [--only ID]`.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

mod conformance_support;

use conformance_support::{Outcome, run_scenario};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// This crate's directory, read when the test runs: `cargo test` sets it, and the
/// compile-time value may name another checkout that built this binary into the shared
/// target directory.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut dir = manifest_dir().join("../../../shared/conformance/tailscale-saas");
    let mut verbose = false;
    let mut only: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--dir" => {
                i += 1;
                dir = PathBuf::from(&args[i]);
            }
            "--verbose" | "-v" => verbose = true,
            "--only" => {
                i += 1;
                only = Some(args[i].clone());
            }
            // Flags cargo's test runner passes to every test binary.
            _ => {}
        }
        i += 1;
    }
    let known = load_known_failures();
    let mut cats: BTreeMap<String, (usize, usize, Vec<String>)> = BTreeMap::new();
    let mut refused = (0usize, 0usize, 0usize);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read corpus dir {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .collect();
    entries.sort_by_key(|e| e.path());
    let mut failed_ids = BTreeSet::new();
    let mut passed_ids = BTreeSet::new();
    for cat_dir in entries {
        let cat = cat_dir
            .file_name()
            .to_string_lossy()
            .trim_end_matches("_results")
            .to_string();
        let mut files: Vec<_> = std::fs::read_dir(cat_dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let scenario: serde_json::Value = serde_json::from_str(&text).unwrap();
            let id = scenario["id"].as_str().unwrap_or_default().to_string();
            if only.as_ref().is_some_and(|o| *o != id) {
                continue;
            }
            let outcome = run_scenario(&scenario);
            let entry = cats.entry(cat.clone()).or_default();
            entry.1 += 1;
            if let Some((r, same)) = outcome.refused {
                refused.0 += 1;
                refused.1 += usize::from(r);
                refused.2 += usize::from(same);
            }
            match outcome.result {
                Outcome::Pass => {
                    entry.0 += 1;
                    passed_ids.insert(id);
                }
                Outcome::Fail(why) => {
                    if verbose || only.is_some() {
                        println!("FAIL {id}: {why}");
                    }
                    entry.2.push(id.clone());
                    failed_ids.insert(id);
                }
            }
        }
    }
    let (mut p, mut t) = (0, 0);
    for (cat, (passed, total, _)) in &cats {
        println!("{cat} {passed}/{total}");
        p += passed;
        t += total;
    }
    println!(
        "refused: {}/{} refused, {}/{} with the same message",
        refused.1, refused.0, refused.2, refused.0
    );
    let unexpected: Vec<_> = failed_ids
        .iter()
        .filter(|id| !known.contains_key(*id))
        .collect();
    let stale: Vec<_> = passed_ids
        .iter()
        .filter(|id| known.contains_key(*id))
        .collect();
    if !unexpected.is_empty() {
        println!("unexpected failures ({}):", unexpected.len());
        for id in &unexpected {
            println!("  {id}");
        }
    }
    if !stale.is_empty() {
        println!(
            "now passing, remove from the known-failures file ({}):",
            stale.len()
        );
        for id in &stale {
            println!("  {id}");
        }
    }
    println!("total: {p}/{t}");
    if only.is_none() && (!unexpected.is_empty() || !stale.is_empty()) {
        std::process::exit(1);
    }
}

/// `id  # reason` per line; blank lines and lines starting with `#` are ignored.
fn load_known_failures() -> BTreeMap<String, String> {
    let path = manifest_dir().join("tests/conformance-known-failures.txt");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, reason) = line.split_once('#').unwrap_or((line, ""));
        assert!(
            !reason.trim().is_empty(),
            "known failure {:?} must say why (`id  # reason`)",
            id.trim()
        );
        out.insert(id.trim().to_string(), reason.trim().to_string());
    }
    out
}
