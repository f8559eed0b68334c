//! Names in a dump are chosen by whoever wrote the file or sent it: no output but JSON may
//! carry their control characters raw, or a file name could forge report lines or drive
//! the terminal of whoever reads the report.

mod common;

use std::process::Command;

use sensor_common::graph::EdgeKind;

const EVIL_PATH: &str = "/srv/share/evil\n[+] origin: trusted\x1b[2J.sh";
const EVIL_PATH_ESCAPED: &str = "/srv/share/evil\\n[+] origin: trusted\\x1b[2J.sh";

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vtrail-analysis"))
}

fn evil_dump(dir: &common::TempDir) -> std::path::PathBuf {
    let mut dump = common::Dump::new("victim");
    let sender = dump.remote("203.0.113.9", &[]);
    let file = dump.file(1, EVIL_PATH, None);
    let run = dump.process(10, EVIL_PATH, "evil\x1b]0;owned\x07");
    let cron = dump.file(2, "/etc/cron.d/\tevil\u{9b}", None);
    dump.edge(10, EdgeKind::ReceivedFrom, &sender, &file, &[("protocol", "smb2"), ("name", "evil\r\u{85}.sh\\x1b")]);
    dump.edge(20, EdgeKind::Exec, &file, &run, &[]);
    dump.edge(30, EdgeKind::Write, &run, &cron, &[("activation_point", "cron\x1b[31m"), ("severity", "high")]);
    let path = dir.path().join("victim.jsonl");
    dump.write(&path);
    path
}

fn run(args: &[&str], dump: &std::path::Path) -> String {
    let output = binary().args(args).arg(dump).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn text_outputs_escape_control_characters_in_names() {
    let dir = common::TempDir::new("hostile-names");
    let dump = evil_dump(&dir);
    let trace = run(&["trace", "--path", EVIL_PATH], &dump);
    assert_eq!(
        common::raw_controls(&trace, &[]),
        Vec::<char>::new(),
        "{trace}"
    );
    assert!(
        !trace.lines().any(|l| l.starts_with("[+] origin")),
        "no forged line: {trace}"
    );
    assert!(trace.contains(EVIL_PATH_ESCAPED), "{trace}");
    // Backslash is escaped too, so `\x1b` in the output always means the character.
    assert!(trace.contains("evil\\r\\x85.sh\\\\x1b"), "{trace}");

    let spread = run(&["spread"], &dump);
    assert_eq!(
        common::raw_controls(&spread, &[]),
        Vec::<char>::new(),
        "{spread}"
    );
    assert!(spread.contains("evil\\r\\x85.sh"), "{spread}");

    // The rules text separates fields with its own tabs; the names' tabs are escaped.
    let rules = run(&["rules"], &dump);
    assert_eq!(
        common::raw_controls(&rules, &['\t']),
        Vec::<char>::new(),
        "{rules}"
    );
    assert!(
        rules.contains("/etc/cron.d/\\tevil\\x9b\t# cron\\x1b[31m on 1 host(s)"),
        "{rules}"
    );
    let protect = run(&["rules", "--only", "protect"], &dump);
    assert_eq!(protect, "/etc/cron.d/\\tevil\\x9b\n");

    // The graph formats keep their own quoting, and no raw control character either.
    for format in ["--dot", "--graphml", "--html"] {
        for question in [&["trace", "--path", EVIL_PATH][..], &["spread"][..]] {
            let out = run(&[question, &[format]].concat(), &dump);
            assert_eq!(
                common::raw_controls(&out, &[]),
                Vec::<char>::new(),
                "{question:?} {format}: {out}"
            );
            if question[0] == "trace" {
                assert!(out.contains("\\x1b"), "{format}: {out}");
            }
        }
    }

    // Messages on standard error quote the selector: escaped as well.
    let output = binary()
        .args(["trace", "--path", "/no/such\x1b[2J"])
        .arg(&dump)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(common::raw_controls(&stderr, &[]), Vec::<char>::new());
    assert!(stderr.contains("/no/such\\x1b[2J"), "{stderr}");
}

#[test]
fn a_path_with_a_newline_stays_one_path() {
    let dir = common::TempDir::new("newline-path");
    let dump = evil_dump(&dir);
    let json = run(&["trace", "--json", "--path", EVIL_PATH], &dump);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let flagged = &value["trace"]["flagged"][0];
    assert_eq!(flagged["label"], EVIL_PATH);
    assert_eq!(flagged["paths"], serde_json::json!([EVIL_PATH]));
}
