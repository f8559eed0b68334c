//! vtrail-collect: the fleet's central store.
fn main() {
    eprintln!("vtrail-collect: under construction");
    std::process::exit(2);
}
