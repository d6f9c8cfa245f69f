//! Per-viewer primary routers. Which of several routers serving a prefix is primary is HA
//! state (an input), but a `via` grant steers a viewer to the routers carrying its tags: for
//! that viewer, a via router shows the prefix and the global primary does not.
//!
//! The rule, as the hosted service applies it (via-grant-v37…v46 in the corpus):
//! - a viewer that serves the prefix itself sees the global primary (HA standby);
//! - a viewer with any plain (non-via) rule reaching the prefix uses the global primary;
//! - otherwise, a viewer whose only access is through via grants uses the routers carrying
//!   those via tags: the global primary if it is one of them, else the first in node order.

use crate::engine::CompiledPolicy;
use crate::rules::{CRule, DstKind};
use ipnet::IpNet;
use std::collections::HashMap;

/// Routers per subnet prefix, in node order, and the global primary of each prefix.
#[derive(Debug, Clone, Default)]
pub(crate) struct Routers {
    pub(crate) serving: HashMap<IpNet, Vec<usize>>,
    pub(crate) primary: HashMap<IpNet, usize>,
}

impl Routers {
    pub(crate) fn new(nodes: &[crate::input::PolicyNode]) -> Self {
        let mut r = Self::default();
        for (i, n) in nodes.iter().enumerate() {
            for route in n.subnet_routes() {
                r.serving.entry(route).or_default().push(i);
                if n.primary_routes.contains(&route) {
                    r.primary.entry(route).or_insert(i);
                }
            }
        }
        r
    }
}

/// True when one of the rule's destinations reaches `route` (a subnet prefix).
fn reaches(rule: &CRule, route: &IpNet) -> bool {
    rule.dsts.iter().any(|d| match &d.kind {
        DstKind::Any => true,
        DstKind::Addr(s) => s.overlaps_net(route),
        _ => false,
    })
}

impl CompiledPolicy {
    /// The router a via grant steers `viewer` to for `route`, or `None` when the viewer
    /// follows the global primary.
    pub(crate) fn via_router(&self, viewer: usize, route: &IpNet) -> Option<usize> {
        if !self.has_via || self.nodes[viewer].subnet_routes().any(|r| r == *route) {
            return None;
        }
        let mut tags: Vec<&str> = Vec::new();
        for rule in &self.rules {
            if !rule.src_nodes.contains(viewer) || !reaches(rule, route) {
                continue;
            }
            match &rule.via {
                // Plain access to the prefix goes through the global primary.
                None => return None,
                Some(v) => tags.extend(v.iter().map(String::as_str)),
            }
        }
        if tags.is_empty() {
            return None;
        }
        let serving = self.routers.serving.get(route)?;
        let candidates: Vec<usize> = serving
            .iter()
            .copied()
            .filter(|&i| {
                self.nodes[i]
                    .tags
                    .iter()
                    .any(|t| tags.contains(&t.as_str()))
            })
            .collect();
        let primary = self.routers.primary.get(route).copied();
        match primary {
            Some(p) if candidates.contains(&p) => Some(p),
            _ => candidates.first().copied(),
        }
    }
}
