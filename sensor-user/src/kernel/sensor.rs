//! Loads the eBPF object, attaches the chosen strategy's programs, and owns the maps
//! userspace writes (seeding at start-up, manual relabels) and reads (drop counters).
use std::{
    collections::BTreeSet,
    mem::size_of,
    os::fd::{AsFd, OwnedFd},
    path::Path,
};

use anyhow::{Context, Result, anyhow, bail};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, Program, TracePoint, links::FdLink},
};
use tracing::{info, warn};
use sensor_common::{
    event::{EVENT_KIND_COUNT, EventKind},
    maps::{
        DROP_SLOT_NAMES, DROP_SLOTS, INODE_INTERPRETER, INODE_PORT_PROGRAM, InodeKey,
        InodeState, PROC_INTERPRETER, PROC_PORT_PROGRAM, ProcState, SensorConfig, WriteSeenKey,
        names,
    },
};

use crate::{
    config::Config,
    host::procfs,
    kernel::{
        batch,
        offsets as kernel_offsets,
        state::{self, PinnedLinks},
        strategy::{self, COMMON_PROGRAMS, Strategy},
    },
};

/// Reads the kernel programs' aya-log records into this process's `log` logger.
pub type KernelLogger = aya_log::EbpfLogger<&'static dyn log::Log>;

static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vtrail"));

pub struct Sensor {
    // Keeps the programs attached; dropped last.
    _ebpf: Ebpf,
    pub strategy: Strategy,
    pub attached: Vec<String>,
    pub missing: Vec<String>,
    pub fallbacks: Vec<String>,
    procs: HashMap<MapData, u32, ProcState>,
    inodes: HashMap<MapData, InodeKey, InodeState>,
    /// PROCS' and INODES' descriptors (duplicates) for batch reads of their fill: aya's
    /// typed maps do not lend their fd.
    fill_fds: (OwnedFd, OwnedFd),
    write_seen: HashMap<MapData, WriteSeenKey, u8>,
    drops: PerCpuArray<MapData, u64>,
    events: Option<RingBuf<MapData>>,
    /// The kernel programs' diagnostic messages (aya-log), until the daemon takes them.
    logger: Option<KernelLogger>,
    /// What came from the pins of an earlier sensor.
    pub carried: crate::kernel::state::CarriedOver,
    /// The programs' links, pinned (the daemon): they outlive a crash.
    links: Option<PinnedLinks>,
}

/// The embedded eBPF object (also loaded by `network::testrun`).
pub fn ebpf_object() -> &'static [u8] {
    EBPF_OBJECT
}

/// Checks that make start-up fail with a message that says what to do.
pub fn preflight() -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("vtrail-sensor must run as root (or with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN): loading eBPF programs was refused");
    }
    crate::host::mounts::ensure_mounted()?;
    Ok(())
}

impl Sensor {
    /// Loads and attaches. With `kernel_state`, the pinned maps of an earlier sensor are
    /// carried over first (the daemon; a selftest passes None and touches no pin).
    pub fn load(config: &Config, kernel_state: Option<&Path>) -> Result<Self> {
        let offsets = kernel_offsets::from_running_kernel()?;
        let btf = Btf::from_sys_fs().context("cannot read the kernel BTF at /sys/kernel/btf/vmlinux")?;
        let mut loader = EbpfLoader::new();
        if std::env::var_os("VTRAIL_VERIFIER_LOG").is_some() {
            // Full verifier output in load errors (debugging a kernel's rejection).
            loader.verifier_log_level(aya::VerifierLogLevel::VERBOSE | aya::VerifierLogLevel::STATS);
        }
        let mut ebpf = loader
            .btf(Some(&btf))
            .map_max_entries(names::EVENTS, config.ring_buffer_bytes)
            .load(EBPF_OBJECT)
            .context("cannot load the eBPF object (is the kernel older than 5.8, or is BPF restricted?)")?;

        // The programs' rare-path messages (a map full, a failed tail call, a kernel struct
        // the BTF offsets did not read): without a reader they only fill their ring buffer.
        let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
            Ok(l) => Some(l),
            Err(e) => {
                warn!("the kernel programs' log cannot be read ({e}): their diagnostics go unseen, counters still count");
                None
            }
        };
        let (mut carried, late) = match kernel_state {
            Some(dir) => state::carry_over(&mut ebpf, dir)?,
            None => Default::default(),
        };
        let mut links = kernel_state.map(PinnedLinks::new).transpose()?;
        Array::<_, sensor_common::offsets::KernelOffsets>::try_from(ebpf.map_mut(names::OFFSETS).context("OFFSETS map")?)?
            .set(0, offsets, 0)?;
        set_rules(&mut ebpf, config)?;

