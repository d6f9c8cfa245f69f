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

impl ControlState {
    /// Creates a user; a taken name is a conflict.
    pub async fn create_user(&self, new: NewUser) -> Result<User, Error> {
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
        let t = now();
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
                    let u = c.rename_user(id, &name, t)?;
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

    /// Makes sure the NodeStore knows `user` (read from the database); false when the
    /// database does not have it either.
    pub async fn ensure_user(&self, user: UserId) -> Result<bool, Error> {
        if self.store().load().user(user).is_some() {
            return Ok(true);
        }
        let (found, _) = self
            .write(
                Read::Published,
                Box::new(move |c, _| {
                    Ok(match c.get_user(user)? {
                        Some(u) => (true, vec![Op::UpsertUser(Box::new(u))]),
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
