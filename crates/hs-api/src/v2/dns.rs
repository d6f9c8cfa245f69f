//! `/api/v2/tailnet/{tailnet}/dns/*`: nameservers, search paths, MagicDNS and split DNS.
//!
//! Headscale's DNS settings come from the config file's `dns` section; an edit made here is
//! laid over it (the config file is not rewritten), kept in the `/api/v2` state file so it
//! survives a restart, and sent to every node at once. Values read back are the settings in
//! force: the config file's, with the edits.

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Router};
use hs_config::DnsConfig;
use hs_control::DnsOverrides;
use serde_json::{Value, json};

use super::oauth::StoredDns;
use super::scope::{Area, need};
use super::{Grant, V2, V2Error, V2Result, json_body, require};

pub(super) fn routes() -> Router<V2> {
    Router::new()
        .route(
            "/api/v2/tailnet/{tailnet}/dns/nameservers",
            get(get_nameservers).post(set_nameservers),
        )
        .route(
            "/api/v2/tailnet/{tailnet}/dns/searchpaths",
            get(get_searchpaths).post(set_searchpaths),
        )
        .route(
            "/api/v2/tailnet/{tailnet}/dns/preferences",
            get(get_preferences).post(set_preferences),
        )
        .route(
            "/api/v2/tailnet/{tailnet}/dns/split-dns",
            get(get_split).put(put_split).patch(patch_split),
        )
}

/// The stored form of the control plane's edits, and back.
pub(crate) fn to_overrides(d: &StoredDns) -> DnsOverrides {
    DnsOverrides {
        nameservers: d.nameservers.clone(),
        search_domains: d.search_paths.clone(),
        magic_dns: d.magic_dns,
        split: d.split.clone(),
    }
}

fn to_stored(o: &DnsOverrides) -> StoredDns {
    StoredDns {
        nameservers: o.nameservers.clone(),
        search_paths: o.search_domains.clone(),
        magic_dns: o.magic_dns,
        split: o.split.clone(),
    }
}

fn settings(v2: &V2) -> Result<DnsConfig, V2Error> {
    v2.admin.control().dns_settings().ok_or_else(|| {
        V2Error::new(
            StatusCode::NOT_IMPLEMENTED,
            "this server was started without DNS settings",
        )
    })
}

/// Applies `edit` to the edits in force, persists the result and sends it to every node;
/// answers with the settings then in force.
async fn edit(
    v2: &V2,
    grant: &Grant,
    what: &str,
    edit: impl FnOnce(&mut DnsOverrides) -> Result<(), String>,
) -> Result<DnsConfig, V2Error> {
    require(grant, need(Area::Dns, true))?;
    let store = v2.oauth.clone();
    v2.admin
        .control()
        .edit_dns_overrides(|cur| {
            let mut next = cur.clone();
            edit(&mut next)?;
            store.set_dns(to_stored(&next)).map_err(|e| e.to_string())?;
            Ok(next)
        })
        .await
        .map_err(|e| match e {
            hs_control::Error::Invalid(m) => V2Error::bad_request(m),
            e => V2Error::from(crate::error::ApiError::from_control("changing DNS", e)),
        })?;
    tracing::info!(caller = %grant.caller(), what, "DNS settings changed through /api/v2");
    settings(v2)
}

/// A nameserver: an IP address or a DNS-over-HTTPS URL, as `dns.nameservers` takes them.
fn check_nameserver(field: &str, i: usize, ns: &str) -> Result<(), String> {
    let doh = ns.starts_with("https://")
        && ns
            .parse::<Uri>()
            .ok()
            .and_then(|u| u.host().map(|h| !h.is_empty()))
            .unwrap_or(false);
    if ns.parse::<IpAddr>().is_ok() || doh {
        return Ok(());
    }
    Err(format!(
        "{field}[{i}]: {ns:?} is not an IP address or an https:// DNS-over-HTTPS URL"
    ))
}

/// A DNS name: dot-separated labels of letters, digits and `-`.
fn check_domain(field: &str, name: &str) -> Result<(), String> {
    let n = name.trim_end_matches('.');
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{field}: {name:?} is not a valid domain name"))
    }
}

fn list_field(body: &Bytes, field: &str) -> Result<Vec<String>, V2Error> {
    let v: Value = json_body(body)?;
    let list = v
        .get(field)
        .ok_or_else(|| V2Error::bad_request(format!("missing field {field:?}")))?;
    if list.is_null() {
        return Ok(Vec::new());
    }
    serde_json::from_value(list.clone())
        .map_err(|_| V2Error::bad_request(format!("{field} must be a list of strings")))
}

async fn get_nameservers(State(v2): State<V2>, Extension(grant): Extension<Grant>) -> V2Result {
    require(&grant, need(Area::Dns, false))?;
    let s = settings(&v2)?;
    Ok(axum::Json(json!({ "dns": s.nameservers_global })).into_response())
}

