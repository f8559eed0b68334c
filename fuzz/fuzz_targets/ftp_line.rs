//! One FTP control line through every parser: request, reply, PORT/227/229/EPRT and the
//! STOU `150 FILE:` reply. No panic; results are sub-slices of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor_common::proto::ftp;

fn within(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

fuzz_target!(|data: &[u8]| {
    if let Some(r) = ftp::parse_request(data) {
        assert!(within(data, r.arg) && within(data, r.verb_bytes));
        assert!(!r.verb_bytes.is_empty() && r.verb_bytes.len() <= 4);
        let _ = (r.verb.as_str(), r.verb.is_upload(), ftp::parse_port(r.arg), ftp::parse_eprt(r.arg));
    }
    if let Some(r) = ftp::parse_reply(data) {
        assert!(within(data, r.text));
        assert!(r.code <= 999);
        let _ = (ftp::parse_pasv_reply(r.text), ftp::parse_epsv_reply(r.text));
        if let Some(n) = ftp::stou_reply_name(&r) {
            assert!(within(data, n) && !n.is_empty());
        }
    }
    let t = ftp::trim_spaces(data);
    assert!(within(data, t));
    let _ = ftp::trim_eol(data);
});
