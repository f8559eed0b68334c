//! The real binary: exit codes, messages on standard error, every output format.

mod common;

use std::process::Command;

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vtrail-analysis"))
}

/// Every output format: the default text, then each flag.
const FORMATS: [Option<&str>; 5] = [
    None,
    Some("--json"),
    Some("--dot"),
    Some("--graphml"),
    Some("--html"),
];

/// Runs `command`, which must exit 0; `what` names it when it does not.
fn succeeds(what: &str, command: &mut Command) -> std::process::Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `rules --json` on `inputs`, parsed.
fn rules_json<I: AsRef<std::ffi::OsStr>>(inputs: impl IntoIterator<Item = I>) -> serde_json::Value {
    let output = binary()
        .args(["rules", "--json"])
        .args(inputs)
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn simulate_then_every_question_in_every_format() {
    let dir = common::TempDir::new("cli");
    let out = dir.path().join("incident");
    let status = binary()
        .args([
            "simulate",
            "--seed",
            "6",
            "--hosts",
            "25",
            "--shape",
            "small-world",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let mut dumps: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    dumps.sort();
    assert_eq!(dumps.len(), 25);
    let truth: analysis::simulate::Truth =
        serde_json::from_slice(&std::fs::read(out.join("truth.json")).unwrap()).unwrap();

    for format in FORMATS {
        let output = succeeds(
            &format!("spread {format:?}"),
            binary().arg("spread").args(format).args(&dumps),
        );
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(
            text.contains(&truth.patient_zero[0]),
            "spread {format:?} names patient zero"
        );
        match format {
            Some("--json") => {
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(value["spread"]["patient_zeros"][0], truth.patient_zero[0]);
            }
            Some("--html") => {
                assert!(text.starts_with("<!DOCTYPE html>") && text.contains("<svg"));
                for external in ["<script", "<link", "@import", "src=", "url("] {
                    assert!(
                        !text.contains(external),
                        "self-contained page, found {external}"
                    );
                }
            }
            Some("--dot") => assert!(text.starts_with("digraph")),
            Some("--graphml") => assert!(text.contains("<graphml")),
            _ => assert!(text.contains("Patient zero")),
        }
    }
    for format in FORMATS {
        succeeds(
            &format!("trace {format:?}"),
            binary()
                .args([
                    "trace",
                    "--sha256",
                    &truth.worm_sha256,
                    "--host",
                    &truth.patient_zero[0],
                ])
                .args(format)
                .args(&dumps),
        );
    }
    let output = binary()
        .args(["rules", "--only", "block"])
        .args(&dumps)
        .output()
        .unwrap();
    let block = String::from_utf8(output.stdout).unwrap();
    // Only addresses `vtrail-sensor block` takes: the worm's source, never a loaded host
    // (patient zero is a victim, and a node id is no argument for `block`).
    assert!(block.lines().any(|l| l == truth.worm_entry_ip), "{block}");
    assert!(
        block.lines().all(|l| l.parse::<std::net::IpAddr>().is_ok()),
        "{block}"
    );
    assert!(
        !block.lines().any(|l| l == truth.patient_zero[0]),
        "{block}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains(&truth.patient_zero[0]));
    let output = binary()
        .args(["rules", "--dot"])
        .args(&dumps)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn errors_exit_nonzero_with_a_message() {
    let dir = common::TempDir::new("cli-errors");
    let out = dir.path().join("incident");
    assert!(
        binary()
            .args(["simulate", "--seed", "1", "--hosts", "5", "--out"])
            .arg(&out)
            .status()
            .unwrap()
            .success()
    );
    let dump = out.join("fs-0000.jsonl");

    let output = binary()
        .args(["trace", "--path", "/nowhere"])
        .arg(&dump)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not in the graph"));

    let output = binary().args(["trace"]).arg(&dump).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--path, --sha256 or --node"));

    let output = binary()
        .args(["spread", "--skew-allowance", "soon"])
        .arg(&dump)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));

    let missing = dir.path().join("missing.jsonl");
    let output = binary().arg("spread").arg(&missing).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.jsonl"));
}

/// One host; the flagged file's arrival is the dump's last line, after enough filler that a
/// cut gzip stream still holds the header and the first records.
fn arrival_last_dump() -> common::Dump {
    use sensor_common::graph::EdgeKind;
    let mut dump = common::Dump::new("victim");
    let sender = dump.remote("203.0.113.9", &[]);
    let file = dump.file(1, "/srv/share/invoice.pdf.sh", Some("ab"));
    let run = dump.process(10, "/srv/share/invoice.pdf.sh", "invoice.pdf.sh");
    for i in 0..300u64 {
        // Distinct names, so that the filler does not compress to nothing.
        dump.file(
            1000 + i,
            &format!("/var/cache/{:x}.tmp", i * 2_654_435_761),
            None,
        );
    }
    dump.edge(20, EdgeKind::Exec, &file, &run, &[]);
    dump.edge(10, EdgeKind::ReceivedFrom, &sender, &file, &[("protocol", "smb2"), ("name", "invoice.pdf.sh")]);
    dump
}

fn trace_invoice(dump: &std::path::Path, json: bool) -> std::process::Output {
    binary()
        .args(["trace", "--path", "/srv/share/invoice.pdf.sh"])
        .args(json.then_some("--json"))
        .arg(dump)
        .output()
        .unwrap()
}

/// A partial answer: exit 3, the damage on standard error by file and line, a warning
/// before the answer in text and `"partial": true` in JSON.
fn assert_partial(dump: &std::path::Path, damage: &str) -> String {
    let name = dump.file_name().unwrap().to_str().unwrap();
    let output = trace_invoice(dump, false);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(name) && stderr.contains(damage) && stderr.contains("partial"),
        "{stderr}"
    );
    let before_answer = stdout.split("== Flagged").next().unwrap();
    assert!(
        before_answer.contains("PARTIAL INPUT") && before_answer.contains(name),
        "{stdout}"
    );
    let output = trace_invoice(dump, true);
    assert_eq!(output.status.code(), Some(3));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["load"]["partial"], true);
    assert!(
        value["load"]["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains(name) && w.contains(damage)),
        "{value}"
    );
    stdout
}

#[test]
fn a_cut_dump_gives_a_partial_answer_and_exit_status_3() {
    let dir = common::TempDir::new("cli-cut");
    let dump = arrival_last_dump();
    let whole = dir.path().join("whole.jsonl");
    dump.write(&whole);
    let output = trace_invoice(&whole, false);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("received from 203.0.113.9"));
    let lines = dump.text().lines().count();

    // Cut in the middle of the last line: the arrival is lost, and the answer says that
    // "local origin" is all the damaged input shows.
    let text = dump.text();
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, &text[..text.len() - 40]).unwrap();
    let stdout = assert_partial(&cut, &format!("line {lines}"));
    assert!(
        stdout.contains("local origin")
            && stdout.contains("the arrival may be among the lost records"),
        "{stdout}"
    );

    // The same dump gzipped and its stream cut.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, text.as_bytes()).unwrap();
    let gz = encoder.finish().unwrap();
    let cut = dir.path().join("cut.jsonl.gz");
    std::fs::write(&cut, &gz[..gz.len() - 200]).unwrap();
    assert_partial(&cut, "truncated");

    // A line that does not parse in the middle: skipped, named with what was wrong.
    let mut broken: Vec<&str> = text.lines().collect();
    broken[5] = "{\"node\": not json";
    let bad = dir.path().join("bad-line.jsonl");
    std::fs::write(&bad, broken.join("\n") + "\n").unwrap();
    assert_partial(&bad, "skipped 1 malformed record(s): line 6: expected");
}

