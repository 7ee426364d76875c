// Tests of the Swift package: real sessions in one process, over loopback, on an in-process network.
import CryptoKit
import Foundation
import Multipeer
import XCTest

final class MultipeerTests: XCTestCase {
    func testTwoSessionsExchangeMessagesAndAStream() async throws {
        let network = InProcessNetwork()
        let a = try await MultipeerSession.start(config: config("alice"), network: network)
        let b = try await MultipeerSession.start(config: config("bob"), network: network)
        let aIn = Inbox(a.events)
        let bIn = Inbox(b.events)

        let bob = try await aIn.expect("bob added") { $0.addedPeer }
        let alice = try await bIn.expect("alice added") { $0.addedPeer }
        XCTAssertEqual(bob.displayName, "bob")
        XCTAssertEqual(bob.id, b.localPeer.id)
        XCTAssertEqual(alice.discoveryInfo["room"], "swift")
        XCTAssertEqual(a.peers.map(\.id), [bob.id])

        try await a.send(Data("hello bob".utf8), to: [bob.id])
        let toBob = try await bIn.expect("message to bob") { $0.message }
        XCTAssertEqual(toBob.data, Data("hello bob".utf8))
        XCTAssertEqual(toBob.peer, alice.id)
        XCTAssertTrue(toBob.reliable)

        try await b.send(Data("hello everyone".utf8))
        let toAlice = try await aIn.expect("message to alice") { $0.message }
        XCTAssertEqual(toAlice.data, Data("hello everyone".utf8))

        try await b.send(Data("datagram".utf8), reliable: false)
        let datagram = try await aIn.expect("datagram") { $0.message }
        XCTAssertFalse(datagram.reliable)
        XCTAssertEqual(datagram.data, Data("datagram".utf8))

        let payload = Data((0 ..< (1 << 20)).map { UInt8($0 % 251) })
        let stream = try await a.openStream(named: "photo.jpg", to: bob.id)
        try await stream.write(data: payload.prefix(500_000))
        try await stream.write(data: payload.dropFirst(500_000))
        try await stream.finish()
        var received = Data()
        let end = try await bIn.expect("stream end") { (event: SessionEvent) -> StreamEnd? in
            switch event {
            case let .streamData(peer, name, data):
                XCTAssertEqual(peer, alice.id)
                XCTAssertEqual(name, "photo.jpg")
                received.append(data)
                return nil
            case let .streamFinished(_, name, error):
                return StreamEnd(name: name, error: error)
            default:
                return nil
            }
        }
        XCTAssertEqual(end.name, "photo.jpg")
        XCTAssertNil(end.error)
        XCTAssertEqual(received, payload)

        try await a.shutdown()
        let removed = try await bIn.expect("alice removed") { $0.removal }
        XCTAssertEqual(removed.peer.id, alice.id)
        XCTAssertEqual(removed.reason, "left")
        try await b.shutdown()
    }

    func testPassphrasesAdmitAndRefuseAndBothEndsShowOnePairingCode() async throws {
        let network = InProcessNetwork()
        var alice = config("alice")
        alice.passphrase = "482913"
        var bob = config("bob")
        bob.passphrase = "482913"
        var carol = config("carol")
        carol.passphrase = "000000"
        let a = try await MultipeerSession.start(config: alice, network: network)
        let b = try await MultipeerSession.start(config: bob, network: network)
        let aIn = Inbox(a.events)
        let bIn = Inbox(b.events)
        let bobPeer = try await aIn.expect("bob added") { $0.addedPeer }
        _ = try await bIn.expect("alice added") { $0.addedPeer }
        let code = try a.verificationCode(for: bobPeer.id)
        XCTAssertNotNil(code)
        XCTAssertEqual(code, try b.verificationCode(for: a.localPeer.id))

        let c = try await MultipeerSession.start(config: carol, network: network)
        let cIn = Inbox(c.events)
        let reason = try await cIn.expect("carol refused") { (event: SessionEvent) -> String? in
            if case .peerAdded = event { XCTFail("carol joined with a wrong passphrase") }
            if case let .connectionFailed(_, reason) = event { return reason }
            return nil
        }
        XCTAssertEqual(reason, "wrong passphrase")
        try await a.shutdown()
        try await b.shutdown()
        try await c.shutdown()
    }

