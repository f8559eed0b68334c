//! The taint rules, decided in the kernel. Every hook (tracepoint, kprobe, fentry) ends
//! here, so the rules exist once.
//!
//! Fast path: a hook first looks the current tgid up in `PROCS`. Untracked processes
//! (neither tainted, nor a port program, nor an interpreter) stop there: one lookup, no
//! event. Exec is the one exception: it must also look the executed inode up in `INODES`.
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_ktime_get_boot_ns, bpf_probe_read_kernel, bpf_probe_read_user,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user_str, bpf_send_signal},
    },
};

/// deny_exec's signal.
const SIGKILL: u32 = 9;
use sensor_common::{
    event::{
        EF_FILE_NEWLY_UNTRUSTED, EF_FILE_WAS_UNTRUSTED, EF_HAS_INODE, EF_INODE_MAP_FULL,
        EF_AT_OPEN, EF_EXEC_PREVENTED, EF_WRITE_PREVENTED, EF_NAME2_TRUNCATED, EF_NAME_TRUNCATED, EF_PORT_PROGRAM, EF_TAINTED,
        ChangePayload, ConnectionPayload, Event, EventHeader, EventKind, ExecPayload, ExitPayload,
        FileId, ForkPayload, INHERITED_FILES, InheritedFdsPayload, NAME_LEN, Name, OpenPayload,
        PackedConnection, ProcessPayload, RenamePayload, TCP_FIN_WAIT1, TCP_LAST_ACK,
        TCP_SYN_SENT, TaintPayload, TaintReason, WritePayload,
    },
    maps::{
        DROP_INODES_FULL, DROP_KERNEL_READ_FAILED, DROP_PENDING_FULL, DROP_PROCS_FULL, GENERATION_ANY, INODE_FLAGGED, INODE_PROTECTED,
        INODE_INTERPRETER, INODE_PORT_PROGRAM, INODE_UNTRUSTED, InodeState, PROC_EXEC_TAINT, PROC_INTERPRETER,
        PROC_PORT_PROGRAM, PROC_TAINTED, PendingCall, ProcState, SEEN_READ, SEEN_WRITE, WriteSeenKey,
    },
    offsets::KernelOffsets,
};

use crate::{
    kernel::{self, FileIdentity},
    diag::diag,
    maps::{CONFIG, EVENTS, INODES, PENDING, PROCS, WRITE_SEEN, count_drop},
};

/// Processes whose file activity is recorded and taints files.
const WRITER_FLAGS: u32 = PROC_TAINTED | PROC_PORT_PROGRAM;

const O_ACCMODE: u32 = 0o3;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;

/// The current process if it is tracked: the one lookup of the fast path.
#[inline(always)]
pub fn tracked() -> Option<(u64, ProcState)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let state = unsafe { PROCS.get(&((pid_tgid >> 32) as u32)) }?;
    Some((pid_tgid, *state))
}

/// Does this process's file activity count (rule 1 or rule 5)?
#[inline(always)]
pub fn is_writer(state: &ProcState) -> bool {
    state.flags & WRITER_FLAGS != 0
}

/// The `INODES` entry of a file if its generation matches (an entry for a deleted file
/// whose inode number was reused does not apply to the new file).
#[inline(always)]
fn inode_state(id: &FileIdentity) -> Option<InodeState> {
    let state = *unsafe { INODES.get(&id.key) }?;
    (state.generation == GENERATION_ANY || state.generation == id.generation).then_some(state)
}

/// Rule 5: mark a file untrusted. Returns the event flags that say what changed.
#[inline(always)]
fn mark_untrusted(id: &FileIdentity) -> u32 {
    let previous = inode_state(id);
    if let Some(state) = previous
        && state.flags & INODE_UNTRUSTED != 0
    {
        return EF_FILE_WAS_UNTRUSTED;
    }
    let flags = previous.map_or(0, |s| s.flags) | INODE_UNTRUSTED;
    let new = InodeState { flags, generation: id.generation };
    if INODES.insert(&id.key, &new, 0).is_err() {
        diag!(
            count_drop(DROP_INODES_FULL),
            "INODES map full: inode {} on dev {} untrusted only in the graph, not in the kernel (raise max_inodes)",
            id.key.ino,
            id.key.dev
        );
        return EF_FILE_NEWLY_UNTRUSTED | EF_INODE_MAP_FULL;
    }
    EF_FILE_NEWLY_UNTRUSTED
}

