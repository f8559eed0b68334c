//! A quarantined sender's flow, judged in the order the server reads it: its state starts
//! at its SYN, and each packet must start where the last one passed ended.
use sensor_common::{event::NET_DIR_INGRESS, maps::{BlockedKey, FlowKey, FlowState, net_counter}};

use super::count;
use crate::{
    diag::diag,
    maps::{BLOCKED, NET_FLOWS},
};

/// `NET_FLOWS` refused an insert (an LRU map: only when it cannot evict), counted and logged.
#[inline(always)]
pub(super) fn flow_table_full() {
    diag!(count(net_counter::FLOW_TABLE_FULL), "NET_FLOWS refused an insert: a flow's state is lost");
}

/// Is `saddr` quarantined?
#[inline(always)]
pub(super) fn is_blocked(saddr: &[u8; 16]) -> bool {
    unsafe { BLOCKED.get(&BlockedKey { addr: *saddr }) }.is_some()
}

/// A packet whose TCP payload cannot be read here (IP fragment, IPv6 extension headers):
/// dropped when a quarantined sender sends it (counted), passed otherwise.
#[inline(always)]
pub(super) fn unreadable_from_blocked(direction: u8, saddr: &[u8; 16]) -> bool {
    let blocked = direction == NET_DIR_INGRESS && is_blocked(saddr);
    if blocked {
        count(net_counter::BLOCKED_DROPS);
    }
    blocked
}

/// A quarantined sender's SYN: its flow's state starts at the first data byte.
#[inline(always)]
pub(super) fn track_from_syn(flow: &FlowKey, seq: u32) {
    if !is_blocked(&flow.saddr) {
        return;
    }
    let first = seq.wrapping_add(1);
    let state = FlowState { next_record_seq: first, cont_seq: first, ..FlowState::default() };
    if NET_FLOWS.insert(flow, &state, 0).is_err() {
        flow_table_full();
    }
}

/// A quarantined sender's packet is judged only in the order the server reads the flow:
/// it must start exactly where the last one passed ended (`state.cont_seq`, from the SYN
/// on). Otherwise - a flow whose start was not seen, a retransmission overlapping what
/// passed (the server would read only its new bytes), a segment ahead (queued out of
/// order, or never accepted: a bad checksum) - what the server will read cannot be known
/// here: dropped (counted). Returns whether to drop.
#[inline(always)]
pub(super) fn out_of_order_from_blocked(state: Option<&FlowState>, seq: u32) -> bool {
    let drop = state.is_none_or(|s| s.cont_seq != seq);
    if drop {
        count(net_counter::OUT_OF_ORDER_BLOCKED);
        count(net_counter::BLOCKED_DROPS);
    }
    drop
}

/// After a quarantined sender's packet passed: the flow's next byte.
#[inline(always)]
/// `state` (the flow's, a copy) is updated in place: built on the stack, a `FlowState`
/// costs 56 of the 512 bytes `tc_ingress` has.
pub(super) fn passed_from_blocked(flow: &FlowKey, state: &mut FlowState, next: u32) {
    state.cont_seq = next;
    if NET_FLOWS.insert(flow, state, 0).is_err() {
        flow_table_full();
    }
}