    func testPeersAreFoundAndLost() async throws {
        let network = InProcessNetwork()
        let a = try await MultipeerSession.start(config: config("alice"), network: network)
        let b = try await MultipeerSession.start(config: config("bob"), network: network)
        let aIn = Inbox(a.events)
        let found = try await aIn.expect("bob found") { $0.foundPeer }
        XCTAssertEqual(found.id, b.localPeer.id)
        XCTAssertEqual(found.displayName, "bob")
        XCTAssertEqual(found.discoveryInfo["room"], "swift")
        XCTAssertEqual(a.nearby.map(\.id), [found.id])
        try await b.shutdown()
        let lost = try await aIn.expect("bob lost") { $0.lostPeer }
        XCTAssertEqual(lost.id, found.id)
        XCTAssertTrue(a.nearby.isEmpty)
        try await a.shutdown()
    }

    func testInvalidConfigThrowsInvalidConfig() async {
        let invalid = SessionConfig(serviceType: "Not A Service!", displayName: "x", discoveryInfo: [:])
        XCTAssertThrowsError(try MultipeerSession(config: invalid, network: InProcessNetwork())) { error in
            guard let error = error as? MultipeerError, case let .InvalidConfig(detail) = error else {
                return XCTFail("expected MultipeerError.InvalidConfig, got \(error)")
            }
            XCTAssertFalse(detail.isEmpty)
        }
        do {
            _ = try await MultipeerSession.start(config: invalid, network: InProcessNetwork())
            XCTFail("starting with an invalid config must throw")
        } catch MultipeerError.InvalidConfig {
            // Expected.
        } catch {
            XCTFail("expected MultipeerError.InvalidConfig, got \(error)")
        }
    }

    func testSendAfterShutdownThrowsSessionClosed() async throws {
        let session = try await MultipeerSession.start(config: config("carol"), network: InProcessNetwork())
        try await session.shutdown()
        do {
            try await session.send(Data("too late".utf8))
            XCTFail("send after shutdown must throw")
        } catch MultipeerError.SessionClosed {
            // Expected.
        }
    }

    func testTwoConsumersBothSeeEveryEvent() async throws {
        let network = InProcessNetwork()
        let a = try await MultipeerSession.start(config: config("alice"), network: network)
        // The model changes before the event reaches any stream.
        let first = Inbox(a.events) { event in
            guard case let .peerAdded(peer) = event else { return }
            if #available(iOS 17.0, macOS 14.0, *) {
                XCTAssertTrue(a.model.peers.contains { $0.id == peer.id }, "the model lags behind .peerAdded")
            }
        }
        let second = Inbox(a.events)
        let b = try await MultipeerSession.start(config: config("bob"), network: network)
        let bIn = Inbox(b.events)

        let bobFirst = try await first.expect("bob added (first consumer)") { $0.addedPeer }
        let bobSecond = try await second.expect("bob added (second consumer)") { $0.addedPeer }
        XCTAssertEqual(bobFirst, bobSecond)
        XCTAssertEqual(bobFirst.id, b.localPeer.id)
        _ = try await bIn.expect("alice added") { $0.addedPeer }

        for index in 0 ..< 20 {
            try await b.send(Data("message \(index)".utf8))
        }
        for index in 0 ..< 20 {
            let one = try await first.expect("message \(index) (first consumer)") { $0.message }
            let two = try await second.expect("message \(index) (second consumer)") { $0.message }
            XCTAssertEqual(one.data, Data("message \(index)".utf8))
            XCTAssertEqual(two.data, one.data)
        }

        // Cancelling one consumer's task unregisters that stream only.
        first.cancel()
        try await first.expectFinished("the cancelled stream finishes")
        try await b.send(Data("after".utf8))
        let after = try await second.expect("message after the first consumer left") { $0.message }
        XCTAssertEqual(after.data, Data("after".utf8))

