//! Protected paths: what the virus used to persist, guarded against tainted processes.
//! The kernel's open hook sends SIGKILL to a tainted process that opens a protected file
//! for writing or creates (or opens for writing) a file in a protected directory
//! (`INODE_PROTECTED` in `INODES`, checked only on the tainted path: an untainted process
//! never gets there). Paths come from `[response] protected_paths` and from `apply-rules`
//! (kept in the database); they are resolved to inodes at start, at each reload and when
//! rules are applied.
use std::{collections::BTreeSet, path::Path};

use sensor_common::maps::{INODE_PROTECTED, InodeKey};

use crate::{config::Config, host::procfs};

/// Files of one protected directory marked one by one, at most: the directory's own mark
/// guards what is created in it; its existing files need their own.
pub const MAX_FILES_PER_DIR: usize = 4096;

/// The inodes to mark, and why some paths mark less than asked.
#[derive(Debug, Default)]
pub struct Resolved {
    pub inodes: BTreeSet<(InodeKey, u32)>,
    pub notes: Vec<String>,
}

/// Resolves each path (absolute, as given) to the inodes it protects:
/// - a regular file: itself, and the activation-point directory it lies in when it lies in
///   one (`activation_points` entries `DIR/`): the next copy of a worm comes under another
///   name, through the same directory;
/// - a directory: itself (new files) and the regular files directly in it;
/// - a path that does not exist: its directory (creating it again is what is guarded).
pub fn resolve<'a>(paths: impl IntoIterator<Item = &'a str>, config: &Config) -> Resolved {
    let mut out = Resolved::default();
    for path in paths {
        let fs_path = Path::new(path);
        match std::fs::metadata(fs_path) {
            Ok(meta) if meta.is_dir() => mark_dir(fs_path, &mut out),
            Ok(_) => {
                mark(fs_path, &mut out);
                if let Some(dir) = activation_dir(config, path) {
                    mark(Path::new(&dir), &mut out);
                }
            }
            Err(e) => match fs_path.parent().filter(|d| d.is_dir()) {
                Some(dir) => mark(dir, &mut out),
                None => out.notes.push(format!("{path}: {e}, nor does its directory exist: not protected")),
            },
        }
    }
    out
}

/// The `DIR/` activation point `path` lies directly or deeper in, as a directory path.
fn activation_dir(config: &Config, path: &str) -> Option<String> {
    let pattern = config.activation_point(path)?;
    (pattern.starts_with('/') && pattern.ends_with('/')).then(|| pattern.trim_end_matches('/').to_owned())
}

fn mark(path: &Path, out: &mut Resolved) {
    match procfs::inode_of(path) {
        Ok(key) => {
            out.inodes.insert(key);
        }
        Err(e) => out.notes.push(format!("{}: {e}: not protected", path.display())),
    }
}

fn mark_dir(dir: &Path, out: &mut Resolved) {
    mark(dir, out);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return out.notes.push(format!("{}: {e}: its existing files are not protected", dir.display())),
    };
    let mut files = 0;
    for entry in entries.filter_map(Result::ok) {
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        if files == MAX_FILES_PER_DIR {
            out.notes.push(format!("{}: more than {MAX_FILES_PER_DIR} files: the others are guarded by the directory only against creation", dir.display()));
            break;
        }
        files += 1;
        mark(&entry.path(), out);
    }
}

/// The flag these inodes get in `INODES`.
pub const FLAG: u32 = INODE_PROTECTED;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_a_directory_and_a_missing_path() {
        let dir = crate::graph::store::tests::tempdir();
        std::fs::create_dir_all(&dir).unwrap();
        let guarded = dir.join("cron.d");
        std::fs::create_dir(&guarded).unwrap();
        std::fs::write(guarded.join("job"), b"* * * * * root true\n").unwrap();
        std::fs::create_dir(guarded.join("sub")).unwrap();
        let rc = dir.join(".bashrc");
        std::fs::write(&rc, b"").unwrap();
        let gone = dir.join("spool").join("gone");
        std::fs::create_dir(dir.join("spool")).unwrap();
        let config = Config::embedded_default();
        let paths = [guarded.to_str().unwrap(), rc.to_str().unwrap(), gone.to_str().unwrap(), "/nonexistent-vtrail/x"];
        let r = resolve(paths, &config);
        let key = |p: &Path| procfs::inode_of(p).unwrap();
        for p in [&guarded, &guarded.join("job"), &rc, &dir.join("spool")] {
            assert!(r.inodes.contains(&key(p)), "{} not marked", p.display());
        }
        // Subdirectories are not marked (the open hook looks at the file's own directory).
        assert!(!r.inodes.contains(&key(&guarded.join("sub"))));
        assert_eq!(r.inodes.len(), 4);
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        assert!(r.notes[0].contains("/nonexistent-vtrail/x"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
