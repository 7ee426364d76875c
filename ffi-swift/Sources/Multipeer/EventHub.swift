import Foundation
import MultipeerFFI

/// A value behind a lock.
///
/// `@unchecked Sendable`: `value` is only read or written inside ``withLock(_:)``, with `lock` held. (`Mutex`
/// from the Synchronization module does the same but needs iOS 18 and macOS 15; this package supports older
/// systems.)
final class Locked<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// What the session's events said about its peers and discovery so far.
struct SessionSnapshot: Sendable {
    var peers: [PeerInfo] = []
    var nearby: [NearbyPeerInfo] = []
    var discoveryState: DiscoveryState?
    var endReason: String?
}

/// One field of ``SessionSnapshot``.
enum SnapshotField: Sendable {
    case peers, nearby, discoveryState, endReason
}

/// Told of every change of the snapshot, and makes it: ``MultipeerModel`` wraps each change in its Observation
/// registrar so that observers (SwiftUI) hear of it.
protocol SnapshotObserver: AnyObject, Sendable {
    func change(_ field: SnapshotField, _ apply: () -> Void)
}

/// The events not yet taken by one consumer, oldest first. Taken slots are cleared at once, so that an event the
/// consumer has let go of (a `DuplexStream`, an `Invitation`) is released here too.
struct EventQueue {
    private var items: [SessionEvent?] = []
    private var head = 0

    var count: Int { items.count - head }

    mutating func append(_ event: SessionEvent) {
        items.append(event)
    }

    mutating func popFirst() -> SessionEvent? {
        guard head < items.count else { return nil }
        let event = items[head]
        items[head] = nil
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return event
    }
}

/// One consumer's place in the hub: the events it has not taken yet.
///
/// `@unchecked Sendable`: every stored property is only read or written with the hub's `condition` locked.
final class EventSubscriber: @unchecked Sendable {
    var queue = EventQueue()
    /// The consumer waiting for the next event (set only while `queue` is empty).
    var waiter: CheckedContinuation<SessionEvent?, Never>?
    /// No event will be added: the session ended or the consumer went away.
    var finished = false
}

/// One `events` stream's hold on its subscriber: the stream's closures own it, so when the stream is released
/// (iterated to the end, or dropped without being iterated) the subscriber is unregistered.
final class EventSubscription: Sendable {
    private let hub: EventHub
    private let subscriber: EventSubscriber

    init(hub: EventHub, subscriber: EventSubscriber) {
        self.hub = hub
        self.subscriber = subscriber
    }

    deinit {
        hub.cancel(subscriber)
    }

    func next() async -> SessionEvent? {
        await hub.next(for: subscriber)
    }

    func cancel() {
        hub.cancel(subscriber)
    }
}

/// Receives the session's callbacks on the library's delegate thread, keeps the snapshot (and so the observable
/// model) current, and hands each event to every registered consumer.
///
/// Back-pressure: a callback waits while any consumer holds `capacity` events it has not taken, so nothing is
/// dropped and memory stays bounded; the wait reaches the library's own bounded queue and then QUIC flow control.
/// After ``relax()`` (shutdown, or the owning ``MultipeerSession`` gone) callbacks no longer wait, so the
/// session's last events, and `sessionEnded`, always get through.
///
/// Until the first ``subscribe()``, events are held for that first consumer (the subscriber created in `init`),
/// so none is lost between starting the session and the app's first `for await`.
///
/// `@unchecked Sendable`: the library calls the delegate methods on its own thread while consumers take events
/// from any task; all mutable state below is guarded by `condition` (an `NSCondition`, which is also its lock),
/// and the snapshot by its own lock.
final class EventHub: SessionDelegate, @unchecked Sendable {
    /// What the events said; read by ``MultipeerSession`` and ``MultipeerModel``.
    let snapshot: Locked<SessionSnapshot>
    /// The observable model where the Observation framework exists (iOS 17, macOS 14), else `nil`.
    let observer: (any SnapshotObserver)?

    private let capacity: Int
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var subscribers: [EventSubscriber] = []
    private var first: EventSubscriber?
    private var ended = false
    private var relaxed = false
    /// Weak: the session holds the hub (as its delegate) for as long as it runs; a strong reference back would
    /// keep both alive forever.
    private weak var session: Session?

