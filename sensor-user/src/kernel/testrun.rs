//! Runs the TC classifier on crafted packets with `BPF_PROG_TEST_RUN` (no network, no
//! attach): the parser tests on malformed input and `examples/tc-bench.rs` use it.
use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, ProgramArray, RingBuf},
    programs::{SchedClassifier, TestRun, TestRunOptions},
};
use etherparse::{IpHeaders, PacketBuilder, PacketBuilderStep, TcpHeader};
use sensor_common::maps::{BlockedKey, names};

use super::tc::{INGRESS, key_bytes, read_counters};
use crate::decode::{net as events, reassembly};
use sensor_common::proto::smb2::build;
use crate::host::procfs::WallClock;

pub struct TcTestRun {
    ebpf: Ebpf,
    events: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    blocked: HashMap<MapData, BlockedKey, u32>,
    clock: WallClock,
    /// As in the daemon: a CREATE cut by a segment end waits for its continuation.
    reassembly: reassembly::Reassembly,
    /// The programs' aya-log messages, read into `log`.
    logger: aya_log::EbpfLogger<CapturedLog>,
    log: CapturedLog,
}

/// Keeps the kernel programs' log messages for `TcTestRun::kernel_log`.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<String>>>);

impl log::Log for CapturedLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(format!("{} {}", record.level(), record.args()));
        }
    }
    fn flush(&self) {}
}

#[derive(Debug)]
pub struct RunResult {
    pub retval: u32,
    /// Mean time per run as the kernel measured it.
    pub duration: Duration,
}

impl TcTestRun {
    /// Loads the sensor's eBPF object and only its ingress classifier.
    pub fn load() -> Result<Self> {
        crate::kernel::sensor::preflight()?;
        let btf = Btf::from_sys_fs().context("cannot read the kernel BTF")?;
        let mut ebpf = EbpfLoader::new().btf(Some(&btf)).load(crate::kernel::sensor::ebpf_object()).context("cannot load the eBPF object")?;
        let p: &mut SchedClassifier = ebpf.program_mut(INGRESS).context("tc_ingress missing")?.try_into()?;
        p.load().context("the verifier refused tc_ingress")?;
        // Loaded too, though only ingress runs here: both must pass this kernel's verifier.
        let p: &mut SchedClassifier = ebpf.program_mut(super::tc::EGRESS).context("tc_egress missing")?.try_into()?;
        p.load().context("the verifier refused tc_egress")?;
        super::tc::load_step_program(&mut ebpf)?;
        let events = RingBuf::try_from(ebpf.take_map(names::EVENTS).context("EVENTS")?)?;
        let counters = PerCpuArray::try_from(ebpf.take_map(names::NET_COUNTERS).context("NET_COUNTERS")?)?;
        let blocked = HashMap::try_from(ebpf.take_map(names::BLOCKED).context("BLOCKED")?)?;
        let log = CapturedLog::default();
        let logger = aya_log::EbpfLogger::init_with_logger(&mut ebpf, log.clone()).context("the programs' log (AYA_LOGS)")?;
        Ok(Self { ebpf, events, counters, blocked, clock: WallClock::now(), reassembly: Default::default(), logger, log })
    }

    /// Empties a `TC_JUMP` slot (0: `tc_smb_step`, 1: `tc_ftp_blocked`), as a sensor whose
    /// step program failed to install would run.
    pub fn remove_step_program(&mut self, slot: u32) -> Result<()> {
        let mut jump = ProgramArray::try_from(self.ebpf.map_mut(names::TC_JUMP).context("TC_JUMP map")?)?;
        jump.clear_index(&slot)?;
        Ok(())
    }

    /// The kernel programs' log messages since the last call ("LEVEL message").
    pub fn kernel_log(&mut self) -> Vec<String> {
        self.logger.flush();
        self.log.0.lock().map(|mut lines| std::mem::take(&mut *lines)).unwrap_or_default()
    }

    pub fn run(&mut self, packet: &[u8], repeat: u32) -> Result<RunResult> {
        let p: &mut SchedClassifier = self.ebpf.program_mut(INGRESS).context("tc_ingress")?.try_into()?;
        let mut out = vec![0u8; packet.len() + 256];
        let opts = TestRunOptions { data_in: Some(packet), data_out: Some(&mut out), repeat: repeat.max(1), ..Default::default() };
        let r = p.test_run(opts).context("BPF_PROG_TEST_RUN")?;
        Ok(RunResult { retval: r.return_value, duration: r.duration })
    }