        let mut attached = Vec::new();
        let mut missing = Vec::new();
        for (program, required) in COMMON_PROGRAMS {
            match attach(&mut ebpf, program, &btf, links.as_mut()) {
                Ok(()) => attached.push(program.to_string()),
                Err(e) if *required => return Err(e.context(format!("cannot attach required program {program}"))),
                Err(e) => {
                    warn!("optional hook {program} not attached: {e:#}");
                    missing.push(program.to_string());
                }
            }
        }

        let mut fallbacks = Vec::new();
        let mut chosen = None;
        for candidate in Strategy::candidates(config.hook_strategy) {
            if let Some(why) = candidate.precheck(&offsets) {
                fallbacks.push(format!("{candidate:?}: {why}"));
                continue;
            }
            let mut ok = Vec::new();
            let mut absent = Vec::new();
            let mut failure = None;
            for hook in candidate.own_hooks() {
                let mut done = Vec::new();
                let error = hook.programs.iter().find_map(|program| match attach(&mut ebpf, program, &btf, links.as_mut()) {
                    Ok(()) => {
                        done.push(program.clone());
                        None
                    }
                    Err(e) => Some(format!("{program}: {e:#}")),
                });
                match error {
                    None => ok.extend(done),
                    Some(why) => {
                        // A syscall's entry half without its exit half would stash calls
                        // nobody collects: the hook goes in whole or not at all.
                        for program in &done {
                            detach(&mut ebpf, links.as_mut(), program);
                        }
                        if hook.required {
                            failure = Some(why);
                            break;
                        }
                        warn!("optional hook {} not attached: {why}", hook.programs.join(" + "));
                        absent.extend(hook.programs);
                    }
                }
            }
            match failure {
                None => {
                    attached.extend(ok);
                    missing.extend(absent);
                    chosen = Some(candidate);
                    break;
                }
                Some(why) => {
                    // Detach what this candidate attached before trying the next one.
                    for program in &ok {
                        detach(&mut ebpf, links.as_mut(), program);
                    }
                    fallbacks.push(format!("{candidate:?}: {why}"));
                }
            }
        }
        let strategy = chosen.ok_or_else(|| {
            anyhow!("no hook strategy works on this kernel (configured: {:?}): {}", config.hook_strategy, fallbacks.join("; "))
        })?;
        for f in &fallbacks {
            info!("hook strategy skipped: {f}");
        }
        info!("hook strategy: {strategy:?} ({} programs attached)", attached.len());
        if let Some(links) = &links {
            // Ours are attached: the programs of a sensor that crashed can go, and what
            // they decided since the copy above is merged in.
            carried.released_links = links.release_older();
            carried.late_entries = state::merge_late(&mut ebpf, late);
            if carried.released_links > 0 {
                info!(
                    "{} programs of an earlier sensor were still attached (it did not stop cleanly): released; {} entries they added meanwhile merged",
                    carried.released_links, carried.late_entries
                );
            }
            if !links.unpinned.is_empty() {
                warn!(
                    "links not pinned, so these programs detach if the sensor dies: {}",
                    links.unpinned.join("; ")
                );
            }
        }

