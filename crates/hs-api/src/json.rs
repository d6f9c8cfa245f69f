//! REST `/api/v1` bodies: the camelCase JSON Headscale 0.30 answers with (string ids,
//! RFC 3339 timestamps, `null` for unset timestamps, `[]` never `null` for lists) and the
//! request bodies it accepts.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use hs_types::model::{ApiKey, RegisterMethod, User};

use crate::service::{NodeView, PreAuthKeyView};

/// Formats like Go's `time.Time` JSON (`RFC3339Nano`: fraction digits only as far as they
/// are non-zero, `Z` for UTC).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    let s = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    match s.split_once('.') {
        Some((head, frac)) => {
            let digits = frac.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() {
                format!("{head}Z")
            } else {
                format!("{head}.{digits}Z")
            }
        }
        None => s,
    }
}

fn opt_time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(rfc3339)
}

/// A user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(
    missing_docs,
    reason = "fields mirror Headscale's User JSON one to one"
)]
pub struct UserJson {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub display_name: String,
    pub email: String,
    pub provider_id: String,
    pub provider: String,
    pub profile_pic_url: String,
}

impl From<&User> for UserJson {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.get().to_string(),
            name: u.name.clone(),
            created_at: rfc3339(u.created_at),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            provider_id: u.provider_identifier.clone().unwrap_or_default(),
            provider: u.provider.clone(),
            profile_pic_url: u.profile_pic_url.clone(),
        }
    }
}

/// An API key (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(
    missing_docs,
    reason = "fields mirror Headscale's ApiKey JSON one to one"
)]
pub struct ApiKeyJson {
    pub id: String,
    pub prefix: String,
    pub expiration: Option<String>,
    pub created_at: Option<String>,
    pub last_seen: Option<String>,
}

impl From<&ApiKey> for ApiKeyJson {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            prefix: k.prefix.clone(),
            expiration: opt_time(k.expiration),
            created_at: Some(rfc3339(k.created_at)),
            last_seen: opt_time(k.last_seen),
        }
    }
}

/// A pre-auth key; `key` is the full key only right after creation, else a masked form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(
    missing_docs,
    reason = "fields mirror Headscale's PreAuthKey JSON one to one"
)]
pub struct PreAuthKeyJson {
    pub user: Option<UserJson>,
    pub id: String,
    pub key: String,
    pub reusable: bool,
    pub ephemeral: bool,
    pub used: bool,
    pub expiration: Option<String>,
    pub created_at: String,
    pub acl_tags: Vec<String>,
}

impl From<&PreAuthKeyView> for PreAuthKeyJson {
    fn from(v: &PreAuthKeyView) -> Self {
        let k = &v.key;
        let key = match (&v.full, &k.legacy_key) {
            (Some(full), _) => full.clone(),
            (None, Some(legacy)) if k.prefix.is_empty() => legacy.clone(),
            _ => format!("hskey-auth-{}-***", k.prefix),
        };
        Self {
            user: v.user.as_ref().map(UserJson::from),
            id: k.id.to_string(),
            key,
            reusable: k.reusable,
            ephemeral: k.ephemeral,
            used: k.used,
            expiration: opt_time(k.expiration),
            created_at: rfc3339(k.created_at),
            acl_tags: k.tags.clone(),
        }
    }
}

/// The protobuf enum name Headscale's JSON uses for a register method.
pub fn register_method_name(m: RegisterMethod) -> &'static str {
    match m {
        RegisterMethod::Unspecified => "REGISTER_METHOD_UNSPECIFIED",
        RegisterMethod::AuthKey => "REGISTER_METHOD_AUTH_KEY",
        RegisterMethod::Cli => "REGISTER_METHOD_CLI",
        RegisterMethod::Oidc => "REGISTER_METHOD_OIDC",
    }
}

/// A node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(
    missing_docs,
    reason = "fields mirror Headscale's Node JSON one to one"
)]
pub struct NodeJson {
    pub id: String,
    pub machine_key: String,
    pub node_key: String,
    pub disco_key: String,
    pub ip_addresses: Vec<String>,
    pub name: String,
    pub user: Option<UserJson>,
    pub last_seen: Option<String>,
    pub expiry: Option<String>,
    pub pre_auth_key: Option<PreAuthKeyJson>,
    pub created_at: String,
    pub register_method: String,
    pub given_name: String,
    pub online: bool,
    pub approved_routes: Vec<String>,
    pub available_routes: Vec<String>,
    pub subnet_routes: Vec<String>,
    pub tags: Vec<String>,
}

