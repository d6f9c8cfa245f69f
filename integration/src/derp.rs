//! The `derp` subcommand: our own relay (`hs-derp`) served on a loopback address, started by
//! the harness inside the scenario's namespace. The server binary does not mount `/derp` yet,
//! so scenarios point the DERP map (`derp.paths`) at this process instead.
//!
//! One port speaks both plain HTTP (Go clients run with `TS_DEBUG_USE_DERP_HTTP=1`) and TLS
//! (Tailscale's Rust client dials DERP over TLS only; the DERP map then carries
//! `InsecureForTests`): the first byte of a connection tells which, and both kinds of client
//! meet in the same relay. The certificate is self-signed, made at start with the `openssl`
//! CLI; without `openssl` the relay serves plain HTTP only and says so.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use hs_derp::{DerpServer, ServerOptions};
use hs_types::NodePrivate;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

/// The first byte of a TLS record carrying a handshake (the ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

/// Serves the relay on `listen` until the process is killed.
pub(crate) fn run(listen: &str) -> anyhow::Result<()> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("derp --listen {listen:?} is not an address"))?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "derp --listen {addr}: only loopback addresses are allowed"
    );
    let tls = match self_signed_acceptor(addr) {
        Ok(a) => Some(a),
        Err(e) => {
            eprintln!("hs-integration derp: no TLS (plain HTTP only): {e:#}");
            None
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(addr, tls))
}

/// A TLS acceptor with a fresh self-signed certificate for the listen IP.
fn self_signed_acceptor(addr: SocketAddr) -> anyhow::Result<TlsAcceptor> {
    let dir = std::env::temp_dir().join(format!("hsit-derp-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let made = make_cert(&dir, addr);
    let _ = std::fs::remove_dir_all(&dir);
    let (certs, key) = made?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key")?;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

type CertAndKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn make_cert(dir: &Path, addr: SocketAddr) -> anyhow::Result<CertAndKey> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ip = addr.ip();
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:P-256")
        .args(["-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={ip}"))
        .arg("-addext")
        .arg(format!("subjectAltName=IP:{ip}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("running openssl")?;
    anyhow::ensure!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let certs = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .context("reading the certificate")?;
    let key = PrivateKeyDer::from_pem_file(&key).context("reading the key")?;
    Ok((certs, key))
}

async fn serve(addr: SocketAddr, tls: Option<TlsAcceptor>) -> anyhow::Result<()> {
    let server = DerpServer::new(
        NodePrivate::generate(&mut rand::rngs::OsRng),
        ServerOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the relay on {addr}"))?;
    eprintln!(
        "hs-integration derp: listening on {addr} (TLS {})",
        if tls.is_some() { "too" } else { "off" }
    );
    loop {
        let (stream, remote) = listener.accept().await.context("accepting")?;
        let server = Arc::clone(&server);
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut first = [0u8; 1];
            let is_tls =
                matches!(stream.peek(&mut first).await, Ok(1) if first[0] == TLS_HANDSHAKE);
            match (is_tls, tls) {
                (true, Some(acceptor)) => match acceptor.accept(stream).await {
                    Ok(s) => http(s, server, remote).await,
                    Err(e) => eprintln!("hs-integration derp: TLS from {remote}: {e}"),
                },
                _ => http(stream, server, remote).await,
            }
        });
    }
}

/// Serves one HTTP/1.1 connection (the DERP upgrade) on `io`.
async fn http<S>(io: S, server: Arc<DerpServer>, remote: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let server = Arc::clone(&server);
        async move {
            Ok::<_, std::convert::Infallible>(
                hs_derp::http::handle(req, server, None, Some(remote)).await,
            )
        }
    });
    if let Err(e) = http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await
    {
        eprintln!("hs-integration derp: connection from {remote}: {e}");
    }
}
