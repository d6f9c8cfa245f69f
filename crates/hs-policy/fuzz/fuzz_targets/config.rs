//! Fuzzes the config loader: any text as the YAML config file, with and without
//! `HEADSCALE_*` overrides, must give a config with warnings or an error listing problems,
//! never a panic.
#![no_main]

use hs_config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let none = |_: &str| None;
    let _ = Config::from_yaml_str(text, &none);
    let some = |k: &str| (k == "HEADSCALE_SERVER_URL").then(|| "http://[::1]:8080".to_owned());
    let _ = Config::from_yaml_str(text, &some);
});
