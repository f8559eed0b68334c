//! Small hand-built graphs for the rules that the simulations do not isolate: relabels,
//! time-respecting edges, carriers, and the doubling-time and bucket arithmetic.

use analysis::index::{Graph, GraphBuilder};
use analysis::select::Selector;
use analysis::time::NS_PER_SEC;
use sensor_common::graph::{Edge, EdgeKind, HostInfo, Node, NodeData};

mod common;

struct Incident {
    builder: GraphBuilder,
}

impl Incident {
    fn new(hosts: &[&str]) -> Self {
        let mut builder = GraphBuilder::default();
        for h in hosts {
            builder
                .add_host_info(
                    &HostInfo {
                        id: (*h).into(),
                        hostname: format!("name-{h}"),
                        disk_ids: vec![(*h).into()],
                    },
                    None,
                )
                .unwrap();
        }
        Incident { builder }
    }
    fn file(&mut self, host: &str, ino: u64, path: &str, sha: Option<&str>) -> String {
        let id = format!("file:{host}:1:{ino}");
        let data = NodeData::File {
            dev: 1,
            ino,
            paths: vec![path.into()],
            untrusted: false,
            executable: true,
            sha256: sha.map(|s| s.repeat(64 / s.len())),
            malicious: false,
            scan: None,
        };
        self.node(host, id, data)
    }
    fn process(&mut self, host: &str, pid: u32) -> String {
        let id = format!("proc:{host}:{pid}:1");
        let data = NodeData::Process {
            tgid: pid,
            start_ticks: 1,
            exe: "/x".into(),
            comm: "x".into(),
            uid: 0,
            tainted: false,
        };
        self.node(host, id, data)
    }
    fn remote(&mut self, recorder: &str, ip: &str, node_id: Option<&str>) -> String {
        let id = format!("remote:{ip}");
        let data = NodeData::Remote {
            ip: ip.into(),
            node_ids: node_id.map(|n| vec![n.into()]).unwrap_or_default(),
        };
        self.node(recorder, id, data)
    }
    /// Adds node `id`, recorded by `host`; returns its id.
    fn node(&mut self, host: &str, id: String, data: NodeData) -> String {
        let node = Node {
            id: id.clone(),
            host: host.into(),
            first_seen_ns: 0,
            data,
        };
        self.builder.add_node(node).unwrap();
        id
    }
    fn edge(
        &mut self,
        host: &str,
        seconds: u64,
        kind: EdgeKind,
        src: &str,
        dst: &str,
        attrs: &[(&str, &str)],
    ) {
        self.builder
            .add_edge(Edge {
                ts_ns: seconds * NS_PER_SEC,
                src: src.into(),
                dst: dst.into(),
                host: host.into(),
                data: common::edge_data(kind, attrs),
            })
            .unwrap();
    }
    fn graph(self) -> Graph {
        self.builder.finish(2 * NS_PER_SEC).0
    }
}

#[test]
fn a_file_relabeled_trusted_before_it_runs_is_not_an_infection() {
    let mut incident = Incident::new(&["a"]);
    let outside = incident.remote("a", "192.0.2.1", None);
    let installer = incident.file("a", 1, "/tmp/installer.sh", None);
    let admin = incident.process("a", 10);
    let run = incident.process("a", 11);
    incident.edge("a", 10, EdgeKind::ReceivedFrom, &outside, &installer, &[("protocol", "http")]);
    incident.edge("a", 20, EdgeKind::Relabel, &admin, &installer, &[("to", "trusted"), ("by", "root(uid 0)")]);
    incident.edge("a", 30, EdgeKind::Exec, &installer, &run, &[]);
    let graph = incident.graph();
    assert!(
        analysis::spread::spread(&graph, None, None, None).is_err(),
        "no tainted execution"
    );

    // Relabeled untrusted again before a second run: that run counts.
    let mut incident = Incident::new(&["a"]);
    let outside = incident.remote("a", "192.0.2.1", None);
    let installer = incident.file("a", 1, "/tmp/installer.sh", None);
    let admin = incident.process("a", 10);
    let (first, second) = (incident.process("a", 11), incident.process("a", 12));
    incident.edge("a", 10, EdgeKind::ReceivedFrom, &outside, &installer, &[]);
    incident.edge("a", 20, EdgeKind::Relabel, &admin, &installer, &[("to", "trusted"), ("by", "root(uid 0)")]);
    incident.edge("a", 30, EdgeKind::Exec, &installer, &first, &[]);
    incident.edge("a", 40, EdgeKind::Relabel, &admin, &installer, &[("to", "untrusted"), ("by", "root(uid 0)")]);
    incident.edge("a", 50, EdgeKind::Exec, &installer, &second, &[]);
    let spread = analysis::spread::spread(&incident.graph(), None, None, None).expect("infected");
    assert_eq!(spread.hosts[0].infected_at_ns, Some(50 * NS_PER_SEC));
}

