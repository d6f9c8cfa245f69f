//! Tailscale SSH policy as sent to a node: `SSHPolicy`, `SSHRule`, `SSHPrincipal`,
//! `SSHAction` and `SSHRecorderFailureAction`. Unlike most of tailcfg these use lowerCamel
//! JSON names.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use super::gotime;
use super::omit::{is_zero, null_default};

/// Go's `tailcfg.SSHPolicy`. In a MapResponse, `None` means unchanged; a policy with no rules
/// means no SSH access at all.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SSHPolicy {
    /// `rules`: evaluated in order; the first match decides. Always written.
    #[serde(rename = "rules", deserialize_with = "null_default")]
    pub rules: Vec<SSHRule>,
}

/// Go's `tailcfg.SSHRule`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SSHRule {
    /// `ruleExpires`: when the rule stops applying; `None` (omitted) = never.
    #[serde(
        rename = "ruleExpires",
        with = "gotime::ptr",
        skip_serializing_if = "Option::is_none"
    )]
    pub rule_expires: Option<DateTime<Utc>>,
    /// `principals`: who the rule matches (any one of them). Always written.
    #[serde(rename = "principals", deserialize_with = "null_default")]
    pub principals: Vec<SSHPrincipal>,
    /// `sshUsers`: requested ssh user (or `*`) → local user; `=` maps to the same name, `""`
    /// means no match. Always written (`{}` when empty; Go writes `null` for a nil map, and a
    /// client treats both as "no user matches").
    #[serde(rename = "sshUsers", deserialize_with = "null_default")]
    pub ssh_users: BTreeMap<String, String>,
    /// `action`: what to do on a match; `None` (written as `null`) or invalid means deny.
    #[serde(rename = "action")]
    pub action: Option<SSHAction>,
    /// `acceptEnv`: environment variable names (with `*`/`?` wildcards) the session may set.
    #[serde(
        rename = "acceptEnv",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub accept_env: Vec<String>,
}

/// Go's `tailcfg.SSHPrincipal`: matching any one non-empty field is a match.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SSHPrincipal {
    /// `node`: a node's StableID.
    #[serde(rename = "node", skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// `nodeIP`: a node's Tailscale IP.
    #[serde(rename = "nodeIP", skip_serializing_if = "String::is_empty")]
    pub node_ip: String,
    /// `userLogin`: a login name such as `alice@example.com`.
    #[serde(rename = "userLogin", skip_serializing_if = "String::is_empty")]
    pub user_login: String,
    /// `any`: matches every connection.
    #[serde(rename = "any", skip_serializing_if = "is_zero")]
    pub any: bool,
    /// `pubKeys`: deprecated and ignored by clients; kept so it round-trips.
    #[serde(
        rename = "pubKeys",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub unused_pub_keys: Vec<String>,
}

/// Go's `tailcfg.SSHAction`: the outcome of a matching rule (also the body of a
/// `HoldAndDelegate` long-poll answer). All fields `omitempty`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SSHAction {
    /// `message`: shown to the user before the action.
    #[serde(rename = "message", skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `reject`: terminate the connection (wins over `accept`).
    #[serde(rename = "reject", skip_serializing_if = "is_zero")]
    pub reject: bool,
    /// `accept`: accept without further prompts.
    #[serde(rename = "accept", skip_serializing_if = "is_zero")]
    pub accept: bool,
    /// `sessionDuration`: maximum session length, as Go's int64 nanoseconds; zero = unlimited.
    #[serde(
        rename = "sessionDuration",
        with = "duration_nanos",
        skip_serializing_if = "Duration::is_zero"
    )]
    pub session_duration: Duration,
    /// `allowAgentForwarding`.
    #[serde(rename = "allowAgentForwarding", skip_serializing_if = "is_zero")]
    pub allow_agent_forwarding: bool,
    /// `holdAndDelegate`: a URL (fetched over Noise) that answers with the final action.
    #[serde(rename = "holdAndDelegate", skip_serializing_if = "String::is_empty")]
    pub hold_and_delegate: String,
    /// `allowLocalPortForwarding`.
    #[serde(rename = "allowLocalPortForwarding", skip_serializing_if = "is_zero")]
    pub allow_local_port_forwarding: bool,
    /// `allowRemotePortForwarding`.
    #[serde(rename = "allowRemotePortForwarding", skip_serializing_if = "is_zero")]
    pub allow_remote_port_forwarding: bool,
    /// `recorders`: session recorder addresses (`ip:port`).
    #[serde(
        rename = "recorders",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub recorders: Vec<SocketAddr>,
    /// `onRecordingFailure`: `None` = fail open.
    #[serde(rename = "onRecordingFailure", skip_serializing_if = "Option::is_none")]
    pub on_recording_failure: Option<SSHRecorderFailureAction>,
}

/// Go's `tailcfg.SSHRecorderFailureAction` (PascalCase names, all `omitempty`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SSHRecorderFailureAction {
    /// `RejectSessionWithMessage`: reject if recording cannot start.
    #[serde(
        rename = "RejectSessionWithMessage",
        skip_serializing_if = "String::is_empty"
    )]
    pub reject_session_with_message: String,
    /// `TerminateSessionWithMessage`: terminate if recording fails later.
    #[serde(
        rename = "TerminateSessionWithMessage",
        skip_serializing_if = "String::is_empty"
    )]
    pub terminate_session_with_message: String,
    /// `NotifyURL`: POSTed to (over Noise) when recording fails.
    #[serde(rename = "NotifyURL", skip_serializing_if = "String::is_empty")]
    pub notify_url: String,
}

/// Go `time.Duration` JSON: an int64 count of nanoseconds.
mod duration_nanos {
    use super::*;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        // Saturate rather than fail: i64 nanoseconds cover ~292 years.
        s.serialize_i64(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let n = Option::<i64>::deserialize(d)?.unwrap_or(0);
        u64::try_from(n)
            .map(Duration::from_nanos)
            .map_err(|_| de::Error::custom(format_args!("negative duration {n}ns")))
    }
}
