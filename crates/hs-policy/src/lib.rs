//! The policy engine: Tailscale's HuJSON policy language parsed, validated against the
//! tailnet's users and nodes, and compiled into what each node needs (packet filter rules,
//! SSH policy, visible peers, capabilities, route auto-approval).
//!
//! Pure and synchronous: no I/O, no clock. Ground truth is the hosted control plane's
//! behaviour as captured in `shared/conformance/tailscale-saas`.
//!
//! ```
//! let policy = hs_policy::Policy::parse("{ // HuJSON\n \"acls\": [],\n}").unwrap();
//! assert_eq!(policy.acls, Some(vec![]));
//! ```

pub mod alias;
pub mod ast;
pub mod bitset;
mod caps;
mod engine;
mod error;
pub mod hujson;
mod incremental;
mod input;
pub mod ipset;
mod resolve;
mod routes;
mod rules;
mod ssh;
pub mod synth;
mod tests;
mod validate;
mod via;
pub mod wire;

pub use ast::Policy;
pub use caps::CapMap;
pub use engine::{AppCaps, CompiledPolicy, PeerView, Rule};
pub use error::PolicyError;
pub use incremental::Delta;
pub use input::{PolicyNode, PolicyUser, Roles};
pub use ssh::{SshAction, SshRuleOut};

impl Policy {
    /// Parses HuJSON policy text. Errors name the line and column; unknown fields are refused.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        hujson::from_str(text)
    }
}
