//! Kernel struct field offsets, read from the running kernel's BTF at start-up by
//! userspace and handed to the programs in a one-element array map. Rust eBPF has no
//! CO-RE relocations of its own: this is what lets one binary run on several kernels.

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KernelOffsets {
    pub task_tgid: u32,
    pub task_start_boottime: u32,
    pub task_files: u32,
    pub task_mm: u32,
    pub files_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,
    pub file_inode: u32,
    pub file_mode: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub inode_generation: u32,
    pub inode_mode: u32,
    pub sb_dev: u32,
    pub mm_exe_file: u32,
    /// `linux_binprm.file`: used by the kprobe/fentry exec hook, which sees the script
    /// itself (not its interpreter) when a `#!` file is executed.
    pub binprm_file: u32,
    /// `file.f_path`, `path.dentry`, `dentry.d_parent`, `dentry.d_inode`: the directory a
    /// file was opened in (protected paths guard directories as well as files).
    pub file_path: u32,
    pub path_dentry: u32,
    pub dentry_parent: u32,
    pub dentry_inode: u32,
    /// Offsets in `struct pt_regs` of the first four syscall arguments, as the syscall
    /// wrappers (`__x64_sys_*`) receive them: the kprobe/fentry strategies hook those
    /// wrappers instead of syscall tracepoints. Zero where unknown (`SYSCALL_ARG_REGS`
    /// names no register of this architecture): those strategies are then not offered.
    pub syscall_arg0: u32,
    pub syscall_arg1: u32,
    pub syscall_arg2: u32,
    pub syscall_arg3: u32,
    /// Non-zero once userspace filled the struct; programs do nothing before that.
    pub valid: u32,
}

/// The (struct, field) pairs userspace resolves, in the order of the fields above
/// (`valid` excluded). Members inside anonymous unions/structs are found by the resolver.
pub const FIELDS: &[(&str, &str)] = &[
    ("task_struct", "tgid"),
    ("task_struct", "start_boottime"),
    ("task_struct", "files"),
    ("task_struct", "mm"),
    ("files_struct", "fdt"),
    ("fdtable", "max_fds"),
    ("fdtable", "fd"),
    ("file", "f_inode"),
    ("file", "f_mode"),
    ("inode", "i_ino"),
    ("inode", "i_sb"),
    ("inode", "i_generation"),
    ("inode", "i_mode"),
    ("super_block", "s_dev"),
    ("mm_struct", "exe_file"),
    ("linux_binprm", "file"),
    ("file", "f_path"),
    ("path", "dentry"),
    ("dentry", "d_parent"),
    ("dentry", "d_inode"),
];

/// `struct pt_regs` members holding syscall arguments 0-3 (x86-64 calling convention:
/// di, si, dx, r10), and the prefix of the syscall wrapper functions.
#[cfg(target_arch = "x86_64")]
pub const SYSCALL_ARG_REGS: Option<([&str; 4], &str)> = Some((["di", "si", "dx", "r10"], "__x64_"));
#[cfg(not(target_arch = "x86_64"))]
pub const SYSCALL_ARG_REGS: Option<([&str; 4], &str)> = None;

pod!(KernelOffsets);