    init(capacity: Int) {
        precondition(capacity > 0, "bufferSize must be at least 1")
        self.capacity = capacity
        let snapshot = Locked(SessionSnapshot())
        self.snapshot = snapshot
        if #available(iOS 17.0, macOS 14.0, tvOS 17.0, watchOS 10.0, *) {
            observer = MultipeerModel(snapshot: snapshot)
        } else {
            observer = nil
        }
        let first = EventSubscriber()
        self.first = first
        subscribers = [first]
    }

    /// The session is running: from now on the peer lists are read from it (the events about nearby peers may be
    /// dropped by the library under a backlog; its own lists are always right).
    func attach(_ session: Session) {
        condition.lock()
        self.session = session
        condition.unlock()
    }

    // MARK: Consumers

    /// Registers a consumer: the first one gets the events held since the start, later ones the events from now.
    func subscribe() -> EventSubscriber {
        condition.lock()
        defer { condition.unlock() }
        if let held = first {
            first = nil
            return held
        }
        let subscriber = EventSubscriber()
        if ended {
            subscriber.finished = true
        } else {
            subscribers.append(subscriber)
        }
        return subscriber
    }

    /// The next event for `subscriber`, waiting for one; `nil` once it is finished.
    func next(for subscriber: EventSubscriber) async -> SessionEvent? {
        await withCheckedContinuation { (continuation: CheckedContinuation<SessionEvent?, Never>) in
            condition.lock()
            if let event = subscriber.queue.popFirst() {
                // A callback may be waiting for room.
                condition.broadcast()
                condition.unlock()
                continuation.resume(returning: event)
            } else if subscriber.finished || subscriber.waiter != nil {
                // Finished; or a second task iterates the same stream at once, which a stream does not support:
                // that iteration ends instead of stealing events.
                condition.unlock()
                continuation.resume(returning: nil)
            } else {
                subscriber.waiter = continuation
                condition.unlock()
            }
        }
    }

    /// Unregisters `subscriber` (its task was cancelled or its stream released) and drops what it held.
    func cancel(_ subscriber: EventSubscriber) {
        condition.lock()
        subscriber.finished = true
        var dropped = EventQueue()
        swap(&dropped, &subscriber.queue)
        subscribers.removeAll { $0 === subscriber }
        if first === subscriber {
            first = nil
        }
        let waiter = subscriber.waiter
        subscriber.waiter = nil
        condition.broadcast()
        condition.unlock()
        // Released only now, outside the lock: releasing an event may release a native object.
        withExtendedLifetime(dropped) {}
        waiter?.resume(returning: nil)
    }

    /// Callbacks stop waiting for room (the session is shutting down: only its last events remain).
    func relax() {
        condition.lock()
        relaxed = true
        condition.broadcast()
        condition.unlock()
    }

    /// The owning ``MultipeerSession`` is gone: nobody can subscribe any more, so the events held for a first
    /// consumer are dropped, and callbacks stop waiting for room.
    func ownerReleased() {
        condition.lock()
        relaxed = true
        let unclaimed = first
        first = nil
        condition.broadcast()
        condition.unlock()
        if let unclaimed {
            cancel(unclaimed)
        }
    }

    /// The session could not start: nothing will be delivered.
    func close() {
        ownerReleased()
    }

    // MARK: Delivery

    private func handle(_ event: SessionEvent) {
        track(event)
        deliver(event)
    }

    /// Hands `event` to every consumer, after waiting for room; `sessionEnded` also finishes them.
    private func deliver(_ event: SessionEvent) {
        var isLast = false
        if case .sessionEnded = event {
            isLast = true
        }
        var wakeUps: [CheckedContinuation<SessionEvent?, Never>] = []
        condition.lock()
        while !relaxed, subscribers.contains(where: { $0.queue.count >= capacity }) {
            condition.wait()
        }
        for subscriber in subscribers {
            if let waiter = subscriber.waiter {
                subscriber.waiter = nil
                wakeUps.append(waiter)
            } else {
                subscriber.queue.append(event)
            }
            if isLast {
                subscriber.finished = true
            }
        }
        if isLast {
            ended = true
            subscribers.removeAll()
        }
        condition.unlock()
        for waiter in wakeUps {
            waiter.resume(returning: event)
        }
    }

    // MARK: Snapshot

    private var currentSession: Session? {
        condition.lock()
        defer { condition.unlock() }
        return session
    }

    /// Brings the snapshot up to date with `event`, before any consumer sees the event.
    private func track(_ event: SessionEvent) {
        switch event {
        case let .peerFound(peer):
            let nearby = currentSession?.nearby()
            update(.nearby, \.nearby) { snapshot in
                if let nearby {
                    return nearby
                }
                var list = snapshot.nearby.filter { $0.id != peer.id }
                list.append(peer)
                return list.sorted { $0.id < $1.id }
            }
        case let .peerLost(peer):
            let nearby = currentSession?.nearby()
            update(.nearby, \.nearby) { snapshot in
                nearby ?? snapshot.nearby.filter { $0.id != peer.id }
            }
        case let .peerAdded(peer):
            let peers = currentSession?.peers()
            update(.peers, \.peers) { snapshot in
                if let peers {
                    return peers
                }
                var list = snapshot.peers.filter { $0.id != peer.id }
                list.append(peer)
                return list.sorted { $0.id < $1.id }
            }
        case let .peerRemoved(peer, _):
            let peers = currentSession?.peers()
            update(.peers, \.peers) { snapshot in
                peers ?? snapshot.peers.filter { $0.id != peer.id }
            }
        case let .discoveryStateChanged(state):
            update(.discoveryState, \.discoveryState) { _ in state }
        case let .sessionEnded(reason):
            update(.peers, \.peers) { _ in [] }
            update(.nearby, \.nearby) { _ in [] }
            update(.endReason, \.endReason) { _ in reason }
        default:
            break
        }
    }

    /// Sets one field of the snapshot to what `compute` returns, through the observer, if it changes. Only the
    /// delegate thread calls it, so nothing changes the field between reading and writing it.
    private func update<Value: Equatable & Sendable>(
        _ field: SnapshotField,
        _ keyPath: WritableKeyPath<SessionSnapshot, Value>,
        _ compute: (SessionSnapshot) -> Value
    ) {
        let (value, changed) = snapshot.withLock { (current: inout SessionSnapshot) -> (Value, Bool) in
            let computed = compute(current)
            return (computed, computed != current[keyPath: keyPath])
        }
        guard changed else { return }
        let apply = { self.snapshot.withLock { $0[keyPath: keyPath] = value } }
        if let observer {
            observer.change(field, apply)
        } else {
            apply()
        }
    }

    // MARK: SessionDelegate (called on the library's delegate thread)

    func peerFound(peer: NearbyPeerInfo) throws {
        handle(.peerFound(peer))
    }

    func peerLost(peer: NearbyPeerInfo) throws {
        handle(.peerLost(peer))
    }

    func invitationReceived(invitation: Invitation) throws {
        handle(.invitationReceived(invitation))
    }

    func peerAdded(peer: PeerInfo) throws {
        handle(.peerAdded(peer))
    }

    func peerRemoved(peer: PeerInfo, reason: String) throws {
        handle(.peerRemoved(peer, reason: reason))
    }

    func received(peer: String, data: Data, reliable: Bool) throws {
        handle(.received(peer: peer, data: data, reliable: reliable))
    }

    func streamData(peer: String, name: String, data: Data) throws {
        handle(.streamData(peer: peer, name: name, data: data))
    }

    func streamFinished(peer: String, name: String, error: String?) throws {
        handle(.streamFinished(peer: peer, name: name, error: error))
    }

    func duplexStreamReceived(stream: DuplexStream) throws {
        handle(.duplexStreamReceived(stream))
    }

    func discoveryStateChanged(state: DiscoveryState) throws {
        handle(.discoveryStateChanged(state))
    }

    func sessionEnded(reason: String) throws {
        handle(.sessionEnded(reason: reason))
    }

    func connectionFailed(peer: String, reason: String) throws {
        handle(.connectionFailed(peer: peer, reason: reason))
    }

    func resourceOffered(offer: ResourceOffer) throws {
        handle(.resourceOffered(offer))
    }

    func resourceStarted(transfer: ResourceTransfer) throws {
        handle(.resourceStarted(transfer))
    }

    func resourceFinished(transfer: ResourceTransfer, path: String?, error: MultipeerError?) throws {
        handle(.resourceFinished(transfer, url: path.map { URL(fileURLWithPath: $0) }, error: error))
    }
}
