//! The receiving side of resource transfers, and the hub both sides share.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use quinn::VarInt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::host::{Host, Report};
use super::names::sanitize;
use super::pipe::{Splitter, Writer};
use super::store::{self, PartFile, PlaceError};
use super::{
    read_stop, write_stop, Delivered, Direction, Rate, ResourceError, ResourceId, ResourceOffer, ResourceTransfer,
    Stop, TransferState, MAX_INCOMING_TRANSFERS,
};
use crate::config::{ResourceAcceptance, ResourceSettings};
use crate::directory::DirectoryError;
use crate::identity::PeerId;
use crate::proto::resource::{
    decode_offer, encode_reply, Refusal, Reply, Verdict, DIGEST_LEN, MAX_OFFER_LEN, RESOURCE_CANCELLED,
    RESOURCE_PROTOCOL_ERROR,
};
use crate::streams::read_preamble;

/// Decides whether to accept an offered resource.
pub(crate) type ResourceFilter = Arc<dyn Fn(&ResourceOffer) -> bool + Send + Sync>;

/// How long we wait for the sender to acknowledge the verdict before reporting the resource saved.
const VERDICT_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a peer may take to send its offer once it opened the stream.
const OFFER_TIMEOUT: Duration = Duration::from_secs(10);

struct Incoming {
    state: Arc<TransferState>,
    /// The part file, once created.
    part: Option<PartFile>,
    /// The open part file while waiting to resume; the running attempt holds it otherwise. The file is never
    /// opened again by name, so swapping the name for a symlink cannot redirect the writes.
    file: Option<tokio::fs::File>,
    /// Bytes safely in the part file (valid while not active).
    received: u64,
    active: bool,
    /// Bumped at every interruption, so a stale expiry timer does nothing.
    interruptions: u64,
}

/// State shared by every transfer of one session.
pub(crate) struct Hub {
    pub(crate) settings: ResourceSettings,
    /// The session: its links and its event queue.
    pub(crate) host: Arc<dyn Host>,
    filter: ResourceFilter,
    incoming: Mutex<HashMap<(PeerId, ResourceId), Incoming>>,
    /// Bytes of accepted offers per peer this session, against [`ResourceSettings::max_bytes_per_peer`].
    quota: Mutex<HashMap<PeerId, u64>>,
    /// Transfers completed lately: a sender that lost the connection before our verdict reached it offers
    /// them again, and gets the verdict instead of sending the file twice.
    completed: Mutex<VecDeque<Completed>>,
    closed: AtomicBool,
    /// One permit per offer waiting for the app's answer ([`super::MAX_PENDING_OFFERS`]).
    asking: Arc<tokio::sync::Semaphore>,
}

struct Completed {
    key: (PeerId, ResourceId),
    size: u64,
    /// The digest of a saved transfer; `None` for one we cancelled.
    sha256: Option<[u8; DIGEST_LEN]>,
    at: Instant,
}

/// Most completed or cancelled transfers remembered for re-offers.
const MAX_REMEMBERED: usize = 128;
/// Most incoming transfers from one peer tracked at once, so one peer cannot take every slot.
const MAX_INCOMING_TRANSFERS_PER_PEER: usize = 16;

