//! The renderings compared with what Go itself printed: `tests/testdata/go-output/expected.txt`
//! is the output of the Go programs beside it (`main.go.txt`, `strings.go.txt`), run against
//! Go Headscale 0.29.3's generated `headscale.v1` types, `encoding/json` and
//! `gopkg.in/yaml.v3` (`go run .` in a module that requires `github.com/juanfont/headscale
//! v0.29.3`). The values below are the same ones, built the way the CLI builds them.

use std::collections::HashMap;

use super::GoValue::{self, Int, List, Map, Null, Plain, Str, Struct, Uint};

const EXPECTED: &str = include_str!("../tests/testdata/go-output/expected.txt");

/// `name format` → the text Go printed.
fn expected() -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in EXPECTED.lines() {
        if let Some(header) = line.strip_prefix("=== ") {
            if let Some((k, lines)) = current.take() {
                out.insert(k, lines.join("\n"));
            }
            if header != "end" {
                current = Some((header.to_owned(), Vec::new()));
            }
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    out
}

fn ts(seconds: i64, nanos: i32) -> GoValue {
    GoValue::time(Some(&prost_types::Timestamp { seconds, nanos }))
}

const T: i64 = 1_780_315_200;

fn user(id: u64, name: &str, created: GoValue, rest: [&str; 5]) -> GoValue {
    let [display, email, pid, provider, pic] = rest.map(|s| Str(s.to_owned()));
    Struct(vec![
        ("id", Uint(id)),
        ("name", Str(name.to_owned())),
        ("created_at", created),
        ("display_name", display),
        ("email", email),
        ("provider_id", pid),
        ("provider", provider),
        ("profile_pic_url", pic),
    ])
}

fn full() -> GoValue {
    user(
        1,
        "alice",
        ts(T, 123_000_000),
        [
            "Alice A",
            "a@example.com",
            "https://idp/1",
            "oidc",
            "https://pic",
        ],
    )
}

fn bare(name: &str) -> GoValue {
    user(2, name, ts(T, 0), [""; 5])
}

#[allow(clippy::too_many_arguments, reason = "mirrors the PreAuthKey fields")]
fn pak(
    id: u64,
    key: &str,
    reusable: bool,
    exp: GoValue,
    created: GoValue,
    tags: &[&str],
    u: GoValue,
) -> GoValue {
    Struct(vec![
        ("user", u),
        ("id", Uint(id)),
        ("key", Str(key.to_owned())),
        ("reusable", GoValue::Bool(reusable)),
        ("ephemeral", GoValue::Bool(false)),
        ("used", GoValue::Bool(false)),
        ("expiration", exp),
        ("created_at", created),
        (
            "acl_tags",
            GoValue::strings(&tags.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()),
        ),
    ])
}

fn node(fields: Vec<(&'static str, GoValue)>) -> GoValue {
    let names = [
        "id",
        "machine_key",
        "node_key",
        "disco_key",
        "ip_addresses",
        "name",
        "user",
        "last_seen",
        "expiry",
        "pre_auth_key",
        "created_at",
        "register_method",
        "given_name",
        "online",
        "approved_routes",
        "available_routes",
        "subnet_routes",
        "tags",
    ];
    let mut given: HashMap<&str, GoValue> = fields.into_iter().collect();
    Struct(
        names
            .iter()
            .map(|n| {
                let default = match *n {
                    "id" => Uint(0),
                    "register_method" => Int(0),
                    "online" => GoValue::Bool(false),
                    "ip_addresses" | "approved_routes" | "available_routes" | "subnet_routes"
                    | "tags" => List(vec![]),
                    "user" | "last_seen" | "expiry" | "pre_auth_key" | "created_at" => Null,
                    _ => Str(String::new()),
                };
                (*n, given.remove(n).unwrap_or(default))
            })
            .collect(),
    )
}

fn strs(v: &[&str]) -> GoValue {
    GoValue::strings(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
}

fn cases() -> Vec<(&'static str, GoValue)> {
    let the_pak = pak(
        3,
        "hskey-auth-abc-***",
        true,
        ts(T, 0),
        ts(T, 123_000_000),
        &["tag:a", "tag:b"],
        bare("123"),
    );
    vec![
        ("user_full", full()),
        ("user_bare", bare("123")),
        ("users", List(vec![full(), bare("123")])),
        ("users_empty", List(vec![])),
        ("preauthkey", the_pak.clone()),
        (
            "node",
            node(vec![
                ("id", Uint(4)),
                ("machine_key", Str("mkey:aa".into())),
                ("node_key", Str("nodekey:bb".into())),
                ("disco_key", Str("discokey:cc".into())),
                ("ip_addresses", strs(&["100.64.0.1", "fd7a:115c:a1e0::1"])),
                ("name", Str("laptop".into())),
                ("user", bare("123")),
                ("last_seen", ts(T, 123_000_000)),
                ("pre_auth_key", the_pak),
                ("created_at", ts(T, 0)),
                ("register_method", Int(1)),
                ("given_name", Str("laptop".into())),
                ("online", GoValue::Bool(true)),
                ("approved_routes", strs(&["10.0.0.0/24"])),
                ("available_routes", strs(&["10.0.0.0/24"])),
            ]),
        ),
        (
            "node_bare",
            node(vec![
                ("id", Uint(5)),
                ("name", Str("x".into())),
                ("user", bare("123")),
            ]),
        ),
        (
            "apikey",
            Struct(vec![
                ("id", Uint(1)),
                ("prefix", Str("abcdef".into())),
                ("expiration", ts(T, 123_000_000)),
                ("created_at", ts(T, 0)),
                ("last_seen", Null),
            ]),
        ),
        ("delete_user", Struct(vec![])),
        ("error", Plain("error", "user not found".into())),
        (
            "policy",
            Struct(vec![
                ("policy", Str("{\n  \"acls\": []\n}\n".into())),
                ("updated_at", ts(T, 123_000_000)),
            ]),
        ),
    ]
}

#[test]
fn json_json_line_and_yaml_match_go() {
    let want = expected();
    for (name, v) in cases() {
        assert_eq!(
            v.to_json(true),
            want[&format!("{name} json")],
            "{name} json"
        );
        assert_eq!(
            v.to_json(false),
            want[&format!("{name} json-line")],
            "{name} json-line"
        );
        assert_eq!(
            v.to_yaml(),
            format!("{}\n", want[&format!("{name} yaml")]),
            "{name} yaml"
        );
    }
}

#[test]
fn nested_sequences_and_string_quoting_match_go() {
    let want = expected();
    let u = user(2, "bob", ts(T, 0), [""; 5]);
    let n = node(vec![
        ("id", Uint(5)),
        ("name", Str("x".into())),
        ("user", u.clone()),
        ("ip_addresses", strs(&["1.2.3.4"])),
        ("pre_auth_key", pak(1, "", false, Null, Null, &["tag:x"], u)),
    ]);
    assert_eq!(List(vec![n]).to_yaml(), format!("{}\n", want["nodes yaml"]));
    let samples = [
        "",
        "123",
        "1.5",
        "1e3",
        "0x1F",
        "true",
        "false",
        "yes",
        "no",
        "on",
        "off",
        "null",
        "~",
        "Null",
        "TRUE",
        "-",
        "-a",
        "a: b",
        "a:b",
        "a #b",
        "#a",
        "*a",
        "&a",
        "!a",
        "|a",
        ">a",
        "'a",
        "\"a",
        "%a",
        "@a",
        "`a",
        "[a",
        "{a",
        "a,b",
        " a",
        "a ",
        "?a",
        "a\tb",
        "é",
        "hskey-auth-abc-***",
        "10.0.0.0/24",
        "fd7a::1",
        "2026-06-01",
        "12:30",
        ".5",
        "+1",
        "-1",
        "0o7",
        "007",
        ".inf",
        "NaN",
        "a\nb",
        "a\n",
        "=",
        "<<",
    ];
    assert_eq!(
        strs(&samples).to_yaml(),
        format!("{}\n", want["strings yaml"])
    );
}

#[test]
fn maps_are_printed_whole() {
    let m = Map(vec![("Result".into(), "Node deleted".into())]);
    assert_eq!(m.to_json(true), "{\n\t\"Result\": \"Node deleted\"\n}");
    assert_eq!(m.to_yaml(), "Result: Node deleted\n");
}
