//! The validation table of `docs/policy.md`: for each rule of the policy language that
//! decides between valid and refused, a policy that breaks it (refused, the message naming
//! the offending value) and the nearest one that keeps it (accepted). Rules the conformance
//! corpus already pins with the hosted service's exact message are checked there; these
//! are the ones derived from Tailscale's documented model and Go Headscale's rules.

use hs_policy::{CompiledPolicy, Policy, PolicyError};

/// Owners, groups, a host and an ACL skeleton every case builds on.
/// A section the case writes itself replaces the base one (cases that do keep what the base
/// defines).
fn policy(extra: &str) -> String {
    let base = [
        (
            "groups",
            r#""groups": {"group:eng": ["alice@example.com"]}"#,
        ),
        (
            "tagOwners",
            r#""tagOwners": {"tag:x": ["alice@example.com"], "tag:y": ["group:eng"]}"#,
        ),
        ("hosts", r#""hosts": {"web": "10.1.0.1"}"#),
    ];
    let mut parts: Vec<&str> = base
        .iter()
        .filter(|(key, _)| !extra.contains(&format!("\"{key}\":")))
        .map(|(_, section)| *section)
        .collect();
    parts.push(extra);
    format!("{{{}}}", parts.join(",\n"))
}

fn verdict(text: &str) -> Result<(), String> {
    Policy::parse(text)
        .and_then(|p| CompiledPolicy::compile_and_test(&p, &[], &[]).map(drop))
        .map_err(|e| e.to_string())
}

/// (rule, breaking policy section, words the refusal must contain, keeping section)
const TABLE: &[(&str, &str, &str, &str)] = &[
    (
        "group names start with group:",
        r#""acls": [], "groups": {"group:eng": ["alice@example.com"], "eng": ["a@example.com"]}"#,
        "'group:'",
        r#""acls": [], "groups": {"group:eng": ["alice@example.com"], "group:ops": ["a@example.com"]}"#,
    ),
    (
        "group members are users",
        r#""acls": [], "groups": {"group:eng": ["alice@example.com"], "group:ops": ["tag:x"]}"#,
        "\"tag:x\": group members must be users",
        r#""acls": [], "groups": {"group:eng": ["alice@example.com"], "group:ops": ["bob@"]}"#,
    ),
    (
        "host names are words",
        r#""acls": [], "hosts": {"a:b": "10.0.0.1"}"#,
        "hosts[\"a:b\"]: invalid host name",
        r#""acls": [], "hosts": {"a-b": "10.0.0.1"}"#,
    ),
    (
        "tag owners exist",
        r#""acls": [], "tagOwners": {"tag:x": [], "tag:z": ["group:nope"]}"#,
        "group not found: \"group:nope\"",
        r#""acls": [], "tagOwners": {"tag:x": [], "tag:z": ["group:eng", "tag:x"]}"#,
    ),
    (
        "auto-approved routes are prefixes",
        r#""acls": [], "autoApprovers": {"routes": {"10.0.0.0/33": ["tag:x"]}}"#,
        "invalid prefix",
        r#""acls": [], "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:x"]}}"#,
    ),
    (
        "auto-approvers exist",
        r#""acls": [], "autoApprovers": {"exitNode": ["tag:nope"]}"#,
        "tag not found: \"tag:nope\"",
        r#""acls": [], "autoApprovers": {"exitNode": ["tag:y"]}"#,
    ),
    (
        "auto-approvers are users, groups, tags or roles",
        r#""acls": [], "autoApprovers": {"exitNode": ["web"]}"#,
        "\"web\" is not a user, group, tag or role autogroup",
        r#""acls": [], "autoApprovers": {"exitNode": ["alice@example.com"]}"#,
    ),
    (
        "brackets only around IPv6",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["[10.0.0.1]:22"]}]"#,
        "square brackets are only valid around IPv6 addresses",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["[fd7a:115c:a1e0::1]:22"]}]"#,
    ),
    (
        "port 0 is no port",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:0"]}]"#,
        "first port must be >0",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:1"]}]"#,
    ),
    (
        "port 0 is no port (grants)",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["0-22"]}]"#,
        "first port must be >0",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["1-22"]}]"#,
    ),
    (
        "only TCP, UDP and SCTP have ports",
        r#""acls": [{"action": "accept", "src": ["*"], "proto": "icmp", "dst": ["tag:x:22"]}]"#,
        "protocol does not support specific ports: \"icmp\"",
        r#""acls": [{"action": "accept", "src": ["*"], "proto": "icmp", "dst": ["tag:x:*"]}]"#,
    ),
    (
        "only TCP, UDP and SCTP have ports (grants)",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["gre:22"]}]"#,
        "protocol does not support specific ports: \"gre\"",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["sctp:22"]}]"#,
    ),
    (
        "the internet is never a source",
        r#""acls": [{"action": "accept", "src": ["autogroup:internet"], "dst": ["*:*"]}]"#,
        "autogroup:internet can only be used as a destination",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:internet:*"]}]"#,
    ),
    (
        "the internet is never a source (grants)",
        r#""grants": [{"src": ["autogroup:internet"], "dst": ["tag:x"], "ip": ["*"]}]"#,
        "autogroup:internet can only be used as a destination",
        r#""grants": [{"src": ["tag:y"], "dst": ["tag:x"], "ip": ["*"]}]"#,
    ),
    (
        "SSH destinations are devices, not *",
        r#""ssh": [{"action": "accept", "src": ["alice@example.com"], "dst": ["*"], "users": ["root"]}]"#,
        "invalid dst \"*\"",
        r#""ssh": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:x"], "users": ["root"]}]"#,
    ),
    (
        "SSH never comes from the internet",
        r#""ssh": [{"action": "accept", "src": ["autogroup:internet"], "dst": ["tag:x"], "users": ["root"]}]"#,
        "invalid src \"autogroup:internet\"",
        r#""ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:x"], "users": ["root"]}]"#,
    ),
    (
        "tagged SSH sources never reach user-owned devices",
        r#""ssh": [{"action": "accept", "src": ["tag:x"], "dst": ["autogroup:member"], "users": ["root"]}]"#,
        "tags in SSH source cannot access user-owned devices",
        r#""ssh": [{"action": "accept", "src": ["tag:x"], "dst": ["autogroup:tagged"], "users": ["root"]}]"#,
    ),
    (
        "a user's devices are reached over SSH by that user only",
        r#""ssh": [{"action": "accept", "src": ["group:eng"], "dst": ["alice@example.com"], "users": ["root"]}]"#,
        "user destination requires source to contain only that same user",
        r#""ssh": [{"action": "accept", "src": ["alice@example.com"], "dst": ["alice@example.com"], "users": ["root"]}]"#,
    ),
    (
        "checkPeriod belongs to check",
        r#""ssh": [{"action": "accept", "src": ["group:eng"], "dst": ["autogroup:self"], "users": ["root"], "checkPeriod": "1h"}]"#,
        "checkPeriod is only valid with action \"check\"",
        r#""ssh": [{"action": "check", "src": ["group:eng"], "dst": ["autogroup:self"], "users": ["root"], "checkPeriod": "1h"}]"#,
    ),
    (
        "nodeAttrs groups exist",
        r#""nodeAttrs": [{"target": ["group:nope"], "attr": ["funnel"]}]"#,
        "group not found: \"group:nope\"",
        r#""nodeAttrs": [{"target": ["group:eng"], "attr": ["funnel"]}]"#,
    ),
    (
        "nodeAttrs targets are devices",
        r#""nodeAttrs": [{"target": ["autogroup:internet"], "attr": ["funnel"]}]"#,
        "not a valid nodeAttrs target",
        r#""nodeAttrs": [{"target": ["autogroup:tagged"], "attr": ["funnel"]}]"#,
    ),
];

