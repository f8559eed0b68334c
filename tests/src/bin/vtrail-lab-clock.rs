//! Prints the wall clock in ns since the Unix epoch: the lab's guest scripts stamp their
//! logs with it (busybox `date` has no `%N`, and second-resolution times cannot order
//! infections that happen within one second).
fn main() {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => println!("{}", d.as_nanos()),
        Err(e) => {
            eprintln!("vtrail-lab-clock: the clock is before 1970: {e}");
            std::process::exit(1);
        }
    }
}
