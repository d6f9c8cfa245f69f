//! DERP over WebSocket against an independent WebSocket client (tungstenite): it checks our
//! accept key and subprotocol, masks its frames, and we speak DERP frames inside its binary
//! messages to a plain-TCP DERP client.

mod common;

use bytes::{Bytes, BytesMut};
use common::{PATIENCE, connect, key, next_frame, start};
use futures_util::{SinkExt, StreamExt};
use hs_derp::frame::Frame;
use hs_derp::{ClientInfo, FrameDecoder, ServerOptions, handshake};
use rand::rngs::OsRng;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tungstenite_client_speaks_derp_through_our_websocket_endpoint() {
    let h = start(ServerOptions::default()).await;
    let mut req = format!("ws://{}/derp", h.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("sec-websocket-protocol", "derp".parse().expect("header"));
    let tcp = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tcp)
        .await
        .expect("ws handshake");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "derp");

    let mut buf = BytesMut::new();
    let mut dec = FrameDecoder::new();
    let mut next = async |ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>| loop {
        if let Some(f) = dec.decode(&mut buf).expect("valid frame") {
            return f;
        }
        match tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Binary(b))) => buf.extend_from_slice(&b),
            Some(Ok(_)) => {}
            other => panic!("websocket ended: {other:?}"),
        }
    };

    let Frame::ServerKey { key: server_key } = next(&mut ws).await else {
        panic!("no ServerKey")
    };
    assert_eq!(server_key, h.server.public_key());
    let me = key();
    let info = ClientInfo {
        version: 2,
        can_ack_pings: true,
        ..ClientInfo::default()
    };
    let sealed = handshake::seal(&me, &server_key, &info.to_json(), &mut OsRng);
    let hello = Frame::ClientInfo {
        key: me.public(),
        sealed: Bytes::from(sealed),
    };
    ws.send(Message::Binary(hello.to_bytes()))
        .await
        .expect("send ClientInfo");
    assert!(matches!(next(&mut ws).await, Frame::ServerInfo { .. }));

    let peer = key();
    let mut p = connect(&h, &peer).await;
    let pkt = Frame::SendPacket {
        dst: peer.public(),
        packet: Bytes::from_static(b"via ws"),
    };
    ws.send(Message::Binary(pkt.to_bytes()))
        .await
        .expect("send packet");
    assert_eq!(
        next_frame(&mut p).await,
        Some(Frame::RecvPacket {
            src: me.public(),
            packet: Bytes::from_static(b"via ws")
        })
    );
    p.send_packet(me.public(), Bytes::from(vec![7u8; 40_000]))
        .await
        .expect("send back");
    assert_eq!(
        next(&mut ws).await,
        Frame::RecvPacket {
            src: peer.public(),
            packet: Bytes::from(vec![7u8; 40_000])
        }
    );
}
