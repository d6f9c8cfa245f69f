//! Input rules shared by the REST and gRPC front ends; each error names the value and the
//! rule it breaks.

use chrono::{DateTime, Utc};

use crate::error::ApiError;

/// Go's `time.Time{}`, which Headscale stores when a key is created without an expiration
/// (for an API key that means already expired: it is before any `now`).
pub fn zero_instant() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(-62_135_596_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(super) fn validate_user_name(name: &str) -> Result<(), ApiError> {
    hs_control::check_user_name(name).map_err(ApiError::bad_request)
}

/// A tag is `tag:` followed by ASCII letters, digits, `-` or `_`.
pub(crate) fn validate_tag(tag: &str) -> Result<(), ApiError> {
    let name = tag.strip_prefix("tag:").ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid tag {tag:?}: tags must start with \"tag:\""
        ))
    })?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::bad_request(format!(
            "invalid tag {tag:?}: the name after \"tag:\" must be ASCII letters, digits, '-' or '_'"
        )));
    }
    Ok(())
}

pub(super) fn validate_dns_label(name: &str) -> Result<(), ApiError> {
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    let bytes = name.as_bytes();
    // Go Headscale's wording (Tailscale's `dnsname.ValidLabel`), which its integration tests
    // and scripts match on.
    let why = match (bytes.first(), bytes.last()) {
        (None, _) | (_, None) => Some("empty DNS label".to_owned()),
        _ if bytes.len() > 63 => Some(format!("{name:?} is too long, max length is 63 bytes")),
        (Some(&b), _) if !alnum(b) => Some(format!(
            "{name:?} is not a valid DNS label: must start with a letter or number"
        )),
        (_, Some(&b)) if !alnum(b) => Some(format!(
            "{name:?} is not a valid DNS label: must end with a letter or number"
        )),
        _ => {
            if let Some(c) = name
                .chars()
                .find(|c| !c.is_ascii_alphanumeric() && *c != '-')
            {
                Some(format!(
                    "{name:?} is not a valid DNS label: contains invalid character {c:?}"
                ))
            } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
                // Stricter than Go Headscale, which keeps the case as given.
                Some(format!(
                    "{name:?} is not a valid DNS label: use lowercase letters"
                ))
            } else {
                None
            }
        }
    };
    match why {
        None => Ok(()),
        Some(why) => Err(ApiError::bad_request(format!(
            "{name:?} is not a valid DNS label: {why}"
        ))),
    }
}

/// An auth id is `hskey-authreq-` followed by 24 URL-safe characters (Go Headscale 0.29), or
/// those 24 characters alone (the form of 0.25-0.28, which this control plane's `AuthURL`s
/// still carry).
pub(super) fn validate_auth_id(id: &str) -> Result<(), ApiError> {
    let random = id.strip_prefix(AUTH_ID_PREFIX).unwrap_or(id);
    let ok = random.len() == 24
        && random
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid auth id {id:?}: expected hskey-authreq- followed by 24 letters, digits, '-' or '_'"
        )))
    }
}

/// The prefix of an auth id.
pub const AUTH_ID_PREFIX: &str = "hskey-authreq-";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_ids_in_both_forms_and_nothing_else() {
        assert!(validate_auth_id("hskey-authreq-abcdefABCDEF0123456789-_").is_ok());
        assert!(validate_auth_id("abcdefABCDEF0123456789-_").is_ok());
        for bad in [
            "",
            "nope",
            "hskey-authreq-",
            "hskey-authreq-abcdefabcdefabcdefabcde",
            "hskey-authreq-abcdefabcdefabcdefabcdefa",
            "hskey-authreq-abcdefabcdefabcdefabcde!",
            "hskey-reg-abcdefabcdefabcdefabcdef",
        ] {
            let e = validate_auth_id(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn dns_labels_are_refused_in_go_headscales_words() {
        for ok in ["node-1", "a", "x9", &"t".repeat(63)] {
            assert!(validate_dns_label(ok).is_ok(), "{ok}");
        }
        let long = "t".repeat(64);
        for (bad, why) in [
            ("", "empty DNS label"),
            (long.as_str(), "is too long, max length is 63 bytes"),
            ("-a", "must start with a letter or number"),
            ("a-", "must end with a letter or number"),
            ("a_b", "contains invalid character '_'"),
            ("Node", "use lowercase letters"),
        ] {
            let e = validate_dns_label(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(
                e.starts_with(&format!("{bad:?} is not a valid DNS label: ")),
                "{bad:?}: {e}"
            );
        }
    }
}