#[inline(always)]
fn set_proc(tgid: u32, state: &ProcState) {
    if PROCS.insert(&tgid, state, 0).is_err() {
        diag!(count_drop(DROP_PROCS_FULL), "PROCS map full: process {} not tracked in the kernel (raise max_procs)", tgid);
    }
}

#[inline(always)]
fn proc_event_flags(flags: u32) -> u32 {
    let mut out = 0;
    if flags & PROC_TAINTED != 0 {
        out |= EF_TAINTED;
    }
    if flags & PROC_PORT_PROGRAM != 0 {
        out |= EF_PORT_PROGRAM;
    }
    out
}

/// Reserves an `Event<T>` (at `T`'s own size), fills the header and the process, lets
/// `fill` add the rest of the payload (every field it does not set: the ring buffer's
/// memory is not cleared) and submits it; counts the drop if the ring buffer is full. One
/// function owns the reservation so the compiled code tests it for null once: a second
/// test (as an `Option` returned to the caller produces) makes the 6.1 verifier explore a
/// path that exits holding the reservation, and reject the program.
#[inline(always)]
fn emit<T: ProcessPayload + 'static>(kind: EventKind, pid_tgid: u64, state: &ProcState, fill: impl FnOnce(&mut Event<T>)) {
    let Some(mut entry) = EVENTS.reserve::<Event<T>>(0) else {
        diag!(count_drop(kind as u32), "EVENTS ring buffer full: a {} event lost (raise ring_buffer_bytes)", kind as u32);
        return;
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.header = EventHeader { kind: kind as u32, flags: proc_event_flags(state.flags), ts_boot_ns: unsafe { bpf_ktime_get_boot_ns() } };
    let process = ev.payload.process_mut();
    process.tgid = (pid_tgid >> 32) as u32;
    process.tid = pid_tgid as u32;
    process.start_boottime_ns = state.start_boottime_ns;
    process.uid = bpf_get_current_uid_gid() as u32;
    process._pad = 0;
    process.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    fill(ev);
    entry.submit(0);
}

/// A file's identity as events carry it, with `EF_HAS_INODE` set in `header`.
#[inline(always)]
fn file_id(header: &mut EventHeader, id: &FileIdentity) -> FileId {
    header.flags |= EF_HAS_INODE;
    FileId { ino: id.key.ino, dev: id.key.dev, generation: id.generation }
}

/// Where a name is read from.
#[derive(Clone, Copy)]
pub enum NameSource {
    User(u64),
    Kernel(*const u8),
}

/// Copies a NUL-terminated name into `dst`; returns (length, truncated).
#[inline(always)]
fn read_name(dst: &mut [u8; NAME_LEN], src: NameSource) -> (u16, bool) {
    let (ret, ptr, user) = match src {
        NameSource::User(ptr) => (
            unsafe {
                bpf_probe_read_user_str(dst.as_mut_ptr().cast(), NAME_LEN as u32, ptr as *const _)
            },
            ptr as *const u8,
            true,
        ),
        NameSource::Kernel(ptr) => (
            unsafe { bpf_probe_read_kernel_str(dst.as_mut_ptr().cast(), NAME_LEN as u32, ptr.cast()) },
            ptr,
            false,
        ),
    };
    if ret <= 0 {
        return (0, false);
    }
    // `ret` counts the NUL. A full buffer may hold a cut name: it is cut if the byte
    // after the last one copied is not the terminator.
    let len = ((ret - 1) as usize).min(NAME_LEN - 1);
    let truncated = len == NAME_LEN - 1 && {
        let next = ptr.wrapping_add(NAME_LEN - 1);
        let byte = if user {
            unsafe { bpf_probe_read_user(next) }
        } else {
            unsafe { bpf_probe_read_kernel(next) }
        };
        byte.map_or(false, |b| b != 0)
    };
    (len as u16, truncated)
}

/// Copies a name into `name`; sets `cut_flag` (`EF_NAME_TRUNCATED`, `EF_NAME2_TRUNCATED`) in
/// `flags` when it was cut.
#[inline(always)]
fn set_name(name: &mut Name, flags: &mut u32, cut_flag: u32, src: NameSource) {
    let (len, truncated) = read_name(&mut name.bytes, src);
    name.len = len;
    if truncated {
        *flags |= cut_flag;
    }
}

#[inline(always)]
fn taint_survives_exec() -> bool {
    CONFIG.get(0).map_or(true, |c| c.taint_survives_exec != 0)
}

