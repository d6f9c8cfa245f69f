//! The engine's decisions in the wire types a control server sends: `tailcfg::FilterRule` for
//! packet filters and `tailcfg::SSHPolicy` for SSH.

use crate::engine::{CompiledPolicy, Rule};
use crate::ssh::{SshAction, SshRuleOut};
use hs_types::tailcfg::{
    CapGrant, CapMap, FilterRule, NetPortRange, PortRange, SSHAction, SSHPolicy, SSHPrincipal,
    SSHRule,
};

/// The URL template clients call back for an SSH `check` action.
pub const SSH_CHECK_URL: &str =
    "https://unused/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID?local_user=$LOCAL_USER";

/// Converts one engine rule to the wire form.
pub fn filter_rule(r: &Rule) -> FilterRule {
    FilterRule {
        src_ips: r.src_ips.to_vec(),
        dst_ports: r
            .dst_ports
            .iter()
            .map(|(ip, first, last)| NetPortRange {
                ip: ip.clone(),
                bits: None,
                ports: PortRange {
                    first: *first,
                    last: *last,
                },
            })
            .collect(),
        ip_proto: r.ip_proto.iter().map(|&p| i64::from(p)).collect(),
        cap_grant: r
            .cap_grant
            .iter()
            .map(|(dsts, caps)| CapGrant {
                dsts: dsts.clone(),
                caps: vec![],
                cap_map: caps
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<CapMap>(),
            })
            .collect(),
        ..FilterRule::default()
    }
}

/// Converts one engine SSH rule to the wire form.
pub fn ssh_rule(r: &SshRuleOut) -> SSHRule {
    let action = match r.action {
        SshAction::Accept => SSHAction {
            accept: true,
            allow_agent_forwarding: true,
            allow_local_port_forwarding: true,
            allow_remote_port_forwarding: true,
            ..SSHAction::default()
        },
        SshAction::Check { .. } => SSHAction {
            hold_and_delegate: SSH_CHECK_URL.to_string(),
            ..SSHAction::default()
        },
    };
    SSHRule {
        principals: r
            .principals
            .iter()
            .map(|ip| SSHPrincipal {
                node_ip: ip.clone(),
                ..SSHPrincipal::default()
            })
            .collect(),
        ssh_users: r.ssh_users.clone(),
        action: Some(action),
        accept_env: r.accept_env.clone(),
        ..SSHRule::default()
    }
}

impl CompiledPolicy {
    /// Node `n`'s packet filter in the wire form.
    pub fn filter_rules(&self, n: usize) -> Vec<FilterRule> {
        self.filter(n).iter().map(filter_rule).collect()
    }

    /// Node `n`'s SSH policy in the wire form.
    pub fn ssh_policy(&self, n: usize) -> SSHPolicy {
        SSHPolicy {
            rules: self.ssh_rules(n).iter().map(ssh_rule).collect(),
        }
    }
}