        let procs = ebpf.take_map(names::PROCS).context("PROCS map")?;
        let inodes = ebpf.take_map(names::INODES).context("INODES map")?;
        let fill_fds = (batch_fd(&procs).context("PROCS map fd")?, batch_fd(&inodes).context("INODES map fd")?);
        let (procs, inodes) = (HashMap::try_from(procs)?, HashMap::try_from(inodes)?);
        let write_seen = HashMap::try_from(ebpf.take_map(names::WRITE_SEEN).context("WRITE_SEEN map")?)?;
        let drops = PerCpuArray::try_from(ebpf.take_map(names::DROPS).context("DROPS map")?)?;
        let events = Some(RingBuf::try_from(ebpf.take_map(names::EVENTS).context("EVENTS map")?)?);
        Ok(Self { _ebpf: ebpf, strategy, attached, missing, fallbacks, procs, inodes, fill_fds, write_seen, drops, events, logger, carried, links })
    }

    pub fn links_pinned(&self) -> bool {
        self.links.is_some()
    }

    /// Programs attached for this process's life only (their link could not be pinned).
    pub fn unpinned_links(&self) -> &[String] {
        self.links.as_ref().map(|l| l.unpinned.as_slice()).unwrap_or_default()
    }

    /// The daemon is up: from now on its programs stay attached if it dies (until then a
    /// failed start leaves nothing attached).
    pub fn keep_programs_after_a_crash(&mut self) {
        if let Some(links) = self.links.as_mut() {
            links.outlive_the_process();
        }
    }

    /// A graceful stop: the programs detach (a crash leaves them attached, pinned).
    pub fn release_links(&mut self) {
        if let Some(links) = self.links.as_mut() {
            links.unpin_all();
        }
    }

    /// The attached programs as the kernel sized them, largest first: (name, instructions
    /// the verifier processed (kernel 5.16+, else `None`), translated bytes). How close
    /// each kernel's verifier comes to its limits, for `selftest` and the kernel matrix.
    pub fn program_sizes(&self) -> Vec<(String, Option<u32>, Option<u32>)> {
        let mut sizes: Vec<(String, Option<u32>, Option<u32>)> = self
            ._ebpf
            .programs()
            .filter(|(name, _)| self.attached.iter().any(|a| a == name))
            .filter_map(|(name, program)| {
                let info = program.info().ok()?;
                Some((name.to_string(), info.verified_instruction_count(), info.size_translated()))
            })
            .collect();
        sizes.sort_by_key(|(name, verified, bytes)| (std::cmp::Reverse((*verified, *bytes)), name.clone()));
        sizes
    }

    /// The loaded object (network monitoring loads and attaches its TC programs on it).
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self._ebpf
    }

    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }

    pub fn take_logger(&mut self) -> Option<KernelLogger> {
        self.logger.take()
    }

    /// Rule-1/3 programs: the inodes of the configured binaries flagged, and only those:
    /// a binary flagged by an earlier configuration (a reload, or the pinned map of the
    /// last sensor) that this one does not name loses its role. Returns the configured
    /// paths not present on this host.
    pub fn seed_programs(&mut self, config: &Config) -> Result<Vec<String>> {
        let (programs, skipped) = ProgramInodes::of(config);
        let roles = programs.by_flag();
        let stale: Vec<(InodeKey, u32)> = self
            .inodes
            .iter()
            .filter_map(|entry| entry.ok())
            .filter_map(|(key, state)| {
                let gone = roles.iter().filter(|(flag, keys)| state.flags & flag != 0 && !keys.contains(&key)).fold(0, |f, (flag, _)| f | flag);
                (gone != 0).then_some((key, gone))
            })
            .collect();
        for (key, flags) in stale {
            self.clear_flags(key, flags)?;
        }
        for (flag, keys) in roles {
            for key in keys {
                self.add_inode_flags(*key, flag, sensor_common::maps::GENERATION_ANY)?;
            }
        }
        Ok(skipped)
    }

    /// Protected paths: exactly these inodes carry `INODE_PROTECTED` afterwards (marks of
    /// an earlier set, or of the pinned map of the last sensor, that it lacks are lifted).
    /// Returns how many are marked.
    pub fn set_protected(&mut self, inodes: &BTreeSet<(InodeKey, u32)>) -> Result<usize> {
        let flag = sensor_common::maps::INODE_PROTECTED;
        let wanted: BTreeSet<InodeKey> = inodes.iter().map(|(k, _)| *k).collect();
        let stale: Vec<InodeKey> = self
            .inodes
            .iter()
            .filter_map(|entry| entry.ok())
            .filter(|(key, state)| state.flags & flag != 0 && !wanted.contains(key))
            .map(|(key, _)| key)
            .collect();
        for key in stale {
            self.clear_flags(key, flag)?;
        }
        for (key, generation) in inodes {
            self.add_inode_flags(*key, flag, *generation)?;
        }
        Ok(inodes.len())
    }

    /// taint_survives_exec and dedup_writes, as the programs read them at each event.
    pub fn set_rules(&mut self, config: &Config) -> Result<()> {
        set_rules(&mut self._ebpf, config)
    }

    pub fn add_inode_flags(&mut self, key: InodeKey, flags: u32, generation: u32) -> Result<()> {
        let old = self.inodes.get(&key, 0).ok();
        let state = InodeState {
            flags: old.map_or(0, |s| s.flags) | flags,
            generation: if generation == sensor_common::maps::GENERATION_ANY { old.map_or(generation, |s| s.generation) } else { generation },
        };
        self.inodes.insert(key, state, 0).context("INODES map is full")?;
        Ok(())
    }

    /// Entries in PROCS, entries in INODES, and the inodes of those held untrusted: one
    /// walk of each map (for `status` and the metrics).
    /// Batch reads (`kernel::batch`) where the kernel has them, else entry by entry.
    pub fn map_fill(&self) -> (usize, usize, usize) {
        let is_untrusted = |state: &InodeState| usize::from(state.flags & sensor_common::maps::INODE_UNTRUSTED != 0);
        let mut untrusted = 0;
        let batched = batch::for_each_value::<ProcState>(self.fill_fds.0.as_fd(), size_of::<u32>(), |_| ()).and_then(|procs| {
            let inodes = batch::for_each_value(self.fill_fds.1.as_fd(), size_of::<InodeKey>(), |s| untrusted += is_untrusted(s))?;
            Ok((procs, inodes))
        });
        match batched {
            Ok((procs, inodes)) => (procs, inodes, untrusted),
            Err(e) => {
                if let batch::BatchError::Io(e) = e {
                    warn!("batch read of the kernel maps failed ({e}); reading them entry by entry");
                }
                let procs = self.procs.keys().filter(|k| k.is_ok()).count();
                let (mut inodes, mut untrusted) = (0, 0);
                for (_, state) in self.inodes.iter().filter_map(|e| e.ok()) {
                    inodes += 1;
                    untrusted += is_untrusted(&state);
                }
                (procs, inodes, untrusted)
            }
        }
    }

    /// Clears `flags` of an inode (manual trust relabel) and forgets which processes have
    /// written it, so a later write by a tainted process is reported again.
    pub fn clear_inode_flags(&mut self, key: InodeKey, flags: u32) -> Result<()> {
        self.clear_flags(key, flags)?;
        let stale: Vec<WriteSeenKey> = self.write_seen.keys().filter_map(|k| k.ok()).filter(|k| k.inode == key).collect();
        for k in stale {
            let _ = self.write_seen.remove(&k);
        }
        Ok(())
    }

    /// Clears the untrusted flag only, keeping the write de-duplication of the file (a port
    /// program's own state: its next writes need not be reported again).
    pub fn forget_untrusted(&mut self, key: InodeKey) -> Result<()> {
        // (FLAGGED never stays alone: the exec hook would kill without recording it.)
        self.clear_flags(key, sensor_common::maps::INODE_UNTRUSTED | sensor_common::maps::INODE_FLAGGED)
    }

    fn clear_flags(&mut self, key: InodeKey, flags: u32) -> Result<()> {
        if let Ok(mut state) = self.inodes.get(&key, 0) {
            state.flags &= !flags;
            if state.flags == 0 {
                let _ = self.inodes.remove(&key);
            } else {
                self.inodes.insert(key, state, 0)?;
            }
        }
        Ok(())
    }

    pub fn inode_flags(&self, key: &InodeKey) -> u32 {
        self.inodes.get(key, 0).map_or(0, |s| s.flags)
    }

    /// Adds `flags` to a live process (restored taint, programs running before start-up).
    pub fn add_proc_flags(&mut self, tgid: u32, start_ticks: u64, flags: u32) -> Result<()> {
        let old = self.procs.get(&tgid, 0).ok();
        let state = ProcState {
            start_boottime_ns: old.map_or(procfs::ticks_to_boot_ns(start_ticks), |s| s.start_boottime_ns),
            flags: old.map_or(0, |s| s.flags) | flags,
            _pad: 0,
        };
        self.procs.insert(tgid, state, 0).context("PROCS map is full")?;
        Ok(())
    }

    /// The running processes given exactly the roles (port program, interpreter) of their
    /// binary's flags, as their exec would have: those running a program when the sensor
    /// starts or a reload adds it gain the role, those running one no longer configured
    /// lose it. Returns how many processes have a role.
    pub fn seed_running_programs(&mut self) -> usize {
        const ROLES: u32 = PROC_PORT_PROGRAM | PROC_INTERPRETER;
        let mut n = 0;
        for pid in procfs::pids() {
            let Some(exe) = procfs::exe(pid) else { continue };
            let Ok((key, _)) = procfs::inode_of(Path::new(&exe)) else { continue };
            let flags = self.inode_flags(&key);
            let mut want = 0;
            if flags & INODE_PORT_PROGRAM != 0 {
                want |= PROC_PORT_PROGRAM;
            }
            if flags & INODE_INTERPRETER != 0 {
                want |= PROC_INTERPRETER;
            }
            let result = match self.procs.get(&pid, 0).ok() {
                Some(state) if state.flags & ROLES == want => Ok(()),
                Some(mut state) => {
                    state.flags = state.flags & !ROLES | want;
                    if state.flags == 0 {
                        self.procs.remove(&pid).map_err(anyhow::Error::from)
                    } else {
                        self.procs.insert(pid, state, 0).map_err(anyhow::Error::from)
                    }
                }
                None if want == 0 => Ok(()),
                None => match procfs::start_ticks(pid) {
                    Some(ticks) => self.add_proc_flags(pid, ticks, want),
                    None => continue, // exited meanwhile
                },
            };
            match result {
                Ok(()) if want != 0 => n += 1,
                Ok(()) => {}
                Err(e) => warn!("pid {pid} ({exe}): its port program/interpreter role not updated in the kernel: {e:#}"),
            }
        }
        n
    }

    /// Kernel drop counters summed over CPUs: (name, count) for every slot.
    pub fn drop_counts(&self) -> Vec<(String, u64)> {
        (0..DROP_SLOTS)
            .map(|slot| {
                let total = self.drops.get(&slot, 0).map(|v| v.iter().sum()).unwrap_or(0);
                let name = if (slot as usize) < EVENT_KIND_COUNT {
                    format!("ringbuf_full.{}", EventKind::ALL[slot as usize].as_str())
                } else {
                    DROP_SLOT_NAMES[slot as usize - EVENT_KIND_COUNT].to_string()
                };
                (name, total)
            })
            .collect()
    }
}

