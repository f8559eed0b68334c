//! vtrail-sensor library: everything the binary does, testable piece by piece.
pub mod replay;
