//! Which edges to fetch next: the time-respecting walks of `taint` (forward) and `trace`
//! (backward), run over ids and times only, level by level.
//!
//! They fetch a superset of what the in-memory questions read, never less: every data-flow
//! edge carries (whatever its endpoints' kinds), relabels to trusted do not stop it, and a
//! send reaches every receive on every host its address names within the skew allowance
//! (the questions pair each with one). So each node's walked range starts no later
//! (forward) or ends no earlier (backward) than the questions' own label for it, and the
//! graph built from the fetched rows holds every edge they look at.

use std::collections::HashMap;

use sensor_common::graph::{Edge, EdgeKind, NodeData};

use super::store::{BEFORE_ALL, Range, range};

/// The kinds that carry content (and so taint): BackTracker's data-flow edges.
fn carries(kind: EdgeKind) -> bool {
    matches!(
        kind,
        EdgeKind::Exec | EdgeKind::Read | EdgeKind::Fork | EdgeKind::Create | EdgeKind::Write
    )
}

fn host_of(edge: &Edge) -> &str {
    edge.host.strip_prefix("host:").unwrap_or(&edge.host)
}

/// The cross-host pairs: which host a `remote:` node is, and each host's sends and
/// receives by time. Built from every transfer (the base of every walk).
#[derive(Default)]
pub struct Transfers {
    /// Host id or disk id -> host id.
    host_lookup: HashMap<String, String>,
    /// Remote node id -> the node ids its records name (union over hosts).
    remote_ids: HashMap<String, Vec<String>>,
    /// Host -> (time, file id) of its `sent_to` edges, by time.
    sends: HashMap<String, Vec<(u64, String)>>,
    /// Host -> (time, file id) of its `received_from` edges, by time.
    receives: HashMap<String, Vec<(u64, String)>>,
}

impl Transfers {
    pub fn add_host(&mut self, id: &str, disk_ids: &[String]) {
        let id = id.strip_prefix("host:").unwrap_or(id);
        self.host_lookup.insert(id.to_owned(), id.to_owned());
        for disk in disk_ids {
            self.host_lookup.entry(disk.clone()).or_insert_with(|| id.to_owned());
        }
    }

    pub fn add_node(&mut self, id: &str, data: &NodeData) {
        if let NodeData::Remote { node_ids, .. } = data {
            let known = self.remote_ids.entry(id.to_owned()).or_default();
            for node_id in node_ids {
                if !known.contains(node_id) {
                    known.push(node_id.clone());
                }
            }
        }
    }

    pub fn add_edge(&mut self, edge: &Edge) {
        let host = host_of(edge).to_owned();
        self.host_lookup.entry(host.clone()).or_insert_with(|| host.clone());
        match edge.kind() {
            EdgeKind::SentTo => self.sends.entry(host).or_default().push((edge.ts_ns, edge.src.clone())),
            EdgeKind::ReceivedFrom => self.receives.entry(host).or_default().push((edge.ts_ns, edge.dst.clone())),
            _ => {}
        }
    }

    pub fn sort(&mut self) {
        for list in self.sends.values_mut().chain(self.receives.values_mut()) {
            list.sort_unstable();
        }
    }

    /// Every loaded host the remote's node ids name (the index takes the first; all are
    /// walked).
    pub fn hosts_of(&self, remote: &str) -> Vec<&str> {
        let mut hosts: Vec<&str> = self
            .remote_ids
            .get(remote)
            .into_iter()
            .flatten()
            .filter_map(|id| self.host_lookup.get(id).map(String::as_str))
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        hosts
    }

