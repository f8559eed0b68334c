//! Ring-buffer records decoded into owned events: process and file events
//! (`events::SensorEvent`), network records (`net::NetFileEvent`), and cut SMB2 PDUs
//! completed from their continuation (`reassembly`). No graph writes here.
pub mod events;
pub mod net;
pub mod reassembly;
