//! `vtrail-sensor run`: one task owns the kernel maps and the graph; it drains the ring
//! buffer, ingests events, answers the control socket and reports drops.

mod drain;
mod losses;
mod metrics;
pub mod network;
mod reload;
pub(crate) mod scanning;
mod service;
use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, atomic::{AtomicU64, Ordering}},
    time::Duration,
};

use anyhow::{Context, Result};
use tracing::{error, info, warn};
use serde_json::json;
use sensor_common::{
    graph::HostInfo,
    maps::{INODE_UNTRUSTED, PROC_TAINTED},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, unix::AsyncFd},
    net::{UnixListener, UnixStream},
    sync::{broadcast, mpsc, oneshot},
};

use crate::{
    config::Config,
    control::{
        Request,
        status::{DatabaseStatus, KernelStateStatus, NetworkStatus, Status},
    },
    correlate::naming::NamingStats,
    fleet::Fleet,
    decode::events::{self, SensorEvent},
    graph::{
        GraphStore, GraphWriter, export,
        ingest::{Ingest, KernelAction},
    },
    host::procfs::{self, WallClock},
    kernel::sensor::{self, Sensor},
};

#[derive(Default)]
struct Counters {
    by_kind: BTreeMap<&'static str, u64>,
    decode_errors: u64,
    ingest_errors: u64,
    ingest_seconds: f64,
    flushes: u64,
    flush_seconds: f64,
    last_flush_seconds: f64,
    losses: losses::Losses,
    /// The kernel maps' fill, read at most once a second (`MAP_FILL_EVERY`): walking 200,000
    /// entries takes as many syscalls, too many for every `status` or scrape.
    map_fill: Option<(std::time::Instant, MapFill)>,
}

#[derive(Clone, Copy)]
struct MapFill {
    procs: usize,
    inodes: usize,
    untrusted: usize,
}

const MAP_FILL_EVERY: Duration = Duration::from_secs(1);

impl Counters {
    fn map_fill(&mut self, sensor: &Sensor) -> MapFill {
        match self.map_fill {
            Some((at, fill)) if at.elapsed() < MAP_FILL_EVERY => fill,
            _ => {
                let (procs, inodes, untrusted) = sensor.map_fill();
                let fill = MapFill { procs, inodes, untrusted };
                self.map_fill = Some((std::time::Instant::now(), fill));
                fill
            }
        }
    }
}

/// How often the graph is flushed to disk: on a crash (kill -9, power loss) what was
/// ingested longer ago than this is on disk.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// A control request and where to send the answer (lines, then end of stream).
pub(crate) struct Call {
    pub(crate) request: Request,
    pub(crate) reply: oneshot::Sender<Vec<u8>>,
}

pub fn host_info() -> HostInfo {
    crate::correlate::naming::this_host(Path::new("/"))
}

