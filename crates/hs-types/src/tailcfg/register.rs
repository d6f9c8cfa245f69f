//! `POST /machine/register`: `RegisterRequest`, `RegisterResponse`, `RegisterResponseAuth`,
//! `Oauth2Token` and `SignatureType`.
//!
//! Auth keys and OAuth tokens are secrets: the `Debug` impls here redact them.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::capver::CapabilityVersion;
use super::hostinfo::Hostinfo;
use super::omit::{is_zero, null_default};
use super::user::{Login, User};
use super::{b64, gotime};
use crate::key::NodePublic;

/// The text of a zero tailnet-lock key, which Go writes for an unset `NLKey`.
const ZERO_NL_KEY: &str = "nlpub:0000000000000000000000000000000000000000000000000000000000000000";

/// Go's `tailcfg.RegisterRequest`, sent by the client to log in, re-authenticate, rotate its
/// node key or log out (an `Expiry` in the past).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RegisterRequest {
    /// `Version`: the client's capability version. Always written.
    #[serde(rename = "Version")]
    pub version: CapabilityVersion,
    /// `NodeKey`: the node key being registered. Always written.
    #[serde(rename = "NodeKey", deserialize_with = "null_default")]
    pub node_key: NodePublic,
    /// `OldNodeKey`: the previous node key when rotating, zero otherwise. Always written.
    #[serde(rename = "OldNodeKey", deserialize_with = "null_default")]
    pub old_node_key: NodePublic,
    /// `NLKey`: the tailnet-lock public key in text form (`nlpub:<hex>`), kept opaque. The
    /// zero key (what clients without tailnet lock send) reads as `""`, and `""` is written as
    /// the zero key, as Go does.
    #[serde(
        rename = "NLKey",
        serialize_with = "nl_key",
        deserialize_with = "nl_key_de"
    )]
    pub nl_key: String,
    /// `Auth`: the auth key (or legacy OAuth token); `None` (omitted) for interactive login,
    /// restarts and logout.
    #[serde(rename = "Auth", skip_serializing_if = "Option::is_none")]
    pub auth: Option<RegisterResponseAuth>,
    /// `Expiry`: requested key expiry; `None` is Go's zero time (always written). A time in
    /// the past is a logout.
    #[serde(rename = "Expiry", with = "gotime::zero_is_none")]
    pub expiry: Option<DateTime<Utc>>,
    /// `Followup`: the AuthURL the client is waiting on, empty otherwise. Always written.
    #[serde(rename = "Followup")]
    pub followup: String,
    /// `Hostinfo`. Always written (`null` when `None`).
    #[serde(rename = "Hostinfo")]
    pub hostinfo: Option<Hostinfo>,
    /// `Ephemeral`: the node should be removed when it goes offline; omitted when false.
    #[serde(rename = "Ephemeral", skip_serializing_if = "is_zero")]
    pub ephemeral: bool,
    /// `NodeKeySignature`: tailnet-lock signature; written as `null` when empty.
    #[serde(rename = "NodeKeySignature", with = "b64")]
    pub node_key_signature: Vec<u8>,
    /// `SignatureType`: the request signature scheme; omitted when `None`.
    #[serde(rename = "SignatureType", skip_serializing_if = "is_zero")]
    pub signature_type: SignatureType,
    /// `Timestamp`: request creation time for signed requests; omitted when `None`.
    #[serde(
        rename = "Timestamp",
        with = "gotime::ptr",
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp: Option<DateTime<Utc>>,
    /// `DeviceCert`: X.509 device certificate (DER); omitted when empty.
    #[serde(
        rename = "DeviceCert",
        with = "b64",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub device_cert: Vec<u8>,
    /// `Signature`: request signature; omitted when empty.
    #[serde(
        rename = "Signature",
        with = "b64",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub signature: Vec<u8>,
    /// `Tailnet`: requested tailnet name; omitted when empty.
    #[serde(rename = "Tailnet", skip_serializing_if = "String::is_empty")]
    pub tailnet: String,
}

fn nl_key_de<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let k = Option::<String>::deserialize(d)?.unwrap_or_default();
    Ok(if k == ZERO_NL_KEY { String::new() } else { k })
}

fn nl_key<S: Serializer>(k: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if k.is_empty() { ZERO_NL_KEY } else { k })
}

/// Go's `tailcfg.RegisterResponseAuth`: the credentials inside a RegisterRequest. `Debug`
/// redacts them.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RegisterResponseAuth {
    /// `Oauth2Token`: only pre-1.66 Android clients send this; omitted when `None`.
    #[serde(rename = "Oauth2Token", skip_serializing_if = "Option::is_none")]
    pub oauth2_token: Option<Oauth2Token>,
    /// `AuthKey`: a pre-auth key (`tskey-...` or Headscale's own format); omitted when empty.
    #[serde(rename = "AuthKey", skip_serializing_if = "String::is_empty")]
    pub auth_key: String,
}

