//! Bad input gets a clear message, and partial input gives partial results that say what
//! is missing: unknown schema versions, cut dumps, missing hosts, a flagged file that is
//! not in the graph, clock skew beyond the allowance, foreign files, and sled databases.

mod common;

use std::io::Write;

use analysis::error::{LoadError, QueryError};
use analysis::load::{LoadOptions, load};
use analysis::select::Selector;
use analysis::simulate::Shape;
use analysis::time::NS_PER_SEC;
use sensor_common::graph::{
    DumpHeader, Edge, EdgeData, EdgeKind, ExecAttrs,
    database::{ChunkKey, DATABASE_VERSION}, HostInfo, Node, NodeData, Protocol, SCHEMA_VERSION, trees,
};

fn options() -> LoadOptions {
    LoadOptions {
        skew_allowance_ns: 2 * NS_PER_SEC,
    }
}

#[test]
fn unknown_schema_version_is_refused_by_name() {
    let (dir, _truth, inputs) = common::simulated("version", 1, 10, Shape::ScaleFree, false);
    let text = std::fs::read_to_string(&inputs[0]).unwrap();
    let future = text.replacen(
        &format!("\"schema_version\":{SCHEMA_VERSION}"),
        "\"schema_version\":99",
        1,
    );
    let path = dir.path().join("future.jsonl");
    std::fs::write(&path, future).unwrap();
    let error = load(&[inputs[1].clone(), path.clone()], options())
        .err()
        .expect("refused");
    assert!(
        matches!(error, LoadError::UnknownSchemaVersion { found: 99, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("future.jsonl")
            && message.contains("99")
            && message.contains(&SCHEMA_VERSION.to_string()),
        "{message}"
    );
}

/// A dump a schema-1 sensor wrote (its exact shape: `time` on transfers, `0755` modes)
/// loads, converted, and answers like the same records written today.
#[test]
fn version_1_dumps_and_databases_are_read() {
    let dir = common::TempDir::new("v1");
    let lines = [
        r#"{"format":"vtrail-graph","schema_version":1,"host":{"id":"disk-v1","hostname":"old","disk_ids":["disk-v1"]},"exported_ns":100}"#,
        r#"{"node":{"id":"remote:192.0.2.9","host":"disk-v1","first_seen_ns":1,"kind":"remote","ip":"192.0.2.9","node_ids":[]}}"#,
        r#"{"node":{"id":"file:disk-v1:1:2","host":"disk-v1","first_seen_ns":1,"kind":"file","dev":1,"ino":2,"paths":["/srv/x.sh"],"untrusted":true,"executable":true}}"#,
        r#"{"node":{"id":"proc:disk-v1:7:1","host":"disk-v1","first_seen_ns":1,"kind":"process","tgid":7,"start_ticks":1,"exe":"/srv/x.sh","comm":"x.sh","uid":0,"tainted":true}}"#,
        r#"{"edge":{"ts_ns":20000000000,"kind":"received_from","src":"remote:192.0.2.9","dst":"file:disk-v1:1:2","host":"disk-v1","attrs":{"inferred":false,"ip":"192.0.2.9","name":"x.sh","path":"/srv/x.sh","port":50000,"protocol":"smb2","server":"10.0.0.1","server_port":445,"time":20000000000,"verb":"create"}}}"#,
        r#"{"edge":{"ts_ns":25000000000,"kind":"chmod","src":"proc:disk-v1:7:1","dst":"file:disk-v1:1:2","host":"disk-v1","attrs":{"executable":true,"mode":"0755","path":"/srv/x.sh"}}}"#,
        r#"{"edge":{"ts_ns":30000000000,"kind":"exec","src":"file:disk-v1:1:2","dst":"proc:disk-v1:7:1","host":"disk-v1","attrs":{"path":"/srv/x.sh","taint_reason":"exec_untrusted","uid":0}}}"#,
    ];
    let dump = dir.path().join("v1.jsonl");
    std::fs::write(&dump, lines.join("\n") + "\n").unwrap();
    let (graph, report) = load(&[dump], options()).expect("a version-1 dump loads");
    assert!(!report.partial, "{:?}", report.inputs[0].damage());
    assert_eq!(report.edges, 3);
    let trace = analysis::trace::trace(&graph, &Selector::Path("/srv/x.sh".into()), None).expect("trace");
    let entry = trace.backward.entry_points[0].transfer.as_ref().unwrap();
    assert_eq!((entry.from_ip.as_str(), entry.protocol, entry.name_as_sent.as_deref()), ("192.0.2.9", Some(Protocol::Smb2), Some("x.sh")));

    let db_dir = dir.path().join("db");
    write_sled(&db_dir, 1);
    let (_, report) = load(&[db_dir], options()).expect("a version-1 database loads");
    assert_eq!((report.edges, report.partial), (2, false));
}

#[test]
fn foreign_and_empty_files_are_not_dumps() {
    let dir = common::TempDir::new("foreign");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    assert!(matches!(
        load(&[empty], options()),
        Err(LoadError::Empty { .. })
    ));
    let csv = dir.path().join("data.csv");
    std::fs::write(&csv, "a,b,c\n1,2,3\n").unwrap();
    let error = load(&[csv], options()).err().expect("refused");
    assert!(matches!(error, LoadError::NotADump { .. }), "{error:?}");
    let other = dir.path().join("other.jsonl");
    std::fs::write(
        &other,
        "{\"format\":\"something-else\",\"schema_version\":1}\n",
    )
    .unwrap();
    assert!(
        load(&[other], options())
            .err()
            .unwrap()
            .to_string()
            .contains("something-else")
    );
    assert!(matches!(
        load(&[dir.path().join("nope.jsonl")], options()),
        Err(LoadError::Io { .. })
    ));
    assert!(matches!(load(&[], options()), Err(LoadError::NoInputs)));
    // A binary file has no newline: it must not be read whole as one line.
    let blob = dir.path().join("blob.jsonl");
    std::fs::write(&blob, vec![b'x'; 3 << 20]).unwrap();
    let error = load(&[blob], options()).err().expect("refused");
    assert!(error.to_string().contains("longer than"), "{error}");
    // A directory that is not a database must not become one.
    assert!(matches!(
        load(&[dir.path().to_owned()], options()),
        Err(LoadError::NotADatabase { .. })
    ));
}

#[test]
fn truncated_dump_loads_what_is_valid_and_says_what_was_lost() {
    let (dir, truth, inputs) = common::simulated("truncated", 2, 20, Shape::ScaleFree, false);
    let text = std::fs::read_to_string(&inputs[0]).unwrap();
    let lines = text.lines().count();
    let cut = &text[..text.len() - 30]; // into the middle of the last line
    let path = dir.path().join("cut.jsonl");
    std::fs::write(&path, cut).unwrap();
    let (graph, report) = load(&[path], options()).expect("partial load");
    let summary = &report.inputs[0];
    let message = summary.truncated.as_deref().expect("truncation reported");
    assert!(message.contains(&format!("line {lines}")), "{message}");
    assert_eq!(
        summary.nodes + summary.edges + 1,
        lines as u64 - 1,
        "every whole line loaded"
    );
    assert!(graph.edge_count() > 0);
    assert!(report.warnings.iter().any(|w| w.contains("truncated")));
    let _ = truth;

    // A bad line in the middle is skipped and counted, the rest still loads.
    let mut broken: Vec<&str> = text.lines().collect();
    broken[3] = "{\"edge\": not json";
    let path = dir.path().join("bad-line.jsonl");
    std::fs::write(&path, broken.join("\n") + "\n").unwrap();
    let (_, report) = load(&[path], options()).expect("load with a bad line");
    assert_eq!(report.inputs[0].bad_records, 1);
    assert_eq!(report.inputs[0].first_bad_lines, vec![4]);
    assert!(report.inputs[0].truncated.is_none());
}

#[test]
fn truncated_gzip_dump_loads_the_part_before_the_cut() {
    let (dir, _truth, inputs) = common::simulated("gzip-cut", 2, 10, Shape::ScaleFree, true);
    let bytes = std::fs::read(&inputs[0]).unwrap();
    let path = dir.path().join("cut.jsonl.gz");
    std::fs::write(&path, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (_graph, report) = load(&[path], options()).expect("partial load");
    assert!(
        report.inputs[0].truncated.is_some(),
        "{:?}",
        report.inputs[0]
    );
    assert!(report.inputs[0].nodes > 0);
}

#[test]
fn missing_host_is_named_and_spread_is_partial() {
    let (_dir, truth, inputs) = common::simulated("missing", 3, 40, Shape::ScaleFree, false);
    // Leave out patient zero's dump.
    let zero = truth
        .hosts
        .iter()
        .find(|h| h.id == truth.patient_zero[0])
        .unwrap();
    let kept: Vec<_> = inputs
        .iter()
        .filter(|p| !p.ends_with(format!("{}.jsonl", zero.hostname)))
        .cloned()
        .collect();
    assert_eq!(kept.len(), inputs.len() - 1);
    let (graph, report) = load(&kept, options()).expect("load");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("missing host") && w.contains(&zero.id)),
        "{:#?}",
        report.warnings
    );
    let spread = analysis::spread::spread(&graph, None, None, None).expect("partial spread");
    // The hosts patient zero infected are now roots, infected from a host that is not
    // loaded; the carriers it made got the worm from that host too, and are no patient zero.
    let children: Vec<&analysis::simulate::TruthHost> = truth
        .hosts
        .iter()
        .filter(|h| h.parent.as_deref() == Some(&zero.id))
        .collect();
    assert!(children.iter().any(|c| c.infected));
    for child in children {
        let row = spread
            .hosts
            .iter()
            .find(|h| h.host == child.id)
            .expect("child still in the tree");
        assert_eq!(row.infected, child.infected, "{}", child.id);
        assert_eq!(row.parent_kind, "missing-host");
        assert!(row.parent.as_deref().unwrap().contains(&zero.id));
        assert_eq!(spread.patient_zeros.contains(&child.id), child.infected, "{}", child.id);
    }
    assert!(spread.warnings.iter().any(|w| w.contains("not loaded")));
}

#[test]
fn unknown_host_and_file_not_in_graph_are_clear() {
    let (_dir, _truth, inputs) = common::simulated("notfound", 4, 10, Shape::SmallWorld, false);
    let (graph, _) = load(&inputs, options()).expect("load");
    let error = analysis::trace::trace(&graph, &Selector::Path("/no/such/file".into()), None)
        .expect_err("not found");
    assert!(matches!(error, QueryError::FileNotInGraph { .. }));
    let message = error.to_string();
    assert!(
        message.contains("/no/such/file") && message.contains("not in the graph"),
        "{message}"
    );
    let error = analysis::trace::trace(&graph, &Selector::Sha256("00".repeat(32)), None)
        .expect_err("not found");
    assert!(matches!(error, QueryError::FileNotInGraph { .. }));
    let error = analysis::select::resolve_host(&graph, "no-such-host").expect_err("unknown host");
    assert!(error.to_string().contains("no-such-host"));
    let remote = graph.lookup("remote:198.51.100.20").expect("a remote node");
    let error = analysis::trace::trace(&graph, &Selector::Node(graph.id(remote).to_owned()), None)
        .expect_err("not traceable");
    assert!(matches!(error, QueryError::NotTraceable { .. }));
}

#[test]
fn skew_beyond_the_allowance_is_reported_not_silently_wrong() {
    let (_dir, truth, inputs) = common::simulated("skew", 1, 30, Shape::ScaleFree, false);
    // Clocks are up to 0.8 s apart in the simulation: a 1 ms allowance pairs almost nothing.
    let (graph, _) = load(
        &inputs,
        LoadOptions {
            skew_allowance_ns: NS_PER_SEC / 1000,
        },
    )
    .expect("load");
    let spread = analysis::spread::spread(&graph, None, None, None).expect("spread");
    assert!(
        spread
            .warnings
            .iter()
            .any(|w| w.contains("--skew-allowance")),
        "{:#?}",
        spread.warnings
    );
    assert!(spread.topology.hosts_infected < truth.infected);
}

fn write_sled(dir: &std::path::Path, version: u32) -> HostInfo {
    let db = sled::open(dir).unwrap();
    let meta = db.open_tree(trees::META).unwrap();
    let host = HostInfo {
        id: "disk-sled".into(),
        hostname: "nas".into(),
        disk_ids: vec!["disk-sled".into()],
    };
    meta.insert("schema_version", &version.to_be_bytes())
        .unwrap();
    meta.insert("host", serde_json::to_vec(&host).unwrap())
        .unwrap();
    let nodes = db.open_tree(trees::NODES).unwrap();
    let file = Node {
        id: "file:disk-sled:1:2".into(),
        host: host.id.clone(),
        first_seen_ns: 10,
        data: NodeData::File {
            dev: 1,
            ino: 2,
            paths: vec!["/srv/x.sh".into()],
            untrusted: true,
            executable: true,
            sha256: Some("ab".repeat(32)),
            malicious: false,
            scan: None,
        },
    };
    let proc = Node {
        id: "proc:disk-sled:7:1".into(),
        host: host.id.clone(),
        first_seen_ns: 30,
        data: NodeData::Process {
            tgid: 7,
            start_ticks: 1,
            exe: "/srv/x.sh".into(),
            comm: "x.sh".into(),
            uid: 0,
            tainted: true,
        },
    };
    let remote = Node {
        id: "remote:192.0.2.9".into(),
        host: host.id.clone(),
        first_seen_ns: 5,
        data: NodeData::Remote {
            ip: "192.0.2.9".into(),
            node_ids: vec![],
        },
    };
    for node in [&file, &proc, &remote] {
        nodes
            .insert(node.id.as_bytes(), serde_json::to_vec(node).unwrap())
            .unwrap();
    }
    let edges = db.open_tree(trees::EDGES).unwrap();
    let edge = |ts: u64, kind, src: &str, dst: &str, attrs: &[(&str, &str)]| Edge {
        ts_ns: ts,
        src: src.into(),
        dst: dst.into(),
        host: host.id.clone(),
        data: common::edge_data(kind, attrs),
    };
    let records = [
        edge(
            20,
            EdgeKind::ReceivedFrom,
            &remote.id,
            &file.id,
            &[("protocol", "smb2"), ("name", "x.sh")],
        ),
        edge(30, EdgeKind::Exec, &file.id, &proc.id, &[]),
    ];
    if version < 3 {
        for (seq, e) in records.iter().enumerate() {
            let mut key = e.ts_ns.to_be_bytes().to_vec();
            key.extend_from_slice(&(seq as u64).to_be_bytes());
            edges.insert(key, serde_json::to_vec(e).unwrap()).unwrap();
        }
    } else {
        // As the sensor writes them: JSON lines in chunks (here one edge in the first,
        // the rest in the second, whose key sorts first).
        let chunks = db.open_tree(trees::EDGE_CHUNKS).unwrap();
        for (chunk, part) in [&records[..1], &records[1..]].into_iter().enumerate() {
            let mut value = Vec::new();
            for e in part {
                value.extend_from_slice(&serde_json::to_vec(e).unwrap());
                value.push(b'\n');
            }
            let key = ChunkKey {
                min_ts_ns: part[0].ts_ns - chunk as u64 * 15,
                chunk: chunk as u64,
                edges: part.len() as u32,
            };
            chunks.insert(key.to_bytes(), value).unwrap();
        }
    }
    db.flush().unwrap();
    host
}

#[test]
fn reads_a_sensor_database_and_merges_it_with_its_own_dump() {
    let dir = common::TempDir::new("sled");
    let db_dir = dir.path().join("db");
    let host = write_sled(&db_dir, DATABASE_VERSION);
    // The same host's records exported as a dump too: merged, not doubled.
    let dump = dir.path().join("nas.jsonl");
    {
        let mut out = std::fs::File::create(&dump).unwrap();
        let header = DumpHeader {
            format: "vtrail-graph".into(),
            schema_version: SCHEMA_VERSION,
            host: host.clone(),
            exported_ns: 100,
            since_ns: None,
        };
        writeln!(out, "{}", serde_json::to_string(&header).unwrap()).unwrap();
        let edge = Edge {
            ts_ns: 30,
            src: "file:disk-sled:1:2".into(),
            dst: "proc:disk-sled:7:1".into(),
            host: host.id.clone(),
            data: EdgeData::Exec(ExecAttrs::default()),
        };
        writeln!(
            out,
            "{}",
            serde_json::to_string(&sensor_common::graph::DumpLine::Edge(edge)).unwrap()
        )
        .unwrap();
    }
    let (graph, report) = load(&[db_dir.clone(), dump], options()).expect("load database");
    assert_eq!(report.inputs[0].format, "database");
    assert_eq!(report.edges, 2);
    assert_eq!(report.duplicate_edges, 1);
    let spread = analysis::spread::spread(&graph, None, None, None).expect("spread");
    assert_eq!(spread.patient_zeros, vec!["disk-sled".to_owned()]);
    let trace =
        analysis::trace::trace(&graph, &Selector::Path("/srv/x.sh".into()), None).expect("trace");
    let entry = trace.backward.entry_points[0].transfer.as_ref().unwrap();
    assert_eq!(
        (entry.from_ip.as_str(), entry.protocol),
        ("192.0.2.9", Some(Protocol::Smb2))
    );

    // A database of version 2 (one record per edge) reads the same.
    let v2 = dir.path().join("v2-db");
    write_sled(&v2, 2);
    let (graph_v2, report_v2) = load(&[v2], options()).expect("load version 2");
    assert_eq!(report_v2.edges, 2);
    assert_eq!(graph_v2.edge_count(), graph.edge_count());

    let future = dir.path().join("future-db");
    write_sled(&future, DATABASE_VERSION + 1);
    assert!(matches!(
        load(&[future], options()),
        Err(LoadError::UnknownDatabaseVersion { .. })
    ));
}