        // A consumer that starts late gets the events from then on.
        let third = Inbox(a.events)
        try await b.send(Data("late".utf8))
        let late = try await third.expect("message to the late consumer") { $0.message }
        XCTAssertEqual(late.data, Data("late".utf8))
        XCTAssertNil(third.seen.first { $0.addedPeer != nil }, "a late consumer gets no earlier event")

        try await b.shutdown()
        _ = try await second.expect("bob removed") { $0.removal }
        if #available(iOS 17.0, macOS 14.0, *) {
            XCTAssertTrue(a.model.peers.isEmpty)
        }
        try await a.shutdown()
    }

    func testSessionEndedArrivesAndEveryStreamFinishesAfterShutdown() async throws {
        let session = try await MultipeerSession.start(config: config("dave"), network: InProcessNetwork())
        // The first stream also gets what happened before it was taken: discovery running.
        let first = Inbox(session.events)
        let second = Inbox(session.events)
        let state = try await first.expect("discovery state") { $0.discoveryState }
        XCTAssertEqual(state, .running)
        XCTAssertEqual(session.discoveryState, .running)
        try await session.shutdown()

        for inbox in [first, second] {
            let reason = try await inbox.expect("session ended") { $0.endReason }
            XCTAssertEqual(reason, "shut down")
            try await inbox.expectFinished("the stream finishes after sessionEnded")
            XCTAssertEqual(inbox.seen.last, .sessionEnded(reason: "shut down"))
            XCTAssertEqual(inbox.seen.filter { $0.endReason != nil }.count, 1)
        }
        if #available(iOS 17.0, macOS 14.0, *) {
            XCTAssertEqual(session.model.endReason, "shut down")
        }

        // A stream taken after the end finishes at once.
        for await event in session.events {
            XCTFail("no event expected after the session ended, got \(event)")
        }
    }

    func testReleasingASessionSaysGoodbyeAndEndsItsStreams() async throws {
        let network = InProcessNetwork()
        var a: MultipeerSession? = try await MultipeerSession.start(config: config("alice"), network: network)
        let b = try await MultipeerSession.start(config: config("bob"), network: network)
        let aIn = Inbox(try XCTUnwrap(a).events)
        let bIn = Inbox(b.events)
        let alice = try await bIn.expect("alice added") { $0.addedPeer }
        _ = try await aIn.expect("bob added") { $0.addedPeer }

        a = nil  // the last reference: the session shuts down, and the release waits for the goodbye
        XCTAssertNil(a)
        let removal = try await bIn.expect("alice removed") { $0.removal }
        XCTAssertEqual(removal.peer.id, alice.id)
        XCTAssertEqual(removal.reason, "left")
        _ = try await aIn.expect("alice's session ended") { $0.endReason }
        try await aIn.expectFinished("alice's stream finishes")
        try await b.shutdown()
    }

    func testLogRecordsReachASink() async throws {
        let records = Records()
        MultipeerLog.install(level: .debug) { records.append($0) }
        defer { MultipeerLog.uninstall() }
        let session = try await MultipeerSession.start(config: config("logger"), network: InProcessNetwork())
        try await session.shutdown()

        let deadline = Date().addingTimeInterval(10)
        while records.all.isEmpty, Date() < deadline {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        let all = records.all
        XCTAssertFalse(all.isEmpty, "no log record reached the sink")
        XCTAssertTrue(all.allSatisfy { $0.target.hasPrefix("multipeer") }, "\(all)")
        XCTAssertFalse(all.contains { $0.level == .trace }, "a record below the level set")

        // The unified log adapter installs and uninstalls without trouble.
        MultipeerLog.install(level: .info, privacy: .public)
        MultipeerLog.install(level: .warn)
    }

    func testAResourceIsDeliveredVerifiedOrRefused() async throws {
        let files = FileManager.default
        let directory = files.temporaryDirectory.appendingPathComponent(UUID().uuidString, isDirectory: true)
        let source = files.temporaryDirectory.appendingPathComponent("\(UUID().uuidString).bin")
        defer {
            try? files.removeItem(at: directory)
            try? files.removeItem(at: source)
        }
        let network = InProcessNetwork()
        let a = try await MultipeerSession.start(config: config("sender"), network: network)
        var receiverConfig = config("receiver")
        receiverConfig.resourceDirectory = directory.path
        receiverConfig.resourceAcceptance = .manual
        let b = try await MultipeerSession.start(config: receiverConfig, network: network)
        let aIn = Inbox(a.events)
        // The receiving app answers each offer from a task of its own, as a UI would once its user decided.
        let bIn = Inbox(b.events) { event in
            guard case let .resourceOffered(offer) = event else { return }
            Task.detached {
                try? await Task.sleep(nanoseconds: 50_000_000)
                do {
                    if offer.name().hasSuffix(".exe") {
                        try offer.decline()
                    } else {
                        try offer.accept()
                    }
                } catch {
                    XCTFail("answering the offer of \(offer.name()) failed: \(error)")
                }
            }
        }
        let receiver = try await aIn.expect("receiver added") { $0.addedPeer }
        _ = try await bIn.expect("sender added") { $0.addedPeer }

        var generator = SystemRandomNumberGenerator()
        let words = (0 ..< (1 << 19)).map { _ in generator.next() as UInt64 }
        let bytes = words.withUnsafeBytes { Data($0) }
        XCTAssertEqual(bytes.count, 4 << 20)
        let sha256 = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        try bytes.write(to: source)

        let sending = try await a.sendResource(at: source, name: "photo.raw", to: receiver.id)
        XCTAssertFalse(sending.isIncoming())
        XCTAssertEqual(sending.size(), UInt64(bytes.count))
        let progressTask = Task { () -> [ResourceProgress] in
            var all: [ResourceProgress] = []
            for await progress in sending.progressUpdates(every: 0.005) {
                all.append(progress)
            }
            return all
        }

        let offer = try await bIn.expect("resource offered") { $0.resourceOffer }
        XCTAssertEqual(offer.name(), "photo.raw")
        XCTAssertEqual(offer.size(), UInt64(bytes.count))
        XCTAssertEqual(offer.peerId(), a.localPeer.id)
        let started = try await bIn.expect("resource started") { $0.startedTransfer }
        XCTAssertTrue(started.isIncoming())
        XCTAssertEqual(started.id(), sending.id())
        XCTAssertEqual(started.name(), "photo.raw")
        XCTAssertEqual(started.peer(), a.localPeer.id)
        let finished = try await bIn.expect("resource finished") { $0.finishedTransfer }
        XCTAssertEqual(finished.transfer, started)
        XCTAssertNil(finished.error)
        let url = try XCTUnwrap(finished.url)
        XCTAssertEqual(try Data(contentsOf: url), bytes)

        let sent = try await sending.finished()
        XCTAssertEqual(sent.sha256, sha256)
        XCTAssertNil(sent.path)
        let progress = await progressTask.value
        XCTAssertEqual(progress.last?.transferred, UInt64(bytes.count))
        XCTAssertEqual(progress.last?.fraction, 1)

        // Declined by the receiving app: the sender gets a typed error.
        let refused = try await a.sendResource(at: source, name: "setup.exe", to: receiver.id)
        do {
            _ = try await refused.finished()
            XCTFail("a declined resource must not be delivered")
        } catch let MultipeerError.ResourceRefused(reason) {
            XCTAssertEqual(reason, .declined)
        }
        try await a.shutdown()
        try await b.shutdown()
    }

    func testManualInvitationsAreDeclinedAndAccepted() async throws {
        let network = InProcessNetwork()
        var alice = config("alice")
        alice.invitationMode = .manual
        var bob = config("bob")
        bob.invitationMode = .manual
        let a = try await MultipeerSession.start(config: alice, network: network)
        let b = try await MultipeerSession.start(config: bob, network: network)
        let aIn = Inbox(a.events)
        let bIn = Inbox(b.events)
        let bobPeer = try await aIn.expect("bob found") { $0.foundPeer }

        // Declined: the inviter gets a typed error and nobody joins.
        let declining = Task { try await a.invite(bobPeer.id, context: Data("first".utf8)) }
        let first = try await bIn.expect("first invitation") { $0.invitation }
        XCTAssertEqual(first.peerId(), a.localPeer.id)
        XCTAssertEqual(first.context(), Data("first".utf8))
        XCTAssertFalse(first.isExpired())
        try first.decline()
        switch await declining.result {
        case .success:
            XCTFail("a declined invitation must not succeed")
        case let .failure(failure):
            guard let error = failure as? MultipeerError, case .InvitationDeclined = error else {
                return XCTFail("expected MultipeerError.InvitationDeclined, got \(failure)")
            }
        }
        XCTAssertTrue(a.peers.isEmpty)
        XCTAssertTrue(b.peers.isEmpty)

        // Accepted: both join.
        let accepting = Task { try await a.invite(bobPeer.id, context: Data("second".utf8)) }
        let second = try await bIn.expect("second invitation") { $0.invitation }
        XCTAssertEqual(second.displayName(), "alice")
        XCTAssertEqual(second.context(), Data("second".utf8))
        try second.accept()
        try await accepting.value
        let alicePeer = try await bIn.expect("alice added") { $0.addedPeer }
        XCTAssertEqual(alicePeer.id, a.localPeer.id)
        _ = try await aIn.expect("bob added") { $0.addedPeer }
        XCTAssertEqual(a.peers.map(\.id), [bobPeer.id])

        // An invitation is answered once.
        XCTAssertThrowsError(try second.accept()) { error in
            guard let error = error as? MultipeerError, case .AnswerExpired = error else {
                return XCTFail("expected MultipeerError.AnswerExpired, got \(error)")
            }
        }
        try await a.shutdown()
        try await b.shutdown()
    }

    func testADuplexStreamCarriesBothWays() async throws {
        let network = InProcessNetwork()
        let a = try await MultipeerSession.start(config: config("alice"), network: network)
        let b = try await MultipeerSession.start(config: config("bob"), network: network)
        let aIn = Inbox(a.events)
        let bIn = Inbox(b.events)
        let bob = try await aIn.expect("bob added") { $0.addedPeer }
        _ = try await bIn.expect("alice added") { $0.addedPeer }

        let ours = try await a.openDuplexStream(named: "tunnel", to: bob.id)
        try await ours.write(data: Data("ping".utf8))
        let theirs = try await bIn.expect("duplex stream") { $0.duplexStream }
        XCTAssertEqual(theirs.name(), "tunnel")
        XCTAssertEqual(theirs.peerId(), a.localPeer.id)
        let ping = try await theirs.read(max: 64)
        XCTAssertEqual(ping, Data("ping".utf8))
        try await theirs.write(data: Data("pong".utf8))

        // `finish()` returns once the other side has read the end: read it meanwhile.
        let aliceReads = Task { () async throws -> (Data, Data) in
            let pong = try await ours.read(max: 64)
            let end = try await ours.read(max: 64)
            return (pong, end)
        }
        try await theirs.finish()
        let (pong, aliceEnd) = try await aliceReads.value
        XCTAssertEqual(pong, Data("pong".utf8))
        XCTAssertTrue(aliceEnd.isEmpty)

        let bobReads = Task { try await theirs.read(max: 64) }
        try await ours.finish()
        let bobEnd = try await bobReads.value
        XCTAssertTrue(bobEnd.isEmpty)
        try await a.shutdown()
        try await b.shutdown()
    }

    func testSavedIdentityKeepsThePeerId() async throws {
        let identity = generateIdentity()
        let id = try identityPeerId(identity: identity)
        XCTAssertEqual(id.count, 64)
        var withIdentity = config("erin")
        withIdentity.identity = identity
        let session = try await MultipeerSession.start(config: withIdentity, network: InProcessNetwork())
        XCTAssertEqual(session.localPeer.id, id)
        try await session.shutdown()
    }
}