/// `config` as read from `config_path` (None: the embedded default), which SIGHUP reads
/// again.
pub async fn run(config: Config, config_path: Option<std::path::PathBuf>, recover: bool) -> Result<()> {
    sensor::preflight()?;
    raise_open_files_limit();
    // From here on SIGHUP reloads rather than kills (its default action).
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut config = Arc::new(config);
    // Everything the daemon creates (database, runtime records, socket) is root's alone.
    unsafe { libc::umask(0o077) };
    // `Open` and `Schema` already name the database and what to do; the rest (an
    // unreadable record found by `verify`) gets the same advice here.
    let (store, recovered) = GraphStore::open_or_recover(&config.database, recover).map_err(|e| match e {
        crate::graph::store::StoreError::Schema { .. } | crate::graph::store::StoreError::Open { .. } => {
            anyhow::Error::new(e)
        }
        e => anyhow::Error::new(e).context(format!(
            "the graph database {} cannot be used; `vtrail-sensor run --recover` moves it aside and starts on a fresh one",
            config.database.display()
        )),
    })?;
    if let Some((aside, why)) = &recovered {
        error!("the graph database was damaged ({why}); moved aside to {} and started on a fresh one (--recover)", aside.display());
    }
    // The ids of this boot's disks; a database moved to other hardware keeps its records,
    // which name the host they were made on.
    let host = host_info();
    if let Some(old) = store.host()?
        && old.id != host.id
    {
        warn!("database {} was recorded as host {}; this host is {}", config.database.display(), old.id, host.id);
    }
    // The fleet's outbox is on before anything is recorded, so every record is queued.
    let fleet = match config.fleet.enabled() {
        true => Some(Fleet::start(&config.fleet, &store, &host.id).await?),
        false => None,
    };
    store.set_host(&host)?;
    GraphWriter::new(&store, &host.id).host(procfs::now_wall_ns(), &host)?;
    info!("this host: node id {} (disks: {})", host.id, host.disk_ids.join(", "));

    let engines = scanning::Scanning::engines(&config, &store)?;
    let mut sensor = Sensor::load(&config, Some(&config.kernel_state))?;
    let skipped = sensor.seed_programs(&config)?;
    if !skipped.is_empty() {
        info!("configured programs not present on this host (ignored): {}", skipped.join(", "));
    }
    let mut restored = restore(&mut sensor, &store, config.response.deny_exec, engines.any())?;
    // (Inodes change when files are replaced: the marks are made again from the paths.)
    let (protected, _) = crate::respond::apply::enforce_protected(&mut sensor, &config, &store)?;
    if protected > 0 {
        info!("protected paths: {protected} inode(s) guarded against tainted writers");
    }
    let running = sensor.seed_running_programs();
    info!(
        "restored {} untrusted files and {} live tainted processes from {} ({} flagged by a scan: stopped when run); {} running port programs/interpreters",
        restored.files, restored.live_procs, config.database.display(), restored.flagged, running
    );

    let (mut net, network_failure) = match crate::daemon::network::Monitor::start(&mut sensor, &config)? {
        crate::daemon::network::Started::On(m) => (Some(*m), None),
        crate::daemon::network::Started::Degraded(why) => (None, Some(why)),
        crate::daemon::network::Started::Off => (None, None),
    };
    match net.as_mut() {
        Some(m) => m.restore_blocks(&store),
        None => {
            let blocked = store.blocked_hosts().unwrap_or_default();
            if !blocked.is_empty() {
                warn!("{} host(s) are recorded as blocked ({}) but network monitoring is off: the block is NOT enforced", blocked.len(), blocked.join(", "));
            }
        }
    }
    let (mut scanning, mut verdicts, mut held) = match scanning::Scanning::start(&config, engines)? {
        Some((s, r)) => (Some(s), Some(r.verdicts), Some(r.held)),
        None => (None, None, None),
    };
    if let Some(s) = scanning.as_ref() {
        s.closes().rewatch(std::mem::take(&mut restored.rewatch));
    }
    let webhook = match &config.response.webhook {
        Some(url) => {
            info!("webhook: alerts are posted to {url}");
            Some(crate::respond::webhook::start(url.clone(), store.alerts_reader(crate::graph::store::WEBHOOK_KEY))?)
        }
        None => None,
    };
    let mut naming_answers = net.as_mut().and_then(|m| m.take_naming_answers());
    if let Some(logger) = sensor.take_logger() {
        spawn_kernel_log_reader(logger);
    }
    let ring = sensor.take_events().context("ring buffer already taken")?;
    let mut drain = drain::Drain::start(ring, config.ring_buffer_bytes)?;
    let clock = WallClock::now();
    let smb_conf = std::fs::read_to_string(config.smb_conf.clone().unwrap_or_else(|| "/etc/samba/smb.conf".into())).ok();
    let mut reloader = reload::Reloader::new(config_path, smb_conf, procfs::now_wall_ns());
    let mut ingest = Ingest::new(&store, host.clone(), config.clone()).with_port_state(reloader.port_state(&config));
    if let Some(m) = net.as_mut() {
        for problem in m.sync_configured_blocks(ingest.graph(), &config.blocked_hosts) {
            error!("{problem}");
        }
    } else if !config.blocked_hosts.is_empty() {
        warn!("blocked_hosts lists {} host(s) but network monitoring is off: the block is NOT enforced", config.blocked_hosts.len());
    }
    let mut counters = Counters::default();
    let (events_tx, _) = broadcast::channel::<Arc<String>>(4096);
    let follower_lag = Arc::new(AtomicU64::new(0));
    let (calls_tx, mut calls_rx) = mpsc::channel::<Call>(64);

    let listener = bind_socket(&config.socket)?;
    if let Some(addr) = config.metrics_listen {
        metrics::start(addr, calls_tx.clone()).await?;
    }
    tokio::spawn(accept_loop(listener, calls_tx, events_tx.clone(), follower_lag.clone()));
    let started_ns = procfs::now_wall_ns();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut flush_tick = tokio::time::interval(FLUSH_INTERVAL);
    let mut origin_tick = tokio::time::interval(Duration::from_millis(250));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // Pinged from this loop, so a loop stuck in a call (or a drain thread that died:
    // nothing would be recorded any more) stops the pings and the manager restarts it.
    let mut watchdog = service::watchdog_interval().map(tokio::time::interval);
    info!("vtrail-sensor running: strategy {:?}, database {}, socket {}", sensor.strategy, config.database.display(), config.socket.display());
    // Up: a crash from here on leaves the programs attached (pinned links).
    sensor.keep_programs_after_a_crash();
    service::ready(&format!("recording: strategy {:?}, {} programs", sensor.strategy, sensor.attached.len()));

    loop {
        tokio::select! {
            Some(batch) = drain.batches.recv() => {
                ingest_batch(&batch, &drain.stats, &mut Stages { ingest: &mut ingest, sensor: &mut sensor, net: net.as_mut(), closes: scanning.as_ref().map(|s| s.closes()), counters: &mut counters, clock: &clock, events_tx: &events_tx });
            }
            _ = flush_tick.tick() => flush(&store, &mut counters),
            Some(verdict) = async {
                match verdicts.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(s) = scanning.as_mut()
                    && let Err(e) = s.responder.on_verdict(verdict, ingest.graph(), net.as_mut(), &mut sensor, &config.response)
                {
                    error!("cannot record a scan verdict: {e:#}");
                }
            }
            Some(decision) = async {
                match held.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if !decision.allowed
                    && let Err(e) = crate::respond::record_refused_exec(ingest.graph(), &decision)
                {
                    error!("cannot record a refused exec: {e:#}");
                }
            }
            _ = origin_tick.tick(), if scanning.as_ref().is_some_and(|s| s.responder.has_waiting()) => {
                if let Some(s) = scanning.as_mut() {
                    s.responder.poll(ingest.graph(), net.as_mut(), &config.response);
                }
            }
            Some(answer) = async {
                match naming_answers.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(m) = net.as_mut() { m.on_named(ingest.graph(), answer); }
            }
            Some(call) = calls_rx.recv() => {
                let changes = call.request.changes_state();
                let (trusted, tainted) = match &call.request {
                    Request::Trust { path, .. } => (Some(path.clone()), None),
                    Request::Taint { path, .. } => (None, Some(path.clone())),
                    _ => (None, None),
                };
                let answer = if matches!(call.request, Request::Status) {
                    let mut status = status(&ingest, &sensor, &store, &mut counters, &follower_lag, started_ns, network_failure.as_deref());
                    status.ring = drain.ring_status();
                    status.config = reloader.status.clone();
                    if let Some(s) = scanning.as_ref() {
                        status.scan = s.status();
                    }
                    if let Some(w) = webhook.as_ref() {
                        status.scan.webhook_delivered = w.delivered.load(Ordering::Relaxed);
                        status.scan.webhook_failures = w.failures.load(Ordering::Relaxed);
                        status.scan.webhook_last_error = w.last_error.lock().ok().and_then(|e| e.clone());
                    }
                    if let Some(m) = net.as_ref() {
                        m.fill_status(&mut status);
                    }
                    if let Some(f) = fleet.as_ref() {
                        status.fleet = f.status(procfs::now_wall_ns());
                    }
                    serde_json::to_vec(&status).unwrap_or_else(|e| error_answer(&e.into()))
                } else if let Request::ApplyRules { rules, source, by } = &call.request {
                    let targets = crate::respond::apply::Targets {
                        graph: ingest.graph(),
                        sensor: &mut sensor,
                        net: net.as_mut(),
                        scanning: scanning.as_mut(),
                        config: &config,
                    };
                    match crate::respond::apply::apply(rules, source, by, targets) {
                        Ok(report) => serde_json::to_vec(&report).unwrap_or_else(|e| error_answer(&e.into())),
                        Err(e) => error_answer(&e),
                    }
                } else {
                    match net.as_mut().and_then(|m| m.handle(&call.request, ingest.graph())) {
                        Some(a) => a,
                        None => answer(call.request, &mut ingest, &mut sensor, &store),
                    }
                };
                if let (Some(path), Some(s)) = (&trusted, scanning.as_ref())
                    && let Some((key, _)) = procfs::fs_path(path).and_then(|p| procfs::inode_of(&p).ok())
                {
                    s.forget(&key);
                }
                if let (Some(path), Some(s)) = (&tainted, scanning.as_ref())
                    && let Some(p) = procfs::fs_path(path)
                    && let Ok((key, generation)) = procfs::inode_of(&p)
                {
                    s.scan_path(key, generation, &p);
                }
                // An operator's change is on disk before it is acknowledged: a crash right
                // after "ok" must not lose a block or a trust.
                let answer = if changes { durable(answer, &store) } else { answer };
                let _ = call.reply.send(answer);
            }
            _ = tick.tick() => {
                counters.losses.poll(&sensor, drain.stats.queue_full_waits.load(Ordering::Relaxed));
                if let Some(m) = net.as_mut() {
                    m.tick(&mut sensor);
                    for line in m.release_held(&clock, ingest.graph()) {
                        if events_tx.receiver_count() > 0 {
                            let _ = events_tx.send(Arc::new(line));
                        }
                    }
                }
            }
            _ = async {
                match watchdog.as_mut() {
                    Some(w) => w.tick().await,
                    None => std::future::pending().await,
                }
            } => {
                if drain.is_running() {
                    service::watchdog();
                } else {
                    error!("the ring buffer thread has stopped: nothing is recorded any more; no watchdog ping, so the service manager restarts the sensor");
                }
            }
            _ = sighup.recv() => {
                let live = reload::Live { sensor: &mut sensor, ingest: &mut ingest, net: net.as_mut() };
                if let Some(new) = reloader.reload(&config, live) {
                    config = new;
                    if let Some(s) = scanning.as_ref() {
                        s.configure(&config.response);
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        }
    }
    service::stopping();
    info!("stopping: recording what the kernel already sent, flushing the graph, detaching programs");
    // What was drained but not yet ingested is recorded before the database closes.
    drain.stop();
    while let Ok(batch) = drain.batches.try_recv() {
        ingest_batch(&batch, &drain.stats, &mut Stages { ingest: &mut ingest, sensor: &mut sensor, net: net.as_mut(), closes: scanning.as_ref().map(|s| s.closes()), counters: &mut counters, clock: &clock, events_tx: &events_tx });
    }
    counters.losses.flush(&sensor, drain.stats.queue_full_waits.load(Ordering::Relaxed));
    if let Some(m) = net.as_mut() { m.release_all_held(&clock, ingest.graph()); }
    store.close_outbox()?;
    store.flush()?;
    let _ = std::fs::remove_file(&config.socket);
    if let Some(mut m) = net.take() { m.stop(&mut sensor); }
    sensor.release_links();
    drop(sensor);
    Ok(())
}

/// The soft limit of open files up to the hard one: scanning holds a descriptor per queued
/// file and per fanotify event read (a soft limit of 1024 would make fanotify's reads fail).
fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 && limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            warn!("cannot raise the open-files limit to {}: {}", limit.rlim_max, std::io::Error::last_os_error());
        }
    }
}

