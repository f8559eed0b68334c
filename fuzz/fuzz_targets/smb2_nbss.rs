//! A TCP payload on port 445 as the TC program sees it: every NBSS record, every PDU of
//! every compound, every body view and accessor, the name through the UTF-16 converter.
//! Checks the parsers' promises: no panic, bounded iteration, valid UTF-8 out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor_common::proto::{nbss, smb2, utf16};

fn name(b: &[u8]) {
    let mut out = [0u8; 256];
    let r = utf16::utf16le_to_utf8(b, &mut out);
    assert!(r.len <= out.len());
    assert!(core::str::from_utf8(&out[..r.len]).is_ok());
}

fn pdu(b: &[u8]) {
    let h = smb2::Header::new_unchecked(b);
    let _ = (h.command(), h.flags(), h.message_id(), h.tree_id(), h.async_id(), h.session_id(), h.status());
    if let Ok(c) = smb2::CreateRequest::new_checked(b) {
        let _ = (c.desired_access(), c.create_disposition(), c.create_options(), c.has_write_intent());
        match c.name() {
            Ok(n) => {
                assert_eq!(n.len(), c.name_length() as usize);
                name(n)
            }
            Err(_) => {}
        }
        if let Ok((n, _)) = c.name_partial() {
            assert!(n.len() <= c.name_length() as usize);
            name(n);
        }
    }
    if let Ok(c) = smb2::CreateResponse::new_checked(b) {
        let _ = (c.file_id(), c.create_action(), c.end_of_file());
    }
    if let Ok(w) = smb2::WriteRequest::new_checked(b) {
        let _ = (w.file_id(), w.length(), w.offset(), w.data().len());
        assert!(w.data().len() <= w.length() as usize);
    }
    if let Ok(r) = smb2::ReadRequest::new_checked(b) {
        let _ = (r.file_id().is_related(), r.length(), r.offset());
    }
    if let Ok(r) = smb2::ReadResponse::new_checked(b) {
        let _ = r.data_length();
    }
    if let Ok(c) = smb2::CloseRequest::new_checked(b) {
        let _ = c.file_id();
    }
    if let Ok(t) = smb2::TreeConnectRequest::new_checked(b) {
        if let Ok(p) = t.path() {
            name(p);
        }
    }
    if let Ok(t) = smb2::TreeConnectResponse::new_checked(b) {
        let _ = (t.share_flags(), t.encrypts_data());
    }
    if let Ok(n) = smb2::NegotiateRequest::new_checked(b) {
        let _ = n.max_dialect();
    }
    if let Ok(n) = smb2::NegotiateResponse::new_checked(b) {
        let _ = smb2::dialect::name(n.dialect_revision());
    }
    if let Ok(s) = smb2::SessionSetupResponse::new_checked(b) {
        let _ = s.encrypts_data();
    }
}

fuzz_target!(|data: &[u8]| {
    let mut recs = nbss::records(data);
    let mut n = 0;
    for rec in recs.by_ref() {
        n += 1;
        assert!(rec.payload.len() <= rec.length as usize);
        match smb2::classify(rec.payload) {
            smb2::Kind::Encrypted => {
                if let Ok(t) = smb2::TransformHeader::new_checked(rec.payload) {
                    let _ = (t.session_id(), t.original_message_size(), t.ciphertext().len());
                }
            }
            _ => {
                let mut it = smb2::pdus(rec.payload);
                let mut k = 0;
                for p in it.by_ref() {
                    k += 1;
                    if let Ok(h) = p {
                        pdu(h.into_inner());
                    }
                }
                assert!(k <= smb2::MAX_PDUS);
                let _ = (it.truncated(), it.hit_limit());
            }
        }
    }
    assert!(n <= nbss::MAX_RECORDS);
    let _ = (recs.partial_header(), recs.hit_limit(), recs.position());
    // The buffer may also be an SMB2 message without NBSS framing.
    for p in smb2::pdus(data).flatten() {
        pdu(p.into_inner());
    }
});
