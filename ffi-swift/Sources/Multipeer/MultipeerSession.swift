import Foundation

// `import Multipeer` is enough to use the generated types too (`SessionConfig`, `PeerInfo`, `MultipeerError`,
// `DiscoveryState`, `InProcessNetwork`, `OutgoingStream`, `DuplexStream`, `Invitation`, `ResourceOffer`,
// `ResourceTransfer`, `ResourceProgress`, `ForeignDiscovery`, `LogLevel`, `LogRecord`, `generateIdentity()`, ...).
@_exported import MultipeerFFI

/// Everything that happens in a session, in order.
///
/// Events are equal when they carry equal values; events carrying an `Invitation`, a `ResourceOffer` or a
/// `DuplexStream` only when they carry the same object.
public enum SessionEvent: Equatable, Sendable {
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
    /// Discovery changed state: `.running`, `.stopped` (not looking for peers), `.permissionDenied` (the app may
    /// not use the local network: peers cannot be found until the user allows it; tickets still work) or
    /// `.failed(reason:)`.
    case discoveryStateChanged(DiscoveryState)
    /// The session ended: `reason` is "shut down" after ``MultipeerSession/shutdown()``, or "released without
    /// shutdown" when the last reference went away. It is the last event: every `events` stream finishes after
    /// it.
    case sessionEnded(reason: String)
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
        case let (.discoveryStateChanged(a), .discoveryStateChanged(b)):
            return a == b
        case let (.sessionEnded(a), .sessionEnded(b)):
            return a == b
        default:
            return false
        }
    }
}

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
/// let session = try await MultipeerSession.start(config: config, discovery: BonjourDiscovery())
/// Task {
///     for await event in session.events {
///         if case let .received(peer, data, _) = event { await show(peer, data) }
///     }
/// }
/// try await session.send(Data("hello".utf8))
/// ```
///
/// ## Starting
///
/// ``start(config:discovery:bufferSize:)`` and its siblings are `async`: binding the socket and starting
/// discovery runs on the session's own threads, so awaiting them from the main actor never blocks the UI. The
/// initializers (``init(config:discovery:bufferSize:)``, ...) do the same work synchronously and block the
/// calling thread meanwhile; keep them off the main thread.
///
/// ## Events: any number of consumers
///
/// Each access to ``events`` returns a new `AsyncStream` registered with the session at that moment; it gets
/// every event from then on, in order, whatever other streams do. Cancelling the task that iterates one stream
/// (or dropping the stream) unregisters that stream only. Events that arrive before the first access to
/// ``events`` are kept for that first stream, so nothing between ``start(config:discovery:bufferSize:)`` and
/// the first `for await` is lost. Every stream ends with ``SessionEvent/sessionEnded(reason:)`` and then
/// finishes; a stream taken after that finishes at once.
///
/// The Rust library calls back on one dedicated thread per session (never the main thread). The `for await` loop
/// runs on whatever executor the iterating task uses: code that touches the UI runs on the main actor (iterate in
/// a `@MainActor` task, for example SwiftUI's `.task { }` modifier).
///
/// ## State for SwiftUI
///
/// ``model`` (iOS 17, macOS 14 and later) is an observable object with ``MultipeerModel/peers``,
/// ``MultipeerModel/nearby``, ``MultipeerModel/discoveryState`` and ``MultipeerModel/endReason``: SwiftUI views
/// that read them update when they change. The model changes before the event that reports the change reaches
/// any ``events`` stream, so a consumer handling `.peerAdded(peer)` already finds `peer` in `model.peers`.
///
/// ## Buffering
///
/// Each stream holds at most `bufferSize` events (1024 by default) that its consumer has not taken yet. When a
/// stream is full, the callback thread waits until its consumer takes an event: nothing is dropped, memory stays
/// bounded, and the wait propagates back to the senders, so the slowest consumer sets the pace. Behind the
/// callback thread the library keeps its own bounded queue; while both are full, further messages and stream
/// data wait in QUIC flow control. The session's network work never waits on the app. So iterate each stream
/// for as long as you keep it and keep the loop quick; move heavy work elsewhere.
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
/// Call ``shutdown()`` when done: the other peers see this peer leave at once, and every ``events`` stream ends
/// with `.sessionEnded(reason: "shut down")`. Releasing the last reference without it shuts the session down
/// too: the goodbye is still sent (the release waits up to about a second for it) and the streams end with
/// ``SessionEvent/sessionEnded(reason:)`` all the same.
public final class MultipeerSession: Sendable {
    /// The default number of events each ``events`` stream holds for its consumer.
    public static let defaultBufferSize = 1024

