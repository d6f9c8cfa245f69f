//! Fuzzes the JSON bodies the control server reads inside the Noise tunnel, decoded as the
//! handlers do (`tailcfg::godecode::from_slice`: `POST /machine/register` into a
//! `RegisterRequest`, `POST /machine/map` into a `MapRequest`). Any bytes decode or give an
//! error, never a panic. A value that decodes re-encodes (with serde_json and with Go's
//! escaping) to JSON that decodes to an equal value, and its Hostinfo survives the trip
//! through the database (`serde_json::to_string`, read back with `serde_json::from_str`).
#![no_main]

use std::fmt::Debug;

use hs_types::tailcfg::{Hostinfo, MapRequest, RegisterRequest, godecode, gojson};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + Debug>(v: &T) {
    for bytes in [
        serde_json::to_vec(v).expect("a decoded request encodes"),
        gojson::to_vec(v).expect("a decoded request encodes Go's way"),
    ] {
        let again: T = godecode::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "re-encoded request does not decode: {e}: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(&again, v, "{}", String::from_utf8_lossy(&bytes));
    }
}

fn stored(h: Option<&Hostinfo>) {
    let Some(h) = h else { return };
    let text = serde_json::to_string(h).expect("a Hostinfo encodes");
    let back: Hostinfo = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("stored Hostinfo does not read back: {e}: {text}"));
    assert_eq!(&back, h, "{text}");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = godecode::from_slice::<RegisterRequest>(data) {
        round_trip(&r);
        stored(r.hostinfo.as_ref());
    }
    if let Ok(r) = godecode::from_slice::<MapRequest>(data) {
        round_trip(&r);
        stored(r.hostinfo.as_ref());
    }
});
