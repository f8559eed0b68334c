//! `vtrail-lab`: the outbreak lab by hand (`cargo xtask lab` builds and runs it).
//! Prints the phases, the ground truth beside what the analysis recovered, and every
//! difference; exits 0 when there is none, 1 when there are differences, 2 when the lab
//! could not run (the reason is printed).
use std::path::PathBuf;

use clap::Parser;
use tests::lab::{LabOptions, Topology};

#[derive(Parser)]
#[command(about = "QEMU guests with real sensors, a worm that spreads between them, and ground truth")]
struct Cli {
    /// Guests (2 to 20); each takes about 640 MiB and one vCPU under TCG.
    #[arg(long, default_value_t = 4)]
    hosts: usize,
    #[arg(long, default_value = "star")]
    topology: Topology,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where consoles, dumps, logs and answers are kept.
    #[arg(long, default_value = "/var/tmp/vtrail-lab")]
    work: PathBuf,
}

fn main() {
    let cli = Cli::parse();
    let options = LabOptions { hosts: cli.hosts, topology: cli.topology, seed: cli.seed, work: cli.work };
    match tests::lab::run(&options) {
        Ok(outcome) if outcome.comparison.differences.is_empty() => std::process::exit(0),
        Ok(_) => std::process::exit(1),
        Err(e) => {
            eprintln!("vtrail-lab: the lab could not run: {e:#}");
            std::process::exit(2)
        }
    }
}
