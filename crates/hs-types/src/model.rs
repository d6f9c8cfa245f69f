//! The domain model: users, nodes, pre-auth keys and API keys as the control plane, the
//! database and the NodeStore share them.
//!
//! These are plain data with a few pure helpers; time is always a parameter. Storage details
//! (JSON columns, soft deletes, bcrypt) stay in `hs-db`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, UserId};
use crate::key::{DiscoPublic, MachinePublic, NodePublic};

/// Placeholder until `tailcfg::Hostinfo` lands; then this alias is replaced by that type.
pub type Hostinfo = serde_json::Value;

/// A user (Headscale's "user", formerly "namespace"): owner of untagged nodes and of keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Database id.
    pub id: UserId,
    /// Unique login name (unique among users without a provider identifier).
    pub name: String,
    /// Human readable name, possibly empty.
    pub display_name: String,
    /// E-mail address, possibly empty.
    pub email: String,
    /// OIDC subject (`iss` + `sub`), `None` for users created by the CLI/API.
    pub provider_identifier: Option<String>,
    /// Which provider created the user (`"oidc"`, or empty).
    pub provider: String,
    /// Avatar URL, possibly empty.
    pub profile_pic_url: String,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// When the user was last changed.
    pub updated_at: DateTime<Utc>,
    /// The identity provider's groups (OIDC `groups` claim) at the user's last login. Not a
    /// database column (Go's schema has none): the control plane keeps them beside the
    /// database and fills them in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl User {
    /// The name shown to peers: the display name when set, else the login name.
    pub fn display(&self) -> &str {
        if self.display_name.is_empty() {
            &self.name
        } else {
            &self.display_name
        }
    }
}

/// How a node was registered; stored with Headscale's string values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum RegisterMethod {
    /// Not recorded (stored as the empty string).
    #[default]
    #[serde(rename = "")]
    Unspecified,
    /// With a pre-auth key (`"authkey"`).
    #[serde(rename = "authkey")]
    AuthKey,
    /// Approved by an operator with the CLI/API (`"cli"`).
    #[serde(rename = "cli")]
    Cli,
    /// Through an OIDC login (`"oidc"`).
    #[serde(rename = "oidc")]
    Oidc,
}

impl RegisterMethod {
    /// Headscale's stored string for this method.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "",
            Self::AuthKey => "authkey",
            Self::Cli => "cli",
            Self::Oidc => "oidc",
        }
    }

    /// Parses a stored value; unknown strings map to [`RegisterMethod::Unspecified`] because
    /// the column is informational and an odd value must not make a node unreadable.
    pub fn from_stored(s: &str) -> Self {
        s.parse().unwrap_or(Self::Unspecified)
    }
}

impl fmt::Display for RegisterMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a string that is not one of Headscale's register methods.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown register method {0:?} (expected \"authkey\", \"cli\", \"oidc\" or \"\")")]
pub struct UnknownRegisterMethod(pub String);

impl FromStr for RegisterMethod {
    type Err = UnknownRegisterMethod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "unspecified" => Ok(Self::Unspecified),
            "authkey" => Ok(Self::AuthKey),
            "cli" => Ok(Self::Cli),
            "oidc" => Ok(Self::Oidc),
            other => Err(UnknownRegisterMethod(other.to_owned())),
        }
    }
}