#[test]
fn edges_before_the_taint_arrived_do_not_carry_it() {
    // The process wrote the log before it ran the flagged file: the log is not an effect.
    let mut incident = Incident::new(&["a"]);
    let outside = incident.remote("a", "192.0.2.1", None);
    let flagged = incident.file("a", 1, "/tmp/evil", Some("ab"));
    let shell = incident.process("a", 10);
    let child = incident.process("a", 11);
    let early_log = incident.file("a", 2, "/var/log/early", None);
    let late_log = incident.file("a", 3, "/var/log/late", None);
    incident.edge("a", 5, EdgeKind::Write, &shell, &early_log, &[]);
    incident.edge("a", 10, EdgeKind::ReceivedFrom, &outside, &flagged, &[("protocol", "smb2"), ("name", "evil")]);
    incident.edge("a", 20, EdgeKind::Read, &flagged, &shell, &[]);
    incident.edge("a", 30, EdgeKind::Fork, &shell, &child, &[]);
    incident.edge("a", 40, EdgeKind::Write, &child, &late_log, &[]);
    let graph = incident.graph();
    let report =
        analysis::trace::trace(&graph, &Selector::Path("/tmp/evil".into()), None).expect("trace");
    let written: Vec<&str> = report
        .forward
        .files_written
        .iter()
        .map(|f| f.node.label.as_str())
        .collect();
    assert_eq!(written, vec!["/var/log/late"]);
    assert_eq!(report.forward.processes_started.len(), 2);

    // Backward from the late log: the write at 5 s happened before anything the shell did
    // that matters (fork at 30 s), but BackTracker keeps the shell's causes before 30 s:
    // the read of the flagged file, back to the network entry.
    let report = analysis::trace::trace(&graph, &Selector::Path("/var/log/late".into()), None)
        .expect("trace back");
    let entry = report.backward.entry_points[0]
        .transfer
        .as_ref()
        .expect("entry");
    assert_eq!(entry.name_as_sent.as_deref(), Some("evil"));
    assert!(
        report
            .backward
            .edges
            .iter()
            .all(|e| e.dst_label != "/var/log/early")
    );
}

#[test]
fn a_carrier_that_never_ran_the_file_is_a_parent_in_the_tree() {
    // a receives the worm from outside but never runs it; b fetches it from a and runs it.
    let mut incident = Incident::new(&["a", "b"]);
    let outside = incident.remote("a", "192.0.2.1", None);
    let on_a = incident.file("a", 1, "/srv/share/w", Some("cd"));
    let to_b = incident.remote("a", "10.0.0.2", Some("b"));
    let from_a = incident.remote("b", "10.0.0.1", Some("a"));
    let on_b = incident.file("b", 1, "/srv/share/w", Some("cd"));
    let run = incident.process("b", 10);
    // Before the worm, a downloaded something else that nobody ran: not what a carried.
    let download = incident.file("a", 2, "/root/tool.tar.gz", Some("ef"));
    let mirror = incident.remote("a", "198.51.100.20", None);
    incident.edge("a", 5, EdgeKind::ReceivedFrom, &mirror, &download, &[("protocol", "http")]);
    incident.edge("a", 10, EdgeKind::ReceivedFrom, &outside, &on_a, &[("protocol", "ftp")]);
    incident.edge("a", 100, EdgeKind::SentTo, &on_a, &to_b, &[("protocol", "smb2"), ("name", "w")]);
    incident.edge("b", 101, EdgeKind::ReceivedFrom, &from_a, &on_b, &[("protocol", "smb2"), ("name", "w")]);
    incident.edge("b", 150, EdgeKind::Exec, &on_b, &run, &[]);
    let graph = incident.graph();
    for selector in [None, Some(Selector::Sha256("cd".repeat(32)))] {
        let spread = analysis::spread::spread(&graph, selector.as_ref(), None, None).expect("spread");
        let b = spread.hosts.iter().find(|h| h.host == "b").unwrap();
        assert_eq!((b.parent.as_deref(), b.parent_kind), (Some("a"), "host"));
        let a = spread.hosts.iter().find(|h| h.host == "a").unwrap();
        assert!(!a.infected, "a is a carrier");
        assert_eq!((a.parent.as_deref(), a.parent_kind), (Some("192.0.2.1"), "outside"));
        assert_eq!(arrivals(&spread, "a"), vec![pair("ftp", "/srv/share/w")], "{selector:?}");
        assert_eq!(a.children, vec!["b".to_owned()]);
        assert_eq!(spread.topology.carriers, 1);
        // a is the root of the tree but never ran the file: b is the first infected, patient zero.
        assert_eq!(spread.patient_zeros, vec!["b".to_owned()]);
    }
}