/// Flushes the graph to disk, timed for `status`.
fn flush(store: &GraphStore, counters: &mut Counters) {
    let started = std::time::Instant::now();
    if let Err(e) = store.flush() {
        error!("cannot flush the graph database: {e}");
    }
    counters.last_flush_seconds = started.elapsed().as_secs_f64();
    counters.flush_seconds += counters.last_flush_seconds;
    counters.flushes += 1;
}

/// What one kernel record passes through, in order.
struct Stages<'s, 'a> {
    ingest: &'s mut Ingest<'a>,
    sensor: &'s mut Sensor,
    net: Option<&'s mut crate::daemon::network::Monitor>,
    /// Scanning's requests for untrusted files' closes (None when scanning is off).
    closes: Option<&'s crate::scan::marks::CloseWatch>,
    counters: &'s mut Counters,
    clock: &'s WallClock,
    events_tx: &'s broadcast::Sender<Arc<String>>,
}

/// A batch from the drain thread, record by record, timed for `status`.
fn ingest_batch(batch: &drain::Batch, stats: &drain::DrainStats, stages: &mut Stages) {
    let started = std::time::Instant::now();
    for record in batch.records() {
        ingest_record(record, stages);
    }
    stats.ingested(batch);
    stages.counters.ingest_seconds += started.elapsed().as_secs_f64();
}

