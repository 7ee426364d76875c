import Foundation

// `import Multipeer` is enough to use the generated types too (`SessionConfig`, `PeerInfo`, `MultipeerError`,
// `InProcessNetwork`, `OutgoingStream`, `DuplexStream`, `Invitation`, `ResourceOffer`, `ResourceTransfer`,
// `ResourceProgress`, `ForeignDiscovery`, `generateIdentity()`, ...).
@_exported import MultipeerFFI

/// Everything that happens in a session, in order.
///
/// Events are equal when they carry equal values; events carrying an `Invitation`, a `ResourceOffer` or a
/// `DuplexStream` only when they carry the same object.
public enum SessionEvent: Equatable {
    /// Discovery found a peer nearby (or what it announces changed), whether or not it joins.
    case peerFound(NearbyPeerInfo)
    /// A peer found earlier stopped advertising.
    case peerLost(NearbyPeerInfo)
    /// A peer invites us (`SessionConfig.invitationMode` `.manual` only). Keep the invitation while the user
    /// decides, then call `accept()` or `decline()` on it from any thread; `isExpired()` tells when it can no
    /// longer be answered. Releasing it unanswered declines it.
    case invitationReceived(Invitation)
    /// A peer joined.
    case peerAdded(PeerInfo)
    /// A peer left; `reason` says why ("left", "timed out", ...).
    case peerRemoved(PeerInfo, reason: String)
    /// A message arrived from the peer with id `peer`; `reliable` is `false` for a datagram.
    case received(peer: String, data: Data, reliable: Bool)
    /// A chunk of the named incoming stream `name` from the peer `peer` (chunks arrive in order).
    case streamData(peer: String, name: String, data: Data)
    /// The named incoming stream ended: `error` is `nil` when the sender finished it cleanly.
    case streamFinished(peer: String, name: String, error: String?)
    /// A peer opened a two-way named stream with us (``MultipeerSession/openDuplexStream(named:to:)`` on its
    /// side): `try await stream.read(max:)` (empty data once the peer finished), `write(data:)` and `finish()` it
    /// from any task; `cancel()` or releasing it resets it.
    case duplexStreamReceived(DuplexStream)
    /// A connection to `peer` failed before it joined.
    case connectionFailed(peer: String, reason: String)
    /// A peer offers a resource (`SessionConfig.resourceAcceptance` `.manual` only). Keep the offer while the
    /// user decides, then call `accept()` (``resourceStarted(_:)`` follows) or `decline()` on it from any thread.
    /// Releasing it unanswered declines it.
    case resourceOffered(ResourceOffer)
    /// A peer started sending us a resource (a file). Follow the transfer with
    /// ``ResourceTransfer/progressUpdates(every:)`` or `progress()`, or stop it with `cancel()`;
    /// ``resourceFinished(_:url:error:)`` follows.
    case resourceStarted(ResourceTransfer)
    /// A resource from a peer finished: saved complete and verified at `url` (`error` is `nil`), or failed with
    /// `error` (`url` is `nil`), for example `MultipeerError.ResourceCancelledByPeer`.
    case resourceFinished(ResourceTransfer, url: URL?, error: MultipeerError?)
}

extension SessionEvent {
    public static func == (lhs: SessionEvent, rhs: SessionEvent) -> Bool {
        switch (lhs, rhs) {
        case let (.peerFound(a), .peerFound(b)):
            return a == b
        case let (.peerLost(a), .peerLost(b)):
            return a == b
        case let (.invitationReceived(a), .invitationReceived(b)):
            return a === b
        case let (.peerAdded(a), .peerAdded(b)):
            return a == b
        case let (.peerRemoved(a, reasonA), .peerRemoved(b, reasonB)):
            return a == b && reasonA == reasonB
        case let (.received(fromA, dataA, reliableA), .received(fromB, dataB, reliableB)):
            return fromA == fromB && dataA == dataB && reliableA == reliableB
        case let (.streamData(fromA, nameA, dataA), .streamData(fromB, nameB, dataB)):
            return fromA == fromB && nameA == nameB && dataA == dataB
        case let (.streamFinished(fromA, nameA, errorA), .streamFinished(fromB, nameB, errorB)):
            return fromA == fromB && nameA == nameB && errorA == errorB
        case let (.duplexStreamReceived(a), .duplexStreamReceived(b)):
            return a === b
        case let (.connectionFailed(peerA, reasonA), .connectionFailed(peerB, reasonB)):
            return peerA == peerB && reasonA == reasonB
        case let (.resourceOffered(a), .resourceOffered(b)):
            return a === b
        case let (.resourceStarted(a), .resourceStarted(b)):
            return a == b
        case let (.resourceFinished(a, urlA, errorA), .resourceFinished(b, urlB, errorB)):
            return a == b && urlA == urlB && errorA == errorB
        default:
            return false
        }
    }
}

