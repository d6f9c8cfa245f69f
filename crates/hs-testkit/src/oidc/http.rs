//! A minimal HTTP/1.1 client for talking to the test provider: one request per connection
//! over hyper, loopback addresses only, a timeout per request, and a cookie jar that is just
//! enough for the provider's login redirects.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

/// One request, connection included: the provider answers in milliseconds on loopback, so
/// this only bounds a test that would otherwise hang.
const TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP answer, body read in full.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The header fields, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, as (lossy) UTF-8.
    pub body: String,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    ///
    /// # Errors
    /// When the body is not JSON; the message quotes the status and the body.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_str(&self.body)
            .map_err(|e| format!("not JSON ({e}): HTTP {} {}", self.status, self.body))
    }
}

/// Sends one request to a loopback URL and reads the whole answer; redirects are returned,
/// not followed. `headers` are added to `Host`, `Connection: close` and, with a `body`,
/// `Content-Length`.
///
/// # Errors
/// When `url` is not `http://` on a loopback address, or when connecting, sending or reading
/// fails or takes longer than 10 s; the message names the method and URL.
pub async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<HttpResponse, String> {
    tokio::time::timeout(TIMEOUT, send(method, url, headers, body))
        .await
        .map_err(|_| format!("{method} {url}: no answer within {TIMEOUT:?}"))?
        .map_err(|e| format!("{method} {url}: {e}"))
}

async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<HttpResponse, String> {
    let u = Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
    let loopback = match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if u.scheme() != "http" || !loopback {
        return Err("only http:// on a loopback address is allowed".into());
    }
    let port = u.port_or_known_default().unwrap_or(80);
    let addr = match u.host() {
        Some(url::Host::Ipv6(a)) => std::net::SocketAddr::from((a, port)),
        Some(url::Host::Ipv4(a)) => std::net::SocketAddr::from((a, port)),
        _ => std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    };
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(
            hyper::header::HOST,
            &u[url::Position::BeforeHost..url::Position::AfterPort],
        )
        .header(hyper::header::CONNECTION, "close");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
        .map_err(|e| format!("building the request: {e}"))?;
    let exchange = async move {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP request: {e}"))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>(HttpResponse {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    // The connection future drives the socket; it ends once the answer is read and the
    // sender is gone (the request said `Connection: close`).
    let (resp, _conn) = tokio::join!(exchange, conn);
    resp
}

/// The cookies a browser would hold for the provider: paths, expiry and attributes are
/// ignored (one login per jar, one host), except that a cookie set to an empty value is
/// deleted, which is how the provider clears its interaction cookies.
#[derive(Debug, Default)]
pub(crate) struct CookieJar(Vec<(String, String)>);

impl CookieJar {
    /// Takes in every `Set-Cookie` of `resp`.
    pub(crate) fn store(&mut self, resp: &HttpResponse) {
        for (k, v) in &resp.headers {
            if k != "set-cookie" {
                continue;
            }
            let pair = v.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            self.0.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// The `Cookie` header value, or `None` with no cookies.
    pub(crate) fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}