/// One record from the ring: a network record goes to network attribution, any other to
/// the graph (and the kernel maps, when ingest says so); followers get it as JSON.
fn ingest_record(record: &[u8], s: &mut Stages) {
    let follow = s.events_tx.receiver_count() > 0;
    if crate::decode::net::is_net(record) {
        if let Some(m) = s.net.as_deref_mut() {
            for line in m.on_record(record, s.clock, s.ingest.graph()) {
                if follow {
                    let _ = s.events_tx.send(Arc::new(line));
                }
            }
        }
        return;
    }
    let raw = match events::parse(record) {
        Ok(raw) => raw,
        Err(e) => {
            s.counters.decode_errors += 1;
            s.counters.losses.undecodable(e.to_string());
            return;
        }
    };
    let ev = events::decode(&raw, s.clock);
    *s.counters.by_kind.entry(ev.kind.as_str()).or_default() += 1;
    handle_event(&ev, s.ingest, s.sensor, s.closes, s.counters);
    if let Some(m) = s.net.as_deref_mut() {
        m.on_event(&ev, s.ingest.graph());
    }
    if follow && let Ok(line) = serde_json::to_string(&ev) {
        let _ = s.events_tx.send(Arc::new(line));
    }
}

/// `answer` once the database is flushed; an error answer if it cannot be.
fn durable(answer: Vec<u8>, store: &GraphStore) -> Vec<u8> {
    match store.flush() {
        Ok(()) => answer,
        Err(e) => {
            error!("cannot flush the graph database after an operator's change: {e}");
            serde_json::to_vec(&json!({"error": format!("the change is applied but not yet on disk (flush failed: {e}); it may be lost if the sensor stops now")}))
                .unwrap_or_default()
        }
    }
}

