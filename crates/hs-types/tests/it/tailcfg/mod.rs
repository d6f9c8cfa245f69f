//! Wire-type tests: Go-shaped JSON in, exact Go-shaped JSON out, lossless round trips.

mod corpus;
mod derp;
mod filter;
mod godecode;
mod hostinfo;
mod map;
mod node;
mod prop;
mod register;
mod ssh;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Parses `json` as `T`, panicking with the serde error (with its path) on failure.
fn parse<T: DeserializeOwned>(json: &str) -> T {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("parse failed: {e}\n{json}"))
}

/// Serializes `v` to compact JSON.
fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serialize")
}

/// Asserts that parsing `json` and writing it back gives the same JSON value (nothing lost,
/// nothing added), and that parsing our output gives back an equal value.
fn assert_lossless<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(json: &str) -> T {
    let v: T = parse(json);
    let out = to_json(&v);
    let a: Value = serde_json::from_str(json).expect("input is JSON");
    let b: Value = serde_json::from_str(&out).expect("output is JSON");
    assert_eq!(
        a, b,
        "round trip changed the JSON:\n in: {json}\nout: {out}"
    );
    let again: T = parse(&out);
    assert_eq!(v, again);
    v
}
