//! The HTTP(S) client behind `derp.urls`: a [`UrlFetcher`] that GETs one URL over HTTP/1.1,
//! with TLS verified against the system's trust store for `https://`, a whole-request
//! timeout, non-2xx answers refused and the body capped at [`MAX_MAP_BYTES`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

use crate::refresh::{FetchFuture, MAX_MAP_BYTES, UrlFetcher};

/// A fetcher for `derp.urls` giving each request at most `timeout`.
pub fn http_fetcher(timeout: Duration) -> UrlFetcher {
    Arc::new(move |url: &str| -> FetchFuture {
        let url = url.to_owned();
        Box::pin(async move {
            tokio::time::timeout(timeout, get(&url))
                .await
                .map_err(|_| format!("no answer within {timeout:?}"))?
        })
    })
}

async fn get(url: &str) -> Result<Vec<u8>, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err("only http:// and https:// URLs are supported".into()),
    };
    let host = uri.host().ok_or("URL without a host")?.to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tcp = TcpStream::connect((bare.as_str(), port))
        .await
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    let authority = uri
        .authority()
        .map_or_else(|| host.clone(), |a| a.as_str().to_owned());
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    if tls {
        let name = rustls::pki_types::ServerName::try_from(bare)
            .map_err(|e| format!("invalid TLS server name: {e}"))?;
        let stream = connector()?
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        request(stream, &authority, &path).await
    } else {
        request(tcp, &authority, &path).await
    }
}

async fn request<S>(io: S, authority: &str, path: &str) -> Result<Vec<u8>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    // The connection task ends with the request (Connection: close) or with this future.
    let driver = tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, "headscale-rs")
        .header(http::header::CONNECTION, "close")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP request: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        driver.abort();
        return Err(format!("HTTP status {status}"));
    }
    let body = Limited::new(resp.into_body(), MAX_MAP_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    driver.abort();
    Ok(body.to_vec())
}

/// TLS client settings, built once: the system's root certificates, HTTP/1.1.
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A one-shot HTTP server on 127.0.0.1 answering every connection with `status` and
    /// `body`.
    async fn serve_once(status: &'static str, body: &'static str) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = vec![0; 4096];
                let _ = s.read(&mut buf).await;
                let msg = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(msg.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn fetches_a_body_and_refuses_errors() {
        let f = http_fetcher(Duration::from_secs(10));
        let ok = serve_once("200 OK", "{\"Regions\":{}}").await;
        let body = f(&format!("http://{ok}/derpmap")).await.unwrap();
        assert_eq!(body, b"{\"Regions\":{}}");
        let missing = serve_once("404 Not Found", "nope").await;
        let e = f(&format!("http://{missing}/derpmap")).await.unwrap_err();
        assert!(e.contains("404"), "{e}");
        assert!(f("ftp://127.0.0.1/x").await.is_err());
    }

    fn region_map(id: u32) -> String {
        format!(
            r#"{{"Regions":{{"{id}":{{"RegionID":{id},"RegionCode":"r{id}","RegionName":"R{id}",
                "Nodes":[{{"Name":"{id}a","RegionID":{id},"HostName":"127.0.0.1"}}]}}}}}}"#
        )
    }

    // derp.urls through the real fetcher: the refresh publishes the map a local server
    // serves, and a change of that map, merged with the embedded region.
    #[tokio::test]
    async fn refresh_follows_a_url_served_on_loopback() {
        let body = Arc::new(std::sync::Mutex::new(region_map(900)));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let served = Arc::clone(&body);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = vec![0; 4096];
                let _ = s.read(&mut buf).await;
                let b = served.lock().unwrap().clone();
                let msg = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                    b.len()
                );
                let _ = s.write_all(msg.as_bytes()).await;
            }
        });
        let embedded: hs_types::tailcfg::DERPRegion = serde_json::from_str(
            r#"{"RegionID":999,"RegionCode":"headscale","RegionName":"Headscale",
                "Nodes":[{"Name":"999a","RegionID":999,"HostName":"127.0.0.1"}]}"#,
        )
        .unwrap();
        let loader = crate::refresh::DerpMapLoader {
            urls: vec![format!("http://{addr}/derpmap/default")],
            paths: Vec::new(),
            embedded: Some(embedded),
            seed: 1,
            fetch: http_fetcher(Duration::from_secs(10)),
        };
        let first = loader.load().await.unwrap();
        let ids = |m: &hs_types::tailcfg::DERPMap| -> Vec<i64> {
            let mut v: Vec<i64> = m
                .regions
                .iter()
                .flatten()
                .map(|(_, r)| r.region_id)
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(ids(&first), [900, 999]);
        let (tx, mut rx) = tokio::sync::watch::channel(Arc::new(first));
        tokio::spawn(crate::refresh::refresh_loop(
            loader,
            Duration::from_millis(50),
            crate::refresh::Backoff::default(),
            tx,
        ));
        *body.lock().unwrap() = region_map(901);
        tokio::time::timeout(Duration::from_secs(30), rx.changed())
            .await
            .expect("a refresh within 30 s")
            .unwrap();
        assert_eq!(ids(&rx.borrow()), [901, 999]);
    }
}
