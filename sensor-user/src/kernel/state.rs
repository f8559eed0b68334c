//! The kernel's decisions outlive the daemon: the maps that hold them (`INODES`: which
//! files are untrusted; `PROCS`: which processes are tainted; `BLOCKED`: the quarantine)
//! are pinned in bpffs under `kernel_state`, and a new sensor carries their entries over
//! into its freshly loaded maps before any program is attached, then pins those in
//! their place.
//!
//! So a file whose create event was lost (full ring buffer) and is untrusted only in the
//! kernel stays untrusted after a graceful restart or a `kill -9`; the graph restore
//! (`daemon::restore`) adds what the database knows on top. Copying, rather than letting
//! the loader reuse the pinned map, survives a change of map size between versions and
//! checks the layout: a pin whose key or value size differs (another vtrail version) is
//! not read, and is replaced (logged). `rm -r` of the directory forgets the kernel state.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use aya::{
    Ebpf, Pod,
    maps::{HashMap, Map, MapData},
};
use tracing::{info, warn};
use sensor_common::maps::{BlockedKey, InodeKey, InodeState, ProcState, names};

use crate::host::procfs;

/// What was carried over from the pins of an earlier sensor.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CarriedOver {
    pub dir: PathBuf,
    pub inodes: usize,
    pub procs: usize,
    pub blocked: usize,
    /// Tracked processes left out: gone since (their pid may belong to another process now).
    pub stale_procs: usize,
    /// Pins that could not be read (layout changed, not a hash map): replaced.
    pub replaced: Vec<String>,
}

/// Copies the pinned maps' entries into `ebpf`'s maps of the same name and pins those
/// instead. Call before attaching programs.
pub fn carry_over(ebpf: &mut Ebpf, dir: &Path) -> Result<CarriedOver> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {} (is bpffs mounted at /sys/fs/bpf?)", dir.display()))?;
    let mut done = CarriedOver { dir: dir.to_path_buf(), ..Default::default() };
    (done.inodes, _) = one::<InodeKey, InodeState>(ebpf, dir, names::INODES, &mut done.replaced, all)?;
    // A process that exited while no sensor ran left its entry (no exit event removed it):
    // kept only if that pid is still the same process (start time), or a reused pid
    // would inherit the taint.
    let alive = |tgid: &u32, state: &ProcState| procfs::start_ticks(*tgid) == Some(procfs::boot_ns_to_ticks(state.start_boottime_ns));
    (done.procs, done.stale_procs) = one::<u32, ProcState>(ebpf, dir, names::PROCS, &mut done.replaced, alive)?;
    (done.blocked, _) = one::<BlockedKey, u32>(ebpf, dir, names::BLOCKED, &mut done.replaced, all)?;
    if done.inodes + done.procs + done.blocked > 0 {
        info!(
            "kernel state carried over from {}: {} flagged files, {} tracked processes, {} blocked hosts",
            dir.display(), done.inodes, done.procs, done.blocked
        );
    }
    Ok(done)
}

/// Keeps every entry.
fn all<K, V>(_: &K, _: &V) -> bool {
    true
}

/// One map carried over: (entries copied, entries `keep` left out).
fn one<K: Pod, V: Pod>(
    ebpf: &mut Ebpf,
    dir: &Path,
    name: &str,
    replaced: &mut Vec<String>,
    keep: impl Fn(&K, &V) -> bool,
) -> Result<(usize, usize)> {
    let pin = dir.join(name);
    let (mut copied, mut skipped) = (0, 0);
    if pin.exists() {
        let old = MapData::from_pin(&pin)
            .map_err(anyhow::Error::from)
            .and_then(|m| Ok(Map::from_map_data(m)?))
            .and_then(|m| Ok(HashMap::<MapData, K, V>::try_from(m)?));
        match old {
            Ok(old) => {
                let mut new = HashMap::<&mut MapData, K, V>::try_from(ebpf.map_mut(name).with_context(|| format!("map {name} missing"))?)?;
                // Bounded by the old map's capacity; a full new map stops the copy, loudly.
                for entry in old.iter() {
                    let Ok((k, v)) = entry else { continue };
                    if !keep(&k, &v) {
                        skipped += 1;
                        continue;
                    }
                    if let Err(e) = new.insert(k, v, 0) {
                        warn!("{name}: only {copied} entries carried over from {}: {e}", pin.display());
                        break;
                    }
                    copied += 1;
                }
            }
            Err(e) => {
                warn!("{}: not carried over ({e:#}): a pin of another layout (another vtrail version?), replaced", pin.display());
                replaced.push(format!("{}: {e:#}", pin.display()));
            }
        }
        std::fs::remove_file(&pin).with_context(|| format!("cannot remove the old pin {}", pin.display()))?;
    }
    ebpf.map_mut(name)
        .with_context(|| format!("map {name} missing"))?
        .pin(&pin)
        .with_context(|| format!("cannot pin {name} at {}", pin.display()))?;
    Ok((copied, skipped))
}
