//! The client the CLI uses: the generated gRPC client over the local unix socket (no key
//! needed) or over TCP to a remote server with an API key.

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
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

/// Connects to the local server's unix socket (`unix_socket` in the config).
pub async fn connect_unix(path: impl Into<PathBuf>, timeout: Duration) -> Result<Client, Error> {
    let path = path.into();
    let shown = path.display().to_string();
    // The URI is required by tonic but unused: the connector below ignores it.
    let channel = Endpoint::from_static("http://localhost")
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
        })?;
    Ok(HeadscaleServiceClient::with_interceptor(
        channel,
        BearerAuth::default(),
    ))
}

/// Connects to a remote server (`cli.address`) with an API key (`cli.api_key`).
///
/// Only plaintext `http://` (or a bare `host:port`) is supported by this build; a remote
/// server behind TLS needs a TLS-capable client, which is not implemented yet.
pub async fn connect_remote(addr: &str, api_key: &str, timeout: Duration) -> Result<Client, Error> {
    let conn_err = |message: String| Error::Connect {
        addr: addr.to_owned(),
        message,
    };
    if api_key.is_empty() {
        return Err(conn_err(
            "an API key is required for a remote server".into(),
        ));
    }
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    if uri.starts_with("https://") {
        return Err(conn_err(
            "TLS connections are not supported by this client yet".into(),
        ));
    }
    let header = AsciiMetadataValue::try_from(format!("Bearer {api_key}"))
        .map_err(|_| conn_err("the API key contains characters not allowed in a header".into()))?;
    let channel = Endpoint::from_shared(uri)
        .map_err(|e| conn_err(format!("invalid address: {e}")))?
        .timeout(timeout)
        .connect()
        .await
        .map_err(|e| conn_err(e.to_string()))?;
    Ok(HeadscaleServiceClient::with_interceptor(
        channel,
        BearerAuth(Some(header)),
    ))
}
