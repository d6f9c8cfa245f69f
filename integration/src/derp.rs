//! The `derp` subcommand: our own relay (`hs-derp`) served over plain HTTP on a loopback
//! address, started by the harness inside the scenario's namespace. The server binary does not
//! mount `/derp` yet, so scenarios point the DERP map (`derp.paths`) at this process instead.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use hs_derp::{DerpServer, ServerOptions};
use hs_types::NodePrivate;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// Serves the relay on `listen` until the process is killed.
pub(crate) fn run(listen: &str) -> anyhow::Result<()> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("derp --listen {listen:?} is not an address"))?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "derp --listen {addr}: only loopback addresses are allowed"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(addr))
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let server = DerpServer::new(
        NodePrivate::generate(&mut rand::rngs::OsRng),
        ServerOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the relay on {addr}"))?;
    eprintln!("hs-integration derp: listening on {addr}");
    loop {
        let (stream, remote) = listener.accept().await.context("accepting")?;
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let server = Arc::clone(&server);
                async move {
                    Ok::<_, std::convert::Infallible>(
                        hs_derp::http::handle(req, server, None, Some(remote)).await,
                    )
                }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await
            {
                eprintln!("hs-integration derp: connection from {remote}: {e}");
            }
        });
    }
}
