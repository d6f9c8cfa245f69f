//! `users`: create, read, update and delete users. Soft-deleted rows (Go's `deleted_at`) are
//! invisible.

use chrono::{DateTime, Utc};
use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Nullable, Text};
use hs_types::UserId;
use hs_types::model::User;

use super::{id_i64, id_u64, req_time};
use crate::db::{Conn, dispatch};
use crate::error::{Error, Result};
use crate::sqltypes::{DbTime, HsTime};

/// What it takes to create a user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewUser {
    /// Login name.
    pub name: String,
    /// Display name, possibly empty.
    pub display_name: String,
    /// E-mail, possibly empty.
    pub email: String,
    /// OIDC identifier, `None` for local users.
    pub provider_identifier: Option<String>,
    /// Provider (`"oidc"` or empty).
    pub provider: String,
    /// Avatar URL, possibly empty.
    pub profile_pic_url: String,
}

#[derive(diesel::QueryableByName)]
struct UserRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    display_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    provider_identifier: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    provider: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    profile_pic_url: Option<String>,
    #[diesel(sql_type = Nullable<HsTime>)]
    created_at: Option<DbTime>,
    #[diesel(sql_type = Nullable<HsTime>)]
    updated_at: Option<DbTime>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: UserId(id_u64(r.id)),
            name: r.name.unwrap_or_default(),
            display_name: r.display_name.unwrap_or_default(),
            email: r.email.unwrap_or_default(),
            provider_identifier: r.provider_identifier.filter(|s| !s.is_empty()),
            provider: r.provider.unwrap_or_default(),
            profile_pic_url: r.profile_pic_url.unwrap_or_default(),
            created_at: req_time(r.created_at),
            updated_at: req_time(r.updated_at),
            // Not stored here: see `User::groups`.
            groups: Vec::new(),
        }
    }
}

const COLS: &str = "id, name, display_name, email, provider_identifier, provider, profile_pic_url, created_at, updated_at";

impl Conn<'_> {
    /// Creates a user; [`Error::Conflict`] if the name (among local users) or the provider
    /// identifier is taken.
    pub fn create_user(&mut self, u: &NewUser, now: DateTime<Utc>) -> Result<User> {
        let q = "INSERT INTO users (name, display_name, email, provider_identifier, provider, profile_pic_url, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
        let row: Result<IdRow, _> = dispatch!(self, |c| diesel::sql_query(q)
            .bind::<Text, _>(&u.name)
            .bind::<Text, _>(&u.display_name)
            .bind::<Text, _>(&u.email)
            .bind::<Nullable<Text>, _>(u.provider_identifier.as_deref())
            .bind::<Text, _>(&u.provider)
            .bind::<Text, _>(&u.profile_pic_url)
            .bind::<HsTime, _>(DbTime(now))
            .bind::<HsTime, _>(DbTime(now))
            .get_result(c));
        let id = row.map_err(|e| Error::conflict_as(e, || format!("user {:?}", u.name)))?;
        self.get_user(UserId(id_u64(id.id)))?
            .ok_or_else(|| Error::NotFound("user just created".into()))
    }

    /// Replaces a user's fields (not `created_at`).
    pub fn update_user(&mut self, u: &User) -> Result<()> {
        let id = id_i64("users", u.id.get())?;
        let q = "UPDATE users SET name = $1, display_name = $2, email = $3, provider_identifier = $4, \
                 provider = $5, profile_pic_url = $6, updated_at = $7 WHERE id = $8 AND deleted_at IS NULL";
        let n = dispatch!(self, |c| diesel::sql_query(q)
            .bind::<Text, _>(&u.name)
            .bind::<Text, _>(&u.display_name)
            .bind::<Text, _>(&u.email)
            .bind::<Nullable<Text>, _>(u.provider_identifier.as_deref())
            .bind::<Text, _>(&u.provider)
            .bind::<Text, _>(&u.profile_pic_url)
            .bind::<HsTime, _>(DbTime(u.updated_at))
            .bind::<BigInt, _>(id)
            .execute(c))
        .map_err(|e| Error::conflict_as(e, || format!("user {:?}", u.name)))?;
        if n == 0 {
            return Err(Error::NotFound(format!("user {}", u.id)));
        }
        Ok(())
    }

    /// Renames a user.
    pub fn rename_user(&mut self, id: UserId, name: &str, now: DateTime<Utc>) -> Result<User> {
        let mut u = self
            .get_user(id)?
            .ok_or_else(|| Error::NotFound(format!("user {id}")))?;
        u.name = name.to_owned();
        u.updated_at = now;
        self.update_user(&u)?;
        Ok(u)
    }

    /// One user by id.
    pub fn get_user(&mut self, id: UserId) -> Result<Option<User>> {
        let id = id_i64("users", id.get())?;
        let q = format!("SELECT {COLS} FROM users WHERE id = $1 AND deleted_at IS NULL");
        let rows: Vec<UserRow> = dispatch!(self, |c| diesel::sql_query(&q)
            .bind::<BigInt, _>(id)
            .load(c))?;
        Ok(rows.into_iter().next().map(User::from))
    }

    /// Users with this name (several OIDC users may share one), lowest id first.
    pub fn users_by_name(&mut self, name: &str) -> Result<Vec<User>> {
        let q =
            format!("SELECT {COLS} FROM users WHERE name = $1 AND deleted_at IS NULL ORDER BY id");
        let rows: Vec<UserRow> = dispatch!(self, |c| diesel::sql_query(&q)
            .bind::<Text, _>(name)
            .load(c))?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// The user with this OIDC provider identifier.
    pub fn user_by_provider_identifier(&mut self, pi: &str) -> Result<Option<User>> {
        let q = format!(
            "SELECT {COLS} FROM users WHERE provider_identifier = $1 AND deleted_at IS NULL"
        );
        let rows: Vec<UserRow> =
            dispatch!(self, |c| diesel::sql_query(&q).bind::<Text, _>(pi).load(c))?;
        Ok(rows.into_iter().next().map(User::from))
    }

    /// All users, by id.
    pub fn list_users(&mut self) -> Result<Vec<User>> {
        let q = format!("SELECT {COLS} FROM users WHERE deleted_at IS NULL ORDER BY id");
        let rows: Vec<UserRow> = dispatch!(self, |c| diesel::sql_query(&q).load(c))?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Deletes a user with its nodes and pre-auth keys.
    /// Whether a user with nodes may be deleted is the caller's rule.
    pub fn delete_user(&mut self, id: UserId) -> Result<()> {
        let id = id_i64("users", id.get())?;
        for q in [
            "DELETE FROM nodes WHERE user_id = $1",
            // Other nodes may have registered with this user's keys; they stay, unlinked.
            "UPDATE nodes SET auth_key_id = NULL WHERE auth_key_id IN (SELECT id FROM pre_auth_keys WHERE user_id = $1)",
            "DELETE FROM pre_auth_keys WHERE user_id = $1",
        ] {
            dispatch!(self, |c| diesel::sql_query(q)
                .bind::<BigInt, _>(id)
                .execute(c))?;
        }
        let n = dispatch!(self, |c| diesel::sql_query(
            "DELETE FROM users WHERE id = $1"
        )
        .bind::<BigInt, _>(id)
        .execute(c))?;
        if n == 0 {
            return Err(Error::NotFound(format!("user {id}")));
        }
        Ok(())
    }
}

#[derive(diesel::QueryableByName)]
pub(crate) struct IdRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
}
