//! Scenario loading and comparison for the conformance runner (see the corpus README for the
//! comparison rules).

use hs_policy::{CompiledPolicy, Policy, PolicyNode, PolicyUser, Roles};
use hs_types::tailcfg::{CapMap, FilterRule, SSHPolicy};
use hs_types::{NodeId, UserId};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// A scenario's verdict.
pub(crate) enum Outcome {
    Pass,
    Fail(String),
}

/// Result of one scenario, plus (refused?, same message?) for refusal scenarios.
pub(crate) struct ScenarioResult {
    pub(crate) result: Outcome,
    pub(crate) refused: Option<(bool, bool)>,
}

/// Capability keys the hosted service sets from tailnet settings and admin roles rather than
/// from the policy; they are not the engine's to produce, so both sides drop them.
const HOSTED_DEFAULT_CAPS: &[&str] = &[
    "https://tailscale.com/cap/file-sharing",
    "https://tailscale.com/cap/ssh",
    "https://tailscale.com/cap/tailnet-lock",
    "https://tailscale.com/cap/is-owner",
    "https://tailscale.com/cap/is-admin",
    "probe-udp-lifetime",
    "ssh-behavior-v1",
    "ssh-env-vars",
    "store-appc-routes",
    "tailnet-display-name",
    "default-auto-update",
];

