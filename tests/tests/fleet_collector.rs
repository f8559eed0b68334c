//! The collector (issue 12) against a real nats-server with JetStream and a real
//! PostgreSQL: migrations, a collector killed mid-batch, two collectors on one consumer,
//! bad input kept as dead letters, the permissions `nats-config` writes, and the import of
//! simulated dumps. No eBPF, no root needed beyond what the peers need to start.
use std::{
    collections::BTreeSet,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use async_nats::jetstream;
use sensor_common::graph::fleet::{BatchHeader, DEFAULT_SUBJECT_PREFIX, FleetItem, FleetRecord, MAX_MESSAGE_BYTES, encode_batch, graph_subject, inbox_prefix};
use tests::collector::*;
use tests::peers::{nats::Nats, postgres::Postgres};
use tests::sensor::temp_dir;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn collect(args: &[&str]) -> std::process::Output {
    Command::new(collect_bin()).args(args).env("RUST_LOG", "warn").output().expect("run vtrail-collect")
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Every relation of the public schema with its column count: what a migration changes.
fn schema_snapshot(pg: &Postgres) -> String {
    pg.query(
        "SELECT string_agg(c.relname || ':' || c.relkind::text || ':' || (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0), ',' ORDER BY c.relname) \
         FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace",
    ) + "|" + &pg.query("SELECT string_agg(version || '=' || name, ',' ORDER BY version) FROM vtrail_migrations")
}

#[test]
fn migrating_twice_changes_nothing_and_a_newer_database_is_refused() {
    let dir = temp_dir("fleet-migrate");
    let pg = Postgres::start(&dir, "migrate");
    let first = collect(&["migrate", "--db", &pg.url()]);
    assert!(first.status.success(), "{}", text(&first));
    let latest = collector::db::migrate::latest_version();
    assert!(text(&first).contains(&format!("schema version 0 -> {latest}")), "{}", text(&first));
    let before = schema_snapshot(&pg);
    let second = collect(&["migrate", "--db", &pg.url()]);
    assert!(second.status.success(), "{}", text(&second));
    assert!(text(&second).contains("up to date"), "{}", text(&second));
    assert_eq!(schema_snapshot(&pg), before);

    pg.query("INSERT INTO vtrail_migrations (version, name) VALUES (99, 'from the future')");
    let refused = collect(&["migrate", "--db", &pg.url()]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains(&format!("schema version 99, newer than this vtrail-collect knows ({latest})")), "{}", text(&refused));
    // The daemon refuses it too, at once, rather than waiting for the database to change.
    let run = Command::new(collect_bin())
        .args(["run", "--nats", "nats://127.0.0.1:1", "--db", &pg.url()])
        .output()
        .expect("run vtrail-collect run");
    assert!(!run.status.success() && text(&run).contains("newer than this vtrail-collect knows"), "{}", text(&run));
}

const HOSTS: [&str; 3] = ["disk-fleet-a", "disk-fleet-b", "disk-fleet-c"];
/// 3 x 33,334 = 100,002 records.
const PER_HOST: u64 = 33_334;

/// Publishes PER_HOST edges for each of HOSTS; returns the number of messages.
fn publish_fleet(nats: &Nats) -> usize {
    runtime().block_on(async {
        let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        create_stream(&js).await;
        let mut messages = 0;
        for host in HOSTS {
            messages += publish_records(&js, host, &edge_records(host, 1, PER_HOST)).await;
        }
        messages
    })
}

fn stored_edges(pg: &Postgres) -> u64 {
    pg.query("SELECT count(*) FROM edges").parse().unwrap()
}

/// Per host: count, distinct sequences, min, max - each must be N, N, 1, N.
fn assert_every_record_once(pg: &Postgres) {
    let rows = pg.query("SELECT host, count(*), count(DISTINCT seq), min(seq), max(seq) FROM edges GROUP BY host ORDER BY host");
    let expected: Vec<String> = HOSTS.iter().map(|h| format!("{h}|{PER_HOST}|{PER_HOST}|1|{PER_HOST}")).collect();
    assert_eq!(rows.lines().collect::<Vec<_>>(), expected);
    let last_seq = pg.query("SELECT string_agg(last_seq::text, ',' ORDER BY host) FROM hosts");
    assert_eq!(last_seq, vec![PER_HOST.to_string(); HOSTS.len()].join(","));
}

#[test]
fn a_collector_killed_mid_batch_leaves_no_gap_and_no_duplicate() {
    let dir = temp_dir("fleet-sigkill");
    let pg = Postgres::start(&dir, "sigkill");
    let nats = Nats::start(&dir, "sigkill", "");
    let messages = publish_fleet(&nats);
    let total = HOSTS.len() as u64 * PER_HOST;
    // One message per transaction, redelivery after 2 s: many commits to land a kill between.
    let slow = ["--batch-messages", "1", "--linger-ms", "0", "--ack-wait-secs", "2"];
    let mut first = Collector::start(&dir, "first", &nats.url(), &pg.url(), &slow);
    wait_until(Duration::from_secs(60), "the first rows", || pg.query("SELECT to_regclass('edges') IS NOT NULL") == "t" && stored_edges(&pg) > 0, || first.log());
    first.kill();
    let at_kill = stored_edges(&pg);
    assert!(at_kill < total, "the collector stored everything ({at_kill}) before it was killed: the kill was not mid-way");

    let mut second = Collector::start(&dir, "second", &nats.url(), &pg.url(), &["--ack-wait-secs", "2"]);
    wait_until(Duration::from_secs(120), "all records stored", || stored_edges(&pg) >= total, || second.log());
    // Past the ack wait: anything the first collector left unacknowledged comes again.
    std::thread::sleep(Duration::from_secs(4));
    assert_every_record_once(&pg);
    let status = second.terminate(Duration::from_secs(30));
    assert!(status.success(), "SIGTERM must end the collector with status 0: {status:?}\n{}", second.log());
    let backlog = collect(&["status", "--db", &pg.url(), "--nats", &nats.url(), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&backlog.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&backlog)));
    assert_eq!(report["consumer"]["pending"], 0, "{report}");
    assert_eq!(report["consumer"]["ack_pending"], 0, "{report}");
    assert_eq!(report["hosts"].as_array().unwrap().len(), HOSTS.len(), "{report}");
    assert!(messages > 3, "the records were sent in {messages} messages");
}

/// The `N messages:` of a collector's closing summary.
fn messages_handled(log: &str) -> u64 {
    log.lines()
        .rev()
        .find_map(|l| l.split_once(" messages: ")?.0.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no summary in the log:\n{log}"))
}

#[test]
fn two_collectors_on_one_consumer_share_the_work_and_store_each_record_once() {
    let dir = temp_dir("fleet-two");
    let pg = Postgres::start(&dir, "two");
    let nats = Nats::start(&dir, "two", "");
    let messages = publish_fleet(&nats) as u64;
    let args = ["--batch-messages", "2", "--linger-ms", "0"];
    let mut a = Collector::start(&dir, "a", &nats.url(), &pg.url(), &args);
    let mut b = Collector::start(&dir, "b", &nats.url(), &pg.url(), &args);
    let total = HOSTS.len() as u64 * PER_HOST;
    wait_until(Duration::from_secs(120), "all records stored", || pg.query("SELECT to_regclass('edges') IS NOT NULL") == "t" && stored_edges(&pg) >= total, || format!("{}\n{}", a.log(), b.log()));
    assert_every_record_once(&pg);
    assert!(a.terminate(Duration::from_secs(30)).success(), "{}", a.log());
    assert!(b.terminate(Duration::from_secs(30)).success(), "{}", b.log());
    let (by_a, by_b) = (messages_handled(&a.log()), messages_handled(&b.log()));
    assert!(by_a > 0 && by_b > 0, "one collector did all the work: {by_a} and {by_b} of {messages} messages");
    assert!(by_a + by_b >= messages, "{by_a} + {by_b} messages handled, {messages} sent");
}

fn batch_body(host: &str, records: &[FleetRecord]) -> Vec<u8> {
    let lines: Vec<Vec<u8>> = records.iter().map(|r| serde_json::to_vec(r).unwrap()).collect();
    let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    let header = BatchHeader::new(host, records[0].seq, records.last().unwrap().seq, records.len() as u64);
    encode_batch(&header, &refs)
}

#[test]
fn bad_input_is_kept_as_dead_letters_and_good_batches_after_it_are_stored() {
    let dir = temp_dir("fleet-bad");
    let pg = Postgres::start(&dir, "bad");
    // A server that lets a batch larger than the collector takes through to it.
    let nats = Nats::start(&dir, "bad", "max_payload: 16MB");
    let host = "disk-bad-a";
    let subject = graph_subject(DEFAULT_SUBJECT_PREFIX, host);
    let mut collector = Collector::start(&dir, "bad", &nats.url(), &pg.url(), &[]);
    runtime().block_on(async {
        let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        create_stream(&js).await;
        let good = batch_body(host, &edge_records(host, 1, 10));
        let v9 = String::from_utf8(good.clone()).unwrap().replacen("\"schema_version\":2", "\"schema_version\":9", 1);
        publish_raw(&js, &subject, v9.into_bytes()).await;
        publish_raw(&js, &subject, good[..good.len() - 20].to_vec()).await; // cut inside the last record
        let whole_lines = good.iter().rposition(|&b| b == b'\n').unwrap();
        publish_raw(&js, &subject, good[..whole_lines].to_vec()).await; // cut after a record
        let mut oversized = good.clone();
        oversized.resize(MAX_MESSAGE_BYTES + 1024, b' ');
        publish_raw(&js, &subject, oversized).await;
        publish_raw(&js, &subject, batch_body("disk-bad-b", &edge_records("disk-bad-b", 1, 3))).await;
        publish_raw(&js, &subject, b"\x00\xffnot a batch at all".to_vec()).await;
        // A good batch with one record whose time does not fit a bigint.
        let mut records = edge_records(host, 11, 5);
        if let FleetItem::Edge(edge) = &mut records[2].item {
            edge.ts_ns = u64::MAX;
        }
        publish_records(&js, host, &records).await;
        // And after all that, a good batch.
        publish_records(&js, host, &edge_records(host, 16, 10)).await;
    });
    wait_until(Duration::from_secs(60), "the good batches stored", || pg.query("SELECT to_regclass('edges') IS NOT NULL") == "t" && stored_edges(&pg) >= 14, || collector.log());
    wait_until(Duration::from_secs(30), "all dead letters", || pg.query("SELECT count(*) FROM dead_letters") == "7", || collector.log());
    assert_eq!(pg.query("SELECT string_agg(seq::text, ',' ORDER BY seq) FROM edges"), "11,12,14,15,16,17,18,19,20,21,22,23,24,25");
    let reasons: Vec<String> = pg.query("SELECT reason FROM dead_letters ORDER BY id").lines().map(str::to_owned).collect();
    assert_eq!(
        reasons,
        ["unknown_schema_version", "bad_record", "record_count_mismatch", "oversized", "host_subject_mismatch", "bad_header", "ts_out_of_range"]
    );
    assert_eq!(pg.query("SELECT length(payload) FROM dead_letters WHERE reason = 'oversized'"), "65536");
    assert_eq!(pg.query("SELECT DISTINCT host FROM dead_letters"), host);
    assert!(pg.query("SELECT detail FROM dead_letters WHERE reason = 'ts_out_of_range'").contains("seq 13"));
    assert!(collector.exited().is_none(), "the collector stopped:\n{}", collector.log());
    assert!(collector.log().contains("dead letter from vtrail.graph.disk-bad-a: oversized"), "{}", collector.log());
    let status = collect(&["status", "--db", &pg.url()]);
    assert!(text(&status).contains("dead letters: 7") && text(&status).contains("oversized: 1"), "{}", text(&status));

    // A day partition dropped (retention) while the collector runs: it is made again.
    let partition = pg.query("SELECT DISTINCT tableoid::regclass FROM edges");
    pg.query(&format!("DROP TABLE {partition}"));
    runtime().block_on(async {
        let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        publish_records(&js, host, &edge_records(host, 26, 5)).await;
    });
    wait_until(Duration::from_secs(30), "the batch after the drop stored", || stored_edges(&pg) == 5, || collector.log());
    assert_eq!(pg.query("SELECT count(*) FROM dead_letters"), "7", "{}", collector.log());
}

#[test]
fn nats_config_lets_a_host_publish_on_its_own_subject_only() {
    let dir = temp_dir("fleet-perms");
    let out = dir.join("nats-config");
    let (host_a, host_b) = ("disk-perm-a", "disk-perm-b");
    let written = collect(&["nats-config", "--out", out.to_str().unwrap(), "--host", host_a, "--host", host_b]);
    assert!(written.status.success(), "{}", text(&written));
    let accounts = std::fs::read_to_string(out.join("accounts.conf")).unwrap();
    let nats = Nats::start(&dir, "perms", &accounts);
    let pg = Postgres::start(&dir, "perms");
    let collector_key = out.join("collector.nk");
    let mut collector = Collector::start(&dir, "perms", &nats.url(), &pg.url(), &["--nkey", collector_key.to_str().unwrap()]);
    runtime().block_on(async {
        let seed = std::fs::read_to_string(out.join(format!("hosts/{host_a}.nk"))).unwrap();
        let (errors, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
            .custom_inbox_prefix(inbox_prefix(host_a))
            .event_callback(move |event| {
                let errors = errors.clone();
                async move {
                    let _ = errors.send(event.to_string());
                }
            })
            .connect(nats.url())
            .await
            .expect("host A's key is accepted");
        let js = jetstream::new(client);
        // The collector creates the stream; wait for it before publishing.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ack = js.publish(graph_subject(DEFAULT_SUBJECT_PREFIX, host_a), batch_body(host_a, &edge_records(host_a, 1, 3)).into()).await.unwrap();
            match ack.await {
                Ok(_) => break,
                Err(error) => assert!(Instant::now() < deadline, "host A could not publish on its own subject: {error}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let foreign = js.publish(graph_subject(DEFAULT_SUBJECT_PREFIX, host_b), batch_body(host_b, &edge_records(host_b, 1, 3)).into()).await.unwrap();
        assert!(foreign.await.is_err(), "host A published on host B's subject");
        let violation = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(event) = seen.recv().await {
                if event.contains("Permissions Violation") && event.contains(&graph_subject(DEFAULT_SUBJECT_PREFIX, host_b)) {
                    return event;
                }
            }
            String::new()
        })
        .await
        .expect("a permissions violation reported by the server");
        assert!(!violation.is_empty());
    });
    wait_until(Duration::from_secs(30), "host A's batch stored", || pg.query("SELECT to_regclass('edges') IS NOT NULL") == "t" && stored_edges(&pg) == 3, || collector.log());
    assert_eq!(pg.query("SELECT DISTINCT host FROM edges"), host_a);
    assert!(collector.exited().is_none(), "{}", collector.log());
}

/// Edge lines, distinct (host, node id) and transfer lines of dumps, counted from the text.
fn dump_counts(paths: &[std::path::PathBuf]) -> (u64, u64, u64) {
    let (mut edges, mut nodes, mut transfers) = (0, BTreeSet::new(), 0);
    for path in paths {
        for line in std::fs::read_to_string(path).unwrap().lines().skip(1) {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if let Some(edge) = value.get("edge") {
                edges += 1;
                transfers += u64::from(matches!(edge["kind"].as_str(), Some("received_from" | "sent_to")));
            } else if let Some(node) = value.get("node") {
                nodes.insert((node["host"].to_string(), node["id"].to_string()));
            }
        }
    }
    (edges, nodes.len() as u64, transfers)
}

fn store_counts(pg: &Postgres) -> (u64, u64, u64) {
    let count = |table: &str| pg.query(&format!("SELECT count(*) FROM {table}")).parse::<u64>().unwrap();
    (count("edges"), count("nodes"), count("transfers"))
}

fn dumps_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut dumps: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "jsonl")).collect();
    dumps.sort();
    dumps
}

