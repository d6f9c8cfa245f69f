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
        .map_err(|e| e.detailed())
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
        "\"autogroup:internet\" not valid on the src side of a rule",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:internet:*"]}]"#,
    ),
    (
        "the internet is never a source (grants)",
        r#""grants": [{"src": ["autogroup:internet"], "dst": ["tag:x"], "ip": ["*"]}]"#,
        "\"autogroup:internet\" not valid on the src side of a rule",
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
    (
        "tag names are letters, digits and dashes",
        r#""acls": [], "tagOwners": {"tag:x": [], "tag:web_1": []}"#,
        "tagOwners[\"tag:web_1\"]: tag names can only contain numbers, letters, or dashes",
        r#""acls": [], "tagOwners": {"tag:x": [], "tag:web-1": []}"#,
    ),
    (
        "tag names are not empty",
        r#""acls": [], "tagOwners": {"tag:x": [], "tag:": []}"#,
        "tagOwners[\"tag:\"]: tag names must not be empty",
        r#""acls": [], "tagOwners": {"tag:x": [], "tag:y": []}"#,
    ),
    (
        "groups a rule names exist",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["group:nope:22"]}]"#,
        "dst=\"group:nope\": group not found: \"group:nope\"",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["group:eng:22"]}]"#,
    ),
    (
        "groups a rule names exist (grants)",
        r#""grants": [{"src": ["*"], "dst": ["group:nope"], "ip": ["*"]}]"#,
        "group not found: \"group:nope\"",
        r#""grants": [{"src": ["*"], "dst": ["group:eng"], "ip": ["*"]}]"#,
    ),
    (
        "groups an SSH rule names exist",
        r#""ssh": [{"action": "accept", "src": ["group:nope"], "dst": ["tag:x"], "users": ["root"]}]"#,
        "src=group not found: \"group:nope\"",
        r#""ssh": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:x"], "users": ["root"]}]"#,
    ),
    (
        "autogroup:self is never a source",
        r#""acls": [{"action": "accept", "src": ["autogroup:self"], "dst": ["autogroup:self:*"]}]"#,
        "\"autogroup:self\" not valid on the src side of a rule",
        r#""acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}]"#,
    ),
    (
        "autogroup:self is never a source (grants)",
        r#""grants": [{"src": ["autogroup:self"], "dst": ["tag:x"], "ip": ["*"]}]"#,
        "\"autogroup:self\" not valid on the src side of a rule",
        r#""grants": [{"src": ["autogroup:member"], "dst": ["tag:x"], "ip": ["*"]}]"#,
    ),
    (
        "addresses outside the tailnet are never a destination",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:danger-all:*"]}]"#,
        "cannot use autogroup:danger-all as a dst",
        r#""acls": [{"action": "accept", "src": ["autogroup:danger-all"], "dst": ["*:*"]}]"#,
    ),
    (
        "autogroup:nonroot belongs to SSH users",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:nonroot:22"]}]"#,
        "autogroup:nonroot can only be used in SSH users",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:member:22"]}]"#,
    ),
    (
        "autogroup:nonroot belongs to SSH users (nodeAttrs)",
        r#""nodeAttrs": [{"target": ["autogroup:nonroot"], "attr": ["mullvad"]}]"#,
        "not a valid nodeAttrs target",
        r#""nodeAttrs": [{"target": ["autogroup:member"], "attr": ["mullvad"]}]"#,
    ),
    (
        "SSH comes from users, groups, tags, member or tagged, not *",
        r#""ssh": [{"action": "accept", "src": ["*"], "dst": ["tag:x"], "users": ["root"]}]"#,
        "invalid src \"*\"",
        r#""ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:x"], "users": ["root"]}]"#,
    ),
    (
        "SSH sources are not hosts or addresses",
        r#""ssh": [{"action": "accept", "src": ["web"], "dst": ["tag:x"], "users": ["root"]}]"#,
        "invalid src \"web\"",
        r#""ssh": [{"action": "accept", "src": ["tag:y"], "dst": ["tag:x"], "users": ["root"]}]"#,
    ),
    (
        "SSH destinations are not groups",
        r#""ssh": [{"action": "accept", "src": ["group:eng"], "dst": ["group:eng"], "users": ["root"]}]"#,
        "invalid dst \"group:eng\"",
        r#""ssh": [{"action": "accept", "src": ["group:eng"], "dst": ["autogroup:self"], "users": ["root"]}]"#,
    ),
    (
        "tagged SSH sources never reach autogroup:self",
        r#""ssh": [{"action": "accept", "src": ["tag:x"], "dst": ["autogroup:self"], "users": ["root"]}]"#,
        "dst=\"autogroup:self\": tags in SSH source cannot access user-owned devices",
        r#""ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["root"]}]"#,
    ),
    (
        "capability names are domain/path, not URLs",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "app": {"https://example.com/cap/x": [{}]}}]"#,
        "capability name must have the form {domain}/{path}",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "app": {"example.com/cap/x": [{}]}}]"#,
    ),
    (
        "capability names are domain/path, not bare words",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "app": {"capx": [{}]}}]"#,
        "capability name must have the form {domain}/{path}",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "app": {"example.com/capx": [{}]}}]"#,
    ),
    (
        "protocol names are Tailscale's",
        r#""acls": [{"action": "accept", "src": ["*"], "proto": "icmpv6", "dst": ["tag:x:*"]}]"#,
        "proto name \"icmpv6\" not known; use protocol number 0-255 or protocol name (icmp, tcp, udp, etc.)",
        r#""acls": [{"action": "accept", "src": ["*"], "proto": "IPv6-ICMP", "dst": ["tag:x:*"]}]"#,
    ),
    (
        "protocol numbers are written without leading zeros",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["06:22"]}]"#,
        "leading 0 not permitted in protocol number \"06\"",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["6:22"]}]"#,
    ),
    (
        "protocol 0 is no protocol",
        r#""acls": [{"action": "accept", "src": ["*"], "proto": "0", "dst": ["tag:x:*"]}]"#,
        "leading 0 not permitted in protocol number \"0\"",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:*"]}]"#,
    ),
    (
        "protocol 99 is Tailscale's own",
        r#""acls": [{"action": "accept", "src": ["*"], "proto": "99", "dst": ["tag:x:*"]}]"#,
        "IP protocol 99 is reserved for use by Tailscale",
        r#""acls": [{"action": "accept", "src": ["*"], "proto": "98", "dst": ["tag:x:*"]}]"#,
    ),
    (
        "* is every port, never one item of a list",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:22,*"]}]"#,
        "port range \"*\": invalid first integer",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:22,80"]}]"#,
    ),
    (
        "rules name addresses as IPs or prefixes, not ranges",
        r#""acls": [{"action": "accept", "src": ["10.0.0.0-10.0.0.7"], "dst": ["tag:x:22"]}]"#,
        "\"10.0.0.0-10.0.0.7\": invalid address",
        r#""acls": [{"action": "accept", "src": ["10.0.0.0/29"], "dst": ["tag:x:22"]}]"#,
    ),
    (
        "host values are IPs or prefixes, not ranges",
        r#""acls": [], "hosts": {"web": "10.0.0.0-10.0.0.7"}"#,
        "hosts[\"web\"]: \"10.0.0.0-10.0.0.7\" is not an IP address or prefix",
        r#""acls": [], "hosts": {"web": "10.0.0.0/29"}"#,
    ),
    (
        "IP pools hold Tailscale addresses",
        r#""nodeAttrs": [{"target": ["tag:x"], "ipPool": ["10.0.0.0/8"]}]"#,
        "IPPool(10.0.0.0/8): network not within 100.64.0.0/10",
        r#""nodeAttrs": [{"target": ["tag:x"], "ipPool": ["100.80.0.0/16"]}]"#,
    ),
    (
        "* as a test's source is the tailnet, not any address",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:22"]}], "tests": [{"src": "10.9.9.9", "accept": ["tag:x:22"]}]"#,
        "tests[0]: \"tag:x:22\" should be accepted",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:22"]}], "tests": [{"src": "100.64.9.9", "accept": ["tag:x:22"]}]"#,
    ),
    (
        "a test asserts something",
        r#""acls": [], "tests": [{"src": "tag:x"}]"#,
        "tests[0]: no \"accept\" or \"deny\" to check",
        r#""acls": [], "tests": [{"src": "tag:x", "deny": ["tag:y:22"]}]"#,
    ),
    (
        "a key is named once per object",
        r#""acls": [], "groups": {"group:eng": ["alice@example.com"], "group:eng": ["bob@example.com"]}"#,
        "duplicate key \"group:eng\"",
        r#""acls": [], "groups": {"group:eng": ["alice@example.com", "bob@example.com"]}"#,
    ),
    (
        "every protocol is proto left out, not *",
        r#""acls": [{"action": "accept", "src": ["*"], "proto": "*", "dst": ["tag:x:*"]}]"#,
        "proto name \"*\" not known; use protocol number 0-255 or protocol name (icmp, tcp, udp, etc.)",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:*"]}]"#,
    ),
    (
        "port ranges run upward",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:90-80"]}]"#,
        "dst=\"tag:x:90-80\": port range \"90-80\": first port must be >= last port",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:80-90"]}]"#,
    ),
    (
        "port ranges run upward (grants)",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["tcp:90-80"]}]"#,
        "port range \"90-80\": first port must be >= last port",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["tcp:80-90"]}]"#,
    ),
    (
        "a port range has one dash",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:1-2-3"]}]"#,
        "port range \"1-2-3\": too many dashes(-)",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:1-3"]}]"#,
    ),
    (
        "ports are decimal digits, unsigned",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:+22"]}]"#,
        "port range \"+22\": invalid first integer",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:22"]}]"#,
    ),
    (
        "a destination's port list is not empty",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:"]}]"#,
        "dst=\"tag:x:\": invalid port list: \"\"",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:*"]}]"#,
    ),
    (
        "an ACL destination has ports",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["web"]}]"#,
        "dst=\"web\": hostport must contain a colon (\":\")",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["web:*"]}]"#,
    ),
    (
        "an ACL destination names one alias",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x,tag:y:22"]}]"#,
        "host cannot contain a comma (\",\")",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:22", "tag:y:22"]}]"#,
    ),
    (
        "a grant's ip entry is not empty",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": [""]}]"#,
        "empty string",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["*"]}]"#,
    ),
    (
        "a grant's ip protocol is not empty",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": [":22"]}]"#,
        "empty protocol",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["22"]}]"#,
    ),
    (
        "a grant's ip entry has one protocol",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["tcp:22:80"]}]"#,
        "proto name \"tcp:22\" not known",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["tcp:22", "tcp:80"]}]"#,
    ),
    (
        "a grant's ip entry names one port range",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["tcp:22,80"]}]"#,
        "port range \"22,80\": invalid first integer",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["tcp:22", "tcp:80", "*:443"]}]"#,
    ),
    (
        "every address is * in a grant, in any spelling",
        r#""grants": [{"src": ["*"], "dst": ["0::/0"], "ip": ["*"]}]"#,
        "dst \"::/0\": to allow all IP addresses, use \"*\" or \"autogroup:internet\"",
        r#""grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]"#,
    ),
    (
        "capability names have a domain and a path",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "app": {"example.com/": [{}]}}]"#,
        "capability name must have the form {domain}/{path}",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "app": {"example.com/cap": [{}]}}]"#,
    ),
    (
        "tailscale.com capabilities are those Tailscale's apps read",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "app": {"tailscale.com/cap/secret": [{}]}}]"#,
        "capability name must not be in the tailscale.com domain",
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "app": {"tailscale.com/cap/secrets": [{}], "tailscale.com/cap/tailsql": [{}]}}]"#,
    ),
    (
        "checkPeriod units are Go's",
        r#""ssh": [{"action": "check", "src": ["group:eng"], "dst": ["autogroup:self"], "users": ["root"], "checkPeriod": "1d"}]"#,
        "time: unknown unit \"d\" in duration \"1d\"",
        r#""ssh": [{"action": "check", "src": ["group:eng"], "dst": ["autogroup:self"], "users": ["root"], "checkPeriod": "24h"}]"#,
    ),
    (
        "checkPeriod numbers have units",
        r#""ssh": [{"action": "check", "src": ["group:eng"], "dst": ["autogroup:self"], "users": ["root"], "checkPeriod": "12"}]"#,
        "time: missing unit in duration \"12\"",
        r#""ssh": [{"action": "check", "src": ["group:eng"], "dst": ["autogroup:self"], "users": ["root"], "checkPeriod": "12h"}]"#,
    ),
    (
        "src and its legacy name users are not both given",
        r#""acls": [{"action": "accept", "src": ["*"], "users": ["*"], "dst": ["tag:x:22"]}]"#,
        "acls[0]: both \"src\" and its legacy name \"users\" are given",
        r#""acls": [{"action": "accept", "users": ["*"], "ports": ["tag:x:22"]}]"#,
    ),
    (
        "dst and its legacy name ports are not both given",
        r#""acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:22"], "ports": ["tag:y:22"]}]"#,
        "acls[0]: both \"dst\" and its legacy name \"ports\" are given",
        r#""acls": [{"action": "accept", "src": ["*"], "ports": ["tag:y:22"]}]"#,
    ),
    (
        "accept and its legacy name allow are not both given",
        r#""acls": [{"action": "accept", "src": ["tag:y"], "dst": ["tag:x:22"]}], "tests": [{"src": "tag:y", "accept": ["tag:x:22"], "allow": ["tag:x:22"]}]"#,
        "tests[0]: both \"accept\" and its legacy name \"allow\" are given",
        r#""acls": [{"action": "accept", "src": ["tag:y"], "dst": ["tag:x:22"]}], "tests": [{"src": "tag:y", "allow": ["tag:x:22"]}]"#,
    ),
    (
        "IP set names start with ipset:",
        r#""acls": [], "ipsets": {"office": ["10.0.0.0/8"]}"#,
        "ipsets[\"office\"]: IP set names are 'ipset:'",
        r#""acls": [], "ipsets": {"ipset:office": ["10.0.0.0/8"]}"#,
    ),
    (
        "IP sets hold addresses, not identities",
        r#""acls": [], "ipsets": {"ipset:a": ["10.0.0.0/8", "tag:x"]}"#,
        "ipsets[\"ipset:a\"]: \"tag:x\": a target is an IP address, prefix, range",
        r#""acls": [], "ipsets": {"ipset:a": ["10.0.0.0/8", "10.1.0.1-10.1.0.9", "fd00::1", "host:web", "autogroup:internet"]}"#,
    ),
    (
        "IP sets name defined IP sets and hosts",
        r#""acls": [], "ipsets": {"ipset:a": ["add ipset:nope", "add host:nope"]}"#,
        "ipsets[\"ipset:a\"]: \"add ipset:nope\": IP set \"ipset:nope\" not found",
        r#""acls": [], "ipsets": {"ipset:a": ["add ipset:b", "add host:web"], "ipset:b": ["10.0.0.1"]}"#,
    ),
    (
        "IP sets do not contain themselves",
        r#""acls": [], "ipsets": {"ipset:a": ["ipset:b"], "ipset:b": ["ipset:a"]}"#,
        "circular reference: ipset:a -> ipset:b -> ipset:a",
        r#""acls": [], "ipsets": {"ipset:a": ["ipset:b"], "ipset:b": ["10.0.0.1"]}"#,
    ),
    (
        "an IP set that removes writes add before each target",
        r#""acls": [], "ipsets": {"ipset:a": ["10.0.0.0/8", "remove 10.0.0.1"]}"#,
        "\"10.0.0.0/8\": an IP set that removes targets writes \"add\" or \"remove\" before each one",
        r#""acls": [], "ipsets": {"ipset:a": ["add 10.0.0.0/8", "remove 10.0.0.1"]}"#,
    ),
    (
        "rules name defined IP sets",
        r#""ipsets": {"ipset:a": ["10.0.0.0/8"]}, "acls": [{"action": "accept", "src": ["*"], "dst": ["ipset:nope:22"]}]"#,
        "dst=\"ipset:nope\": IP set \"ipset:nope\" not found",
        r#""ipsets": {"ipset:a": ["10.0.0.0/8"]}, "acls": [{"action": "accept", "src": ["ipset:a"], "dst": ["ipset:a:22"]}], "grants": [{"src": ["ipset:a"], "dst": ["ipset:a"], "ip": ["*"]}]"#,
    ),
    (
        "IP sets are named in acls, grants and IP sets only",
        r#""ipsets": {"ipset:a": ["10.0.0.0/8"]}, "acls": [], "ssh": [{"action": "accept", "src": ["ipset:a"], "dst": ["tag:x"], "users": ["root"]}]"#,
        "ssh[0]: \"ipset:a\": IP sets can be named only in acls and grants",
        r#""ipsets": {"ipset:a": ["10.0.0.0/8"]}, "acls": [], "ssh": [{"action": "accept", "src": ["tag:y"], "dst": ["tag:x"], "users": ["root"]}]"#,
    ),
    (
        "posture names start with posture:",
        r#""acls": [], "postures": {"mac": ["node:os == 'macos'"]}"#,
        "postures[\"mac\"]: posture names are 'posture:'",
        r#""acls": [], "postures": {"posture:mac": ["node:os == 'macos'"]}"#,
    ),
    (
        "posture conditions are an attribute, an operator and a value",
        r#""acls": [], "postures": {"posture:mac": ["node:os ~ 'macos'"]}"#,
        "postures[\"posture:mac\"]: \"node:os ~ 'macos'\": unknown operator",
        r#""acls": [], "postures": {"posture:mac": ["node:os IN ['macos', 'linux']", "node:tsReleaseTrack == 'stable'", "node:tsAutoUpdate", "custom:tier IS SET", "ip:country not in ['XX']"]}"#,
    ),
    (
        "posture order operators compare numbers and versions",
        r#""acls": [], "postures": {"posture:new": ["node:os >= 'macos'"]}"#,
        ">= compares numbers and the version attributes node:osVersion and node:tsVersion only",
        r#""acls": [], "postures": {"posture:new": ["node:tsVersion >= '1.40'", "custom:score > 7"]}"#,
    ),
    (
        "srcPosture names defined postures",
        r#""postures": {"posture:mac": ["node:os == 'macos'"]}, "grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["*"], "srcPosture": ["posture:nope"]}]"#,
        "grants[0]: srcPosture \"posture:nope\": posture not found",
        r#""postures": {"posture:mac": ["node:os == 'macos'"]}, "defaultSrcPosture": ["posture:mac"], "grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["*"], "srcPosture": ["posture:mac"]}], "acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x:22"], "srcPosture": ["posture:mac"]}]"#,
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

/// The `sshTests` rows of the table: an entry needs destination nodes to be judged at all,
/// so these run on a small tailnet (alice's node, bob's node, a `tag:x` node).
const SSH_TEST_ROWS: &[(&str, &str, &str, &str)] = &[
    (
        "an SSH test asserts something",
        r#""sshTests": [{"src": "alice@example.com", "dst": ["tag:x"]}]"#,
        r#"sshTests[0]: no "accept", "check" or "deny" to check"#,
        r#""sshTests": [{"src": "alice@example.com", "dst": ["tag:x"], "deny": ["root"]}]"#,
    ),
    (
        "an SSH test's check needs a check rule; its accept takes either",
        r#""ssh": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:x"], "users": ["root"]}],
           "sshTests": [{"src": "alice@example.com", "dst": ["tag:x"], "check": ["root"]}]"#,
        r#"sshTests[0]: user "root" on n2"#,
        r#""ssh": [{"action": "check", "src": ["alice@example.com"], "dst": ["tag:x"], "users": ["root"]}],
           "sshTests": [{"src": "alice@example.com", "dst": ["tag:x"], "accept": ["root"], "check": ["root"]}]"#,
    ),
    (
        "every device of an SSH test's source must agree",
        r#""ssh": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:x"], "users": ["root"]}],
           "sshTests": [{"src": "autogroup:member", "dst": ["tag:x"], "accept": ["root"]}]"#,
        r#"sshTests[0]: user "root" on n2"#,
        r#""ssh": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:x"], "users": ["root"]}],
           "sshTests": [{"src": "alice@example.com", "dst": ["tag:x"], "accept": ["root"]}]"#,
    ),
    (
        "an SSH test's destination is not a host standing for a prefix",
        r#""hosts": {"web": "10.1.0.1", "net": "10.1.0.0/24"}, "ssh": [], "sshTests": [{"src": "alice@example.com", "dst": ["net"], "deny": ["root"]}]"#,
        "SSH tests dst contains disallowed element \"net\"",
        r#""hosts": {"web": "100.64.0.2", "net": "10.1.0.0/24"}, "ssh": [], "sshTests": [{"src": "alice@example.com", "dst": ["web"], "deny": ["root"]}]"#,
    ),
    (
        "an SSH destination's user:*@domain is the tailnet's domain",
        r#""ssh": [{"action": "accept", "src": ["alice@example.com"], "dst": ["user:*@example.org"], "users": ["root"]}]"#,
        "[ssh] example.org is not associated with this Tailnet",
        r#""ssh": [{"action": "accept", "src": ["alice@example.com"], "dst": ["user:*@example.com"], "users": ["root"]}]"#,
    ),
    (
        "tagged SSH sources never reach a domain's users",
        r#""ssh": [{"action": "accept", "src": ["tag:x"], "dst": ["user:*@example.com"], "users": ["root"]}]"#,
        "dst=\"user:*@example.com\": tags in SSH source cannot access user-owned devices",
        r#""ssh": [{"action": "accept", "src": ["tag:x"], "dst": ["tag:x"], "users": ["root"]}]"#,
    ),
];

#[test]
fn ssh_test_rows() {
    use hs_policy::{PolicyNode, PolicyUser};
    use hs_types::{NodeId, UserId};
    let user = |id: u64, name: &str| PolicyUser {
        id: UserId(id),
        name: name.into(),
        email: format!("{name}@example.com"),
        groups: vec![],
    };
    let users = [user(1, "alice"), user(2, "bob")];
    let node = |id: u64, owner: Option<u64>, tags: &[&str]| PolicyNode {
        id: NodeId(id),
        name: format!("n{id}"),
        ipv4: Some(format!("100.64.0.{id}").parse().unwrap()),
        ipv6: None,
        user: owner.map(UserId),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        announced_routes: vec![],
        approved_routes: vec![],
        primary_routes: vec![],
    };
    let nodes = [
        node(1, Some(1), &[]),
        node(2, None, &["tag:x"]),
        node(3, Some(2), &[]),
    ];
    let run = |sections: &str| {
        let text = policy(&format!(r#""acls": [], {sections}"#));
        Policy::parse(&text)
            .and_then(|p| CompiledPolicy::compile_and_test(&p, &users, &nodes).map(drop))
            .map_err(|e| e.detailed())
    };
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/policy.md"),
    )
    .unwrap_or_default();
    let mut wrong = Vec::new();
    for (rule, bad, words, good) in SSH_TEST_ROWS {
        match run(bad) {
            Ok(()) => wrong.push(format!("{rule}: accepted {bad}")),
            Err(m) if !m.contains(words) => {
                wrong.push(format!("{rule}: refused with {m:?}, expected {words:?}"));
            }
            Err(_) => {}
        }
        if let Err(m) = run(good) {
            wrong.push(format!("{rule}: refused the valid {good}: {m}"));
        }
        if !doc.contains(rule) {
            wrong.push(format!("docs/policy.md lacks the row {rule:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// JSON `null` for a list, map or flag is read as the field left out, as the hosted
/// service reads it: accepted wherever leaving the field out is, and refused where the field
/// is required (SSH `users`).
#[test]
fn null_is_the_same_as_absent() {
    for section in [
        r#""acls": [{"action": "accept", "src": null, "dst": null, "proto": null}]"#,
        r#""grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["*"], "app": null, "via": null}]"#,
        r#""ssh": [{"action": "accept", "src": ["tag:y"], "dst": ["tag:x"], "users": ["root"], "acceptEnv": null, "checkPeriod": null}]"#,
        r#""nodeAttrs": [{"target": ["tag:x"], "attr": null, "ipPool": null, "app": null}]"#,
        r#""autoApprovers": {"routes": null, "exitNode": null}"#,
        r#""acls": null, "grants": null, "ssh": null, "nodeAttrs": null, "tests": null, "sshTests": null, "randomizeClientPort": null"#,
    ] {
        if let Err(m) = verdict(&policy(section)) {
            panic!("refused {section}: {m}");
        }
    }
    let m = verdict(&policy(
        r#""ssh": [{"action": "accept", "src": ["tag:y"], "dst": ["tag:x"], "users": null}]"#,
    ))
    .unwrap_err();
    assert!(m.contains("users must be specified"), "{m}");
}

/// Every entry of a section is a JSON object: serde would also build one from an array of
/// its fields in order, which the hosted service and Go Headscale refuse.
#[test]
fn entries_are_objects() {
    for (section, place) in [
        (r#""autoApprovers": []"#, "autoApprovers"),
        (r#""acls": [["accept", ["*"], ["*:*"]]]"#, "acls[0]"),
        (r#""grants": [[["*"], ["*"], ["*"]]]"#, "grants[0]"),
        (
            r#""ssh": [["accept", ["tag:y"], ["tag:x"], ["root"]]]"#,
            "ssh[0]",
        ),
        (r#""nodeAttrs": [[["tag:x"], ["mullvad"]]]"#, "nodeAttrs[0]"),
        (r#""tests": ["tag:x"]"#, "tests[0]"),
        (r#""sshTests": [1]"#, "sshTests[0]"),
    ] {
        match verdict(&policy(section)) {
            Err(m) if m.contains(place) && m.contains("must be a JSON object") => {}
            other => panic!("{section}: {other:?}"),
        }
    }
    verdict(&policy(r#""autoApprovers": {"exitNode": ["tag:x"]}"#)).unwrap();
}
