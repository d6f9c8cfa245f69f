//! The STUN responder over a real UDP socket on loopback.

use std::time::Duration;

use hs_derp::stun;
use tokio::net::UdpSocket;

const PATIENCE: Duration = Duration::from_secs(20);

async fn exchange(client: &UdpSocket, msg: &[u8]) -> Vec<u8> {
    client.send(msg).await.expect("send");
    let mut buf = vec![0u8; 1500];
    let n = tokio::time::timeout(PATIENCE, client.recv(&mut buf))
        .await
        .expect("a reply within the patience window")
        .expect("recv");
    buf.truncate(n);
    buf
}

#[tokio::test]
async fn binding_request_returns_the_clients_mapped_address() {
    let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind server");
    let server_addr = server.local_addr().expect("addr");
    tokio::spawn(stun::serve(server));

    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
    client.connect(server_addr).await.expect("connect");
    let me = client.local_addr().expect("client addr");

    // Junk first: it must be ignored without killing the responder.
    client
        .send(b"definitely not stun")
        .await
        .expect("send junk");
    let mut wrong_type = stun::binding_request(b"000000000000");
    wrong_type[1] = 0x11;
    client.send(&wrong_type).await.expect("send wrong type");

    let tx = *b"tx-123456789";
    let resp = exchange(&client, &stun::binding_request(&tx)).await;
    let (got_tx, mapped) = stun::parse_response(&resp).expect("a binding success");
    assert_eq!(got_tx, tx);
    assert_eq!(mapped, me);
    // The first datagram back answered the real request, so the junk got no reply.
    let tx2 = *b"second-txid!";
    let resp = exchange(&client, &stun::binding_request(&tx2)).await;
    assert_eq!(stun::parse_response(&resp).expect("second").0, tx2);
}

#[tokio::test]
async fn ipv6_loopback_clients_get_v6_addresses() {
    let Ok(server) = UdpSocket::bind("[::1]:0").await else {
        // No IPv6 loopback in this environment: nothing to check.
        return;
    };
    let server_addr = server.local_addr().expect("addr");
    tokio::spawn(stun::serve(server));
    let client = UdpSocket::bind("[::1]:0").await.expect("bind client");
    client.connect(server_addr).await.expect("connect");
    let resp = exchange(&client, &stun::binding_request(b"v6-txid-0001")).await;
    assert_eq!(
        stun::parse_response(&resp).expect("ok").1,
        client.local_addr().expect("addr")
    );
}
