//! `vtrail-collect nats-config`: the NATS accounts block that keeps every host on its own
//! subjects. Each host gets a user nkey that may publish only `<prefix>.graph.<token>` and
//! `<prefix>.alerts.<token>` and subscribe only `_INBOX.<token>.>` (its JetStream acks); the
//! collector's key may use the JetStream API and acknowledge, and subscribe to its own inbox.
//! Seeds already in the output directory are kept, so adding a host does not change the
//! keys the other hosts hold.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use nkeys::KeyPair;
use sensor_common::graph::fleet::{alerts_subject, graph_subject, inbox_prefix, subject_token, valid_subject_prefix};

use crate::nats::COLLECTOR_INBOX_PREFIX;

/// The NATS account every fleet user belongs to.
pub const ACCOUNT: &str = "VTRAIL";

pub struct HostKey {
    pub host: String,
    pub token: String,
    pub seed_file: PathBuf,
    pub public_key: String,
}

pub struct NatsConfig {
    pub accounts_file: PathBuf,
    pub hosts: Vec<HostKey>,
    pub collector_seed_file: PathBuf,
}

/// The user key in `path`, or a new one written there (mode 0600).
fn user_key(path: &Path) -> anyhow::Result<KeyPair> {
    if path.exists() {
        let seed = fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        return KeyPair::from_seed(seed.trim()).map_err(|e| anyhow::anyhow!("{} does not hold an nkey seed: {e}", path.display()));
    }
    let key = KeyPair::new_user();
    let seed = key.seed().map_err(|e| anyhow::anyhow!("encode a new nkey seed: {e}"))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    writeln!(file, "{seed}").with_context(|| format!("write {}", path.display()))?;
    Ok(key)
}

fn quoted(subjects: &[String]) -> String {
    // Quoted: in NATS configuration an unquoted `$JS...` is a variable reference.
    subjects.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
}

fn user_entry(comment: &str, public_key: &str, publish: &[String], subscribe: &[String]) -> String {
    format!(
        "      # {comment}\n      {{ nkey: {public_key:?}, permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }} }} }}\n",
        quoted(publish),
        quoted(subscribe)
    )
}

pub fn write(out: &Path, hosts: &[String], prefix: &str) -> anyhow::Result<NatsConfig> {
    if !valid_subject_prefix(prefix) {
        bail!("--prefix {prefix:?} is not a subject prefix (dot-separated tokens of letters, digits, '_' and '-')");
    }
    if hosts.is_empty() {
        bail!("name at least one host (--host ID)");
    }
    let host_dir = out.join("hosts");
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&host_dir).with_context(|| format!("create {}", host_dir.display()))?;
    let mut keys: Vec<HostKey> = Vec::new();
    for host in hosts {
        let token = subject_token(host);
        if let Some(other) = keys.iter().find(|k| k.token == token) {
            bail!("hosts {:?} and {host:?} have the same subject token {token:?}: one of them could publish as the other", other.host);
        }
        let seed_file = host_dir.join(format!("{token}.nk"));
        let public_key = user_key(&seed_file)?.public_key();
        keys.push(HostKey { host: host.clone(), token, seed_file, public_key });
    }
    let collector_seed_file = out.join("collector.nk");
    let collector = user_key(&collector_seed_file)?.public_key();

    let mut users = String::new();
    for key in &keys {
        users += &user_entry(
            &format!("host {} (subject token {})", key.host, key.token),
            &key.public_key,
            &[graph_subject(prefix, &key.host), alerts_subject(prefix, &key.host)],
            &[format!("{}.>", inbox_prefix(&key.host))],
        );
    }
    users += &user_entry(
        "vtrail-collect: the JetStream API, acknowledgements, its own inbox",
        &collector,
        &["$JS.API.>".into(), "$JS.ACK.>".into()],
        &[format!("{COLLECTOR_INBOX_PREFIX}.>")],
    );
    let text = format!(
        "# The vtrail fleet's NATS users, written by `vtrail-collect nats-config`.\n\
         # Include it from nats-server.conf (beside a `jetstream {{ ... }}` block): include \"accounts.conf\"\n\
         accounts {{\n  {ACCOUNT}: {{\n    jetstream: enabled\n    users: [\n{users}    ]\n  }}\n}}\n"
    );
    let accounts_file = out.join("accounts.conf");
    fs::write(&accounts_file, text).with_context(|| format!("write {}", accounts_file.display()))?;
    Ok(NatsConfig { accounts_file, hosts: keys, collector_seed_file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_with_one_token_are_refused() {
        let dir = std::env::temp_dir().join(format!("vtrail-nats-config-{}", std::process::id()));
        // Different ids never share a token (the mapping is one-to-one)...
        let written = write(&dir, &["a.b".into(), "a_b".into()], "vtrail").unwrap();
        assert_ne!(written.hosts[0].token, written.hosts[1].token);
        // ...so only a host named twice does.
        let error = write(&dir, &["a.b".into(), "a.b".into()], "vtrail").err().unwrap();
        assert!(error.to_string().contains("same subject token"), "{error}");
        let _ = fs::remove_dir_all(&dir);
    }
}
