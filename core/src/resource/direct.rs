//! How a receiver puts a transfer's bytes into its part file.
//!
//! Where the file system allows it (Linux and Android), the data goes to the disk directly (`O_DIRECT`) from an
//! aligned buffer of [`DIRECT_BUFFER`] bytes, without a copy into the page cache: that copy, and writing back
//! the dirty pages, cost the receiver more CPU than hashing, and the transfer syncs the file before its verdict
//! anyway, so the page cache would not let it end sooner. The unaligned tail (and everything, where direct
//! writes are refused) is written through the page cache, synced in the background every [`SYNC_EVERY`] bytes.

use std::fs::File;
use std::io::{self, Write};

/// Bytes per direct write.
pub(crate) const DIRECT_BUFFER: usize = 1 << 20;
/// Alignment of direct writes: of the buffer's address, the file offset and the length (the largest logical
/// block size in use).
const ALIGN: usize = 4096;
/// Bytes written through the page cache between two background syncs of a part file.
const SYNC_EVERY: u64 = 64 << 20;

/// Writes a part file from its current position on, directly to the disk where it can.
pub(crate) struct PartWriter {
    file: File,
    /// Direct writes are on (the position is aligned, and the file system took the flag).
    direct: bool,
    /// [`DIRECT_BUFFER`] aligned bytes at `start`, of which `filled` hold data (direct writes only).
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    syncing: Syncing,
}

impl PartWriter {
    /// Writes `file` from its position `at`, which is where the data goes next.
    pub(crate) fn new(file: File, at: u64) -> Self {
        let direct = at % ALIGN as u64 == 0 && set_direct(&file, true).is_ok();
        let buf = if direct {
            vec![0u8; DIRECT_BUFFER + ALIGN]
        } else {
            Vec::new()
        };
        let start = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        Self {
            file,
            direct,
            buf,
            start,
            filled: 0,
            syncing: Syncing::default(),
        }
    }

    /// Whether the data goes to the disk directly.
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Writes `bytes` next.
    pub(crate) fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while self.direct && !bytes.is_empty() {
            let n = bytes.len().min(DIRECT_BUFFER - self.filled);
            let at = self.start + self.filled;
            self.buf[at..at + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == DIRECT_BUFFER {
                self.flush_direct(DIRECT_BUFFER)?;
            }
        }
        self.write_cached(bytes)
    }

