//! OAuth scopes with Tailscale's names, and what a caller may do: a [`Grant`] is the set of
//! scopes and tags a request carries (an admin API key carries everything).

use std::collections::BTreeSet;
use std::fmt;

/// What a scope covers, without its read/write level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Area {
    /// Devices: list, get, delete, authorize, name, tags, key expiry.
    DevicesCore,
    /// Devices' subnet routes.
    DevicesRoutes,
    /// Auth keys (pre-auth keys).
    AuthKeys,
    /// The policy file.
    PolicyFile,
    /// DNS settings.
    Dns,
    /// Users (read only here: users come from logins and the admin CLI).
    Users,
    /// Tailnet settings.
    FeatureSettings,
}

const AREAS: [(Area, &str); 7] = [
    (Area::DevicesCore, "devices:core"),
    (Area::DevicesRoutes, "devices:routes"),
    (Area::AuthKeys, "auth_keys"),
    (Area::PolicyFile, "policy_file"),
    (Area::Dns, "dns"),
    (Area::Users, "users"),
    (Area::FeatureSettings, "feature_settings"),
];

/// One scope: everything (`all`), or one area, read-only or read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    /// `None` is `all` / `all:read`.
    pub area: Option<Area>,
    /// `:read` scopes cannot change anything.
    pub write: bool,
}

impl Scope {
    /// Parses a scope name (`devices:core`, `dns:read`, `all`, ...).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (base, write) = match text.strip_suffix(":read") {
            Some(b) => (b, false),
            None => (text, true),
        };
        if base == "all" {
            return Ok(Self { area: None, write });
        }
        // Tailscale has no `users` write scope that applies here; accept only users:read.
        let area = AREAS
            .iter()
            .find(|(_, n)| *n == base)
            .map(|(a, _)| *a)
            .filter(|a| !(*a == Area::Users && write))
            .ok_or_else(|| {
                format!(
                    "unknown scope {text:?}: expected one of all, all:read, devices:core, \
                     devices:routes, auth_keys, policy_file, dns, feature_settings (each also with \
                     :read), users:read"
                )
            })?;
        Ok(Self {
            area: Some(area),
            write,
        })
    }

    /// Whether this scope allows `need`.
    pub fn covers(self, need: Scope) -> bool {
        (self.area.is_none() || self.area == need.area) && (self.write || !need.write)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = match self.area {
            None => "all",
            Some(a) => AREAS.iter().find(|(x, _)| *x == a).map_or("?", |(_, n)| *n),
        };
        if self.write && self.area != Some(Area::Users) {
            f.write_str(base)
        } else {
            write!(f, "{base}:read")
        }
    }
}

/// Parses a list of scope names, refusing unknown ones and an empty list.
pub fn parse_scopes<S: AsRef<str>>(names: &[S]) -> Result<BTreeSet<Scope>, String> {
    let set = names
        .iter()
        .map(|n| Scope::parse(n.as_ref().trim()))
        .collect::<Result<BTreeSet<_>, _>>()?;
    if set.is_empty() {
        return Err("at least one scope is required".to_owned());
    }
    Ok(set)
}

/// The scope an operation needs.
pub fn need(area: Area, write: bool) -> Scope {
    Scope {
        area: Some(area),
        write,
    }
}

/// What a request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// An admin API key: every operation, any tag.
    Admin,
    /// An OAuth access token.
    Client {
        /// The OAuth client the token was issued to.
        client_id: String,
        /// The scopes the token carries.
        scopes: BTreeSet<Scope>,
        /// The tags the client may assign (to keys it mints and devices it tags).
        tags: Vec<String>,
    },
}

impl Grant {
    /// Whether the grant allows `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        match self {
            Self::Admin => true,
            Self::Client { scopes, .. } => scopes.iter().any(|s| s.covers(scope)),
        }
    }

    /// Who is calling, for logs: never a secret.
    pub fn caller(&self) -> String {
        match self {
            Self::Admin => "admin API key".to_owned(),
            Self::Client { client_id, .. } => format!("OAuth client {client_id}"),
        }
    }
}

/// Whether a scope set needs tags on its client: Tailscale requires them when a client can
/// create devices (`auth_keys`) or change them (`devices:core`).
pub fn needs_tags(scopes: &BTreeSet<Scope>) -> bool {
    scopes.iter().any(|s| {
        s.write
            && matches!(
                s.area,
                None | Some(Area::AuthKeys) | Some(Area::DevicesCore)
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for name in [
            "all",
            "all:read",
            "devices:core",
            "devices:core:read",
            "devices:routes",
            "auth_keys:read",
            "policy_file",
            "dns:read",
            "users:read",
        ] {
            assert_eq!(Scope::parse(name).unwrap().to_string(), name);
        }
        assert!(Scope::parse("users").is_err());
        assert!(Scope::parse("devices").is_err());
        assert!(Scope::parse("").is_err());
        assert!(parse_scopes::<&str>(&[]).is_err());
    }

    #[test]
    fn write_covers_read_not_the_reverse() {
        let w = Scope::parse("dns").unwrap();
        let r = Scope::parse("dns:read").unwrap();
        assert!(w.covers(r) && w.covers(w));
        assert!(r.covers(r) && !r.covers(w));
        let all_read = Scope::parse("all:read").unwrap();
        assert!(all_read.covers(need(Area::DevicesCore, false)));
        assert!(!all_read.covers(need(Area::DevicesCore, true)));
        assert!(!w.covers(need(Area::PolicyFile, false)));
    }

    #[test]
    fn device_and_key_writers_need_tags() {
        assert!(needs_tags(&parse_scopes(&["auth_keys"]).unwrap()));
        assert!(needs_tags(&parse_scopes(&["all"]).unwrap()));
        assert!(!needs_tags(
            &parse_scopes(&["devices:core:read", "dns"]).unwrap()
        ));
    }
}