#[test]
fn a_host_that_received_the_worm_and_never_ran_it_is_a_carrier_leaf() {
    // a runs the worm and sends it to b twice (SMB, then FTP) and to c once; c runs it, b
    // never does. d downloads something else nobody runs, and gets the worm itself straight
    // from outside, never running it either.
    let mut incident = Incident::new(&["a", "b", "c", "d"]);
    let outside = incident.remote("a", "192.0.2.1", None);
    let entry = incident.file("a", 1, "/srv/w", Some("ab"));
    let worm = incident.process("a", 10);
    let copy = incident.file("a", 2, "/var/tmp/w", Some("ab"));
    let (to_b, to_c) = (incident.remote("a", "10.0.0.2", Some("b")), incident.remote("a", "10.0.0.3", Some("c")));
    incident.edge("a", 10, EdgeKind::ReceivedFrom, &outside, &entry, &[("protocol", "ftp")]);
    incident.edge("a", 20, EdgeKind::Exec, &entry, &worm, &[]);
    incident.edge("a", 25, EdgeKind::Write, &worm, &copy, &[]);
    let smb = [("protocol", "smb2"), ("name", "w")];
    let ftp = [("protocol", "ftp"), ("name", "w")];
    incident.edge("a", 30, EdgeKind::SentTo, &copy, &to_b, &smb);
    incident.edge("a", 40, EdgeKind::SentTo, &copy, &to_c, &ftp);
    incident.edge("a", 44, EdgeKind::SentTo, &copy, &to_b, &ftp);
    let from_a = incident.remote("b", "10.0.0.1", Some("a"));
    let (by_smb, by_ftp) = (incident.file("b", 1, "/srv/share/w", Some("ab")), incident.file("b", 2, "/srv/ftp/w", Some("ab")));
    incident.edge("b", 31, EdgeKind::ReceivedFrom, &from_a, &by_smb, &smb);
    incident.edge("b", 45, EdgeKind::ReceivedFrom, &from_a, &by_ftp, &ftp);
    let on_c = incident.file("c", 1, "/srv/ftp/w", Some("ab"));
    let run = incident.process("c", 10);
    incident.edge("c", 41, EdgeKind::ReceivedFrom, &from_a, &on_c, &ftp);
    incident.edge("c", 60, EdgeKind::Exec, &on_c, &run, &[]);
    let (mirror, dropper) = (incident.remote("d", "198.51.100.20", None), incident.remote("d", "203.0.113.9", None));
    let (download, dropped) = (incident.file("d", 1, "/root/tool.tar.gz", Some("ef")), incident.file("d", 2, "/srv/w", Some("ab")));
    incident.edge("d", 15, EdgeKind::ReceivedFrom, &mirror, &download, &[("protocol", "http")]);
    incident.edge("d", 70, EdgeKind::ReceivedFrom, &dropper, &dropped, &smb);
    let graph = incident.graph();

    for selector in [None, Some(Selector::Sha256("ab".repeat(32)))] {
        let spread = analysis::spread::spread(&graph, selector.as_ref(), None, None).expect("spread");
        let host = |id: &str| spread.hosts.iter().find(|h| h.host == id).unwrap();
        assert_eq!(spread.patient_zeros, vec!["a".to_owned()], "{selector:?}");
        let b = host("b");
        assert!(!b.infected && b.infected_at_ns.is_none() && b.first_execution.is_none());
        assert_eq!((b.parent.as_deref(), b.parent_kind), (Some("a"), "host"));
        assert_eq!(b.via.as_ref().map(|v| v.ts_ns), Some(31 * NS_PER_SEC));
        assert_eq!(arrivals(&spread, "b"), vec![pair("smb2", "/srv/share/w"), pair("ftp", "/srv/ftp/w")]);
        assert!(b.children.is_empty());
        assert!(host("c").infected);
        assert_eq!(host("a").children, vec!["c".to_owned(), "b".to_owned()], "infected first");
        let d = host("d");
        assert_eq!((d.infected, d.parent.as_deref(), d.parent_kind), (false, Some("203.0.113.9"), "outside"));
        assert_eq!(arrivals(&spread, "d"), vec![pair("smb2", "/srv/w")], "{selector:?}: the download is not the worm");

        let t = &spread.topology;
        assert_eq!((t.hosts_infected, t.carriers, t.tree_depth, t.leaves), (2, 2, 1, 1), "{selector:?}");
        let zero = &spread.super_infectors[0];
        assert_eq!((zero.host.as_str(), zero.direct, zero.descendants, zero.carriers), ("a", 1, 1, 1));
        assert_eq!(spread.timeline.last().map(|b| b.cumulative), Some(2));

        let text = analysis::output::render_spread(analysis::output::Format::Text, &spread, &Default::default());
        assert!(
            text.contains("b (name-b) carrier: received \"w\" from a at 1970-01-01T00:00:31.000Z via smb2, never executed; also entered via ftp"),
            "{text}"
        );
        assert!(text.contains("carrier: received \"w\" from 203.0.113.9 (outside) at 1970-01-01T00:01:10.000Z"), "{text}");
        assert!(text.contains("1 carrier(s) made"), "{text}");
        let dot = analysis::output::render_spread(analysis::output::Format::Dot, &spread, &Default::default());
        assert!(dot.lines().any(|l| l.contains("\"a\" -> \"b\"") && l.contains("dashed")), "{dot}");
        assert!(dot.lines().any(|l| l.contains("\"a\" -> \"c\"") && !l.contains("dashed")), "{dot}");
        assert!(dot.lines().any(|l| l.starts_with("  \"b\"") && l.contains(analysis::output::style::color("carrier"))), "{dot}");
    }
}

