//! Reading kernel structs through the offsets userspace found in the running kernel's BTF.
use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use sensor_common::{maps::InodeKey, offsets::KernelOffsets};

use crate::maps::OFFSETS;

/// `S_IFMT` / `S_IFREG` from `<linux/stat.h>`.
const S_IFMT: u16 = 0o170000;
const S_IFREG: u16 = 0o100000;

#[inline(always)]
pub fn offsets() -> Option<&'static KernelOffsets> {
    let offsets = OFFSETS.get(0)?;
    (offsets.valid != 0).then_some(offsets)
}

#[inline(always)]
unsafe fn read<T>(base: *const u8, offset: u32) -> Option<T> {
    if base.is_null() {
        return None;
    }
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize) as *const T).ok() }
}

#[inline(always)]
pub fn current_task() -> *const u8 {
    unsafe { bpf_get_current_task() as *const u8 }
}

#[inline(always)]
pub fn task_start_boottime(o: &KernelOffsets, task: *const u8) -> u64 {
    unsafe { read::<u64>(task, o.task_start_boottime) }.unwrap_or(0)
}

#[inline(always)]
pub fn task_tgid(o: &KernelOffsets, task: *const u8) -> Option<u32> {
    unsafe { read::<i32>(task, o.task_tgid) }.map(|v| v as u32)
}

/// `FMODE_WRITE` from `<linux/fs.h>`.
const FMODE_WRITE: u32 = 0x2;

/// The descriptor table of `task`: the `struct file *` array and its size.
#[derive(Clone, Copy)]
pub struct FdTable {
    files: *const *const u8,
    pub max_fds: u32,
}

#[inline(always)]
pub fn task_fd_table(o: &KernelOffsets, task: *const u8) -> Option<FdTable> {
    unsafe {
        let files = read::<*const u8>(task, o.task_files)?;
        let fdt = read::<*const u8>(files, o.files_fdt)?;
        let max_fds = read::<u32>(fdt, o.fdtable_max_fds)?;
        let files = read::<*const *const u8>(fdt, o.fdtable_fd)?;
        Some(FdTable { files, max_fds })
    }
}

impl FdTable {
    /// The `struct file *` behind descriptor `fd`, if open.
    #[inline(always)]
    pub fn file(&self, fd: u32) -> Option<*const u8> {
        if fd >= self.max_fds {
            return None;
        }
        let file = unsafe { bpf_probe_read_kernel(self.files.wrapping_add(fd as usize)) }.ok()?;
        (!file.is_null()).then_some(file)
    }
}

/// The `struct file *` behind descriptor `fd` of `task`, if any.
#[inline(always)]
pub fn task_fd_file(o: &KernelOffsets, task: *const u8, fd: u32) -> Option<*const u8> {
    task_fd_table(o, task)?.file(fd)
}

/// Was `file` opened for writing?
#[inline(always)]
pub fn file_writable(o: &KernelOffsets, file: *const u8) -> bool {
    unsafe { read::<u32>(file, o.file_mode) }.is_some_and(|mode| mode & FMODE_WRITE != 0)
}

/// The executable file of `task` (`mm->exe_file`).
#[inline(always)]
pub fn task_exe_file(o: &KernelOffsets, task: *const u8) -> Option<*const u8> {
    unsafe {
        let mm = read::<*const u8>(task, o.task_mm)?;
        let file = read::<*const u8>(mm, o.mm_exe_file)?;
        (!file.is_null()).then_some(file)
    }
}

/// `bprm->file`.
#[inline(always)]
pub fn binprm_file(o: &KernelOffsets, bprm: *const u8) -> Option<*const u8> {
    let file = unsafe { read::<*const u8>(bprm, o.binprm_file)? };
    (!file.is_null()).then_some(file)
}

/// Identity of the inode behind a `struct file *`.
#[derive(Clone, Copy, Default)]
pub struct FileIdentity {
    pub key: InodeKey,
    pub generation: u32,
    pub regular: bool,
}

#[inline(always)]
pub fn file_identity(o: &KernelOffsets, file: *const u8) -> Option<FileIdentity> {
    let inode = unsafe { read::<*const u8>(file, o.file_inode)? };
    inode_identity(o, inode)
}

/// Identity of the directory `file` was opened in (`f_path.dentry->d_parent->d_inode`).
#[inline(always)]
pub fn parent_dir_identity(o: &KernelOffsets, file: *const u8) -> Option<FileIdentity> {
    unsafe {
        let dentry = read::<*const u8>(file, o.file_path + o.path_dentry)?;
        let parent = read::<*const u8>(dentry, o.dentry_parent)?;
        let inode = read::<*const u8>(parent, o.dentry_inode)?;
        inode_identity(o, inode)
    }
}

#[inline(always)]
fn inode_identity(o: &KernelOffsets, inode: *const u8) -> Option<FileIdentity> {
    unsafe {
        let ino = read::<u64>(inode, o.inode_ino)?;
        let sb = read::<*const u8>(inode, o.inode_sb)?;
        let dev = read::<u32>(sb, o.sb_dev)?;
        let generation = read::<u32>(inode, o.inode_generation).unwrap_or(0);
        let mode = read::<u16>(inode, o.inode_mode).unwrap_or(0);
        Some(FileIdentity {
            key: InodeKey::new(dev, ino),
            generation,
            regular: mode & S_IFMT == S_IFREG,
        })
    }
}
