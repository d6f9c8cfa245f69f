//! SIGHUP: re-reads `dns.extra_records_path`, in file mode the policy file, and the manual
//! TLS certificate files, and pushes what changed to every node. A policy file or a
//! certificate that no longer loads leaves the old one in force.

use hs_config::{DnsConfig, PolicyConfig, PolicyMode};
use hs_control::ControlState;

/// Listens for SIGHUP for as long as the process runs.
pub(crate) fn spawn_sighup(
    state: ControlState,
    dns: DnsConfig,
    policy: PolicyConfig,
    tls: Option<hs_tls::Tls>,
) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP");
                return;
            }
        };
        while hup.recv().await.is_some() {
            if let Some(tls) = &tls {
                tls.reload();
            }
            tracing::info!("received SIGHUP, reloading DNS extra records");
            if let Err(e) = state.reload_dns(&dns).await {
                tracing::error!(error = %e, "reload failed; keeping the previous DNS config");
            }
            if policy.mode == PolicyMode::File {
                tracing::info!("received SIGHUP, reloading the policy file");
                if let Err(e) = state
                    .load_policy(&policy, hs_control::PolicyLoad::Reload)
                    .await
                {
                    tracing::error!(error = %e, "policy reload failed; keeping the policy in force");
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (state, dns, policy, tls);
}