fn handle_event(ev: &SensorEvent, ingest: &mut Ingest, sensor: &mut Sensor, closes: Option<&crate::scan::marks::CloseWatch>, counters: &mut Counters) {
    match ingest.apply(ev) {
        Ok(actions) => {
            for action in actions {
                match action {
                    KernelAction::MarkUntrusted { key, generation } => {
                        if let Err(e) = sensor.add_inode_flags(key, INODE_UNTRUSTED, generation) {
                            warn!("cannot mark inode {}:{} untrusted in the kernel: {e:#}", key.dev, key.ino);
                        }
                    }
                    KernelAction::NotAnArrival { key } => {
                        if let Err(e) = sensor.forget_untrusted(key) {
                            warn!("cannot clear inode {}:{} (a port program's own state) in the kernel: {e:#}", key.dev, key.ino);
                        }
                    }
                    KernelAction::WatchCloses { key, generation, pid, path } => {
                        if let Some(closes) = closes {
                            closes.request(crate::scan::marks::WatchRequest { key, generation, pid, path, scan: true });
                        }
                    }
                }
            }
        }
        Err(e) => {
            counters.ingest_errors += 1;
            error!("cannot record {} event of pid {}: {e:#}", ev.kind.as_str(), ev.tgid);
        }
    }
    if ev.inode_map_full {
        counters.losses.inode_map_full(ev.path.clone().unwrap_or_default());
    }
}