    private let session: Session
    private let hub: EventHub

    // MARK: Starting

    /// Starts a session that finds peers with the library's built-in mDNS, without blocking the caller.
    ///
    /// The built-in mDNS opens its own multicast socket, which on iOS needs the restricted entitlement
    /// `com.apple.developer.networking.multicast`. Apps that do not have it use ``BonjourDiscovery`` with
    /// ``start(config:discovery:bufferSize:)``.
    ///
    /// - Throws: `MultipeerError.InvalidConfig`, `.InvalidIdentity`, `.Start` or `.Discovery`.
    public static func start(
        config: SessionConfig,
        bufferSize: Int = MultipeerSession.defaultBufferSize
    ) async throws -> MultipeerSession {
        let hub = EventHub(capacity: bufferSize)
        do {
            let session = try await Session.create(config: config, delegate: hub)
            return MultipeerSession(session: session, hub: hub)
        } catch {
            hub.close()
            throw error
        }
    }

    /// Starts a session whose discovery is implemented by the app, for example ``BonjourDiscovery`` (Apple's
    /// Bonjour, no multicast entitlement needed), without blocking the caller.
    ///
    /// - Throws: `MultipeerError.InvalidConfig`, `.InvalidIdentity`, `.Start` or `.Discovery`.
    public static func start(
        config: SessionConfig,
        discovery: ForeignDiscovery,
        bufferSize: Int = MultipeerSession.defaultBufferSize
    ) async throws -> MultipeerSession {
        let hub = EventHub(capacity: bufferSize)
        do {
            let session = try await Session.createWithDiscovery(config: config, delegate: hub, discovery: discovery)
            return MultipeerSession(session: session, hub: hub)
        } catch {
            hub.close()
            throw error
        }
    }

    /// Starts a session that only sees sessions created with the same in-process `network` (tests, demos),
    /// without blocking the caller.
    ///
    /// - Throws: `MultipeerError.InvalidConfig`, `.InvalidIdentity` or `.Start`.
    public static func start(
        config: SessionConfig,
        network: InProcessNetwork,
        bufferSize: Int = MultipeerSession.defaultBufferSize
    ) async throws -> MultipeerSession {
        let hub = EventHub(capacity: bufferSize)
        do {
            let session = try await Session.createInProcess(config: config, delegate: hub, network: network)
            return MultipeerSession(session: session, hub: hub)
        } catch {
            hub.close()
            throw error
        }
    }

    /// Like ``start(config:bufferSize:)``, but blocks the calling thread while the socket binds and discovery
    /// starts. Do not call it on the main thread.
    public convenience init(
        config: SessionConfig,
        bufferSize: Int = MultipeerSession.defaultBufferSize
    ) throws {
        let hub = EventHub(capacity: bufferSize)
        let session: Session
        do {
            session = try Session(config: config, delegate: hub)
        } catch {
            hub.close()
            throw error
        }
        self.init(session: session, hub: hub)
    }

    /// Like ``start(config:discovery:bufferSize:)``, but blocks the calling thread while the socket binds and
    /// discovery starts. Do not call it on the main thread.
    public convenience init(
        config: SessionConfig,
        discovery: ForeignDiscovery,
        bufferSize: Int = MultipeerSession.defaultBufferSize
    ) throws {
        let hub = EventHub(capacity: bufferSize)
        let session: Session
        do {
            session = try Session.withDiscovery(config: config, delegate: hub, discovery: discovery)
        } catch {
            hub.close()
            throw error
        }
        self.init(session: session, hub: hub)
    }