impl From<&NodeView> for NodeJson {
    fn from(v: &NodeView) -> Self {
        let n = &v.node;
        let approved: Vec<String> = n.approved_routes.iter().map(ToString::to_string).collect();
        let available: Vec<String> = v.available_routes.iter().map(ToString::to_string).collect();
        let subnet = v
            .available_routes
            .iter()
            .filter(|r| n.approved_routes.contains(r))
            .map(ToString::to_string)
            .collect();
        Self {
            id: n.id.get().to_string(),
            machine_key: n.machine_key.to_string(),
            node_key: n.node_key.to_string(),
            disco_key: n.disco_key.to_string(),
            ip_addresses: n.ips().iter().map(ToString::to_string).collect(),
            name: n.hostname.clone(),
            user: v.user.as_ref().map(UserJson::from),
            last_seen: opt_time(n.last_seen),
            expiry: opt_time(n.expiry),
            pre_auth_key: v.preauth_key.as_ref().map(|(k, u)| {
                PreAuthKeyJson::from(&PreAuthKeyView {
                    key: k.clone(),
                    full: None,
                    user: u.clone(),
                })
            }),
            created_at: rfc3339(n.created_at),
            register_method: register_method_name(n.register_method).to_owned(),
            given_name: n.given_name.clone(),
            online: v.online,
            approved_routes: approved,
            available_routes: available,
            subnet_routes: subnet,
            tags: n.tags.clone(),
        }
    }
}

/// `POST /api/v1/user`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs, reason = "fields mirror Headscale's request JSON")]
pub struct CreateUserBody {
    pub name: String,
    pub display_name: String,
    pub email: String,
    pub picture_url: String,
}

/// `POST /api/v1/apikey`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs, reason = "fields mirror Headscale's request JSON")]
pub struct CreateApiKeyBody {
    pub expiration: Option<DateTime<Utc>>,
}

/// `POST /api/v1/apikey/expire`; ids travel as strings (uint64 in JSON).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs, reason = "fields mirror Headscale's request JSON")]
pub struct ExpireApiKeyBody {
    pub prefix: String,
    pub id: Option<StringOrNumber>,
}

/// A uint64 that JSON clients send either as a string (protojson) or as a number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StringOrNumber {
    /// `"12"`.
    String(String),
    /// `12`.
    Number(u64),
}

impl StringOrNumber {
    /// The text form, for parsing and error messages.
    pub fn as_text(&self) -> String {
        match self {
            Self::String(s) => s.clone(),
            Self::Number(n) => n.to_string(),
        }
    }
}

/// `POST /api/v1/preauthkey`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs, reason = "fields mirror Headscale's request JSON")]
pub struct CreatePreAuthKeyBody {
    pub user: Option<StringOrNumber>,
    pub reusable: bool,
    pub ephemeral: bool,
    pub expiration: Option<DateTime<Utc>>,
    pub acl_tags: Vec<String>,
}

/// `POST /api/v1/preauthkey/expire`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs, reason = "fields mirror Headscale's request JSON")]
pub struct IdBody {
    pub id: Option<StringOrNumber>,
}

/// `POST /api/v1/node/{id}/expire`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs, reason = "fields mirror Headscale's request JSON")]
pub struct ExpireNodeBody {
    pub expiry: Option<DateTime<Utc>>,
    pub disable_expiry: bool,
}

/// `POST /api/v1/node/{id}/tags`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs, reason = "fields mirror Headscale's request JSON")]
pub struct TagsBody {
    pub tags: Vec<String>,
}

/// `POST /api/v1/node/{id}/approve_routes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs, reason = "fields mirror Headscale's request JSON")]
pub struct RoutesBody {
    pub routes: Vec<String>,
}

/// `POST /api/v1/auth/register` (also approve/reject, which use only `authId`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs, reason = "fields mirror Headscale's request JSON")]
pub struct AuthBody {
    pub user: String,
    pub auth_id: String,
}

/// `PUT /api/v1/policy`, `POST /api/v1/policy/check`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(missing_docs, reason = "fields mirror Headscale's request JSON")]
pub struct PolicyBody {
    pub policy: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_go_rfc3339nano() {
        let t = DateTime::<Utc>::from_timestamp(1_780_000_000, 0).unwrap();
        assert_eq!(rfc3339(t), "2026-05-28T20:26:40Z");
        let t = DateTime::<Utc>::from_timestamp(1_780_000_000, 500_000_000).unwrap();
        assert_eq!(rfc3339(t), "2026-05-28T20:26:40.5Z");
        let t = DateTime::<Utc>::from_timestamp(1_780_000_000, 123_456_789).unwrap();
        assert_eq!(rfc3339(t), "2026-05-28T20:26:40.123456789Z");
        assert_eq!(rfc3339(crate::zero_instant()), "0001-01-01T00:00:00Z");
    }
}