/// What `restore` put back into the kernel maps.
struct Restored {
    files: usize,
    flagged: usize,
    live_procs: usize,
    /// The untrusted files, for scanning to watch their closes again (when it is on).
    rewatch: Vec<crate::scan::marks::WatchRequest>,
}

/// Rebuilds the kernel taint maps from the graph: restarting forgets nothing. Pinned maps
/// outlive a restart of the sensor but not a reboot: an untrusted file a scan flagged (its
/// node `malicious`) is flagged again, so that `deny_exec` still stops it (a file trusted
/// with `--force` since is no longer untrusted, so it is not).
/// With `scanning`, each file's last recorded path is kept for scanning to mark it again.
fn restore(sensor: &mut Sensor, store: &GraphStore, deny_exec: bool, scanning: bool) -> Result<Restored> {
    let files = store.untrusted_files()?;
    let mut flagged = 0;
    let mut rewatch = Vec::new();
    for (key, file) in &files {
        let node = if deny_exec || scanning { store.node(&file.node)? } else { None };
        if scanning {
            let path = node.as_ref().and_then(|n| match &n.data {
                sensor_common::graph::NodeData::File { paths, .. } => paths.last().cloned(),
                _ => None,
            });
            rewatch.push(crate::scan::marks::WatchRequest { key: *key, generation: file.generation, pid: 0, path, scan: false });
        }
        let malicious = deny_exec && is_malicious(node);
        let flags = if malicious { INODE_UNTRUSTED | sensor_common::maps::INODE_FLAGGED } else { INODE_UNTRUSTED };
        sensor.add_inode_flags(*key, flags, file.generation)?;
        flagged += usize::from(malicious);
    }
    let mut live = 0;
    for (tgid, ticks) in store.tainted_procs()? {
        if procfs::start_ticks(tgid) == Some(ticks) {
            sensor.add_proc_flags(tgid, ticks, PROC_TAINTED)?;
            live += 1;
        } else {
            store.clear_tainted_proc(tgid, ticks)?;
        }
    }
    Ok(Restored { files: files.len(), flagged, live_procs: live, rewatch })
}

