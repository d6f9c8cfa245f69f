//! The HTTP client the OIDC flow talks to the provider with (discovery, JWKS, token and
//! userinfo endpoints): one HTTP/1.1 request per connection over hyper, TLS verified against
//! the system's trust store (plus `SSL_CERT_FILE` when set, as Go reads it), a whole-request
//! timeout and a capped body. Handed to `openidconnect` as its async client.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

/// No provider document or token answer is anywhere near this large.
const MAX_BODY: usize = 1 << 20;
/// One request to the provider, connection included.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Why a request to the provider failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct HttpError(pub(super) String);

/// Sends `req` and returns the whole answer, whatever its status.
pub(super) async fn send(
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpError> {
    tokio::time::timeout(TIMEOUT, send_inner(req))
        .await
        .map_err(|_| HttpError(format!("the provider did not answer within {TIMEOUT:?}")))?
        .map_err(HttpError)
}

async fn send_inner(
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, String> {
    let uri = req.uri().clone();
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("{uri}: only http:// and https:// are supported")),
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("{uri}: no host"))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tcp = TcpStream::connect((bare.as_str(), port))
        .await
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    if tls {
        let name = rustls::pki_types::ServerName::try_from(bare)
            .map_err(|e| format!("invalid TLS server name: {e}"))?;
        let stream = connector()?
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}: {e}"))?;
        request(stream, req).await
    } else {
        request(tcp, req).await
    }
}

async fn request<S>(
    io: S,
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(conn);
    let (mut parts, body) = req.into_parts();
    let authority = parts.uri.authority().map(|a| a.as_str().to_owned());
    if let Some(a) = authority
        && let Ok(v) = http::HeaderValue::from_str(&a)
    {
        parts.headers.insert(http::header::HOST, v);
    }
    parts.headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    parts.headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("headscale-rs"),
    );
    // hyper's client connection wants origin-form (path and query) on HTTP/1.
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    parts.uri = path.parse().map_err(|e| format!("request path: {e}"))?;
    let req = http::Request::from_parts(parts, Full::new(bytes::Bytes::from(body)));
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP request: {e}"))?;
    let (parts, body) = resp.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    driver.abort();
    Ok(http::Response::from_parts(parts, body.to_vec()))
}

/// TLS client settings, built once: the system's roots and the file `SSL_CERT_FILE` names.
fn connector() -> Result<TlsConnector, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    let cfg = CONFIG.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err("no trusted root certificates found on this system".into());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    });
    cfg.clone().map(TlsConnector::from)
}