/// Why an accepted offer could not get a part file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
enum StoreError {
    /// The resource directory is missing and cannot be created, or is not safe.
    #[error("resource directory {dir}: {source}")]
    Directory {
        /// The directory.
        dir: String,
        /// What is wrong with it.
        source: DirectoryError,
    },
    /// The disk lacks the space (with the reserve kept free).
    #[error("not enough free space: {need} bytes needed besides the reserve, {free} available")]
    NoSpace {
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        free: u64,
    },
    /// The part file could not be created.
    #[error("cannot create a part file: {0}")]
    Create(#[from] std::io::Error),
}

/// Prepares the directory, checks the free space for `need` bytes and creates a part file called `name`.
fn create_part(dir: &std::path::Path, name: &str, need: u64) -> Result<(PartFile, std::fs::File), StoreError> {
    store::prepare(dir).map_err(|source| StoreError::Directory {
        dir: dir.display().to_string(),
        source,
    })?;
    let free = store::free_space(dir);
    if !store::fits(free, need) {
        return Err(StoreError::NoSpace {
            need,
            free: free.unwrap_or(0),
        });
    }
    Ok(PartFile::create(dir, name)?)
}

impl Hub {
    pub(crate) fn new(settings: ResourceSettings, host: Arc<dyn Host>, filter: ResourceFilter) -> Arc<Self> {
        // Session start: make the directory (private), and remove part files a crashed session left.
        match store::prepare(&settings.directory) {
            Ok(()) => {
                let swept = store::sweep(&settings.directory, settings.resume_window);
                if swept > 0 {
                    tracing::debug!(dir = %settings.directory.display(), swept, "removed stale part files");
                }
            }
            Err(e) => tracing::warn!(
                dir = %settings.directory.display(),
                "cannot store resources, every offer will be refused: {e}"
            ),
        }
        Arc::new(Self {
            settings,
            host,
            filter,
            incoming: Mutex::new(HashMap::new()),
            quota: Mutex::new(HashMap::new()),
            completed: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
            asking: Arc::new(tokio::sync::Semaphore::new(super::MAX_PENDING_OFFERS)),
        })
    }

    fn incoming(&self) -> std::sync::MutexGuard<'_, HashMap<(PeerId, ResourceId), Incoming>> {
        self.incoming.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.host.is_closed()
    }

