//! The outbreak lab in the suite (issue 13): four Debian 6.1 guests under QEMU, each with
//! its own disk serial, sensor (fentry and kprobe strategies), vtrail-ddns and vsftpd; a
//! worm from an outside host spreads in a star (patient zero is the super infector), one
//! guest only carries it, one changes its address mid-run. `vtrail-analysis` over the
//! guests' dumps and over the fleet's central database must recover the ground truth the
//! worm's and users' own logs give. About 4-5 minutes on 2 cores under TCG (docs/lab.md);
//! `cargo xtask lab` runs other sizes and topologies by hand.
use tests::lab::{LabOptions, Topology};
use tests::sensor::{require_root, serial};

#[test]
fn an_outbreak_across_four_guests_is_recovered_from_their_records() {
    let _guard = serial();
    require_root();
    let options = LabOptions { hosts: 4, topology: Topology::Star, seed: 1, work: std::env::temp_dir().join("vtrail-lab-test") };
    let outcome = tests::lab::run(&options).unwrap_or_else(|e| panic!("the lab could not run: {e:#}"));
    eprintln!("lab took {:.0} s (work in {})", outcome.elapsed.as_secs_f64(), options.work.display());
    assert!(
        outcome.comparison.differences.is_empty(),
        "ground truth and recovered differ:\n{}\n{}",
        outcome.comparison.differences.join("\n"),
        outcome.report
    );
}