/// The inodes of the configured port programs and interpreters present on this host.
struct ProgramInodes {
    port_programs: BTreeSet<InodeKey>,
    interpreters: BTreeSet<InodeKey>,
}

impl ProgramInodes {
    /// Also the configured paths that do not exist here.
    fn of(config: &Config) -> (Self, Vec<String>) {
        let mut skipped = Vec::new();
        let mut inodes = |paths: &[std::path::PathBuf]| -> BTreeSet<InodeKey> {
            paths
                .iter()
                .filter_map(|path| match procfs::inode_of(path) {
                    Ok((key, _)) => Some(key),
                    Err(_) => {
                        skipped.push(path.display().to_string());
                        None
                    }
                })
                .collect()
        };
        let programs = Self { port_programs: inodes(&config.port_programs), interpreters: inodes(&config.interpreters) };
        (programs, skipped)
    }

    /// (inode flag, inodes) for each role.
    fn by_flag(&self) -> [(u32, &BTreeSet<InodeKey>); 2] {
        [(INODE_PORT_PROGRAM, &self.port_programs), (INODE_INTERPRETER, &self.interpreters)]
    }
}

fn set_rules(ebpf: &mut Ebpf, config: &Config) -> Result<()> {
    let rules = SensorConfig { taint_survives_exec: config.taint_survives_exec as u32, dedup_writes: config.dedup_writes as u32 };
    Array::<_, SensorConfig>::try_from(ebpf.map_mut(names::CONFIG).context("CONFIG map")?)?.set(0, rules, 0)?;
    Ok(())
}

