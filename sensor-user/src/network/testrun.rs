//! Runs the TC classifier on crafted packets with `BPF_PROG_TEST_RUN` (no network, no
//! attach): the parser tests on malformed input and `examples/tc-bench.rs` use it.
use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use anyhow::{Context, Result};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{SchedClassifier, TestRun, TestRunOptions},
};
use sensor_common::maps::{BlockedKey, names};

use super::{events, key_bytes, tc::{INGRESS, read_counters}};
use crate::procfs::WallClock;

pub struct TcTestRun {
    ebpf: Ebpf,
    events: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    blocked: HashMap<MapData, BlockedKey, u32>,
    clock: WallClock,
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
        crate::sensor::preflight()?;
        let btf = Btf::from_sys_fs().context("cannot read the kernel BTF")?;
        let mut ebpf = EbpfLoader::new().btf(Some(&btf)).load(crate::sensor::ebpf_object()).context("cannot load the eBPF object")?;
        let p: &mut SchedClassifier = ebpf.program_mut(INGRESS).context("tc_ingress missing")?.try_into()?;
        p.load().context("the verifier refused tc_ingress")?;
        super::tc::load_step_program(&mut ebpf)?;
        let events = RingBuf::try_from(ebpf.take_map(names::EVENTS).context("EVENTS")?)?;
        let counters = PerCpuArray::try_from(ebpf.take_map(names::NET_COUNTERS).context("NET_COUNTERS")?)?;
        let blocked = HashMap::try_from(ebpf.take_map(names::BLOCKED).context("BLOCKED")?)?;
        Ok(Self { ebpf, events, counters, blocked, clock: WallClock::now() })
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

    /// NetEvents the runs so far produced.
    pub fn drain_events(&mut self) -> Vec<events::NetFileEvent> {
        let mut v = Vec::new();
        while let Some(item) = self.events.next() {
            if let Some(ev) = events::parse(&item) {
                v.push(events::decode(&ev, &self.clock));
            }
        }
        v
    }
}

/// Ethernet + IPv4/IPv6 + TCP (ACK|PSH) + payload, checksums left zero (TC does not check).
pub fn tcp_packet(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 12];
    p[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    p[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    let tcp_len = 20 + payload.len();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&0x0800u16.to_be_bytes());
            let total = (20 + tcp_len) as u16;
            p.extend_from_slice(&[0x45, 0]);
            p.extend_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        _ => {
            let to6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            p.extend_from_slice(&0x86ddu16.to_be_bytes());
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            p.extend_from_slice(&[6, 64]);
            p.extend_from_slice(&to6(src).octets());
            p.extend_from_slice(&to6(dst).octets());
        }
    }
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&1u32.to_be_bytes());
    p.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend_from_slice(payload);
    p
}
