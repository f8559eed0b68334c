//! Zero-copy protocol parsers (NBSS, SMB2, FTP control lines), shared by the TC program,
//! `vtrail-sensor replay`, unit tests and the fuzzer.
