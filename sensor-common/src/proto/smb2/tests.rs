extern crate std;
use super::build::*;
use super::*;
use std::vec::Vec;

fn set_next(pdu: &mut [u8], next: u32) {
    pdu[20..24].copy_from_slice(&next.to_le_bytes());
}

#[test]
fn header_sync_and_async() {
    let h = header(5, 0, 0, 42, 7, 0x1122);
    let v = Header::new_checked(&h[..]).unwrap();
    assert_eq!(v.command(), Command::Create);
    assert_eq!(v.message_id(), 42);
    assert_eq!(v.tree_id(), Some(7));
    assert_eq!(v.session_id(), 0x1122);
    assert!(!v.is_response());
    let h = header(15, flags::ASYNC_COMMAND | flags::RESPONSE, 0, 42, 7, 0x1122);
    let v = Header::new_checked(&h[..]).unwrap();
    assert_eq!(v.tree_id(), None);
    assert_eq!(v.async_id(), Some(0xfeff | (7u64 << 32)));
    assert!(v.is_response());
}

#[test]
fn truncated_and_bad_headers() {
    let h = header(5, 0, 0, 1, 1, 1);
    for n in 0..64 {
        assert_eq!(Header::new_checked(&h[..n]).unwrap_err(), Error::Truncated);
        let u = Header::new_unchecked(&h[..n]);
        let _ = (u.message_id(), u.session_id(), u.tree_id(), u.body(), u.next_command());
    }
    let mut bad = h.clone();
    bad[0] = 0xff;
    assert_eq!(Header::new_checked(&bad[..]).unwrap_err(), Error::BadMagic);
    let mut bad = h.clone();
    bad[4] = 63;
    assert_eq!(Header::new_checked(&bad[..]).unwrap_err(), Error::Malformed);
}

#[test]
fn create_request_fields_and_name() {
    let name = utf16("dir\\a file.txt");
    let p = create_request(&name, access::FILE_WRITE_DATA, disposition::OPEN_IF, 0x40, 9);
    let c = CreateRequest::new_checked(&p[..]).unwrap();
    assert_eq!(c.name().unwrap(), &name[..]);
    assert_eq!(c.create_disposition(), disposition::OPEN_IF);
    assert_eq!(c.desired_access(), access::FILE_WRITE_DATA);
    assert_eq!(c.create_options(), 0x40);
    assert_eq!(c.header().message_id(), 9);
    assert!(c.has_write_intent());
    assert_eq!(c.name_partial().unwrap(), (&name[..], false));
}

#[test]
fn create_name_past_the_end() {
    let name = utf16("abcdef");
    let mut p = create_request(&name, 0, 1, 0, 1);
    // NameLength past the end
    p[110..112].copy_from_slice(&200u16.to_le_bytes());
    let c = CreateRequest::new_checked(&p[..]).unwrap();
    assert_eq!(c.name().unwrap_err(), Error::Truncated);
    assert_eq!(c.name_partial().unwrap(), (&name[..], true));
    // NameOffset past the end
    p[108..110].copy_from_slice(&0xfff0u16.to_le_bytes());
    p[110..112].copy_from_slice(&0xffffu16.to_le_bytes());
    let c = CreateRequest::new_checked(&p[..]).unwrap();
    assert_eq!(c.name().unwrap_err(), Error::Truncated);
    assert_eq!(c.name_partial().unwrap_err(), Error::Truncated);
    // NameOffset inside the fixed part
    p[108..110].copy_from_slice(&10u16.to_le_bytes());
    p[110..112].copy_from_slice(&4u16.to_le_bytes());
    let c = CreateRequest::new_checked(&p[..]).unwrap();
    assert_eq!(c.name().unwrap_err(), Error::Malformed);
}

#[test]
fn create_zero_length_and_odd_names() {
    let p = create_request(&[], 0x80, 1, 1, 1);
    let c = CreateRequest::new_checked(&p[..]).unwrap();
    assert_eq!(c.name().unwrap(), &[] as &[u8]);
    assert!(!c.has_write_intent());
    let p = create_request(&[b'a', 0, b'b'], 0, 5, 0, 1);
    let c = CreateRequest::new_checked(&p[..]).unwrap();
    assert_eq!(c.name().unwrap().len(), 3);
    assert!(c.has_write_intent());
}

