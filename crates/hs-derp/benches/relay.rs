//! Relay throughput: packets/s and MB/s between two in-process clients over loopback TCP,
//! through the real HTTP upgrade and handshake. A window of in-flight packets no larger than
//! the server's per-client queue keeps the relay from dropping, so every packet sent is
//! counted on arrival.

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hs_derp::frame::Frame;
use hs_derp::{DerpClient, DerpServer, ServerOptions};
use hs_types::NodePrivate;
use rand::rngs::OsRng;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

const WINDOW: usize = 32;

async fn serve(server: Arc<DerpServer>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, remote)) = listener.accept().await {
            // Relayed packets are small writes; Nagle would hold them back for ACKs.
            let _ = tcp.set_nodelay(true);
            let srv = server.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let srv = srv.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            hs_derp::http::handle(req, srv, None, Some(remote)).await,
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

fn relay(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let opts = ServerOptions {
        queue_depth: WINDOW,
        ..ServerOptions::default()
    };
    let server = DerpServer::new(NodePrivate::generate(&mut OsRng), opts);
    let (ka, kb) = (
        NodePrivate::generate(&mut OsRng),
        NodePrivate::generate(&mut OsRng),
    );
    let (mut tx, mut rx) = rt.block_on(async {
        let addr = serve(server.clone()).await;
        let a = DerpClient::connect(addr, &ka).await.expect("a");
        let b = DerpClient::connect(addr, &kb).await.expect("b");
        (a.into_split().0, b.into_split().1)
    });
    let dst = kb.public();

    let mut group = c.benchmark_group("relay");
    for size in [1280usize, 16 * 1024, 64 * 1024] {
        let packet = Bytes::from(vec![0x5a; size]);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |bch| {
            bch.iter_custom(|iters| {
                rt.block_on(async {
                    let window = Arc::new(Semaphore::new(WINDOW));
                    let w2 = window.clone();
                    #[allow(clippy::disallowed_methods, reason = "a bench measures wall time")]
                    let start = Instant::now();
                    let recv = async {
                        let mut got = 0u64;
                        while got < iters {
                            match rx.recv().await.expect("recv") {
                                Some(Frame::RecvPacket { .. }) => {
                                    got += 1;
                                    w2.add_permits(1);
                                }
                                Some(_) => {}
                                None => panic!("server closed"),
                            }
                        }
                    };
                    let send = async {
                        for _ in 0..iters {
                            window.acquire().await.expect("sem").forget();
                            let f = Frame::SendPacket {
                                dst,
                                packet: packet.clone(),
                            };
                            if window.available_permits() == 0 {
                                tx.send(&f).await.expect("send");
                            } else {
                                tx.feed(&f).await.expect("feed");
                                if window.available_permits().is_multiple_of(8) {
                                    tx.flush().await.expect("flush");
                                }
                            }
                        }
                        tx.flush().await.expect("flush");
                    };
                    tokio::join!(recv, send);
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
    let st = server.stats();
    assert_eq!(st.packets_dropped_queue_full, 0, "{st:?}");
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = relay
}
criterion_main!(benches);