// MARK: - Helpers

private func config(_ name: String) -> SessionConfig {
    SessionConfig(serviceType: "swifttest", displayName: name, discoveryInfo: ["room": "swift"])
}

private struct StreamEnd {
    let name: String
    let error: String?
}

private struct Timeout: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}

private extension SessionEvent {
    var foundPeer: NearbyPeerInfo? {
        if case let .peerFound(peer) = self { return peer }
        return nil
    }

    var lostPeer: NearbyPeerInfo? {
        if case let .peerLost(peer) = self { return peer }
        return nil
    }

    var addedPeer: PeerInfo? {
        if case let .peerAdded(peer) = self { return peer }
        return nil
    }

    var removal: (peer: PeerInfo, reason: String)? {
        if case let .peerRemoved(peer, reason) = self { return (peer, reason) }
        return nil
    }

    var message: (peer: String, data: Data, reliable: Bool)? {
        if case let .received(peer, data, reliable) = self { return (peer, data, reliable) }
        return nil
    }

    var invitation: Invitation? {
        if case let .invitationReceived(invitation) = self { return invitation }
        return nil
    }

    var duplexStream: DuplexStream? {
        if case let .duplexStreamReceived(stream) = self { return stream }
        return nil
    }

    var resourceOffer: ResourceOffer? {
        if case let .resourceOffered(offer) = self { return offer }
        return nil
    }

