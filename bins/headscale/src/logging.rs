//! Installs the tracing subscriber: level from `RUST_LOG` if set, else `log.level`; format
//! from `log.format` (text or JSON lines). Logs go to stderr so stdout stays for results.

use std::io::IsTerminal as _;

use hs_config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Go Headscale's zerolog level names mapped to tracing's.
fn directive(level: &str) -> &'static str {
    match level {
        "trace" => "trace",
        "debug" => "debug",
        "warn" => "warn",
        "error" | "fatal" | "panic" => "error",
        "disabled" => "off",
        _ => "info",
    }
}

/// Sets up logging for the process. Call once, early.
pub(crate) fn init(log: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directive(&log.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests calling commands in one process) keeps the first subscriber.
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Logging before any config is read: warnings and errors only.
pub(crate) fn init_minimal() {
    init(&LogConfig {
        level: "warn".into(),
        format: LogFormat::Text,
    });
}