    /// The session is shutting down: transfers waiting to resume fail and their partial files go.
    pub(crate) fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        self.host.notify_links_changed();
        self.host.release_events();
        let waiting: Vec<Incoming> = {
            let mut map = self.incoming();
            let keys: Vec<_> = map.iter().filter(|(_, e)| !e.active).map(|(k, _)| *k).collect();
            keys.into_iter().filter_map(|k| map.remove(&k)).collect()
        };
        for entry in waiting {
            drop(entry.file);
            if let Some(part) = &entry.part {
                part.remove();
            }
            entry.state.finish(Err(ResourceError::SessionClosed));
        }
    }

    /// Waits until `peer` is connected again, the deadline passes, the transfer is cancelled or the session
    /// closes.
    pub(crate) async fn wait_for_peer(
        &self,
        peer: PeerId,
        deadline: Instant,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), ResourceError> {
        let mut changed = self.host.subscribe_links();
        loop {
            if self.is_closed() {
                return Err(ResourceError::SessionClosed);
            }
            if *cancel.borrow() {
                return Err(ResourceError::Cancelled);
            }
            if self.host.connection(&peer).is_some() {
                return Ok(());
            }
            tokio::select! {
                _ = changed.changed() => {}
                _ = cancel.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = tokio::time::sleep_until(deadline) => return Err(ResourceError::Interrupted),
            }
        }
    }

    /// Reads the offer on a new bidirectional stream (`buf`: what was read of it already) and starts (or resumes) receiving. An error is a
    /// protocol violation that closes the connection.
    pub(crate) async fn accept(
        self: Arc<Self>,
        peer: PeerId,
        send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        mut buf: BytesMut,
    ) -> Result<(), String> {
        let read = read_preamble(&mut recv, &mut buf, MAX_OFFER_LEN, OFFER_TIMEOUT, decode_offer);
        let Some(offer) = read.await? else { return Ok(()) };
        // From here on the work outlives the connection's reader, which may be aborted at any time.
        tokio::spawn(self.answer(peer, offer, send, recv, buf));
        Ok(())
    }

    /// Answers a decoded offer: the verdict of an earlier completed copy, a refusal, or the transfer itself.
    async fn answer(
        self: Arc<Self>,
        peer: PeerId,
        offer: crate::proto::resource::Offer,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        buf: BytesMut,
    ) {
        let id = ResourceId(offer.id);
        match self.remembered(peer, id, offer.size) {
            Some(Some(sha256)) => return confirm_completed(send, recv, offer.size, sha256).await,
            Some(None) => {
                let _ = send.write_all(&encode_reply(Reply::Refuse(Refusal::Cancelled))).await;
                let _ = send.finish();
                let _ = recv.stop(VarInt::from_u32(RESOURCE_CANCELLED));
                return;
            }
            None => {}
        }
        let decision = self.admit(peer, id, offer.name, offer.size).await;
        let (state, offset, file) = match decision {
            Ok(accepted) => accepted,
            Err(refusal) => {
                tracing::debug!(peer = %peer.short(), ?refusal, "resource refused");
                let _ = send.write_all(&encode_reply(Reply::Refuse(refusal))).await;
                let _ = send.finish();
                let _ = recv.stop(VarInt::from_u32(RESOURCE_CANCELLED));
                return;
            }
        };
        self.receive(state, file, send, recv, buf, offset).await;
    }

    /// How a transfer ended here lately: `Some(Some(digest))` saved, `Some(None)` cancelled by us.
    fn remembered(&self, peer: PeerId, id: ResourceId, size: u64) -> Option<Option<[u8; DIGEST_LEN]>> {
        let mut done = self.completed.lock().unwrap_or_else(PoisonError::into_inner);
        let window = self.settings.resume_window;
        done.retain(|c| c.at.elapsed() < window);
        done.iter()
            .find(|c| c.key == (peer, id) && (c.size == size || c.sha256.is_none()))
            .map(|c| c.sha256)
    }

    fn remember(&self, key: (PeerId, ResourceId), size: u64, sha256: Option<[u8; DIGEST_LEN]>) {
        let mut done = self.completed.lock().unwrap_or_else(PoisonError::into_inner);
        if done.len() >= MAX_REMEMBERED {
            done.pop_front();
        }
        done.push_back(Completed {
            key,
            size,
            sha256,
            at: Instant::now(),
        });
    }

    /// Accepts or refuses an offer; on acceptance returns the transfer, where to resume and the part file.
    async fn admit(
        &self,
        peer: PeerId,
        id: ResourceId,
        name: String,
        size: u64,
    ) -> Result<(Arc<TransferState>, u64, tokio::fs::File), Refusal> {
        if self.is_closed() {
            return Err(Refusal::Unavailable);
        }
        if let Some(resumed) = self.resume(peer, id, size).await? {
            return self.check_resumed(resumed).await;
        }
        if size > self.settings.max_size {
            return Err(Refusal::TooLarge);
        }
        let offer = ResourceOffer {
            peer,
            name: name.clone(),
            size,
        };
        if !self.take_quota(peer, size) {
            tracing::info!(peer = %peer.short(), size, "resource refused: over the per-peer quota");
            return Err(Refusal::TooLarge);
        }
        let accepted = match (self.filter)(&offer) {
            true if self.settings.acceptance == ResourceAcceptance::Manual => self.ask_app(offer).await,
            accepted => accepted.then_some(()).ok_or(Refusal::Declined),
        };
        if let Err(refusal) = accepted {
            self.give_back(peer, size);
            return Err(refusal);
        }
        let state = TransferState::new(id, peer, name, size, Direction::Incoming);
        let file = match self.start_part(&state).await {
            Ok(file) => file,
            Err(refusal) => {
                self.give_back(peer, size);
                return Err(refusal);
            }
        };
        self.host
            .report(Report::Started(ResourceTransfer::new(state.clone())))
            .await;
        Ok((state, 0, file))
    }

    /// Asks the app about an offer and waits for its answer, up to the session's answer timeout.
    async fn ask_app(&self, offer: ResourceOffer) -> Result<(), Refusal> {
        let Ok(_permit) = self.asking.clone().try_acquire_owned() else {
            return Err(Refusal::Busy);
        };
        let (pending, answer) = crate::pending::Pending::new(offer);
        let asked = async {
            self.host.report(Report::Offered(pending)).await;
            answer.await.ok()
        };
        match tokio::time::timeout(self.settings.answer_timeout, asked).await {
            Ok(Some(true)) => Ok(()),
            _ => Err(Refusal::Declined),
        }
    }

    /// The transfer waiting to resume under `(peer, id)`, if any, with the part file it holds open; refuses
    /// as busy if it is running, its size differs, or (for a new one) too many transfers are tracked.
    async fn resume(
        &self,
        peer: PeerId,
        id: ResourceId,
        size: u64,
    ) -> Result<Option<(Arc<TransferState>, u64, tokio::fs::File)>, Refusal> {
        let (state, received, file) = {
            let mut map = self.incoming();
            let full = map.len() >= MAX_INCOMING_TRANSFERS
                || map.keys().filter(|(p, _)| *p == peer).count() >= MAX_INCOMING_TRANSFERS_PER_PEER;
            match map.get_mut(&(peer, id)) {
                Some(entry) if !entry.active && entry.state.size == size => match entry.file.take() {
                    Some(file) => {
                        entry.active = true;
                        (entry.state.clone(), entry.received, file)
                    }
                    None => return Err(Refusal::Busy),
                },
                Some(_) => return Err(Refusal::Busy),
                None if full => return Err(Refusal::Busy),
                None => return Ok(None),
            }
        };
        let on_disk = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        Ok(Some((state, received.min(on_disk), file)))
    }

    /// Before a resumption continues: if the part file's name no longer refers to the file we hold (someone
    /// replaced it, for example with a symlink), the transfer fails now rather than after the rest arrived.
    async fn check_resumed(
        &self,
        resumed: (Arc<TransferState>, u64, tokio::fs::File),
    ) -> Result<(Arc<TransferState>, u64, tokio::fs::File), Refusal> {
        let state = &resumed.0;
        let key = (state.peer, state.id);
        let part = self.incoming().get(&key).and_then(|e| e.part.clone());
        let intact = match part {
            Some(part) => tokio::task::spawn_blocking(move || part.named(&part.path))
                .await
                .unwrap_or(false),
            None => false,
        };
        if intact {
            return Ok(resumed);
        }
        tracing::warn!(name = %state.name, "the partial file was replaced on disk; abandoning the transfer");
        let (state, _, file) = resumed;
        drop(file);
        self.discard(key, state.size).await;
        self.finished(&state, Err(ResourceError::PartialFileReplaced)).await;
        Err(Refusal::Unavailable)
    }

    /// Reserves the slot of a new transfer and creates its part file (every transfer its own, so a late
    /// clean-up of an old one can never hit a new one); refuses as busy or as unable to store it.
    async fn start_part(&self, state: &Arc<TransferState>) -> Result<tokio::fs::File, Refusal> {
        let key = (state.peer, state.id);
        let outstanding = {
            // Reserve the slot before touching the disk.
            let mut map = self.incoming();
            if map.len() >= MAX_INCOMING_TRANSFERS || map.contains_key(&key) {
                return Err(Refusal::Busy);
            }
            let outstanding: u64 = map
                .values()
                .map(|e| e.state.size.saturating_sub(e.state.progress.borrow().transferred))
                .fold(0, u64::saturating_add);
            map.insert(
                key,
                Incoming {
                    state: state.clone(),
                    part: None,
                    file: None,
                    received: 0,
                    active: true,
                    interruptions: 0,
                },
            );
            outstanding
        };
        let dir = self.settings.directory.clone();
        let name = store::part_name(state.peer, state.id);
        let need = state.size.saturating_add(outstanding);
        let created = tokio::task::spawn_blocking(move || create_part(&dir, &name, need)).await;
        match created {
            Ok(Ok((part, file))) => {
                if let Some(entry) = self.incoming().get_mut(&key) {
                    entry.part = Some(part);
                }
                Ok(tokio::fs::File::from_std(file))
            }
            Ok(Err(e)) => {
                tracing::warn!("cannot store a resource: {e}");
                self.incoming().remove(&key);
                Err(Refusal::Unavailable)
            }
            Err(_) => {
                self.incoming().remove(&key);
                Err(Refusal::Unavailable)
            }
        }
    }

    /// Counts `size` more bytes against `peer`'s quota; false (and nothing counted) if that exceeds it.
    fn take_quota(&self, peer: PeerId, size: u64) -> bool {
        let mut quota = self.quota.lock().unwrap_or_else(PoisonError::into_inner);
        let used = quota.entry(peer).or_insert(0);
        match used.checked_add(size) {
            Some(total) if total <= self.settings.max_bytes_per_peer => {
                *used = total;
                true
            }
            _ => false,
        }
    }

    /// Gives `size` bytes of a transfer that delivered nothing back to `peer`'s quota.
    fn give_back(&self, peer: PeerId, size: u64) {
        let mut quota = self.quota.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(used) = quota.get_mut(&peer) {
            *used = used.saturating_sub(size);
        }
    }

    /// Forgets a transfer that failed: its entry, its part file (if still ours) and its share of the quota.
    async fn discard(&self, key: (PeerId, ResourceId), size: u64) {
        let entry = self.incoming().remove(&key);
        self.release(key.0, size, entry).await;
    }

    /// Gives the quota of a removed entry back and removes its part file (if still ours).
    async fn release(&self, peer: PeerId, size: u64, entry: Option<Incoming>) {
        self.give_back(peer, size);
        if let Some(Incoming {
            part: Some(part), file, ..
        }) = entry
        {
            drop(file);
            let _ = tokio::task::spawn_blocking(move || part.remove()).await;
        }
    }

    async fn receive(
        self: Arc<Self>,
        state: Arc<TransferState>,
        mut file: tokio::fs::File,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        buffered: BytesMut,
        offset: u64,
    ) {
        let key = (state.peer, state.id);
        let Some(part) = self.incoming().get(&key).and_then(|e| e.part.clone()) else {
            return;
        };
        let mut received = offset;
        let mut attempt = Attempt {
            state: &state,
            part: &part,
            file: &mut file,
            settings: &self.settings,
        };
        let result = attempt.run(send, recv, buffered, &mut received).await;
        match result {
            Err(Stop::Interrupted) if !self.is_closed() => self.interrupted(key, received, file),
            Err(stop) => {
                let error = match stop {
                    Stop::Failed(e) => e,
                    Stop::Interrupted => ResourceError::SessionClosed,
                };
                if matches!(error, ResourceError::Cancelled) {
                    self.remember(key, state.size, None);
                }
                drop(file);
                self.discard(key, state.size).await;
                self.finished(&state, Err(error)).await;
            }
            Ok(mut delivered) => {
                delivered.resumed_from = offset;
                self.remember(key, delivered.size, Some(delivered.sha256));
                self.incoming().remove(&key);
                self.finished(&state, Ok(delivered)).await;
            }
        }
    }

    async fn finished(&self, state: &Arc<TransferState>, outcome: Result<Delivered, ResourceError>) {
        let result = match &outcome {
            Ok(d) => d.path.clone().ok_or(ResourceError::Protocol("no path")),
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = &result {
            tracing::debug!(peer = %state.peer.short(), name = %state.name, "resource not received: {e}");
        }
        if state.finish(outcome) {
            let transfer = ResourceTransfer::new(state.clone());
            self.host.report(Report::Finished { transfer, result }).await;
        }
    }

    /// The connection dropped mid-transfer: keep the partial file, open, for the resume window.
    fn interrupted(self: Arc<Self>, key: (PeerId, ResourceId), received: u64, file: tokio::fs::File) {
        let (state, generation) = {
            let mut map = self.incoming();
            let Some(entry) = map.get_mut(&key) else { return };
            entry.active = false;
            entry.received = received;
            entry.file = Some(file);
            entry.interruptions += 1;
            (entry.state.clone(), entry.interruptions)
        };
        state.report(received, 0.0);
        tracing::debug!(peer = %key.0.short(), name = %state.name, received, "resource interrupted; keeping it to resume");
        let window = self.settings.resume_window;
        tokio::spawn(async move {
            let mut cancel = state.cancelled();
            let cancelled = tokio::select! {
                _ = tokio::time::sleep(window) => false,
                _ = cancel.wait_for(|c| *c) => true,
            };
            let expired = {
                let mut map = self.incoming();
                match map.get(&key) {
                    Some(e) if !e.active && e.interruptions == generation => map.remove(&key),
                    _ => None,
                }
            };
            if let Some(entry) = expired {
                if cancelled {
                    self.remember(key, state.size, None);
                }
                self.release(key.0, state.size, Some(entry)).await;
                let error = if cancelled {
                    ResourceError::Cancelled
                } else {
                    ResourceError::Interrupted
                };
                self.finished(&state, Err(error)).await;
            }
        });
    }
}

