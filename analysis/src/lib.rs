//! vtrail-analysis: source, destinations, behaviours and spread of a flagged file, read
//! from the sensor's time-stamped provenance graph (one host's database or the dumps of
//! many hosts). Data flows one way: `load` -> `index` -> a question (`trace`, `spread`,
//! `rules`, all built on `taint`) -> a report -> `output`. `simulate` writes synthetic
//! incidents with their ground truth; `bench` measures load and query on them.
//!
//! # Merging hosts
//! Inputs are merged by node id. Process and file ids carry their host, so they never
//! collide; `remote:<ip>` nodes recorded by several hosts become one node whose `node_ids`
//! are the union of what each host's DNS said. A remote is a loaded host when one of those
//! ids is a loaded host's id or disk id; that union is the fall-back to the IP: a host
//! whose own DNS failed still finds the sender if any other host resolved the address.
//! A send (`sent_to` on A towards B's address) is paired with a receive (`received_from` on
//! B from A's address) when the two times are within the skew allowance; among several,
//! equal content hash wins, then equal name, then the nearest time.
//!
//! Hosts and nodes are numbered by id when the index is built, not in the order records
//! came in: an answer's tie-breaks are then the same whatever order the inputs are named
//! in, and on the part of the graph `--db` fetches as on the whole of it.
//!
//! # Clock skew
//! Each host's edges carry its own clock. Times are only compared across hosts when a send
//! is paired with its receive: `|t_receive - t_send| <= --skew-allowance` (default 2 s,
//! which must cover clock offset plus transfer time). Everything else - BackTracker's
//! "cause before effect", first execution per host - compares times of one host only. The
//! received file is tainted from its receive time on the receiver's clock, so a hop may go
//! back in time by up to the allowance; the taint search is label-correcting and handles
//! it. Infection times are reported on each host's own clock, so the spread timeline and
//! doubling time are accurate to the hosts' skew. Receives from a loaded host with no
//! matching send (clocks further apart than the allowance) are counted and named in a
//! warning that suggests raising the allowance.
//!
//! # Memory
//! Node ids are interned into one arena (`u32` handles), edges are 24-byte records sorted
//! by time, adjacency is CSR (4 bytes per edge per direction), attributes are kept as JSON
//! text only on the few edges that have any. That is about 32 bytes per edge plus about
//! 100 bytes per node; parsing streams one line at a time. Measured (`bench`, 1,000 hosts):
//! 10^7 edges and 332k nodes peak at 369 MiB resident.

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
