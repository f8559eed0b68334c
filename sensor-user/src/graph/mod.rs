//! The provenance graph in sled (schema: `sensor_common::graph`) and its exports.
pub mod export;
pub mod ingest;
pub mod store;
pub mod writer;

pub use store::{GraphStore, StoreError};
pub use writer::{GraphWriter, ProcessFacts};