/// a gets the worm from outside and passes it to b; b also gets a copy by FTP from an
/// IPv4-mapped address, and its worm calls out to a server. Both loaded hosts ran it.
fn two_victims(dir: &common::TempDir) -> Vec<std::path::PathBuf> {
    use sensor_common::graph::EdgeKind;
    let mut a = common::Dump::new("a");
    let source = a.remote("203.0.113.5", &[]);
    let to_b = a.remote("10.0.0.2", &["b"]);
    let worm = a.file(1, "/srv/share/w", Some("ab"));
    let run = a.process(10, "/srv/share/w", "w");
    a.edge(10, EdgeKind::ReceivedFrom, &source, &worm, &[("protocol", "smb2")]);
    a.edge(20, EdgeKind::Exec, &worm, &run, &[]);
    a.edge(30, EdgeKind::SentTo, &worm, &to_b, &[("protocol", "smb2"), ("name", "w")]);

    let mut b = common::Dump::new("b");
    let from_a = b.remote("10.0.0.1", &["a"]);
    let mapped = b.remote("::ffff:192.0.2.7", &[]);
    let bogus = b.remote("not-an-address", &[]);
    let server = b.remote("198.51.100.80", &[]);
    let worm = b.file(1, "/srv/share/w", Some("ab"));
    let copy = b.file(2, "/srv/ftp/w", Some("ab"));
    let junk = b.file(3, "/srv/ftp/j", Some("cd"));
    let (run, run_copy, run_junk) = (
        b.process(10, "/srv/share/w", "w"),
        b.process(11, "/srv/ftp/w", "w"),
        b.process(12, "/srv/ftp/j", "j"),
    );
    b.edge(30, EdgeKind::ReceivedFrom, &from_a, &worm, &[("protocol", "smb2"), ("name", "w")]);
    b.edge(40, EdgeKind::Exec, &worm, &run, &[]);
    b.edge(41, EdgeKind::Connect, &run, &server, &[("ip", "198.51.100.80"), ("port", "4444"), ("protocol", "tcp"), ("direction", "out")]);
    b.edge(50, EdgeKind::ReceivedFrom, &mapped, &copy, &[("protocol", "ftp")]);
    b.edge(60, EdgeKind::Exec, &copy, &run_copy, &[]);
    b.edge(70, EdgeKind::ReceivedFrom, &bogus, &junk, &[("protocol", "ftp")]);
    b.edge(80, EdgeKind::Exec, &junk, &run_junk, &[]);
    let paths = vec![dir.path().join("a.jsonl"), dir.path().join("b.jsonl")];
    a.write(&paths[0]);
    b.write(&paths[1]);
    paths
}

