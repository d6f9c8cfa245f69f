//! `nodes`: create, upsert, read and delete nodes, plus the narrow updates the control plane
//! makes often (last seen, expiry, tags, routes, name). JSON columns (`endpoints`,
//! `host_info`, `tags`, `approved_routes`) are encoded as Go Headscale encodes them.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use chrono::{DateTime, Utc};
use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Nullable, Text};
use hs_types::model::{Hostinfo, Node, RegisterMethod};
use hs_types::{DiscoPublic, MachinePublic, NodeId, NodePublic, UserId};
use ipnet::IpNet;

use super::users::IdRow;
use super::{id_i64, id_u64, json_strings, opt_time, req_time, to_json};
use crate::db::{Conn, dispatch};
use crate::error::{Error, Result};
use crate::sqltypes::{DbTime, HsTime};

#[derive(diesel::QueryableByName)]
struct NodeRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    machine_key: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    node_key: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    disco_key: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    endpoints: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    host_info: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ipv4: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ipv6: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    hostname: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    given_name: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    user_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    register_method: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    tags: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    auth_key_id: Option<i64>,
    #[diesel(sql_type = Nullable<HsTime>)]
    expiry: Option<DbTime>,
    #[diesel(sql_type = Nullable<HsTime>)]
    last_seen: Option<DbTime>,
    #[diesel(sql_type = Nullable<Text>)]
    approved_routes: Option<String>,
    #[diesel(sql_type = Nullable<HsTime>)]
    created_at: Option<DbTime>,
    #[diesel(sql_type = Nullable<HsTime>)]
    updated_at: Option<DbTime>,
}

const COLS: &str = "id, machine_key, node_key, disco_key, endpoints, host_info, ipv4, ipv6, hostname, \
    given_name, user_id, register_method, tags, auth_key_id, expiry, last_seen, approved_routes, \
    created_at, updated_at";

fn corrupt(id: i64, column: &'static str, message: String) -> Error {
    Error::Corrupt {
        table: "nodes",
        column,
        id,
        message,
    }
}

fn key<K: std::str::FromStr + Default>(
    id: i64,
    column: &'static str,
    v: Option<&str>,
    required: bool,
) -> Result<K>
where
    K::Err: std::fmt::Display,
{
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => s.parse().map_err(|e| corrupt(id, column, format!("{e}"))),
        None if required => Err(corrupt(id, column, "missing".into())),
        None => Ok(K::default()),
    }
}

fn ip<A: std::str::FromStr>(id: i64, column: &'static str, v: Option<&str>) -> Result<Option<A>>
where
    A::Err: std::fmt::Display,
{
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|e| corrupt(id, column, format!("{s:?}: {e}"))),
        None => Ok(None),
    }
}

impl TryFrom<NodeRow> for Node {
    type Error = Error;

