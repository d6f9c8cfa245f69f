//! What the admin commands share: reaching the server over gRPC (the local unix socket, or
//! `cli.address` with `cli.api_key`), turning protobuf messages into the JSON the `-o` formats
//! print, and parsing durations such as `90d`.

use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use hs_api::client::{self, Client, RemoteTls};
use hs_api::proto;

use crate::goformat::GoValue;

use crate::cli::GlobalArgs;
use crate::config_file;

/// Connects the CLI to the server named by the configuration.
pub(crate) async fn connect(global: &GlobalArgs) -> anyhow::Result<Client> {
    let (channel, auth) = channel(global).await?;
    Ok(client::grpc(channel, auth))
}

/// REST calls to the same server, over the same kind of connection.
pub(crate) async fn connect_rest(global: &GlobalArgs) -> anyhow::Result<client::Rest> {
    let (channel, auth) = channel(global).await?;
    Ok(client::Rest::new(channel, auth))
}

/// The connection to the server named by the configuration: the unix socket, or
/// `cli.address` with `cli.api_key`.
async fn channel(
    global: &GlobalArgs,
) -> anyhow::Result<(tonic::transport::Channel, client::BearerAuth)> {
    let loaded = config_file::load_for_client(global.config.as_deref())?;
    let c = &loaded.config.cli;
    let timeout = if c.timeout.is_zero() {
        Duration::from_secs(5)
    } else {
        c.timeout
    };
    if c.address.is_empty() {
        let path = loaded.config.unix_socket.clone();
        client::unix_channel(path.clone(), timeout)
            .await
            .map(|c| (c, client::BearerAuth::default()))
            .with_context(|| {
                format!(
                    "connecting to the server's unix socket {} (is `headscale serve` running?)",
                    path.display()
                )
            })
    } else {
        let tls = RemoteTls::for_address(&c.address, c.insecure)?;
        client::remote_channel(&c.address, c.api_key.expose(), tls, timeout)
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
    // grpc-go's status text, which Go Headscale's CLI prints behind the same prefixes.
    let mut text = format!(
        "{what}: rpc error: code = {:?} desc = {}",
        s.code(),
        s.message()
    );
    // The client gave up, not the server: the bare "Timeout expired" does not say what to do.
    if matches!(
        s.code(),
        tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
    ) {
        text.push_str(
            "\n(the server did not answer within cli.timeout; it may still be waiting on a locked \
             or unreachable database, see its log; set cli.timeout to wait longer)",
        );
    }
    anyhow::anyhow!(text)
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

/// A user as the `-o` formats print it (Go's `v1.User`).
pub(crate) fn user_json(u: &proto::User) -> GoValue {
    GoValue::Struct(vec![
        ("id", GoValue::Uint(u.id)),
        ("name", GoValue::Str(u.name.clone())),
        ("created_at", GoValue::time(u.created_at.as_ref())),
        ("display_name", GoValue::Str(u.display_name.clone())),
        ("email", GoValue::Str(u.email.clone())),
        ("provider_id", GoValue::Str(u.provider_id.clone())),
        ("provider", GoValue::Str(u.provider.clone())),
        ("profile_pic_url", GoValue::Str(u.profile_pic_url.clone())),
    ])
}

fn opt<T>(v: Option<&T>, f: impl Fn(&T) -> GoValue) -> GoValue {
    v.map_or(GoValue::Null, f)
}

/// A pre-auth key as the `-o` formats print it (Go's `v1.PreAuthKey`).
pub(crate) fn preauthkey_json(k: &proto::PreAuthKey) -> GoValue {
    GoValue::Struct(vec![
        ("user", opt(k.user.as_ref(), user_json)),
        ("id", GoValue::Uint(k.id)),
        ("key", GoValue::Str(k.key.clone())),
        ("reusable", GoValue::Bool(k.reusable)),
        ("ephemeral", GoValue::Bool(k.ephemeral)),
        ("used", GoValue::Bool(k.used)),
        ("expiration", GoValue::time(k.expiration.as_ref())),
        ("created_at", GoValue::time(k.created_at.as_ref())),
        ("acl_tags", GoValue::strings(&k.acl_tags)),
    ])
}

/// A node as the `-o` formats print it (Go's `v1.Node`; the register method as its number).
pub(crate) fn node_json(n: &proto::Node) -> GoValue {
    GoValue::Struct(vec![
        ("id", GoValue::Uint(n.id)),
        ("machine_key", GoValue::Str(n.machine_key.clone())),
        ("node_key", GoValue::Str(n.node_key.clone())),
        ("disco_key", GoValue::Str(n.disco_key.clone())),
        ("ip_addresses", GoValue::strings(&n.ip_addresses)),
        ("name", GoValue::Str(n.name.clone())),
        ("user", opt(n.user.as_ref(), user_json)),
        ("last_seen", GoValue::time(n.last_seen.as_ref())),
        ("expiry", GoValue::time(n.expiry.as_ref())),
        (
            "pre_auth_key",
            opt(n.pre_auth_key.as_ref(), preauthkey_json),
        ),
        ("created_at", GoValue::time(n.created_at.as_ref())),
        (
            "register_method",
            GoValue::Int(i64::from(n.register_method)),
        ),
        ("given_name", GoValue::Str(n.given_name.clone())),
        ("online", GoValue::Bool(n.online)),
        ("approved_routes", GoValue::strings(&n.approved_routes)),
        ("available_routes", GoValue::strings(&n.available_routes)),
        ("subnet_routes", GoValue::strings(&n.subnet_routes)),
        ("tags", GoValue::strings(&n.tags)),
    ])
}

/// An API key (never its secret, which the server does not keep) as `-o` prints it.
pub(crate) fn apikey_json(k: &proto::ApiKey) -> GoValue {
    GoValue::Struct(vec![
        ("id", GoValue::Uint(k.id)),
        ("prefix", GoValue::Str(k.prefix.clone())),
        ("expiration", GoValue::time(k.expiration.as_ref())),
        ("created_at", GoValue::time(k.created_at.as_ref())),
        ("last_seen", GoValue::time(k.last_seen.as_ref())),
    ])
}

/// An empty response message (`DeleteUserResponse{}` and the like): `{}`.
pub(crate) fn empty() -> GoValue {
    GoValue::Struct(Vec::new())
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
        assert_eq!(short_time(Some(&t)), "2023-11-14 22:13:20");
        assert_eq!(short_time(None), "");
    }
}
