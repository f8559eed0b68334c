//! The tracepoint strategy: sched tracepoints for process life, syscall tracepoints for
//! file changes. Works on every supported kernel (no kprobes, fentry or LSM needed).
//! Only open-like and path syscalls are hooked, not write(2): see below.
//! Program names are `tp_<tracepoint>`; userspace derives the category from the name.
use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use crate::{
    syscalls::{FdCall, PathCall},
    taint,
};

/// The first four arguments of a `syscalls/sys_enter_*` record (each 8 bytes, from 16).
#[inline(always)]
fn args(ctx: &TracePointContext) -> [u64; 4] {
    let arg = |n: usize| unsafe { ctx.read_at::<u64>(16 + 8 * n) }.unwrap_or(0);
    [arg(0), arg(1), arg(2), arg(3)]
}

/// Return value of a `syscalls/sys_exit_*` record.
#[inline(always)]
fn ret(ctx: &TracePointContext) -> i64 {
    unsafe { ctx.read_at::<i64>(16) }.unwrap_or(-1)
}

#[tracepoint]
pub fn tp_sched_process_exec(ctx: TracePointContext) -> u32 {
    // format: __data_loc char[] filename at offset 8
    taint::on_exec(taint::data_loc_name(&ctx, 8));
    0
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn tp_btf_sched_process_fork(ctx: BtfTracePointContext) -> u32 {
    let child: *const u8 = ctx.arg(1);
    taint::on_fork(child);
    0
}

#[tracepoint]
pub fn tp_sched_process_exit(_ctx: TracePointContext) -> u32 {
    taint::on_exit();
    0
}

/// `sock/inet_sock_set_state` fires on TCP state changes only, not per syscall, so it adds
/// nothing to the syscall path.
#[tracepoint]
pub fn tp_inet_sock_set_state(ctx: TracePointContext) -> u32 {
    // format: newstate i32 @20, sport @24, dport @26, family @28, protocol @30 (u16, host
    // order), saddr_v6 @40, daddr_v6 @56 (IPv4 stored v4-mapped there). Checked against
    // tracefs by userspace before attaching.
    const IPPROTO_TCP: u16 = 6;
    if unsafe { ctx.read_at::<u16>(30) }.unwrap_or(0) != IPPROTO_TCP {
        return 0;
    }
    let new_state = unsafe { ctx.read_at::<i32>(20) }.unwrap_or(0) as u32;
    taint::on_connection(new_state, |c| unsafe {
        c.local_port = ctx.read_at::<u16>(24).unwrap_or(0);
        c.remote_port = ctx.read_at::<u16>(26).unwrap_or(0);
        c.family = ctx.read_at::<u16>(28).unwrap_or(0);
        c.local = ctx.read_at::<[u8; 16]>(40).unwrap_or([0; 16]);
        c.remote = ctx.read_at::<[u8; 16]>(56).unwrap_or([0; 16]);
    });
    0
}

// No write(2)-family hooks: a tracked process's files are marked when it opens them for
// writing, and when it becomes tainted for the ones it already holds (see
// `taint::mark_writable_fds`). A syscall tracepoint on write costs every process on the
// machine on every write; these cost only at open and at taint.

#[tracepoint]
pub fn tp_sys_enter_ftruncate(ctx: TracePointContext) -> u32 {
    taint::on_fd_change(|| FdCall::Ftruncate.decode(args(&ctx)));
    0
}

#[tracepoint]
pub fn tp_sys_enter_fchmod(ctx: TracePointContext) -> u32 {
    taint::on_fd_change(|| FdCall::Fchmod.decode(args(&ctx)));
    0
}

/// Open and path syscalls: entry stashes the call, exit reports it if it succeeded.
macro_rules! path_calls {
    ($($enter:ident, $exit:ident => $call:ident;)*) => {$(
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            taint::on_syscall_enter(|| PathCall::$call.decode(args(&ctx)));
            0
        }

        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            taint::on_syscall_exit(ret(&ctx));
            0
        }
    )*};
}
path_calls! {
    tp_sys_enter_open, tp_sys_exit_open => Open;
    tp_sys_enter_openat, tp_sys_exit_openat => Openat;
    tp_sys_enter_openat2, tp_sys_exit_openat2 => Openat2;
    tp_sys_enter_creat, tp_sys_exit_creat => Creat;
    tp_sys_enter_rename, tp_sys_exit_rename => Rename;
    tp_sys_enter_renameat, tp_sys_exit_renameat => Renameat;
    tp_sys_enter_renameat2, tp_sys_exit_renameat2 => Renameat2;
    tp_sys_enter_link, tp_sys_exit_link => Link;
    tp_sys_enter_linkat, tp_sys_exit_linkat => Linkat;
    tp_sys_enter_unlink, tp_sys_exit_unlink => Unlink;
    tp_sys_enter_unlinkat, tp_sys_exit_unlinkat => Unlinkat;
    tp_sys_enter_chmod, tp_sys_exit_chmod => Chmod;
    tp_sys_enter_fchmodat, tp_sys_exit_fchmodat => Fchmodat;
    tp_sys_enter_fchmodat2, tp_sys_exit_fchmodat2 => Fchmodat2;
    tp_sys_enter_truncate, tp_sys_exit_truncate => Truncate;
}