#[inline(always)]
fn dedup_writes() -> bool {
    CONFIG.get(0).map_or(true, |c| c.dedup_writes != 0)
}

/// Rules 2 and 4 at exec, from `sched_process_exec` (the new image is in place).
/// `name` is the path given to exec.
#[inline(always)]
pub fn on_exec(name: Option<NameSource>) {
    let Some(o) = kernel::offsets() else { return };
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let task = kernel::current_task();
    // Plain scalars, not Options: the 6.1 verifier rejects reads of stack slots that only
    // some paths wrote, which is what matching an Option's payload late compiles to.
    let exe = kernel::task_exe_file(o, task).and_then(|f| kernel::file_identity(o, f));
    let has_exe = exe.is_some();
    let exe = exe.unwrap_or_default();
    let exe_flags = if has_exe { inode_state(&exe).map_or(0, |s| s.flags) } else { 0 };
    // deny_exec: stopped here, after the new image is mapped and before it runs (a signal
    // is delivered on the way back to user space). Recorded below like any exec of it.
    let prevented = exe_flags & INODE_FLAGGED != 0;
    if prevented {
        unsafe { bpf_send_signal(SIGKILL) };
    }
    let previous_flags = unsafe { PROCS.get(&tgid) }.map(|p| p.flags);
    let tracked_before = previous_flags.is_some();
    let previous_flags = previous_flags.unwrap_or(0);
    if exe_flags == 0 && !tracked_before {
        return;
    }

    let mut flags = 0;
    let mut reason = 0;
    if previous_flags & PROC_EXEC_TAINT != 0 {
        flags |= PROC_TAINTED;
        reason = TaintReason::ExecUntrusted as u32;
    } else if previous_flags & PROC_TAINTED != 0 && taint_survives_exec() {
        flags |= PROC_TAINTED;
    }
    if exe_flags & INODE_UNTRUSTED != 0 && flags & PROC_TAINTED == 0 {
        flags |= PROC_TAINTED;
        reason = TaintReason::ExecUntrusted as u32;
    }
    if exe_flags & INODE_PORT_PROGRAM != 0 {
        flags |= PROC_PORT_PROGRAM;
    }
    if exe_flags & INODE_INTERPRETER != 0 {
        flags |= PROC_INTERPRETER;
    }
    if flags == 0 {
        // A port program or interpreter exec'd something ordinary: it is no longer special.
        let _ = PROCS.remove(&tgid);
        return;
    }
    let state = ProcState {
        start_boottime_ns: kernel::task_start_boottime(o, task),
        flags,
        _pad: 0,
    };
    set_proc(tgid, &state);
    if flags & WRITER_FLAGS == 0 {
        return;
    }
    let name_ptr = match name {
        Some(NameSource::Kernel(p)) => p,
        _ => core::ptr::null(),
    };
    emit(EventKind::Exec, pid_tgid, &state, |ev: &mut Event<ExecPayload>| {
        let p = &mut ev.payload;
        p.reason = reason;
        p._pad = 0;
        p.file = FileId::default();
        p.name.len = 0;
        if has_exe {
            p.file = file_id(&mut ev.header, &exe);
            if exe_flags & INODE_UNTRUSTED != 0 {
                ev.header.flags |= EF_FILE_WAS_UNTRUSTED;
            }
        }
        if prevented {
            ev.header.flags |= EF_EXEC_PREVENTED;
        }
        if !name_ptr.is_null() {
            set_name(&mut p.name, &mut ev.header.flags, EF_NAME_TRUNCATED, NameSource::Kernel(name_ptr));
        }
    });
    if reason != 0 {
        mark_writable_fds(o, pid_tgid, &state);
    }
}

