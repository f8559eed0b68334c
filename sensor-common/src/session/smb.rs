//! SMB2 state that names what a FileId is (MS-SMB2 3.3.5): the share each TreeId
//! connects to, the CREATE each FileId came from, and whether it is a named pipe.
//!
//! - A TREE_CONNECT request (`\\server\share`) waits by (connection, MessageId) for its
//!   successful response, which gives the TreeId.
//! - A CREATE request waits the same way; its successful response gives the FileId, and
//!   the open is then keyed by (server address, SessionId, FileId), not by connection:
//!   SMB3 multichannel may open a file on one connection and write it on another.
//! - An open on the `IPC$` share is a named pipe (`srvsvc`, `lsarpc`, ... for RPC), never
//!   a file, even though clients open pipes for writing.
//! - A CLOSE forgets the open; so does a later CREATE that gets the same FileId (the close
//!   was not seen).
//!
//! Callers parse the messages (live: the TC program's records; replay: `proto::smb2`) and
//! attach their own data `T` to each open: live attribution its upload record, replay its
//! byte counts.
use std::{
    collections::{HashMap, hash_map::Entry},
    net::{IpAddr, SocketAddr},
    string::String,
    vec::Vec,
};

use crate::proto::smb2::FileId;

/// One TCP connection: a request and its response travel on the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel {
    pub client: SocketAddr,
    pub server: SocketAddr,
}

/// `\\server\share` -> `share`.
pub fn share_name(path: &str) -> &str {
    path.rsplit('\\').next().unwrap_or("")
}

/// Is the share at `path` the one that carries named pipes?
pub fn is_pipe_share(path: &str) -> bool {
    share_name(path).eq_ignore_ascii_case("IPC$")
}

/// What a CREATE request asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Create {
    pub session: u64,
    pub tree: u32,
    /// The name as sent, UTF-8.
    pub name: String,
    pub name_truncated: bool,
    pub access: u32,
    pub disposition: u32,
    pub options: u32,
    /// [`crate::proto::smb2::create_has_write_intent`] of the request.
    pub write_intent: bool,
}

/// An open (or opening) file or pipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open<T> {
    pub session: u64,
    pub tree: u32,
    /// `None`: the FileId was used without its CREATE being seen (opened earlier).
    pub name: Option<String>,
    pub name_truncated: bool,
    /// The share path its TreeId names, if that TREE_CONNECT was seen.
    pub share: Option<String>,
    /// A named pipe (on `IPC$`), not a file.
    pub pipe: bool,
    pub access: u32,
    pub disposition: u32,
    pub options: u32,
    pub write_intent: bool,
    /// `None` until the CREATE response.
    pub file_id: Option<FileId>,
    /// What the caller keeps with the open.
    pub data: T,
}

impl<T> Open<T> {
    fn with_file_id(mut self, file_id: FileId) -> Self {
        self.file_id = Some(file_id);
        self
    }
}

/// What a CREATE response settled.
#[derive(Debug)]
pub enum Created<'s, T> {
    /// No CREATE request waits for this MessageId (it was not seen).
    Unknown,
    /// Open under its FileId; `replaced` was under the same key before (its close unseen).
    Opened { open: &'s mut Open<T>, replaced: Option<Open<T>> },
    /// The server refused it: the open is forgotten and handed back.
    Failed(Open<T>),
}

type FileKey = (IpAddr, u64, FileId);

#[derive(Debug)]
pub struct SmbSession<T> {
    /// Entries per map at most; a full map is emptied (bounded memory on a live server).
    limit: usize,
    tree_requests: HashMap<(Channel, u64), String>,
    trees: HashMap<(IpAddr, u64, u32), String>,
    creates: HashMap<(Channel, u64), Open<T>>,
    files: HashMap<FileKey, Open<T>>,
}

impl<T> Default for SmbSession<T> {
    fn default() -> Self {
        Self::bounded(usize::MAX)
    }
}

/// Inserts into `map`, emptying it first when it holds `limit` entries. Returns the value
/// in place and the one it replaced.
fn insert_bounded<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, limit: usize, key: K, value: V) -> (&mut V, Option<V>) {
    if map.len() >= limit && !map.contains_key(&key) {
        map.clear();
    }
    match map.entry(key) {
        Entry::Occupied(mut e) => {
            let old = e.insert(value);
            (e.into_mut(), Some(old))
        }
        Entry::Vacant(e) => (e.insert(value), None),
    }
}

/// An open of `tree` (whose share path is `share`, if known) before its CREATE's fields are filled in.
fn new_open<T>(share: Option<String>, session: u64, tree: u32, data: T) -> Open<T> {
    let pipe = share.as_deref().is_some_and(is_pipe_share);
    Open {
        session,
        tree,
        name: None,
        name_truncated: false,
        share,
        pipe,
        access: 0,
        disposition: 0,
        options: 0,
        write_intent: false,
        file_id: None,
        data,
    }
}