    var startedTransfer: ResourceTransfer? {
        if case let .resourceStarted(transfer) = self { return transfer }
        return nil
    }

    var finishedTransfer: (transfer: ResourceTransfer, url: URL?, error: MultipeerError?)? {
        if case let .resourceFinished(transfer, url, error) = self { return (transfer, url, error) }
        return nil
    }

    var discoveryState: DiscoveryState? {
        if case let .discoveryStateChanged(state) = self { return state }
        return nil
    }

    var endReason: String? {
        if case let .sessionEnded(reason) = self { return reason }
        return nil
    }
}

/// Collects a session's events as they come so that tests can wait for one with a timeout. `tap` sees each
/// event first, as it arrives (for example to answer offers the way an app would).
///
/// `@unchecked Sendable`: `pending`, `seen` and `finished` are only touched with `lock` held; `task` is set once,
/// in `init`.
private final class Inbox: @unchecked Sendable {
    private let lock = NSLock()
    private var pending: [SessionEvent] = []
    private var all: [SessionEvent] = []
    private var finished = false
    private var task: Task<Void, Never>?

    init(_ events: AsyncStream<SessionEvent>, tap: @escaping @Sendable (SessionEvent) -> Void = { _ in }) {
        task = Task { [weak self] in
            for await event in events {
                tap(event)
                self?.push(event)
            }
            self?.finish()
        }
    }

