//! The rules an incident's analysis feeds back to the sensors: `vtrail-analysis rules
//! --json` writes them, `vtrail-sensor apply-rules FILE` enforces them. One definition on
//! both sides, so what the analysis writes is what the sensor reads.
use serde::{Deserialize, Serialize};

/// A host to quarantine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockTarget {
    /// The argument for `vtrail-sensor block`: an IP address, never a node id.
    pub target: String,
    pub reason: String,
}

/// A path the virus used to persist or activate (an activation point it wrote).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectPath {
    /// Absolute. A directory protects what is in it (new files and existing ones).
    pub path: String,
    /// `attrs.activation_point` as recorded (cron, systemd, shell-rc, ...); empty when an
    /// admin named the path.
    #[serde(default)]
    pub activation_point: String,
    /// The hosts where it was used.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// What `apply-rules` reads: the `rules` object of `vtrail-analysis rules --json` (or that
/// object alone). The report's other fields (warnings, hosts to clean) are for people.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FedBackRules {
    #[serde(default)]
    pub block: Vec<BlockTarget>,
    #[serde(default)]
    pub protect: Vec<ProtectPath>,
    /// One YARA rule source (`rule vtrail_... { ... }`).
    #[serde(default)]
    pub yara: Option<String>,
}

impl FedBackRules {
    /// Parses a rules document; the error says what was expected.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let object = match value.get("rules") {
            Some(rules) => rules.clone(),
            None if value.get("block").is_some() || value.get("protect").is_some() || value.get("yara").is_some() => value,
            None => return Err("no `rules` object and no block/protect/yara key: expected the output of `vtrail-analysis rules --json`".into()),
        };
        let rules: Self = serde_json::from_value(object).map_err(|e| format!("rules: {e}"))?;
        for p in &rules.protect {
            if !p.path.starts_with('/') {
                return Err(format!("protect: {:?} is not an absolute path", p.path));
            }
        }
        Ok(rules)
    }

    pub fn is_empty(&self) -> bool {
        self.block.is_empty() && self.protect.is_empty() && self.yara.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_analysis_document_and_the_bare_object() {
        let doc = r#"{"load":{"hosts":1},"rules":{"question":"q","block":[{"target":"10.0.0.9","reason":"sent it"}],
            "infected_hosts":[],"protect":[{"path":"/etc/cron.d/x","activation_point":"cron","hosts":["h"]}],
            "hashes":["ab"],"yara":"rule r { condition: true }","warnings":[]}}"#;
        let rules = FedBackRules::from_json(doc).unwrap();
        assert_eq!(rules.block[0].target, "10.0.0.9");
        assert_eq!(rules.protect[0].path, "/etc/cron.d/x");
        assert!(rules.yara.is_some());
        let bare = FedBackRules::from_json(r#"{"protect":[{"path":"/srv/x"}]}"#).unwrap();
        assert_eq!(bare.protect[0].activation_point, "");
    }

    #[test]
    fn refuses_what_is_not_a_rules_document() {
        assert!(FedBackRules::from_json("[1,2]").unwrap_err().contains("vtrail-analysis rules --json"));
        assert!(FedBackRules::from_json("{").unwrap_err().starts_with("not JSON"));
        assert!(FedBackRules::from_json(r#"{"protect":[{"path":"etc/x"}]}"#).unwrap_err().contains("absolute"));
        assert!(FedBackRules::from_json(r#"{"block":[{"target":1}]}"#).is_err());
    }
}