/// A node (a Tailscale device) as registered with the control server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Database id; also the wire `ID`.
    pub id: NodeId,
    /// The long-lived machine key the Noise session authenticates.
    pub machine_key: MachinePublic,
    /// The current WireGuard node key (rotates on re-login).
    pub node_key: NodePublic,
    /// The disco key for path discovery; zero until the client reports one.
    pub disco_key: DiscoPublic,
    /// UDP endpoints the client last reported.
    pub endpoints: Vec<SocketAddr>,
    /// The client's last reported host information, `None` before the first report.
    pub hostinfo: Option<Hostinfo>,
    /// Tailnet IPv4 address, if one is allocated.
    pub ipv4: Option<Ipv4Addr>,
    /// Tailnet IPv6 address, if one is allocated.
    pub ipv6: Option<Ipv6Addr>,
    /// The hostname the client reported, raw.
    pub hostname: String,
    /// The DNS label the server assigned (unique, at most 63 characters).
    pub given_name: String,
    /// Owning user; `None` for a tagged node, which tags own instead.
    pub user_id: Option<UserId>,
    /// How the node was registered.
    pub register_method: RegisterMethod,
    /// Tags (`tag:…`) the node carries; non-empty exactly when the node is tagged.
    pub tags: Vec<String>,
    /// The pre-auth key used to register, if any.
    pub auth_key_id: Option<u64>,
    /// When the node's key expires; `None` means never.
    pub expiry: Option<DateTime<Utc>>,
    /// When the node was last seen connected, if ever.
    pub last_seen: Option<DateTime<Utc>>,
    /// Subnet/exit routes an operator or auto-approver approved.
    pub approved_routes: Vec<IpNet>,
    /// When the node was registered.
    pub created_at: DateTime<Utc>,
    /// When the node row was last changed.
    pub updated_at: DateTime<Utc>,
}

impl Node {
    /// A node is tagged when tags own it; Headscale also treats a node without a user as
    /// tagged.
    pub fn is_tagged(&self) -> bool {
        !self.tags.is_empty() || self.user_id.is_none()
    }

    /// Whether the node's key has expired at `now` (a node without expiry never expires).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expiry.is_some_and(|e| e <= now)
    }

    /// Whether the node carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// The node's tailnet addresses, IPv4 first.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.ipv4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.ipv6.map(IpAddr::V6))
            .collect()
    }

    /// The node's tailnet addresses as host prefixes (`/32`, `/128`), IPv4 first.
    pub fn prefixes(&self) -> Vec<IpNet> {
        self.ips().into_iter().map(IpNet::from).collect()
    }

    /// Whether `ip` is one of the node's tailnet addresses.
    pub fn has_ip(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.ipv4 == Some(v4),
            IpAddr::V6(v6) => self.ipv6 == Some(v6),
        }
    }
}

/// A pre-authentication key, which lets a node register without interactive login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreAuthKey {
    /// Database id.
    pub id: u64,
    /// The public 12-hex-character prefix of `hskey-auth-<prefix>-<secret>`; empty for a
    /// legacy key.
    pub prefix: String,
    /// bcrypt hash of the secret part; empty for a legacy key.
    #[serde(with = "hex_bytes")]
    pub hash: Vec<u8>,
    /// A legacy plaintext key from an imported database, `None` for new keys. Secret: never
    /// log it.
    pub legacy_key: Option<String>,
    /// Owner; `None` for a key that registers tagged nodes.
    pub user_id: Option<UserId>,
    /// Whether the key may register more than one node.
    pub reusable: bool,
    /// Whether nodes registered with it are ephemeral (deleted when they go offline).
    pub ephemeral: bool,
    /// Whether a (non-reusable) key was used already.
    pub used: bool,
    /// Tags nodes registered with the key receive.
    pub tags: Vec<String>,
    /// When the key stops working; `None` means never.
    pub expiration: Option<DateTime<Utc>>,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
}

impl PreAuthKey {
    /// Whether the key has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }

    /// Whether the key may register a node at `now`: not expired, and either
    /// reusable or not used yet.
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        !self.is_expired(now) && (self.reusable || !self.used)
    }

    /// Whether nodes registered with this key are tagged.
    pub fn is_tagged(&self) -> bool {
        !self.tags.is_empty()
    }
}

/// An API key for the `/api/v1` HTTP API and remote CLI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Database id.
    pub id: u64,
    /// The public prefix of the key (12 hex characters, or 7 for legacy keys).
    pub prefix: String,
    /// bcrypt hash of the secret part.
    #[serde(with = "hex_bytes")]
    pub hash: Vec<u8>,
    /// When the key stops working; `None` means never.
    pub expiration: Option<DateTime<Utc>>,
    /// When the key was last used, if ever.
    pub last_seen: Option<DateTime<Utc>>,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
}

impl ApiKey {
    /// Whether the key has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }
}

