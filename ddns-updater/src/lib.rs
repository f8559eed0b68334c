//! vtrail-ddns: disk-serial node IDs kept in DNS with RFC 2136 updates signed by TSIG.
//!
//! - [`disks`]: whole disks and their serials from sysfs/udev; [`id`]: the ID of a disk.
//! - [`names`]: the names kept in the zone (forward `<id>.Z`, reverse `<ip>.ip4|ip6.Z`).
//! - [`keyfile`]: TSIG key files; [`update`]: signed atomic updates; [`error`]: what can fail.
//! - [`netwatch`]: the host's global addresses and their changes (rtnetlink).
//! - [`lookup`]: IP -> node IDs through the reverse names, with a TTL cache.
//! - [`bindconf`]: a zone file and `zone {}` stanza for BIND whose policy confines each key.

pub mod bindconf;
pub mod daemon;
pub mod disks;
pub mod error;
/// Throwaway BIND primary for the tests and `ddns-bench`.
#[doc(hidden)]
pub mod harness;
pub mod id;
pub mod keyfile;
pub mod lookup;
pub mod names;
pub mod netwatch;
pub mod transport;
pub mod update;

pub use disks::{Disk, discover};
pub use error::UpdateError;
