//! Replays the public captures in `../shared/testdata/pcaps` and checks them against
//! `EXPECTED.md` there.
use super::*;
use std::path::PathBuf;

fn pcaps() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/pcaps");
    assert!(d.is_dir(), "test captures missing: expected {} (the shared/ folder beside the repo, see shared/testdata/pcaps/EXPECTED.md)", d.display());
    d
}

#[test]
fn dump_all() {
    let mut names: Vec<_> = std::fs::read_dir(pcaps()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "pcap")).collect();
    names.sort();
    for p in names {
        let (t, s) = transfers_from_file(&p).unwrap();
        println!("== {} {:?}", p.display(), s);
        for x in &t {
            println!("{}", x.to_text());
        }
    }
}