#[test]
fn rules_only_block_prints_only_outside_addresses() {
    let dir = common::TempDir::new("cli-block");
    let dumps = two_victims(&dir);
    let output = binary()
        .args(["rules", "--only", "block"])
        .args(&dumps)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    // Exactly what `vtrail-sensor block` takes, one per line, and nothing else: not the
    // victims a and b (by node id or by address), not what is no address.
    assert_eq!(stdout, "192.0.2.7\n198.51.100.80\n203.0.113.5\n");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("2 infected loaded host(s) are not listed") && stderr.contains("a, b"),
        "{stderr}"
    );

    let value = rules_json(&dumps);
    let rules = &value["rules"];
    let infected: Vec<&str> = rules["infected_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(infected, ["a", "b"]);
    assert!(
        rules["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("`not-an-address`")),
        "{rules}"
    );
}

#[test]
fn rules_name_the_executed_script_a_yara_rule_cannot_cover() {
    use sensor_common::graph::EdgeKind;
    let dir = common::TempDir::new("cli-script");
    let mut dump = common::Dump::new("victim");
    let source = dump.remote("203.0.113.5", &[]);
    let script = dump.file(1, "/srv/share/run.sh", None);
    let shell = dump.process(10, "/usr/bin/bash", "bash");
    dump.edge(10, EdgeKind::ReceivedFrom, &source, &script, &[("protocol", "ftp")]);
    dump.edge(20, EdgeKind::Read, &script, &shell, &[]);
    let path = dir.path().join("victim.jsonl");
    dump.write(&path);

    let output = binary()
        .args(["rules", "--only", "yara"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(output.stdout, b"", "no rule to print");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(
            "no content hash is recorded for 1 executed file(s): /srv/share/run.sh on victim"
        ) && stderr.contains("no YARA rule can be written"),
        "{stderr}"
    );

    let output = binary().arg("rules").arg(&path).output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let yara = text.split("== YARA rule").nth(1).unwrap();
    assert!(
        yara.contains(
            "not covered, no content hash recorded: /srv/share/run.sh on victim (file:victim:1:1)"
        ),
        "{text}"
    );
    let value = rules_json([&path]);
    assert_eq!(
        value["rules"]["executed_without_hash"][0]["path"],
        "/srv/share/run.sh"
    );
}

/// `--json` of `question` on `inputs` without the load summary (it names the inputs).
fn answer_json(question: &[&str], inputs: &[std::path::PathBuf]) -> serde_json::Value {
    let output = succeeds(&question.join(" "), binary().args(question).arg("--json").args(inputs));
    let mut answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    answer.as_object_mut().unwrap().remove("load");
    answer
}

#[test]
fn the_answer_does_not_depend_on_the_order_of_the_dumps() {
    let (_dir, truth, mut dumps) = common::simulated("order", 3, 40, analysis::simulate::Shape::ScaleFree, false);
    let trace = ["trace", "--sha256", truth.worm_sha256.as_str()];
    let questions: [&[&str]; 3] = [&trace, &["spread"], &["rules"]];
    let forward: Vec<_> = questions.iter().map(|q| answer_json(q, &dumps)).collect();
    dumps.reverse();
    for (question, expected) in questions.iter().zip(&forward) {
        assert_eq!(&answer_json(question, &dumps), expected, "{}", question.join(" "));
    }
}
