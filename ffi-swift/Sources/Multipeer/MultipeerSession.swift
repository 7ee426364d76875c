import Foundation

// `import Multipeer` is enough to use the generated types too (`SessionConfig`, `PeerInfo`, `MultipeerError`,
// `InProcessNetwork`, `OutgoingStream`, `ForeignDiscovery`, `generateIdentity()`, ...).
@_exported import MultipeerFFI

/// Everything that happens in a session, in order.
public enum SessionEvent: Equatable {
    /// A peer joined.
    case peerAdded(PeerInfo)
    /// A peer left; `reason` says why ("left", "timed out", ...).
    case peerRemoved(PeerInfo, reason: String)
    /// A message arrived from the peer with id `from`; `reliable` is `false` for a datagram.
    case received(from: String, data: Data, reliable: Bool)
    /// A chunk of the named incoming stream `name` from the peer `from` (chunks arrive in order).
    case streamData(from: String, name: String, data: Data)
    /// The named incoming stream ended: `error` is `nil` when the sender finished it cleanly.
    case streamFinished(from: String, name: String, error: String?)
    /// A connection to `peer` failed before it joined.
    case connectionFailed(peer: String, reason: String)
}

#if compiler(>=6)
extension SessionEvent: Sendable {}
#endif

/// A multipeer session: peers on the local network find each other and join one encrypted session of up to
/// eight peers.
///
/// ```swift
/// let config = SessionConfig(serviceType: "chat", displayName: "Alice's iPhone", discoveryInfo: [:])
/// let session = try MultipeerSession(config: config, discovery: BonjourDiscovery())
/// Task {
///     for await event in session.events {
///         if case let .received(from, data, _) = event { await show(from, data) }
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
    public convenience init(config: SessionConfig, bufferSize: Int = MultipeerSession.defaultBufferSize) throws {
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

    private init(bufferSize: Int, start: (SessionDelegate) throws -> Session) throws {
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

    /// The connected peers, ordered by id.
    public var peers: [PeerInfo] {
        session.peers()
    }

    /// A ticket other devices can use to join without discovery (for example shown as a QR code).
    public var ticket: String {
        session.ticket()
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

    /// Opens a named byte stream to the peer with id `peer`; it receives ``SessionEvent/streamData(from:name:data:)``
    /// events and then ``SessionEvent/streamFinished(from:name:error:)``.
    ///
    /// Write with `try await stream.write(data:)` (it waits while the receiver is behind) and end with
    /// `try await stream.finish()`, or abandon it with `stream.cancel()`.
    public func openStream(to peer: String, name: String) async throws -> OutgoingStream {
        try await session.openStream(peer: peer, name: name)
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

    func peerAdded(peer: PeerInfo) throws {
        emit(.peerAdded(peer))
    }

    func peerRemoved(peer: PeerInfo, reason: String) throws {
        emit(.peerRemoved(peer, reason: reason))
    }

    func received(from: String, data: Data, reliable: Bool) throws {
        emit(.received(from: from, data: data, reliable: reliable))
    }

    func streamData(from: String, name: String, data: Data) throws {
        emit(.streamData(from: from, name: name, data: data))
    }

    func streamFinished(from: String, name: String, error: String?) throws {
        emit(.streamFinished(from: from, name: name, error: error))
    }

    func connectionFailed(peer: String, reason: String) throws {
        emit(.connectionFailed(peer: peer, reason: reason))
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