#[test]
fn import_backfills_simulated_dumps_once_and_keeps_what_a_cut_dump_holds() {
    let dir = temp_dir("fleet-import");
    let pg = Postgres::start(&dir, "import");
    let sim = dir.join("sim");
    let out = Command::new(analysis_bin())
        .args(["simulate", "--seed", "3", "--hosts", "20", "--out", sim.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let dumps = dumps_in(&sim);
    assert_eq!(dumps.len(), 20);
    let mut args = vec!["import".to_owned(), "--db".into(), pg.url()];
    args.extend(dumps.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let first = collect(&args);
    assert!(first.status.success(), "{}", text(&first));
    let expected = dump_counts(&dumps);
    assert!(expected.0 > 0 && expected.2 > 0, "{expected:?}");
    assert_eq!(store_counts(&pg), expected);
    assert_eq!(pg.query("SELECT count(*) FROM hosts WHERE hostname <> ''"), "20");
    let snapshot = pg.query("SELECT md5(string_agg(host || origin || seq || ts_ns || kind || src || dst || attrs::text, ',' ORDER BY host, origin, seq)) FROM edges");

    let again = collect(&args);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(text(&again).matches("stored 0 new nodes, 0 new edges, 0 new transfers").count(), 20, "{}", text(&again));
    assert_eq!(store_counts(&pg), expected);
    assert_eq!(pg.query("SELECT md5(string_agg(host || origin || seq || ts_ns || kind || src || dst || attrs::text, ',' ORDER BY host, origin, seq)) FROM edges"), snapshot);

    // A dump cut inside its last line (an edge: dumps list nodes first), as an interrupted
    // export leaves it.
    let whole = std::fs::read(dumps.iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap()).unwrap();
    let last_line = whole[..whole.len() - 1].iter().rposition(|&b| b == b'\n').unwrap();
    let cut_at = last_line + (whole.len() - last_line) / 2;
    let cut = dir.join("cut.jsonl");
    std::fs::write(&cut, &whole[..cut_at]).unwrap();
    let complete_lines = whole[..cut_at].iter().rposition(|&b| b == b'\n').unwrap();
    let readable_edges = std::str::from_utf8(&whole[..complete_lines]).unwrap().lines().filter(|l| l.starts_with("{\"edge\"")).count();
    assert!(readable_edges > 0);
    let damaged = collect(&["import", "--db", &pg.url(), cut.to_str().unwrap()]);
    assert_eq!(damaged.status.code(), Some(3), "{}", text(&damaged));
    assert!(text(&damaged).contains("truncated"), "{}", text(&damaged));
    let origin = text(&damaged).split("[import:").nth(1).and_then(|s| s.split(']').next()).map(|h| format!("import:{h}")).expect("origin printed");
    assert_eq!(pg.query(&format!("SELECT count(*) FROM edges WHERE origin = '{origin}'")), readable_edges.to_string());
}