    /// Writes what is buffered and waits for the background sync; the file is then ready for its final sync.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        if self.direct {
            let aligned = self.filled - self.filled % ALIGN;
            if aligned > 0 {
                self.flush_direct(aligned)?;
            }
            // The unaligned tail goes through the page cache; so does anything written through another handle of
            // this open file from now on (they share the flag).
            let (from, to) = (self.start, self.start + self.filled);
            let tail = self.buf[from..to].to_vec();
            self.go_cached()?;
            self.write_cached(&tail)?;
        }
        self.syncing.wait()
    }

    /// Writes the first `len` (aligned) buffered bytes directly, and keeps the rest at the buffer's start.
    fn flush_direct(&mut self, len: usize) -> io::Result<()> {
        let data = self.start..self.start + len;
        if let Err(e) = self.file.write_all(&self.buf[data.clone()]) {
            if e.kind() != io::ErrorKind::InvalidInput {
                return Err(e);
            }
            // The disk wants another alignment after all: the page cache takes these bytes and the rest.
            let bytes = self.buf[data].to_vec();
            let rest = self.buf[self.start + len..self.start + self.filled].to_vec();
            self.go_cached()?;
            self.write_cached(&bytes)?;
            return self.write_cached(&rest);
        }
        self.buf
            .copy_within(self.start + len..self.start + self.filled, self.start);
        self.filled -= len;
        Ok(())
    }

    /// Turns direct writes off (the buffer is handed over by the caller).
    fn go_cached(&mut self) -> io::Result<()> {
        self.direct = false;
        self.filled = 0;
        set_direct(&self.file, false)
    }

    fn write_cached(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.file.write_all(bytes)?;
        self.syncing.wrote(&self.file, bytes.len() as u64)
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        // Stopped early (an error): other handles of this open file must not inherit the flag.
        if self.direct {
            let _ = set_direct(&self.file, false);
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    let flags = fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    Ok(fcntl_setfl(file, flags)?)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_direct(_file: &File, on: bool) -> io::Result<()> {
    if on {
        return Err(io::ErrorKind::Unsupported.into());
    }
    Ok(())
}

/// Syncs a part file in the background while it is written through the page cache, so the disk works during
/// the transfer and the final sync (before the verdict) has little left to do.
#[derive(Default)]
struct Syncing {
    unsynced: u64,
    running: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Syncing {
    /// `n` more bytes were written to `file`: starts a sync once enough are, unless one still runs; the
    /// error of a finished one.
    fn wrote(&mut self, file: &File, n: u64) -> io::Result<()> {
        self.unsynced += n;
        if self.unsynced < SYNC_EVERY || self.running.as_ref().is_some_and(|r| !r.is_finished()) {
            return Ok(());
        }
        // An error is reported once per open file, and this one shares ours: it must not go unseen.
        self.wait()?;
        let handle = file.try_clone()?;
        let started = std::thread::Builder::new()
            .name("multipeer-sync".into())
            .spawn(move || handle.sync_data());
        // Without a thread the final sync does it all.
        self.running = started.ok();
        self.unsynced = 0;
        Ok(())
    }

    /// Waits for the running sync, if any; its error.
    fn wait(&mut self) -> io::Result<()> {
        match self.running.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("syncing the file failed")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    fn scratch(label: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("multipeer-direct-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Writes `pieces` after a prefix of `prefix` bytes, and reads the whole file back.
    fn write_after(label: &str, prefix: usize, pieces: &[usize]) -> (Vec<u8>, Vec<u8>, bool) {
        let dir = scratch(label);
        let path = dir.join("part");
        let mut expected = pattern(prefix, 7);
        std::fs::write(&path, &expected).unwrap();
        let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(prefix as u64)).unwrap();
        let mut writer = PartWriter::new(file, prefix as u64);
        let direct = writer.is_direct();
        for (i, &len) in pieces.iter().enumerate() {
            let piece = pattern(len, i as u8);
            writer.write(&piece).unwrap();
            expected.extend_from_slice(&piece);
        }
        writer.finish().unwrap();
        let mut got = Vec::new();
        std::fs::File::open(&path).unwrap().read_to_end(&mut got).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        (got, expected, direct)
    }

    #[test]
    fn odd_pieces_and_an_unaligned_tail_arrive_whole() {
        let pieces = [1, 4095, 4097, DIRECT_BUFFER - 3, 2 * DIRECT_BUFFER + 5, 333, 65_536];
        let (got, expected, direct) = write_after("odd", 0, &pieces);
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "contents differ");
        // Where the temporary directory's file system refuses direct writes, this covered the page cache path.
        eprintln!("direct writes: {direct}");
    }

    #[test]
    fn a_resumed_part_file_at_an_unaligned_offset_goes_through_the_page_cache() {
        let (got, expected, direct) = write_after("unaligned", 1000, &[DIRECT_BUFFER + 17, 9]);
        assert!(!direct);
        assert!(got == expected, "contents differ");
    }

    #[test]
    fn a_resumed_part_file_at_an_aligned_offset_is_written_after_its_prefix() {
        let (got, expected, _) = write_after("aligned", 8192, &[DIRECT_BUFFER, 4096, 1]);
        assert!(got == expected, "contents differ");
    }

    #[test]
    fn nothing_written_leaves_the_prefix_alone() {
        let (got, expected, _) = write_after("empty", 4096, &[]);
        assert!(got == expected);
    }
}
