//! The resource directory: where it is by default, and whether it is safe to store received files in (a real
//! directory, owned by this process's user, not writable by others).

use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};

/// Why the resource directory cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The path exists but is not a directory.
    #[error("it is not a directory")]
    NotADirectory,
    /// The path is a symbolic link; received files are only stored in a real directory.
    #[error("it is a symbolic link; configure the directory it points to instead")]
    Symlink,
    /// Another user owns the directory: they could swap files in it.
    #[error("it is owned by uid {owner}, not by this process's user (uid {user})")]
    NotOwned {
        /// The directory's owner.
        owner: u32,
        /// The effective user id of this process.
        user: u32,
    },
    /// Group or others may write to the directory: they could swap files in it.
    #[error("it is writable by group or others (mode {mode:o}); allowed: no write permission for them (chmod go-w)")]
    WritableByOthers {
        /// Its permission bits.
        mode: u32,
    },
    /// It could not be examined or created.
    #[error("{kind}: {message}")]
    Io {
        /// The kind of I/O error.
        kind: io::ErrorKind,
        /// The error's text.
        message: String,
    },
}

impl From<io::Error> for DirectoryError {
    fn from(e: io::Error) -> Self {
        Self::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// The default resource directory: private to the user. `$XDG_DATA_HOME/multipeer/resources` (else
/// `~/.local/share/multipeer/resources`) on Linux and other Unix systems, `~/Library/Application
/// Support/multipeer/resources` on Apple systems, `%LOCALAPPDATA%\multipeer\resources` on Windows; without
/// such a variable `multipeer-resources-<uid>` in the temporary directory.
pub(crate) fn default_directory() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
    let base = if cfg!(windows) {
        var("LOCALAPPDATA")
    } else if cfg!(any(target_os = "macos", target_os = "ios")) {
        var("HOME").map(|h| h.join("Library").join("Application Support"))
    } else {
        var("XDG_DATA_HOME").or_else(|| var("HOME").map(|h| h.join(".local").join("share")))
    };
    match base {
        Some(base) => base.join("multipeer").join("resources"),
        None => std::env::temp_dir().join(fallback_name()),
    }
}

#[cfg(unix)]
fn fallback_name() -> String {
    format!("multipeer-resources-{}", rustix::process::geteuid().as_raw())
}

#[cfg(not(unix))]
fn fallback_name() -> String {
    "multipeer-resources".to_owned()
}

/// Checks `dir` if it exists; a missing directory is fine (it is created when the session starts).
pub(crate) fn check_if_present(dir: &Path) -> Result<(), DirectoryError> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) => check(&meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Makes sure `dir` exists and is safe to store files in: a real directory (not a symlink), owned by this
/// process's user and not writable by group or others. Creates it (and missing parents) with mode 0700.
pub(crate) fn prepare(dir: &Path) -> Result<(), DirectoryError> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) => return check(&meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    check(&std::fs::symlink_metadata(dir)?)
}

fn check(meta: &Metadata) -> Result<(), DirectoryError> {
    if meta.file_type().is_symlink() {
        return Err(DirectoryError::Symlink);
    }
    if !meta.is_dir() {
        return Err(DirectoryError::NotADirectory);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let user = rustix::process::geteuid().as_raw();
        if meta.uid() != user {
            return Err(DirectoryError::NotOwned {
                owner: meta.uid(),
                user,
            });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(DirectoryError::WritableByOthers {
                mode: meta.mode() & 0o7777,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_directory_is_per_user() {
        let dir = default_directory();
        assert!(dir.is_absolute(), "{dir:?}");
        assert_ne!(
            dir,
            std::env::temp_dir().join("multipeer-resources"),
            "not shared by every user"
        );
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert!(
            name == "resources" || name.starts_with("multipeer-resources-"),
            "{dir:?}"
        );
    }
}
