//! Throughput of the ts2021 record layer: records/s and MB/s for seal+open of full
//! (4077-byte) and small records, and through two `NoiseStream`s over a loopback socket.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hs_noise::record::MAX_PLAINTEXT_LEN;
use hs_noise::{NoiseStream, Transport, parse_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn pair() -> (Transport, Transport) {
    (
        Transport::new(&[1; 32], &[2; 32]),
        Transport::new(&[2; 32], &[1; 32]),
    )
}

fn seal_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("record_seal_open");
    for size in [64usize, 1024, MAX_PLAINTEXT_LEN] {
        let (mut a, mut b) = pair();
        let data = vec![0xabu8; size];
        let mut buf = Vec::with_capacity(4096);
        // Elements = records: criterion reports records/s; a second run reports bytes.
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("records/{size}B"), |bench| {
            bench.iter(|| {
                buf.clear();
                a.sealer.seal_record(black_box(&data), &mut buf).unwrap();
                let n = parse_frame(&buf).unwrap().unwrap();
                black_box(b.opener.open(&mut buf[..n]).unwrap().len())
            });
        });
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("bytes/{size}B"), |bench| {
            bench.iter(|| {
                buf.clear();
                a.sealer.seal_record(black_box(&data), &mut buf).unwrap();
                let n = parse_frame(&buf).unwrap().unwrap();
                black_box(b.opener.open(&mut buf[..n]).unwrap().len())
            });
        });
    }
    g.finish();
}

/// 1 MiB per iteration through writer NoiseStream → TCP loopback → reader NoiseStream.
fn stream(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut w, mut r) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (a, b) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        let (ta, tb) = pair();
        (
            NoiseStream::new(a.unwrap(), ta),
            NoiseStream::new(b.unwrap().0, tb),
        )
    });
    const TOTAL: usize = 1 << 20;
    let data = vec![0x5au8; 64 * 1024];
    let mut g = c.benchmark_group("noise_stream_tcp");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g.bench_function("1MiB", |bench| {
        bench.iter(|| {
            rt.block_on(async {
                let writer = async {
                    for _ in 0..TOTAL / data.len() {
                        w.write_all(&data).await.unwrap();
                    }
                    w.flush().await.unwrap();
                };
                let reader = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut got = 0;
                    while got < TOTAL {
                        got += r.read(&mut buf).await.unwrap();
                    }
                };
                tokio::join!(writer, reader);
            });
        });
    });
    g.finish();
}

criterion_group!(benches, seal_open, stream);
criterion_main!(benches);
