//! `/api/v2/tailnet/{tailnet}/devices` and `/api/v2/device/{id}`: Headscale's nodes as
//! Tailscale's API shows devices, and the changes Headscale has an equivalent for (delete,
//! name, tags, key expiry, subnet routes), each through the same [`Admin`] operation as
//! `/api/v1`.
//!
//! A device's `id` and `nodeId` are both Headscale's numeric node id as text. Headscale has
//! no device approval: every node is authorized, so `authorized: true` changes nothing and
//! `authorized: false` is refused with what to do instead.
//!
//! [`Admin`]: crate::service::Admin

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hs_types::NodeId;
use hs_types::model::Node;
use serde_json::{Map, Value, json};

use super::input::{Body, check_tag_forms, parse_id, path, query};
use super::keys::check_tag_limit;
use super::scope::{Area, need};
use super::users::login_name;
use super::{Grant, V2, V2Error, V2Result, require};
use crate::error::ApiError;
use crate::json::rfc3339;
use crate::service::{NodeView, zero_instant};

/// The owner Headscale shows for tagged nodes (its tagged-devices pseudo user's name).
const TAGGED_DEVICES: &str = "tagged-devices";

/// Fields Tailscale adds to a device only with `fields=all`.
const ALL_ONLY: [&str; 5] = [
    "advertisedRoutes",
    "enabledRoutes",
    "clientConnectivity",
    "sshEnabled",
    "distro",
];

pub(super) fn routes() -> Router<V2> {
    Router::new()
        .route("/api/v2/tailnet/{tailnet}/devices", get(list))
        .route("/api/v2/device/{id}", get(get_one).delete(delete))
        .route("/api/v2/device/{id}/authorized", post(set_authorized))
        .route("/api/v2/device/{id}/name", post(set_name))
        .route("/api/v2/device/{id}/tags", post(set_tags))
        .route("/api/v2/device/{id}/key", post(set_key))
        .route(
            "/api/v2/device/{id}/routes",
            get(get_routes).post(set_routes),
        )
}

// ---- devices as Tailscale shows them

/// `dns.base_domain` in force, if any.
fn base_domain(v2: &V2) -> Option<String> {
    v2.admin
        .control()
        .dns_settings()
        .map(|d| d.base_domain)
        .filter(|b| !b.is_empty())
}

fn fqdn(label: &str, base: Option<&str>) -> String {
    match base {
        Some(b) => format!("{label}.{}", b.trim_end_matches('.')),
        None => label.to_owned(),
    }
}

fn hostinfo<'a>(n: &'a Node, key: &str) -> Option<&'a Value> {
    n.hostinfo.as_ref().and_then(|h| h.get(key))
}