#[test]
fn create_1000_byte_name() {
    let s = "x".repeat(500);
    let name = utf16(&s);
    assert_eq!(name.len(), 1000);
    let p = create_request(&name, 0, 2, 0, 1);
    let c = CreateRequest::new_checked(&p[..]).unwrap();
    assert_eq!(c.name().unwrap().len(), 1000);
    // cut after 200 bytes of name, as a TC program might see it
    let c = CreateRequest::new_checked(&p[..320]).unwrap();
    let (n, cut) = c.name_partial().unwrap();
    assert_eq!((n.len(), cut), (200, true));
}

#[test]
fn create_truncated_fixed_part() {
    let p = create_request(&utf16("a"), 0, 2, 0, 1);
    for n in 0..120 {
        assert!(CreateRequest::new_checked(&p[..n]).is_err());
        let u = CreateRequest::new_unchecked(&p[..n]);
        let _ = (u.name(), u.name_partial(), u.desired_access(), u.has_write_intent());
    }
}

#[test]
fn compound_chain() {
    let mut a = create_request(&utf16("testfile.txt"), 0x40000000, 2, 0, 1);
    while !a.len().is_multiple_of(8) {
        a.push(0);
    }
    let alen = a.len() as u32;
    set_next(&mut a, alen);
    let mut b = header(17, flags::RELATED_OPERATIONS, 0, 2, 7, 0x1122);
    b.extend_from_slice(&[0u8; 40]);
    set_next(&mut b, 104);
    let mut c = header(6, flags::RELATED_OPERATIONS, 0, 3, 7, 0x1122);
    c.extend_from_slice(&24u16.to_le_bytes());
    c.extend_from_slice(&[0u8; 6]);
    c.extend_from_slice(&[0xffu8; 16]);
    let msg: Vec<u8> = [a, b, c].concat();
    let got: Vec<_> = pdus(&msg).collect();
    assert_eq!(got.len(), 3);
    let cmds: Vec<_> = got.iter().map(|p| p.as_ref().unwrap().command()).collect();
    assert_eq!(cmds, [Command::Create, Command::SetInfo, Command::Close]);
    let close = CloseRequest::new_checked(got[2].unwrap().into_inner()).unwrap();
    assert!(close.file_id().is_related());
    assert!(close.header().is_related());
    let create = CreateRequest::new_checked(got[0].unwrap().into_inner()).unwrap();
    assert_eq!(create.name().unwrap(), &utf16("testfile.txt")[..]);
}

#[test]
fn next_command_loops_and_garbage() {
    // NextCommand = 64 forever: each PDU is a bare header; bounded by MAX_PDUS
    let mut one = header(13, 0, 64, 1, 0, 0);
    set_next(&mut one, 64);
    let msg: Vec<u8> = core::iter::repeat_n(one, 40).flatten().collect();
    let mut it = pdus(&msg);
    assert_eq!(it.by_ref().count(), MAX_PDUS);
    assert!(it.hit_limit());
    // NextCommand smaller than a header
    let mut h = header(13, 0, 0, 1, 0, 0);
    set_next(&mut h, 8);
    let got: Vec<_> = pdus(&h).collect();
    assert_eq!(got, [Err(Error::Malformed)]);
    // NextCommand past the end
    let mut h = header(13, 0, 0, 1, 0, 0);
    set_next(&mut h, 0xffff_fff8);
    let mut it = pdus(&h);
    assert!(it.next().unwrap().is_ok());
    assert!(it.next().is_none());
    assert!(it.truncated());
    // garbage after a valid PDU
    let mut h = header(13, 0, 0, 1, 0, 0);
    set_next(&mut h, 64);
    h.extend_from_slice(b"garbage");
    let got: Vec<_> = pdus(&h).collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1], Err(Error::Truncated));
}

