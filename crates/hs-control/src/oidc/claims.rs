//! What the server takes from a verified ID token and the userinfo answer, and Go Headscale
//! 0.29.3's rules on it: the user's identity (`iss` joined with `sub`), the allow-lists and
//! `email_verified_required`, and which user fields a login sets. Pure: no I/O.

use serde::Deserialize;

/// The claims a login uses, from the ID token with the userinfo answer laid over it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// `sub`.
    #[serde(default)]
    pub sub: String,
    /// `iss`.
    #[serde(default)]
    pub iss: String,
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `groups` (the provider's group names).
    #[serde(default, deserialize_with = "string_list")]
    pub groups: Vec<String>,
    /// `email`.
    #[serde(default)]
    pub email: String,
    /// `email_verified`; some providers send it as a string, which Go accepts.
    #[serde(default, deserialize_with = "flexible_bool")]
    pub email_verified: bool,
    /// `picture`.
    #[serde(default)]
    pub picture: String,
    /// `preferred_username`.
    #[serde(default)]
    pub preferred_username: String,
}

fn flexible_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flexible {
        Bool(bool),
        Text(String),
        Null(()),
    }
    match Flexible::deserialize(d)? {
        Flexible::Bool(b) => Ok(b),
        Flexible::Text(s) => match s.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            other => Err(serde::de::Error::custom(format!(
                "email_verified: {other:?} is not a boolean"
            ))),
        },
        Flexible::Null(()) => Ok(false),
    }
}

/// A list of strings; a single string (some providers send one group that way) is a list of
/// one, null is empty.
fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum L {
        Many(Vec<String>),
        One(String),
        Null(()),
    }
    Ok(match L::deserialize(d)? {
        L::Many(v) => v,
        L::One(s) => vec![s],
        L::Null(()) => Vec::new(),
    })
}

impl Claims {
    /// Lays the userinfo answer over the ID token's claims, as Go does: a non-empty userinfo
    /// value wins, `email_verified` is true when either says so, and userinfo's groups replace
    /// the token's when present. A userinfo answer for another subject is ignored.
    pub fn merge_userinfo(&mut self, info: &serde_json::Value) {
        let Ok(u) = serde_json::from_value::<Claims>(info.clone()) else {
            return;
        };
        if u.sub != self.sub {
            return;
        }
        let or = |theirs: String, ours: &mut String| {
            if !theirs.is_empty() {
                *ours = theirs;
            }
        };
        or(u.email, &mut self.email);
        or(u.preferred_username, &mut self.preferred_username);
        or(u.name, &mut self.name);
        or(u.picture, &mut self.picture);
        self.email_verified |= u.email_verified;
        if info.get("groups").is_some_and(|g| !g.is_null()) {
            self.groups = u.groups;
        }
    }

    /// The user's identity at this provider, stored in `users.provider_identifier`: the
    /// issuer URL with the subject appended as a path segment, cleaned of empty segments
    /// (Go's `Identifier` and `CleanIdentifier`); a bare issuer that is not a URL is joined
    /// with `/`.
    pub fn identifier(&self) -> String {
        let (iss, sub) = (self.iss.trim(), self.sub.trim());
        let joined = match (iss.is_empty(), sub.is_empty()) {
            (true, true) => return String::new(),
            (true, false) => sub.to_owned(),
            (false, true) => iss.to_owned(),
            (false, false) => format!(
                "{}/{}",
                iss.trim_end_matches('/'),
                sub.trim_start_matches('/')
            ),
        };
        let id = clean(&joined);
        // Go keeps a leading slash on identifiers without an issuer (older rows have one).
        if iss.is_empty() && !id.starts_with('/') {
            format!("/{id}")
        } else {
            id
        }
    }
}

