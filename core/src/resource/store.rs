//! The resource directory on disk: choosing, creating and checking it, part files, free space, placing a
//! verified file under its final name and sweeping stale part files.
//!
//! Every step assumes someone else may be changing the directory meanwhile: part files are created anew
//! (never opened through a symlink) and kept open by handle; a name is only trusted after checking that it
//! still refers to the file we hold.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::identity::{PeerId, PEER_ID_LEN};
use crate::proto::resource::RESOURCE_ID_LEN;

use super::ResourceId;
pub(crate) use crate::directory::prepare;

/// Free space a transfer must leave on the file system, in bytes (so a peer cannot fill the disk to the last
/// byte).
pub(crate) const FREE_SPACE_RESERVE: u64 = 64 << 20;

/// Most directory entries one sweep looks at.
const MAX_SWEEP_ENTRIES: usize = 100_000;

/// The name of a new part file: `.<peer>-<id>-<8 random hex digits>.part`.
pub(crate) fn part_name(peer: PeerId, id: ResourceId) -> String {
    let nonce = ResourceId::random().to_string();
    format!(".{peer}-{id}-{}.part", &nonce[..8])
}

/// Whether `name` has the form of [`part_name`]: the sweep removes nothing else.
pub(crate) fn is_part_name(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".part")) else {
        return false;
    };
    let parts: Vec<&str> = inner.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    parts.len() == 3 && hex(parts[0], PEER_ID_LEN * 2) && hex(parts[1], RESOURCE_ID_LEN * 2) && hex(parts[2], 8)
}

/// Which file a name or handle refers to: device and inode on Unix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    #[cfg(unix)]
    dev: u64,
    #[cfg(unix)]
    ino: u64,
}

impl FileId {
    pub(crate) fn of(meta: &Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Self {
                dev: meta.dev(),
                ino: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            Self {}
        }
    }
}

/// A part file we created: its name and which file it is.
#[derive(Debug, Clone)]
pub(crate) struct PartFile {
    pub(crate) path: PathBuf,
    pub(crate) id: FileId,
}

impl PartFile {
    /// Creates `dir/name` anew for reading and writing: fails if anything (a file, a symlink) has that name;
    /// mode 0600 on Unix.
    pub(crate) fn create(dir: &Path, name: &str) -> io::Result<(Self, File)> {
        let path = dir.join(name);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let file = options.open(&path)?;
        let id = FileId::of(&file.metadata()?);
        Ok((Self { path, id }, file))
    }

