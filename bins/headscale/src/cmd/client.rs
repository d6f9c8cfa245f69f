//! What the admin commands share: reaching the server over gRPC (the local unix socket, or
//! `cli.address` with `cli.api_key`), turning protobuf messages into the JSON the `-o` formats
//! print, and parsing durations such as `90d`.

use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use hs_api::client::{self, Client, RemoteTls};
use hs_api::proto;
use serde_json::{Value, json};

use crate::cli::GlobalArgs;
use crate::config_file;

/// Connects the CLI to the server named by the configuration.
pub(crate) async fn connect(global: &GlobalArgs) -> anyhow::Result<Client> {
    let loaded = config_file::load(global.config.as_deref())?;
    let c = &loaded.config.cli;
    let timeout = if c.timeout.is_zero() {
        Duration::from_secs(5)
    } else {
        c.timeout
    };
    if c.address.is_empty() {
        let path = loaded.config.unix_socket.clone();
        client::connect_unix(path.clone(), timeout)
            .await
            .with_context(|| {
                format!(
                    "connecting to the server's unix socket {} (is `headscale serve` running?)",
                    path.display()
                )
            })
    } else {
        let tls = RemoteTls::for_address(&c.address, c.insecure)?;
        client::connect_remote(&c.address, c.api_key.expose(), tls, timeout)
            .await
            .with_context(|| format!("connecting to {}", c.address))
    }
}

/// Runs `fut` on a fresh current-thread runtime (the CLI does one call and exits).
pub(crate) fn block_on<T>(fut: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(fut)
}

/// A gRPC status as an error naming what failed and why.
pub(crate) fn status(what: &str, s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", s.message())
}

/// A protobuf timestamp as RFC 3339 (UTC), or `None` when unset or out of range.
pub(crate) fn time(t: Option<&prost_types::Timestamp>) -> Option<String> {
    let t = t?;
    let nanos = u32::try_from(t.nanos).ok()?;
    DateTime::<Utc>::from_timestamp(t.seconds, nanos).map(|d| d.to_rfc3339())
}

/// A timestamp for the human tables: `YYYY-MM-DD HH:MM:SS`, or empty.
pub(crate) fn short_time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, 0))
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `now + d` as a protobuf timestamp.
pub(crate) fn timestamp_in(
    now: DateTime<Utc>,
    d: Duration,
) -> anyhow::Result<prost_types::Timestamp> {
    let d = chrono::Duration::from_std(d).context("duration too long")?;
    let at = now.checked_add_signed(d).context("duration too long")?;
    Ok(timestamp(at))
}

/// A chrono time as a protobuf timestamp.
pub(crate) fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// The wall clock, read once per CLI invocation to turn `--expiration 90d` into a time.
pub(crate) fn now() -> DateTime<Utc> {
    #[allow(
        clippy::disallowed_methods,
        reason = "the CLI's single clock read, for relative expirations"
    )]
    Utc::now()
}

/// Parses a duration the way Go Headscale's CLI does (`30s`, `15m`, `1h`, `90d`, `2w`,
/// `1y`, or several joined such as `1h30m`).
pub(crate) fn parse_duration(flag: &str, s: &str) -> anyhow::Result<Duration> {
    let bad = || anyhow::anyhow!("{flag}: invalid duration {s:?} (expected e.g. 30m, 1h, 90d)");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "y" => 365 * 86_400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(secs)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs(total))
}

/// Splits a comma-separated flag value, dropping empty items.
pub(crate) fn split_list(v: &[String]) -> Vec<String> {
    v.iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A user as the `-o` formats print it.
pub(crate) fn user_json(u: &proto::User) -> Value {
    json!({
        "id": u.id,
        "name": u.name,
        "created_at": time(u.created_at.as_ref()),
        "display_name": u.display_name,
        "email": u.email,
        "provider_id": u.provider_id,
        "provider": u.provider,
        "profile_pic_url": u.profile_pic_url,
    })
}

/// A pre-auth key as the `-o` formats print it.
pub(crate) fn preauthkey_json(k: &proto::PreAuthKey) -> Value {
    json!({
        "user": k.user.as_ref().map(user_json),
        "id": k.id,
        "key": k.key,
        "reusable": k.reusable,
        "ephemeral": k.ephemeral,
        "used": k.used,
        "expiration": time(k.expiration.as_ref()),
        "created_at": time(k.created_at.as_ref()),
        "acl_tags": k.acl_tags,
    })
}

/// A node as the `-o` formats print it.
pub(crate) fn node_json(n: &proto::Node) -> Value {
    let method = proto::RegisterMethod::try_from(n.register_method)
        .map(|m| m.as_str_name())
        .unwrap_or("REGISTER_METHOD_UNSPECIFIED");
    json!({
        "id": n.id,
        "machine_key": n.machine_key,
        "node_key": n.node_key,
        "disco_key": n.disco_key,
        "ip_addresses": n.ip_addresses,
        "name": n.name,
        "user": n.user.as_ref().map(user_json),
        "last_seen": time(n.last_seen.as_ref()),
        "expiry": time(n.expiry.as_ref()),
        "pre_auth_key": n.pre_auth_key.as_ref().map(preauthkey_json),
        "created_at": time(n.created_at.as_ref()),
        "register_method": method,
        "given_name": n.given_name,
        "online": n.online,
        "approved_routes": n.approved_routes,
        "available_routes": n.available_routes,
        "subnet_routes": n.subnet_routes,
        "tags": n.tags,
    })
}

/// An API key (never its secret, which the server does not keep) as `-o` prints it.
pub(crate) fn apikey_json(k: &proto::ApiKey) -> Value {
    json!({
        "id": k.id,
        "prefix": k.prefix,
        "expiration": time(k.expiration.as_ref()),
        "created_at": time(k.created_at.as_ref()),
        "last_seen": time(k.last_seen.as_ref()),
    })
}

/// An 80-column table.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    hs_api::output::table(headers, rows, 80)
}

/// Exactly one of `--identifier` and `--name` selects a user.
pub(crate) fn require_one(id: Option<u64>, name: Option<&str>) -> anyhow::Result<()> {
    match (id, name) {
        (Some(_), Some(_)) => bail!("give either --identifier or --name, not both"),
        (None, None) => bail!("--identifier or --name is required"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("-e", "90d").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(
            parse_duration("-e", "1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("-e", "45s").unwrap(),
            Duration::from_secs(45)
        );
        for bad in ["", "d", "10", "10x", "1h-", "h1"] {
            let e = parse_duration("--expiration", bad).unwrap_err().to_string();
            assert!(
                e.contains("--expiration") && e.contains("invalid duration"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn lists_split_on_commas() {
        let v = vec![
            "tag:a,tag:b".to_owned(),
            " tag:c ".to_owned(),
            ",".to_owned(),
        ];
        assert_eq!(split_list(&v), ["tag:a", "tag:b", "tag:c"]);
    }

    #[test]
    fn timestamps_round_trip() {
        let t = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        };
        assert_eq!(time(Some(&t)).unwrap(), "2023-11-14T22:13:20+00:00");
        assert_eq!(short_time(Some(&t)), "2023-11-14 22:13:20");
        assert_eq!(time(None), None);
    }
}
