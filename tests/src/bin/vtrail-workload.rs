//! Benchmark workloads, timed from inside so process start-up is not measured:
//!   vtrail-workload writes N FILE [SIZE]  N write(2)s of SIZE bytes (default 1) to FILE
//!   vtrail-workload forkexec N PROG    N fork+exec+wait of PROG
//!   vtrail-workload creates N DIR      create (O_CREAT|O_TRUNC) and write N files in DIR
//!   vtrail-workload rewrites N DIR     open and write one byte into each of N files in DIR
//!                                      (f0.., as `creates` made them)
//!   vtrail-workload forks N X          fork N children that exit at once, reaping each
//!                                      (X is ignored)
//! Prints the elapsed seconds on stdout.
use std::{io::Write, os::unix::process::CommandExt, process::Command, time::Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: vtrail-workload writes N FILE [SIZE] | forkexec N PROG | creates N DIR | rewrites N DIR | forks N -");
        std::process::exit(2)
    };
    if args.len() != 4 && args.len() != 5 {
        usage();
    }
    let n: u64 = args[2].parse().unwrap_or_else(|_| usage());
    let start = Instant::now();
    match args[1].as_str() {
        "writes" => {
            let size: usize = args.get(4).map_or(Ok(1), |s| s.parse()).unwrap_or_else(|_| usage());
            let buf = vec![b'x'; size];
            let mut f = std::fs::File::create(&args[3]).expect("create output file");
            for i in 0..n {
                if size > 1 && i % 256 == 0 {
                    f = std::fs::File::create(&args[3]).expect("truncate output file"); // bound the file
                }
                f.write_all(&buf).expect("write");
            }
        }
        "forkexec" => {
            for _ in 0..n {
                let status = Command::new(&args[3]).arg0(&args[3]).status().expect("spawn");
                assert!(status.success());
            }
        }
        "creates" => {
            let dir = std::path::Path::new(&args[3]);
            for i in 0..n {
                std::fs::write(dir.join(format!("f{i}")), b"x").expect("create file");
            }
        }
        "rewrites" => {
            let dir = std::path::Path::new(&args[3]);
            for i in 0..n {
                let mut f = std::fs::OpenOptions::new().write(true).open(dir.join(format!("f{i}"))).expect("open file");
                f.write_all(b"y").expect("write");
            }
        }
        "forks" => {
            for _ in 0..n {
                // SAFETY: the child only calls _exit.
                match unsafe { libc::fork() } {
                    0 => unsafe { libc::_exit(0) },
                    -1 => panic!("fork: {}", std::io::Error::last_os_error()),
                    child => {
                        let mut status = 0;
                        unsafe { libc::waitpid(child, &mut status, 0) };
                    }
                }
            }
        }
        _ => usage(),
    }
    println!("{:.6}", start.elapsed().as_secs_f64());
}
