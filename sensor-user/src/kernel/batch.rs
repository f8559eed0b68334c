//! Reads a whole hash map in a few system calls (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6).
//!
//! aya's map iterator costs two `bpf(2)` calls per entry (next key, lookup). `status` and
//! every metrics scrape report how full PROCS and INODES are; with 200,000 untrusted
//! inodes that walk took 90 % of the sensor's CPU while a worm created files (perf, the
//! `cargo xtask bench --only ingest` workload polled by `status`), and starved the
//! event loop it runs on. A batch lookup copies thousands of entries per call.
use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, BorrowedFd},
};

/// Entries asked for per call: big enough that a walk of the largest map (262,144
/// inodes) is ~64 calls, small enough that the buffers stay under 200 KiB.
const BATCH_ENTRIES: usize = 4096;
/// At most this many calls per walk (the map's capacity in batches, with room to spare):
/// a map that keeps changing under the walk cannot keep it going.
const MAX_CALLS: usize = 1024;

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// `ENOTSUPP` (kernel-internal, returned by maps without batch support).
const ENOTSUPP: i32 = 524;

/// `union bpf_attr`, the `batch` member (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Why a batch walk could not be made; `Unsupported` means: walk entry by entry.
#[derive(Debug)]
pub enum BatchError {
    Unsupported,
    Io(io::Error),
}

/// Calls `each` with every value of the hash map `fd` (keys `key_size` bytes, values of
/// type `V`); returns how many entries it saw. Entries added or removed during the walk
/// may or may not be seen, as with any walk of a live map.
///
/// `V` must be the map's exact value type (`#[repr(C)]`, plain data): values are read
/// from the kernel's bytes.
pub fn for_each_value<V: Copy>(fd: BorrowedFd, key_size: usize, mut each: impl FnMut(&V)) -> Result<usize, BatchError> {
    let value_size = size_of::<V>();
    let mut keys = vec![0u8; BATCH_ENTRIES * key_size];
    let mut values = vec![0u8; BATCH_ENTRIES * value_size];
    // The position token: a u32 bucket index for hash maps, opaque to us (8 bytes covers it).
    let (mut token_in, mut token_out) = (0u64, 0u64);
    let mut seen = 0usize;
    for call in 0..MAX_CALLS {
        let mut attr = BatchAttr {
            in_batch: if call == 0 { 0 } else { &token_in as *const u64 as u64 },
            out_batch: &mut token_out as *mut u64 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: BATCH_ENTRIES as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..Default::default()
        };
        // SAFETY: attr points at buffers of `count` keys and values of the map's sizes, and
        // at two 8-byte tokens, all alive for the call; the size passed is attr's own.
        let rc = unsafe {
            libc::syscall(libc::SYS_bpf, BPF_MAP_LOOKUP_BATCH, &mut attr as *mut BatchAttr, size_of::<BatchAttr>() as u32)
        };
        let error = (rc < 0).then(io::Error::last_os_error);
        // On ENOENT (the end) `count` still says how many entries this last call returned.
        let returned = match &error {
            None => attr.count as usize,
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => attr.count as usize,
            Some(_) => 0,
        };
        for i in 0..returned.min(BATCH_ENTRIES) {
            // SAFETY: entry i lies within `values` (i < BATCH_ENTRIES); read_unaligned
            // because a Vec<u8> promises no alignment for V.
            let value = unsafe { std::ptr::read_unaligned(values.as_ptr().add(i * value_size).cast::<V>()) };
            each(&value);
        }
        seen += returned;
        match error {
            None => token_in = token_out,
            Some(e) => {
                return match e.raw_os_error() {
                    Some(libc::ENOENT) => Ok(seen),
                    // Before any entry was returned: old kernel, or a map type without
                    // batch operations. Mid-walk it is a real error.
                    Some(libc::EINVAL | ENOTSUPP | libc::EOPNOTSUPP) if call == 0 => Err(BatchError::Unsupported),
                    _ => Err(BatchError::Io(e)),
                };
            }
        }
    }
    Err(BatchError::Io(io::Error::other(format!("the map did not end after {MAX_CALLS} batches of {BATCH_ENTRIES}"))))
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    use super::*;

    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
    const BPF_MAP_TYPE_HASH: u32 = 1;

    fn bpf<A>(cmd: libc::c_long, attr: &mut A) -> i64 {
        // SAFETY: attr is the command's attribute struct, alive for the call.
        unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut A, size_of::<A>() as u32) }
    }

    /// A real kernel hash map of `n` entries (u64 key i -> u64 value 3i).
    fn hash_map(n: u64) -> OwnedFd {
        #[repr(C)]
        struct Create {
            map_type: u32,
            key_size: u32,
            value_size: u32,
            max_entries: u32,
            map_flags: u32,
        }
        #[repr(C)]
        struct Update {
            map_fd: u32,
            _pad: u32,
            key: u64,
            value: u64,
            flags: u64,
        }
        let mut create = Create { map_type: BPF_MAP_TYPE_HASH, key_size: 8, value_size: 8, max_entries: 20_000, map_flags: 0 };
        let fd = bpf(BPF_MAP_CREATE, &mut create);
        assert!(fd >= 0, "BPF_MAP_CREATE failed (this test needs root): {}", io::Error::last_os_error());
        // SAFETY: a descriptor the kernel just returned, owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        for i in 0..n {
            let (key, value) = (i, 3 * i);
            let mut update = Update { map_fd: fd.as_raw_fd() as u32, _pad: 0, key: &key as *const u64 as u64, value: &value as *const u64 as u64, flags: 0 };
            assert_eq!(bpf(BPF_MAP_UPDATE_ELEM, &mut update), 0, "update: {}", io::Error::last_os_error());
        }
        fd
    }

    #[test]
    fn a_batch_walk_sees_every_entry_once() {
        // More than one batch, not a multiple of one; and an empty map.
        for n in [0u64, 1, 10_001] {
            let fd = hash_map(n);
            let mut sum = 0u64;
            let seen = for_each_value::<u64>(fd.as_fd(), 8, |v| sum += v).expect("batch lookup (Linux >= 5.6)");
            assert_eq!(seen as u64, n);
            assert_eq!(sum, 3 * n * n.saturating_sub(1) / 2, "each value once");
        }
    }
}
