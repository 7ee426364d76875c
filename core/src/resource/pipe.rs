//! The disk side of a transfer, off the async workers: one blocking task per transfer reads and hashes the file
//! (sending) or hashes and writes it (receiving), joined to the network side by a small queue of chunks, so
//! disk, hash and network overlap while at most [`DEPTH`] chunks of [`PIPE_CHUNK`] bytes wait in between.
//!
//! Either side may give up at any moment (cancelled, interrupted): dropping its end of the queue stops the
//! blocking task at its next chunk, and nothing waits for a disk that is slow to answer.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::direct::PartWriter;
use crate::proto::resource::DIGEST_LEN;

/// Bytes per chunk between the disk and the network.
pub(crate) const PIPE_CHUNK: usize = 256 * 1024;
/// Chunks waiting between the two sides at most (besides the one each side is working on).
pub(crate) const DEPTH: usize = 4;

/// Hashes the next `len` bytes of `file` (from its current position).
pub(crate) fn hash_prefix(file: &mut File, len: u64, hasher: &mut ring::digest::Context) -> io::Result<()> {
    let mut buf = vec![0u8; PIPE_CHUNK];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(PIPE_CHUNK).min(PIPE_CHUNK);
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than expected",
            ));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

fn digest(hasher: ring::digest::Context) -> [u8; DIGEST_LEN] {
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(hasher.finish().as_ref());
    out
}

/// The gone network side, as the blocking task sees it (nobody reads this error).
fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the transfer stopped")
}

/// What a [`Reader`] has next.
pub(crate) enum Next {
    /// The next chunk of the file.
    Chunk(Bytes),
    /// The file is read: the SHA-256 of all of it.
    Done([u8; DIGEST_LEN]),
}

/// Reads a file from an offset in chunks, hashing all of it (the part before the offset too).
pub(crate) struct Reader {
    chunks: mpsc::Receiver<Bytes>,
    task: Option<JoinHandle<io::Result<[u8; DIGEST_LEN]>>>,
}

impl Reader {
    /// Starts reading `size` bytes of the file at `path`, sending those from `offset` on.
    pub(crate) fn spawn(path: PathBuf, offset: u64, size: u64) -> Self {
        let (tx, chunks) = mpsc::channel(DEPTH);
        let task = tokio::task::spawn_blocking(move || read_file(&path, offset, size, &tx));
        Self {
            chunks,
            task: Some(task),
        }
    }

    /// The next chunk, or the digest after the last one; an error if reading failed.
    pub(crate) async fn next(&mut self) -> io::Result<Next> {
        if let Some(chunk) = self.chunks.recv().await {
            return Ok(Next::Chunk(chunk));
        }
        let task = self.task.take().ok_or_else(gone)?;
        task.await.map_err(|_| gone())?.map(Next::Done)
    }
}

fn read_file(path: &std::path::Path, offset: u64, size: u64, tx: &mpsc::Sender<Bytes>) -> io::Result<[u8; DIGEST_LEN]> {
    let mut file = File::open(path)?;
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    hash_prefix(&mut file, offset, &mut hasher)?;
    let mut left = size - offset.min(size);
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(PIPE_CHUNK).min(PIPE_CHUNK);
        let mut chunk = Vec::with_capacity(want);
        (&mut file).take(want as u64).read_to_end(&mut chunk)?;
        if chunk.len() < want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being sent",
            ));
        }
        hasher.update(&chunk);
        tx.blocking_send(Bytes::from(chunk)).map_err(|_| gone())?;
        left -= want as u64;
    }
    Ok(digest(hasher))
}

/// What a [`Writer`] did: bytes in the file from its start, and their digest.
pub(crate) struct Written {
    /// Bytes of the resource in the file (the prefix it started from included).
    pub(crate) len: u64,
    /// SHA-256 of those bytes.
    pub(crate) sha256: [u8; DIGEST_LEN],
}

/// Hashes a part file's first bytes, then hashes and appends the chunks it is given.
pub(crate) struct Writer {
    tx: mpsc::Sender<Bytes>,
    task: JoinHandle<io::Result<Written>>,
}

