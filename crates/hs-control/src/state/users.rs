//! User commands: create, rename, delete. A user is part of what every node's map shows
//! (its owner's profile), so a change reaches the connected clients at once.

use hs_db::NewUser;
use hs_nodestore::Op;
use hs_types::UserId;
use hs_types::model::User;

use super::ControlState;
use super::write::Read;
use crate::clock::now;
use crate::error::Error;

/// Go Headscale's refusal to delete a user who still owns nodes (`ErrUserStillHasNodes`),
/// word for word: scripts match on it.
pub const USER_HAS_NODES: &str = "user not empty: node(s) found";

/// Go Headscale 0.29.3's rule for user names (`ValidateUsername`): at least 2 bytes, a first
/// byte that is a letter (Go reads it as a Latin-1 rune), then letters, digits, `-`, `.`,
/// `_` and at most one `@`. The message names the value (shortened when long).
pub fn check_user_name(name: &str) -> Result<(), String> {
    let shown = || {
        let mut s: String = name.chars().take(40).collect();
        if s.len() < name.len() {
            s.push('…');
        }
        format!("{s:?}")
    };
    let why = if name.len() < 2 {
        Some("username must be at least 2 characters long".to_owned())
    } else if !name
        .bytes()
        .next()
        .is_some_and(|b| char::from(b).is_alphabetic())
    {
        Some("username must start with a letter".to_owned())
    } else if name.matches('@').count() > 1 {
        Some("username cannot contain more than one '@'".to_owned())
    } else {
        name.chars()
            .find(|&c| !(c.is_alphabetic() || c.is_numeric() || "-._@".contains(c)))
            .map(|c| format!("username contains invalid character: {c:?}"))
    };
    match why {
        None => Ok(()),
        Some(why) => Err(format!("invalid user name {}: {why}", shown())),
    }
}

impl ControlState {
    /// Creates a user; a taken name is a conflict, a name Go Headscale would refuse is
    /// refused.
    pub async fn create_user(&self, new: NewUser) -> Result<User, Error> {
        check_user_name(&new.name).map_err(Error::Invalid)?;
        let t = now();
        let (user, _) = self
            .write(
                Read::Synced,
                Box::new(move |c, _| {
                    if !c.users_by_name(&new.name)?.is_empty() {
                        return Err(Error::Conflict(format!(
                            "a user named {:?} already exists",
                            new.name
                        )));
                    }
                    let u = c.create_user(&new, t)?;
                    Ok((u.clone(), vec![Op::UpsertUser(Box::new(u))]))
                }),
            )
            .await?;
        tracing::info!(user = user.id.get(), "user created");
        Ok(user)
    }

    /// Renames a user; every connected node sees the new name in its user profiles.
    pub async fn rename_user(&self, id: UserId, name: String) -> Result<User, Error> {
        check_user_name(&name).map_err(Error::Invalid)?;
        let t = now();
        let st = self.clone();
        let (user, _) = self
            .write(
                Read::Synced,
                Box::new(move |c, _| {
                    user_row(c, id)?;
                    if c.users_by_name(&name)?.iter().any(|u| u.id != id) {
                        return Err(Error::Conflict(format!(
                            "a user named {name:?} already exists"
                        )));
                    }
                    let mut u = c.rename_user(id, &name, t)?;
                    st.inner.idp_groups.fill(&mut u);
                    Ok((u.clone(), vec![Op::UpsertUser(Box::new(u))]))
                }),
            )
            .await?;
        tracing::info!(user = id.get(), "user renamed");
        Ok(user)
    }

    /// Deletes a user and its pre-auth keys. A user who still owns nodes is refused with
    /// Go Headscale's message; nothing is deleted then.
    pub async fn delete_user(&self, id: UserId) -> Result<(), Error> {
        self.write(
            Read::Synced,
            Box::new(move |c, _| {
                user_row(c, id)?;
                if !c.list_nodes_by_user(id)?.is_empty() {
                    return Err(Error::Conflict(USER_HAS_NODES.to_owned()));
                }
                c.delete_user(id)?;
                Ok(((), vec![Op::RemoveUser(id)]))
            }),
        )
        .await?;
        tracing::info!(user = id.get(), "user deleted");
        Ok(())
    }

