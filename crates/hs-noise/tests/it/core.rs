//! The sans-IO core against the spec-built initiator: handshake, records, nonce order and
//! every rejection.

use base64::Engine as _;
use hs_noise::handshake::{INITIATION_LEN, RESPONSE_LEN, prologue};
use hs_noise::record::{MAX_FRAME_LEN, MAX_PLAINTEXT_LEN};
use hs_noise::{Error, Initiation, Transport, parse_frame, respond};
use hs_types::{MachinePrivate, MachinePublic};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::initiator::{ClientTransport, Initiator};

pub(crate) const CLIENT: [u8; 32] = [0x11; 32];
pub(crate) const CLIENT_EPH: [u8; 32] = [0x22; 32];

pub(crate) fn server_key() -> MachinePrivate {
    MachinePrivate::from_bytes([0x33; 32])
}

pub(crate) fn client_public() -> MachinePublic {
    let pk = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(CLIENT));
    MachinePublic::from_bytes(*pk.as_bytes())
}

/// Runs a full handshake; returns the server transport and the client's keys.
fn handshake(version: u16) -> (Transport, ClientTransport) {
    let key = server_key();
    let (ini, msg) = Initiator::start(version, CLIENT, CLIENT_EPH, *key.public().as_bytes());
    let init = Initiation::parse(&msg).unwrap();
    assert_eq!(init.version(), version);
    let acc = respond(&key, &init, &mut StdRng::seed_from_u64(1)).unwrap();
    assert_eq!(acc.peer, client_public());
    assert_eq!(acc.version, version);
    let client = ini.finish(&acc.response).unwrap();
    (acc.transport, client)
}

#[test]
fn prologue_is_tailscale_text() {
    assert_eq!(prologue(130), "Tailscale Control Protocol v130");
}

#[test]
fn handshake_with_spec_initiator_yields_working_keys_both_ways() {
    let (mut server, mut client) = handshake(130);
    let f = client.seal(b"ping");
    let mut buf = f.clone();
    assert_eq!(server.opener.open(&mut buf).unwrap(), b"ping");
    let mut out = Vec::new();
    server.sealer.seal(b"pong", &mut out).unwrap();
    let (msgs, rest) = client.open_all(&out);
    assert_eq!(msgs, vec![b"pong".to_vec()]);
    assert!(rest.is_empty());
}

