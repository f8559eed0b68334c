//! The real binary: exit codes, messages on standard error, every output format.

mod common;

use std::process::Command;

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vtrail-analysis"))
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

    for format in [
        None,
        Some("--json"),
        Some("--dot"),
        Some("--graphml"),
        Some("--html"),
    ] {
        let output = binary()
            .arg("spread")
            .args(format)
            .args(&dumps)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "spread {format:?}: {}",
            String::from_utf8_lossy(&output.stderr)
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
    for format in [
        None,
        Some("--json"),
        Some("--dot"),
        Some("--graphml"),
        Some("--html"),
    ] {
        let output = binary()
            .args([
                "trace",
                "--sha256",
                &truth.worm_sha256,
                "--host",
                &truth.patient_zero[0],
            ])
            .args(format)
            .args(&dumps)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "trace {format:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let output = binary()
        .args(["rules", "--only", "block"])
        .args(&dumps)
        .output()
        .unwrap();
    let block = String::from_utf8(output.stdout).unwrap();
    assert!(
        block.lines().any(|l| l == truth.patient_zero[0])
            && block.lines().any(|l| l == truth.worm_entry_ip)
    );
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