/// Rule 2 for the kprobe/fentry strategies: `bprm->file` is the file being executed, the
/// `#!` script itself on the first round, its interpreter on the next.
#[inline(always)]
pub fn on_bprm_check(bprm: *const u8) {
    let Some(o) = kernel::offsets() else { return };
    let Some(id) = kernel::binprm_file(o, bprm).and_then(|f| kernel::file_identity(o, f)) else {
        return;
    };
    let Some(state) = inode_state(&id) else { return };
    if state.flags & INODE_UNTRUSTED == 0 {
        return;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let previous = unsafe { PROCS.get(&tgid) }.copied();
    let proc_state = ProcState {
        start_boottime_ns: kernel::task_start_boottime(o, kernel::current_task()),
        flags: previous.map_or(0, |p| p.flags) | PROC_EXEC_TAINT,
        _pad: 0,
    };
    set_proc(tgid, &proc_state);
}

/// Rule 4 at fork, from `sched_process_fork` in the parent's context.
#[inline(always)]
pub fn on_fork(child: *const u8) {
    let Some((pid_tgid, parent)) = tracked() else { return };
    let Some(o) = kernel::offsets() else { return };
    let parent_tgid = (pid_tgid >> 32) as u32;
    let Some(child_tgid) = kernel::task_tgid(o, child) else { return };
    if child_tgid == parent_tgid {
        return; // a new thread, not a new process
    }
    let child_state = ProcState {
        start_boottime_ns: kernel::task_start_boottime(o, child),
        flags: parent.flags & !PROC_EXEC_TAINT,
        _pad: 0,
    };
    set_proc(child_tgid, &child_state);
    if parent.flags & PROC_TAINTED == 0 {
        return;
    }
    emit(EventKind::Fork, pid_tgid, &child_state, |ev: &mut Event<ForkPayload>| {
        let p = &mut ev.payload;
        p.process.tgid = child_tgid;
        p.process.tid = child_tgid;
        p.parent_tgid = parent_tgid;
        p._pad = 0;
        p.parent_start_boottime_ns = parent.start_boottime_ns;
    });
}

/// Forget a process when its thread-group leader exits.
#[inline(always)]
pub fn on_exit() {
    let Some((pid_tgid, state)) = tracked() else { return };
    let _ = PENDING.remove(&pid_tgid);
    let tgid = (pid_tgid >> 32) as u32;
    if pid_tgid as u32 != tgid {
        return;
    }
    let _ = PROCS.remove(&tgid);
    if state.flags & PROC_TAINTED == 0 {
        return;
    }
    emit(EventKind::Exit, pid_tgid, &state, |_: &mut Event<ExitPayload>| {});
}

/// A TCP state change. Only the states entered in the owner's own context count (see
/// `TCP_SYN_SENT`), and only for processes whose activity is recorded: a port program's
/// close names the peer it served; a tainted process's connect names a host it reached.
#[inline(always)]
pub fn on_connection(new_state: u32, fill: impl FnOnce(&mut PackedConnection)) {
    if !matches!(new_state, TCP_SYN_SENT | TCP_FIN_WAIT1 | TCP_LAST_ACK) {
        return;
    }
    let Some((pid_tgid, state)) = tracked() else { return };
    if state.flags & WRITER_FLAGS == 0 {
        return;
    }
    emit(EventKind::Connection, pid_tgid, &state, |ev: &mut Event<ConnectionPayload>| {
        ev.payload.tcp_state = new_state;
        ev.payload._pad = 0;
        ev.payload.connection = PackedConnection::default();
        fill(&mut ev.payload.connection);
    });
}

/// A change through a descriptor (ftruncate, fchmod), at entry. `call` reads the
/// arguments, only once the process is known to be tracked.
#[inline(always)]
pub fn on_fd_change(call: impl FnOnce() -> (EventKind, u64, u32)) {
    let Some((pid_tgid, state)) = tracked() else { return };
    if state.flags & WRITER_FLAGS == 0 {
        return;
    }
    let (kind, fd, mode) = call();
    if fd > u32::MAX as u64 {
        return;
    }
    let Some(o) = kernel::offsets() else { return };
    let Some(file) = kernel::task_fd_file(o, kernel::current_task(), fd as u32) else { return };
    on_file_change(o, pid_tgid, &state, file, kind, fd as i32, mode);
}

/// A write to `file` by a tracked process (`vfs_write` hooks call this directly), or a
/// change through a descriptor (`mode`: chmod's new mode, else 0).
#[inline(always)]
pub fn on_file_change(
    o: &KernelOffsets,
    pid_tgid: u64,
    state: &ProcState,
    file: *const u8,
    kind: EventKind,
    fd: i32,
    mode: u32,
) {
    let Some(id) = kernel::file_identity(o, file) else { return };
    record_change(pid_tgid, state, &id, kind, fd, mode, 0);
}

/// Has this process reported this `access` of this file already? Marks it reported.
#[inline(always)]
fn seen_before(id: &FileIdentity, pid_tgid: u64, access: u32) -> bool {
    let key = WriteSeenKey { inode: id.key, tgid: (pid_tgid >> 32) as u32, access };
    if unsafe { WRITE_SEEN.get(&key) }.is_some() {
        return true;
    }
    let _ = WRITE_SEEN.insert(&key, &1, 0);
    false
}

/// Rule 5 for one file: mark it untrusted (chmod only records) and report it, once per
/// (process, file) for writes.
#[inline(always)]
fn record_change(pid_tgid: u64, state: &ProcState, id: &FileIdentity, kind: EventKind, fd: i32, mode: u32, extra_flags: u32) {
    if !id.regular {
        return; // pipes, sockets, terminals: nothing to taint
    }
    // (A prevented write is always reported: the process dies at it.)
    if matches!(kind, EventKind::Write) && extra_flags & EF_WRITE_PREVENTED == 0 && dedup_writes() {
        if seen_before(id, pid_tgid, SEEN_WRITE) {
            return;
        }
    }
    let file_flags = if matches!(kind, EventKind::Chmod) {
        // chmod is recorded (with +x noted by userspace) but does not change content.
        inode_state(id).map_or(0, |s| {
            if s.flags & INODE_UNTRUSTED != 0 { EF_FILE_WAS_UNTRUSTED } else { 0 }
        })
    } else {
        mark_untrusted(id)
    };
    let id = *id;
    if matches!(kind, EventKind::Write) {
        emit(kind, pid_tgid, state, |ev: &mut Event<WritePayload>| {
            ev.payload.file = file_id(&mut ev.header, &id);
            ev.header.flags |= file_flags | extra_flags;
            ev.payload.fd = fd;
            ev.payload._pad = 0;
        });
    } else {
        emit(kind, pid_tgid, state, |ev: &mut Event<ChangePayload>| {
            ev.payload.file = file_id(&mut ev.header, &id);
            ev.header.flags |= file_flags | extra_flags;
            ev.payload.fd = fd;
            ev.payload.mode = mode;
            ev.payload.name.len = 0;
        });
    }
}

/// Descriptors looked at when a process becomes tainted: 0-15 hold the standard streams
/// and every shell redirection (`>`, `2>>`, `3>` ... `9>`). A file held open for writing
/// above it is missed. The bound is the verifier's cost: the loop is verified in every
/// program that can taint (exec and the open exits), and 64 made start-up take seconds.
const FD_SCAN_LIMIT: u32 = 16;

/// A process just became tainted: every regular file it holds open for writing (an
/// inherited descriptor such as `./evil > out.txt`) becomes untrusted now, since the
/// tracepoint strategy does not hook write(2) itself. One record reports them all: a
/// loop that emitted per descriptor would be too much for the verifier.
#[inline(always)]
fn mark_writable_fds(o: &KernelOffsets, pid_tgid: u64, state: &ProcState) {
    let Some(table) = kernel::task_fd_table(o, kernel::current_task()) else { return };
    emit(EventKind::InheritedFds, pid_tgid, state, |ev: &mut Event<InheritedFdsPayload>| {
        // The counters live in the record, read and written through volatile accesses:
        // kept in registers, their exact values would make every combination of
        // "writable or not" over the descriptors a distinct verifier state.
        let packed = core::ptr::addr_of_mut!(ev.payload.count);
        let overflow = core::ptr::addr_of_mut!(ev.payload.overflow);
        unsafe {
            packed.write_volatile(0);
            overflow.write_volatile(0);
        }
        for fd in 0..FD_SCAN_LIMIT {
            if fd >= table.max_fds {
                break;
            }
            let Some(file) = table.file(fd) else { continue };
            if !kernel::file_writable(o, file) {
                continue;
            }
            let Some(id) = kernel::file_identity(o, file) else { continue };
            if !id.regular {
                continue;
            }
            let _ = mark_untrusted(&id);
            let slot = unsafe { packed.read_volatile() } as usize;
            if slot < INHERITED_FILES {
                let entry = FileId { ino: id.key.ino, dev: id.key.dev, generation: id.generation };
                // In bounds: slot < INHERITED_FILES, the array's length.
                unsafe {
                    ev.payload.files.as_mut_ptr().add(slot).write(entry);
                    packed.write_volatile(slot as u32 + 1);
                }
            } else {
                unsafe { overflow.write_volatile(overflow.read_volatile() + 1) };
            }
        }
    });
}

/// Is a stashed call worth following for this process? Opens with write intent and path
/// changes by a writer; read-only opens by an interpreter (rule 3) or a tainted process
/// (what it reads, it may send on).
#[inline(always)]
fn wanted(state: &ProcState, call: &PendingCall) -> bool {
    if call.kind == EventKind::Create as u32 && call.flags & (O_ACCMODE | O_CREAT | O_TRUNC) == 0 {
        return state.flags & (PROC_INTERPRETER | PROC_TAINTED) != 0;
    }
    state.flags & WRITER_FLAGS != 0
}

/// Entry of an open or path syscall: stash what the exit needs. `call` reads the
/// arguments, only once the process is known to be tracked.
#[inline(always)]
pub fn on_syscall_enter(call: impl FnOnce() -> PendingCall) {
    let Some((pid_tgid, state)) = tracked() else { return };
    let call = call();
    if wanted(&state, &call) && PENDING.insert(&pid_tgid, &call, 0).is_err() {
        diag!(count_drop(DROP_PENDING_FULL), "PENDING map full: a syscall of process {} not followed", (pid_tgid >> 32) as u32);
    }
}

/// Exit of any stashed syscall (tracepoint, kretprobe): report it if it succeeded.
#[inline(always)]
pub fn on_syscall_exit(ret: i64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(call) = (unsafe { PENDING.get(&pid_tgid) }).copied() else { return };
    let _ = PENDING.remove(&pid_tgid);
    finish(pid_tgid, &call, ret);
}

/// Entry and exit at once (fexit sees the arguments and the return value): no stash.
#[inline(always)]
pub fn on_syscall_return(call: impl FnOnce() -> PendingCall, ret: i64) {
    let Some((pid_tgid, state)) = tracked() else { return };
    let call = call();
    if wanted(&state, &call) {
        finish(pid_tgid, &call, ret);
    }
}

#[inline(always)]
fn finish(pid_tgid: u64, call: &PendingCall, ret: i64) {
    if ret < 0 {
        return;
    }
    let Some(o) = kernel::offsets() else { return };
    let Some(state) = unsafe { PROCS.get(&((pid_tgid >> 32) as u32)) }.copied() else { return };
    if call.kind == EventKind::Create as u32 {
        on_open_done(o, pid_tgid, state, call, ret as u32);
        return;
    }
    let Some(kind) = EventKind::from_u32(call.kind) else { return };
    if matches!(kind, EventKind::Rename | EventKind::Link) {
        emit(kind, pid_tgid, &state, |ev: &mut Event<RenamePayload>| {
            let p = &mut ev.payload;
            p.dirfd = call.dirfd;
            // (`PathCall::decode` stashes the second name's dirfd in `flags`.)
            p.new_dirfd = call.flags as i32;
            set_name(&mut p.name, &mut ev.header.flags, EF_NAME_TRUNCATED, NameSource::User(call.name));
            p.new_name.len = 0;
            if call.name2 != 0 {
                set_name(&mut p.new_name, &mut ev.header.flags, EF_NAME2_TRUNCATED, NameSource::User(call.name2));
            }
        });
    } else {
        // Unlink, chmod, truncate through a path.
        emit(kind, pid_tgid, &state, |ev: &mut Event<ChangePayload>| {
            let p = &mut ev.payload;
            p.file = FileId::default();
            p.fd = call.dirfd;
            p.mode = call.flags;
            set_name(&mut p.name, &mut ev.header.flags, EF_NAME_TRUNCATED, NameSource::User(call.name));
        });
    }
}

#[inline(always)]
fn on_open_done(o: &KernelOffsets, pid_tgid: u64, mut state: ProcState, call: &PendingCall, fd: u32) {
    let file = kernel::task_fd_file(o, kernel::current_task(), fd);
    let has_file = file.is_some();
    let file = file.unwrap_or(core::ptr::null());
    let Some(id) = (if has_file { kernel::file_identity(o, file) } else { None }) else {
        diag!(
            count_drop(DROP_KERNEL_READ_FAILED),
            "fd {} that open just returned not readable through the BTF offsets: kernel layout unexpected (or another thread closed it at once)",
            fd
        );
        return;
    };
    if !id.regular {
        return;
    }
    let kind;
    let file_flags;
    if call.flags & (O_ACCMODE | O_CREAT | O_TRUNC) == 0 {
        let file_state = inode_state(&id).map_or(0, |s| s.flags);
        if file_state & INODE_UNTRUSTED == 0 {
            return;
        }
        // deny_exec for scripts: `sh FILE`, or a `#!` line (the kernel runs the interpreter,
        // which then opens the script), runs a flagged file without exec'ing it. An
        // interpreter opening one to read is sent SIGKILL now, delivered before the open
        // returns: not one line of it is read.
        let interpret_prevented = file_state & INODE_FLAGGED != 0 && state.flags & PROC_INTERPRETER != 0;
        if interpret_prevented {
            unsafe { bpf_send_signal(SIGKILL) };
        }
        if state.flags & PROC_TAINTED != 0 {
            // Already tainted: what it reads is recorded (once per file), not a new taint.
            // (A prevented read is always reported: the process dies at it.)
            if !interpret_prevented && seen_before(&id, pid_tgid, SEEN_READ) {
                return;
            }
            kind = EventKind::Read;
        } else {
            // Rule 3: an interpreter reading an untrusted file (a script) becomes tainted.
            state.flags |= PROC_TAINTED;
            set_proc((pid_tgid >> 32) as u32, &state);
            kind = EventKind::Taint;
        }
        file_flags = EF_FILE_WAS_UNTRUSTED | if interpret_prevented { EF_EXEC_PREVENTED } else { 0 };
    } else if call.flags & (O_CREAT | O_TRUNC) != 0 {
        kind = EventKind::Create;
        file_flags = mark_untrusted(&id) | guard_protected(o, &state, file, &id);
    } else {
        // Opened for writing: untrusted from now on, whether or not a write follows, so
        // that no per-write hook is needed (write(2) is the hottest syscall there is).
        let prevented = guard_protected(o, &state, file, &id);
        record_change(pid_tgid, &state, &id, EventKind::Write, fd as i32, 0, EF_AT_OPEN | prevented);
        return;
    }
    if matches!(kind, EventKind::Taint) {
        emit(kind, pid_tgid, &state, |ev: &mut Event<TaintPayload>| {
            let p = &mut ev.payload;
            p.file = file_id(&mut ev.header, &id);
            ev.header.flags |= file_flags;
            p.dirfd = call.dirfd;
            p.reason = TaintReason::InterpreterRead as u32;
            set_name(&mut p.name, &mut ev.header.flags, EF_NAME_TRUNCATED, NameSource::User(call.name));
        });
        mark_writable_fds(o, pid_tgid, &state);
    } else {
        emit(kind, pid_tgid, &state, |ev: &mut Event<OpenPayload>| {
            let p = &mut ev.payload;
            p.file = file_id(&mut ev.header, &id);
            ev.header.flags |= file_flags;
            p.dirfd = call.dirfd;
            p.open_flags = call.flags;
            set_name(&mut p.name, &mut ev.header.flags, EF_NAME_TRUNCATED, NameSource::User(call.name));
        });
    }
}

/// Protected paths: a tainted process that opened a protected file for writing, or a file
/// in a protected directory, is sent SIGKILL now. The open has happened (a tracepoint at
/// the syscall's exit cannot refuse it: O_CREAT made the file, O_TRUNC emptied it), but
/// the signal is delivered before the syscall returns to user space, so not one byte is
/// written through the descriptor. Port programs are not guarded here: they write for
/// remote clients, whose files are arrivals, and the quarantine is their answer.
/// Returns `EF_WRITE_PREVENTED` when the process was stopped.
#[inline(always)]
fn guard_protected(o: &KernelOffsets, state: &ProcState, file: *const u8, id: &FileIdentity) -> u32 {
    if state.flags & PROC_TAINTED == 0 {
        return 0;
    }
    let is_protected = |id: &FileIdentity| inode_state(id).is_some_and(|s| s.flags & INODE_PROTECTED != 0);
    let stop = is_protected(id) || kernel::parent_dir_identity(o, file).is_some_and(|dir| is_protected(&dir));
    if !stop {
        return 0;
    }
    unsafe { bpf_send_signal(SIGKILL) };
    EF_WRITE_PREVENTED
}

/// Reads a `__data_loc char[]` tracepoint field (offset in the low 16 bits).
#[inline(always)]
pub fn data_loc_name(ctx: &impl aya_ebpf::EbpfContext, field_offset: usize) -> Option<NameSource> {
    let loc: u32 = unsafe { bpf_probe_read_kernel((ctx.as_ptr() as *const u8).wrapping_add(field_offset).cast()) }.ok()?;
    Some(NameSource::Kernel((ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize)))
}
