//! Empty library target: it lets `sensor-user` name this crate as a build-dependency, so
//! cargo rebuilds the eBPF object when this crate or `sensor-common` changes.
#![no_std]
