//! The control plane Tailscale clients talk to: the state coordinator (database, NodeStore
//! and policy kept in step), `/key`, `/ts2021`, the `/machine/*` handlers inside the Noise
//! session, registration and auth flows, node lifecycle and the web pages around them.
