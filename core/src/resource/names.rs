//! Turning names from peers into safe file names.

use std::io;
use std::path::{Path, PathBuf};

/// Longest file name we create, in bytes.
const MAX_FILE_NAME: usize = 200;

/// A file name made from a name a peer sent: one path component, no separators, no `..`, no control or
/// reserved characters, no leading dot (nothing hidden), not a reserved device name, at most 200 bytes.
pub(crate) fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let trimmed = out.trim_matches(|c: char| c == '.' || c.is_whitespace()).to_owned();
    out = trimmed;
    if out.is_empty() {
        out = "resource".to_owned();
    }
    let stem = out.split('.').next().unwrap_or_default().to_ascii_uppercase();
    const RESERVED: [&str; 22] = [
        "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1",
        "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    ];
    if RESERVED.contains(&stem.as_str()) {
        out.insert(0, '_');
    }
    truncate(&mut out, MAX_FILE_NAME);
    out
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// `name (n).ext` for the n-th alternative of `name`.
fn numbered(name: &str, n: u32) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// Moves the complete file `part` to `dir/name`. Without `overwrite`, an existing file is never replaced:
/// the first free `name (n).ext` is used instead.
pub(crate) fn place(part: &Path, dir: &Path, name: &str, overwrite: bool) -> io::Result<PathBuf> {
    if overwrite {
        let target = dir.join(name);
        std::fs::rename(part, &target)?;
        return Ok(target);
    }
    for n in 0..10_000u32 {
        let candidate = if n == 0 { name.to_owned() } else { numbered(name, n) };
        let target = dir.join(candidate);
        // A hard link fails if the target exists, so a file that appeared meanwhile is never replaced.
        match std::fs::hard_link(part, &target) {
            Ok(()) => {
                std::fs::remove_file(part)?;
                return Ok(target);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            // File systems without hard links: check, then rename.
            Err(_) if !target.exists() => {
                std::fs::rename(part, &target)?;
                return Ok(target);
            }
            Err(_) => continue,
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free file name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_peers_are_never_paths() {
        for (name, want) in [
            ("photo.jpg", "photo.jpg"),
            ("../../etc/passwd", "_.._etc_passwd"),
            ("/etc/passwd", "_etc_passwd"),
            ("..", "resource"),
            (".", "resource"),
            ("", "resource"),
            (".bashrc", "bashrc"),
            ("a\\b\\c.txt", "a_b_c.txt"),
            ("C:\\Windows\\x", "C__Windows_x"),
            ("nul", "_nul"),
            ("COM1.txt", "_COM1.txt"),
            ("tab\there\0", "tab_here_"),
            ("  spaced  ", "spaced"),
            ("report.pdf.", "report.pdf"),
        ] {
            assert_eq!(sanitize(name), want, "{name:?}");
        }
        let long = "é".repeat(200);
        let s = sanitize(&long);
        assert!(s.len() <= MAX_FILE_NAME && s.chars().all(|c| c == 'é'));
        for name in ["../x", "a/../../b", "/abs", "..\\..\\x"] {
            let s = sanitize(name);
            assert_eq!(Path::new(&s).components().count(), 1, "{name:?} -> {s:?}");
        }
    }

    #[test]
    fn placing_never_overwrites_unless_asked() {
        let dir = std::env::temp_dir().join(format!("multipeer-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let part = |content: &str| {
            let p = dir.join(".part");
            std::fs::write(&p, content).unwrap();
            p
        };
        let a = place(&part("one"), &dir, "f.txt", false).unwrap();
        let b = place(&part("two"), &dir, "f.txt", false).unwrap();
        let c = place(&part("three"), &dir, "f.txt", false).unwrap();
        assert_eq!(a, dir.join("f.txt"));
        assert_eq!(b, dir.join("f (1).txt"));
        assert_eq!(c, dir.join("f (2).txt"));
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "one");
        let d = place(&part("four"), &dir, "f.txt", true).unwrap();
        assert_eq!(d, a);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "four");
        assert_eq!(numbered("noext", 3), "noext (3)");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
