//! The kprobe strategy: `vfs_write` gives the `struct file` directly (no descriptor-table
//! walk) and `security_bprm_check` sees every file exec examines, `#!` scripts included.
//! Process life and the path syscalls stay on tracepoints (see `tracepoints`).
use aya_ebpf::{macros::kprobe, programs::ProbeContext};
use sensor_common::event::EventKind;

use crate::{kernel, taint};

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
