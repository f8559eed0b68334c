//! The kernels file servers run, as the tests boot them: Debian's own kernel packages,
//! pinned here (the one place) by archive path and checksum, fetched once from
//! deb.debian.org into the cache and unpacked there.
//!
//! A pinned package leaves the archive when Debian supersedes it in a point release; the
//! download then fails naming the package and this file, and the pin is moved to the
//! newer build (its `Filename:` and `SHA256:` from the suite's `Packages` index).

/// One Debian kernel image package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestKernel {
    /// For tables and messages: `bullseye 5.10`.
    pub name: &'static str,
    /// `uname -r` in the guest.
    pub release: &'static str,
    /// The Debian package.
    pub package: &'static str,
    /// Its file under `http://deb.debian.org/debian/`.
    pub pool_path: &'static str,
    /// sha256 of that file, from the suite's `Packages` index.
    pub sha256: &'static str,
}

/// Debian 11 (bullseye), long-term support: 5.10.
pub const BULLSEYE: GuestKernel = GuestKernel {
    name: "bullseye 5.10",
    release: "5.10.0-32-amd64",
    package: "linux-image-5.10.0-32-amd64",
    pool_path: "pool/main/l/linux-signed-amd64/linux-image-5.10.0-32-amd64_5.10.223-1_amd64.deb",
    sha256: "86a6792f3a03ab15a643f385830cdaa921f15e3e9c8bf63aa55a9243c62fc797",
};

/// Debian 12 (bookworm): 6.1.
pub const BOOKWORM: GuestKernel = GuestKernel {
    name: "bookworm 6.1",
    release: "6.1.0-47-amd64",
    package: "linux-image-6.1.0-47-amd64",
    pool_path: "pool/main/l/linux-signed-amd64/linux-image-6.1.0-47-amd64_6.1.170-3_amd64.deb",
    sha256: "e0061f95dbe31f5646e5a29ba9a62293f6b625a70e81fc2b04344d8ab7589c34",
};

/// Debian 13 (trixie), the current stable: 6.12.
pub const TRIXIE: GuestKernel = GuestKernel {
    name: "trixie 6.12",
    release: "6.12.117+deb13-amd64",
    package: "linux-image-6.12.117+deb13-amd64",
    pool_path: "pool/main/l/linux-signed-amd64/linux-image-6.12.117+deb13-amd64_6.12.117-1_amd64.deb",
    sha256: "ca712d36790184f6ac125ce2b20ea4e2202ae6bb7817b7de268f1f0115ccda73",
};

/// Every kernel the sensor must load on, oldest first.
pub const MATRIX: [GuestKernel; 3] = [BULLSEYE, BOOKWORM, TRIXIE];

/// Where Debian's archive is fetched from.
pub const MIRROR: &str = "http://deb.debian.org/debian";

impl GuestKernel {
    pub fn url(&self) -> String {
        format!("{MIRROR}/{}", self.pool_path)
    }

    /// A kernel of the matrix by release prefix or name (`5.10`, `6.12`, `trixie`).
    pub fn find(what: &str) -> Option<GuestKernel> {
        MATRIX.into_iter().find(|k| k.release.starts_with(what) || k.name.split(' ').any(|w| w == what))
    }
}
