//! The policy engine: Tailscale's HuJSON policy language parsed, validated against the
//! tailnet's users and nodes, and compiled into what each node needs (packet filter rules,
//! SSH policy, visible peers, capabilities, route auto-approval).
//!
//! Pure and synchronous: no I/O, no clock. Ground truth is the hosted control plane's
//! behaviour as captured in `shared/conformance/tailscale-saas`.
