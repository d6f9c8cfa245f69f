//! `/api/v2/tailnet/{tailnet}/acl`: the policy file as Tailscale's API serves it: HuJSON
//! text or JSON, an `ETag` per version, `If-Match` to refuse a write over a policy that
//! changed since it was read, and `acl/validate`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Router};
use sha2::{Digest, Sha256};

use super::scope::{Area, need};
use super::{Grant, V2, V2Error, V2Result, require};
use crate::error::ApiError;

const HUJSON: &str = "application/hujson";

pub(super) fn routes() -> Router<V2> {
    Router::new()
        .route("/api/v2/tailnet/{tailnet}/acl", get(get_acl).post(set_acl))
        .route("/api/v2/tailnet/{tailnet}/acl/validate", post(validate))
}

/// A version's entity tag: a digest of its text, quoted as HTTP wants.
fn etag(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    format!("\"{}\"", hex::encode(&d[..16]))
}

fn wants_hujson(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(HUJSON))
}

/// The policy text in force, `""` when none was ever stored (Headscale then allows all,
/// as an empty policy does).
async fn current(v2: &V2) -> Result<String, V2Error> {
    Ok(v2
        .admin
        .current_policy()
        .await?
        .map(|p| p.data)
        .unwrap_or_default())
}

/// Answers with `text` as HuJSON or, by default, as standard JSON, with its ETag.
fn render(text: &str, hujson: bool) -> V2Result {
    let tag = etag(text);
    let (ctype, body) = if hujson {
        (HUJSON, text.to_owned())
    } else if text.trim().is_empty() {
        ("application/json", "{}".to_owned())
    } else {
        let json = hs_policy::hujson::standardize(text).map_err(|e| {
            V2Error::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the stored policy is not valid HuJSON: {e}"),
            )
        })?;
        ("application/json", json)
    };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

async fn get_acl(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    headers: HeaderMap,
) -> V2Result {
    require(&grant, need(Area::PolicyFile, false))?;
    let text = current(&v2).await?;
    render(&text, wants_hujson(&headers))
}

fn body_text(body: &Bytes) -> Result<String, V2Error> {
    String::from_utf8(body.to_vec())
        .map_err(|_| V2Error::bad_request("the policy must be UTF-8 text (HuJSON or JSON)"))
}

/// The `If-Match` tags; `None` without the header or with `*`.
fn if_match(headers: &HeaderMap) -> Result<Option<Vec<String>>, V2Error> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| V2Error::bad_request("If-Match is not ASCII"))?
        .trim();
    if v == "*" {
        return Ok(None);
    }
    Ok(Some(
        v.split(',')
            .map(|t| {
                let t = t.trim().trim_start_matches("W/");
                format!("\"{}\"", t.trim_matches('"'))
            })
            .collect(),
    ))
}

async fn set_acl(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    headers: HeaderMap,
    body: Bytes,
) -> V2Result {
    require(&grant, need(Area::PolicyFile, true))?;
    let text = body_text(&body)?;
    let expected = match if_match(&headers)? {
        None => None,
        Some(tags) => {
            let now = current(&v2).await?;
            if !tags.contains(&etag(&now)) {
                return Err(precondition_failed());
            }
            Some(now)
        }
    };
    tracing::info!(caller = %grant.caller(), "policy set through /api/v2");
    let stored = match v2.admin.set_policy_if(text, expected).await {
        Ok(p) => p,
        Err(ApiError::Conflict(_)) => return Err(precondition_failed()),
        Err(e) => return Err(e.into()),
    };
    render(&stored.data, wants_hujson(&headers))
}

fn precondition_failed() -> V2Error {
    V2Error::new(
        StatusCode::PRECONDITION_FAILED,
        "precondition failed: the policy was changed since the ETag in If-Match was read; \
         read it again and reapply the change",
    )
}

async fn validate(
    State(v2): State<V2>,
    Extension(grant): Extension<Grant>,
    body: Bytes,
) -> V2Result {
    require(&grant, need(Area::PolicyFile, false))?;
    let text = body_text(&body)?;
    match v2.admin.check_policy(&text).await {
        Ok(()) => Ok(StatusCode::OK.into_response()),
        Err(ApiError::BadRequest(m)) => Err(V2Error::bad_request(m)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_differ_by_text_and_if_match_parses_quoted_and_weak() {
        assert_ne!(etag("{}"), etag("{ }"));
        assert!(etag("x").starts_with('"') && etag("x").ends_with('"'));
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, HeaderValue::from_static("W/\"abc\", def"));
        assert_eq!(
            if_match(&h).unwrap(),
            Some(vec!["\"abc\"".to_owned(), "\"def\"".to_owned()])
        );
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(if_match(&h).unwrap(), None);
    }
}
