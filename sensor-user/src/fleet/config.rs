//! `[fleet]`: where this sensor streams its graph. Off unless `nats_url` is set, so the
//! embedded default still runs one host with nothing else installed.
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sensor_common::graph::fleet::{DEFAULT_SUBJECT_PREFIX, valid_subject_prefix};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// NATS servers (`nats://host:4222` or `tls://...`); one string or a list. Empty = off.
    #[serde(default, deserialize_with = "one_or_many")]
    pub nats_url: Vec<String>,
    /// How this host authenticates: a `.creds` file (JWT + nkey), an nkey seed file
    /// (`SU...`, as `vtrail-collect nats-config` writes them), or a file holding
    /// `user:password` on its first line. Unset = no authentication.
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    #[serde(default)]
    pub tls: TlsConfig,
    /// First token(s) of every subject: records go to `<prefix>.graph.<host>`.
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Refuse a server that does not offer TLS.
    #[serde(default)]
    pub required: bool,
    /// PEM file of the CA(s) the server's certificate must chain to.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM client certificate and key, for servers that verify clients.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self { nats_url: Vec::new(), credentials: None, tls: TlsConfig::default(), subject_prefix: default_prefix() }
    }
}

fn default_prefix() -> String {
    DEFAULT_SUBJECT_PREFIX.into()
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl FleetConfig {
    pub fn enabled(&self) -> bool {
        !self.nats_url.is_empty()
    }

    /// What is wrong with the section, as (key, value, why).
    pub fn problem(&self) -> Option<(&'static str, String, &'static str)> {
        if !valid_subject_prefix(&self.subject_prefix) {
            return Some((
                "fleet.subject_prefix",
                self.subject_prefix.clone(),
                "must be dot-separated tokens of letters, digits, '_' and '-' (no wildcards)",
            ));
        }
        for url in &self.nats_url {
            let scheme_ok = ["nats://", "tls://", "ws://", "wss://"].iter().any(|s| url.starts_with(s)) || !url.contains("://");
            if url.trim().is_empty() || !scheme_ok {
                return Some(("fleet.nats_url", url.clone(), "must be nats://HOST:PORT or tls://HOST:PORT"));
            }
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Some(("fleet.tls", "cert/key".into(), "a client certificate needs both `cert` and `key`"));
        }
        let files = [self.credentials.as_deref(), self.tls.ca.as_deref(), self.tls.cert.as_deref(), self.tls.key.as_deref()];
        if let Some(p) = files.into_iter().flatten().find(|p: &&Path| !p.is_absolute()) {
            return Some(("fleet", p.display().to_string(), "credential and certificate paths must be absolute"));
        }
        None
    }
}