#[test]
fn doubling_time_and_buckets() {
    // Four hosts infected at 0, 10, 20, 40 s from outside: doublings 1->2 in 10 s, 2->4 in 30 s.
    let mut incident = Incident::new(&["a", "b", "c", "d"]);
    for (i, (host, t)) in [("a", 0u64), ("b", 10), ("c", 20), ("d", 40)]
        .into_iter()
        .enumerate()
    {
        let outside = incident.remote(host, &format!("192.0.2.{i}"), None);
        let file = incident.file(host, 1, "/tmp/w", Some("ef"));
        let run = incident.process(host, 10);
        incident.edge(host, 1000 + t, EdgeKind::ReceivedFrom, &outside, &file, &[]);
        incident.edge(host, 1000 + t, EdgeKind::Exec, &file, &run, &[]);
    }
    let spread = analysis::spread::spread(&incident.graph(), None, None, Some(20 * NS_PER_SEC))
        .expect("spread");
    assert_eq!(
        spread.doubling.intervals_ns,
        vec![10 * NS_PER_SEC, 30 * NS_PER_SEC]
    );
    let counts: Vec<(usize, usize)> = spread
        .timeline
        .iter()
        .map(|b| (b.new_infections, b.cumulative))
        .collect();
    assert_eq!(counts, vec![(2, 2), (1, 3), (1, 4)]);
    assert_eq!(spread.patient_zeros.len(), 4);
}

/// Protocols and files of every arrival `spread` names for `host`, earliest first.
fn arrivals(spread: &analysis::spread::SpreadReport, host: &str) -> Vec<(String, String)> {
    spread
        .hosts
        .iter()
        .find(|h| h.host == host)
        .unwrap()
        .arrivals
        .iter()
        .map(|a| (a.protocol.map(|p| p.name().to_owned()).unwrap_or_default(), a.file.clone()))
        .collect()
}

fn pair(protocol: &str, file: &str) -> (String, String) {
    (protocol.to_owned(), file.to_owned())
}

