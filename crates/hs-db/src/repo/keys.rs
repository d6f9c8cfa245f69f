//! `pre_auth_keys` and `api_keys`. Creation and validation are [`Db`] methods because the
//! bcrypt work (tens of milliseconds) must not run while holding the SQLite write lock.

use chrono::{DateTime, Utc};
use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Binary, Bool, Nullable, Text};
use hs_types::UserId;
use hs_types::model::{ApiKey, PreAuthKey};
use rand::{CryptoRng, RngCore};

use super::users::IdRow;
use super::{exact_time, id_i64, id_u64, json_strings, opt_time, req_time, to_json};
use crate::db::{Conn, Db, dispatch};
use crate::error::{Error, Result};
use crate::secret::{self, API_KEY_PREFIX, PRE_AUTH_KEY_PREFIX, ParsedKey};
use crate::sqltypes::{DbTime, HsTime};

/// What it takes to create a pre-auth key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewPreAuthKey {
    /// Owner; `None` for a tags-only key.
    pub user_id: Option<UserId>,
    /// May register several nodes.
    pub reusable: bool,
    /// Registers ephemeral nodes.
    pub ephemeral: bool,
    /// Tags given to nodes it registers.
    pub tags: Vec<String>,
    /// When it stops working.
    pub expiration: Option<DateTime<Utc>>,
}

/// What it takes to create an API key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewApiKey {
    /// When it stops working.
    pub expiration: Option<DateTime<Utc>>,
}

#[derive(diesel::QueryableByName)]
struct PakRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    key: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    prefix: Option<String>,
    #[diesel(sql_type = Nullable<Binary>)]
    hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    user_id: Option<i64>,
    #[diesel(sql_type = Nullable<Bool>)]
    reusable: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    ephemeral: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    used: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    tags: Option<String>,
    #[diesel(sql_type = Nullable<HsTime>)]
    expiration: Option<DbTime>,
    #[diesel(sql_type = Nullable<HsTime>)]
    created_at: Option<DbTime>,
}

const PAK_COLS: &str =
    "id, key, prefix, hash, user_id, reusable, ephemeral, used, tags, expiration, created_at";

impl TryFrom<PakRow> for PreAuthKey {
    type Error = Error;

    fn try_from(r: PakRow) -> Result<Self> {
        Ok(PreAuthKey {
            id: id_u64(r.id),
            prefix: r.prefix.unwrap_or_default(),
            hash: r.hash.unwrap_or_default(),
            legacy_key: r.key.filter(|k| !k.is_empty()),
            user_id: r.user_id.map(|u| UserId(id_u64(u))),
            reusable: r.reusable.unwrap_or(false),
            ephemeral: r.ephemeral.unwrap_or(false),
            used: r.used.unwrap_or(false),
            tags: json_strings("pre_auth_keys", "tags", r.id, r.tags.as_deref())?,
            expiration: exact_time(r.expiration),
            created_at: req_time(r.created_at),
        })
    }
}

#[derive(diesel::QueryableByName)]
struct ApiRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    prefix: Option<String>,
    #[diesel(sql_type = Nullable<Binary>)]
    hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<HsTime>)]
    expiration: Option<DbTime>,
    #[diesel(sql_type = Nullable<HsTime>)]
    last_seen: Option<DbTime>,
    #[diesel(sql_type = Nullable<HsTime>)]
    created_at: Option<DbTime>,
}

const API_COLS: &str = "id, prefix, hash, expiration, last_seen, created_at";

impl From<ApiRow> for ApiKey {
    fn from(r: ApiRow) -> Self {
        ApiKey {
            id: id_u64(r.id),
            prefix: r.prefix.unwrap_or_default(),
            hash: r.hash.unwrap_or_default(),
            expiration: exact_time(r.expiration),
            last_seen: opt_time(r.last_seen),
            created_at: req_time(r.created_at),
        }
    }
}