#[test]
fn response_is_51_bytes_type_2_len_48() {
    let key = server_key();
    let (_, msg) = Initiator::start(130, CLIENT, CLIENT_EPH, *key.public().as_bytes());
    let acc = respond(
        &key,
        &Initiation::parse(&msg).unwrap(),
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    assert_eq!(RESPONSE_LEN, 51);
    assert_eq!(acc.response.len(), 51);
    assert_eq!(&acc.response[..3], &[2, 0, 48]);
}

#[test]
fn version_is_bound_by_prologue() {
    // An initiation built for v130 but with the header rewritten to v131 must not verify.
    let key = server_key();
    let (_, mut msg) = Initiator::start(130, CLIENT, CLIENT_EPH, *key.public().as_bytes());
    msg[..2].copy_from_slice(&131u16.to_be_bytes());
    let init = Initiation::parse(&msg).unwrap();
    assert!(matches!(
        respond(&key, &init, &mut rand::rngs::OsRng),
        Err(Error::HandshakeDecrypt)
    ));
}

#[test]
fn base64_header_form_parses() {
    let key = server_key();
    let (_, msg) = Initiator::start(145, CLIENT, CLIENT_EPH, *key.public().as_bytes());
    let text = base64::engine::general_purpose::STANDARD.encode(&msg);
    assert_eq!(text.len(), 136);
    assert_eq!(Initiation::from_base64(&text).unwrap().version(), 145);
}

#[test]
fn rejects_wrong_initiation_sizes() {
    let key = server_key();
    let (_, msg) = Initiator::start(130, CLIENT, CLIENT_EPH, *key.public().as_bytes());
    for len in [0, 1, 5, 100] {
        assert!(matches!(
            Initiation::parse(&msg[..len]),
            Err(Error::InitiationSize { got }) if got == len
        ));
    }
    let mut long = msg.clone();
    long.push(0);
    assert!(matches!(
        Initiation::parse(&long),
        Err(Error::InitiationSize { got: 102 })
    ));
    assert_eq!(INITIATION_LEN, 101);
}

#[test]
fn rejects_bad_base64() {
    assert!(matches!(
        Initiation::from_base64("not base64!!"),
        Err(Error::BadBase64(_))
    ));
    let huge = "A".repeat(10_000);
    assert!(matches!(
        Initiation::from_base64(&huge),
        Err(Error::InitiationSize { .. })
    ));
    // Valid base64 of the wrong length is a size error, not a decode error.
    assert!(matches!(
        Initiation::from_base64("AAAA"),
        Err(Error::InitiationSize { got: 3 })
    ));
}

#[test]
fn rejects_wrong_type_and_length_field() {
    let key = server_key();
    let (_, msg) = Initiator::start(130, CLIENT, CLIENT_EPH, *key.public().as_bytes());
    let mut m = msg.clone();
    m[2] = 0x04;
    assert!(matches!(
        Initiation::parse(&m),
        Err(Error::InitiationType { got: 4 })
    ));
    let mut m = msg.clone();
    m[3..5].copy_from_slice(&95u16.to_be_bytes());
    assert!(matches!(
        Initiation::parse(&m),
        Err(Error::InitiationLength { got: 95 })
    ));
}

#[test]
fn rejects_initiation_for_another_server_or_tampered() {
    let key = server_key();
    let other = MachinePrivate::from_bytes([0x44; 32]);
    let (_, msg) = Initiator::start(130, CLIENT, CLIENT_EPH, *other.public().as_bytes());
    assert!(matches!(
        respond(
            &key,
            &Initiation::parse(&msg).unwrap(),
            &mut rand::rngs::OsRng
        ),
        Err(Error::HandshakeDecrypt)
    ));
    let (_, msg) = Initiator::start(130, CLIENT, CLIENT_EPH, *key.public().as_bytes());
    for i in [5, 40, 100] {
        let mut m = msg.clone();
        m[i] ^= 1;
        assert!(
            matches!(
                respond(
                    &key,
                    &Initiation::parse(&m).unwrap(),
                    &mut rand::rngs::OsRng
                ),
                Err(Error::HandshakeDecrypt)
            ),
            "flipped byte {i} was accepted"
        );
    }
}

#[test]
fn low_order_ephemeral_is_refused() {
    let key = server_key();
    let (_, mut msg) = Initiator::start(130, CLIENT, CLIENT_EPH, *key.public().as_bytes());
    // The all-zero point makes every DH with it zero.
    msg[5..37].fill(0);
    assert!(matches!(
        respond(
            &key,
            &Initiation::parse(&msg).unwrap(),
            &mut rand::rngs::OsRng
        ),
        Err(Error::HandshakeDecrypt)
    ));
}

#[test]
fn records_at_boundary_sizes() {
    let (mut server, mut client) = handshake(130);
    for (len, frames, last_frame) in [
        (0usize, 1usize, 19usize),
        (1, 1, 20),
        (MAX_PLAINTEXT_LEN, 1, MAX_FRAME_LEN),
        (MAX_PLAINTEXT_LEN + 1, 2, 20),
        (3 * MAX_PLAINTEXT_LEN + 5, 4, 24),
    ] {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut out = Vec::new();
        server.sealer.seal(&data, &mut out).unwrap();
        // Walk the frames: every one but the last is full.
        let mut sizes = Vec::new();
        let mut rest = &out[..];
        while let Some(n) = parse_frame(rest).unwrap() {
            sizes.push(n);
            rest = &rest[n..];
        }
        assert!(rest.is_empty());
        assert_eq!(sizes.len(), frames, "len {len}");
        assert_eq!(*sizes.last().unwrap(), last_frame, "len {len}");
        assert!(sizes[..frames - 1].iter().all(|&n| n == MAX_FRAME_LEN));
        let (msgs, left) = client.open_all(&out);
        assert!(left.is_empty());
        assert_eq!(msgs.concat(), data);

        // And the other direction through the opener.
        let mut got = Vec::new();
        for chunk in data
            .chunks(MAX_PLAINTEXT_LEN)
            .chain((len == 0).then_some(&[][..]))
        {
            let mut f = client.seal(chunk);
            got.extend_from_slice(server.opener.open(&mut f).unwrap());
        }
        assert_eq!(got, data);
    }
}

#[test]
fn single_record_over_4077_is_refused() {
    let (mut server, _) = handshake(130);
    let mut out = Vec::new();
    assert!(matches!(
        server
            .sealer
            .seal_record(&[0; MAX_PLAINTEXT_LEN + 1], &mut out),
        Err(Error::PlaintextTooLarge { len: 4078 })
    ));
    assert!(out.is_empty());
    assert_eq!(server.sealer.counter(), 0);
}

#[test]
fn nonces_are_big_endian_and_in_order() {
    let (mut server, mut client) = handshake(130);
    // Records 0 and 1 are sealed; delivering 1 first fails at counter 0.
    let mut r0 = client.seal(b"zero");
    let mut r1 = client.seal(b"one");
    let mut swapped = r1.clone();
    assert!(matches!(
        server.opener.open(&mut swapped),
        Err(Error::RecordDecrypt { counter: 0 })
    ));
    assert_eq!(server.opener.open(&mut r0).unwrap(), b"zero");
    // A record whose counter is laid out little-endian (Noise spec) does not open at 1...
    let mut le = client.seal_le(1, b"one");
    assert_ne!(le, r1);
    assert!(matches!(
        server.opener.open(&mut le),
        Err(Error::RecordDecrypt { counter: 1 })
    ));
    // ...while the big-endian one does, and the counter advances.
    assert_eq!(server.opener.open(&mut r1).unwrap(), b"one");
    assert_eq!(server.opener.counter(), 2);
    // Server side: the 300th record opens with the client's counter 299 (BE, > 255).
    let mut out = Vec::new();
    for i in 0..300u32 {
        server.sealer.seal(&i.to_be_bytes(), &mut out).unwrap();
    }
    let (msgs, _) = client.open_all(&out);
    assert_eq!(msgs.len(), 300);
    assert_eq!(msgs[299], 299u32.to_be_bytes());
}

#[test]
fn replayed_record_is_refused() {
    let (mut server, mut client) = handshake(130);
    let r0 = client.seal(b"once");
    assert!(server.opener.open(&mut r0.clone()).is_ok());
    assert!(matches!(
        server.opener.open(&mut r0.clone()),
        Err(Error::RecordDecrypt { counter: 1 })
    ));
}

#[test]
fn frame_parser_rejections() {
    assert_eq!(parse_frame(&[]).unwrap(), None);
    assert_eq!(parse_frame(&[4]).unwrap(), None);
    assert_eq!(parse_frame(&[4, 0]).unwrap(), None);
    assert_eq!(parse_frame(&[4, 0, 16]).unwrap(), None);
    assert_eq!(parse_frame(&[4, 0, 16, 0, 0]).unwrap(), None);
    assert_eq!(
        parse_frame(
            &[0u8; 0]
                .iter()
                .chain(&[4, 0, 16])
                .copied()
                .chain([0; 16])
                .collect::<Vec<_>>()
        )
        .unwrap(),
        Some(19)
    );
    // Unknown type, seen from the first byte.
    for ty in [0u8, 1, 2, 3, 5, 0xff] {
        assert!(matches!(
            parse_frame(&[ty]),
            Err(Error::UnknownMessageType { got }) if got == ty
        ));
    }
    // Oversize: 4094 bytes of ciphertext makes a 4097-byte frame.
    assert!(matches!(
        parse_frame(&[4, 0x0f, 0xfe]),
        Err(Error::FrameTooLarge { len: 4097 })
    ));
    assert!(matches!(
        parse_frame(&[4, 0xff, 0xff]),
        Err(Error::FrameTooLarge { len: 65538 })
    ));
    // Exactly 4093 is fine (needs more bytes).
    assert_eq!(parse_frame(&[4, 0x0f, 0xfd]).unwrap(), None);
    // Shorter than a tag.
    assert!(matches!(
        parse_frame(&[4, 0, 15]),
        Err(Error::FrameTooShort { len: 15 })
    ));
}

#[test]
fn tampered_record_fails_decryption() {
    let (mut server, mut client) = handshake(130);
    let mut f = client.seal(b"payload");
    f[5] ^= 0x80;
    assert!(matches!(
        server.opener.open(&mut f),
        Err(Error::RecordDecrypt { counter: 0 })
    ));
}

#[test]
fn errors_name_the_problem() {
    let e = Initiation::parse(&[0; 7]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "wrong handshake initiation size: 7 bytes, want 101"
    );
    let e = parse_frame(&[4, 0xff, 0xff]).unwrap_err();
    assert!(e.to_string().contains("4096"), "{e}");
}