impl Writer {
    /// Starts on `file` (a handle of its own), which holds `from` bytes of the resource already.
    pub(crate) fn spawn(file: File, from: u64) -> Self {
        let (tx, rx) = mpsc::channel(DEPTH);
        let task = tokio::task::spawn_blocking(move || write_file(file, from, rx));
        Self { tx, task }
    }

    /// Queues a chunk, waiting while the queue is full; if writing failed, why.
    pub(crate) async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        if self.tx.send(chunk).await.is_ok() {
            return Ok(());
        }
        // The blocking task stopped early: only an error does that.
        match (&mut self.task).await {
            Ok(Err(e)) => Err(e),
            _ => Err(gone()),
        }
    }

    /// Waits until every queued chunk is written; the bytes in the file and their digest, or why writing
    /// failed.
    pub(crate) async fn finish(self) -> io::Result<Written> {
        drop(self.tx);
        self.task.await.map_err(|_| gone())?
    }
}

/// Room in a [`Splitter`]'s block: a chunk, and one read of stream frames beyond it.
const BLOCK_CAPACITY: usize = PIPE_CHUNK + 64 * 1024;

/// Cuts what a receiver reads into the resource's data, in chunks of [`PIPE_CHUNK`] for a [`Writer`], and
/// the digest that follows the data.
pub(crate) struct Splitter {
    /// Data bytes still to come.
    left: u64,
    /// Data bytes taken so far.
    taken: u64,
    block: BytesMut,
    digest: Vec<u8>,
}

impl Splitter {
    /// Expects `left` more bytes of data, then the digest.
    pub(crate) fn new(left: u64) -> Self {
        Self {
            left,
            taken: 0,
            block: BytesMut::with_capacity(BLOCK_CAPACITY),
            digest: Vec::with_capacity(DIGEST_LEN),
        }
    }

    /// Takes the next bytes read; an error if more than a digest follows the data.
    pub(crate) fn take(&mut self, bytes: &[u8]) -> Result<(), &'static str> {
        let data = usize::try_from(self.left).unwrap_or(usize::MAX).min(bytes.len());
        let (data, rest) = bytes.split_at(data);
        if self.digest.len() + rest.len() > DIGEST_LEN {
            return Err("data beyond the announced size");
        }
        self.block.extend_from_slice(data);
        self.left -= data.len() as u64;
        self.taken += data.len() as u64;
        self.digest.extend_from_slice(rest);
        Ok(())
    }

    /// The next chunk to write: a full one, or what there is once the data is complete or with `flush`.
    pub(crate) fn chunk(&mut self, flush: bool) -> Option<Bytes> {
        if self.block.len() >= PIPE_CHUNK {
            // A new block for what follows, with room for a whole chunk and a read beyond it: it never grows
            // (growing copies everything taken so far).
            let mut next = BytesMut::with_capacity(BLOCK_CAPACITY);
            next.extend_from_slice(&self.block[PIPE_CHUNK..]);
            self.block.truncate(PIPE_CHUNK);
            return Some(std::mem::replace(&mut self.block, next).freeze());
        }
        if (flush || self.left == 0) && !self.block.is_empty() {
            return Some(self.block.split().freeze());
        }
        None
    }

    /// Data bytes taken so far.
    pub(crate) fn taken(&self) -> u64 {
        self.taken
    }

    /// What followed the data (the sender's digest, if the stream is complete).
    pub(crate) fn digest(&self) -> &[u8] {
        &self.digest
    }
}

