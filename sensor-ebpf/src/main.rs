//! vtrail's kernel programs.
//!
//! One object holds the programs of every hook strategy; userspace loads and attaches only
//! the ones of the strategy it chose (see `sensor-user/src/strategy.rs`):
//! - `tracepoints`: syscall and sched tracepoints, the strategy that works everywhere;
//! - `kprobes`: kprobes on `vfs_write` and `security_bprm_check` in place of the write
//!   tracepoints, plus exec checks that see `#!` scripts themselves;
//! - `fentry`: the same functions through BPF trampolines.
//! The taint rules themselves live once, in `taint`, whatever hook calls them.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod diag;
#[cfg(target_arch = "bpf")]
mod fentry;
#[cfg(target_arch = "bpf")]
mod kernel;
#[cfg(target_arch = "bpf")]
mod kprobes;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod syscalls;
#[cfg(target_arch = "bpf")]
mod taint;
#[cfg(target_arch = "bpf")]
mod tc;
#[cfg(target_arch = "bpf")]
mod tracepoints;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {}