/// Loads and attaches `name`; with `links`, its link is pinned there, or, where it cannot
/// be, the program is attached again for this process's life (and named in `unpinned`).
fn attach(ebpf: &mut Ebpf, name: &str, btf: &Btf, links: Option<&mut PinnedLinks>) -> Result<()> {
    let program = ebpf.program_mut(name).ok_or_else(|| anyhow!("program {name} is not in the eBPF object"))?;
    if name.starts_with("tp_btf_") {
        let p: &mut BtfTracePoint = program.try_into()?;
        let tracepoint = name.trim_start_matches("tp_btf_");
        p.load(tracepoint, btf)?;
        let id = p.attach()?;
        if let Some(links) = links
            && !pin_link(links, name, p.take_link(id))
        {
            p.attach()?;
        }
    } else if let Some((category, tracepoint)) = strategy::tracepoint_of(name) {
        let dir = Path::new("/sys/kernel/tracing/events").join(category).join(tracepoint);
        if !dir.exists() {
            bail!("tracepoint {category}/{tracepoint} does not exist on this kernel");
        }
        if let Ok(format) = std::fs::read_to_string(dir.join("format"))
            && let Some(why) = strategy::layout_mismatch(name, &format)
        {
            bail!("tracepoint {category}/{tracepoint}: {why}");
        }
        let p: &mut TracePoint = program.try_into()?;
        p.load()?;
        let id = p.attach(category, tracepoint)?;
        if let Some(links) = links
            && !pin_link(links, name, p.take_link(id))
        {
            p.attach(category, tracepoint)?;
        }
    } else {
        // kp_/kr_/fe_/fx_: a kernel function; the object says which kind of program.
        let function = strategy::function_of(name).ok_or_else(|| anyhow!("no attach rule for program {name}"))?;
        match program {
            Program::KProbe(p) => {
                p.load()?;
                let id = p.attach(&function, 0)?;
                if let Some(links) = links
                    && !pin_link(links, name, p.take_link(id))
                {
                    p.attach(&function, 0)?;
                }
            }
            Program::FEntry(p) => {
                p.load(&function, btf)?;
                let id = p.attach()?;
                if let Some(links) = links
                    && !pin_link(links, name, p.take_link(id))
                {
                    p.attach()?;
                }
            }
            Program::FExit(p) => {
                p.load(&function, btf)?;
                let id = p.attach()?;
                if let Some(links) = links
                    && !pin_link(links, name, p.take_link(id))
                {
                    p.attach()?;
                }
            }
            _ => bail!("no attach rule for program {name}"),
        }
    }
    Ok(())
}