/// The daemon's status; network monitoring adds its part (`Network::fill_status`).
fn status(
    ingest: &Ingest,
    sensor: &Sensor,
    store: &GraphStore,
    counters: &mut Counters,
    follower_lag: &AtomicU64,
    started_ns: u64,
    network_failure: Option<&str>,
) -> Status {
    let (nodes, edges) = store.counts();
    Status {
        pid: std::process::id(),
        host: ingest.host().clone(),
        started_ns,
        strategy: sensor.strategy,
        strategy_fallbacks: sensor.fallbacks.clone(),
        attached_programs: sensor.attached.clone(),
        missing_optional_programs: sensor.missing.clone(),
        events_received: counters.by_kind.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
        decode_errors: counters.decode_errors,
        ingest_errors: counters.ingest_errors,
        port_program_state_writes_ignored: ingest.state_writes_ignored,
        kernel_drops: sensor.drop_counts().into_iter().collect(),
        kernel_state: {
            let fill = counters.map_fill(sensor);
            KernelStateStatus {
                carried_over: sensor.carried.clone(),
                links_pinned: sensor.links_pinned(),
                unpinned_links: sensor.unpinned_links().to_vec(),
                untrusted_inodes: fill.untrusted,
                procs_entries: fill.procs,
                procs_capacity: sensor_common::maps::MAX_PROCS as usize,
                inodes_entries: fill.inodes,
                inodes_capacity: sensor_common::maps::MAX_INODES as usize,
            }
        },
        follower_lagged_events: follower_lag.load(Ordering::Relaxed),
        naming: NamingStats::default(),
        network: NetworkStatus {
            enabled: false,
            failure: network_failure.map(str::to_owned),
            blocked_hosts: store.blocked_hosts().unwrap_or_default(),
            ..NetworkStatus::default()
        },
        fleet: Default::default(),
        database: DatabaseStatus {
            path: store.path().to_owned(),
            size_bytes: store.size_on_disk(),
            nodes,
            edges,
            untrusted_files: store.untrusted_count(),
            tainted_processes: store.tainted_count(),
            flushes: counters.flushes,
            flush_seconds: counters.flush_seconds,
            last_flush_seconds: counters.last_flush_seconds,
            ingest_seconds: counters.ingest_seconds,
        },
        ring: Default::default(),
        config: Default::default(),
        scan: Default::default(),
    }
}

fn error_answer(e: &anyhow::Error) -> Vec<u8> {
    serde_json::to_vec(&json!({"error": format!("{e:#}")})).unwrap_or_default()
}

fn answer(request: Request, ingest: &mut Ingest, sensor: &mut Sensor, store: &GraphStore) -> Vec<u8> {
    let result: Result<Vec<u8>> = (|| match request {
        Request::Trust { path, by, .. } | Request::Taint { path, by } if path.is_empty() || by.is_empty() => {
            anyhow::bail!("empty path or actor")
        }
        Request::Trust { path, by, force } => {
            let flagged = flagged(ingest, &path)?;
            match (flagged, force) {
                (true, false) => anyhow::bail!(
                    "{path} was flagged by a scan (`vtrail-sensor alerts`): `trust --force` trusts it anyway, recorded as such"
                ),
                (true, true) => relabel(ingest, sensor, &path, false, &format!("{by}, --force over a detection")),
                (false, _) => relabel(ingest, sensor, &path, false, &by),
            }
        }
        Request::Taint { path, by } => relabel(ingest, sensor, &path, true, &by),
        Request::Export { format, since_ns } => {
            let mut out = Vec::new();
            export::export(store, ingest.host(), format, since_ns, &mut out)?;
            Ok(out)
        }
        Request::Alerts { since_ns, after_seq } => {
            let mut out = Vec::new();
            for alert in store.alerts_since(since_ns, after_seq)? {
                serde_json::to_writer(&mut out, &alert)?;
                out.push(b'\n');
            }
            Ok(out)
        }
        Request::Block { .. } | Request::Unblock { .. } => {
            anyhow::bail!("network monitoring is off (network_monitoring = false, or its programs failed to load: see the sensor log)")
        }
        // Answered by `status`, the connection task and the event loop.
        Request::Status | Request::Events | Request::ApplyRules { .. } => anyhow::bail!("internal: request answered elsewhere"),
    })();
    result.unwrap_or_else(|e| error_answer(&e))
}