/// Answers the re-offer of a transfer we already completed: "send from the end", then the verdict on the
/// digest that follows.
async fn confirm_completed(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    size: u64,
    sha256: [u8; DIGEST_LEN],
) {
    let exchange = async {
        send.write_all(&encode_reply(Reply::Accept { offset: size }))
            .await
            .ok()?;
        let mut digest = Vec::with_capacity(DIGEST_LEN);
        while digest.len() < DIGEST_LEN {
            let chunk = recv.read_chunk(DIGEST_LEN - digest.len(), true).await.ok()??;
            digest.extend_from_slice(&chunk.bytes);
        }
        let verdict = if digest == sha256 {
            Verdict::Verified
        } else {
            Verdict::DigestMismatch
        };
        send.write_all(&[verdict.to_byte()]).await.ok()?;
        send.finish().ok()?;
        send.stopped().await.ok()
    };
    if tokio::time::timeout(OFFER_TIMEOUT, exchange).await.is_err() {
        let _ = recv.stop(VarInt::from_u32(RESOURCE_PROTOCOL_ERROR));
    }
}

/// Data received into the part file: the digest of its content, and the one the sender sent.
struct Received {
    sha256: [u8; DIGEST_LEN],
    digest: Vec<u8>,
}

/// Most chunks taken from the stream at once.
const READ_CHUNKS: usize = 32;

