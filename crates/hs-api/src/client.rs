//! The client the CLI uses: the generated gRPC client over the local unix socket (no key
//! needed) or over TCP (TLS unless `http://`) to a remote server with an API key.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::{TlsConnector, rustls};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::error::Error;
use crate::proto::headscale_service_client::HeadscaleServiceClient;

/// Adds `authorization: Bearer <key>` to every call when a key is configured.
#[derive(Clone, Default)]
pub struct BearerAuth(Option<AsciiMetadataValue>);

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "BearerAuth(<redacted>)"
        } else {
            "BearerAuth(none)"
        })
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// The typed client for `headscale.v1.HeadscaleService`.
pub type Client = HeadscaleServiceClient<InterceptedService<Channel, BearerAuth>>;

/// The typed gRPC client over a connection.
pub fn grpc(channel: Channel, auth: BearerAuth) -> Client {
    HeadscaleServiceClient::with_interceptor(channel, auth)
}

/// Connects to the local server's unix socket (`unix_socket` in the config).
pub async fn connect_unix(path: impl Into<PathBuf>, timeout: Duration) -> Result<Client, Error> {
    let channel = unix_channel(path.into(), timeout).await?;
    Ok(HeadscaleServiceClient::with_interceptor(
        channel,
        BearerAuth::default(),
    ))
}

/// REST calls (`/api/v1/...`) over the same connection the gRPC client uses: for the
/// endpoints that have no gRPC method in Go Headscale's `headscale.v1` (OAuth clients).
#[derive(Debug, Clone)]
pub struct Rest {
    channel: Channel,
    auth: BearerAuth,
}

impl Rest {
    /// REST over a connection made by [`unix_channel`] or [`remote_channel`].
    pub fn new(channel: Channel, auth: BearerAuth) -> Self {
        Self { channel, auth }
    }

    /// Sends `method path` with an optional JSON body; returns the status and the JSON
    /// answer (`null` when the body is empty).
    pub async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(http::StatusCode, serde_json::Value), Error> {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://localhost{path}"))
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(v) = &self.auth.0 {
            req = req.header(http::header::AUTHORIZATION, v.as_bytes());
        }
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let req = req
            .body(tonic::body::Body::new(http_body_util::Full::new(
                bytes::Bytes::from(bytes),
            )))
            .map_err(|e| Error::Call(format!("building the request: {e}")))?;
        let resp = self
            .channel
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| Error::Call(format!("{path}: {e}")))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Call(format!("{path}: reading the answer: {e}")))?
            .to_bytes();
        let value = if body.iter().all(u8::is_ascii_whitespace) {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
            })
        };
        Ok((status, value))
    }
}

/// The connection [`connect_unix`] makes, for [`Rest`] or [`grpc`].
pub async fn unix_channel(path: PathBuf, timeout: Duration) -> Result<Channel, Error> {
    let shown = path.display().to_string();
    // The URI is required by tonic but unused: the connector below ignores it.
    Endpoint::from_static("http://localhost")
        .timeout(timeout)
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await
        .map_err(|e| Error::Connect {
            addr: shown,
            message: format!("{e} (is `headscale serve` running, and may you open the socket?)"),
        })
}

/// How the remote client secures its connection.
#[derive(Clone)]
pub enum RemoteTls {
    /// Plaintext (`http://` addresses; for servers with `grpc_allow_insecure`).
    Plain,
    /// TLS, verifying the server against these roots.
    Verify(Arc<rustls::RootCertStore>),
    /// TLS without verifying the server's certificate (`cli.insecure: true`).
    SkipVerify,
}

impl std::fmt::Debug for RemoteTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain => "Plain",
            Self::Verify(_) => "Verify",
            Self::SkipVerify => "SkipVerify",
        })
    }
}