/// Pins the link `take_link` gave; false (the reason noted in `unpinned`) when it is not
/// a bpf_link (a perf link on a kernel before 5.15) or the pin fails: the link was dropped
/// then, detaching the program, which the caller attaches again.
fn pin_link<L>(links: &mut PinnedLinks, name: &str, link: Result<L, aya::programs::ProgramError>) -> bool
where
    FdLink: TryFrom<L>,
    <FdLink as TryFrom<L>>::Error: std::error::Error + Send + Sync + 'static,
{
    let pinned = link.map_err(anyhow::Error::from).and_then(|l| Ok(FdLink::try_from(l)?)).and_then(|link| links.pin(name, link));
    match pinned {
        Ok(()) => true,
        Err(e) => {
            links.unpinned.push(format!("{name}: {e:#}"));
            false
        }
    }
}

fn detach(ebpf: &mut Ebpf, links: Option<&mut PinnedLinks>, name: &str) {
    if let Some(links) = links {
        links.remove(name);
    }
    let Some(program) = ebpf.program_mut(name) else { return };
    let _ = match program {
        Program::KProbe(p) => p.unload(),
        Program::FEntry(p) => p.unload(),
        Program::FExit(p) => p.unload(),
        Program::TracePoint(p) => p.unload(),
        _ => Ok(()),
    };
}

/// A duplicate of a hash map's descriptor (see `Sensor::fill_fds`).
fn batch_fd(map: &aya::maps::Map) -> Result<OwnedFd> {
    match map {
        aya::maps::Map::HashMap(data) | aya::maps::Map::LruHashMap(data) => Ok(data.fd().as_fd().try_clone_to_owned()?),
        _ => bail!("not a hash map"),
    }
}
