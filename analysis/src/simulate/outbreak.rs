//! The outbreak as a discrete-event run: worm copies arrive on hosts and are executed, in
//! time order, until no copy is left in flight.
//!
//! A vulnerable receiver executes every copy it gets while not yet infected, in arrival
//! order (so the copy that infects it is its earliest executed arrival - the same rule
//! `spread` uses); once infected it re-runs later copies only sometimes. Non-vulnerable
//! receivers keep the copy and never run it: they are carriers, and their parent is the
//! sender of their earliest copy (as `spread` reports them). An infected host uploads its
//! copy to most of its neighbours, one upload each, spaced out.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use sensor_common::graph::{EdgeData, ExecAttrs, NoAttrs, Protocol};

use super::host_log::{HostLog, executable_mode, transfer_from, transfer_to};
use super::rng::Rng;
use super::topology::SimHost;
use super::{MS, OUTSIDE_WORM_IP, WORM_START_NS, worm};
use crate::time::NS_PER_SEC;

/// What the run decided, for the ground truth.
pub(super) struct Outbreak {
    pub patient_zero: usize,
    pub worm_sha: String,
    /// First execution of the worm per host, true time.
    pub infected_at: Vec<Option<u64>>,
    /// Sender of the copy that infected each host, or for a carrier of its earliest copy;
    /// `None` for patient zero and hosts no copy reached.
    pub parent: Vec<Option<usize>>,
    /// Per host: received at least one copy and never ran one.
    pub carrier: Vec<bool>,
    /// Time of the last event.
    pub end_ns: u64,
}

/// A worm copy on the wire: recorded as `sent_to` on the sender and `received_from` on the receiver.
struct Transfer {
    /// `None`: from outside the simulated hosts.
    from: Option<usize>,
    to: usize,
    sent_at: u64,
    received_at: u64,
    protocol: Protocol,
    name: String,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrive {
        transfer: usize,
    },
    Execute {
        host: usize,
        file: String,
        path: String,
        sender: Option<usize>,
    },
}

/// Runs the outbreak from its entry at `patient_zero`, recording it in `logs`.
pub(super) fn run(
    hosts: &[SimHost],
    adjacency: &[Vec<usize>],
    logs: &mut [HostLog],
    patient_zero: usize,
    worm_sha: String,
    rng: &mut Rng,
) -> Outbreak {
    let n = hosts.len();
    let mut run = Run {
        hosts,
        adjacency,
        logs,
        worm_sha: &worm_sha,
        rng,
        transfers: Vec::new(),
        queue: BinaryHeap::new(),
        sequence: 0,
        infected_at: vec![None; n],
        parent: vec![None; n],
        carrier: vec![false; n],
        last_execution: vec![0; n],
        worm_copy: vec![None; n],
    };
    // The worm enters from outside at patient zero.
    run.send(Transfer {
        from: None,
        to: patient_zero,
        sent_at: WORM_START_NS,
        received_at: WORM_START_NS,
        protocol: Protocol::Ftp,
        name: "invoice-2023-11.pdf.sh".to_owned(),
    });
    let mut end_ns = WORM_START_NS;
    while let Some(Reverse((at, _, event))) = run.queue.pop() {
        end_ns = end_ns.max(at);
        match event {
            Event::Arrive { transfer } => run.arrive(transfer),
            Event::Execute {
                host,
                file,
                path,
                sender,
            } => run.execute(at, host, &file, &path, sender),
        }
    }
    let (infected_at, parent, carrier) = (run.infected_at, run.parent, run.carrier);
    Outbreak {
        patient_zero,
        worm_sha,
        infected_at,
        parent,
        carrier,
        end_ns,
    }
}

/// The state of a run in progress.
struct Run<'a> {
    hosts: &'a [SimHost],
    adjacency: &'a [Vec<usize>],
    logs: &'a mut [HostLog],
    worm_sha: &'a str,
    rng: &'a mut Rng,
    transfers: Vec<Transfer>,
    /// (time, order of scheduling, event), earliest first.
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    sequence: u64,
    infected_at: Vec<Option<u64>>,
    parent: Vec<Option<usize>>,
    carrier: Vec<bool>,
    last_execution: Vec<u64>,
    /// The copy an infected host uploads.
    worm_copy: Vec<Option<String>>,
}

