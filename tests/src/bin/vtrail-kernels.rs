//! `vtrail-kernels`: the kernel matrix by hand (`cargo xtask kernels` builds and runs it).
//! Boots each Debian kernel of the matrix under QEMU, runs `vtrail-sensor selftest` with
//! every strategy and `--network`, does the same on this host's kernel, and prints one
//! table. Exits 1 naming the kernel, strategy and message of any failure.
use std::path::PathBuf;

use clap::Parser;
use tests::{kernel_matrix, qemu::kernels};

#[derive(Parser)]
#[command(about = "vtrail-sensor selftest on Debian 5.10, 6.1, 6.12 under QEMU and on this host")]
struct Cli {
    /// Which kernels (release prefixes or suite names: 5.10, 6.1, 6.12, bullseye, ...);
    /// default every one, and this host.
    #[arg(long, value_delimiter = ',')]
    kernels: Vec<String>,
    /// Leave this host's kernel out.
    #[arg(long)]
    no_native: bool,
    /// Only this host's kernel (no guest).
    #[arg(long, conflicts_with_all = ["kernels", "no_native"])]
    native_only: bool,
    /// Only fetch and unpack the kernels into the cache.
    #[arg(long)]
    fetch_only: bool,
    /// The sensor binary (default: the workspace's debug build).
    #[arg(long)]
    sensor: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    let sensor = cli.sensor.unwrap_or_else(tests::sensor::sensor_bin);
    let chosen: Vec<kernels::GuestKernel> = if cli.native_only {
        Vec::new()
    } else if cli.kernels.is_empty() {
        kernels::MATRIX.to_vec()
    } else {
        cli.kernels
            .iter()
            .map(|k| {
                kernels::GuestKernel::find(k).unwrap_or_else(|| {
                    eprintln!("vtrail-kernels: {k:?} is not in the matrix ({})", kernels::MATRIX.map(|k| k.name).join(", "));
                    std::process::exit(2)
                })
            })
            .collect()
    };
    if cli.fetch_only {
        let cache = tests::qemu::default_cache_dir().unwrap_or_else(|e| {
            eprintln!("vtrail-kernels: {e:#}");
            std::process::exit(2)
        });
        for kernel in &chosen {
            match tests::qemu::ensure_kernel(&cache, kernel) {
                Ok(files) => eprintln!("vtrail-kernels: {} in {}", kernel.name, files.root.display()),
                Err(e) => {
                    eprintln!("vtrail-kernels: {}: {e:#}", kernel.name);
                    std::process::exit(2)
                }
            }
        }
        return;
    }
    let mut results = Vec::new();
    for kernel in &chosen {
        eprintln!("vtrail-kernels: booting {} ({}) ...", kernel.name, kernel.release);
        let result = kernel_matrix::run_kernel(&sensor, kernel);
        eprintln!("vtrail-kernels: {} done in {:.0} s: {}", kernel.name, result.seconds, if result.ok() { "ok" } else { "FAILED" });
        results.push(result);
    }
    if !cli.no_native {
        let work = std::env::temp_dir().join(format!("vtrail-kernels-{}", std::process::id()));
        match kernel_matrix::run_native(&sensor, &work) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("vtrail-kernels: this host: {e:#}");
                std::process::exit(2)
            }
        }
        let _ = std::fs::remove_dir_all(&work);
    }
    print!("{}", kernel_matrix::table(&results));
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.ok())
        .map(|r| {
            let why: Vec<String> = r
                .checks
                .iter()
                .filter(|c| !c.passed && !c.unavailable())
                .map(|c| format!("{} {}: {}", r.kernel, c.requested, c.notes.join("; ")))
                .chain(r.error.iter().map(|e| format!("{}: {e}", r.kernel)))
                .collect();
            why.join("\n")
        })
        .collect();
    if !failed.is_empty() {
        eprintln!("vtrail-kernels: FAILED:\n{}", failed.join("\n"));
        std::process::exit(1);
    }
}
