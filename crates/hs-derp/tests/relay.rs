//! End-to-end relay behaviour over real loopback sockets: real HTTP upgrade, real handshake,
//! clients driven from outside the server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{PATIENCE, connect, key, next_frame, start};
use hs_derp::frame::{DISCO_MAGIC, Frame, PEER_PRESENT_IS_REGULAR, PeerGoneReason};
use hs_derp::{ClientInfo, DerpClient, ServerOptions};
use hs_types::NodePublic;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_exchange_packets_both_ways() {
    let h = start(ServerOptions::default()).await;
    let (ka, kb) = (key(), key());
    let mut a = connect(&h, &ka).await;
    let mut b = connect(&h, &kb).await;
    assert_eq!(a.server_key, h.server.public_key());
    assert_eq!(a.server_info.version, 2);

    a.send(&Frame::NotePreferred { preferred: true })
        .await
        .unwrap();
    a.send_packet(kb.public(), Bytes::from_static(b"hello b"))
        .await
        .unwrap();
    assert_eq!(
        next_frame(&mut b).await,
        Some(Frame::RecvPacket {
            src: ka.public(),
            packet: Bytes::from_static(b"hello b")
        })
    );
    let big = Bytes::from(vec![0xab; 64 << 10]);
    b.send_packet(ka.public(), big.clone()).await.unwrap();
    assert_eq!(
        next_frame(&mut a).await,
        Some(Frame::RecvPacket {
            src: kb.public(),
            packet: big
        })
    );
    assert!(h.server.is_preferred(&ka.public()));
    assert!(!h.server.is_preferred(&kb.public()));
    let st = h.server.stats();
    assert_eq!(st.clients, 2);
    assert_eq!(st.packets_relayed, 2);
    assert_eq!(st.bytes_relayed, 7 + (64 << 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_with_the_same_bytes() {
    let h = start(ServerOptions::default()).await;
    let mut a = connect(&h, &key()).await;
    a.send(&Frame::Ping(*b"abcdefgh")).await.unwrap();
    assert_eq!(next_frame(&mut a).await, Some(Frame::Pong(*b"abcdefgh")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_sends_peer_gone_to_those_who_sent_to_it() {
    let h = start(ServerOptions::default()).await;
    let (ka, kb, kc) = (key(), key(), key());
    let mut a = connect(&h, &ka).await;
    let mut b = connect(&h, &kb).await;
    let mut c = connect(&h, &kc).await;
    a.send_packet(kb.public(), Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert!(matches!(
        next_frame(&mut b).await,
        Some(Frame::RecvPacket { .. })
    ));
    drop(b);
    assert_eq!(
        next_frame(&mut a).await,
        Some(Frame::PeerGone {
            peer: kb.public(),
            reason: PeerGoneReason::Disconnected
        })
    );
    // c never talked to b, so the next thing c hears is its own ping's pong.
    c.send(&Frame::Ping(*b"c-ping!!")).await.unwrap();
    assert_eq!(next_frame(&mut c).await, Some(Frame::Pong(*b"c-ping!!")));
    assert!(!h.server.is_connected(&kb.public()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disco_to_an_absent_peer_gets_not_here() {
    let h = start(ServerOptions::default()).await;
    let mut a = connect(&h, &key()).await;
    let absent = NodePublic::from_bytes([7; 32]);
    let mut disco = DISCO_MAGIC.to_vec();
    disco.extend([1u8; 32 + 24 + 10]);
    a.send_packet(absent, Bytes::from_static(b"not disco"))
        .await
        .unwrap();
    a.send_packet(absent, Bytes::from(disco)).await.unwrap();
    assert_eq!(
        next_frame(&mut a).await,
        Some(Frame::PeerGone {
            peer: absent,
            reason: PeerGoneReason::NotHere
        })
    );
    assert_eq!(h.server.stats().packets_dropped_unknown_dest, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_clients_refuses_unknown_nodes_only() {
    let known = key();
    let known_pub = known.public();
    let opts = ServerOptions {
        verify_clients: Some(Arc::new(move |k: &NodePublic| *k == known_pub)),
        ..ServerOptions::default()
    };
    let h = start(opts).await;
    let err = DerpClient::connect(h.addr, &key()).await.unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    assert_eq!(h.server.stats().clients_refused, 1);
    let mut ok = connect(&h, &known).await;
    ok.send(&Frame::Ping(*b"12345678")).await.unwrap();
    assert_eq!(next_frame(&mut ok).await, Some(Frame::Pong(*b"12345678")));
    assert_eq!(h.server.stats().clients, 1);
}

/// A bystander pair keeps relaying while `bad` is thrown out for `bytes`.
async fn bad_input_closes_only_the_sender(bytes: &[u8]) {
    let h = start(ServerOptions::default()).await;
    let (ka, kb, kbad) = (key(), key(), key());
    let mut a = connect(&h, &ka).await;
    let mut b = connect(&h, &kb).await;
    let mut bad = connect(&h, &kbad).await;
    bad.send_raw(bytes).await.expect("send");
    assert_eq!(
        next_frame(&mut bad).await,
        None,
        "server should close the offender"
    );
    a.send_packet(kb.public(), Bytes::from_static(b"still here"))
        .await
        .expect("send");
    assert_eq!(
        next_frame(&mut b).await,
        Some(Frame::RecvPacket {
            src: ka.public(),
            packet: Bytes::from_static(b"still here")
        })
    );
    assert!(!h.server.is_connected(&kbad.public()));
    assert!(h.server.is_connected(&ka.public()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_packet_frame_closes_only_that_client() {
    let mut hdr = vec![0x04];
    hdr.extend(((32 + (64 << 10) + 1) as u32).to_be_bytes());
    bad_input_closes_only_the_sender(&hdr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_send_packet_closes_only_that_client() {
    let mut f = vec![0x04, 0, 0, 0, 10];
    f.extend([0u8; 10]);
    bad_input_closes_only_the_sender(&f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_note_preferred_closes_only_that_client() {
    bad_input_closes_only_the_sender(&[0x07, 0, 0, 0, 2, 1, 1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_conns_without_mesh_key_closes_the_client() {
    bad_input_closes_only_the_sender(&[0x10, 0, 0, 0, 0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_frame_types_are_skipped() {
    let h = start(ServerOptions::default()).await;
    let mut a = connect(&h, &key()).await;
    a.send_raw(&[0x7e, 0, 0, 0, 3, 1, 2, 3]).await.unwrap();
    a.send(&Frame::Ping(*b"after-uk")).await.unwrap();
    assert_eq!(next_frame(&mut a).await, Some(Frame::Pong(*b"after-uk")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_watcher_sees_presence_and_departures() {
    let mesh = "ab".repeat(32);
    let opts = ServerOptions {
        mesh_key: Some(mesh.clone()),
        ..ServerOptions::default()
    };
    let h = start(opts).await;
    let ka = key();
    let a = connect(&h, &ka).await;
    let info = ClientInfo {
        version: 2,
        mesh_key: Some(mesh),
        ..ClientInfo::default()
    };
    let mut w = DerpClient::connect_with(h.addr, &key(), &info)
        .await
        .unwrap();
    w.send(&Frame::WatchConns).await.unwrap();
    match next_frame(&mut w).await {
        Some(Frame::PeerPresent { peer, addr, flags }) => {
            assert_eq!(peer, ka.public());
            assert!(addr.ip().is_loopback(), "{addr}");
            assert_eq!(flags, PEER_PRESENT_IS_REGULAR);
        }
        other => panic!("expected PeerPresent, got {other:?}"),
    }
    let kb = key();
    let b = connect(&h, &kb).await;
    assert!(
        matches!(next_frame(&mut w).await, Some(Frame::PeerPresent { peer, .. }) if peer == kb.public())
    );
    drop(a);
    assert_eq!(
        next_frame(&mut w).await,
        Some(Frame::PeerGone {
            peer: ka.public(),
            reason: PeerGoneReason::Disconnected
        })
    );
    // A mesh peer may forward on behalf of others and close peers.
    let mut b = b;
    w.send(&Frame::ForwardPacket {
        src: ka.public(),
        dst: kb.public(),
        packet: Bytes::from_static(b"fwd"),
    })
    .await
    .unwrap();
    assert_eq!(
        next_frame(&mut b).await,
        Some(Frame::RecvPacket {
            src: ka.public(),
            packet: Bytes::from_static(b"fwd")
        })
    );
    w.send(&Frame::ClosePeer { peer: kb.public() })
        .await
        .unwrap();
    assert_eq!(next_frame(&mut b).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_restarting_reach_clients() {
    let h = start(ServerOptions::default()).await;
    let mut a = connect(&h, &key()).await;
    h.server.set_health("overloaded");
    assert_eq!(
        next_frame(&mut a).await,
        Some(Frame::Health {
            problem: "overloaded".into()
        })
    );
    // A client arriving while a problem is set hears about it first.
    let mut b = connect(&h, &key()).await;
    assert_eq!(
        next_frame(&mut b).await,
        Some(Frame::Health {
            problem: "overloaded".into()
        })
    );
    h.server
        .announce_restart(Duration::from_millis(1500), Duration::from_secs(30));
    assert_eq!(
        next_frame(&mut a).await,
        Some(Frame::Restarting {
            reconnect_in_ms: 1500,
            try_for_ms: 30_000
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alives_arrive_when_idle() {
    let opts = ServerOptions {
        keep_alive: Duration::from_millis(10),
        ..ServerOptions::default()
    };
    // Jitter adds up to 5 s; the patience window covers it.
    let h = start(opts).await;
    let mut a = connect(&h, &key()).await;
    let f = tokio::time::timeout(PATIENCE, a.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f, Some(Frame::KeepAlive));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_drops_instead_of_blocking_the_relay() {
    let opts = ServerOptions {
        queue_depth: 4,
        write_timeout: Duration::from_secs(120),
        ..ServerOptions::default()
    };
    let h = start(opts).await;
    let (ka, kstall, kc) = (key(), key(), key());
    let (mut a_tx, _a_rx) = connect(&h, &ka).await.into_split();
    let _stalled = connect(&h, &kstall).await; // never reads
    let mut c = connect(&h, &kc).await;
    let chunk = Bytes::from(vec![0u8; 60_000]);
    for _ in 0..400 {
        a_tx.feed(&Frame::SendPacket {
            dst: kstall.public(),
            packet: chunk.clone(),
        })
        .await
        .unwrap();
    }
    a_tx.send(&Frame::SendPacket {
        dst: kc.public(),
        packet: Bytes::from_static(b"through"),
    })
    .await
    .unwrap();
    assert_eq!(
        next_frame(&mut c).await,
        Some(Frame::RecvPacket {
            src: ka.public(),
            packet: Bytes::from_static(b"through")
        })
    );
    let st = h.server.stats();
    assert!(st.packets_dropped_queue_full > 0, "{st:?}");
    assert!(h.server.is_connected(&kstall.public()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_advertised_in_server_info() {
    let opts = ServerOptions {
        rate_limit: Some(hs_derp::RateLimit {
            bytes_per_second: 1_000_000,
            burst: 2_000_000,
        }),
        ..ServerOptions::default()
    };
    let h = start(opts).await;
    let a = connect(&h, &key()).await;
    assert_eq!(a.server_info.token_bucket_bytes_per_second, 1_000_000);
    assert_eq!(a.server_info.token_bucket_bytes_burst, 2_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_duplicate_connection_gets_the_traffic() {
    let h = start(ServerOptions::default()).await;
    let (ka, kb) = (key(), key());
    let mut a = connect(&h, &ka).await;
    let mut b_old = connect(&h, &kb).await;
    let mut b_new = connect(&h, &kb).await;
    a.send_packet(kb.public(), Bytes::from_static(b"1"))
        .await
        .unwrap();
    assert!(matches!(
        next_frame(&mut b_new).await,
        Some(Frame::RecvPacket { .. })
    ));
    assert_eq!(h.server.stats().clients, 3);
    drop(b_new);
    common::wait_until(|| h.server.stats().clients == 2).await;
    // The older connection takes over, and nobody is told the key left.
    a.send(&Frame::Ping(*b"sync0001")).await.unwrap();
    assert_eq!(next_frame(&mut a).await, Some(Frame::Pong(*b"sync0001")));
    a.send_packet(kb.public(), Bytes::from_static(b"2"))
        .await
        .unwrap();
    assert_eq!(
        next_frame(&mut b_old).await,
        Some(Frame::RecvPacket {
            src: ka.public(),
            packet: Bytes::from_static(b"2")
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_gone_is_sent_again_after_the_peer_returns_and_leaves() {
    let h = start(ServerOptions::default()).await;
    let (ka, kb) = (key(), key());
    let mut a = connect(&h, &ka).await;
    for round in 0..2u8 {
        let mut b = connect(&h, &kb).await;
        a.send_packet(kb.public(), Bytes::from(vec![round]))
            .await
            .unwrap();
        assert_eq!(
            next_frame(&mut b).await,
            Some(Frame::RecvPacket {
                src: ka.public(),
                packet: Bytes::from(vec![round])
            })
        );
        drop(b);
        assert_eq!(
            next_frame(&mut a).await,
            Some(Frame::PeerGone {
                peer: kb.public(),
                reason: PeerGoneReason::Disconnected
            }),
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_client_relays_with_a_plain_client() {
    let h = start(ServerOptions::default()).await;
    let (kw, kp) = (key(), key());
    let tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let ws = hs_derp::ws::client_upgrade(tcp, "derp.test").await.unwrap();
    let info = ClientInfo {
        version: 2,
        can_ack_pings: true,
        ..ClientInfo::default()
    };
    let mut w = DerpClient::handshake(ws, bytes::BytesMut::new(), &kw, &info)
        .await
        .unwrap();
    assert_eq!(w.server_key, h.server.public_key());
    let mut p = connect(&h, &kp).await;

    let big = Bytes::from(vec![0x42; 60_000]);
    w.send_packet(kp.public(), big.clone()).await.unwrap();
    assert_eq!(
        next_frame(&mut p).await,
        Some(Frame::RecvPacket {
            src: kw.public(),
            packet: big
        })
    );
    p.send_packet(kw.public(), Bytes::from_static(b"to ws"))
        .await
        .unwrap();
    let got = tokio::time::timeout(PATIENCE, w.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        Some(Frame::RecvPacket {
            src: kp.public(),
            packet: Bytes::from_static(b"to ws")
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_without_derp_subprotocol_is_426() {
    let h = start(ServerOptions::default()).await;
    let r = common::raw_http(
        h.addr,
        "GET /derp HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 426"), "{r}");
}
