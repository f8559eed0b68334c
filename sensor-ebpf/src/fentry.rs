//! The fentry strategy: the kprobe strategy's two hooks through BPF trampolines, which
//! avoid the breakpoint/ftrace round trip of a kprobe. The open and path syscalls are
//! fexit programs on their syscall wrappers: one trampoline sees both the arguments and
//! the result, so nothing is stashed between entry and exit.
use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};
use sensor_common::event::EventKind;

use crate::{
    kernel,
    syscalls::{self, FdCall, PathCall},
    taint,
};

#[fentry(function = "vfs_write")]
pub fn fe_vfs_write(ctx: FEntryContext) -> i32 {
    let Some((pid_tgid, state)) = taint::tracked() else { return 0 };
    if !taint::is_writer(&state) {
        return 0;
    }
    let Some(o) = kernel::offsets() else { return 0 };
    let file: *const u8 = ctx.arg(0);
    taint::on_file_change(o, pid_tgid, &state, file, EventKind::Write, -1, 0);
    0
}

#[fentry(function = "security_bprm_check")]
pub fn fe_security_bprm_check(ctx: FEntryContext) -> i32 {
    let bprm: *const u8 = ctx.arg(0);
    taint::on_bprm_check(bprm);
    0
}

/// The user registers a syscall wrapper (`__x64_sys_*`) receives as its one argument.
#[inline(always)]
fn user_args(regs: *const u8) -> [u64; 4] {
    kernel::offsets().map_or([0; 4], |o| syscalls::regs_args(o, regs))
}

#[fentry]
pub fn fe_sys_ftruncate(ctx: FEntryContext) -> i32 {
    let regs: *const u8 = ctx.arg(0);
    taint::on_fd_change(|| FdCall::Ftruncate.decode(user_args(regs)));
    0
}

#[fentry]
pub fn fe_sys_fchmod(ctx: FEntryContext) -> i32 {
    let regs: *const u8 = ctx.arg(0);
    taint::on_fd_change(|| FdCall::Fchmod.decode(user_args(regs)));
    0
}

/// Open and path syscalls, at exit: the wrapper's one argument, then its return value.
macro_rules! path_calls {
    ($($name:ident => $call:ident;)*) => {$(
        #[fexit]
        pub fn $name(ctx: FExitContext) -> i32 {
            let regs: *const u8 = ctx.arg(0);
            let ret: i64 = ctx.arg(1);
            taint::on_syscall_return(|| PathCall::$call.decode(user_args(regs)), ret);
            0
        }
    )*};
}
path_calls! {
    fx_sys_open => Open;
    fx_sys_openat => Openat;
    fx_sys_openat2 => Openat2;
    fx_sys_creat => Creat;
    fx_sys_rename => Rename;
    fx_sys_renameat => Renameat;
    fx_sys_renameat2 => Renameat2;
    fx_sys_link => Link;
    fx_sys_linkat => Linkat;
    fx_sys_unlink => Unlink;
    fx_sys_unlinkat => Unlinkat;
    fx_sys_chmod => Chmod;
    fx_sys_fchmodat => Fchmodat;
    fx_sys_fchmodat2 => Fchmodat2;
    fx_sys_truncate => Truncate;
}