/// One attempt at receiving a transfer (the first, or a resumption) into its open part file.
struct Attempt<'a> {
    state: &'a TransferState,
    part: &'a PartFile,
    file: &'a mut tokio::fs::File,
    settings: &'a ResourceSettings,
}

/// Stops both directions of a stream that broke the protocol.
fn protocol(recv: &mut quinn::RecvStream, send: &mut quinn::SendStream, what: &'static str) -> Stop {
    let _ = recv.stop(VarInt::from_u32(RESOURCE_PROTOCOL_ERROR));
    let _ = send.reset(VarInt::from_u32(RESOURCE_PROTOCOL_ERROR));
    Stop::Failed(ResourceError::Protocol(what))
}

impl Attempt<'_> {
    /// Receives the data from `*received` on, checks the digest and saves the file.
    async fn run(
        &mut self,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        buffered: BytesMut,
        received: &mut u64,
    ) -> Result<Delivered, Stop> {
        self.file.set_len(*received).await?;
        // Answer first: hashing a large prefix from a slow disk may take a while, and QUIC flow control holds
        // the sender's data meanwhile.
        if let Err(e) = send.write_all(&encode_reply(Reply::Accept { offset: *received })).await {
            return Err(write_stop(e));
        }
        // The prefix is hashed and the data written on a blocking task, through a second handle of the open part
        // file (never opened by name).
        let handle = self.file.try_clone().await?.into_std().await;
        let writer = Writer::spawn(handle, *received);
        let written = self.read_data(&mut send, &mut recv, buffered, received, writer).await?;
        if *received != self.state.size || written.digest.len() != DIGEST_LEN {
            return Err(protocol(&mut recv, &mut send, "stream ended early"));
        }
        if written.sha256[..] != written.digest[..] {
            let _ = send.write_all(&[Verdict::DigestMismatch.to_byte()]).await;
            let _ = send.finish();
            return Err(ResourceError::IntegrityCheckFailed.into());
        }
        self.file.sync_data().await?;
        let path = match self.save().await {
            Ok(path) => path,
            Err(e) => {
                let _ = send.write_all(&[Verdict::Failed.to_byte()]).await;
                let _ = send.finish();
                return Err(e.into());
            }
        };
        let _ = send.write_all(&[Verdict::Verified.to_byte()]).await;
        let _ = send.finish();
        // Report it only once the sender has the verdict, so an app that exits right after cannot cut it off.
        let _ = tokio::time::timeout(VERDICT_ACK_TIMEOUT, send.stopped()).await;
        Ok(Delivered {
            size: self.state.size,
            sha256: written.sha256,
            path: Some(path),
            resumed_from: 0,
        })
    }

    /// Hands the stream's data to `writer` until the stream ends; then the digest of what the writer wrote
    /// (`*received` is updated to its length) and what followed the data: the sender's digest. Interrupted, it
    /// keeps what arrived.
    async fn read_data(
        &mut self,
        send: &mut quinn::SendStream,
        recv: &mut quinn::RecvStream,
        buffered: BytesMut,
        received: &mut u64,
        mut writer: Writer,
    ) -> Result<Received, Stop> {
        let state = self.state;
        let mut cancel = state.cancelled();
        let mut split = Splitter::new(state.size - *received);
        split.take(&buffered).map_err(|what| protocol(recv, send, what))?;
        let from = *received;
        let rate = Rate::new(from);
        state.report(from, 0.0);
        let mut chunks: [Bytes; READ_CHUNKS] = Default::default();
        let flushed = async {
            let streamed = async {
                loop {
                    while let Some(chunk) = split.chunk(false) {
                        writer.write(chunk).await?;
                    }
                    let n = match recv.read_chunks(&mut chunks).await {
                        Ok(Some(n)) => n,
                        Ok(None) => return Ok(()),
                        Err(e) => return Err(read_stop(e)),
                    };
                    for chunk in chunks.iter_mut().take(n) {
                        let chunk = std::mem::take(chunk);
                        if let Err(what) = split.take(&chunk) {
                            return Err(protocol(recv, send, what));
                        }
                    }
                    // Everything taken is written, even when interrupted.
                    let got = from + split.taken();
                    state.report(got, rate.at(got));
                }
            };
            let interrupted = match streamed.await {
                Ok(()) => false,
                // Keep what arrived, for the resumption.
                Err(Stop::Interrupted) => true,
                Err(stop) => return Err(stop),
            };
            while let Some(chunk) = split.chunk(true) {
                writer.write(chunk).await?;
            }
            Ok::<_, Stop>((writer.finish().await?, interrupted))
        };
        let (written, interrupted) = tokio::select! {
            written = flushed => written?,
            _ = cancel.wait_for(|c| *c) => {
                let _ = recv.stop(VarInt::from_u32(RESOURCE_CANCELLED));
                let _ = send.reset(VarInt::from_u32(RESOURCE_CANCELLED));
                return Err(ResourceError::Cancelled.into());
            }
        };
        *received = written.len;
        if interrupted {
            return Err(Stop::Interrupted);
        }
        Ok(Received {
            sha256: written.sha256,
            digest: split.digest().to_vec(),
        })
    }

    /// Gives the verified part file its final name.
    async fn save(&self) -> Result<std::path::PathBuf, ResourceError> {
        let name = sanitize(&self.state.name);
        let (part, dir, overwrite) = (
            self.part.clone(),
            self.settings.directory.clone(),
            self.settings.overwrite,
        );
        let placed = tokio::task::spawn_blocking(move || store::place(&part, &dir, &name, overwrite))
            .await
            .map_err(|_| ResourceError::SessionClosed)?;
        placed.map_err(|e| match e {
            PlaceError::Replaced => {
                tracing::warn!(name = %self.state.name, "the partial file was replaced on disk; not saving it");
                ResourceError::PartialFileReplaced
            }
            PlaceError::Io(e) => e.into(),
            e @ PlaceError::NoFreeName => std::io::Error::new(std::io::ErrorKind::AlreadyExists, e).into(),
        })
    }
}
