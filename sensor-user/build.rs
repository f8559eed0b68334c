//! Builds the eBPF object with the nightly toolchain (aya-build) and embeds it.
use std::{env, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest.join("../sensor-ebpf").canonicalize()?;
    // `cargo xtask` installs bpf-linker under the user's cache; put it on PATH for the
    // nested cargo so a plain `cargo build` works once xtask has set things up.
    if let Some(home) = env::var_os("HOME") {
        let linker_bin = PathBuf::from(home).join(".cache/vtrail/bpf-linker/bin");
        let path = env::var_os("PATH").unwrap_or_default();
        let mut paths: Vec<PathBuf> = vec![linker_bin];
        paths.extend(env::split_paths(&path));
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { env::set_var("PATH", env::join_paths(paths)?) };
    }
    println!("cargo:rerun-if-env-changed=PATH");
    let root = ebpf_dir.to_str().ok_or_else(|| anyhow::anyhow!("non-UTF-8 path"))?;
    aya_build::build_ebpf(
        [aya_build::Package { name: "sensor-ebpf", root_dir: root, ..Default::default() }],
        aya_build::Toolchain::default(),
    )
}