#if compiler(>=6)
extension SessionEvent: Sendable {}
#endif

extension ResourceProgress {
    /// `transferred` as a fraction of `total`, from 0 to 1 (1 for an empty resource).
    public var fraction: Double {
        total == 0 ? 1 : Double(transferred) / Double(total)
    }
}

extension ResourceTransfer {
    /// The transfer's progress, sampled every `interval` seconds while it runs (unchanged values are skipped). The
    /// stream finishes after the final progress once the transfer has finished; `try await finished()` then gives
    /// the outcome.
    ///
    /// ```swift
    /// for await progress in transfer.progressUpdates() {
    ///     await MainActor.run { bar.progress = Float(progress.fraction) }
    /// }
    /// ```
    public func progressUpdates(every interval: TimeInterval = 0.1) -> AsyncStream<ResourceProgress> {
        let nanoseconds = UInt64(max(interval, 0.001) * 1_000_000_000)
        return AsyncStream { continuation in
            let task = Task {
                var last: ResourceProgress?
                while !Task.isCancelled {
                    // Read "finished" first, so that the last progress yielded is the final one.
                    let done = self.isFinished()
                    let now = self.progress()
                    if now != last {
                        continuation.yield(now)
                        last = now
                    }
                    if done {
                        break
                    }
                    try? await Task.sleep(nanoseconds: nanoseconds)
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// A multipeer session: peers on the local network find each other and join one encrypted session of up to
/// eight peers.
///
/// ```swift
/// let config = SessionConfig(serviceType: "chat", displayName: "Alice's iPhone", discoveryInfo: [:])
/// let session = try MultipeerSession(config: config, discovery: BonjourDiscovery())
/// Task {
///     for await event in session.events {
///         if case let .received(peer, data, _) = event { await show(peer, data) }
///     }
/// }
/// try await session.send(Data("hello".utf8))
/// ```
///
/// ## Events and threads
///
/// The Rust library calls back on one dedicated thread per session (never the main thread). Each callback hands
/// its event to ``events`` and returns; the `for await` loop then runs on whatever executor the iterating task
/// uses. Code that touches the UI must run on the main actor: iterate in a `@MainActor` task (for example
/// SwiftUI's `.task { }` modifier) or hop with `await MainActor.run { ... }`.
///
/// ## Buffering
///
/// ``events`` holds at most `bufferSize` events (1024 by default) that have not been taken out of the stream
/// yet. When it is full, the callback thread waits until the app takes an event: nothing is dropped, memory
/// stays bounded, and the wait propagates back to the senders. Behind the callback thread the library keeps its
/// own bounded queue (1024 events); while both are full, further messages and stream data wait in QUIC flow
/// control, so the peers sending them slow down. The session's network work never waits on the app.
///
/// So iterate ``events`` for as long as the session lives and keep the loop quick; move heavy work elsewhere.
/// If the iterating task is cancelled, the stream ends and later events are discarded (the session keeps
/// running). ``events`` supports a single iteration at a time.
///
/// ## Sending files
///
/// ``sendResource(at:name:to:)`` sends a file with progress, cancellation and an integrity check. The receiver
/// takes every resource within its limits (`SessionConfig.maxResourceSize`, `.maxResourceBytesPerPeer`), saves
/// it in `SessionConfig.resourceDirectory` and reports ``SessionEvent/resourceStarted(_:)`` and
/// ``SessionEvent/resourceFinished(_:url:error:)``. With `SessionConfig.resourceAcceptance` set to `.manual`,
/// each offer first arrives as ``SessionEvent/resourceOffered(_:)``, for the app to accept or decline when its
/// user decided (within `SessionConfig.answerTimeoutMs`).
///
/// ## Invitations
///
/// By default every peer found joins. With `SessionConfig.invitationMode` set to `.manual`, nobody joins until
/// the app calls ``invite(_:context:)`` and the other app accepts the ``SessionEvent/invitationReceived(_:)``
/// it gets.
///
/// ## Ending a session
///
/// Call ``shutdown()`` when done: the other peers see this peer leave at once, and ``events`` finishes. Releasing
/// the last reference to the session without it also releases the native session and finishes ``events``.
public final class MultipeerSession: @unchecked Sendable {
    /// The session's events, in order. Iterate it once, for the life of the session; it finishes after
    /// ``shutdown()``.
    public let events: AsyncStream<SessionEvent>

    /// The default capacity of ``events``.
    public static let defaultBufferSize = 1024

    private let session: Session
    private let delegate: EventDelegate

    /// Starts a session that finds peers with the library's built-in mDNS.
    ///
    /// The built-in mDNS opens its own multicast socket, which on iOS needs the restricted entitlement
    /// `com.apple.developer.networking.multicast`. Apps that do not have it use ``BonjourDiscovery`` with
    /// ``init(config:discovery:bufferSize:)``.
    ///
    /// - Throws: `MultipeerError.InvalidConfig`, `.InvalidIdentity`, `.Start` or `.Discovery`.
    public convenience init(
        config: SessionConfig,
        bufferSize: Int = MultipeerSession.defaultBufferSize
    ) throws {
        try self.init(bufferSize: bufferSize) { delegate in
            try Session(config: config, delegate: delegate)
        }
    }

    /// Starts a session whose discovery is implemented by the app, for example ``BonjourDiscovery`` (Apple's
    /// Bonjour, no multicast entitlement needed).
    ///
    /// - Throws: `MultipeerError.InvalidConfig`, `.InvalidIdentity`, `.Start` or `.Discovery`.
    public convenience init(
        config: SessionConfig,
        discovery: ForeignDiscovery,
        bufferSize: Int = MultipeerSession.defaultBufferSize
    ) throws {
        try self.init(bufferSize: bufferSize) { delegate in
            try Session.withDiscovery(config: config, delegate: delegate, discovery: discovery)
        }
    }

    /// Starts a session that only sees sessions created with the same in-process `network` (tests, demos).
    ///
    /// - Throws: `MultipeerError.InvalidConfig`, `.InvalidIdentity` or `.Start`.
    public convenience init(
        config: SessionConfig,
        network: InProcessNetwork,
        bufferSize: Int = MultipeerSession.defaultBufferSize
    ) throws {
        try self.init(bufferSize: bufferSize) { delegate in
            try Session.inProcess(config: config, delegate: delegate, network: network)
        }
    }

    private init(
        bufferSize: Int,
        start: (SessionDelegate) throws -> Session
    ) throws {
        precondition(bufferSize > 0, "bufferSize must be at least 1")
        let delegate = EventDelegate(capacity: bufferSize)
        let reader = EventReader(delegate: delegate)
        self.delegate = delegate
        self.events = AsyncStream(unfolding: { await reader.next() })
        do {
            self.session = try start(delegate)
        } catch {
            delegate.close()
            throw error
        }
    }

    deinit {
        // Wakes the callback thread if it waits for room, so the native session can be released.
        delegate.close()
    }

    /// The local peer.
    public var localPeer: PeerInfo {
        session.localPeer()
    }

    /// Peers discovery sees nearby now, in the session or not, ordered by id.
    public var nearby: [NearbyPeerInfo] {
        session.nearby()
    }

    /// The connected peers, ordered by id.
    public var peers: [PeerInfo] {
        session.peers()
    }

    /// A ticket other devices can use to join without discovery (for example shown as a QR code).
    public var ticket: String {
        session.ticket()
    }

    /// Invites the nearby peer with id `peer` (`NearbyPeerInfo.id`) into this session, with `context` for its app
    /// to judge the invitation by (at most 1024 bytes). Returns once the peer joined. With
    /// `SessionConfig.invitationMode` `.manual` this is the only way peers outside the session are dialed; the
    /// invited app gets ``SessionEvent/invitationReceived(_:)``.
    ///
    /// - Throws: `MultipeerError.InvitationDeclined`, `.InvitationTimedOut`, `.NotNearby`, or why the connection
    ///   failed.
    public func invite(_ peer: String, context: Data? = nil) async throws {
        try await session.invite(peer: peer, context: context)
    }

    /// Sends `data` to the peers whose ids are in `to` (empty: every connected peer).
    ///
    /// - Parameters:
    ///   - data: The message.
    ///   - to: Peer ids (`PeerInfo.id`); empty for everyone.
    ///   - reliable: `true` for an ordered, retransmitted message; `false` for a datagram that may be lost and
    ///     must fit the path.
    /// - Throws: `MultipeerError.SessionClosed`, `.NotConnected`, `.InvalidPeerId`, `.MessageTooLarge`,
    ///   `.DatagramTooLarge`, `.ConnectionLost`.
    public func send(_ data: Data, to: [String] = [], reliable: Bool = true) async throws {
        try await session.send(data: data, to: to, reliable: reliable)
    }

    /// Opens a named byte stream to the peer with id `peer`; it receives ``SessionEvent/streamData(peer:name:data:)``
    /// events and then ``SessionEvent/streamFinished(peer:name:error:)``.
    ///
    /// Write with `try await stream.write(data:)` (it waits while the receiver is behind) and end with
    /// `try await stream.finish()`, or abandon it with `stream.cancel()`.
    public func openStream(named name: String, to peer: String) async throws -> OutgoingStream {
        try await session.openStream(name: name, peer: peer)
    }

    /// Opens a two-way named stream with the peer with id `peer` (for example one forwarded TCP connection); the
    /// peer gets it as ``SessionEvent/duplexStreamReceived(_:)``.
    ///
    /// Read with `try await stream.read(max:)` (empty data once the peer finished its direction), write with
    /// `try await stream.write(data:)` (both wait while the other side is behind), end this direction with
    /// `try await stream.finish()` (it returns once the peer has read the end), or reset both with
    /// `stream.cancel()`.
    public func openDuplexStream(named name: String, to peer: String) async throws -> DuplexStream {
        try await session.openDuplexStream(name: name, peer: peer)
    }

    /// Sends the file at `fileURL` to the peer with id `peer` as a resource called `name` (by default the file's
    /// name; the receiver saves it under a sanitized form of it). Returns once the transfer has started.
    ///
    /// Follow the transfer with ``ResourceTransfer/progressUpdates(every:)``, stop it with `cancel()`, and
    /// `try await transfer.finished()` for the outcome: a `ResourceResult` (size, SHA-256) once the receiver has
    /// saved and verified it, or `MultipeerError.ResourceRefused`, `.ResourceCancelled`,
    /// `.ResourceCancelledByPeer`, `.ResourceInterrupted` or `.ResourceFailed`. A transfer cut off by a lost
    /// connection resumes where it stopped when the peer is back within `SessionConfig.resumeWindowMs`.
    ///
    /// - Throws: `MultipeerError.SessionClosed`, `.NotConnected`, `.InvalidPeerId`, `.InvalidResourceName` or
    ///   `.ResourceFailed` (the file cannot be read).
    public func sendResource(at fileURL: URL, name: String? = nil, to peer: String) async throws -> ResourceTransfer {
        try await session.sendResource(path: fileURL.path, name: name ?? fileURL.lastPathComponent, peer: peer)
    }

    /// A 6-digit code both ends of the connection to `peer` compute alike; show it so users can compare it
    /// out of band. `nil` when `peer` is not connected.
    public func verificationCode(for peer: String) throws -> String? {
        try session.verificationCode(peer: peer)
    }

    /// Stops advertising, browsing and admitting new peers; connected peers stay.
    public func stopLookingForPeers() async throws {
        try await session.stopLookingForPeers()
    }

    /// Looks for peers again after ``stopLookingForPeers()``.
    public func startLookingForPeers() async throws {
        try await session.startLookingForPeers()
    }

    /// Invites the peer a ticket (``ticket`` of another device) describes.
    ///
    /// - Throws: `MultipeerError.InvalidTicket` or `.SessionClosed`.
    public func connectTicket(_ ticket: String) async throws {
        try await session.connectTicket(ticket: ticket)
    }

    /// Expels the peer with id `peer` and keeps it out.
    public func removePeer(_ peer: String) async throws {
        try await session.removePeer(peer: peer)
    }

    /// Lets a peer removed with ``removePeer(_:)`` join again.
    public func allowPeer(_ peer: String) async throws {
        try await session.allowPeer(peer: peer)
    }

    /// Leaves the session (others see it at once); the session stays usable to look for peers again.
    public func disconnect() async throws {
        try await session.disconnect()
    }

    /// Leaves and releases everything; ``events`` finishes. Later calls throw `MultipeerError.SessionClosed`.
    public func shutdown() async throws {
        defer { delegate.close() }
        try await session.shutdown()
    }

    /// A human-readable report of interfaces, discovery and connection attempts, for "nobody found" screens and
    /// bug reports.
    public func diagnostics() async throws -> String {
        try await session.diagnostics()
    }
}

/// Receives the session's callbacks on the library's delegate thread and hands them to the event stream.
///
/// At most `capacity` events are in the stream and not yet taken: `slots` counts the free places. A callback
/// takes a place before it yields (waiting while there is none) and ``EventReader`` gives it back when the app
/// takes the event.
private final class EventDelegate: SessionDelegate, @unchecked Sendable {
    private let continuation: AsyncStream<SessionEvent>.Continuation
    /// The stream the events are yielded into; taken apart by ``EventReader``.
    let stream: AsyncStream<SessionEvent>
    private let slots: DispatchSemaphore
    private let lock = NSLock()
    private var closed = false

    init(capacity: Int) {
        var captured: AsyncStream<SessionEvent>.Continuation?
        // Unbounded here because the semaphore bounds it; a buffering policy would drop events instead.
        stream = AsyncStream(bufferingPolicy: .unbounded) { captured = $0 }
        continuation = captured!
        slots = DispatchSemaphore(value: capacity)
        // The consumer cancelled its iteration (or the stream was finished): stop waiting for room.
        continuation.onTermination = { [weak self] _ in self?.close() }
    }

    /// Takes back a place once the app has taken an event out of the stream.
    func consumed() {
        slots.signal()
    }

    /// Finishes the stream and wakes a callback waiting for room; later events are discarded. Idempotent.
    func close() {
        lock.lock()
        let wasClosed = closed
        closed = true
        lock.unlock()
        guard !wasClosed else { return }
        continuation.finish()
        slots.signal()
    }

    private var isClosed: Bool {
        lock.lock()
        defer { lock.unlock() }
        return closed
    }

    private func emit(_ event: SessionEvent) {
        slots.wait()
        if isClosed {
            // Pass the wake-up on, so that no later callback waits either.
            slots.signal()
            return
        }
        if case .terminated = continuation.yield(event) {
            slots.signal()
        }
    }

    func peerFound(peer: NearbyPeerInfo) throws {
        emit(.peerFound(peer))
    }

    func peerLost(peer: NearbyPeerInfo) throws {
        emit(.peerLost(peer))
    }

    func invitationReceived(invitation: Invitation) throws {
        emit(.invitationReceived(invitation))
    }

    func peerAdded(peer: PeerInfo) throws {
        emit(.peerAdded(peer))
    }

    func peerRemoved(peer: PeerInfo, reason: String) throws {
        emit(.peerRemoved(peer, reason: reason))
    }

    func received(peer: String, data: Data, reliable: Bool) throws {
        emit(.received(peer: peer, data: data, reliable: reliable))
    }

    func streamData(peer: String, name: String, data: Data) throws {
        emit(.streamData(peer: peer, name: name, data: data))
    }

    func streamFinished(peer: String, name: String, error: String?) throws {
        emit(.streamFinished(peer: peer, name: name, error: error))
    }

    func duplexStreamReceived(stream: DuplexStream) throws {
        emit(.duplexStreamReceived(stream))
    }

    func connectionFailed(peer: String, reason: String) throws {
        emit(.connectionFailed(peer: peer, reason: reason))
    }

    func resourceOffered(offer: ResourceOffer) throws {
        emit(.resourceOffered(offer))
    }

    func resourceStarted(transfer: ResourceTransfer) throws {
        emit(.resourceStarted(transfer))
    }

    func resourceFinished(transfer: ResourceTransfer, path: String?, error: MultipeerError?) throws {
        emit(.resourceFinished(transfer, url: path.map { URL(fileURLWithPath: $0) }, error: error))
    }
}

/// Takes events out of the delegate's stream for the public ``MultipeerSession/events`` and gives each taken
/// event's place back. Used by one iteration at a time, like any `AsyncStream`.
private final class EventReader: @unchecked Sendable {
    private let delegate: EventDelegate
    private var iterator: AsyncStream<SessionEvent>.AsyncIterator

    init(delegate: EventDelegate) {
        self.delegate = delegate
        self.iterator = delegate.stream.makeAsyncIterator()
    }

    func next() async -> SessionEvent? {
        guard let event = await iterator.next() else { return nil }
        delegate.consumed()
        return event
    }
}