/// Removes empty and blank path segments, keeping a URL's `scheme://host` intact.
fn clean(id: &str) -> String {
    let id = id.trim();
    let (prefix, path) = match id.split_once("://") {
        Some((scheme, rest)) if !scheme.is_empty() && !scheme.contains('/') => {
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            (format!("{}://{host}", scheme.to_ascii_lowercase()), path)
        }
        _ => (String::new(), id),
    };
    let parts: Vec<&str> = path
        .split('/')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if prefix.is_empty() {
        parts.join("/")
    } else if parts.is_empty() {
        prefix
    } else {
        format!("{prefix}/{}", parts.join("/"))
    }
}

/// The allow-lists and the verified-email rule of `oidc.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// `oidc.allowed_domains`: the email's domain must be one of these.
    pub allowed_domains: Vec<String>,
    /// `oidc.allowed_users`: the email must be one of these.
    pub allowed_users: Vec<String>,
    /// `oidc.allowed_groups`: one of the user's groups must be one of these.
    pub allowed_groups: Vec<String>,
    /// `oidc.email_verified_required`: an email used by the two email lists must be
    /// verified.
    pub email_verified_required: bool,
}

/// Why a login was refused: what the user's browser is told (Go's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// None of the user's groups is allowed.
    Group,
    /// The email is not verified and an email list decides.
    UnverifiedEmail,
    /// The email's domain is not allowed.
    Domain,
    /// The email is not allowed.
    User,
}

impl Refused {
    /// The message shown (401).
    pub fn message(self) -> &'static str {
        match self {
            Self::Group => "unauthorised group",
            Self::UnverifiedEmail => "unverified email",
            Self::Domain => "unauthorised domain",
            Self::User => "unauthorised user",
        }
    }
}

impl Policy {
    /// Go's `doOIDCAuthorization`: groups first, then (when an email list is configured) the
    /// verified-email rule, the domain and the user lists.
    pub fn authorize(&self, c: &Claims) -> Result<(), Refused> {
        if !self.allowed_groups.is_empty()
            && !self.allowed_groups.iter().any(|g| c.groups.contains(g))
        {
            return Err(Refused::Group);
        }
        let email_lists = !self.allowed_domains.is_empty() || !self.allowed_users.is_empty();
        if email_lists && self.email_verified_required && !c.email_verified {
            return Err(Refused::UnverifiedEmail);
        }
        if !self.allowed_domains.is_empty() {
            let domain = c.email.rsplit_once('@').map(|(_, d)| d);
            if !domain.is_some_and(|d| self.allowed_domains.iter().any(|a| a == d)) {
                return Err(Refused::Domain);
            }
        }
        if !self.allowed_users.is_empty() && !self.allowed_users.contains(&c.email) {
            return Err(Refused::User);
        }
        Ok(())
    }
}

/// The user columns a login sets (Go's `FromClaim`): the name from `preferred_username` when
/// Headscale would accept it as a user name (else `None`: keep what there is), the email
/// when verified or not required and shaped like an address, display name, picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The login name to set, if the claim makes a valid one.
    pub name: Option<String>,
    /// The email to set, if trusted.
    pub email: Option<String>,
    /// `name`.
    pub display_name: String,
    /// `picture`.
    pub picture: String,
    /// The provider identifier.
    pub identifier: String,
    /// `groups`, refreshed at every login (see `User::groups`).
    pub groups: Vec<String>,
}

impl Profile {
    /// The profile of `c` under `email_verified_required`.
    pub fn of(c: &Claims, email_verified_required: bool) -> Self {
        let name = crate::state::check_user_name(&c.preferred_username)
            .ok()
            .map(|()| c.preferred_username.clone());
        let trusted = c.email_verified || !email_verified_required;
        let email = (trusted && looks_like_address(&c.email)).then(|| c.email.clone());
        Self {
            name,
            email,
            display_name: c.name.clone(),
            picture: c.picture.clone(),
            identifier: c.identifier(),
            groups: c.groups.clone(),
        }
    }
}

/// Roughly what Go's `mail.ParseAddress` accepts for a bare address: one `@` with text on
/// both sides and no spaces.
fn looks_like_address(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests;