    deinit {
        task?.cancel()
    }

    /// Every event received so far, in order.
    var seen: [SessionEvent] {
        lock.lock()
        defer { lock.unlock() }
        return all
    }

    /// Stops consuming (cancels the iterating task, as an app's view going away would).
    func cancel() {
        task?.cancel()
    }

    /// Skips events until `pick` returns a value for one, and returns that value.
    func expect<T>(
        _ what: String,
        timeout: TimeInterval = 10,
        _ pick: (SessionEvent) -> T?
    ) async throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let found = take(pick) {
                return found
            }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        throw Timeout(what: what)
    }

    /// Waits until the stream has finished.
    func expectFinished(_ what: String, timeout: TimeInterval = 10) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if isFinished {
                return
            }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        throw Timeout(what: what)
    }

    private var isFinished: Bool {
        lock.lock()
        defer { lock.unlock() }
        return finished
    }

    private func push(_ event: SessionEvent) {
        lock.lock()
        pending.append(event)
        all.append(event)
        lock.unlock()
    }

    private func finish() {
        lock.lock()
        finished = true
        lock.unlock()
    }

    private func take<T>(_ pick: (SessionEvent) -> T?) -> T? {
        lock.lock()
        defer { lock.unlock() }
        while !pending.isEmpty {
            if let found = pick(pending.removeFirst()) {
                return found
            }
        }
        return nil
    }
}

/// Log records received by a sink, from the library's logging thread.
///
/// `@unchecked Sendable`: `records` is only touched with `lock` held.
private final class Records: @unchecked Sendable {
    private let lock = NSLock()
    private var records: [LogRecord] = []

    var all: [LogRecord] {
        lock.lock()
        defer { lock.unlock() }
        return records
    }

    func append(_ record: LogRecord) {
        lock.lock()
        records.append(record)
        lock.unlock()
    }
}
