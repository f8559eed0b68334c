//! The control socket protocol: one JSON request line from the client, JSON lines back.
pub mod client;
pub mod metrics;
pub mod status;

use serde::{Deserialize, Serialize};

use crate::graph::export::Format;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// Stream events as JSON lines until the client hangs up.
    Events,
    /// `force`: trust a file a scan flagged (refused without it).
    Trust {
        path: String,
        by: String,
        #[serde(default)]
        force: bool,
    },
    Taint { path: String, by: String },
    Export { format: Format, since_ns: Option<u64> },
    /// Quarantine a remote host: `target` is an IP or a `remote:<ip>` node id.
    Block { target: String, by: String },
    Unblock { target: String, by: String },
    /// The alerts raised at or after `since_ns` and numbered above `after_seq`, in the
    /// order raised, one JSON document a line.
    Alerts {
        since_ns: u64,
        #[serde(default)]
        after_seq: u64,
    },
    /// Enforce the rules of an incident (`vtrail-analysis rules --json`); `source` names
    /// the file they came from.
    ApplyRules { rules: sensor_common::rules::FedBackRules, source: String, by: String },
}

impl Request {
    /// Does the request change what the sensor enforces or records (it must be durable
    /// before it is acknowledged)?
    pub fn changes_state(&self) -> bool {
        matches!(self, Request::Trust { .. } | Request::Taint { .. } | Request::Block { .. } | Request::Unblock { .. } | Request::ApplyRules { .. })
    }
}

/// The user running a CLI command, recorded on relabels and blocks: `name(uid N)`, with
/// the name from the password database (the environment may have no `USER`), and the
/// user who ran sudo when there is one (`admin via sudo (uid 0)`).
pub fn who_am_i() -> String {
    let uid = unsafe { libc::getuid() };
    let name = user_name(uid).or_else(|| std::env::var("USER").ok()).unwrap_or_default();
    match std::env::var("SUDO_USER") {
        Ok(sudo) if !sudo.is_empty() && sudo != name => format!("{sudo} via sudo as {name}(uid {uid})"),
        _ => format!("{name}(uid {uid})"),
    }
}

fn user_name(uid: u32) -> Option<String> {
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    Some(unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_user_has_a_name() {
        let who = super::who_am_i();
        let uid = unsafe { libc::getuid() };
        assert!(who.ends_with(&format!("(uid {uid})")), "{who}");
        assert!(!who.starts_with('('), "no user name in {who}");
    }
}