/// Did a scan flag the file at `path` (its node is `malicious`)?
fn flagged(ingest: &Ingest, path: &str) -> Result<bool> {
    let fs_path = procfs::fs_path(path).with_context(|| format!("{path}: not a path as vtrail stores them"))?;
    let (key, _) = procfs::inode_of(&fs_path).with_context(|| format!("cannot stat {path}"))?;
    Ok(is_malicious(ingest.store().node(&ingest.graph().file_id(&key))?))
}

/// Is this a file node a scan flagged?
fn is_malicious(node: Option<sensor_common::graph::Node>) -> bool {
    node.is_some_and(|n| matches!(n.data, sensor_common::graph::NodeData::File { malicious: true, .. }))
}

fn relabel(ingest: &mut Ingest, sensor: &mut Sensor, path: &str, untrusted: bool, by: &str) -> Result<Vec<u8>> {
    let fs_path = procfs::fs_path(path).with_context(|| format!("{path}: not a path as vtrail stores them"))?;
    let (key, generation) = procfs::inode_of(&fs_path).with_context(|| format!("cannot stat {path}"))?;
    if untrusted {
        sensor.add_inode_flags(key, INODE_UNTRUSTED, generation)?;
    } else {
        // (A flagged file trusted with --force may run again.)
        sensor.clear_inode_flags(key, INODE_UNTRUSTED | sensor_common::maps::INODE_FLAGGED)?;
    }
    let node = ingest.relabel(&key, generation, path, untrusted, by)?;
    Ok(serde_json::to_vec(&json!({"ok": true, "node": node, "untrusted": untrusted}))?)
}

fn bind_socket(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("another vtrail-sensor is already running (its socket {} answers)", path.display());
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("cannot bind control socket {}", path.display()))?;
    // Control (trust/taint) is for root only.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

async fn accept_loop(listener: UnixListener, calls: mpsc::Sender<Call>, events: broadcast::Sender<Arc<String>>, lag: Arc<AtomicU64>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        tokio::spawn(serve(stream, calls.clone(), events.subscribe(), lag.clone()));
    }
}

async fn serve(stream: UnixStream, calls: mpsc::Sender<Call>, mut events: broadcast::Receiver<Arc<String>>, lag: Arc<AtomicU64>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    if BufReader::new(read).read_line(&mut line).await.is_err() {
        return;
    }
    let request: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            let _ = write.write_all(format!("{}\n", json!({"error": format!("bad request: {e}")})).as_bytes()).await;
            return;
        }
    };
    if let Request::Events = request {
        loop {
            match events.recv().await {
                Ok(ev) => {
                    if write.write_all(format!("{ev}\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    // The follower is slower than the kernel: say so in-band, count it.
                    lag.fetch_add(n, Ordering::Relaxed);
                    let msg = json!({"lagged": n, "note": "events skipped for this follower; the graph has them"});
                    if write.write_all(format!("{msg}\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
    let (tx, rx) = oneshot::channel();
    if calls.send(Call { request, reply: tx }).await.is_err() {
        return;
    }
    if let Ok(mut answer) = rx.await {
        if answer.last() != Some(&b'\n') {
            answer.push(b'\n');
        }
        let _ = write.write_all(&answer).await;
    }
}

/// The kernel programs' diagnostic messages (aya-log) into the daemon's log as they come,
/// off the event loop.
fn spawn_kernel_log_reader(logger: crate::kernel::sensor::KernelLogger) {
    #[allow(deprecated)] // AsyncFd::register needs a newer tokio API than aya's types offer
    let mut fd = match AsyncFd::with_interest(logger, tokio::io::Interest::READABLE) {
        Ok(fd) => fd,
        Err(e) => {
            warn!("cannot poll the kernel programs' log ({e}): their diagnostics go unseen, counters still count");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            match fd.readable_mut().await {
                Ok(mut guard) => {
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
                Err(e) => {
                    warn!("the kernel programs' log stopped ({e})");
                    return;
                }
            }
        }
    });
}