    /// Whether `path` is, right now, this part file (a regular file, not a symlink, the same inode).
    pub(crate) fn named(&self, path: &Path) -> bool {
        std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file() && FileId::of(&m) == self.id)
    }

    /// Removes the part file's name if it still refers to our file (never someone else's file).
    pub(crate) fn remove(&self) {
        if self.named(&self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Why a verified file could not be given its final name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PlaceError {
    /// The part file's name no longer refers to the file we wrote.
    #[error("the partial file was replaced on disk")]
    Replaced,
    /// Every candidate name is taken.
    #[error("no free file name")]
    NoFreeName,
    /// The file system refused.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// `name (n).ext` for the n-th alternative of `name`.
fn numbered(name: &str, n: u32) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// Gives the complete part file the name `dir/name`. Without `overwrite`, an existing entry of that name (a
/// file, a directory, a symlink, dangling or not) is never replaced or followed: the first free
/// `name (n).ext` is used instead. With `overwrite`, a rename replaces the entry (a symlink itself, never its
/// target). Either way the result is checked to be the file we wrote.
pub(crate) fn place(part: &PartFile, dir: &Path, name: &str, overwrite: bool) -> Result<PathBuf, PlaceError> {
    if !part.named(&part.path) {
        return Err(PlaceError::Replaced);
    }
    if overwrite {
        let target = dir.join(name);
        std::fs::rename(&part.path, &target)?;
        return if part.named(&target) {
            Ok(target)
        } else {
            Err(PlaceError::Replaced)
        };
    }
    for n in 0..10_000u32 {
        let candidate = if n == 0 { name.to_owned() } else { numbered(name, n) };
        let target = dir.join(candidate);
        // A hard link fails if the target exists and never follows a symlink there.
        match std::fs::hard_link(&part.path, &target) {
            Ok(()) if part.named(&target) => {
                std::fs::remove_file(&part.path)?;
                return Ok(target);
            }
            Ok(()) => {
                // The part name was swapped between the check and the link: undo our link.
                let _ = std::fs::remove_file(&target);
                return Err(PlaceError::Replaced);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            // File systems without hard links: check (without following a symlink), then rename.
            Err(_) if std::fs::symlink_metadata(&target).is_err_and(|e| e.kind() == io::ErrorKind::NotFound) => {
                std::fs::rename(&part.path, &target)?;
                return if part.named(&target) {
                    Ok(target)
                } else {
                    Err(PlaceError::Replaced)
                };
            }
            Err(_) => continue,
        }
    }
    Err(PlaceError::NoFreeName)
}

/// Bytes available to this user on the file system of `dir`, if the platform tells.
pub(crate) fn free_space(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let s = rustix::fs::statvfs(dir).ok()?;
        Some(s.f_bavail.saturating_mul(s.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Whether `need` more bytes fit into `free` bytes while leaving [`FREE_SPACE_RESERVE`].
pub(crate) fn fits(free: Option<u64>, need: u64) -> bool {
    free.is_none_or(|free| free >= need.saturating_add(FREE_SPACE_RESERVE))
}

/// Removes this library's part files in `dir` last modified longer than `older_than` ago: leftovers of a
/// session that ended without cleaning up (a crash, a kill). Only regular files whose name has the part-file
/// form are removed; symlinks and everything else stay. Returns how many went.
pub(crate) fn sweep(dir: &Path, older_than: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.take(MAX_SWEEP_ENTRIES).flatten() {
        if !entry.file_name().to_str().is_some_and(is_part_name) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok());
        if meta.file_type().is_file() && age.is_some_and(|a| a > older_than) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scratch(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("multipeer-store-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn part_in(dir: &Path, content: &str) -> PartFile {
        use std::io::Write;
        let (part, mut file) =
            PartFile::create(dir, &part_name(PeerId::from_bytes([1; 32]), ResourceId([2; 16]))).unwrap();
        file.write_all(content.as_bytes()).unwrap();
        part
    }

    #[test]
    fn placing_never_overwrites_unless_asked() {
        let dir = scratch("place");
        prepare(&dir).unwrap();
        let a = place(&part_in(&dir, "one"), &dir, "f.txt", false).unwrap();
        let b = place(&part_in(&dir, "two"), &dir, "f.txt", false).unwrap();
        let c = place(&part_in(&dir, "three"), &dir, "f.txt", false).unwrap();
        assert_eq!(a, dir.join("f.txt"));
        assert_eq!(b, dir.join("f (1).txt"));
        assert_eq!(c, dir.join("f (2).txt"));
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "one");
        let d = place(&part_in(&dir, "four"), &dir, "f.txt", true).unwrap();
        assert_eq!(d, a);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "four");
        assert_eq!(numbered("noext", 3), "noext (3)");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_swapped_part_file_is_never_placed() {
        let dir = scratch("swap");
        prepare(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "victim").unwrap();
        let part = part_in(&dir, "ours");
        std::fs::remove_file(&part.path).unwrap();
        std::os::unix::fs::symlink(&victim, &part.path).unwrap();
        for overwrite in [false, true] {
            assert!(matches!(
                place(&part, &dir, "out", overwrite),
                Err(PlaceError::Replaced)
            ));
        }
        assert!(std::fs::symlink_metadata(dir.join("out")).is_err(), "nothing placed");
        part.remove();
        assert!(
            std::fs::symlink_metadata(&part.path).unwrap().file_type().is_symlink(),
            "not ours: left alone"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn part_files_are_new_private_and_never_through_a_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("create");
        prepare(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        let part = part_in(&dir, "x");
        assert_eq!(
            std::fs::metadata(&part.path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        PartFile::create(&dir, ".p").unwrap();
        let again = PartFile::create(&dir, ".p").err().unwrap();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        std::os::unix::fs::symlink(dir.join("nowhere"), dir.join(".l")).unwrap();
        assert!(PartFile::create(&dir, ".l").is_err());
        assert!(!dir.join("nowhere").exists(), "a dangling symlink is not followed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn part_names_are_recognised_exactly() {
        let name = part_name(PeerId::from_bytes([0xab; 32]), ResourceId([0xcd; 16]));
        assert!(is_part_name(&name), "{name}");
        for other in [
            "notes.txt",
            ".part",
            ".x.part",
            &name[1..],
            &name.replace(".part", ".parts"),
            &name.replace('a', "A"),
            &format!("{name}.part"),
        ] {
            assert!(!is_part_name(other), "{other}");
        }
    }

    #[test]
    fn free_space_keeps_a_reserve() {
        assert!(fits(None, u64::MAX));
        assert!(fits(Some(FREE_SPACE_RESERVE + 10), 10));
        assert!(!fits(Some(FREE_SPACE_RESERVE + 10), 11));
        assert!(!fits(Some(5), 0));
        assert!(free_space(&std::env::temp_dir()).is_some() || cfg!(not(unix)));
    }
}
