//! Interoperability with an independent client implementation: the `ts_derp` crate's
//! handshake (snake_case ClientInfo JSON, its own NaCl box code) and packet frames against
//! our relay, after a POST upgrade as `ts_derp` itself sends it.

mod common;

use std::str::FromStr;

use bytes::Bytes;
use common::{PATIENCE, connect, key, next_frame, start};
use hs_derp::ServerOptions;
use hs_derp::frame::Frame;
use hs_types::NodePublic;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ts_keys::{NodeKeyPair, NodePublicKey};

/// Upgrades with `POST /derp` and reads the response head byte by byte, so nothing of the
/// DERP stream is consumed before `ts_derp` takes over.
async fn upgraded(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        b"POST /derp HTTP/1.1\r\nHost: derp.test\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n",
    )
    .await
    .expect("write request");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(s.read_u8().await.expect("response head"));
    }
    let head = String::from_utf8(head).expect("UTF-8 head");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

fn ours(k: &NodePublicKey) -> NodePublic {
    NodePublic::from_str(&k.to_string()).expect("same text form")
}

fn theirs(k: &NodePublic) -> NodePublicKey {
    NodePublicKey::from_str(&k.to_string()).expect("same text form")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_derp_clients_handshake_and_relay_through_our_server() {
    let h = start(ServerOptions::default()).await;
    let (pa, pb) = (NodeKeyPair::random(), NodeKeyPair::random());
    let a = ts_derp::Client::handshake(upgraded(h.addr).await, &pa)
        .await
        .unwrap();
    let b = ts_derp::Client::handshake(upgraded(h.addr).await, &pb)
        .await
        .unwrap();
    assert!(h.server.is_connected(&ours(&pa.public)));

    a.send_one(pb.public, b"from ts_derp a").await.unwrap();
    let (src, packet) = tokio::time::timeout(PATIENCE, b.recv_one())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(src, pa.public);
    assert_eq!(packet.as_ref(), b"from ts_derp a");

    // And across implementations, both ways.
    let kc = key();
    let mut c = connect(&h, &kc).await;
    c.send_packet(ours(&pa.public), Bytes::from_static(b"from ours"))
        .await
        .unwrap();
    let (src, packet) = tokio::time::timeout(PATIENCE, a.recv_one())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ours(&src), kc.public());
    assert_eq!(packet.as_ref(), b"from ours");
    b.send_one(theirs(&kc.public()), b"to ours").await.unwrap();
    assert_eq!(
        next_frame(&mut c).await,
        Some(Frame::RecvPacket {
            src: ours(&pb.public),
            packet: Bytes::from_static(b"to ours")
        })
    );
}