impl RemoteTls {
    /// What Headscale's CLI does for `cli.address`: `http://` means plaintext; anything else
    /// is TLS, verified against the system trust store unless `insecure`.
    pub fn for_address(addr: &str, insecure: bool) -> Result<Self, Error> {
        if addr.starts_with("http://") {
            return Ok(Self::Plain);
        }
        if insecure {
            return Ok(Self::SkipVerify);
        }
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(Error::Connect {
                addr: addr.to_owned(),
                message: "no trusted root certificates found on this system; set cli.insecure \
                          to skip verification"
                    .into(),
            });
        }
        Ok(Self::Verify(Arc::new(roots)))
    }
}

/// Connects to a remote server (`cli.address`: `host:port`, `https://host:port` or
/// `http://host:port`) with an API key (`cli.api_key`).
pub async fn connect_remote(
    addr: &str,
    api_key: &str,
    tls: RemoteTls,
    timeout: Duration,
) -> Result<Client, Error> {
    let (channel, auth) = remote_channel(addr, api_key, tls, timeout).await?;
    Ok(HeadscaleServiceClient::with_interceptor(channel, auth))
}

/// The connection and credentials [`connect_remote`] uses, for [`Rest`] or [`grpc`].
pub async fn remote_channel(
    addr: &str,
    api_key: &str,
    tls: RemoteTls,
    timeout: Duration,
) -> Result<(Channel, BearerAuth), Error> {
    let conn_err = |message: String| Error::Connect {
        addr: addr.to_owned(),
        message,
    };
    if api_key.is_empty() {
        return Err(conn_err(
            "an API key is required for a remote server".into(),
        ));
    }
    let header = AsciiMetadataValue::try_from(format!("Bearer {api_key}"))
        .map_err(|_| conn_err("the API key contains characters not allowed in a header".into()))?;
    let hostport = addr
        .strip_prefix("https://")
        .or_else(|| addr.strip_prefix("http://"))
        .unwrap_or(addr)
        .trim_end_matches('/')
        .to_owned();
    // The endpoint URI only carries the authority: the connector below does TCP and TLS.
    let endpoint = Endpoint::from_shared(format!("http://{hostport}"))
        .map_err(|e| conn_err(format!("invalid address: {e}")))?
        .timeout(timeout)
        .connect_timeout(timeout);
    let host = endpoint
        .uri()
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let connector = match tls {
        RemoteTls::Plain => None,
        RemoteTls::Verify(roots) => Some(tls_connector(TlsVerify::Roots(roots))?),
        RemoteTls::SkipVerify => Some(tls_connector(TlsVerify::Skip)?),
    };
    let server_name =
        ServerName::try_from(host).map_err(|e| conn_err(format!("invalid server name: {e}")))?;
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |uri: http::Uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            async move {
                let authority = uri
                    .authority()
                    .map(|a| a.as_str().to_owned())
                    .ok_or_else(|| std::io::Error::other("address without host:port"))?;
                let tcp = tokio::net::TcpStream::connect(authority).await?;
                let io: Box<dyn Io> = match connector {
                    None => Box::new(tcp),
                    Some(c) => Box::new(c.connect(server_name, tcp).await?),
                };
                Ok::<_, std::io::Error>(TokioIo::new(io))
            }
        }))
        .await
        .map_err(|e| conn_err(format!("{e}: {}", source_chain(&e))))?;
    Ok((channel, BearerAuth(Some(header))))
}

/// A byte stream, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

enum TlsVerify {
    Roots(Arc<rustls::RootCertStore>),
    Skip,
}

fn tls_connector(v: TlsVerify) -> Result<TlsConnector, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let mut cfg = match v {
        TlsVerify::Roots(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
        TlsVerify::Skip => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipServerVerification(provider)))
            .with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsConnector::from(Arc::new(cfg)))
}

/// `cli.insecure`: accepts any server certificate (signatures are still checked so the
/// handshake is well-formed), as Go Headscale's CLI does with `InsecureSkipVerify`.
#[derive(Debug)]
struct SkipServerVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
