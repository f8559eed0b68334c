//! Ground truth: what really happened, read from the worm's and the scripted users' own
//! logs in each guest (and the lab's log of the outside host's uploads), never from
//! vtrail's records.
use std::collections::BTreeMap;

use anyhow::{Context, Result};

use super::scenario::{INCOMING, Scenario};

/// One line of a guest's `worm.log` or `user.log`: `<ns> <event> key=value...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub ns: u64,
    pub event: String,
    pub fields: BTreeMap<String, String>,
}

impl LogLine {
    pub fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_whitespace();
        let ns = words.next()?.parse().ok()?;
        let event = words.next()?.to_string();
        let fields = words.filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Some(Self { ns, event, fields })
    }

    pub fn field(&self, key: &str) -> &str {
        self.fields.get(key).map(String::as_str).unwrap_or("")
    }
}

pub fn parse_log(text: &str) -> Vec<LogLine> {
    text.lines().filter_map(LogLine::parse).collect()
}

/// What one guest's logs say.
#[derive(Clone, Debug, Default)]
pub struct GuestLogs {
    pub worm: Vec<LogLine>,
    pub user: Vec<LogLine>,
}

/// An upload the outside host made (the lab's own log): to which address, under which name.
#[derive(Clone, Debug)]
pub struct OutsideUpload {
    pub to_ip: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Outside,
    Host(String),
}

#[derive(Clone, Debug)]
pub struct TruthHost {
    pub name: String,
    pub id: String,
    /// The worm ran here: when (this guest's clock) and from which file name.
    pub infected_at_ns: Option<u64>,
    /// Received the worm and its user never opened it.
    pub carrier: bool,
    /// The name of the copy that infected it (or, for a carrier, the first it received).
    pub via_name: Option<String>,
    /// Who sent that copy.
    pub source: Option<Source>,
}

#[derive(Clone, Debug)]
pub struct Truth {
    pub hosts: Vec<TruthHost>,
    /// Infected hosts whose copy came from outside.
    pub patient_zero: Vec<String>,
}

impl Truth {
    pub fn from_logs(scenario: &Scenario, logs: &[GuestLogs], outside: &[OutsideUpload]) -> Result<Self> {
        // Every address a host had, to name the receiver of a send.
        let host_at = |ip: &str| -> Option<usize> {
            scenario.hosts.iter().position(|h| h.ip == ip || h.moves_to.as_deref() == Some(ip))
        };
        // (receiver, name) -> sender, from the senders' own logs.
        let mut sender_of: BTreeMap<(usize, String), Source> = BTreeMap::new();
        for u in outside {
            if let Some(to) = host_at(&u.to_ip) {
                sender_of.insert((to, u.name.clone()), Source::Outside);
            }
        }
        for (i, log) in logs.iter().enumerate() {
            for l in log.worm.iter().filter(|l| l.event == "sent") {
                if let Some(to) = host_at(l.field("to")) {
                    sender_of.insert((to, l.field("name").to_string()), Source::Host(scenario.hosts[i].id.clone()));
                }
            }
        }
        let mut hosts = Vec::new();
        for (i, (plan, log)) in scenario.hosts.iter().zip(logs).enumerate() {
            let ran = log.worm.iter().find(|l| l.event == "ran");
            let ran_name = ran
                .map(|l| {
                    l.field("path")
                        .strip_prefix(&format!("{INCOMING}/"))
                        .map(str::to_string)
                        .with_context(|| format!("{}: the worm ran from {}, not from {INCOMING}", plan.name, l.field("path")))
                })
                .transpose()?;
            let ignored = log.user.iter().find(|l| l.event == "ignored").map(|l| l.field("name").to_string());
            let carrier = ran.is_none() && ignored.is_some();
            let via_name = ran_name.or(ignored);
            let source = via_name.as_ref().and_then(|n| sender_of.get(&(i, n.clone())).cloned());
            hosts.push(TruthHost {
                name: plan.name.clone(),
                id: plan.id.clone(),
                infected_at_ns: ran.map(|l| l.ns),
                carrier,
                via_name,
                source,
            });
        }
        let patient_zero =
            hosts.iter().filter(|h| h.infected_at_ns.is_some() && h.source == Some(Source::Outside)).map(|h| h.id.clone()).collect();
        Ok(Self { hosts, patient_zero })
    }

    pub fn infected(&self) -> impl Iterator<Item = &TruthHost> {
        self.hosts.iter().filter(|h| h.infected_at_ns.is_some())
    }

    /// Infected hosts, earliest first.
    pub fn infection_order(&self) -> Vec<String> {
        let mut v: Vec<&TruthHost> = self.infected().collect();
        v.sort_by_key(|h| h.infected_at_ns);
        v.into_iter().map(|h| h.id.clone()).collect()
    }

    /// How many hosts each host infected (carriers not counted).
    pub fn direct_infections(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for h in self.infected() {
            if let Some(Source::Host(p)) = &h.source {
                *m.entry(p.clone()).or_insert(0) += 1;
            }
        }
        m
    }

    pub fn host(&self, id: &str) -> Option<&TruthHost> {
        self.hosts.iter().find(|h| h.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::scenario::Topology;

    #[test]
    fn reads_the_logs_into_who_infected_whom() {
        let s = Scenario::plan(3, Topology::Chain, 4).unwrap();
        // Chain: zero -> a -> b, where b is the carrier.
        let zero = s.zero;
        let a = s.hosts[zero].targets[0];
        let b = s.hosts[a].targets[0];
        assert!(!s.hosts[b].runs_worm);
        let mut logs = vec![GuestLogs::default(); 3];
        let ran = |n: &str| format!("{INCOMING}/{n}");
        logs[zero].worm = parse_log(&format!(
            "100 ran path={}\n110 sent to={} name={}\n",
            ran(&s.hosts[zero].lure),
            s.hosts[a].ip,
            s.hosts[a].lure
        ));
        logs[a].worm = parse_log(&format!(
            "200 ran path={}\n210 sent to={} name={}\n",
            ran(&s.hosts[a].lure),
            s.hosts[b].ip,
            s.hosts[b].lure
        ));
        logs[b].user = parse_log(&format!("300 arrived name={0}\n305 ignored name={0}\n", s.hosts[b].lure));
        let outside = [OutsideUpload { to_ip: s.hosts[zero].ip.clone(), name: s.hosts[zero].lure.clone() }];
        let t = Truth::from_logs(&s, &logs, &outside).unwrap();
        assert_eq!(t.patient_zero, [s.hosts[zero].id.clone()]);
        assert_eq!(t.host(&s.hosts[a].id).unwrap().source, Some(Source::Host(s.hosts[zero].id.clone())));
        let carrier = t.host(&s.hosts[b].id).unwrap();
        assert!(carrier.carrier && carrier.infected_at_ns.is_none());
        assert_eq!(carrier.source, Some(Source::Host(s.hosts[a].id.clone())));
        assert_eq!(t.infection_order(), [s.hosts[zero].id.clone(), s.hosts[a].id.clone()]);
        assert_eq!(t.direct_infections().get(&s.hosts[zero].id), Some(&1));
        assert_eq!(LogLine::parse("garbage"), None);
    }
}
