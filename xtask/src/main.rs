//! `cargo xtask`: what is not plain cargo. Each command sets up what it needs first
//! (`setup`), and setting up twice does nothing the second time.
//!
//!   cargo xtask run [-- ARGS]   build (release) and run the sensor on its embedded config
//!   cargo xtask test            every test, as root, on the real kernel, with real peers
//!   cargo xtask bench           benchmarks, each against a baseline from the same run
//!   cargo xtask lab [-- ARGS]   an outbreak on QEMU guests, checked against ground truth
//!   cargo xtask kernels         selftest on Debian 5.10, 6.1, 6.12 (QEMU) and this kernel
//!   cargo xtask install         binaries, default config, systemd units, docs
//!   cargo xtask package         the same as a Debian package, target/debian/vtrail_*.deb
//!   cargo xtask setup           only install the prerequisites
mod bench;
mod install;
mod package;
mod setup;

use std::{
    os::unix::process::CommandExt,
    path::PathBuf,
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install prerequisites (nightly rust-src, bpf-linker, mounts; with --test-peers the
    /// Debian packages of the test peers and cargo-fuzz).
    Setup {
        #[arg(long)]
        test_peers: bool,
    },
    /// Build everything (the eBPF object included).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Build (release) and start `vtrail-sensor run` with the embedded default config.
    Run {
        /// Arguments for vtrail-sensor (default: `run`).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Run every test: unit, integration on the real kernel, QEMU kernel, fuzzers briefly.
    Test {
        /// Seconds each fuzz target runs.
        #[arg(long, default_value_t = 20)]
        fuzz_seconds: u32,
    },
    /// Run the benchmarks and print their tables.
    Bench {
        /// One section only: overhead, ingest, analysis, naming, tc, fleet, replay.
        #[arg(long)]
        only: Option<String>,
    },
    /// The outbreak lab: N QEMU guests with sensors, a worm, ground truth compared with
    /// what vtrail recovers (`--hosts 4 --topology star --seed 1 --work DIR`, see
    /// docs/lab.md). Exits non-zero on any difference.
    Lab {
        /// Arguments for vtrail-lab (`--help` lists them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build (release) and install the binaries, a default /etc/vtrail/config.toml (never
    /// over one that exists), the systemd units and the docs.
    Install {
        #[arg(long, default_value = "/usr/local")]
        prefix: PathBuf,
        /// Staging root, as for a package (`make install DESTDIR=`).
        #[arg(long, default_value = "/")]
        destdir: PathBuf,
    },
    /// Build (release) the Debian package `TARGET/debian/vtrail_<version>_<arch>.deb`: what
    /// `install --prefix /usr` installs, /etc files as conffiles, vtrail-sensor.service
    /// enabled but not started by the install. Reproducible: dated SOURCE_DATE_EPOCH or the
    /// commit's time.
    Package,
    /// The kernel matrix: `vtrail-sensor selftest` with every strategy on Debian's 5.10,
    /// 6.1 and 6.12 under QEMU and on this host's kernel, as one table; non-zero on any
    /// failure (see docs/hook-strategies.md).
    Kernels {
        /// Arguments for vtrail-kernels (`--kernels 5.10,6.12`, `--no-native`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is in the workspace").to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

/// Runs a command, inheriting stdio; fails with the command line on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Runs a command and returns its stdout.
pub fn capture(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn require_root(what: &str) -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("`cargo xtask {what}` must run as root: it loads eBPF programs into the kernel");
    }
    Ok(())
}

fn setup(test_peers: bool) -> Result<()> {
    setup::toolchain()?;
    setup::bpf_linker()?;
    setup::mounts()?;
    if test_peers {
        setup::debian_packages(setup::TEST_PACKAGES)?;
        setup::cargo_fuzz()?;
    }
    Ok(())
}

pub fn cargo() -> Result<Command> {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root()).env("PATH", setup::path_with_linker()?);
    Ok(cmd)
}

fn build(release: bool) -> Result<()> {
    let mut cmd = cargo()?;
    cmd.args(["build", "--workspace", "--bins", "--exclude", "sensor-ebpf"]);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)
}

/// The release build of the installed binaries (not the test tools), packaged; returns the
/// .deb's path.
fn package() -> Result<PathBuf> {
    let mut cmd = cargo()?;
    cmd.args(["build", "--release"]);
    for bin in install::BINARIES {
        cmd.args(["--bin", bin]);
    }
    run(&mut cmd)?;
    let root = workspace_root();
    let deb = package::package(&target_dir().join("release"), &root, &target_dir().join("debian"), package::source_date_epoch(&root)?)?;
    eprintln!("xtask: built {}", deb.display());
    Ok(deb)
}

/// A tool of the `tests` crate that boots QEMU guests (the lab, the kernel matrix): set up
/// as for the tests, build, then become it.
fn test_tool(command: &str, tool: &str, args: Vec<String>) -> Result<()> {
    require_root(command)?;
    setup(true)?;
    build(false)?;
    let bin = target_dir().join("debug").join(tool);
    eprintln!("xtask: {} {}", bin.display(), args.join(" "));
    Err(Command::new(bin).args(args).exec().into())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Setup { test_peers } => setup(test_peers),
        Cmd::Build { release } => {
            setup(false)?;
            build(release)
        }
        Cmd::Run { args } => {
            require_root("run")?;
            setup(false)?;
            build(true)?;
            let bin = target_dir().join("release/vtrail-sensor");
            let args = if args.is_empty() { vec!["run".to_string()] } else { args };
            eprintln!("xtask: {} {}", bin.display(), args.join(" "));
            Err(Command::new(bin).args(args).exec().into())
        }
        Cmd::Test { fuzz_seconds } => {
            require_root("test")?;
            setup(true)?;
            let started = Instant::now();
            build(false)?;
            // tests/tests/package.rs installs it with apt.
            package()?;
            // Tests that start sensors serialise themselves; crates run one after another.
            run(cargo()?.args(["test", "--workspace", "--exclude", "sensor-ebpf"]))?;
            for target in ["smb2_nbss", "ftp_line", "utf16"] {
                let corpus = workspace_root().join("fuzz/corpus").join(target);
                std::fs::create_dir_all(&corpus)?;
                // Through rustup: $CARGO is the stable toolchain's own binary, which has no `+nightly`.
                run(Command::new("rustup")
                    .current_dir(workspace_root())
                    .args(["run", "nightly", "cargo", "fuzz", "run", target])
                    .arg(&corpus)
                    .arg(workspace_root().join("fuzz/seeds").join(target))
                    .arg("--")
                    .arg(format!("-max_total_time={fuzz_seconds}")))
                .with_context(|| format!("fuzz target {target} failed: a crash or a build error, see above"))?;
            }
            eprintln!("xtask: all tests passed in {:.0} s", started.elapsed().as_secs_f64());
            Ok(())
        }
        Cmd::Lab { args } => test_tool("lab", "vtrail-lab", args),
        Cmd::Install { prefix, destdir } => {
            setup(false)?;
            build(true)?;
            let layout = install::Layout { prefix, destdir };
            let done = install::install(&layout, &target_dir().join("release"), &workspace_root())?;
            for f in &done.files {
                eprintln!("xtask: installed {}", f.display());
            }
            if let Some(kept) = &done.kept_config {
                eprintln!("xtask: kept the existing {} (the default is `vtrail-sensor config`)", kept.display());
            }
            eprintln!("xtask: then `systemctl daemon-reload && systemctl enable --now vtrail-sensor` (vtrail-ddns and vtrail-collect need their .env files first: see the units)");
            Ok(())
        }
        Cmd::Package => {
            // Not setup(): building needs no mounts, so no root.
            setup::toolchain()?;
            setup::bpf_linker()?;
            package().map(drop)
        }
        Cmd::Kernels { args } => test_tool("kernels", "vtrail-kernels", args),
        Cmd::Bench { only } => {
            require_root("bench")?;
            setup(true)?;
            build(true)?;
            bench::run_benches(only.as_deref())
        }
    }
}
