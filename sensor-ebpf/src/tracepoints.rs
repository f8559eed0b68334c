//! The tracepoint strategy: sched tracepoints for process life, syscall tracepoints for
//! file changes. Works on every supported kernel (no kprobes, fentry or LSM needed).
//! Only open-like and path syscalls are hooked, not write(2): see below.
//! Program names are `tp_<tracepoint>`; userspace derives the category from the name.
use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use sensor_common::event::EventKind;

use crate::taint;

/// `AT_FDCWD`: the legacy path syscalls are relative to the working directory.
const AT_FDCWD: i32 = -100;
const O_WRONLY: u32 = 0o1;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;

/// Syscall argument `n` of a `syscalls/sys_enter_*` record (each is 8 bytes from 16).
#[inline(always)]
fn arg(ctx: &TracePointContext, n: usize) -> u64 {
    unsafe { ctx.read_at::<u64>(16 + 8 * n) }.unwrap_or(0)
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
    taint::on_fd_change(EventKind::Truncate, arg(&ctx, 0), 0);
    0
}

#[tracepoint]
pub fn tp_sys_enter_fchmod(ctx: TracePointContext) -> u32 {
    taint::on_fd_change(EventKind::Chmod, arg(&ctx, 0), arg(&ctx, 1) as u32);
    0
}

#[tracepoint]
pub fn tp_sys_enter_open(ctx: TracePointContext) -> u32 {
    taint::on_open_enter(AT_FDCWD, arg(&ctx, 0), arg(&ctx, 1) as u32);
    0
}

#[tracepoint]
pub fn tp_sys_enter_openat(ctx: TracePointContext) -> u32 {
    taint::on_open_enter(arg(&ctx, 0) as i32, arg(&ctx, 1), arg(&ctx, 2) as u32);
    0
}

#[tracepoint]
pub fn tp_sys_enter_openat2(ctx: TracePointContext) -> u32 {
    // openat2(dfd, filename, struct open_how *how, size): flags are how->flags (u64).
    let how = arg(&ctx, 2) as *const u64;
    let flags = unsafe { aya_ebpf::helpers::bpf_probe_read_user(how) }.unwrap_or(0);
    taint::on_open_enter(arg(&ctx, 0) as i32, arg(&ctx, 1), flags as u32);
    0
}

#[tracepoint]
pub fn tp_sys_enter_creat(ctx: TracePointContext) -> u32 {
    taint::on_open_enter(AT_FDCWD, arg(&ctx, 0), O_CREAT | O_WRONLY | O_TRUNC);
    0
}

/// Path syscalls: `$kind`, dirfd, first name, second name (0 if none), aux.
macro_rules! path_call {
    ($name:ident, $kind:expr, |$ctx:ident| ($dirfd:expr, $n1:expr, $n2:expr, $aux:expr)) => {
        #[tracepoint]
        pub fn $name($ctx: TracePointContext) -> u32 {
            taint::on_path_enter($kind, $dirfd, $n1, $n2, $aux);
            0
        }
    };
}
// For rename/link, `aux` carries the second name's dirfd.
path_call!(tp_sys_enter_rename, EventKind::Rename, |c| (AT_FDCWD, arg(&c, 0), arg(&c, 1), AT_FDCWD as u32));
path_call!(tp_sys_enter_renameat, EventKind::Rename, |c| (arg(&c, 0) as i32, arg(&c, 1), arg(&c, 3), arg(&c, 2) as u32));
path_call!(tp_sys_enter_renameat2, EventKind::Rename, |c| (arg(&c, 0) as i32, arg(&c, 1), arg(&c, 3), arg(&c, 2) as u32));
path_call!(tp_sys_enter_link, EventKind::Link, |c| (AT_FDCWD, arg(&c, 0), arg(&c, 1), AT_FDCWD as u32));
path_call!(tp_sys_enter_linkat, EventKind::Link, |c| (arg(&c, 0) as i32, arg(&c, 1), arg(&c, 3), arg(&c, 2) as u32));
path_call!(tp_sys_enter_unlink, EventKind::Unlink, |c| (AT_FDCWD, arg(&c, 0), 0, 0));
path_call!(tp_sys_enter_unlinkat, EventKind::Unlink, |c| (arg(&c, 0) as i32, arg(&c, 1), 0, 0));
path_call!(tp_sys_enter_chmod, EventKind::Chmod, |c| (AT_FDCWD, arg(&c, 0), 0, arg(&c, 1) as u32));
path_call!(tp_sys_enter_fchmodat, EventKind::Chmod, |c| (arg(&c, 0) as i32, arg(&c, 1), 0, arg(&c, 2) as u32));
path_call!(tp_sys_enter_fchmodat2, EventKind::Chmod, |c| (arg(&c, 0) as i32, arg(&c, 1), 0, arg(&c, 2) as u32));
path_call!(tp_sys_enter_truncate, EventKind::Truncate, |c| (AT_FDCWD, arg(&c, 0), 0, 0));

/// Every stashed syscall finishes through the same exit handler.
macro_rules! sys_exit {
    ($($name:ident),* $(,)?) => {$(
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> u32 {
            taint::on_syscall_exit(ret(&ctx));
            0
        }
    )*};
}
sys_exit!(
    tp_sys_exit_open, tp_sys_exit_openat, tp_sys_exit_openat2, tp_sys_exit_creat,
    tp_sys_exit_rename, tp_sys_exit_renameat, tp_sys_exit_renameat2, tp_sys_exit_link,
    tp_sys_exit_linkat, tp_sys_exit_unlink, tp_sys_exit_unlinkat, tp_sys_exit_chmod,
    tp_sys_exit_fchmodat, tp_sys_exit_fchmodat2, tp_sys_exit_truncate,
);


