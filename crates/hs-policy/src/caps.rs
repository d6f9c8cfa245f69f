//! Capabilities: a node's own capability map (`nodeAttrs`, `randomizeClientPort`) and the
//! application capabilities a peer's address carries towards a node (what `whois` reports).

use crate::alias::Alias;
use crate::engine::CompiledPolicy;
use crate::ipset::IpSet;
use crate::resolve::Resolver;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A capability map: name → values (`None` for a bare attribute).
pub type CapMap = BTreeMap<String, Option<Vec<Value>>>;

/// Capabilities one attribute implies besides itself.
fn companions(attr: &str) -> &'static [&'static str] {
    match attr {
        "funnel" => &[
            "https://tailscale.com/cap/funnel-ports?ports=443,8443,10000",
            "https://tailscale.com/cap/warn-funnel-no-https",
        ],
        _ => &[],
    }
}

impl CompiledPolicy {
    fn target_matches(&self, r: &Resolver<'_>, target: &str, n: usize) -> bool {
        let role_users = match target {
            "autogroup:admin" => Some(&self.roles.admins),
            "autogroup:owner" => Some(&self.roles.owners),
            _ => None,
        };
        if let Some(users) = role_users {
            // Roles belong to users: their own (untagged) nodes carry the attribute.
            let node = &self.nodes[n];
            return !node.is_tagged() && node.user.is_some_and(|u| users.contains(&u));
        }
        match r.parse(target) {
            Ok(Alias::Wildcard) => true,
            Ok(
                a @ (Alias::User(_)
                | Alias::Group(_)
                | Alias::Tag(_)
                | Alias::Member
                | Alias::Tagged),
            ) => r.identity_member(&a, &self.nodes[n]),
            Ok(a @ (Alias::Host(_) | Alias::Addr(_))) => r.source_member(&a, &self.nodes[n]),
            _ => false,
        }
    }

    /// Node `n`'s own capability map from `nodeAttrs` and `randomizeClientPort`.
    pub fn self_cap_map(&self, n: usize) -> CapMap {
        // Asked for every node at every recompile: decided for this node alone.
        let r = Resolver::new(&self.policy, &self.users, &self.nodes);
        let mut out = CapMap::new();
        for na in &self.policy.node_attrs {
            if !na.target.iter().any(|t| self.target_matches(&r, t, n)) {
                continue;
            }
            for a in &na.attr {
                out.insert(a.clone(), None);
                for c in companions(a) {
                    out.insert((*c).to_string(), None);
                }
            }
            if let Some(app) = &na.app {
                for (k, v) in app {
                    out.entry(k.clone())
                        .or_insert_with(|| Some(Vec::new()))
                        .get_or_insert_with(Vec::new)
                        .extend(v.iter().cloned());
                }
            }
        }
        if self.policy.randomize_client_port {
            out.insert("randomize-client-port".into(), None);
        }
        out
    }

    /// The application capabilities source address `src` has towards node `n`, or `None`.
    pub fn whois_caps(&self, n: usize, src: IpAddr) -> Option<BTreeMap<String, Vec<Value>>> {
        let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut any = false;
        for rule in self.filter(n) {
            if rule.cap_grant.is_empty() {
                continue;
            }
            let mut srcs = IpSet::new();
            for s in rule.src_ips.iter() {
                if s == "*" {
                    srcs.add_range("0.0.0.0".parse().ok()?, "255.255.255.255".parse().ok()?);
                    srcs.add_range(
                        "::".parse().ok()?,
                        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().ok()?,
                    );
                } else if let Some(set) = crate::alias::parse_addr(s) {
                    srcs.extend(&set);
                }
            }
            if !srcs.contains_ip(src) {
                continue;
            }
            for (_, caps) in &rule.cap_grant {
                for (k, v) in caps {
                    any = true;
                    out.entry(k.clone()).or_default().extend(v.iter().cloned());
                }
            }
        }
        any.then_some(out)
    }
}