    /// The user an OIDC login is for, created or brought up to date from the provider's
    /// claims (Go's `createOrUpdateUserFromClaim`): found by provider identifier; the login
    /// name follows a valid `preferred_username`, the email a trusted one, display name and
    /// picture always. A new user without a valid `preferred_username` is named after a
    /// trusted email when that is a valid name, and refused otherwise.
    pub async fn oidc_login_user(&self, p: crate::oidc::Profile) -> Result<User, Error> {
        if p.identifier.is_empty() {
            return Err(Error::Invalid(
                "the identity provider sent neither an issuer nor a subject".into(),
            ));
        }
        let t = now();
        let st = self.clone();
        let (user, _) = self
            .write(
                Read::Synced,
                Box::new(move |c, _| {
                    let mut u = match c.user_by_provider_identifier(&p.identifier)? {
                        Some(mut u) => {
                            if let Some(name) = &p.name {
                                u.name.clone_from(name);
                            }
                            if let Some(email) = &p.email {
                                u.email.clone_from(email);
                            }
                            u.display_name.clone_from(&p.display_name);
                            u.profile_pic_url.clone_from(&p.picture);
                            u.provider = "oidc".into();
                            u.updated_at = t;
                            c.update_user(&u)?;
                            u
                        }
                        None => {
                            let name = p
                                .name
                                .clone()
                                .or_else(|| p.email.clone().filter(|e| check_user_name(e).is_ok()))
                                .ok_or_else(|| {
                                    Error::Invalid(
                                        "the identity provider sent no usable user name \
                                         (preferred_username) or verified email"
                                            .into(),
                                    )
                                })?;
                            c.create_user(
                                &NewUser {
                                    name,
                                    display_name: p.display_name.clone(),
                                    email: p.email.clone().unwrap_or_default(),
                                    provider_identifier: Some(p.identifier.clone()),
                                    provider: "oidc".into(),
                                    profile_pic_url: p.picture.clone(),
                                },
                                t,
                            )?
                        }
                    };
                    // Written before the transaction commits: a failure leaves both as
                    // they were.
                    u.groups = st.inner.idp_groups.set(&p.identifier, &p.groups)?;
                    Ok((u.clone(), vec![Op::UpsertUser(Box::new(u))]))
                }),
            )
            .await?;
        tracing::info!(user = user.id.get(), groups = ?user.groups, "OIDC user logged in");
        Ok(user)
    }

    /// Reads the identity-provider groups kept at `path` and gives the loaded users theirs;
    /// later logins keep them there. Run once at start, before the policy is loaded.
    pub(crate) async fn open_idp_groups(&self, path: &std::path::Path) -> Result<(), Error> {
        let path = path.to_owned();
        let st = self.clone();
        tokio::task::spawn_blocking(move || st.inner.idp_groups.open(&path))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let st = self.clone();
        self.write(
            Read::Published,
            Box::new(move |c, _| {
                let mut ops = Vec::new();
                for mut u in c.list_users()? {
                    st.inner.idp_groups.fill(&mut u);
                    if !u.groups.is_empty() {
                        ops.push(Op::UpsertUser(Box::new(u)));
                    }
                }
                Ok(((), ops))
            }),
        )
        .await?;
        Ok(())
    }

    /// Makes sure the NodeStore knows `user` (read from the database); false when the
    /// database does not have it either.
    pub async fn ensure_user(&self, user: UserId) -> Result<bool, Error> {
        if self.store().load().user(user).is_some() {
            return Ok(true);
        }
        let st = self.clone();
        let (found, _) = self
            .write(
                Read::Published,
                Box::new(move |c, _| {
                    Ok(match c.get_user(user)? {
                        Some(mut u) => {
                            st.inner.idp_groups.fill(&mut u);
                            (true, vec![Op::UpsertUser(Box::new(u))])
                        }
                        None => (false, Vec::new()),
                    })
                }),
            )
            .await?;
        Ok(found)
    }
}

fn user_row(c: &mut hs_db::Conn<'_>, id: UserId) -> Result<User, Error> {
    c.get_user(id)?
        .ok_or_else(|| Error::NotFound(format!("user with id {} not found", id.get())))
}

#[cfg(test)]
mod tests {
    use super::check_user_name;

    #[test]
    fn user_names_follow_go_headscale() {
        for ok in [
            "alice",
            "alice@example.com",
            "bob.smith-2",
            "Zoë",
            "a_b",
            "ab",
        ] {
            check_user_name(ok).unwrap();
        }
        let long = "a".repeat(100_001);
        for (bad, why) in [
            ("a", "at least 2"),
            ("1alice", "start with a letter"),
            ("alice 🦀", "invalid character"),
            ("ali\u{200b}ce", "invalid character"),
            ("ali\u{202e}ce", "invalid character"),
            ("a@b@c", "more than one '@'"),
            ("al ice", "invalid character"),
        ] {
            let msg = check_user_name(bad).unwrap_err();
            assert!(msg.contains(why), "{bad:?}: {msg}");
            assert!(
                msg.contains(&bad[..1]),
                "the message names the value: {msg}"
            );
        }
        // Go sets no upper bound; a long name is accepted, and an error never echoes it whole.
        check_user_name(&long).unwrap();
        let msg = check_user_name(&format!("1{long}")).unwrap_err();
        assert!(msg.len() < 200, "{}", msg.len());
    }
}
