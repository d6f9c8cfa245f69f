//! The ts2021 control transport, server side: a sans-IO Noise IK responder and the
//! record framing Tailscale uses (big-endian nonces), and a tokio adapter that the HTTP/2
//! server runs on.