impl Run<'_> {
    fn schedule(&mut self, at: u64, event: Event) {
        self.sequence += 1;
        self.queue.push(Reverse((at, self.sequence, event)));
    }

    /// Puts `transfer` on the wire; it arrives at its `received_at`.
    fn send(&mut self, transfer: Transfer) {
        let at = transfer.received_at;
        self.transfers.push(transfer);
        self.schedule(
            at,
            Event::Arrive {
                transfer: self.transfers.len() - 1,
            },
        );
    }

    /// Both ends record the transfer; a vulnerable receiver schedules the copy's run.
    fn arrive(&mut self, transfer: usize) {
        let t = &self.transfers[transfer];
        let to = t.to;
        let host = &self.hosts[to];
        let directory = if t.protocol == Protocol::Smb2 {
            "/srv/samba/share"
        } else {
            "/srv/ftp/incoming"
        };
        let path = format!("{directory}/{}", t.name);
        let log = &mut self.logs[to];
        let file = log.file(host, &path, true, false, Some(self.worm_sha.to_owned()), t.received_at);
        let from_ip = t
            .from
            .map_or(OUTSIDE_WORM_IP.to_owned(), |f| self.hosts[f].ip.clone());
        let remote = log.remote(&from_ip, t.from);
        log.edge(host, t.received_at, &remote, &file, transfer_from(&from_ip, t.protocol, &t.name));
        if let Some(from) = t.from {
            let sender = &self.hosts[from];
            let source = self.worm_copy[from].clone().unwrap_or_default();
            let remote = self.logs[from].remote(&host.ip, Some(to));
            self.logs[from].edge(sender, t.sent_at, &source, &remote, transfer_to(&host.ip, t.protocol, &t.name));
        }
        if !host.vulnerable && !self.carrier[to] {
            // Arrivals come in time order: this is its earliest copy.
            self.carrier[to] = true;
            self.parent[to] = t.from;
        }
        let already = self.infected_at[to].is_some();
        if host.vulnerable && (!already || self.rng.chance(0.5)) {
            // Copies run in arrival order: the trigger (share scan, ftp hook) is a queue.
            let run_at = (t.received_at + self.rng.range(20, 120) * NS_PER_SEC)
                .max(self.last_execution[to] + NS_PER_SEC);
            self.last_execution[to] = run_at;
            let sender = t.from;
            self.schedule(
                run_at,
                Event::Execute {
                    host: to,
                    file,
                    path,
                    sender,
                },
            );
        }
    }

    /// A daemon starts the copy; the host's first run infects it and spreads the worm on.
    fn execute(&mut self, at: u64, h: usize, file: &str, path: &str, sender: Option<usize>) {
        let host = &self.hosts[h];
        let log = &mut self.logs[h];
        let base = log.base(host);
        let trigger = match sender {
            None => &base.admin_shell,
            Some(_) if self.rng.chance(0.5) => &base.smbd,
            Some(_) => &base.ftpd,
        };
        log.edge(host, at - 2 * MS, trigger, file, EdgeData::Chmod(executable_mode()));
        let worm = log.process(host, path, 0, true, at - MS);
        log.edge(host, at - MS, trigger, &worm, EdgeData::Fork(NoAttrs {}));
        log.edge(host, at, file, &worm, EdgeData::Exec(ExecAttrs::default()));
        if self.infected_at[h].is_some() {
            return; // a re-run: the running copy's mutex makes it exit at once
        }
        self.infected_at[h] = Some(at);
        self.parent[h] = sender;
        let copy = worm::first_run(host, log, &worm, &base, at, self.worm_sha, self.rng);
        self.worm_copy[h] = Some(copy);
        self.upload_to_neighbours(h, at);
    }

    /// Most neighbours get one upload each, in random order, spaced out.
    fn upload_to_neighbours(&mut self, h: usize, at: u64) {
        let mut next = at + 30 * NS_PER_SEC;
        let mut targets = self.adjacency[h].clone();
        self.rng.shuffle(&mut targets);
        for target in targets {
            if !self.rng.chance(0.8) {
                continue;
            }
            let smb = self.rng.chance(0.5);
            let sent_at = next;
            let received_at = sent_at + self.rng.range(20, 300) * MS;
            self.send(Transfer {
                from: Some(h),
                to: target,
                sent_at,
                received_at,
                protocol: if smb { Protocol::Smb2 } else { Protocol::Ftp },
                name: if smb {
                    "quarterly-report.pdf.sh".to_owned()
                } else {
                    "update.bin".to_owned()
                },
            });
            next += 5 * NS_PER_SEC + self.rng.exp_ns(60.0);
        }
    }
}