impl<T> SmbSession<T> {
    /// At most `limit` entries per map: a flood of requests that are never answered
    /// forgets the older state instead of growing.
    pub fn bounded(limit: usize) -> Self {
        Self { limit, tree_requests: HashMap::new(), trees: HashMap::new(), creates: HashMap::new(), files: HashMap::new() }
    }

    /// A TREE_CONNECT request for `path` (`\\server\share`).
    pub fn tree_connect_request(&mut self, ch: Channel, message_id: u64, path: String) {
        insert_bounded(&mut self.tree_requests, self.limit, (ch, message_id), path);
    }

    /// A successful TREE_CONNECT response: `tree` names the share its request asked for.
    pub fn tree_connect_response(&mut self, ch: Channel, session: u64, message_id: u64, tree: u32) -> Option<&str> {
        let path = self.tree_requests.remove(&(ch, message_id))?;
        let (path, _) = insert_bounded(&mut self.trees, self.limit, (ch.server.ip(), session, tree), path);
        Some(path.as_str())
    }

    /// The share path `tree` names in `session` on `server`.
    pub fn share(&self, server: IpAddr, session: u64, tree: u32) -> Option<&str> {
        self.trees.get(&(server, session, tree)).map(String::as_str)
    }

    /// A CREATE request; the open waits for its response.
    pub fn create_request(&mut self, ch: Channel, message_id: u64, c: Create, data: T) -> &mut Open<T> {
        let share = self.share(ch.server.ip(), c.session, c.tree).map(String::from);
        let mut open = new_open(share, c.session, c.tree, data);
        open.name = Some(c.name);
        open.name_truncated = c.name_truncated;
        open.access = c.access;
        open.disposition = c.disposition;
        open.options = c.options;
        open.write_intent = c.write_intent;
        insert_bounded(&mut self.creates, self.limit, (ch, message_id), open).0
    }

    /// The CREATE still waiting for its response (a related PDU later in its compound
    /// names it by the FileId of all 0xFF).
    pub fn pending_create(&mut self, ch: Channel, message_id: u64) -> Option<&mut Open<T>> {
        self.creates.get_mut(&(ch, message_id))
    }

