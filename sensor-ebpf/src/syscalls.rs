//! The file syscalls every strategy follows, decoded once. The hooks differ only in where
//! the arguments come from: the tracepoint record (`syscalls/sys_enter_*`), or the user
//! registers the syscall wrapper (`__x64_sys_*`) receives, for kprobes and fentry/fexit.
//! Hooking the wrappers costs only the calls hooked; any syscall *tracepoint* puts every
//! syscall of every process on the kernel's syscall-tracing slow path.
use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_user};
use sensor_common::{event::EventKind, maps::PendingCall, offsets::KernelOffsets};

/// `AT_FDCWD`: the legacy path syscalls are relative to the working directory.
pub const AT_FDCWD: i32 = -100;
const O_WRONLY: u32 = 0o1;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;

/// The syscalls whose success is checked at exit (opens and path changes).
#[derive(Clone, Copy)]
pub enum PathCall {
    Open,
    Openat,
    Openat2,
    Creat,
    Rename,
    Renameat,
    Renameat2,
    Link,
    Linkat,
    Unlink,
    Unlinkat,
    Chmod,
    Fchmodat,
    Fchmodat2,
    Truncate,
}

impl PathCall {
    /// What to stash for the exit, from the first four syscall arguments.
    /// For rename/link, `flags` carries the second name's dirfd.
    #[inline(always)]
    pub fn decode(self, a: [u64; 4]) -> PendingCall {
        use EventKind::{Chmod, Create, Link, Rename, Truncate, Unlink};
        let (kind, dirfd, name, name2, flags) = match self {
            PathCall::Open => (Create, AT_FDCWD, a[0], 0, a[1] as u32),
            PathCall::Openat => (Create, a[0] as i32, a[1], 0, a[2] as u32),
            PathCall::Openat2 => {
                // openat2(dfd, filename, struct open_how *how, size): flags are how->flags.
                let flags = unsafe { bpf_probe_read_user(a[2] as *const u64) }.unwrap_or(0);
                (Create, a[0] as i32, a[1], 0, flags as u32)
            }
            PathCall::Creat => (Create, AT_FDCWD, a[0], 0, O_CREAT | O_WRONLY | O_TRUNC),
            PathCall::Rename => (Rename, AT_FDCWD, a[0], a[1], AT_FDCWD as u32),
            PathCall::Renameat | PathCall::Renameat2 => (Rename, a[0] as i32, a[1], a[3], a[2] as u32),
            PathCall::Link => (Link, AT_FDCWD, a[0], a[1], AT_FDCWD as u32),
            PathCall::Linkat => (Link, a[0] as i32, a[1], a[3], a[2] as u32),
            PathCall::Unlink => (Unlink, AT_FDCWD, a[0], 0, 0),
            PathCall::Unlinkat => (Unlink, a[0] as i32, a[1], 0, 0),
            PathCall::Chmod => (Chmod, AT_FDCWD, a[0], 0, a[1] as u32),
            PathCall::Fchmodat | PathCall::Fchmodat2 => (Chmod, a[0] as i32, a[1], 0, a[2] as u32),
            PathCall::Truncate => (Truncate, AT_FDCWD, a[0], 0, 0),
        };
        PendingCall { kind: kind as u32, flags, dirfd, _pad: 0, name, name2 }
    }
}

/// Changes through a descriptor, recorded at entry: (kind, fd, chmod's mode or 0).
#[derive(Clone, Copy)]
pub enum FdCall {
    Ftruncate,
    Fchmod,
}

impl FdCall {
    #[inline(always)]
    pub fn decode(self, a: [u64; 4]) -> (EventKind, u64, u32) {
        match self {
            FdCall::Ftruncate => (EventKind::Truncate, a[0], 0),
            FdCall::Fchmod => (EventKind::Chmod, a[0], a[1] as u32),
        }
    }
}

/// The first four syscall arguments from the user registers a syscall wrapper receives
/// (`const struct pt_regs *regs`), at the offsets userspace found in the kernel's BTF.
#[inline(always)]
pub fn regs_args(o: &KernelOffsets, regs: *const u8) -> [u64; 4] {
    let read = |off: u32| unsafe { bpf_probe_read_kernel(regs.wrapping_add(off as usize) as *const u64) }.unwrap_or(0);
    [read(o.syscall_arg0), read(o.syscall_arg1), read(o.syscall_arg2), read(o.syscall_arg3)]
}
