//! vtrail-sensor library: everything the binary does, testable piece by piece.
//!
//! Data flows one way, one folder a stage:
//! `kernel` (load the programs, maps, TC classifiers) -> `decode` (ring-buffer records to
//! events) -> `graph` (ingest into the store, through one writer) and `correlate`
//! (network attribution, naming) -> `control` (the socket, status). `host` reads the
//! system for any stage; `replay` reads captures with the same session model; `daemon`
//! wires the stages together and owns nothing else.
pub mod config;
pub mod control;
pub mod correlate;
pub mod decode;
pub mod daemon;
pub mod fleet;
pub mod graph;
pub mod host;
pub mod kernel;
pub mod logging;
pub mod replay;
pub mod respond;
pub mod scan;
pub mod selftest;
