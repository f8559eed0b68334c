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
    /// Programs of an earlier sensor still attached at start (it crashed): released once
    /// this sensor's were attached.
    #[serde(default)]
    pub released_links: usize,
    /// Entries those programs added after the copy, merged in.
    #[serde(default)]
    pub late_entries: usize,
}

/// Copies the pinned maps' entries into `ebpf`'s maps of the same name and pins those
/// instead. Call before attaching programs.
pub fn carry_over(ebpf: &mut Ebpf, dir: &Path) -> Result<(CarriedOver, LateMaps)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {} (is bpffs mounted at /sys/fs/bpf?)", dir.display()))?;
    let mut done = CarriedOver { dir: dir.to_path_buf(), ..Default::default() };
    let mut late = LateMaps::default();
    (done.inodes, _) = one::<InodeKey, InodeState>(ebpf, dir, names::INODES, &mut done.replaced, &mut late, all)?;
    (done.procs, done.stale_procs) = one::<u32, ProcState>(ebpf, dir, names::PROCS, &mut done.replaced, &mut late, same_process)?;
    (done.blocked, _) = one::<BlockedKey, u32>(ebpf, dir, names::BLOCKED, &mut done.replaced, &mut late, all)?;
    if done.inodes + done.procs + done.blocked > 0 {
        info!(
            "kernel state carried over from {}: {} flagged files, {} tracked processes, {} blocked hosts",
            dir.display(), done.inodes, done.procs, done.blocked
        );
    }
    Ok((done, late))
}

/// Keeps every entry.
fn all<K, V>(_: &K, _: &V) -> bool {
    true
}

/// A process that exited while no sensor ran left its entry (no exit event removed it):
/// kept only if that pid is still the same process (start time), or a reused pid would
/// inherit the taint.
fn same_process(tgid: &u32, state: &ProcState) -> bool {
    procfs::start_ticks(*tgid) == Some(procfs::boot_ns_to_ticks(state.start_boottime_ns))
}

/// One map carried over: (entries copied, entries `keep` left out).
fn one<K: Pod, V: Pod>(
    ebpf: &mut Ebpf,
    dir: &Path,
    name: &'static str,
    replaced: &mut Vec<String>,
    late: &mut LateMaps,
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
                // The programs of a sensor that crashed may still write it (pinned links).
                if let Ok(again) = MapData::from_pin(&pin) {
                    late.0.push((name, again));
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

/// The links of this sensor's programs, pinned under `<kernel_state>/links/<pid>`: a
/// link pinned in bpffs keeps its program attached after the process that made it is
/// gone, so when the sensor crashes (`kill -9`, OOM, a panic) the programs go on
/// tainting processes and marking files in the pinned maps while no sensor runs, and the
/// next one carries those decisions over. A graceful stop unpins them (the programs
/// detach: stopping the service stops the monitoring). A new sensor attaches its own
/// programs first, then releases the links of the one before (`release_older`), so that
/// between the two something is always attached.
pub struct PinnedLinks {
    root: PathBuf,
    dir: PathBuf,
    links: Vec<(String, aya::programs::links::PinnedLink)>,
    /// Programs whose link could not be pinned (a kernel without BPF perf links, before
    /// 5.15, for kprobes and tracepoints): attached for this process's life only.
    pub unpinned: Vec<String>,
    /// Set once the sensor is loaded: from then on the pins outlive this value (a crash,
    /// a panic); before, a start-up that fails leaves nothing attached.
    outlive: bool,
}

impl Drop for PinnedLinks {
    fn drop(&mut self) {
        if !self.outlive {
            self.unpin_all();
        }
    }
}

impl PinnedLinks {
    pub fn new(kernel_state: &Path) -> Result<Self> {
        let root = kernel_state.join("links");
        let dir = root.join(std::process::id().to_string());
        // A directory of this pid is a dead sensor's (pids are reused): released below.
        if dir.exists() {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            std::fs::rename(&dir, root.join(format!("{}-dead-{nanos}", std::process::id())))
                .with_context(|| format!("cannot move aside {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self { root, dir, links: Vec::new(), unpinned: Vec::new(), outlive: false })
    }

    /// The sensor is up: its programs stay attached if it dies from now on.
    pub fn outlive_the_process(&mut self) {
        self.outlive = true;
    }

    pub fn pin(&mut self, program: &str, link: aya::programs::links::FdLink) -> Result<()> {
        let path = self.dir.join(program);
        let pinned = link.pin(&path).with_context(|| format!("cannot pin the link of {program} at {}", path.display()))?;
        self.links.push((program.to_string(), pinned));
        Ok(())
    }

    /// Detaches `program` (a hook rolled back at start-up).
    pub fn remove(&mut self, program: &str) {
        if let Some(i) = self.links.iter().position(|(name, _)| name == program) {
            let (_, link) = self.links.swap_remove(i);
            if let Ok(link) = link.unpin() {
                drop(link);
            }
        }
    }

    /// Unpins the links of earlier sensors (their programs detach once this returns).
    /// Returns how many there were.
    pub fn release_older(&self) -> usize {
        let mut released = 0;
        let Ok(entries) = std::fs::read_dir(&self.root) else { return 0 };
        for entry in entries.flatten().take(1024) {
            let path = entry.path();
            if path == self.dir {
                continue;
            }
            released += std::fs::read_dir(&path).map(|links| links.count()).unwrap_or(0);
            if let Err(e) = std::fs::remove_dir_all(&path) {
                warn!("{}: the links of an earlier sensor not released ({e}): its programs stay attached", path.display());
            }
        }
        released
    }

    /// A graceful stop: every program detaches.
    pub fn unpin_all(&mut self) {
        for (_, link) in self.links.drain(..) {
            let _ = link.unpin();
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Entries an earlier sensor's programs, still attached, added to its maps after
/// `carry_over` copied them: merged in once those programs are detached (entries the new
/// programs already hold win). Returns how many were added.
pub fn merge_late(ebpf: &mut Ebpf, late: LateMaps) -> usize {
    let mut added = 0;
    for (name, old) in late.0 {
        added += match name {
            n if n == names::INODES => merge_one::<InodeKey, InodeState>(ebpf, n, old, all),
            n if n == names::PROCS => merge_one::<u32, ProcState>(ebpf, n, old, same_process),
            n => merge_one::<BlockedKey, u32>(ebpf, n, old, all),
        };
    }
    added
}

/// The old maps `carry_over` read, kept open for `merge_late`.
#[derive(Default)]
pub struct LateMaps(Vec<(&'static str, MapData)>);

fn merge_one<K: Pod, V: Pod>(ebpf: &mut Ebpf, name: &str, old: MapData, keep: impl Fn(&K, &V) -> bool) -> usize {
    let Ok(old) = Map::from_map_data(old).map_err(anyhow::Error::from).and_then(|m| Ok(HashMap::<MapData, K, V>::try_from(m)?)) else { return 0 };
    let Some(map) = ebpf.map_mut(name) else { return 0 };
    let Ok(mut new) = HashMap::<&mut MapData, K, V>::try_from(map) else { return 0 };
    let mut added = 0;
    for (k, v) in old.iter().flatten() {
        if keep(&k, &v) && new.get(&k, 0).is_err() && new.insert(k, v, 0).is_ok() {
            added += 1;
        }
    }
    added
}
