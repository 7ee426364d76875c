//! Turning names from peers into safe file names.

/// Longest file name we create, in bytes.
pub(crate) const MAX_FILE_NAME: usize = 200;

/// Device names Windows reserves, with or without an extension and ignoring case (compared after trailing
/// spaces are removed from the part before the first dot).
const RESERVED: [&str; 32] = [
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "COM0", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7",
    "COM8", "COM9", "COM¹", "COM²", "COM³", "LPT0", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8",
    "LPT9", "LPT¹", "LPT²", "LPT³",
];

/// Characters that change how a name is displayed without being seen: bidirectional embeddings, overrides,
/// isolates and marks (which can make `exe.jpg` show for `gpj.exe`), zero-width and other invisible format
/// characters (which make look-alikes of existing names), line and paragraph separators and Unicode tags.
fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// A file name made from a name a peer sent: one path component, no separators, no `..`, no control,
/// reserved or deceptive (bidirectional, zero-width) characters, no leading dot (nothing hidden), no trailing
/// dots or spaces, not a reserved device name in any form, at most 200 bytes. Replaced characters become `_`.
pub(crate) fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() || is_deceptive(c) => '_',
            c => c,
        })
        .collect();
    // Room for the `_` a reserved name gets; trimming after truncating, which may expose a dot or a space.
    truncate(&mut out, MAX_FILE_NAME - 1);
    let mut out = out.trim_matches(|c: char| c == '.' || c.is_whitespace()).to_owned();
    if out.is_empty() {
        out = "resource".to_owned();
    }
    if is_reserved(&out) {
        out.insert(0, '_');
    }
    out
}

/// Whether Windows treats `name` as a device: `CON`, `con.txt`, `CON .txt`, `COM¹.log`, ...
fn is_reserved(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or_default().trim_end();
    RESERVED.iter().any(|r| r.to_lowercase() == stem.to_lowercase())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
            ("tab\there\0", "tab_here_"),
            ("  spaced  ", "spaced"),
            ("report.pdf.", "report.pdf"),
            ("report.pdf . .", "report.pdf"),
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
    fn bidi_and_invisible_characters_are_neutralised() {
        for (name, want) in [
            ("photo\u{202E}gpj.exe", "photo_gpj.exe"),
            ("a\u{202A}b\u{202B}c\u{202C}d\u{202D}e", "a_b_c_d_e"),
            ("\u{2066}x\u{2067}y\u{2068}z\u{2069}.txt", "_x_y_z_.txt"),
            ("notes\u{200B}.txt", "notes_.txt"),
            ("n\u{200C}o\u{200D}t\u{200E}e\u{200F}s", "n_o_t_e_s"),
            ("\u{FEFF}bom.txt", "_bom.txt"),
            ("word\u{2060}joiner", "word_joiner"),
            ("soft\u{00AD}hyphen", "soft_hyphen"),
            ("line\u{2028}break", "line_break"),
            ("tag\u{E0041}ged", "tag_ged"),
            ("del\u{7F}\u{9B}c1", "del__c1"),
        ] {
            let got = sanitize(name);
            assert_eq!(got, want, "{name:?}");
            assert!(!got.chars().any(is_deceptive), "{got:?}");
        }
        // Ordinary non-ASCII names are kept.
        assert_eq!(sanitize("Grüße – 写真 🎉.jpg"), "Grüße – 写真 🎉.jpg");
    }

    #[test]
    fn every_windows_device_name_form_is_prefixed() {
        for name in [
            "CON",
            "con",
            "Prn",
            "aux",
            "NUL",
            "nul.txt",
            "con.txt",
            "CON .txt",
            "con  ",
            "AUX..",
            "COM0",
            "com1",
            "COM9.log",
            "lpt0",
            "LPT1.txt",
            "lpt9",
            "CONIN$",
            "conin$.txt",
            "CONOUT$",
            "conout$ .x",
            "COM¹",
            "com²",
            "COM³.txt",
            "LPT¹",
            "lpt²",
            "LPT³ .dat",
            "nul.tar.gz",
        ] {
            let got = sanitize(name);
            assert!(got.starts_with('_'), "{name:?} -> {got:?}");
            assert!(!is_reserved(&got), "{name:?} -> {got:?}");
        }
        for name in [
            "CONSOLE",
            "COM10",
            "LPT",
            "COM",
            "xcon",
            "con_txt",
            "COM⁴",
            "nullable.txt",
            "auxiliary",
        ] {
            assert_eq!(sanitize(name), name, "{name:?}");
        }
    }

    #[test]
    fn trailing_dots_and_spaces_go_even_after_truncation() {
        assert_eq!(sanitize("name. . ."), "name");
        assert_eq!(sanitize("  .. x .. "), "x");
        let mut long = "a".repeat(MAX_FILE_NAME - 3);
        long.push_str(".  bcd");
        let s = sanitize(&long);
        assert!(s.len() <= MAX_FILE_NAME && !s.ends_with(['.', ' ']), "{s:?}");
        let reserved_long = format!("con.{}", "x".repeat(400));
        let s = sanitize(&reserved_long);
        assert!(s.starts_with("_con.") && s.len() <= MAX_FILE_NAME, "{}", s.len());
    }
}
