//! The fentry strategy: the kprobe strategy's two hooks through BPF trampolines, which
//! avoid the breakpoint/ftrace round trip of a kprobe.
use aya_ebpf::{macros::fentry, programs::FEntryContext};
use sensor_common::event::EventKind;

use crate::{kernel, taint};

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
