//! The analysis over the fleet's central database: simulated incidents loaded both ways -
//! the dumps read directly, and the same dumps imported into PostgreSQL with
//! `vtrail-collect import` - give the same `--json` answers to trace, spread and rules, and
//! `spread --db` recovers patient zero, the propagation tree and the carriers of the
//! simulation's truth.
//! No eBPF: runs as root only because the private PostgreSQL is started as `postgres`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tests::collector::{analysis_bin, collect_bin};
use tests::fleet::{comparable, run_ok};
use tests::peers::postgres::Postgres;


/// Seeds and shapes of the incidents compared.
const INCIDENTS: [(u64, &str); 4] = [(1, "scale-free"), (2, "small-world"), (7, "scale-free"), (11, "small-world")];
const HOSTS: &str = "30";
/// Background noise around the incident, so that the walk has something to leave out.
const EDGES: &str = "30000";

/// A fresh database on the cluster, and its URL.
fn database(pg: &Postgres, name: &str) -> String {
    pg.query(&format!("CREATE DATABASE {name}"));
    pg.url().replace("/postgres", &format!("/{name}"))
}

fn answer(question: &[String], input: &[String]) -> Value {
    let out = run_ok(Command::new(analysis_bin()).args(question).arg("--json").args(input));
    serde_json::from_str(&out).expect("--json is JSON")
}


/// (host, parent host or none, infection time) of every host `keep` selects, by host.
fn tree(
    hosts: &Value,
    id_key: &str,
    keep: impl Fn(&Value) -> bool,
    parent_of: impl Fn(&Value) -> Value,
) -> Vec<(String, Value, Value)> {
    let mut tree: Vec<_> = hosts
        .as_array()
        .expect("hosts")
        .iter()
        .filter(|h| keep(h))
        .map(|h| (h[id_key].as_str().unwrap_or_default().to_owned(), parent_of(h), h["infected_at_ns"].clone()))
        .collect();
    tree.sort_by(|a, b| a.0.cmp(&b.0));
    tree
}

fn check_against_truth(truth: &Value, spread: &Value, what: &str) {
    let spread = &spread["spread"];
    assert_eq!(spread["patient_zeros"], truth["patient_zero"], "{what}: patient zero");
    let infected = |h: &Value| h["infected"] == Value::Bool(true);
    let parent_host = |h: &Value| if h["parent_kind"] == "host" { h["parent"].clone() } else { Value::Null };
    let found = tree(&spread["hosts"], "host", infected, parent_host);
    let expected = tree(&truth["hosts"], "id", infected, |h| h["parent"].clone());
    assert!(expected.len() >= 2, "{what}: the worm should spread");
    assert_eq!(found, expected, "{what}: the propagation tree");
    // Carriers (received the worm, never ran it) and the sender of their earliest copy.
    let found = tree(&spread["hosts"], "host", |h| !infected(h), parent_host);
    let expected = tree(&truth["hosts"], "id", |h| h["carrier"] == Value::Bool(true), |h| h["parent"].clone());
    assert!(!expected.is_empty(), "{what}: some neighbours are not vulnerable");
    assert_eq!(found, expected, "{what}: the carriers");
}

fn simulate(seed: u64, shape: &str, out: &Path) -> (Value, Vec<String>) {
    run_ok(
        Command::new(analysis_bin())
            .args(["simulate", "--seed", &seed.to_string(), "--hosts", HOSTS, "--shape", shape, "--edges", EDGES, "--out"])
            .arg(out),
    );
    let truth: Value = serde_json::from_slice(&std::fs::read(out.join("truth.json")).unwrap()).unwrap();
    let dumps = truth["dumps"].as_array().unwrap().iter().map(|d| out.join(d.as_str().unwrap()).display().to_string()).collect();
    (truth, dumps)
}

#[test]
fn the_central_database_answers_as_the_dumps_do() {
    let dir = tests::sensor::temp_dir("fleet-analysis");
    let pg = Postgres::start(&dir, "analysis");
    for (i, (seed, shape)) in INCIDENTS.into_iter().enumerate() {
        let (truth, dumps) = simulate(seed, shape, &dir.join(format!("incident-{i}")));
        let url = database(&pg, &format!("incident_{i}"));
        run_ok(Command::new(collect_bin()).args(["import", "--db", &url]).args(&dumps));
        let db = vec!["--db".to_owned(), url];

        let sha = truth["worm_sha256"].as_str().unwrap().to_owned();
        let by_hash = ["--sha256".to_owned(), sha];
        let zero = truth["patient_zero"][0].as_str().unwrap().to_owned();
        let copy_on_zero: Vec<String> =
            ["trace", "--path", "/var/tmp/.sysupdate", "--host", &zero].iter().map(|a| a.to_string()).collect();
        let questions: Vec<Vec<String>> = vec![
            [&["trace".to_owned()][..], &by_hash].concat(),
            copy_on_zero,
            vec!["spread".to_owned()],
            [&["spread".to_owned()][..], &by_hash].concat(),
            vec!["rules".to_owned()],
            [&["rules".to_owned()][..], &by_hash].concat(),
        ];
        for question in &questions {
            let what = format!("seed {seed} {shape}: {}", question.join(" "));
            let from_dumps = answer(question, &dumps);
            let from_db = answer(question, &db);
            assert_eq!(from_db["load"]["database"]["rounds"].as_u64().map(|r| r > 0), Some(true), "{what}: walked");
            assert_eq!(comparable(from_db.clone()), comparable(from_dumps), "{what}: the database's answer differs");
            if question[0] == "spread" {
                check_against_truth(&truth, &from_db, &what);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `vtrail-analysis` expecting failure with `status`; returns standard error.
fn fails(args: &[&str], status: i32) -> String {
    let out = Command::new(analysis_bin()).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(status), "{args:?}: {stderr}");
    stderr
}

#[test]
fn database_errors_say_what_to_do() {
    let dir = tests::sensor::temp_dir("fleet-analysis-errors");
    let pg = Postgres::start(&dir, "errors");

    let closed = format!("postgres://vtrail@127.0.0.1:{}/postgres", tests::peers::free_port());
    let stderr = fails(&["spread", "--db", &closed], 2);
    assert!(stderr.contains("cannot connect") && stderr.contains("is PostgreSQL running"), "{stderr}");

    let stderr = fails(&["spread", "--db", "postgres://vtrail@127.0.0.1:notaport/x"], 2);
    assert!(stderr.contains("not a PostgreSQL URL"), "{stderr}");

    let stderr = fails(&["spread", "--db", &pg.url()], 2);
    assert!(stderr.contains("no vtrail tables") && stderr.contains("vtrail-collect migrate"), "{stderr}");

    let secret = pg.url().replace("vtrail@", "vtrail:hunter2@");
    let stderr = fails(&["rules", "--db", &secret], 2);
    assert!(!stderr.contains("hunter2") && stderr.contains("vtrail:***@"), "the password is not shown: {stderr}");

    let url = database(&pg, "migrated");
    run_ok(Command::new(collect_bin()).args(["migrate", "--db", &url]));
    let stderr = fails(&["trace", "--path", "/srv/nothing-here", "--db", &url], 1);
    assert!(stderr.contains("not in the graph"), "{stderr}");

    let stderr = fails(&["trace", "--path", "/x", "--db", &url, "some.jsonl"], 2);
    assert!(stderr.contains("cannot be used with"), "--db and dumps together are refused: {stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
