//! Named byte streams between two peers.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::identity::PeerId;

/// Stream error code sent when a stream is dropped before it was finished.
pub(crate) const STREAM_CANCELLED: u32 = 0;

/// An outgoing named stream. Write with [`tokio::io::AsyncWriteExt`]; writes wait while the receiver is
/// behind (back-pressure). Call [`OutgoingStream::finish`] (or `shutdown`) to end it cleanly: a stream
/// dropped unfinished is reset, and the receiver sees an error instead of a short stream.
pub struct OutgoingStream {
    peer: PeerId,
    name: String,
    send: quinn::SendStream,
    finished: bool,
}

impl OutgoingStream {
    pub(crate) fn new(peer: PeerId, name: String, send: quinn::SendStream) -> Self {
        Self {
            peer,
            name,
            send,
            finished: false,
        }
    }

    /// The receiving peer.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ends the stream and waits until the receiver has read all of it (or the connection ended).
    pub async fn finish(mut self) -> io::Result<()> {
        self.finished = true;
        self.send
            .finish()
            .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))?;
        match self.send.stopped().await {
            Ok(None) => Ok(()),
            Ok(Some(code)) => Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("receiver stopped the stream with code {code}"),
            )),
            Err(e) => Err(io::Error::new(io::ErrorKind::ConnectionAborted, e)),
        }
    }

    /// Abandons the stream; the receiver sees an error.
    pub fn cancel(mut self) {
        self.finished = true;
        let _ = self.send.reset(STREAM_CANCELLED.into());
    }
}

impl Drop for OutgoingStream {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.send.reset(STREAM_CANCELLED.into());
        }
    }
}

impl AsyncWrite for OutgoingStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.send), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.send), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.finished = true;
        AsyncWrite::poll_shutdown(Pin::new(&mut self.send), cx)
    }
}

impl fmt::Debug for OutgoingStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingStream")
            .field("peer", &self.peer)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// An incoming named stream. Read with [`tokio::io::AsyncReadExt`]; the sender waits while you do not
/// read. It ends with EOF when the sender finished it, or an error if the sender cancelled it.
pub struct IncomingStream {
    peer: PeerId,
    name: String,
    buffered: BytesMut,
    recv: quinn::RecvStream,
}

impl IncomingStream {
    pub(crate) fn new(peer: PeerId, name: String, buffered: BytesMut, recv: quinn::RecvStream) -> Self {
        Self {
            peer,
            name,
            buffered,
            recv,
        }
    }

    /// The sending peer.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The name the sender gave the stream.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl AsyncRead for IncomingStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.buffered.is_empty() {
            let n = self.buffered.len().min(buf.remaining());
            buf.put_slice(&self.buffered[..n]);
            self.buffered.advance(n);
            return Poll::Ready(Ok(()));
        }
        AsyncRead::poll_read(Pin::new(&mut self.recv), cx, buf)
    }
}

impl fmt::Debug for IncomingStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingStream")
            .field("peer", &self.peer)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A two-way named stream with one peer: read what the peer writes, write what it reads (for example one
/// forwarded TCP connection). Both halves have back-pressure. Shut down the writing half with
/// [`tokio::io::AsyncWriteExt::shutdown`] (the peer then reads EOF) or split it with
/// [`DuplexStream::into_split`]; dropping it unfinished resets it.
///
/// Opened with [`crate::Session::duplex_stream`]; the peer receives it as [`crate::Event::DuplexStream`].
pub struct DuplexStream {
    incoming: IncomingStream,
    outgoing: OutgoingStream,
}

impl DuplexStream {
    pub(crate) fn new(
        peer: PeerId,
        name: String,
        send: quinn::SendStream,
        buffered: BytesMut,
        recv: quinn::RecvStream,
    ) -> Self {
        Self {
            incoming: IncomingStream::new(peer, name.clone(), buffered, recv),
            outgoing: OutgoingStream::new(peer, name, send),
        }
    }

    /// The peer at the other end.
    pub fn peer(&self) -> PeerId {
        self.incoming.peer()
    }

    /// The stream's name, as its opener gave it.
    pub fn name(&self) -> &str {
        self.incoming.name()
    }

    /// The reading and the writing half, to use on different tasks.
    pub fn into_split(self) -> (IncomingStream, OutgoingStream) {
        (self.incoming, self.outgoing)
    }
}

impl AsyncRead for DuplexStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.incoming).poll_read(cx, buf)
    }
}

impl AsyncWrite for DuplexStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.outgoing).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.outgoing).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.outgoing).poll_shutdown(cx)
    }
}

impl fmt::Debug for DuplexStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuplexStream")
            .field("peer", &self.peer())
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}