    /// A CREATE response: `file_id` if it succeeded, `None` if the server refused it.
    pub fn create_response(&mut self, ch: Channel, message_id: u64, file_id: Option<FileId>) -> Created<'_, T> {
        let Some(open) = self.creates.remove(&(ch, message_id)) else { return Created::Unknown };
        let Some(fid) = file_id else { return Created::Failed(open) };
        let open = open.with_file_id(fid);
        let key = (ch.server.ip(), open.session, fid);
        let (open, replaced) = insert_bounded(&mut self.files, self.limit, key, open);
        Created::Opened { open, replaced }
    }

    /// The open `file_id` names.
    pub fn file(&mut self, server: IpAddr, session: u64, file_id: FileId) -> Option<&mut Open<T>> {
        self.files.get_mut(&(server, session, file_id))
    }

    /// The open `file_id` names; one without a name (its CREATE came before the capture
    /// began) if it was not seen.
    pub fn file_or_adopt(&mut self, server: IpAddr, session: u64, tree: u32, file_id: FileId, data: impl FnOnce() -> T) -> &mut Open<T> {
        let key = (server, session, file_id);
        if self.files.len() >= self.limit && !self.files.contains_key(&key) {
            self.files.clear();
        }
        let trees = &self.trees;
        self.files.entry(key).or_insert_with(|| {
            let share = trees.get(&(server, session, tree)).cloned();
            new_open(share, session, tree, data()).with_file_id(file_id)
        })
    }

    /// A CLOSE request: the open is forgotten and handed back.
    pub fn close(&mut self, server: IpAddr, session: u64, file_id: FileId) -> Option<Open<T>> {
        self.files.remove(&(server, session, file_id))
    }

    /// Every open left, with whether its CREATE was answered (end of a capture).
    pub fn drain(&mut self) -> Vec<(Open<T>, bool)> {
        let pending = self.creates.drain().map(|(_, o)| (o, false));
        let open = self.files.drain().map(|(_, o)| (o, true));
        pending.chain(open).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(client_port: u16) -> Channel {
        Channel { client: std::format!("10.0.0.2:{client_port}").parse().unwrap(), server: "10.0.0.1:445".parse().unwrap() }
    }

    fn server() -> IpAddr {
        "10.0.0.1".parse().unwrap()
    }

    const FID: FileId = FileId { persistent: 1, volatile: 2 };

    fn create(tree: u32, name: &str) -> Create {
        Create { session: 7, tree, name: name.into(), write_intent: true, access: 0x12019f, ..Create::default() }
    }

    #[test]
    fn a_file_id_names_its_create_and_share() {
        let mut s = SmbSession::<u32>::default();
        s.tree_connect_request(ch(1), 3, r"\\srv\Public".into());
        assert_eq!(s.tree_connect_response(ch(1), 7, 3, 5), Some(r"\\srv\Public"));
        assert_eq!(s.tree_connect_response(ch(1), 7, 3, 5), None, "answered once");
        let open = s.create_request(ch(1), 4, create(5, r"dir\evil.exe"), 10);
        assert_eq!((open.share.as_deref(), open.pipe), (Some(r"\\srv\Public"), false));
        // A related WRITE in the same compound finds it before the response.
        s.pending_create(ch(1), 4).unwrap().data += 1;
        let Created::Opened { open, replaced: None } = s.create_response(ch(1), 4, Some(FID)) else { panic!() };
        assert_eq!((open.name.as_deref(), open.data, open.file_id), (Some(r"dir\evil.exe"), 11, Some(FID)));
        // Another channel of the session (multichannel) uses the same FileId.
        assert_eq!(s.file(server(), 7, FID).unwrap().access, 0x12019f);
        let closed = s.close(server(), 7, FID).unwrap();
        assert_eq!(closed.name.as_deref(), Some(r"dir\evil.exe"));
        assert!(s.file(server(), 7, FID).is_none(), "a close forgets");
    }

    #[test]
    fn responses_match_requests_of_their_own_connection() {
        let mut s = SmbSession::<u32>::default();
        s.create_request(ch(1), 4, create(5, "a"), 1);
        s.create_request(ch(2), 4, create(5, "b"), 2);
        assert!(matches!(s.create_response(ch(2), 4, None), Created::Failed(Open { data: 2, .. })));
        assert!(matches!(s.create_response(ch(2), 4, Some(FID)), Created::Unknown));
        assert!(matches!(s.create_response(ch(1), 4, Some(FID)), Created::Opened { open: Open { data: 1, .. }, .. }));
        // The same FileId again: the first open's close was not seen.
        s.create_request(ch(1), 9, create(5, "c"), 3);
        let Created::Opened { open, replaced: Some(old) } = s.create_response(ch(1), 9, Some(FID)) else { panic!() };
        assert_eq!((open.data, old.data), (3, 1));
    }

    #[test]
    fn named_pipes_are_not_files() {
        let mut s = SmbSession::<()>::default();
        s.tree_connect_request(ch(1), 1, r"\\srv\IPC$".into());
        s.tree_connect_response(ch(1), 7, 1, 1);
        s.tree_connect_request(ch(1), 2, r"\\srv\ipc$x".into());
        s.tree_connect_response(ch(1), 7, 2, 2);
        assert!(s.create_request(ch(1), 3, create(1, "srvsvc"), ()).pipe);
        assert!(!s.create_request(ch(1), 4, create(2, "srvsvc"), ()).pipe);
        assert!(!s.create_request(ch(1), 5, create(9, "srvsvc"), ()).pipe, "unknown tree: cannot tell");
        assert!(is_pipe_share(r"\\10.0.0.1\ipc$"));
        assert_eq!(share_name(r"\\srv\Public"), "Public");
    }

    #[test]
    fn a_file_id_without_its_create_is_adopted_nameless() {
        let mut s = SmbSession::<u32>::default();
        s.tree_connect_request(ch(1), 1, r"\\srv\share".into());
        s.tree_connect_response(ch(1), 7, 1, 1);
        let open = s.file_or_adopt(server(), 7, 1, FID, || 5);
        assert_eq!((open.name.as_deref(), open.share.as_deref(), open.data), (None, Some(r"\\srv\share"), 5));
        s.file_or_adopt(server(), 7, 1, FID, || 99).data += 1;
        s.create_request(ch(1), 2, create(1, "x"), 0);
        let mut left = s.drain();
        left.sort_by_key(|(o, _)| o.data);
        assert_eq!(left.iter().map(|(o, answered)| (o.data, *answered)).collect::<Vec<_>>(), [(0, false), (6, true)]);
    }

    #[test]
    fn state_is_bounded() {
        let mut s = SmbSession::<()>::bounded(4);
        for mid in 0..10 {
            s.create_request(ch(1), mid, create(1, "x"), ());
        }
        assert!(s.creates.len() <= 4);
        assert!(s.pending_create(ch(1), 9).is_some(), "the newest is kept");
    }
}
