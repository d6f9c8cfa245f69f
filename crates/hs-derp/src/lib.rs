//! The embedded DERP relay: the frame protocol, the relay server, the STUN responder and
//! DERP map loading and refresh.
