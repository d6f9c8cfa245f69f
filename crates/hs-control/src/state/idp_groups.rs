//! The identity provider's groups of each OIDC user: the `groups` claim of their last login,
//! which a policy group takes in with an `idp-group:<name>` member.
//!
//! Go Headscale 0.29.3's schema has no column for them and its SQLite schema check refuses
//! new tables, so they are kept in `oidc_groups.json` beside the Noise private key (keyed by
//! the provider identifier, written whole and renamed into place) and filled into each
//! user as it enters the NodeStore. A login refreshes them; a user who has not logged in
//! since keeps the groups of their last login.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use hs_types::model::User;

use crate::error::Error;

/// The groups by provider identifier, and the file they are kept in.
#[derive(Debug, Default)]
pub(crate) struct IdpGroups {
    path: Mutex<Option<PathBuf>>,
    map: Mutex<BTreeMap<String, Vec<String>>>,
}

impl IdpGroups {
    /// Reads `path` (absent: no groups yet) and keeps later changes there. A file that does
    /// not parse is refused, not replaced.
    pub(crate) fn open(&self, path: &Path) -> Result<(), Error> {
        let map = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                Error::Config(format!(
                    "cannot parse {}: {e}; fix or remove the file",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(Error::Config(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        *self.map.lock().unwrap_or_else(PoisonError::into_inner) = map;
        *self.path.lock().unwrap_or_else(PoisonError::into_inner) = Some(path.to_owned());
        Ok(())
    }

    /// Sets `u.groups` from what its provider identity last sent.
    pub(crate) fn fill(&self, u: &mut User) {
        u.groups = u
            .provider_identifier
            .as_ref()
            .and_then(|id| {
                self.map
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(id)
                    .cloned()
            })
            .unwrap_or_default();
    }

    /// Records the groups a login sent (sorted, without repeats) and returns them; the file
    /// is rewritten only when they changed.
    pub(crate) fn set(&self, identifier: &str, groups: &[String]) -> Result<Vec<String>, Error> {
        let mut groups: Vec<String> = groups
            .iter()
            .map(|g| g.trim().to_owned())
            .filter(|g| !g.is_empty())
            .collect();
        groups.sort();
        groups.dedup();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map
            .get(identifier)
            .map_or(groups.is_empty(), |g| *g == groups)
        {
            return Ok(groups);
        }
        let mut next = map.clone();
        if groups.is_empty() {
            next.remove(identifier);
        } else {
            next.insert(identifier.to_owned(), groups.clone());
        }
        if let Some(path) = self
            .path
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            write_atomic(path, &next)?;
        }
        *map = next;
        Ok(groups)
    }
}

fn write_atomic(path: &Path, map: &BTreeMap<String, Vec<String>>) -> Result<(), Error> {
    let text = serde_json::to_vec_pretty(map)
        .map_err(|e| Error::Config(format!("encoding IdP groups: {e}")))?;
    crate::keyfile::replace_private_file(path, &text)
        .map_err(|e| Error::Config(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(identifier: Option<&str>) -> User {
        let t = chrono::DateTime::UNIX_EPOCH;
        User {
            id: hs_types::UserId(1),
            name: "alice".into(),
            display_name: String::new(),
            email: String::new(),
            provider_identifier: identifier.map(str::to_owned),
            provider: "oidc".into(),
            profile_pic_url: String::new(),
            created_at: t,
            updated_at: t,
            groups: vec!["stale".into()],
        }
    }

    #[test]
    fn groups_survive_a_restart_and_a_bad_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oidc_groups.json");
        let g = IdpGroups::default();
        g.open(&path).unwrap();
        let set = g
            .set(
                "https://idp/alice",
                &["staff".into(), "eng".into(), "eng".into()],
            )
            .unwrap();
        assert_eq!(set, ["eng", "staff"]);

        let again = IdpGroups::default();
        again.open(&path).unwrap();
        let mut u = user(Some("https://idp/alice"));
        again.fill(&mut u);
        assert_eq!(u.groups, ["eng", "staff"]);
        let mut local = user(None);
        again.fill(&mut local);
        assert!(local.groups.is_empty(), "a CLI user has no provider groups");

        // An empty claim removes the entry.
        again.set("https://idp/alice", &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), "{}");

        std::fs::write(&path, "[1,").unwrap();
        let e = IdpGroups::default().open(&path).unwrap_err();
        assert!(e.to_string().contains("cannot parse"), "{e}");
    }
}