fn write_file(mut file: File, from: u64, mut rx: mpsc::Receiver<Bytes>) -> io::Result<Written> {
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    // The prefix is read through the handle we wrote it with, never by name.
    file.seek(SeekFrom::Start(0))?;
    hash_prefix(&mut file, from, &mut hasher)?;
    file.seek(SeekFrom::Start(from))?;
    let mut len = from;
    let mut writer = PartWriter::new(file, from);
    tracing::debug!(from, direct = writer.is_direct(), "writing a part file");
    while let Some(chunk) = rx.blocking_recv() {
        writer.write(&chunk)?;
        hasher.update(&chunk);
        len += chunk.len() as u64;
    }
    writer.finish()?;
    Ok(Written {
        len,
        sha256: digest(hasher),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_splitter_cuts_data_into_chunks_and_keeps_the_digest_apart() {
        let size = PIPE_CHUNK as u64 * 2 + 10;
        let mut split = Splitter::new(size);
        let data = vec![7u8; PIPE_CHUNK + 5];
        split.take(&data).unwrap();
        assert_eq!(split.chunk(false).map(|c| c.len()), Some(PIPE_CHUNK));
        assert_eq!(split.chunk(false), None, "a partial chunk waits");
        assert_eq!(split.taken(), PIPE_CHUNK as u64 + 5);
        assert_eq!(split.chunk(true).map(|c| c.len()), Some(5), "unless flushed");
        let mut tail = vec![7u8; PIPE_CHUNK + 5];
        tail.extend_from_slice(&[1; 20]);
        split.take(&tail).unwrap();
        assert_eq!(split.chunk(false).map(|c| c.len()), Some(PIPE_CHUNK));
        assert_eq!(split.chunk(false).map(|c| c.len()), Some(5), "the data is complete");
        assert_eq!(split.chunk(false), None);
        split.take(&[2; 12]).unwrap();
        assert_eq!(split.digest().len(), DIGEST_LEN);
        assert_eq!(split.take(&[3]), Err("data beyond the announced size"));
        assert_eq!(split.digest().len(), DIGEST_LEN, "nothing taken from a refused read");
    }

    fn scratch(label: &str) -> PathBuf {
        std::env::temp_dir().join(format!("multipeer-pipe-{label}-{}", std::process::id()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reader_hashes_the_prefix_and_sends_the_rest_in_chunks() {
        let path = scratch("read");
        let content: Vec<u8> = (0..PIPE_CHUNK * 2 + 100).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let offset = 1000;
        let mut reader = Reader::spawn(path.clone(), offset, content.len() as u64);
        let mut got = Vec::new();
        let sha256 = loop {
            match reader.next().await.unwrap() {
                Next::Chunk(chunk) => {
                    assert!(chunk.len() <= PIPE_CHUNK);
                    got.extend_from_slice(&chunk);
                }
                Next::Done(sha256) => break sha256,
            }
        };
        assert_eq!(got, content[offset as usize..]);
        assert_eq!(
            sha256[..],
            ring::digest::digest(&ring::digest::SHA256, &content).as_ref()[..]
        );
        // A file shorter than announced is an error, not a short transfer.
        let mut reader = Reader::spawn(path.clone(), 0, content.len() as u64 + 1);
        let error = loop {
            match reader.next().await {
                Ok(Next::Chunk(_)) => {}
                Ok(Next::Done(_)) => panic!("a short file was read to its announced end"),
                Err(e) => break e,
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_error_reaches_the_network_side() {
        let path = scratch("write");
        std::fs::write(&path, b"").unwrap();
        // Read-only: every write fails.
        let mut writer = Writer::spawn(File::open(&path).unwrap(), 0);
        let chunk = Bytes::from(vec![1u8; PIPE_CHUNK]);
        let mut failed = None;
        // The writer takes a direct write's worth of chunks before its first write, then `DEPTH` wait.
        for _ in 0..DEPTH + 2 + super::super::direct::DIRECT_BUFFER / PIPE_CHUNK {
            if let Err(e) = writer.write(chunk.clone()).await {
                failed = Some(e);
                break;
            }
        }
        assert!(failed.is_some(), "the writer's error reaches the network side");
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_appends_after_the_prefix_and_hashes_all() {
        let path = scratch("append");
        std::fs::write(&path, b"prefix").unwrap();
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mut writer = Writer::spawn(file, 6);
        writer.write(Bytes::from_static(b" and the rest")).await.unwrap();
        let written = writer.finish().await.unwrap();
        assert_eq!(written.len, 19);
        assert_eq!(std::fs::read(&path).unwrap(), b"prefix and the rest");
        let expected = ring::digest::digest(&ring::digest::SHA256, b"prefix and the rest");
        assert_eq!(written.sha256[..], expected.as_ref()[..]);
        std::fs::remove_file(&path).unwrap();
    }
}
