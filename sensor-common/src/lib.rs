//! Types shared by the kernel programs (`sensor-ebpf`) and userspace.
//!
//! Everything here is `no_std` and allocation-free so that the same code runs in
//! the eBPF programs, in userspace and under the fuzzer. The `user` feature adds
//! the userspace-only half: `aya::Pod` impls for map values and the graph schema; `std`
//! adds the protocol session state machines ([`session`]) that live attribution and replay share.
#![cfg_attr(not(feature = "std"), no_std)]

// Unit tests use the std-only parts (session state, test builders) in every build.
#[cfg(all(test, not(feature = "std")))]
extern crate std;

/// Marks `#[repr(C)]` types as plain old data for aya's map API, beside their definitions
/// (userspace only: the kernel side has no aya).
macro_rules! pod {
    ($($t:ty),* $(,)?) => {$(
        #[cfg(feature = "user")]
        // SAFETY: `#[repr(C)]`, fields of plain integers and arrays, every bit pattern valid.
        unsafe impl aya::Pod for $t {}
    )*};
}

pub mod event;
pub mod maps;
pub mod offsets;
pub mod proto;
#[cfg(any(test, feature = "std"))]
pub mod session;

#[cfg(feature = "user")]
pub mod graph;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "user")]
pub mod rules;