fn nets(v: &Value) -> Vec<ipnet::IpNet> {
    v.as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Builds the engine input from a scenario topology; node order is by name. Which router is
/// primary for a shared prefix is HA state, read from each node's own `self_primary_routes`.
pub(crate) fn tailnet(
    topo: &Value,
    captures: &Value,
) -> (Vec<PolicyUser>, Vec<PolicyNode>, Vec<String>) {
    let users: Vec<PolicyUser> = topo["users"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| PolicyUser {
                    id: UserId(u["id"].as_u64().unwrap_or_default()),
                    name: u["name"].as_str().unwrap_or_default().to_string(),
                    email: u["email"].as_str().unwrap_or_default().to_string(),
                    groups: Vec::new(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut names = Vec::new();
    let mut nodes = Vec::new();
    if let Some(map) = topo["nodes"].as_object() {
        let sorted: BTreeMap<_, _> = map.iter().collect();
        for (i, (name, n)) in sorted.into_iter().enumerate() {
            let user = n["user"]
                .as_str()
                .and_then(|un| users.iter().find(|u| u.name == un))
                .map(|u| u.id);
            nodes.push(PolicyNode {
                id: NodeId(i as u64 + 1),
                name: name.clone(),
                ipv4: n["ipv4"].as_str().and_then(|s| s.parse().ok()),
                ipv6: n["ipv6"].as_str().and_then(|s| s.parse().ok()),
                user,
                tags: n["tags"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| Some(t.as_str()?.to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
                announced_routes: nets(&n["routable_ips"]),
                approved_routes: nets(&n["approved_routes"]),
                primary_routes: nets(&captures[name.as_str()]["self_primary_routes"]),
            });
            names.push(name.clone());
        }
    }
    (users, nodes, names)
}

/// User roles are tailnet state the topology does not list; the hosted service reports them
/// in each user-owned node's own capability map (`is-admin`, `is-owner`), read from there as
/// primary routes are read from `self_primary_routes`.
pub(crate) fn roles(nodes: &[PolicyNode], names: &[String], captures: &Value) -> Roles {
    let mut roles = Roles::default();
    for (node, name) in nodes.iter().zip(names) {
        let (Some(user), false) = (node.user, node.is_tagged()) else {
            continue;
        };
        let caps = &captures[name.as_str()]["self_cap_map"];
        if caps.get("https://tailscale.com/cap/is-admin").is_some() && !roles.admins.contains(&user)
        {
            roles.admins.push(user);
        }
        if caps.get("https://tailscale.com/cap/is-owner").is_some() && !roles.owners.contains(&user)
        {
            roles.owners.push(user);
        }
    }
    roles
}

fn norm_filter(rules: &Value) -> Vec<Value> {
    let Some(arr) = rules.as_array() else {
        return vec![];
    };
    arr.iter()
        .map(|r| {
            let mut src: Vec<String> = r["SrcIPs"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| Some(x.as_str()?.to_string()))
                        .collect()
                })
                .unwrap_or_default();
            src.sort();
            let mut proto: Vec<u64> = r["IPProto"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
                .unwrap_or_default();
            proto.sort();
            let mut dst: Vec<(String, u64, u64)> = r["DstPorts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|d| {
                            (
                                d["IP"].as_str().unwrap_or_default().to_string(),
                                d["Ports"]["First"].as_u64().unwrap_or_default(),
                                d["Ports"]["Last"].as_u64().unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            dst.sort();
            let caps: Vec<Value> = r["CapGrant"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|g| {
                            let mut d: Vec<String> = g["Dsts"]
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|x| Some(x.as_str()?.to_string()))
                                        .collect()
                                })
                                .unwrap_or_default();
                            d.sort();
                            json!({"Dsts": d, "CapMap": g["CapMap"]})
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({"SrcIPs": src, "IPProto": proto, "DstPorts": dst, "CapGrant": caps})
        })
        .collect()
}

fn wire_filter(rules: &Value) -> Value {
    // Through the wire type, so `null` and `[]` capability values read the same.
    let parsed: Vec<FilterRule> = serde_json::from_value(rules.clone()).unwrap_or_default();
    serde_json::to_value(parsed).unwrap_or(Value::Null)
}

fn norm_ssh(v: &Value) -> Vec<Value> {
    v["rules"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let mut p: Vec<String> = r["principals"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| Some(x["nodeIP"].as_str()?.to_string()))
                                .collect()
                        })
                        .unwrap_or_default();
                    p.sort();
                    let mut out =
                        json!({"principals": p, "sshUsers": r["sshUsers"], "action": r["action"]});
                    if let Some(env) = r.get("acceptEnv").filter(|e| !e.is_null()) {
                        out["acceptEnv"] = env.clone();
                    }
                    out
                })
                .collect()
        })
        .unwrap_or_default()
}

fn strip_caps(v: &Value) -> BTreeMap<String, Value> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !HOSTED_DEFAULT_CAPS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs one scenario file.
pub(crate) fn run_scenario(s: &Value) -> ScenarioResult {
    let policy_text = match &s["policy"] {
        Value::String(t) => t.clone(),
        other => other.to_string(),
    };
    let mut fails = Vec::new();
    // The HuJSON form must parse to the same document as the JSON form.
    if let Some(h) = s["policy_hujson"].as_str() {
        match hs_policy::hujson::from_str::<Value>(h) {
            Ok(v) => {
                let want: Value = serde_json::from_str(&policy_text).unwrap_or(Value::Null);
                if v["policy"] != want {
                    fails.push("policy_hujson parses to a different policy".to_string());
                }
            }
            Err(e) => fails.push(format!("policy_hujson: {e}")),
        }
    }
    let (users, nodes, names) = tailnet(&s["topology"], &s["captures"]);
    let roles = roles(&nodes, &names, &s["captures"]);
    let compiled = Policy::parse(&policy_text)
        .and_then(|p| CompiledPolicy::compile_and_test(&p, &users, &nodes))
        .map(|mut c| {
            c.set_roles(roles);
            c
        });
    let code = s["api_response_code"].as_u64().unwrap_or(200);
    if code != 200 {
        let want = s["api_response_body"]["message"]
            .as_str()
            .unwrap_or_default();
        return match compiled {
            Ok(_) => ScenarioResult {
                result: Outcome::Fail(format!("accepted, hosted refused with {want:?}")),
                refused: Some((false, false)),
            },
            Err(e) => {
                let got = e.to_string();
                let same = got == want;
                ScenarioResult {
                    result: if same && fails.is_empty() {
                        Outcome::Pass
                    } else {
                        fails.push(format!("refused with {got:?}, hosted said {want:?}"));
                        Outcome::Fail(fails.join("; "))
                    },
                    refused: Some((true, same)),
                }
            }
        };
    }
    let c = match compiled {
        Ok(c) => c,
        Err(e) => {
            return ScenarioResult {
                result: Outcome::Fail(format!("refused: {e}")),
                refused: None,
            };
        }
    };
    let captures = s["captures"].as_object().cloned().unwrap_or_default();
    for (name, cap) in &captures {
        let Some(n) = names.iter().position(|x| x == name) else {
            fails.push(format!("{name}: not in topology"));
            continue;
        };
        // Packet filter.
        let want = norm_filter(&wire_filter(&cap["packet_filter_rules"]));
        let got = norm_filter(&serde_json::to_value(c.filter_rules(n)).unwrap_or(Value::Null));
        if want != got {
            let ws: BTreeSet<String> = want.iter().map(|v| v.to_string()).collect();
            let gs: BTreeSet<String> = got.iter().map(|v| v.to_string()).collect();
            let kind = if ws == gs { "order" } else { "content" };
            fails.push(format!(
                "{name}: filter {kind} differs\n   want {}\n   got  {}",
                Value::Array(want),
                Value::Array(got)
            ));
        }
        // Peers.
        if let Some(peers) = cap["peers"].as_array() {
            let want: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = peers
                .iter()
                .map(|p| {
                    let set = |k: &str| -> BTreeSet<String> {
                        p[k].as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| Some(x.as_str()?.to_string()))
                                    .collect()
                            })
                            .unwrap_or_default()
                    };
                    (
                        p["name"].as_str().unwrap_or_default().to_string(),
                        (set("allowed_ips"), set("primary_routes")),
                    )
                })
                .collect();
            let got: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = c
                .peers(n)
                .into_iter()
                .map(|p| {
                    (
                        names[p.index].clone(),
                        (
                            p.allowed_ips.iter().map(|x| x.to_string()).collect(),
                            p.primary_routes.iter().map(|x| x.to_string()).collect(),
                        ),
                    )
                })
                .collect();
            if want != got {
                fails.push(format!(
                    "{name}: peers differ\n   want {want:?}\n   got  {got:?}"
                ));
            }
        }
        // SSH.
        if !cap["ssh_policy"].is_null() || !c.ssh_rules(n).is_empty() {
            let parsed: SSHPolicy =
                serde_json::from_value(cap["ssh_policy"].clone()).unwrap_or_default();
            let want = norm_ssh(&serde_json::to_value(parsed).unwrap_or(Value::Null));
            let got = norm_ssh(&serde_json::to_value(c.ssh_policy(n)).unwrap_or(Value::Null));
            if want != got {
                fails.push(format!(
                    "{name}: ssh differs\n   want {}\n   got  {}",
                    Value::Array(want),
                    Value::Array(got)
                ));
            }
        }
        // Own capability map.
        if cap.get("self_cap_map").is_some() {
            let want = strip_caps(&cap["self_cap_map"]);
            let ours = serde_json::to_value(c.self_cap_map(n)).unwrap_or(Value::Null);
            let got = strip_caps(&ours);
            if want != got {
                fails.push(format!(
                    "{name}: self caps differ\n   want {want:?}\n   got  {got:?}"
                ));
            }
        }
        // whois capability maps.
        if let Some(w) = cap["whois_cap_maps"].as_object() {
            for (ip, want) in w {
                let Ok(addr) = ip.parse() else { continue };
                // Through the wire CapMap, where `null` and `[]` values read the same.
                let as_wire = |v: Value| -> Option<CapMap> { serde_json::from_value(v).ok() };
                let got = serde_json::to_value(c.whois_caps(n, addr)).unwrap_or(Value::Null);
                if as_wire(got.clone()) != as_wire(want.clone()) {
                    fails.push(format!("{name}: whois {ip} want {want} got {got}"));
                }
            }
        }
    }
    ScenarioResult {
        result: if fails.is_empty() {
            Outcome::Pass
        } else {
            Outcome::Fail(fails.join("\n  "))
        },
        refused: None,
    }
}