    pub fn block(&mut self, ip: IpAddr) -> Result<()> {
        self.blocked.insert(BlockedKey { addr: key_bytes(ip) }, 1, 0)?;
        Ok(())
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        read_counters(&self.counters)
    }

    /// NetEvents the runs so far produced, once whole (a cut CREATE is held until its
    /// continuation, as the daemon does).
    pub fn drain_events(&mut self) -> Vec<events::NetFileEvent> {
        let mut v = Vec::new();
        while let Some(item) = self.events.next() {
            if let Some(ev) = events::parse(&item) {
                for ev in self.reassembly.push(ev, std::time::Instant::now()) {
                    v.push(events::decode(&ev, &self.clock));
                }
            }
        }
        v
    }
}

/// Ethernet + IPv4/IPv6 + TCP (ACK|PSH) + payload, built by etherparse (checksums
/// filled in, though TC does not check them). An IPv4 address paired with an IPv6 one is
/// sent as its IPv4-mapped IPv6 address.
///
/// # Panics
/// If `payload` is larger than one IP packet carries (65,495 bytes over IPv4).
pub fn tcp_packet(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    write_packet(ip_builder(src, dst).tcp(sport, dport, seq, 0xffff).ack(1).psh(), payload)
}

/// A client's SYN (no payload): the start of a flow at `seq` + 1.
pub fn tcp_syn(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, seq: u32) -> Vec<u8> {
    write_packet(ip_builder(src, dst).tcp(sport, dport, seq, 0xffff).syn(), &[])
}

fn ip_builder(src: IpAddr, dst: IpAddr) -> PacketBuilderStep<IpHeaders> {
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        _ => {
            let to6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            eth.ipv6(to6(src).octets(), to6(dst).octets(), 64)
        }
    }
}

fn write_packet(builder: PacketBuilderStep<TcpHeader>, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut p, payload).expect("the payload fits in one IP packet");
    p
}

