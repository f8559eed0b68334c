//! The kernel side, from userspace: loading the eBPF object with a hook strategy, the
//! BTF offsets it needs, the maps and their pinned state across restarts, the TC
//! classifiers on each interface, and running the classifiers on crafted packets.
pub mod batch;
pub mod offsets;
pub mod sensor;
pub mod state;
pub mod strategy;
pub mod tc;
pub mod testrun;

pub use sensor::Sensor;
