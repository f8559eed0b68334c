//! vtrail-sensor library: everything the binary does, testable piece by piece.
//! Data flows one way: kernel (`sensor`) -> `events` -> `ingest` -> `graph`.
pub mod config;
pub mod control;
pub mod correlate;
pub mod daemon;
pub mod events;
pub mod graph;
pub mod host;
pub mod kernel_offsets;
pub mod kernel_state;
pub mod network;
pub mod replay;
pub mod selftest;
pub mod sensor;
pub mod strategy;