/// `vtrail-sensor selftest --network`: the classifiers load on this kernel and behave on
/// a few packets (a CREATE, an FTP STOR, malformed SMB2, a blocked sender). For kernels
/// where attaching to a real interface is not practical (the QEMU test guest).
pub fn selftest() -> Result<Vec<String>> {
    use anyhow::ensure;
    const TC_ACT_SHOT: u32 = 2;
    let mut t = TcTestRun::load()?;
    let client: IpAddr = "10.9.0.2".parse()?;
    let server: IpAddr = "10.9.0.1".parse()?;
    let mut notes = vec!["tc_ingress, tc_egress, tc_smb_step loaded".to_string()];
    let create = build::nbss(&build::create_request(&build::utf16("dir\\a.exe"), 0x12_0116, 5, 0x40, 7));
    let r = t.run(&tcp_packet(client, server, 50001, 445, 1, &create), 1)?;
    let ev = t.drain_events();
    ensure!(r.retval == 0 && ev.len() == 1 && ev[0].name == "dir\\a.exe", "SMB2 CREATE: retval {}, events {ev:?}", r.retval);
    let r = t.run(&tcp_packet(client, server, 50002, 21, 1, b"STOR a b.sh\r\n"), 1)?;
    let ev = t.drain_events();
    ensure!(r.retval == 0 && ev.len() == 1, "FTP STOR: retval {}, events {ev:?}", r.retval);
    let mut bad = build::create_request(&build::utf16("abc"), 0x2, 5, 0x40, 7);
    bad[108..110].copy_from_slice(&0xfff0u16.to_le_bytes());
    let before = t.counters().get("name_out_of_bounds").copied().unwrap_or(0);
    let r = t.run(&tcp_packet(client, server, 50003, 445, 1, &build::nbss(&bad)), 1)?;
    let after = t.counters().get("name_out_of_bounds").copied().unwrap_or(0);
    t.drain_events();
    ensure!(r.retval == 0 && after == before + 1, "malformed CREATE: retval {}, counted {}", r.retval, after - before);
    // A CREATE cut inside its name by the end of a segment: the next segment's first
    // bytes complete it.
    let name = "share\\dir\\dropper.exe";
    let whole = build::nbss(&build::create_request(&build::utf16(name), 0x12_0116, 5, 0x40, 8));
    let cut = whole.len() - 9;
    t.run(&tcp_packet(client, server, 50005, 445, 5000, &whole[..cut]), 1)?;
    let held = t.drain_events();
    t.run(&tcp_packet(client, server, 50005, 445, 5000 + cut as u32, &whole[cut..]), 1)?;
    let ev = t.drain_events();
    ensure!(
        held.is_empty() && ev.len() == 1 && ev[0].name == name && !ev[0].partial,
        "CREATE split across segments: held {held:?}, then {ev:?}"
    );
    // A segment that ends inside the next record's NBSS header (after a whole ECHO): the
    // kernel carries the header bytes over and reads the CREATE in the next segment.
    let mut echo = build::header(13, 0, 0, 6, 1, 1);
    echo.extend_from_slice(&[4, 0, 0, 0]);
    let first = [&build::nbss(&echo)[..], &whole[..2]].concat();
    t.run(&tcp_packet(client, server, 50006, 445, 7000, &first), 1)?;
    let held = t.drain_events();
    t.run(&tcp_packet(client, server, 50006, 445, 7000 + first.len() as u32, &whole[2..]), 1)?;
    let ev = t.drain_events();
    ensure!(
        held.is_empty() && ev.len() == 1 && ev[0].name == name && !ev[0].partial,
        "CREATE after an NBSS header split across segments: first {held:?}, then {ev:?}"
    );
    // A blocked sender's connection, followed from its SYN: a read-only open passes, a
    // write CREATE and a STOR are dropped.
    t.block(client)?;
    t.run(&tcp_syn(client, server, 50004, 445, 0), 1)?;
    let read_only = build::nbss(&build::create_request(&build::utf16("r.txt"), 0x1, 1, 0x40, 9));
    let r = t.run(&tcp_packet(client, server, 50004, 445, 1, &read_only), 1)?;
    ensure!(r.retval == 0, "blocked sender's read-only CREATE: retval {} (want it passed)", r.retval);
    let r = t.run(&tcp_packet(client, server, 50004, 445, 1 + read_only.len() as u32, &create), 1)?;
    ensure!(r.retval == TC_ACT_SHOT, "blocked sender's CREATE: retval {} (want TC_ACT_SHOT)", r.retval);
    t.run(&tcp_syn(client, server, 50007, 21, 0), 1)?;
    let r = t.run(&tcp_packet(client, server, 50007, 21, 1, b"NOOP\r\nSTOR a\r\n"), 1)?;
    ensure!(r.retval == TC_ACT_SHOT, "blocked sender's pipelined STOR: retval {} (want TC_ACT_SHOT)", r.retval);
    t.drain_events();
    notes.push(
        "CREATE and STOR reported, malformed name counted, split name and split NBSS header completed, blocked CREATE and pipelined STOR dropped, read-only open passed"
            .into(),
    );
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    /// What the network tests rely on: the TCP fields as given, ACK|PSH (SYN alone for
    /// `tcp_syn`), and the IPv4 flags / IPv6 next-header byte at 14 + 6.
    #[test]
    fn packets_read_back() {
        let v4: IpAddr = "10.9.0.2".parse().unwrap();
        let v6: IpAddr = "fd00:9::1".parse().unwrap();
        for (src, dst) in [(v4, v4), (v4, v6), (v6, v6)] {
            let p = tcp_packet(src, dst, 50001, 445, 7, b"data");
            let s = SlicedPacket::from_ethernet(&p).unwrap();
            let Some(TransportSlice::Tcp(t)) = &s.transport else { panic!("{src}->{dst}: no TCP") };
            assert_eq!((t.source_port(), t.destination_port(), t.sequence_number(), t.payload()), (50001, 445, 7, &b"data"[..]));
            assert!(t.ack() && t.psh() && !t.syn());
            match s.net {
                Some(NetSlice::Ipv4(_)) => assert_eq!(p[14 + 6], 0x40, "DF, no fragment"),
                Some(NetSlice::Ipv6(_)) => assert_eq!(p[14 + 6], 6, "next header: TCP"),
                _ => panic!("no IP"),
            }
            let p = tcp_syn(src, dst, 50001, 445, 6);
            let s = SlicedPacket::from_ethernet(&p).unwrap();
            let Some(TransportSlice::Tcp(t)) = &s.transport else { panic!("{src}->{dst}: no TCP") };
            assert!(t.syn() && !t.ack() && t.payload().is_empty());
        }
    }
}