#[test]
fn every_executed_arrival_is_an_entry_whatever_its_protocol() {
    // The same worm reaches one host twice, by SMB and by FTP, and both copies run. Either
    // may come first: the earliest is the entry, the other is reported with it.
    for (smb_at, ftp_at) in [(10, 12), (12, 10)] {
        let mut incident = Incident::new(&["a"]);
        let smb_sender = incident.remote("a", "203.0.113.5", None);
        let ftp_sender = incident.remote("a", "198.51.100.7", None);
        let by_smb = incident.file("a", 1, "/srv/share/w", Some("ab"));
        let by_ftp = incident.file("a", 2, "/srv/ftp/w", Some("ab"));
        let (run_smb, run_ftp) = (incident.process("a", 10), incident.process("a", 11));
        let smb = [("protocol", "smb2"), ("name", "w")];
        let ftp = [("protocol", "ftp"), ("name", "w")];
        incident.edge("a", smb_at, EdgeKind::ReceivedFrom, &smb_sender, &by_smb, &smb);
        incident.edge("a", ftp_at, EdgeKind::ReceivedFrom, &ftp_sender, &by_ftp, &ftp);
        incident.edge("a", 20, EdgeKind::Exec, &by_smb, &run_smb, &[]);
        incident.edge("a", 30, EdgeKind::Exec, &by_ftp, &run_ftp, &[]);
        let graph = incident.graph();
        let mut expected = vec![pair("smb2", "/srv/share/w"), pair("ftp", "/srv/ftp/w")];
        if ftp_at < smb_at {
            expected.reverse();
        }
        for selector in [None, Some(Selector::Sha256("ab".repeat(32)))] {
            let spread =
                analysis::spread::spread(&graph, selector.as_ref(), None, None).expect("spread");
            assert_eq!(spread.patient_zeros, vec!["a".to_owned()]);
            assert_eq!(arrivals(&spread, "a"), expected, "{selector:?}");
            let a = &spread.hosts[0];
            assert_eq!(
                a.via.as_ref().unwrap().protocol.map(|p| p.name()),
                Some(expected[0].0.as_str())
            );
            let text = analysis::output::render_spread(
                analysis::output::Format::Text,
                &spread,
                &Default::default(),
            );
            let also = format!("also entered: 1970-01-01T00:00:{}.000Z", smb_at.max(ftp_at));
            assert!(
                text.lines()
                    .any(|l| l.contains(&also) && l.contains(&format!("over {}", expected[1].0))),
                "{text}"
            );
        }
    }

    // One file uploaded by SMB, then uploaded again over it by FTP before it ran.
    let mut incident = Incident::new(&["a"]);
    let smb_sender = incident.remote("a", "203.0.113.5", None);
    let ftp_sender = incident.remote("a", "198.51.100.7", None);
    let file = incident.file("a", 1, "/srv/share/w", Some("ab"));
    let run = incident.process("a", 10);
    incident.edge("a", 10, EdgeKind::ReceivedFrom, &smb_sender, &file, &[("protocol", "smb2")]);
    incident.edge("a", 15, EdgeKind::ReceivedFrom, &ftp_sender, &file, &[("protocol", "ftp")]);
    incident.edge("a", 20, EdgeKind::Exec, &file, &run, &[]);
    let graph = incident.graph();
    for selector in [None, Some(Selector::Path("/srv/share/w".into()))] {
        let spread =
            analysis::spread::spread(&graph, selector.as_ref(), None, None).expect("spread");
        assert_eq!(
            arrivals(&spread, "a"),
            vec![pair("smb2", "/srv/share/w"), pair("ftp", "/srv/share/w")],
            "{selector:?}"
        );
    }

    // Two hosts, each entered by one protocol and each running it: both are patient zero.
    let mut incident = Incident::new(&["a", "b"]);
    for (host, ip, protocol) in [("a", "203.0.113.5", "smb2"), ("b", "198.51.100.7", "ftp")] {
        let sender = incident.remote(host, ip, None);
        let file = incident.file(host, 1, "/srv/w", Some("ab"));
        let run = incident.process(host, 10);
        incident.edge(host, 10, EdgeKind::ReceivedFrom, &sender, &file, &[("protocol", protocol)]);
        incident.edge(host, 20, EdgeKind::Exec, &file, &run, &[]);
    }
    let spread = analysis::spread::spread(&incident.graph(), None, None, None).expect("spread");
    assert_eq!(spread.patient_zeros, vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(arrivals(&spread, "a"), vec![pair("smb2", "/srv/w")]);
    assert_eq!(arrivals(&spread, "b"), vec![pair("ftp", "/srv/w")]);
}
