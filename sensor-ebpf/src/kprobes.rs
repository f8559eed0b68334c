//! The kprobe strategy: `vfs_write` gives the `struct file` directly (no descriptor-table
//! walk) and `security_bprm_check` sees every file exec examines, `#!` scripts included.
//! The open and path syscalls are kprobes on their syscall wrappers, not syscall
//! tracepoints: see `syscalls`. Process life stays on sched tracepoints (not syscall ones).
use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use sensor_common::event::EventKind;

use crate::{
    kernel,
    syscalls::{self, FdCall, PathCall},
    taint,
};

#[kprobe]
pub fn kp_vfs_write(ctx: ProbeContext) -> u32 {
    let Some((pid_tgid, state)) = taint::tracked() else { return 0 };
    if !taint::is_writer(&state) {
        return 0;
    }
    let (Some(o), Some(file)) = (kernel::offsets(), ctx.arg::<*const u8>(0)) else { return 0 };
    taint::on_file_change(o, pid_tgid, &state, file, EventKind::Write, -1, 0);
    0
}

#[kprobe]
pub fn kp_security_bprm_check(ctx: ProbeContext) -> u32 {
    if let Some(bprm) = ctx.arg::<*const u8>(0) {
        taint::on_bprm_check(bprm);
    }
    0
}

/// The syscall wrappers (`__x64_sys_*`; userspace adds the architecture's prefix) take the
/// user registers as their one argument.
#[inline(always)]
fn user_args(ctx: &ProbeContext) -> [u64; 4] {
    match (kernel::offsets(), ctx.arg::<*const u8>(0)) {
        (Some(o), Some(regs)) => syscalls::regs_args(o, regs),
        _ => [0; 4],
    }
}

#[kprobe]
pub fn kp_sys_ftruncate(ctx: ProbeContext) -> u32 {
    taint::on_fd_change(|| FdCall::Ftruncate.decode(user_args(&ctx)));
    0
}

#[kprobe]
pub fn kp_sys_fchmod(ctx: ProbeContext) -> u32 {
    taint::on_fd_change(|| FdCall::Fchmod.decode(user_args(&ctx)));
    0
}

/// Open and path syscalls: the kprobe stashes the call, the kretprobe reports it if it
/// succeeded. Only these calls pay; write(2) and everything else run unhooked.
macro_rules! path_calls {
    ($($enter:ident, $exit:ident => $call:ident;)*) => {$(
        #[kprobe]
        pub fn $enter(ctx: ProbeContext) -> u32 {
            taint::on_syscall_enter(|| PathCall::$call.decode(user_args(&ctx)));
            0
        }

        #[kretprobe]
        pub fn $exit(ctx: RetProbeContext) -> u32 {
            taint::on_syscall_exit(ctx.ret::<i64>());
            0
        }
    )*};
}
path_calls! {
    kp_sys_open, kr_sys_open => Open;
    kp_sys_openat, kr_sys_openat => Openat;
    kp_sys_openat2, kr_sys_openat2 => Openat2;
    kp_sys_creat, kr_sys_creat => Creat;
    kp_sys_rename, kr_sys_rename => Rename;
    kp_sys_renameat, kr_sys_renameat => Renameat;
    kp_sys_renameat2, kr_sys_renameat2 => Renameat2;
    kp_sys_link, kr_sys_link => Link;
    kp_sys_linkat, kr_sys_linkat => Linkat;
    kp_sys_unlink, kr_sys_unlink => Unlink;
    kp_sys_unlinkat, kr_sys_unlinkat => Unlinkat;
    kp_sys_chmod, kr_sys_chmod => Chmod;
    kp_sys_fchmodat, kr_sys_fchmodat => Fchmodat;
    kp_sys_fchmodat2, kr_sys_fchmodat2 => Fchmodat2;
    kp_sys_truncate, kr_sys_truncate => Truncate;
}