    fn try_from(r: NodeRow) -> Result<Self> {
        let id = r.id;
        let endpoints = json_strings("nodes", "endpoints", id, r.endpoints.as_deref())?
            .into_iter()
            // Go's AddrPort may carry an IPv6 zone, which SocketAddr cannot express; such
            // endpoints are link-local and useless to peers anyway.
            .filter_map(|s| s.parse::<SocketAddr>().ok())
            .collect();
        let hostinfo = match r.host_info.as_deref().map(str::trim) {
            None | Some("") | Some("null") => None,
            Some(s) => match serde_json::from_str::<Hostinfo>(s) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(node = id, error = %e, "ignoring unreadable host_info");
                    None
                }
            },
        };
        let approved_routes =
            json_strings("nodes", "approved_routes", id, r.approved_routes.as_deref())?
                .into_iter()
                .map(|s| {
                    s.parse::<IpNet>()
                        .map_err(|e| corrupt(id, "approved_routes", format!("{s:?}: {e}")))
                })
                .collect::<Result<Vec<_>>>()?;
        Ok(Node {
            id: NodeId(id_u64(id)),
            machine_key: key::<MachinePublic>(id, "machine_key", r.machine_key.as_deref(), true)?,
            node_key: key::<NodePublic>(id, "node_key", r.node_key.as_deref(), false)?,
            disco_key: key::<DiscoPublic>(id, "disco_key", r.disco_key.as_deref(), false)?,
            endpoints,
            hostinfo,
            ipv4: ip::<Ipv4Addr>(id, "ipv4", r.ipv4.as_deref())?,
            ipv6: ip::<Ipv6Addr>(id, "ipv6", r.ipv6.as_deref())?,
            hostname: r.hostname.unwrap_or_default(),
            given_name: r.given_name.unwrap_or_default(),
            user_id: r.user_id.map(|u| UserId(id_u64(u))),
            register_method: RegisterMethod::from_stored(
                r.register_method.as_deref().unwrap_or(""),
            ),
            tags: json_strings("nodes", "tags", id, r.tags.as_deref())?,
            auth_key_id: r.auth_key_id.map(id_u64),
            expiry: opt_time(r.expiry),
            last_seen: opt_time(r.last_seen),
            approved_routes,
            created_at: req_time(r.created_at),
            updated_at: req_time(r.updated_at),
        })
    }
}

/// A node's column values in storage form, owned so binds can borrow them.
struct Vals {
    machine_key: String,
    node_key: String,
    disco_key: String,
    endpoints: String,
    host_info: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    user_id: Option<i64>,
    tags: String,
    auth_key_id: Option<i64>,
    approved_routes: String,
}

impl Vals {
    fn of(n: &Node) -> Result<Self> {
        Ok(Self {
            machine_key: n.machine_key.to_string(),
            node_key: n.node_key.to_string(),
            disco_key: n.disco_key.to_string(),
            endpoints: to_json(
                &n.endpoints
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            ),
            host_info: n.hostinfo.as_ref().map(to_json),
            ipv4: n.ipv4.map(|a| a.to_string()),
            ipv6: n.ipv6.map(|a| a.to_string()),
            user_id: n.user_id.map(|u| id_i64("users", u.get())).transpose()?,
            tags: to_json(&n.tags),
            auth_key_id: n
                .auth_key_id
                .map(|k| id_i64("pre_auth_keys", k))
                .transpose()?,
            approved_routes: to_json(
                &n.approved_routes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            ),
        })
    }
}

/// Binds a node's 18 non-id columns, in [`INSERT_COLS`] order, onto a `sql_query`.
macro_rules! bind_node {
    ($q:expr, $n:expr, $v:expr) => {
        $q.bind::<Text, _>(&$v.machine_key)
            .bind::<Text, _>(&$v.node_key)
            .bind::<Text, _>(&$v.disco_key)
            .bind::<Text, _>(&$v.endpoints)
            .bind::<Nullable<Text>, _>($v.host_info.as_deref())
            .bind::<Nullable<Text>, _>($v.ipv4.as_deref())
            .bind::<Nullable<Text>, _>($v.ipv6.as_deref())
            .bind::<Text, _>(&$n.hostname)
            .bind::<Text, _>(&$n.given_name)
            .bind::<Nullable<BigInt>, _>($v.user_id)
            .bind::<Text, _>($n.register_method.as_str())
            .bind::<Text, _>(&$v.tags)
            .bind::<Nullable<BigInt>, _>($v.auth_key_id)
            .bind::<Nullable<HsTime>, _>($n.expiry.map(DbTime))
            .bind::<Nullable<HsTime>, _>($n.last_seen.map(DbTime))
            .bind::<Text, _>(&$v.approved_routes)
            .bind::<HsTime, _>(DbTime($n.created_at))
            .bind::<HsTime, _>(DbTime($n.updated_at))
    };
}

