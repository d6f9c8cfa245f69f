//! Fuzzes DERP frame decoding as the relay reads a client: any byte stream, delivered in two
//! reads split at a point the input chooses, must decode into frames or a `FrameError`,
//! never a panic or an allocation past the per-type limit; every decoded frame re-encodes to
//! bytes that decode to the same frame.
#![no_main]

use bytes::BytesMut;
use hs_derp::FrameDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let cut = usize::from(split).min(data.len());
    let mut dec = FrameDecoder::new();
    let mut buf = BytesMut::from(&data[..cut]);
    let mut rest = Some(&data[cut..]);
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(frame)) => {
                let mut again = BytesMut::new();
                frame.encode(&mut again);
                let round = FrameDecoder::new()
                    .decode(&mut again)
                    .expect("an encoded frame decodes")
                    .expect("an encoded frame is whole");
                assert_eq!(round, frame, "re-encoding changed the frame");
                assert!(again.is_empty(), "re-encoding left bytes over");
            }
            Ok(None) => match rest.take() {
                Some(r) => buf.extend_from_slice(r),
                None => break,
            },
            Err(_) => break,
        }
    }
});