impl fmt::Debug for RegisterResponseAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterResponseAuth")
            .field("oauth2_token", &self.oauth2_token)
            .field("auth_key", &redacted(&self.auth_key))
            .finish()
    }
}

/// Go's `tailcfg.Oauth2Token` (snake_case JSON names, from `golang.org/x/oauth2`). `Debug`
/// redacts the tokens.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Oauth2Token {
    /// `access_token`. Always written.
    #[serde(rename = "access_token")]
    pub access_token: String,
    /// `token_type`; omitted when empty.
    #[serde(rename = "token_type", skip_serializing_if = "String::is_empty")]
    pub token_type: String,
    /// `refresh_token`; omitted when empty.
    #[serde(rename = "refresh_token", skip_serializing_if = "String::is_empty")]
    pub refresh_token: String,
    /// `expiry`: `None` (zero time) is omitted.
    #[serde(
        rename = "expiry",
        with = "gotime::zero_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiry: Option<DateTime<Utc>>,
}

impl fmt::Debug for Oauth2Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Oauth2Token")
            .field("access_token", &redacted(&self.access_token))
            .field("token_type", &self.token_type)
            .field("refresh_token", &redacted(&self.refresh_token))
            .field("expiry", &self.expiry)
            .finish()
    }
}

fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "<redacted>" }
}

/// Go's `tailcfg.RegisterResponse`. Go has no `omitempty` here: every field is written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RegisterResponse {
    /// `User`: the owning user.
    #[serde(rename = "User")]
    pub user: User,
    /// `Login`: the login the client turns into its own UserProfile.
    #[serde(rename = "Login")]
    pub login: Login,
    /// `NodeKeyExpired`: the client must generate a new node key and retry.
    #[serde(rename = "NodeKeyExpired")]
    pub node_key_expired: bool,
    /// `MachineAuthorized`: informational; `Node.MachineAuthorized` in the map is what counts.
    #[serde(rename = "MachineAuthorized")]
    pub machine_authorized: bool,
    /// `AuthURL`: non-empty while interactive authorization is pending.
    #[serde(rename = "AuthURL")]
    pub auth_url: String,
    /// `NodeKeySignature`: tailnet-lock signature to re-sign; `null` when empty.
    #[serde(rename = "NodeKeySignature", with = "b64")]
    pub node_key_signature: Vec<u8>,
    /// `Error`: non-empty fails the login with this text (sent with HTTP 200).
    #[serde(rename = "Error")]
    pub error: String,
}

/// Go's `tailcfg.SignatureType`: the scheme of a signed RegisterRequest. On the wire it is
/// text: `signature-none`, `signature-unknown`, `signature-v1`, `signature-v2`, or
/// `signature-unknown(N)` for other numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SignatureType {
    /// `signature-none` (Go 0): unsigned.
    #[default]
    None,
    /// `signature-unknown` (Go 1): an unknown scheme; an error if seen.
    Unknown,
    /// `signature-v1` (Go 2): deprecated RSA-PSS scheme.
    V1,
    /// `signature-v2` (Go 3): RSA-PSS over the Noise keys.
    V2,
    /// `signature-unknown(N)`: any other number.
    Other(i64),
}

impl SignatureType {
    /// Go's numeric value.
    pub fn as_i64(self) -> i64 {
        match self {
            Self::None => 0,
            Self::Unknown => 1,
            Self::V1 => 2,
            Self::V2 => 3,
            Self::Other(n) => n,
        }
    }

    /// The value for Go's number `n`.
    pub fn from_i64(n: i64) -> Self {
        match n {
            0 => Self::None,
            1 => Self::Unknown,
            2 => Self::V1,
            3 => Self::V2,
            n => Self::Other(n),
        }
    }
}

impl fmt::Display for SignatureType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::None => f.write_str("signature-none"),
            Self::Unknown => f.write_str("signature-unknown"),
            Self::V1 => f.write_str("signature-v1"),
            Self::V2 => f.write_str("signature-v2"),
            Self::Other(n) => write!(f, "signature-unknown({n})"),
        }
    }
}

impl Serialize for SignatureType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SignatureType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        Ok(match s.as_str() {
            "signature-none" | "" => Self::None,
            "signature-v1" => Self::V1,
            "signature-v2" => Self::V2,
            other => other
                .strip_prefix("signature-unknown(")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|n| n.parse().ok())
                .map_or(Self::Unknown, Self::from_i64),
        })
    }
}
