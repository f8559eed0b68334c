//! What vtrail reads from an smb.conf: the shares' roots (where uploads land) and Samba's
//! own state (its databases, caches, logs: where smbd writes for itself).
//!
//! Parsed by line, `key = value`, keys case-insensitive with spaces as Samba spells them;
//! `include =`, variables (`%m`) and registry shares are not followed (such paths are
//! skipped, not guessed).

/// Share `path = ...` values (absolute), without a trailing slash.
pub fn share_roots(text: &str) -> Vec<String> {
    entries(text)
        .filter(|(k, _)| k == "path")
        .map(|(_, v)| v.trim_end_matches('/').to_string())
        .filter(|p| p.starts_with('/') && !p.contains('%'))
        .collect()
}

/// (share name in lower case, root) of every share section with an absolute `path`.
pub fn shares(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        if let Some((k, v)) = l.split_once('=')
            && k.trim().eq_ignore_ascii_case("path")
            && section != "global"
        {
            let v = v.trim().trim_end_matches('/');
            if v.starts_with('/') && !v.contains('%') {
                out.push((section.clone(), v.to_string()));
            }
        }
    }
    out
}

/// Samba's own state: its directories (as `DIR/` patterns of `config::path_pattern`) and
/// files (the log file and its rotation, a tdbsam passdb), from the `[global]` keys.
pub fn state_paths(text: &str) -> Vec<String> {
    const DIRS: [&str; 7] =
        ["lock directory", "state directory", "cache directory", "private dir", "pid directory", "ncalrpc dir", "binddns dir"];
    let mut out = Vec::new();
    for (key, value) in entries(text) {
        if value.contains('%') {
            continue;
        }
        if DIRS.contains(&key.as_str()) && value.starts_with('/') {
            out.push(format!("{}/", value.trim_end_matches('/')));
        } else if key == "log file" && value.starts_with('/') {
            out.push(value.to_string());
            out.push(format!("{value}.old"));
        } else if key == "passdb backend"
            && let Some(path) = value.strip_prefix("tdbsam:")
            && path.starts_with('/')
        {
            out.push(path.to_string());
        }
    }
    out
}

/// (key in lower case with single spaces, value) of every `key = value` line.
fn entries(text: &str) -> impl Iterator<Item = (String, &str)> {
    text.lines().filter_map(|l| {
        let l = l.trim();
        if l.starts_with(['#', ';', '[']) {
            return None;
        }
        let (k, v) = l.split_once('=')?;
        let key = k.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase();
        Some((key, v.trim()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "[global]\n lock directory = /t/lock\n State Directory=/t/state/\n log file = /t/log.smbd\n\
        passdb backend = tdbsam:/t/private/passdb.tdb\n cache directory = /var/cache/%m\n# path = /commented\n\
        [share]\n path = /t/share/\n read only = no\n[homes]\n path = /home/%S\n";

    #[test]
    fn shares_and_state() {
        assert_eq!(share_roots(CONF), ["/t/share"]);
        assert_eq!(shares(CONF), [("share".to_string(), "/t/share".to_string())]);
        assert_eq!(state_paths(CONF), ["/t/lock/", "/t/state/", "/t/log.smbd", "/t/log.smbd.old", "/t/private/passdb.tdb"]);
    }
}