    /// (time, file) of the transfers in `lists` on the hosts `remote` names, within
    /// `skew` of `ts`.
    fn partners<'a>(
        &'a self,
        lists: &'a HashMap<String, Vec<(u64, String)>>,
        remote: &str,
        ts: u64,
        skew: u64,
    ) -> impl Iterator<Item = &'a (u64, String)> + 'a {
        let (lo, hi) = (ts.saturating_sub(skew), ts.saturating_add(skew));
        self.hosts_of(remote).into_iter().flat_map(move |host| {
            let list = lists.get(host).map(Vec::as_slice).unwrap_or(&[]);
            let first = list.partition_point(|(t, _)| *t < lo);
            list[first..].iter().take_while(move |(t, _)| *t <= hi)
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Out-edges from a time on; a node's time only ever moves earlier.
    Forward,
    /// In-edges up to a time; a node's time only ever moves later.
    Backward,
}

/// Per node, the time up to which its edges were fetched, and the times still to fetch.
pub struct Frontier {
    direction: Direction,
    fetched: HashMap<String, u64>,
    wanted: HashMap<String, u64>,
}

impl Frontier {
    pub fn forward() -> Self {
        Frontier {
            direction: Direction::Forward,
            fetched: HashMap::new(),
            wanted: HashMap::new(),
        }
    }

    pub fn backward() -> Self {
        Frontier {
            direction: Direction::Backward,
            fetched: HashMap::new(),
            wanted: HashMap::new(),
        }
    }

    fn further(&self, new: u64, old: u64) -> bool {
        match self.direction {
            Direction::Forward => new < old,
            Direction::Backward => new > old,
        }
    }

    /// Reach `id` at `at` (tainted from `at` on, or a cause of what happened at `at`).
    pub fn reach(&mut self, id: &str, at: u64) {
        let beyond_fetched = self.fetched.get(id).is_none_or(|&old| self.further(at, old));
        let beyond_wanted = self.wanted.get(id).is_none_or(|&old| self.further(at, old));
        if beyond_fetched && beyond_wanted {
            self.wanted.insert(id.to_owned(), at);
        }
    }

    pub fn is_done(&self) -> bool {
        self.wanted.is_empty()
    }

    /// The next level: for each wanted node, the part of its range not fetched yet.
    pub fn next_level(&mut self) -> Vec<Range> {
        let mut level: Vec<(String, u64)> = self.wanted.drain().collect();
        level.sort_unstable();
        level
            .into_iter()
            .map(|(id, at)| {
                let old = self.fetched.insert(id.clone(), at);
                match self.direction {
                    Direction::Forward => range(&id, at, old.unwrap_or(u64::MAX)),
                    Direction::Backward => {
                        let mut r = range(&id, old.unwrap_or(0), at);
                        if old.is_none() {
                            r.from = BEFORE_ALL;
                        }
                        r
                    }
                }
            })
            .collect()
    }

    /// The nodes reached so far, with the time each was fetched from (or up to).
    pub fn reached(&self) -> impl Iterator<Item = (&str, u64)> {
        self.fetched.iter().map(|(id, &at)| (id.as_str(), at))
    }

    /// Follows one fetched edge the way this frontier walks.
    pub fn follow(&mut self, edge: &Edge, transfers: &Transfers, skew_ns: u64) {
        let kind = edge.kind();
        match self.direction {
            Direction::Forward if carries(kind) => self.reach(&edge.dst, edge.ts_ns),
            Direction::Forward if kind == EdgeKind::SentTo => {
                for (at, file) in transfers.partners(&transfers.receives, &edge.dst, edge.ts_ns, skew_ns) {
                    self.reach(file, *at);
                }
            }
            Direction::Backward if carries(kind) => self.reach(&edge.src, edge.ts_ns),
            Direction::Backward if kind == EdgeKind::ReceivedFrom => {
                for (at, file) in transfers.partners(&transfers.sends, &edge.src, edge.ts_ns, skew_ns) {
                    self.reach(file, *at);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensor_common::graph::{EdgeData, FileWriteAttrs, NoAttrs, Protocol, TransferAttrs};

    fn edge(ts_ns: u64, host: &str, src: &str, dst: &str, data: EdgeData) -> Edge {
        Edge {
            ts_ns,
            src: src.into(),
            dst: dst.into(),
            host: host.into(),
            data,
        }
    }

    #[test]
    fn forward_ranges_only_grow_earlier_and_fetch_only_what_is_new() {
        let mut frontier = Frontier::forward();
        frontier.reach("p", 100);
        let level = frontier.next_level();
        assert_eq!((level[0].from, level[0].until), (100, i64::MAX));
        frontier.reach("p", 150);
        assert!(frontier.is_done(), "a later taint time adds nothing");
        frontier.reach("p", 40);
        let level = frontier.next_level();
        assert_eq!((level[0].from, level[0].until), (40, 100));
    }

    #[test]
    fn backward_ranges_only_grow_later() {
        let mut frontier = Frontier::backward();
        frontier.reach("f", 100);
        let level = frontier.next_level();
        assert_eq!((level[0].from, level[0].until), (BEFORE_ALL, 100));
        frontier.reach("f", 50);
        assert!(frontier.is_done());
        frontier.reach("f", u64::MAX);
        let level = frontier.next_level();
        assert_eq!((level[0].from, level[0].until), (100, i64::MAX));
    }

    #[test]
    fn a_send_reaches_the_receives_on_the_host_its_address_names_within_the_skew() {
        let mut transfers = Transfers::default();
        transfers.add_host("b", &["disk-b".into()]);
        transfers.add_node(
            "remote:10.0.0.2",
            &NodeData::Remote {
                ip: "10.0.0.2".into(),
                node_ids: vec!["disk-b".into()],
            },
        );
        let transfer = || EdgeData::ReceivedFrom(TransferAttrs::new("10.0.0.1", Protocol::Smb2));
        transfers.add_edge(&edge(1_000, "b", "remote:10.0.0.1", "file:b:near", transfer()));
        transfers.add_edge(&edge(9_000, "b", "remote:10.0.0.1", "file:b:far", transfer()));
        transfers.add_edge(&edge(1_000, "c", "remote:10.0.0.1", "file:c:other-host", transfer()));
        transfers.sort();
        let mut frontier = Frontier::forward();
        let send = edge(
            1_200,
            "a",
            "file:a:w",
            "remote:10.0.0.2",
            EdgeData::SentTo(TransferAttrs::new("10.0.0.2", Protocol::Smb2)),
        );
        frontier.follow(&send, &transfers, 500);
        let level = frontier.next_level();
        let ids: Vec<&str> = level.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, vec!["file:b:near"]);
        assert_eq!(level[0].from, 1_000, "tainted from the receive, on the receiver's clock");
    }

    #[test]
    fn data_flow_edges_carry_and_metadata_edges_do_not() {
        let transfers = Transfers::default();
        let mut forward = Frontier::forward();
        forward.follow(&edge(5, "a", "p", "f", EdgeData::Write(FileWriteAttrs::default())), &transfers, 0);
        forward.follow(&edge(6, "a", "p", "q", EdgeData::Fork(NoAttrs {})), &transfers, 0);
        forward.follow(&edge(7, "a", "p", "g", EdgeData::Truncate(FileWriteAttrs::default())), &transfers, 0);
        let mut ids: Vec<String> = forward.next_level().into_iter().map(|r| r.id).collect();
        ids.sort();
        assert_eq!(ids, vec!["f".to_owned(), "q".to_owned()]);
    }
}