#[test]
fn each_rule_refuses_what_breaks_it_and_keeps_what_does_not() {
    let mut wrong = Vec::new();
    for (rule, bad, words, good) in TABLE {
        match verdict(&policy(bad)) {
            Ok(()) => wrong.push(format!("{rule}: accepted {bad}")),
            Err(m) if !m.contains(words) => {
                wrong.push(format!("{rule}: refused with {m:?}, expected {words:?}"));
            }
            Err(_) => {}
        }
        if let Err(m) = verdict(&policy(good)) {
            wrong.push(format!("{rule}: refused the valid {good}: {m}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_table_is_the_one_documented() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
        )
        .join("../../docs/policy.md"),
    )
    .unwrap_or_default();
    for (rule, ..) in TABLE {
        assert!(doc.contains(rule), "docs/policy.md lacks the row {rule:?}");
    }
}

/// A policy file is one JSON object: an array, a string or a number at the top is refused
/// with where it is (serde alone would build the policy from an array).
#[test]
fn the_top_level_must_be_an_object() {
    for (text, line, column) in [
        ("[]", 1, 1),
        ("// c\n  [1]", 2, 3),
        ("\"x\"", 1, 1),
        ("7", 1, 1),
    ] {
        match Policy::parse(text) {
            Err(PolicyError::Parse {
                line: l,
                column: c,
                message,
            }) => {
                assert_eq!((l, c), (line, column), "{text:?}");
                assert!(message.contains("JSON object"), "{message}");
            }
            other => panic!("{text:?} was not refused: {other:?}"),
        }
    }
    assert!(Policy::parse("// ok\n{}").is_ok());
}
