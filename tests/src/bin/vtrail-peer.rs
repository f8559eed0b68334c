//! A test peer for the benchmarks, started as the tests start it:
//!   vtrail-peer postgres DIR   a private PostgreSQL cluster under DIR; prints its URL on
//!                              stdout, runs until standard input closes, then stops and
//!                              removes the cluster.
use std::io::{Read, Write};
use std::path::PathBuf;

use tests::peers::postgres::Postgres;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some("postgres"), Some(dir)) = (args.get(1).map(String::as_str), args.get(2)) else {
        eprintln!("usage: vtrail-peer postgres DIR");
        std::process::exit(2)
    };
    let pg = Postgres::start(&PathBuf::from(dir), "bench");
    println!("{}", pg.url());
    let _ = std::io::stdout().flush();
    // Until the caller closes our standard input (or exits): then `pg` is dropped, stopped.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
