//! What the verifier made of each kernel program: instructions it processed
//! (`verified_insns`), translated and JIT-compiled sizes. Loads every program of the
//! embedded object that this kernel accepts, attaches none.
//!
//! `cargo run -p sensor-user --example prog-stats [-- NAME...]` (root; under the kernel-test
//! lock). With names, only those programs.
use anyhow::{Context, Result};
use aya::{Btf, EbpfLoader, programs::Program};

fn main() -> Result<()> {
    let only: Vec<String> = std::env::args().skip(1).collect();
    let btf = Btf::from_sys_fs().context("kernel BTF")?;
    let mut ebpf = EbpfLoader::new().btf(Some(&btf)).load(sensor_user::kernel::sensor::ebpf_object()).context("load the object")?;
    let mut names: Vec<String> = ebpf.programs().map(|(n, _)| n.to_string()).collect();
    names.sort();
    println!("{:32} {:>14} {:>8} {:>8}", "program", "verified_insns", "xlated", "jited");
    for name in names {
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let program = ebpf.program_mut(&name).context("program")?;
        let loaded = match program {
            Program::TracePoint(p) => p.load().map(|_| p.info()),
            Program::SchedClassifier(p) => p.load().map(|_| p.info()),
            Program::KProbe(p) => p.load().map(|_| p.info()),
            Program::BtfTracePoint(p) => p.load("sched_process_fork", &btf).map(|_| p.info()),
            _ => {
                println!("{name:32} (not loaded: program type not handled here)");
                continue;
            }
        };
        match loaded {
            Ok(Ok(info)) => println!(
                "{name:32} {:>14} {:>8} {:>8}",
                info.verified_instruction_count().map_or("?".into(), |n| n.to_string()),
                info.size_translated().map_or("?".into(), |n| n.to_string()),
                info.size_jitted()
            ),
            Ok(Err(e)) => println!("{name:32} (loaded, no info: {e})"),
            Err(e) => println!("{name:32} (refused here: {e})"),
        }
    }
    Ok(())
}