fn hostinfo_str(n: &Node, key: &str) -> String {
    hostinfo(n, key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Go's `opt.Bool` travels as the string `"true"`; plain booleans are accepted too.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

fn strings<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// `clientConnectivity` from what the client reported in `Hostinfo.NetInfo`. DERP regions
/// are named by their numeric id (Tailscale uses region names, which need the DERP map).
fn connectivity(n: &Node) -> Value {
    let ni = hostinfo(n, "NetInfo");
    let flag = |k: &str| truthy(ni.and_then(|x| x.get(k)));
    let preferred = ni
        .and_then(|x| x.get("PreferredDERP"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut latency: BTreeMap<String, f64> = BTreeMap::new();
    if let Some(Value::Object(m)) = ni.and_then(|x| x.get("DERPLatency")) {
        for (k, v) in m {
            let region = k.split_once('-').map_or(k.as_str(), |(r, _)| r);
            if let Some(secs) = v.as_f64() {
                let ms = secs * 1000.0;
                latency
                    .entry(region.to_owned())
                    .and_modify(|cur| *cur = cur.min(ms))
                    .or_insert(ms);
            }
        }
    }
    let latency: Map<String, Value> = latency
        .into_iter()
        .map(|(region, ms)| {
            let mut r = json!({ "latencyMs": ms });
            if region == preferred.to_string() {
                r["preferred"] = json!(true);
            }
            (region, r)
        })
        .collect();
    json!({
        "endpoints": strings(&n.endpoints),
        "derp": if preferred > 0 { preferred.to_string() } else { String::new() },
        "mappingVariesByDestIP": flag("MappingVariesByDestIP"),
        "latency": latency,
        "clientSupports": {
            "hairPinning": flag("HairPinning"),
            "ipv6": flag("WorkingIPv6"),
            "pcp": flag("PCP"),
            "pmp": flag("PMP"),
            "udp": flag("WorkingUDP"),
            "upnp": flag("UPnP"),
        },
    })
}

/// A device with every field; [`trim`] takes the `fields=all` ones off.
fn device_json(v: &NodeView, base: Option<&str>) -> Value {
    let n = &v.node;
    let id = n.id.get().to_string();
    let user = if n.is_tagged() {
        TAGGED_DEVICES.to_owned()
    } else {
        v.user.as_ref().map(login_name).unwrap_or_default()
    };
    let mut d = json!({
        "id": id,
        "nodeId": id,
        "name": fqdn(&n.given_name, base),
        "hostname": n.hostname,
        "addresses": strings(&n.ips()),
        "user": user,
        "tags": n.tags,
        "authorized": true,
        "keyExpiryDisabled": n.expiry.is_none(),
        "expires": rfc3339(n.expiry.unwrap_or_else(zero_instant)),
        "created": rfc3339(n.created_at),
        "clientVersion": hostinfo_str(n, "IPNVersion"),
        "os": hostinfo_str(n, "OS"),
        "machineKey": n.machine_key.to_string(),
        "nodeKey": n.node_key.to_string(),
        "isEphemeral": v.preauth_key.as_ref().is_some_and(|(k, _)| k.ephemeral),
        "isExternal": false,
        "connectedToControl": v.online,
        "updateAvailable": false,
        "blocksIncomingConnections": truthy(hostinfo(n, "ShieldsUp")),
        "tailnetLockKey": "",
        "tailnetLockError": "",
        "advertisedRoutes": strings(&v.available_routes),
        "enabledRoutes": strings(&n.approved_routes),
        "clientConnectivity": connectivity(n),
        "sshEnabled": hostinfo(n, "sshHostKeys")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty()),
    });
    // Tailscale leaves lastSeen out while the device is connected.
    if !v.online {
        d["lastSeen"] = json!(rfc3339(n.last_seen.unwrap_or_else(zero_instant)));
    }
    let distro = hostinfo_str(n, "Distro");
    if !distro.is_empty() {
        d["distro"] = json!({
            "name": distro,
            "version": hostinfo_str(n, "DistroVersion"),
            "codeName": hostinfo_str(n, "DistroCodeName"),
        });
    }
    d
}

fn trim(mut d: Value, all: bool) -> Value {
    if !all && let Value::Object(m) = &mut d {
        for k in ALL_ONLY {
            m.remove(k);
        }
    }
    d
}

/// `fields=all` or `fields=default` (the default).
fn fields_all(q: &[(String, String)]) -> Result<bool, V2Error> {
    let mut all = false;
    for (k, v) in q {
        if k == "fields" {
            all = match v.as_str() {
                "all" => true,
                "" | "default" => false,
                other => {
                    return Err(V2Error::bad_request(format!(
                        "fields: {other:?} is not one of all, default"
                    )));
                }
            };
        }
    }
    Ok(all)
}

/// Whether device `d` passes the list filters: each other query parameter that names a
/// device field of a string, boolean or string-list value must match one of its values
/// (`?tags=tag:a&tags=tag:b&os=linux`); parameters naming nothing are ignored.
fn matches(d: &Value, q: &[(String, String)]) -> bool {
    let mut wanted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in q {
        if k != "fields" {
            wanted.entry(k.as_str()).or_default().push(v.as_str());
        }
    }
    wanted.iter().all(|(k, values)| match d.get(*k) {
        Some(Value::String(s)) => values.contains(&s.as_str()),
        Some(Value::Bool(b)) => values.iter().any(|v| v.parse::<bool>().ok() == Some(*b)),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|s| values.contains(&s)),
        _ => true,
    })
}

fn routes_json(v: &NodeView) -> Value {
    json!({
        "advertisedRoutes": strings(&v.available_routes),
        "enabledRoutes": strings(&v.node.approved_routes),
    })
}

fn device_id(p: Result<Path<String>, PathRejection>) -> Result<NodeId, V2Error> {
    let text = path(p)?;
    parse_id("device", &text).map(NodeId)
}

/// Tailscale's message for an unknown device, for every operation on one.
fn unknown_device(id: NodeId) -> impl FnOnce(ApiError) -> V2Error {
    move |e| match e {
        ApiError::NotFound(_) => {
            V2Error::new(StatusCode::NOT_FOUND, format!("device {id} not found"))
        }
        e => V2Error::from(e),
    }
}

async fn device(v2: &V2, id: NodeId) -> Result<NodeView, V2Error> {
    v2.admin.get_node(id).await.map_err(unknown_device(id))
}

/// The answer to a change that returns nothing in Tailscale's API.
fn done() -> V2Result {
    Ok(Json(json!({})).into_response())
}

// ---- handlers

async fn list(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    RawQuery(raw): RawQuery,
) -> V2Result {
    require(&grant, need(Area::DevicesCore, false))?;
    let q = query(raw);
    let all = fields_all(&q)?;
    let base = base_domain(&v2);
    let nodes = v2.admin.list_nodes(None).await?;
    let devices: Vec<Value> = nodes
        .iter()
        .map(|v| device_json(v, base.as_deref()))
        .filter(|d| matches(d, &q))
        .map(|d| trim(d, all))
        .collect();
    Ok(Json(json!({ "devices": devices })).into_response())
}

async fn get_one(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> V2Result {
    require(&grant, need(Area::DevicesCore, false))?;
    let id = device_id(id)?;
    let all = fields_all(&query(raw))?;
    let v = device(&v2, id).await?;
    let d = device_json(&v, base_domain(&v2).as_deref());
    Ok(Json(trim(d, all)).into_response())
}

async fn delete(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    id: Result<Path<String>, PathRejection>,
) -> V2Result {
    require(&grant, need(Area::DevicesCore, true))?;
    let id = device_id(id)?;
    device(&v2, id).await?;
    v2.admin.delete_node(id).await.map_err(unknown_device(id))?;
    tracing::info!(caller = %grant.caller(), node = %id, "device deleted through /api/v2");
    done()
}

async fn set_authorized(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> V2Result {
    require(&grant, need(Area::DevicesCore, true))?;
    let id = device_id(id)?;
    let body = Body::parse(&body)?;
    let f = body.fields();
    let authorized = f.required("authorized", f.bool("authorized")?, "true or false")?;
    device(&v2, id).await?;
    if authorized {
        return done();
    }
    Err(V2Error::bad_request(format!(
        "Headscale has no device authorization: every registered device is authorized. To cut \
         device {id} off, expire its key (`headscale nodes expire --identifier {id}`) or delete \
         it (DELETE /api/v2/device/{id})"
    )))
}

/// A bare DNS label, or a name under the tailnet's domain reduced to its label.
fn label_of(name: &str, base: Option<&str>) -> Result<String, V2Error> {
    let n = name.strip_suffix('.').unwrap_or(name);
    if n.is_empty() {
        return Err(V2Error::bad_request("name: must not be empty"));
    }
    if let Some(base) = base.map(|b| b.trim_end_matches('.'))
        && let Some(split) = n.len().checked_sub(base.len() + 1)
        && n.get(split + 1..)
            .is_some_and(|s| s.eq_ignore_ascii_case(base))
        && n.get(split..=split) == Some(".")
        && let Some(label) = n.get(..split).filter(|l| !l.is_empty())
    {
        return Ok(label.to_owned());
    }
    if n.contains('.') {
        let under = base.map_or_else(
            || "this server has no dns.base_domain, so give the label alone".to_owned(),
            |b| format!("give a DNS label or a name under {b}"),
        );
        return Err(V2Error::bad_request(format!(
            "name: {name:?} is not a device name here: {under}"
        )));
    }
    Ok(n.to_owned())
}

async fn set_name(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> V2Result {
    require(&grant, need(Area::DevicesCore, true))?;
    let id = device_id(id)?;
    let body = Body::parse(&body)?;
    let f = body.fields();
    let name = f.required("name", f.string("name")?, "the device's new name")?;
    let label = label_of(&name, base_domain(&v2).as_deref())?;
    device(&v2, id).await?;
    v2.admin
        .rename_node(id, label.clone())
        .await
        .map_err(unknown_device(id))?;
    tracing::info!(caller = %grant.caller(), node = %id, name = %label, "device renamed through /api/v2");
    done()
}

async fn set_tags(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> V2Result {
    require(&grant, need(Area::DevicesCore, true))?;
    let id = device_id(id)?;
    let body = Body::parse(&body)?;
    let tags = body.fields().strings("tags")?.unwrap_or_default();
    check_tag_forms("tags", &tags)?;
    device(&v2, id).await?;
    check_tag_limit(&v2, &grant, &tags).await?;
    v2.admin
        .set_tags(id, tags.clone())
        .await
        .map_err(unknown_device(id))?;
    tracing::info!(caller = %grant.caller(), node = %id, ?tags, "device tags set through /api/v2");
    done()
}

/// Disabling expiry clears the node's expiry (it never expires). Enabling it gives a node
/// without expiry the expiry a fresh registration would get (`node.expiry` from now) and
/// leaves an existing expiry alone; tagged and ephemeral nodes, and servers without
/// `node.expiry`, have no key expiry in Headscale, so for them it changes nothing.
async fn set_key(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> V2Result {
    require(&grant, need(Area::DevicesCore, true))?;
    let id = device_id(id)?;
    let body = Body::parse(&body)?;
    let f = body.fields();
    let disabled = f.required(
        "keyExpiryDisabled",
        f.bool("keyExpiryDisabled")?,
        "true or false",
    )?;
    let v = device(&v2, id).await?;
    let n = &v.node;
    if disabled {
        if n.expiry.is_some() {
            v2.admin
                .expire_node(id, None, true)
                .await
                .map_err(unknown_device(id))?;
            tracing::info!(caller = %grant.caller(), node = %id, "device key expiry disabled through /api/v2");
        }
        return done();
    }
    let ephemeral = v.preauth_key.as_ref().is_some_and(|(k, _)| k.ephemeral);
    if n.expiry.is_none()
        && !n.is_tagged()
        && !ephemeral
        && let Some(d) = v2
            .admin
            .control()
            .config()
            .node_expiry
            .and_then(|d| chrono::Duration::from_std(d).ok())
        && let Some(at) = v2.admin.now().checked_add_signed(d)
    {
        v2.admin
            .expire_node(id, Some(at), false)
            .await
            .map_err(unknown_device(id))?;
        tracing::info!(caller = %grant.caller(), node = %id, expiry = %at, "device key expiry enabled through /api/v2");
    }
    done()
}

async fn get_routes(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    id: Result<Path<String>, PathRejection>,
) -> V2Result {
    require(&grant, need(Area::DevicesRoutes, false))?;
    let id = device_id(id)?;
    let v = device(&v2, id).await?;
    Ok(Json(routes_json(&v)).into_response())
}

async fn set_routes(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> V2Result {
    require(&grant, need(Area::DevicesRoutes, true))?;
    let id = device_id(id)?;
    let body = Body::parse(&body)?;
    let routes = body.fields().strings("routes")?.unwrap_or_default();
    device(&v2, id).await?;
    let v = v2
        .admin
        .set_approved_routes(id, routes)
        .await
        .map_err(unknown_device(id))?;
    tracing::info!(
        caller = %grant.caller(),
        node = %id,
        routes = ?v.node.approved_routes,
        "device routes approved through /api/v2"
    );
    Ok(Json(routes_json(&v)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reduce_to_labels() {
        let base = Some("ts.example.com");
        assert_eq!(label_of("web", base).unwrap(), "web");
        assert_eq!(label_of("web.ts.example.com", base).unwrap(), "web");
        assert_eq!(label_of("web.TS.example.com.", base).unwrap(), "web");
        assert!(label_of("web.other.com", base).is_err());
        assert!(label_of(".ts.example.com", base).is_err());
        assert!(label_of("", base).is_err());
        assert!(label_of("a.b", None).is_err());
    }

    #[test]
    fn ids_are_decimal() {
        assert_eq!(parse_id("device", "42").unwrap(), 42);
        for bad in ["", "n42", "+4", "4 ", "99999999999999999999999"] {
            let e = parse_id("device", bad).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn filters_match_strings_bools_and_lists() {
        let d = json!({"os": "linux", "isEphemeral": false, "tags": ["tag:a", "tag:b"]});
        let q = |s: &str| query(Some(s.to_owned()));
        assert!(matches(&d, &q("os=linux&fields=all")));
        assert!(!matches(&d, &q("os=windows")));
        assert!(matches(&d, &q("os=windows&os=linux")));
        assert!(matches(&d, &q("isEphemeral=false")));
        assert!(!matches(&d, &q("isEphemeral=true")));
        assert!(matches(&d, &q("tags=tag:z&tags=tag:b")));
        assert!(!matches(&d, &q("tags=tag:z")));
        assert!(matches(&d, &q("unknown=x")));
    }

    #[test]
    fn body_fields_name_the_field() {
        let b = Body::parse(br#"{"a": {"b": {"c": [1]}}, "n": null, "s": 3}"#).unwrap();
        let ab = b.fields().object("a").unwrap().object("b").unwrap();
        let e = ab.strings("c").unwrap_err();
        assert_eq!(e.message, "a.b.c[0]: expected a string, got a number");
        assert_eq!(b.fields().strings("n").unwrap(), None);
        let e = b.fields().string("s").unwrap_err();
        assert_eq!(e.message, "s: expected a string, got a number");
        assert!(Body::parse(b"[]").is_err());
        assert!(Body::parse(b"").is_err());
    }
}