impl Conn<'_> {
    /// Stores a pre-auth key whose secret was generated and hashed already.
    pub fn insert_pre_auth_key(
        &mut self,
        k: &NewPreAuthKey,
        prefix: &str,
        hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<PreAuthKey> {
        let user = k.user_id.map(|u| id_i64("users", u.get())).transpose()?;
        let tags = to_json(&k.tags);
        let row: IdRow = dispatch!(self, |c| diesel::sql_query(
            "INSERT INTO pre_auth_keys (prefix, hash, user_id, reusable, ephemeral, used, tags, expiration, created_at) \
             VALUES ($1, $2, $3, $4, $5, false, $6, $7, $8) RETURNING id"
        )
        .bind::<Text, _>(prefix)
        .bind::<Binary, _>(hash)
        .bind::<Nullable<BigInt>, _>(user)
        .bind::<Bool, _>(k.reusable)
        .bind::<Bool, _>(k.ephemeral)
        .bind::<Text, _>(&tags)
        .bind::<Nullable<HsTime>, _>(k.expiration.map(DbTime))
        .bind::<HsTime, _>(DbTime(now))
        .get_result(c))
        .map_err(|e| Error::conflict_as(e, || format!("pre-auth key prefix {prefix}")))?;
        self.get_pre_auth_key(id_u64(row.id))?
            .ok_or_else(|| Error::NotFound("pre-auth key just created".into()))
    }

    fn paks_where(&mut self, cond: &str, bind: Option<PakBind<'_>>) -> Result<Vec<PreAuthKey>> {
        let q = format!("SELECT {PAK_COLS} FROM pre_auth_keys {cond} ORDER BY id");
        let rows: Vec<PakRow> = match bind {
            None => dispatch!(self, |c| diesel::sql_query(&q).load(c))?,
            Some(PakBind::Int(i)) => {
                dispatch!(self, |c| diesel::sql_query(&q).bind::<BigInt, _>(i).load(c))?
            }
            Some(PakBind::Str(s)) => {
                dispatch!(self, |c| diesel::sql_query(&q).bind::<Text, _>(s).load(c))?
            }
        };
        rows.into_iter().map(PreAuthKey::try_from).collect()
    }

    /// One pre-auth key by id.
    pub fn get_pre_auth_key(&mut self, id: u64) -> Result<Option<PreAuthKey>> {
        let id = id_i64("pre_auth_keys", id)?;
        Ok(self
            .paks_where("WHERE id = $1", Some(PakBind::Int(id)))?
            .into_iter()
            .next())
    }

    /// The key with this public prefix.
    pub fn pre_auth_key_by_prefix(&mut self, prefix: &str) -> Result<Option<PreAuthKey>> {
        Ok(self
            .paks_where("WHERE prefix = $1", Some(PakBind::Str(prefix)))?
            .into_iter()
            .next())
    }

    /// A legacy (plaintext) key from an imported database, by its full text.
    pub fn legacy_pre_auth_key(&mut self, full: &str) -> Result<Option<PreAuthKey>> {
        Ok(self
            .paks_where(
                "WHERE key = $1 AND (prefix IS NULL OR prefix = '')",
                Some(PakBind::Str(full)),
            )?
            .into_iter()
            .next())
    }

    /// All pre-auth keys, or those of one user.
    pub fn list_pre_auth_keys(&mut self, user: Option<UserId>) -> Result<Vec<PreAuthKey>> {
        match user {
            None => self.paks_where("", None),
            Some(u) => {
                let id = id_i64("users", u.get())?;
                self.paks_where("WHERE user_id = $1", Some(PakBind::Int(id)))
            }
        }
    }

    fn pak_update(&mut self, q: &str, id: u64, t: Option<DateTime<Utc>>) -> Result<()> {
        let id = id_i64("pre_auth_keys", id)?;
        let n = match t {
            Some(t) => dispatch!(self, |c| diesel::sql_query(q)
                .bind::<HsTime, _>(DbTime(t))
                .bind::<BigInt, _>(id)
                .execute(c))?,
            None => dispatch!(self, |c| diesel::sql_query(q)
                .bind::<BigInt, _>(id)
                .execute(c))?,
        };
        if n == 0 {
            return Err(Error::NotFound(format!("pre-auth key {id}")));
        }
        Ok(())
    }

    /// Marks a key used (after it registered a node).
    pub fn mark_pre_auth_key_used(&mut self, id: u64) -> Result<()> {
        self.pak_update(
            "UPDATE pre_auth_keys SET used = true WHERE id = $1",
            id,
            None,
        )
    }

    /// Expires a key now.
    pub fn expire_pre_auth_key(&mut self, id: u64, now: DateTime<Utc>) -> Result<()> {
        self.pak_update(
            "UPDATE pre_auth_keys SET expiration = $1 WHERE id = $2",
            id,
            Some(now),
        )
    }

    /// Deletes a key; nodes registered with it keep existing, unlinked.
    pub fn delete_pre_auth_key(&mut self, id: u64) -> Result<()> {
        let iid = id_i64("pre_auth_keys", id)?;
        dispatch!(self, |c| diesel::sql_query(
            "UPDATE nodes SET auth_key_id = NULL WHERE auth_key_id = $1"
        )
        .bind::<BigInt, _>(iid)
        .execute(c))?;
        self.pak_update("DELETE FROM pre_auth_keys WHERE id = $1", id, None)
    }

    /// Stores an API key whose secret was generated and hashed already.
    pub fn insert_api_key(
        &mut self,
        k: &NewApiKey,
        prefix: &str,
        hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<ApiKey> {
        let row: IdRow = dispatch!(self, |c| diesel::sql_query(
            "INSERT INTO api_keys (prefix, hash, expiration, created_at) VALUES ($1, $2, $3, $4) RETURNING id"
        )
        .bind::<Text, _>(prefix)
        .bind::<Binary, _>(hash)
        .bind::<Nullable<HsTime>, _>(k.expiration.map(DbTime))
        .bind::<HsTime, _>(DbTime(now))
        .get_result(c))
        .map_err(|e| Error::conflict_as(e, || format!("API key prefix {prefix}")))?;
        self.get_api_key(id_u64(row.id))?
            .ok_or_else(|| Error::NotFound("API key just created".into()))
    }

    fn api_where(&mut self, cond: &str, bind: Option<PakBind<'_>>) -> Result<Vec<ApiKey>> {
        let q = format!("SELECT {API_COLS} FROM api_keys {cond} ORDER BY id");
        let rows: Vec<ApiRow> = match bind {
            None => dispatch!(self, |c| diesel::sql_query(&q).load(c))?,
            Some(PakBind::Int(i)) => {
                dispatch!(self, |c| diesel::sql_query(&q).bind::<BigInt, _>(i).load(c))?
            }
            Some(PakBind::Str(s)) => {
                dispatch!(self, |c| diesel::sql_query(&q).bind::<Text, _>(s).load(c))?
            }
        };
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }

    /// One API key by id.
    pub fn get_api_key(&mut self, id: u64) -> Result<Option<ApiKey>> {
        let id = id_i64("api_keys", id)?;
        Ok(self
            .api_where("WHERE id = $1", Some(PakBind::Int(id)))?
            .into_iter()
            .next())
    }

    /// The API key with this prefix.
    pub fn api_key_by_prefix(&mut self, prefix: &str) -> Result<Option<ApiKey>> {
        Ok(self
            .api_where("WHERE prefix = $1", Some(PakBind::Str(prefix)))?
            .into_iter()
            .next())
    }

    /// All API keys.
    pub fn list_api_keys(&mut self) -> Result<Vec<ApiKey>> {
        self.api_where("", None)
    }

    fn api_update(&mut self, q: &str, id: u64, t: Option<DateTime<Utc>>) -> Result<()> {
        let id = id_i64("api_keys", id)?;
        let n = match t {
            Some(t) => dispatch!(self, |c| diesel::sql_query(q)
                .bind::<HsTime, _>(DbTime(t))
                .bind::<BigInt, _>(id)
                .execute(c))?,
            None => dispatch!(self, |c| diesel::sql_query(q)
                .bind::<BigInt, _>(id)
                .execute(c))?,
        };
        if n == 0 {
            return Err(Error::NotFound(format!("API key {id}")));
        }
        Ok(())
    }

    /// Expires an API key now.
    pub fn expire_api_key(&mut self, id: u64, now: DateTime<Utc>) -> Result<()> {
        self.api_update(
            "UPDATE api_keys SET expiration = $1 WHERE id = $2",
            id,
            Some(now),
        )
    }

    /// Deletes an API key.
    pub fn delete_api_key(&mut self, id: u64) -> Result<()> {
        self.api_update("DELETE FROM api_keys WHERE id = $1", id, None)
    }
}

enum PakBind<'a> {
    Int(i64),
    Str(&'a str),
}

impl Db {
    /// Creates a pre-auth key; returns it with the full key text, shown to the operator once.
    pub fn create_pre_auth_key<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        k: &NewPreAuthKey,
        now: DateTime<Utc>,
    ) -> Result<(PreAuthKey, String)> {
        let s = secret::generate_pre_auth_key(rng)?;
        let stored = self.tx(|c| c.insert_pre_auth_key(k, &s.prefix, &s.hash, now))?;
        Ok((stored, s.full))
    }

    /// Finds the pre-auth key a client presented: `hskey-auth-…` by prefix and bcrypt hash,
    /// anything else as a legacy plaintext key. Says nothing about usability: check
    /// [`PreAuthKey::is_usable`].
    pub fn find_pre_auth_key(&self, presented: &str) -> Result<Option<PreAuthKey>> {
        match secret::parse_key(presented, PRE_AUTH_KEY_PREFIX) {
            ParsedKey::Hashed { prefix, secret } => {
                let Some(k) = self.tx(|c| c.pre_auth_key_by_prefix(prefix))? else {
                    return Ok(None);
                };
                Ok(secret::verify_secret(secret, &k.hash).then_some(k))
            }
            ParsedKey::Legacy(full) => self.tx(|c| c.legacy_pre_auth_key(full)),
        }
    }

    /// Creates an API key; returns it with the full key text, shown to the operator once.
    pub fn create_api_key<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        k: &NewApiKey,
        now: DateTime<Utc>,
    ) -> Result<(ApiKey, String)> {
        let s = secret::generate_api_key(rng)?;
        let stored = self.tx(|c| c.insert_api_key(k, &s.prefix, &s.hash, now))?;
        Ok((stored, s.full))
    }

    /// Finds the API key a client presented (`hskey-api-<prefix>-<secret>`, or a legacy
    /// `<prefix>.<secret>`), verifying the secret. Expiry is the caller's check.
    pub fn find_api_key(&self, presented: &str) -> Result<Option<ApiKey>> {
        let (prefix, secret) = match secret::parse_key(presented, API_KEY_PREFIX) {
            ParsedKey::Hashed { prefix, secret } => (prefix, secret),
            ParsedKey::Legacy(full) => match full.split_once('.') {
                Some((p, s)) if !p.is_empty() && !s.is_empty() => (p, s),
                _ => return Ok(None),
            },
        };
        let Some(k) = self.tx(|c| c.api_key_by_prefix(prefix))? else {
            return Ok(None);
        };
        Ok(secret::verify_secret(secret, &k.hash).then_some(k))
    }
}
