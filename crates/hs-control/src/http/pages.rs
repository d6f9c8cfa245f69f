//! Client set-up pages on the main listener: `/windows`, `/apple` and the
//! `/apple/{platform}` configuration profiles that point Tailscale's apps at this server
//! (`ControlURL`).

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;

use crate::state::ControlState;

/// `/windows`, `/apple`, `/apple/{platform}`.
pub(crate) fn routes(st: ControlState) -> Router {
    Router::new()
        .route("/windows", get(windows))
        .route("/apple", get(apple))
        .route("/apple/{platform}", get(profile))
        .with_state(st)
}

use super::page::{escape, html};

async fn windows(State(st): State<ControlState>) -> Html<String> {
    let url = escape(&st.config().server_url);
    Html(html(
        "Windows",
        &format!(
            "<p>Install Tailscale for Windows, then run this in a terminal:</p>\n\
             <pre><code>tailscale login --login-server {url}</code></pre>\n\
             <p>Or set the server in the registry (as an administrator) and restart Tailscale:</p>\n\
             <pre><code>reg add \"HKLM\\Software\\Tailscale IPN\" /v LoginURL /t REG_SZ /d {url} /f</code></pre>"
        ),
    ))
}

async fn apple(State(st): State<ControlState>) -> Html<String> {
    let url = escape(&st.config().server_url);
    Html(html(
        "macOS and iOS",
        &format!(
            "<p>On a Mac, from a terminal:</p>\n\
             <pre><code>tailscale login --login-server {url}</code></pre>\n\
             <p>Or install a configuration profile that points the Tailscale app at this server:</p>\n\
             <ul><li><a href=\"/apple/macos-app-store\">macOS, App Store app</a></li>\
             <li><a href=\"/apple/macos-standalone\">macOS, standalone app</a></li>\
             <li><a href=\"/apple/ios\">iPhone and iPad</a></li></ul>"
        ),
    ))
}

/// The preference domain each Tailscale app variant reads.
fn payload_type(platform: &str) -> Option<&'static str> {
    match platform {
        "macos-app-store" | "macos" => Some("io.tailscale.ipn.macos"),
        "macos-standalone" => Some("io.tailscale.ipn.macsys"),
        "ios" => Some("io.tailscale.ipn.ios"),
        _ => None,
    }
}

async fn profile(State(st): State<ControlState>, Path(platform): Path<String>) -> Response {
    let Some(kind) = payload_type(&platform) else {
        return (
            StatusCode::BAD_REQUEST,
            "unknown platform; use macos-app-store, macos-standalone or ios",
        )
            .into_response();
    };
    let url = escape(&st.config().server_url);
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>PayloadType</key><string>{kind}</string>
      <key>PayloadIdentifier</key><string>com.github.juanfont.headscale.{platform}</string>
      <key>PayloadUUID</key><string>{uuid}</string>
      <key>PayloadVersion</key><integer>1</integer>
      <key>ControlURL</key><string>{url}</string>
    </dict>
  </array>
  <key>PayloadDisplayName</key><string>Headscale</string>
  <key>PayloadDescription</key><string>Configure Tailscale to use {url}</string>
  <key>PayloadIdentifier</key><string>com.github.juanfont.headscale</string>
  <key>PayloadRemovalDisallowed</key><false/>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadUUID</key><string>{uuid}</string>
  <key>PayloadVersion</key><integer>1</integer>
</dict>
</plist>
"#,
        uuid = uuid_like(&st.config().server_url, &platform),
    );
    (
        [
            (
                http::header::CONTENT_TYPE,
                "application/x-apple-aspen-config; charset=utf-8".to_owned(),
            ),
            (
                http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"headscale_{platform}.mobileconfig\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// A stable UUID-shaped identifier derived from the server URL and platform, so
/// re-downloading a profile replaces the installed one instead of adding a second.
fn uuid_like(url: &str, platform: &str) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in url.bytes().chain(platform.bytes()) {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    let x = format!("{h:032X}");
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_ids_are_stable_and_distinct_per_platform() {
        let a = uuid_like("https://hs.example.com", "ios");
        assert_eq!(a, uuid_like("https://hs.example.com", "ios"));
        assert_ne!(a, uuid_like("https://hs.example.com", "macos-standalone"));
        assert_eq!(a.len(), 36);
        assert_eq!(payload_type("bogus"), None);
        assert_eq!(escape("a<b>&\""), "a&lt;b&gt;&amp;&quot;");
    }
}
