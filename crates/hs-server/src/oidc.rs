//! `oidc.*` at start-up: the client secret read (from `client_secret_path`, with environment
//! variables expanded as Go does, e.g. `${CREDENTIALS_DIRECTORY}/oidc`), the provider
//! discovered, and what happens when it cannot be: refuse to start
//! (`only_start_if_oidc_is_available: true`, the default) or log and fall back to CLI
//! approval of registrations.

use std::sync::Arc;

use hs_config::Config;
use hs_control::oidc::{Oidc, OidcSettings, PkceMethod, Policy};

use crate::error::Error;

/// The OIDC provider when `oidc.issuer` is set and reachable, `None` when OIDC is off or
/// (with `only_start_if_oidc_is_available: false`) unreachable.
pub(crate) async fn provider(c: &Config) -> Result<Option<Arc<Oidc>>, Error> {
    let o = &c.oidc;
    if o.issuer.is_empty() {
        return Ok(None);
    }
    let secret = match &o.client_secret_path {
        Some(path) => {
            let expanded = expand_env(&path.to_string_lossy());
            std::fs::read_to_string(&expanded)
                .map(|s| s.trim().to_owned())
                .map_err(|e| {
                    Error::Config(format!("oidc.client_secret_path: reading {expanded}: {e}"))
                })?
        }
        None => o.client_secret.expose().to_owned(),
    };
    let settings = OidcSettings {
        issuer: o.issuer.clone(),
        client_id: o.client_id.clone(),
        client_secret: secret,
        scope: o.scope.clone(),
        extra_params: o.extra_params.clone(),
        policy: Policy {
            allowed_domains: o.allowed_domains.clone(),
            allowed_users: o.allowed_users.clone(),
            allowed_groups: o.allowed_groups.clone(),
            email_verified_required: o.email_verified_required,
        },
        use_expiry_from_token: o.use_expiry_from_token,
        pkce: o.pkce.enabled.then(|| {
            if o.pkce.method.eq_ignore_ascii_case("plain") {
                PkceMethod::Plain
            } else {
                PkceMethod::S256
            }
        }),
    };
    match Oidc::discover(settings, &c.server_url).await {
        Ok(p) => Ok(Some(Arc::new(p))),
        Err(e) if o.only_start_if_oidc_is_available => Err(Error::Config(format!(
            "{e} (oidc.only_start_if_oidc_is_available is true; set it to false to start \
             without OIDC and approve registrations with the CLI)"
        ))),
        Err(e) => {
            tracing::warn!(error = %e, "OIDC is unavailable; registrations wait for `headscale auth register` instead");
            Ok(None)
        }
    }
}

/// `$VAR` and `${VAR}` replaced by the variable's value (empty when unset), as Go's
/// `os.ExpandEnv`.
fn expand_env(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], &inner[end + 1..]),
                None => ("", after),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            out.push('$');
        } else {
            out.push_str(&std::env::var(name).unwrap_or_default());
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_references_are_expanded_like_go() {
        // PATH is set wherever tests run.
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(super::expand_env("${PATH}/x"), format!("{path}/x"));
        assert_eq!(super::expand_env("$PATH/x"), format!("{path}/x"));
        assert_eq!(super::expand_env("/plain/path"), "/plain/path");
        assert_eq!(super::expand_env("${HS_SURELY_UNSET_VAR}/s"), "/s");
    }
}
