//! vtrail-collect: the fleet's central store. Sensors publish their graph records to NATS
//! JetStream (`sensor_common::graph::fleet` is the wire format); this crate consumes them
//! into PostgreSQL (`db`: migrations, the batch writer, day partitions), keeps what it
//! cannot store aside (`deadletter`), backfills exported dumps (`import`), reports the
//! store's state (`status`) and writes the NATS permissions that keep each host on its own
//! subject (`nats_config`). Data flows one way: message -> decoded batch -> rows -> one
//! transaction -> ack.

pub mod db;
pub mod deadletter;
pub mod import;

