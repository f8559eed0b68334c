//! Diagnostic messages to the daemon's log (aya-log: the `AYA_LOGS` ring buffer, read by
//! `aya_log::EbpfLogger` in userspace), for what a counter alone does not explain in the
//! field: a map full, a tail call that failed, a kernel struct read through the BTF
//! offsets that failed.
//!
//! Only on those rare paths, never per packet or per write, and even there rate-limited
//! by the path's own per-CPU counter: a message when it reaches 1, 2, 4, 8, ... (a full
//! map under load would otherwise log on every event). The counters keep the exact count.

/// Whether the `n`th occurrence (a per-CPU counter's new value) is logged.
#[inline(always)]
pub fn worth_logging(n: u64) -> bool {
    n & n.wrapping_sub(1) == 0
}

/// `diag!(n, "format", args...)`: a warning through aya-log when `n` (the new value of
/// the counter that counts this condition) is a power of two. aya-log-ebpf 0.2 takes a
/// context argument it does not use (its records go to a ring buffer, not through the
/// program's context), so none is threaded down to the rare paths that log.
macro_rules! diag {
    ($n:expr, $($fmt:tt)+) => {{
        let n: u64 = $n;
        if $crate::diag::worth_logging(n) {
            aya_log_ebpf::warn!(&(), $($fmt)+);
        }
    }};
}
pub(crate) use diag;