async fn set_nameservers(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    body: Bytes,
) -> V2Result {
    let list = list_field(&body, "dns")?;
    for (i, ns) in list.iter().enumerate() {
        check_nameserver("dns", i, ns).map_err(V2Error::bad_request)?;
    }
    let s = edit(&v2, &grant, "nameservers", |o| {
        o.nameservers = Some(list);
        Ok(())
    })
    .await?;
    Ok(axum::Json(json!({ "dns": s.nameservers_global, "magicDNS": s.magic_dns })).into_response())
}

async fn get_searchpaths(State(v2): State<V2>, Extension(grant): Extension<Grant>) -> V2Result {
    require(&grant, need(Area::Dns, false))?;
    let s = settings(&v2)?;
    Ok(axum::Json(json!({ "searchPaths": s.search_domains })).into_response())
}

async fn set_searchpaths(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    body: Bytes,
) -> V2Result {
    let list = list_field(&body, "searchPaths")?;
    for (i, d) in list.iter().enumerate() {
        check_domain(&format!("searchPaths[{i}]"), d).map_err(V2Error::bad_request)?;
    }
    let s = edit(&v2, &grant, "search paths", |o| {
        o.search_domains = Some(list);
        Ok(())
    })
    .await?;
    Ok(axum::Json(json!({ "searchPaths": s.search_domains })).into_response())
}

async fn get_preferences(State(v2): State<V2>, Extension(grant): Extension<Grant>) -> V2Result {
    require(&grant, need(Area::Dns, false))?;
    let s = settings(&v2)?;
    Ok(axum::Json(json!({ "magicDNS": s.magic_dns })).into_response())
}

async fn set_preferences(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    body: Bytes,
) -> V2Result {
    let v: Value = json_body(&body)?;
    let magic = v
        .get("magicDNS")
        .and_then(Value::as_bool)
        .ok_or_else(|| V2Error::bad_request("magicDNS must be true or false"))?;
    let base = settings(&v2)?.base_domain;
    let s = edit(&v2, &grant, "MagicDNS", |o| {
        if magic && base.is_empty() {
            return Err("MagicDNS needs dns.base_domain in the config file".to_owned());
        }
        o.magic_dns = Some(magic);
        Ok(())
    })
    .await?;
    Ok(axum::Json(json!({ "magicDNS": s.magic_dns })).into_response())
}

/// Split DNS from a request body: domain → nameservers (`null` or `[]` removes the domain
/// in a PATCH).
fn split_body(body: &Bytes) -> Result<BTreeMap<String, Option<Vec<String>>>, V2Error> {
    let map: BTreeMap<String, Option<Vec<String>>> = json_body(body)?;
    for (domain, ns) in &map {
        check_domain(&format!("split DNS domain {domain:?}"), domain)
            .map_err(V2Error::bad_request)?;
        for (i, n) in ns.iter().flatten().enumerate() {
            check_nameserver(domain, i, n).map_err(V2Error::bad_request)?;
        }
    }
    Ok(map)
}

fn split_json(s: &DnsConfig) -> V2Result {
    Ok(axum::Json(json!(s.nameservers_split)).into_response())
}

async fn get_split(State(v2): State<V2>, Extension(grant): Extension<Grant>) -> V2Result {
    require(&grant, need(Area::Dns, false))?;
    split_json(&settings(&v2)?)
}

async fn put_split(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    body: Bytes,
) -> V2Result {
    let map = split_body(&body)?;
    let next: BTreeMap<String, Vec<String>> = map
        .into_iter()
        .filter_map(|(d, ns)| ns.filter(|n| !n.is_empty()).map(|n| (d, n)))
        .collect();
    let s = edit(&v2, &grant, "split DNS", |o| {
        o.split = Some(next);
        Ok(())
    })
    .await?;
    split_json(&s)
}

async fn patch_split(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    body: Bytes,
) -> V2Result {
    let map = split_body(&body)?;
    let current = settings(&v2)?.nameservers_split;
    let s = edit(&v2, &grant, "split DNS", |o| {
        let mut next = o.split.clone().unwrap_or(current);
        for (d, ns) in map {
            match ns.filter(|n| !n.is_empty()) {
                Some(n) => {
                    next.insert(d, n);
                }
                None => {
                    next.remove(&d);
                }
            }
        }
        o.split = Some(next);
        Ok(())
    })
    .await?;
    split_json(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_and_domains_are_checked() {
        assert!(check_nameserver("dns", 0, "1.1.1.1").is_ok());
        assert!(check_nameserver("dns", 0, "2606:4700::1111").is_ok());
        assert!(check_nameserver("dns", 0, "https://dns.example/dns-query").is_ok());
        for bad in [
            "https://[",
            "https:// spaces here",
            "https://",
            "http://dns.example/q",
        ] {
            assert!(check_nameserver("dns", 0, bad).is_err(), "{bad}");
        }
        let e = check_nameserver("dns", 2, "banana").unwrap_err();
        assert!(e.contains("dns[2]") && e.contains("banana"), "{e}");
        assert!(check_domain("d", "corp.example.com").is_ok());
        assert!(check_domain("d", "bad_domain..x").is_err());
        assert!(check_domain("d", "").is_err());
    }
}
