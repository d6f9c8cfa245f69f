//! `policies`: the policy document when `policy.mode` is `database`. Rows are appended; the
//! newest live row wins, as in Go Headscale.

use chrono::{DateTime, Utc};
use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::users::IdRow;
use super::{id_u64, req_time};
use crate::db::{Conn, dispatch};
use crate::error::Result;
use crate::sqltypes::{DbTime, HsTime};

/// A stored policy document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRow {
    /// Row id (higher is newer).
    pub id: u64,
    /// The HuJSON policy text.
    pub data: String,
    /// When it was stored.
    pub updated_at: DateTime<Utc>,
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    data: Option<String>,
    #[diesel(sql_type = Nullable<HsTime>)]
    updated_at: Option<DbTime>,
}

impl Conn<'_> {
    /// The current policy, if one was ever stored.
    pub fn get_policy(&mut self) -> Result<Option<PolicyRow>> {
        let rows: Vec<Row> = dispatch!(self, |c| {
            diesel::sql_query(
            "SELECT id, data, updated_at FROM policies WHERE deleted_at IS NULL ORDER BY id DESC LIMIT 1"
        )
        .load(c)
        })?;
        Ok(rows.into_iter().next().map(|r| PolicyRow {
            id: id_u64(r.id),
            data: r.data.unwrap_or_default(),
            updated_at: req_time(r.updated_at),
        }))
    }

    /// Stores a new policy document, which becomes the current one.
    pub fn set_policy(&mut self, data: &str, now: DateTime<Utc>) -> Result<PolicyRow> {
        let row: IdRow = dispatch!(self, |c| {
            diesel::sql_query(
            "INSERT INTO policies (data, created_at, updated_at) VALUES ($1, $2, $3) RETURNING id"
        )
        .bind::<Text, _>(data)
        .bind::<HsTime, _>(DbTime(now))
        .bind::<HsTime, _>(DbTime(now))
        .get_result(c)
        })?;
        Ok(PolicyRow {
            id: id_u64(row.id),
            data: data.to_owned(),
            updated_at: now,
        })
    }
}