/// Hashes travel as hex in serde forms so they stay readable in JSON dumps.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0)
            .single()
            .expect("valid timestamp")
    }

    fn key(reusable: bool, used: bool, exp: Option<i64>) -> PreAuthKey {
        PreAuthKey {
            id: 1,
            prefix: "0123456789ab".into(),
            hash: vec![1, 2, 3],
            legacy_key: None,
            user_id: Some(UserId(1)),
            reusable,
            ephemeral: false,
            used,
            tags: vec![],
            expiration: exp.map(t),
            created_at: t(0),
        }
    }

    #[test]
    fn register_method_round_trips_headscale_strings() {
        for (m, s) in [
            (RegisterMethod::Unspecified, ""),
            (RegisterMethod::AuthKey, "authkey"),
            (RegisterMethod::Cli, "cli"),
            (RegisterMethod::Oidc, "oidc"),
        ] {
            assert_eq!(m.as_str(), s);
            assert_eq!(s.parse::<RegisterMethod>(), Ok(m));
            assert_eq!(
                serde_json::to_string(&m).expect("serialize"),
                format!("\"{s}\"")
            );
        }
        assert!("password".parse::<RegisterMethod>().is_err());
        assert_eq!(
            RegisterMethod::from_stored("password"),
            RegisterMethod::Unspecified
        );
    }

    #[test]
    fn pre_auth_key_usability() {
        let now = t(100);
        assert!(key(false, false, None).is_usable(now));
        assert!(!key(false, true, None).is_usable(now));
        assert!(key(true, true, None).is_usable(now));
        assert!(!key(true, false, Some(100)).is_usable(now));
        assert!(key(true, false, Some(101)).is_usable(now));
    }

    fn node(user: Option<u64>, tags: &[&str], expiry: Option<i64>) -> Node {
        Node {
            id: NodeId(7),
            machine_key: MachinePublic::from_bytes([1; 32]),
            node_key: NodePublic::from_bytes([2; 32]),
            disco_key: DiscoPublic::from_bytes([0; 32]),
            endpoints: vec![],
            hostinfo: None,
            ipv4: Some(Ipv4Addr::new(100, 64, 0, 1)),
            ipv6: Some("fd7a:115c:a1e0::1".parse().expect("v6")),
            hostname: "h".into(),
            given_name: "h".into(),
            user_id: user.map(UserId),
            register_method: RegisterMethod::Cli,
            tags: tags.iter().map(|s| (*s).to_owned()).collect(),
            auth_key_id: None,
            expiry: expiry.map(t),
            last_seen: None,
            approved_routes: vec![],
            created_at: t(0),
            updated_at: t(0),
        }
    }

    #[test]
    fn node_tagged_expired_and_addresses() {
        assert!(!node(Some(1), &[], None).is_tagged());
        assert!(node(None, &["tag:a"], None).is_tagged());
        assert!(node(None, &[], None).is_tagged());
        let n = node(Some(1), &[], Some(50));
        assert!(!n.is_expired(t(49)));
        assert!(n.is_expired(t(50)));
        assert!(!node(Some(1), &[], None).is_expired(t(i64::from(i32::MAX))));
        assert_eq!(
            n.ips(),
            vec![
                IpAddr::V4(Ipv4Addr::new(100, 64, 0, 1)),
                "fd7a:115c:a1e0::1".parse::<IpAddr>().expect("ip")
            ]
        );
        assert!(n.has_ip("100.64.0.1".parse().expect("ip")));
        assert!(!n.has_ip("100.64.0.2".parse().expect("ip")));
        assert_eq!(n.prefixes()[0].to_string(), "100.64.0.1/32");
    }

    #[test]
    fn api_key_hash_serializes_as_hex() {
        let k = ApiKey {
            id: 3,
            prefix: "abcdef012345".into(),
            hash: vec![0xde, 0xad],
            expiration: None,
            last_seen: None,
            created_at: t(0),
        };
        let json = serde_json::to_value(&k).expect("serialize");
        assert_eq!(json["hash"], "dead");
        let back: ApiKey = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, k);
        assert!(!k.is_expired(t(1)));
    }
}
