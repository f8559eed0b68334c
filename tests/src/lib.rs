//! Helpers for the integration tests: start the real sensor, drive workloads, read the
//! graph it recorded; boot Debian's kernel under QEMU for the hooks this kernel lacks.
pub mod collector;
pub mod fleet;
pub mod kernel_matrix;
pub mod lab;
pub mod naming;
pub mod net;
pub mod peers;
pub mod qemu;
pub mod sensor;
pub mod table;