#[test]
fn write_read_close_views() {
    let mut w = header(9, 0, 0, 5, 7, 1);
    w.extend_from_slice(&49u16.to_le_bytes());
    w.extend_from_slice(&112u16.to_le_bytes());
    w.extend_from_slice(&7000u32.to_le_bytes());
    w.extend_from_slice(&4096u64.to_le_bytes());
    w.extend_from_slice(&FileId { persistent: 1, volatile: 2 }.to_bytes());
    w.extend_from_slice(&[0u8; 16]);
    w.extend_from_slice(b"data");
    let v = WriteRequest::new_checked(&w[..]).unwrap();
    assert_eq!((v.length(), v.offset()), (7000, 4096));
    assert_eq!(v.file_id(), FileId { persistent: 1, volatile: 2 });
    assert_eq!(v.data(), b"data");
    assert!(ReadRequest::new_checked(&w[..]).is_err());
    assert!(WriteRequest::new_checked(&w[..100]).is_err());

    let mut r = header(8, 0, 0, 5, 7, 1);
    r.extend_from_slice(&49u16.to_le_bytes());
    r.extend_from_slice(&[0, 0]);
    r.extend_from_slice(&16u32.to_le_bytes());
    r.extend_from_slice(&0u64.to_le_bytes());
    r.extend_from_slice(&FileId::RELATED.to_bytes());
    r.extend_from_slice(&[0u8; 17]);
    let v = ReadRequest::new_checked(&r[..]).unwrap();
    assert_eq!(v.length(), 16);
    assert!(v.file_id().is_related());
}

#[test]
fn tree_connect_negotiate_transform() {
    let path = utf16("\\\\srv\\share");
    let mut t = header(3, 0, 0, 5, 0, 1);
    t.extend_from_slice(&9u16.to_le_bytes());
    t.extend_from_slice(&0u16.to_le_bytes());
    t.extend_from_slice(&72u16.to_le_bytes());
    t.extend_from_slice(&(path.len() as u16).to_le_bytes());
    t.extend_from_slice(&path);
    let v = TreeConnectRequest::new_checked(&t[..]).unwrap();
    assert_eq!(v.path().unwrap(), &path[..]);
    t[70..72].copy_from_slice(&500u16.to_le_bytes());
    let v = TreeConnectRequest::new_checked(&t[..]).unwrap();
    assert_eq!(v.path().unwrap_err(), Error::Truncated);

    let mut n = header(0, flags::RESPONSE, 0, 0, 0, 0);
    n.extend_from_slice(&65u16.to_le_bytes());
    n.extend_from_slice(&1u16.to_le_bytes());
    n.extend_from_slice(&dialect::SMB3_1_1.to_le_bytes());
    n.extend_from_slice(&[0u8; 58]);
    let v = NegotiateResponse::new_checked(&n[..]).unwrap();
    assert_eq!(dialect::name(v.dialect_revision()), "3.1.1");

    let mut x = std::vec![0u8; 60];
    x[..4].copy_from_slice(&TRANSFORM_PROTOCOL_ID);
    x[44..52].copy_from_slice(&0xabcdu64.to_le_bytes());
    assert_eq!(classify(&x), Kind::Encrypted);
    let v = TransformHeader::new_checked(&x[..]).unwrap();
    assert_eq!(v.session_id(), 0xabcd);
    assert_eq!(v.ciphertext().len(), 8);
    assert_eq!(TransformHeader::new_checked(&x[..51]).unwrap_err(), Error::Truncated);
}

#[test]
fn write_intent_policy() {
    use access::*;
    assert!(create_has_write_intent(0, disposition::OVERWRITE_IF, 0));
    assert!(create_has_write_intent(GENERIC_WRITE, disposition::OPEN, 0));
    assert!(!create_has_write_intent(GENERIC_READ | MAXIMUM_ALLOWED, disposition::OPEN, 0));
    assert!(!create_has_write_intent(GENERIC_ALL, disposition::CREATE, options::FILE_DIRECTORY_FILE));
}
