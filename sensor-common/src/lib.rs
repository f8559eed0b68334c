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

pub mod event;
pub mod maps;
pub mod offsets;
pub mod proto;
#[cfg(any(test, feature = "std"))]
pub mod session;

#[cfg(feature = "user")]
pub mod graph;

#[cfg(feature = "user")]
mod pod {
    //! Marks the `#[repr(C)]` map types as plain old data for aya's map API.
    use crate::{event::{Event, NetEvent}, maps::*, offsets::KernelOffsets};
    unsafe impl aya::Pod for NetEvent {}
    unsafe impl aya::Pod for BlockedKey {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FlowState {}
    unsafe impl aya::Pod for InodeKey {}
    unsafe impl aya::Pod for InodeState {}
    unsafe impl aya::Pod for ProcState {}
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for SensorConfig {}
    unsafe impl aya::Pod for Event {}
    unsafe impl aya::Pod for PendingCall {}
    unsafe impl aya::Pod for WriteSeenKey {}
}
