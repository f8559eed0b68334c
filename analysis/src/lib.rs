//! vtrail-analysis: source, destinations, behaviours and spread of a flagged file, read
//! from the sensor's time-stamped provenance graph (one host's database or the dumps of
//! many hosts). Data flows one way: `load` -> `index` -> a question (`trace`, `spread`,
//! `rules`, all built on `taint`) -> a report -> `output`. `simulate` writes synthetic
//! incidents with their ground truth; `bench` measures load and query on them.

pub mod bench;
pub mod error;
pub mod index;
pub mod load;
pub mod output;
pub mod rules;
pub mod select;
pub mod simulate;
pub mod spread;
pub mod taint;
pub mod time;
pub mod trace;
pub mod view;
