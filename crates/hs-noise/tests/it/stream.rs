//! `Ts2021::accept` and `NoiseStream` over real loopback sockets: the raw handshake, bulk
//! data both ways, the handshake timeout, and each bad-input path ending the session.

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use hs_noise::{Error, NoiseStream, Ts2021};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::core::{CLIENT, CLIENT_EPH, client_public, server_key};
use crate::initiator::{ClientTransport, Initiator};

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
    (c.unwrap(), s.unwrap().0)
}

fn ts(timeout: Duration) -> Ts2021 {
    Ts2021::new(Arc::new(server_key())).with_handshake_timeout(timeout)
}

/// Completes a raw handshake; returns the client socket and keys and the server stream.
async fn established() -> (TcpStream, ClientTransport, NoiseStream<TcpStream>) {
    let (mut c, s) = tcp_pair().await;
    let (ini, msg) = Initiator::start(130, CLIENT, CLIENT_EPH, *server_key().public().as_bytes());
    c.write_all(&msg).await.unwrap();
    let (stream, session) = ts(Duration::from_secs(20)).accept(s).await.unwrap();
    assert_eq!(session.machine_key, client_public());
    assert_eq!(session.protocol_version, 130);
    let mut resp = [0u8; 51];
    c.read_exact(&mut resp).await.unwrap();
    (c, ini.finish(&resp).unwrap(), stream)
}

#[tokio::test]
async fn bulk_data_both_ways_in_records_of_at_most_4096_bytes() {
    let (mut c, mut client, mut server) = established().await;
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();

    // Server → client, one big write.
    let d = data.clone();
    let writer = tokio::spawn(async move {
        server.write_all(&d).await.unwrap();
        server.flush().await.unwrap();
        server
    });
    let mut raw = Vec::new();
    let mut plain = Vec::new();
    let mut buf = vec![0u8; 8192];
    while plain.len() < data.len() {
        let n = c.read(&mut buf).await.unwrap();
        assert!(n > 0);
        raw.extend_from_slice(&buf[..n]);
        // open_all asserts every frame is a record of at most 4096 bytes.
        let (msgs, rest) = client.open_all(&raw);
        for m in msgs {
            assert!(m.len() <= 4077);
            plain.extend_from_slice(&m);
        }
        raw = rest;
    }
    assert_eq!(plain, data);
    let mut server = writer.await.unwrap();
    assert_eq!(server.counters().0, data.len().div_ceil(4077) as u64);

    // Client → server: many small records, including empty ones, then EOF.
    let mut wire = Vec::new();
    for chunk in data.chunks(1000) {
        wire.extend_from_slice(&client.seal(&[]));
        wire.extend_from_slice(&client.seal(chunk));
    }
    c.write_all(&wire).await.unwrap();
    c.shutdown().await.unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, data);
}

#[tokio::test]
async fn stalled_handshake_times_out() {
    let (mut c, s) = tcp_pair().await;
    // Half an initiation header, then nothing.
    c.write_all(&[0, 130, 1]).await.unwrap();
    let err = ts(Duration::from_millis(200)).accept(s).await.unwrap_err();
    assert!(matches!(err, Error::HandshakeTimeout(_)), "{err}");
}

#[tokio::test]
async fn bad_initiation_header_gets_error_message() {
    let (mut c, s) = tcp_pair().await;
    c.write_all(&[0, 130, 7, 0, 96]).await.unwrap();
    let err = ts(Duration::from_secs(20)).accept(s).await.unwrap_err();
    assert!(matches!(err, Error::InitiationType { got: 7 }), "{err}");
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply[0], 0x03);
    let len = u16::from_be_bytes([reply[1], reply[2]]) as usize;
    let text = std::str::from_utf8(&reply[3..3 + len]).unwrap();
    assert!(text.contains("message type 0x07"), "{text}");
}

#[tokio::test]
async fn old_client_is_refused_before_the_handshake() {
    let (mut c, s) = tcp_pair().await;
    let (_, msg) = Initiator::start(112, CLIENT, CLIENT_EPH, *server_key().public().as_bytes());
    c.write_all(&msg).await.unwrap();
    let err = ts(Duration::from_secs(20)).accept(s).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedVersion {
                version: 112,
                min: 113
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn wrong_server_key_is_refused() {
    let (mut c, s) = tcp_pair().await;
    let other = hs_types::MachinePrivate::from_bytes([0x77; 32]);
    let (_, msg) = Initiator::start(130, CLIENT, CLIENT_EPH, *other.public().as_bytes());
    c.write_all(&msg).await.unwrap();
    let err = ts(Duration::from_secs(20)).accept(s).await.unwrap_err();
    assert!(matches!(err, Error::HandshakeDecrypt), "{err}");
}

/// Sends `frame` after the handshake and returns the server's read error.
async fn read_error_after(frame: impl FnOnce(&mut ClientTransport) -> Vec<u8>) -> Error {
    let (mut c, mut client, mut server) = established().await;
    c.write_all(&frame(&mut client)).await.unwrap();
    let mut buf = [0u8; 64];
    let e = server.read(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    // The stream stays failed.
    assert!(server.read(&mut buf).await.is_err());
    *e.into_inner().unwrap().downcast::<Error>().unwrap()
}

#[tokio::test]
async fn stream_rejects_unknown_type_oversize_and_bad_records() {
    let e = read_error_after(|_| vec![0x02, 0, 48]).await;
    assert!(matches!(e, Error::UnknownMessageType { got: 2 }), "{e}");
    let e = read_error_after(|_| vec![0x04, 0x0f, 0xfe]).await;
    assert!(matches!(e, Error::FrameTooLarge { len: 4097 }), "{e}");
    let e = read_error_after(|c| {
        let mut f = c.seal(b"hello");
        let last = f.len() - 1;
        f[last] ^= 1;
        f
    })
    .await;
    assert!(matches!(e, Error::RecordDecrypt { counter: 0 }), "{e}");
    let e = read_error_after(|c| {
        c.seal_le(0, b"")
            .into_iter()
            .chain(c.seal_le(1, b"x"))
            .collect()
    })
    .await;
    // Record 0 is identical in both layouts; record 1 is not.
    assert!(matches!(e, Error::RecordDecrypt { counter: 1 }), "{e}");
}

#[tokio::test]
async fn wait_readable_skips_empty_records_and_keeps_the_data() {
    let (mut c, mut client, mut server) = established().await;
    let mut wire = client.seal(b"");
    wire.extend_from_slice(&client.seal(b"first"));
    c.write_all(&wire).await.unwrap();
    assert!(server.wait_readable().await.unwrap());
    let mut buf = [0u8; 16];
    let n = server.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"first");
    c.shutdown().await.unwrap();
    assert!(!server.wait_readable().await.unwrap());
}

#[tokio::test]
async fn eof_inside_a_record_is_an_error() {
    let (mut c, mut client, mut server) = established().await;
    let f = client.seal(b"truncated");
    c.write_all(&f[..f.len() - 3]).await.unwrap();
    c.shutdown().await.unwrap();
    let mut buf = [0u8; 64];
    let e = server.read(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
}