const INSERT_COLS: &str = "machine_key, node_key, disco_key, endpoints, host_info, ipv4, ipv6, hostname, \
    given_name, user_id, register_method, tags, auth_key_id, expiry, last_seen, approved_routes, \
    created_at, updated_at";
const PARAMS_2_TO_19: &str =
    "$2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19";
const PARAMS_1_TO_18: &str =
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18";

impl Conn<'_> {
    /// Inserts a new node; the database assigns the id (`node.id` is ignored). Returns the
    /// stored node.
    pub fn create_node(&mut self, node: &Node) -> Result<Node> {
        let v = Vals::of(node)?;
        let q = format!("INSERT INTO nodes ({INSERT_COLS}) VALUES ({PARAMS_1_TO_18}) RETURNING id");
        let row: IdRow = dispatch!(self, |c| bind_node!(diesel::sql_query(&q), node, v)
            .get_result(c))?;
        let mut stored = node.clone();
        stored.id = NodeId(id_u64(row.id));
        Ok(stored)
    }

    /// Inserts or replaces the node with `node.id`.
    pub fn upsert_node(&mut self, node: &Node) -> Result<()> {
        let v = Vals::of(node)?;
        let id = id_i64("nodes", node.id.get())?;
        let set = INSERT_COLS
            .split(", ")
            .filter(|c| *c != "created_at")
            .map(|c| format!("{c} = excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let q = format!(
            "INSERT INTO nodes (id, {INSERT_COLS}) VALUES ($1, {PARAMS_2_TO_19}) \
             ON CONFLICT (id) DO UPDATE SET {set}, deleted_at = NULL"
        );
        if self.is_sqlite() {
            // AUTOINCREMENT moves sqlite_sequence past an explicit id by itself.
            dispatch!(self, |c| bind_node!(
                diesel::sql_query(&q).bind::<BigInt, _>(id),
                node,
                v
            )
            .execute(c))?;
            return Ok(());
        }
        // PostgreSQL's sequence does not move for explicit ids: when this inserted a row,
        // push the sequence past it so `create_node` never hands out a taken id.
        let q = format!("{q} RETURNING (xmax = 0) AS inserted");
        let row: InsertedRow = dispatch!(self, |c| bind_node!(
            diesel::sql_query(&q).bind::<BigInt, _>(id),
            node,
            v
        )
        .get_result(c))?;
        if row.inserted {
            self.batch(
                "SELECT setval(pg_get_serial_sequence('nodes', 'id'), (SELECT MAX(id) FROM nodes))",
            )?;
        }
        Ok(())
    }

    fn nodes_where(&mut self, cond: &str, bind: Option<Bound<'_>>) -> Result<Vec<Node>> {
        let q = format!("SELECT {COLS} FROM nodes WHERE deleted_at IS NULL {cond} ORDER BY id");
        let rows: Vec<NodeRow> = match bind {
            None => dispatch!(self, |c| diesel::sql_query(&q).load(c))?,
            Some(Bound::Int(i)) => {
                dispatch!(self, |c| diesel::sql_query(&q).bind::<BigInt, _>(i).load(c))?
            }
            Some(Bound::Str(s)) => {
                dispatch!(self, |c| diesel::sql_query(&q).bind::<Text, _>(s).load(c))?
            }
        };
        rows.into_iter().map(Node::try_from).collect()
    }

    /// All nodes, by id.
    pub fn list_nodes(&mut self) -> Result<Vec<Node>> {
        self.nodes_where("", None)
    }

    /// The nodes a user owns.
    pub fn list_nodes_by_user(&mut self, user: UserId) -> Result<Vec<Node>> {
        let id = id_i64("users", user.get())?;
        self.nodes_where("AND user_id = $1", Some(Bound::Int(id)))
    }

    /// One node by id.
    pub fn get_node(&mut self, id: NodeId) -> Result<Option<Node>> {
        let id = id_i64("nodes", id.get())?;
        Ok(self
            .nodes_where("AND id = $1", Some(Bound::Int(id)))?
            .into_iter()
            .next())
    }

    /// The node with this machine key.
    pub fn node_by_machine_key(&mut self, k: &MachinePublic) -> Result<Option<Node>> {
        let s = k.to_string();
        Ok(self
            .nodes_where("AND machine_key = $1", Some(Bound::Str(&s)))?
            .into_iter()
            .next())
    }

    /// The node with this node key.
    pub fn node_by_node_key(&mut self, k: &NodePublic) -> Result<Option<Node>> {
        let s = k.to_string();
        Ok(self
            .nodes_where("AND node_key = $1", Some(Bound::Str(&s)))?
            .into_iter()
            .next())
    }

    /// Deletes a node; [`Error::NotFound`] if there is none.
    pub fn delete_node(&mut self, id: NodeId) -> Result<()> {
        let id = id_i64("nodes", id.get())?;
        let n = dispatch!(self, |c| diesel::sql_query(
            "DELETE FROM nodes WHERE id = $1"
        )
        .bind::<BigInt, _>(id)
        .execute(c))?;
        if n == 0 {
            return Err(Error::NotFound(format!("node {id}")));
        }
        Ok(())
    }

    fn update_node_col(
        &mut self,
        id: NodeId,
        set: &str,
        v: Bound<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let id = id_i64("nodes", id.get())?;
        let q = format!(
            "UPDATE nodes SET {set} = $1, updated_at = $2 WHERE id = $3 AND deleted_at IS NULL"
        );
        let n = match v {
            Bound::Int(i) => dispatch!(self, |c| diesel::sql_query(&q)
                .bind::<BigInt, _>(i)
                .bind::<HsTime, _>(DbTime(now))
                .bind::<BigInt, _>(id)
                .execute(c))?,
            Bound::Str(s) => dispatch!(self, |c| diesel::sql_query(&q)
                .bind::<Text, _>(s)
                .bind::<HsTime, _>(DbTime(now))
                .bind::<BigInt, _>(id)
                .execute(c))?,
        };
        if n == 0 {
            return Err(Error::NotFound(format!("node {id}")));
        }
        Ok(())
    }

    /// Sets a node's tags (and, as tags own tagged nodes, leaves `user_id` to the caller).
    pub fn set_node_tags(&mut self, id: NodeId, tags: &[String], now: DateTime<Utc>) -> Result<()> {
        self.update_node_col(id, "tags", Bound::Str(&to_json(&tags)), now)
    }

    /// Sets a node's approved routes.
    pub fn set_node_approved_routes(
        &mut self,
        id: NodeId,
        routes: &[IpNet],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let json = to_json(&routes.iter().map(ToString::to_string).collect::<Vec<_>>());
        self.update_node_col(id, "approved_routes", Bound::Str(&json), now)
    }

    /// Sets a node's DNS name.
    pub fn set_node_given_name(
        &mut self,
        id: NodeId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.update_node_col(id, "given_name", Bound::Str(name), now)
    }

    /// Sets a node's DNS name only while it still is `expected`; answers whether it did.
    /// The control plane records here the unique name the NodeStore picked for a node it
    /// stored as `expected`, without undoing a rename that landed in between.
    pub fn set_node_given_name_if(
        &mut self,
        id: NodeId,
        expected: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let nid = id_i64("nodes", id.get())?;
        let n = dispatch!(self, |c| diesel::sql_query(
            "UPDATE nodes SET given_name = $1, updated_at = $2 \
             WHERE id = $3 AND given_name = $4 AND deleted_at IS NULL"
        )
        .bind::<Text, _>(name)
        .bind::<HsTime, _>(DbTime(now))
        .bind::<BigInt, _>(nid)
        .bind::<Text, _>(expected)
        .execute(c))?;
        Ok(n > 0)
    }

    /// Sets (or clears, with `None`) a node's key expiry.
    pub fn set_node_expiry(
        &mut self,
        id: NodeId,
        expiry: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let nid = id_i64("nodes", id.get())?;
        let n = dispatch!(self, |c| diesel::sql_query(
            "UPDATE nodes SET expiry = $1, updated_at = $2 WHERE id = $3 AND deleted_at IS NULL"
        )
        .bind::<Nullable<HsTime>, _>(expiry.map(DbTime))
        .bind::<HsTime, _>(DbTime(now))
        .bind::<BigInt, _>(nid)
        .execute(c))?;
        if n == 0 {
            return Err(Error::NotFound(format!("node {id}")));
        }
        Ok(())
    }

    /// Writes what a client reports about itself in a map request, and nothing else: its
    /// Hostinfo (and the hostname it carries), endpoints and disco key. Columns an operator
    /// owns (name, tags, routes, expiry) are left alone, so a map request never undoes an
    /// admin change made meanwhile. `None` leaves a column as it is.
    pub fn set_node_client_state(
        &mut self,
        id: NodeId,
        update: &ClientState,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if let Some(h) = &update.hostinfo {
            self.update_node_col(id, "host_info", Bound::Str(&to_json(h)), now)?;
        }
        if let Some(name) = &update.hostname {
            self.update_node_col(id, "hostname", Bound::Str(name), now)?;
        }
        if let Some(e) = &update.endpoints {
            let json = to_json(&e.iter().map(ToString::to_string).collect::<Vec<_>>());
            self.update_node_col(id, "endpoints", Bound::Str(&json), now)?;
        }
        if let Some(k) = &update.disco_key {
            self.update_node_col(id, "disco_key", Bound::Str(&k.to_string()), now)?;
        }
        Ok(())
    }

    /// Sets a node's owner (`None`: owned by its tags).
    pub fn set_node_user(
        &mut self,
        id: NodeId,
        user: Option<UserId>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let nid = id_i64("nodes", id.get())?;
        let uid = user.map(|u| id_i64("users", u.get())).transpose()?;
        let n = dispatch!(self, |c| {
            diesel::sql_query(
            "UPDATE nodes SET user_id = $1, updated_at = $2 WHERE id = $3 AND deleted_at IS NULL"
        )
        .bind::<Nullable<BigInt>, _>(uid)
        .bind::<HsTime, _>(DbTime(now))
        .bind::<BigInt, _>(nid)
        .execute(c)
        })?;
        if n == 0 {
            return Err(Error::NotFound(format!("node {nid}")));
        }
        Ok(())
    }

    /// Records when a node was last seen (does not touch `updated_at`).
    pub fn set_node_last_seen(&mut self, id: NodeId, at: DateTime<Utc>) -> Result<()> {
        let nid = id_i64("nodes", id.get())?;
        dispatch!(self, |c| diesel::sql_query(
            "UPDATE nodes SET last_seen = $1 WHERE id = $2"
        )
        .bind::<HsTime, _>(DbTime(at))
        .bind::<BigInt, _>(nid)
        .execute(c))?;
        Ok(())
    }

    /// Every tailnet address held by a node, for seeding the IP allocator.
    pub fn used_ips(&mut self) -> Result<Vec<std::net::IpAddr>> {
        Ok(self.list_nodes()?.iter().flat_map(Node::ips).collect())
    }
}

/// The columns a client owns, as a map request reports them; see
/// [`Conn::set_node_client_state`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientState {
    /// New Hostinfo.
    pub hostinfo: Option<Hostinfo>,
    /// New hostname (from the Hostinfo).
    pub hostname: Option<String>,
    /// New endpoints.
    pub endpoints: Option<Vec<SocketAddr>>,
    /// New disco key.
    pub disco_key: Option<DiscoPublic>,
}

#[derive(diesel::QueryableByName)]
struct InsertedRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    inserted: bool,
}

enum Bound<'a> {
    Int(i64),
    Str(&'a str),
}
