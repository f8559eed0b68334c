//! The NATS connection of this host: its credentials, TLS, the per-host inbox (JetStream
//! acks come back only to this host), and a callback that keeps `status` and the log
//! told of every change of the link.
use std::{path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use async_nats::{ConnectOptions, Event, ServerAddr, ServerError};
use tracing::{error, info, warn};
use sensor_common::graph::fleet::inbox_prefix;

use super::{SharedState, config::FleetConfig};

/// Text of a server error that refuses a publish (`Permissions Violation for Publish to ...`).
pub const PERMISSION_VIOLATION: &str = "Permissions Violation";

/// Connects in the background: an unreachable server at start-up is retried like a lost
/// link, so the sensor starts (and records) with the fleet down.
pub async fn connect(config: &FleetConfig, host_id: &str, subject: &str, state: SharedState) -> Result<async_nats::Client> {
    let servers: Vec<ServerAddr> = config
        .nats_url
        .iter()
        .map(|u| u.parse::<ServerAddr>().with_context(|| format!("fleet.nats_url {u:?} is not a NATS server address")))
        .collect::<Result<_>>()?;
    let mut options = match &config.credentials {
        Some(path) => credentials(path).await?,
        None => ConnectOptions::new(),
    };
    if config.tls.required {
        options = options.require_tls(true);
    }
    if let Some(ca) = &config.tls.ca {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let credentials = config.credentials.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(none)".into());
    let subject = subject.to_owned();
    let servers_text = config.nats_url.join(", ");
    let callback_state = state.clone();
    options = options
        .name(format!("vtrail-sensor {host_id}"))
        .custom_inbox_prefix(inbox_prefix(host_id))
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| Duration::from_millis((250 * attempts as u64).min(5_000)))
        .event_callback(move |event| {
            let state = callback_state.clone();
            let (credentials, subject, servers) = (credentials.clone(), subject.clone(), servers_text.clone());
            async move { on_event(event, &state, &credentials, &subject, &servers) }
        });
    state.update(|s| s.problem = Some(format!("connecting to {}", config.nats_url.join(", "))));
    options.connect(servers).await.context("cannot start the NATS connection")
}

fn on_event(event: Event, state: &SharedState, credentials: &str, subject: &str, servers: &str) {
    match event {
        Event::Connected => {
            info!("fleet: link up ({servers}), publishing on {subject}");
            state.update(|s| {
                s.connected = true;
                s.problem = None;
                s.last_warning = None;
            });
        }
        Event::Disconnected => {
            warn!("fleet: link down ({servers}); records wait in the outbox");
            state.update(|s| {
                s.connected = false;
                s.problem = Some(format!("disconnected from {servers}"));
            });
        }
        Event::ServerError(ServerError::AuthorizationViolation) => {
            let why = format!("the NATS server refused this host's credentials ({credentials}): authorization violation");
            error!("fleet: {why}");
            state.update(|s| s.problem = Some(why));
        }
        Event::ServerError(ServerError::Other(message)) if message.contains(PERMISSION_VIOLATION) => {
            let why = format!(
                "the NATS server refused a publish: {message}. The credentials {credentials} are not allowed this \
                 host's subject {subject}: they belong to another host, or the server's permissions \
                 (`vtrail-collect nats-config`) do not list this host"
            );
            error!("fleet: {why}");
            state.update(|s| s.problem = Some(why));
        }
        // Every failed reconnect attempt reports its error: log each kind once per outage.
        other => {
            let text = other.to_string();
            let mut new = false;
            state.update(|s| new = s.last_warning.replace(text.clone()).as_deref() != Some(&text));
            if new {
                warn!("fleet: {text}");
            }
        }
    }
}

/// ConnectOptions for a credentials file: a `.creds` (JWT + seed), an nkey seed, or
/// `user:password`. Secrets are never put in an error message.
async fn credentials(path: &Path) -> Result<ConnectOptions> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read fleet.credentials {}", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            warn!("fleet.credentials {} is readable by other users: make it 0600", path.display());
        }
    }
    if text.contains("-----BEGIN NATS USER JWT-----") {
        return ConnectOptions::with_credentials(&text)
            .with_context(|| format!("fleet.credentials {}: not a valid .creds file", path.display()));
    }
    let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or("");
    if first.starts_with("SU") {
        if nkeys::KeyPair::from_seed(first).is_err() {
            bail!("fleet.credentials {}: the nkey seed does not decode", path.display());
        }
        return Ok(ConnectOptions::with_nkey(first.to_owned()));
    }
    match first.split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok(ConnectOptions::with_user_and_password(user.into(), password.into())),
        _ => bail!(
            "fleet.credentials {}: expected a NATS .creds file, an nkey seed (SU...), or `user:password` on the first line",
            path.display()
        ),
    }
}
