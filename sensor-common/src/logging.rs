//! The daemons' log (`vtrail-sensor run`, `vtrail-collect`): `tracing` events on stderr,
//! one line each, filtered like `RUST_LOG` (the directives env_logger read). Under systemd
//! stderr goes to the journal, which stamps and colours lines itself: no escape codes
//! unless stderr is a terminal (and `NO_COLOR` is unset), no time stamp when
//! `JOURNAL_STREAM` says the journal is reading. Records of crates that use `log` (aya and
//! the kernel programs' aya-log messages, sled, tokio-postgres) are bridged into the same
//! subscriber.
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber: `RUST_LOG` directives, else `default_directives` (`"info"`).
/// A second call (tests) leaves the first in place.
pub fn init(default_directives: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_directives));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() { builder.without_time().try_init() } else { builder.try_init() };
}
