//! Loading Headscale's example config (YAML parse, env lookups for every key, defaults,
//! validation): the cost `headscale` pays once per command.

use std::hint::black_box;

use criterion::{Criterion, criterion_main};
use hs_config::Config;

fn load_example(c: &mut Criterion) {
    // Read at run time: the compile-time value may name another checkout.
    let path = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(
            || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            std::path::PathBuf::from,
        )
        .join("../../../shared/headscale-compat/config/config-example.yaml");
    let text = std::fs::read_to_string(path).expect("config-example.yaml");
    let no_env = |_: &str| None;
    c.bench_function("config/from_yaml_str/config-example", |b| {
        b.iter(|| Config::from_yaml_str(black_box(&text), &no_env).expect("loads"));
    });
}

// criterion's macros generate undocumented public functions.
#[allow(missing_docs, unreachable_pub)]
mod harness {
    criterion::criterion_group!(benches, super::load_example);
}
criterion_main!(harness::benches);