    /// Like ``start(config:network:bufferSize:)``, but blocks the calling thread while the session starts.
    public convenience init(
        config: SessionConfig,
        network: InProcessNetwork,
        bufferSize: Int = MultipeerSession.defaultBufferSize
    ) throws {
        let hub = EventHub(capacity: bufferSize)
        let session: Session
        do {
            session = try Session.inProcess(config: config, delegate: hub, network: network)
        } catch {
            hub.close()
            throw error
        }
        self.init(session: session, hub: hub)
    }

    private init(session: Session, hub: EventHub) {
        self.session = session
        self.hub = hub
        hub.attach(session)
    }

    deinit {
        // Nobody can take a new `events` stream any more: drop what was held for a first one, and let the
        // callback thread run freely, so the native session (released right after this) can end and say goodbye.
        hub.ownerReleased()
    }

    // MARK: Events and state

    /// A new stream of the session's events, from now on, in order (see "Events: any number of consumers"
    /// above). It ends with ``SessionEvent/sessionEnded(reason:)`` and then finishes.
    public var events: AsyncStream<SessionEvent> {
        let subscription = EventSubscription(hub: hub, subscriber: hub.subscribe())
        return AsyncStream(
            unfolding: { await subscription.next() },
            onCancel: { subscription.cancel() }
        )
    }

    /// The session's observable state for SwiftUI: who is connected, who is nearby, how discovery is doing and
    /// whether the session ended. It changes before the event that reports the change is delivered.
    @available(iOS 17.0, macOS 14.0, tvOS 17.0, watchOS 10.0, *)
    public var model: MultipeerModel {
        guard let model = hub.observer as? MultipeerModel else {
            preconditionFailure("the session's model is created on every system that has the Observation framework")
        }
        return model
    }

    /// How discovery is doing, as the last ``SessionEvent/discoveryStateChanged(_:)`` said (`nil` before the
    /// first). The same as `model.discoveryState`, on every system version.
    public var discoveryState: DiscoveryState? {
        hub.snapshot.withLock { $0.discoveryState }
    }

    /// The local peer.
    public var localPeer: PeerInfo {
        session.localPeer()
    }

    /// Peers discovery sees nearby now, in the session or not, ordered by id (read from the library, so it may
    /// be a step ahead of the events delivered so far).
    public var nearby: [NearbyPeerInfo] {
        session.nearby()
    }

    /// The connected peers, ordered by id (read from the library, so it may be a step ahead of the events
    /// delivered so far).
    public var peers: [PeerInfo] {
        session.peers()
    }

    /// A ticket other devices can use to join without discovery (for example shown as a QR code).
    public var ticket: String {
        session.ticket()
    }

    // MARK: Talking to peers

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
    ///   `.DatagramTooLarge`, `.ConnectionLost`, `.NotDelivered`.
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

    // MARK: Membership

    /// Stops advertising, browsing and admitting new peers; connected peers stay (while the session has members
    /// it stays discoverable to them). ``SessionEvent/discoveryStateChanged(_:)`` reports `.stopped` once
    /// discovery is off.
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

    /// Leaves and releases everything: the other peers see this one leave at once, and every ``events`` stream
    /// ends with `.sessionEnded(reason: "shut down")`. Later calls throw `MultipeerError.SessionClosed`.
    public func shutdown() async throws {
        // Only the session's last events remain: let the callback thread deliver them without waiting for room,
        // so `sessionEnded` arrives even while a stream is kept but no longer iterated.
        defer { hub.relax() }
        try await session.shutdown()
    }

    /// A human-readable report of interfaces, discovery and connection attempts, for "nobody found" screens and
    /// bug reports.
    public func diagnostics() async throws -> String {
        try await session.diagnostics()
    }
}
