//! `User`, `Login` and `UserProfile`: who owns nodes, as the client is told in
//! RegisterResponse and MapResponse.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::gotime;
use super::omit::null_default;
use crate::ids::UserId;

/// Go's `tailcfg.User` (RegisterResponse.User).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    /// `ID`. Always written.
    #[serde(rename = "ID")]
    pub id: UserId,
    /// `DisplayName`. Always written.
    #[serde(rename = "DisplayName")]
    pub display_name: String,
    /// `ProfilePicURL`; omitted when empty.
    #[serde(rename = "ProfilePicURL", skip_serializing_if = "String::is_empty")]
    pub profile_pic_url: String,
    /// `Created`; `None` is Go's zero time and is omitted.
    #[serde(
        rename = "Created",
        with = "gotime::zero_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<DateTime<Utc>>,
}

/// Go's `tailcfg.Login` (RegisterResponse.Login); the client builds its UserProfile from it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Login {
    /// `ID` (a LoginID, unused by clients). Always written.
    #[serde(rename = "ID")]
    pub id: i64,
    /// `Provider` (`google`, `oidc`, ...). Always written.
    #[serde(rename = "Provider")]
    pub provider: String,
    /// `LoginName`: email or email-ish name. Always written.
    #[serde(rename = "LoginName")]
    pub login_name: String,
    /// `DisplayName`. Always written.
    #[serde(rename = "DisplayName")]
    pub display_name: String,
    /// `ProfilePicURL`; omitted when empty.
    #[serde(rename = "ProfilePicURL", skip_serializing_if = "String::is_empty")]
    pub profile_pic_url: String,
}

/// Go's `tailcfg.UserProfile` (MapResponse.UserProfiles): one per user owning self or a peer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UserProfile {
    /// `ID`: matches `Node.User`. Always written.
    #[serde(rename = "ID")]
    pub id: UserId,
    /// `LoginName`. Always written.
    #[serde(rename = "LoginName")]
    pub login_name: String,
    /// `DisplayName`. Always written.
    #[serde(rename = "DisplayName")]
    pub display_name: String,
    /// `ProfilePicURL`; omitted when empty.
    #[serde(rename = "ProfilePicURL", skip_serializing_if = "String::is_empty")]
    pub profile_pic_url: String,
    /// `Groups` containing this user that the server chose to report; omitted when empty.
    #[serde(
        rename = "Groups",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub groups: Vec<String>,
}
