//! `/api/v2/tailnet/{tailnet}/settings`: the tailnet settings Headscale has an equivalent
//! for, read from the server's configuration. They are set in the config file, not through
//! the API: a `PATCH` that asks for the value already in force succeeds, one that asks for
//! a change is refused with the config key that controls it.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{Value, json};

use super::scope::{Area, need};
use super::{Grant, V2, V2Error, V2Result, json_body, require};
use crate::service::PolicyMode;

pub(super) fn routes() -> Router<V2> {
    Router::new().route(
        "/api/v2/tailnet/{tailnet}/settings",
        get(get_settings).patch(patch_settings),
    )
}

/// Each setting: its value here, and what an operator changes to change it.
fn settings(v2: &V2) -> Vec<(&'static str, Value, &'static str)> {
    let cfg = v2.admin.control().config();
    let days = cfg.node_expiry.map_or(0, |d| d.as_secs().div_ceil(86_400));
    vec![
        (
            "devicesKeyDurationDays",
            json!(days),
            "node.expiry in the config file (0: keys never expire)",
        ),
        (
            "devicesApprovalOn",
            json!(false),
            "nothing: Headscale authorizes every node that registers",
        ),
        (
            "usersApprovalOn",
            json!(false),
            "nothing: Headscale has no user approval",
        ),
        (
            "devicesAutoUpdatesOn",
            json!(false),
            "nothing: Headscale does not manage client updates",
        ),
        (
            "networkFlowLoggingOn",
            json!(false),
            "nothing: Headscale collects no network flow logs",
        ),
        (
            "regionalRoutingOn",
            json!(false),
            "nothing: Headscale has no regional routing",
        ),
        (
            "postureIdentityCollectionOn",
            json!(false),
            "nothing: Headscale collects no device posture",
        ),
        (
            "httpsEnabled",
            json!(false),
            "nothing: Headscale issues no certificates to nodes",
        ),
        (
            "aclsExternallyManagedOn",
            json!(v2.admin.policy_mode() == PolicyMode::File),
            "policy.mode in the config file (file: the policy file is the source)",
        ),
    ]
}

async fn get_settings(State(v2): State<V2>, Extension(grant): Extension<Grant>) -> V2Result {
    require(&grant, need(Area::FeatureSettings, false))?;
    let map: serde_json::Map<String, Value> = settings(&v2)
        .into_iter()
        .map(|(k, v, _)| (k.to_owned(), v))
        .collect();
    Ok(axum::Json(Value::Object(map)).into_response())
}

async fn patch_settings(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    body: Bytes,
) -> V2Result {
    require(&grant, need(Area::FeatureSettings, true))?;
    let asked: serde_json::Map<String, Value> = json_body(&body)?;
    let known = settings(&v2);
    for (key, want) in &asked {
        if want.is_null() {
            continue;
        }
        let Some((_, have, how)) = known.iter().find(|(k, _, _)| k == key) else {
            return Err(V2Error::bad_request(format!(
                "{key}: Headscale has no such setting"
            )));
        };
        if want != have {
            return Err(V2Error::bad_request(format!(
                "{key}: cannot be changed through the API; it is {have} here, set by {how}"
            )));
        }
    }
    get_settings(State(v2), Extension(grant)).await
}
