// Tests of the Swift package: real sessions in one process, over loopback, on an in-process network.
import CryptoKit
import Foundation
import Multipeer
import XCTest

final class MultipeerTests: XCTestCase {
    func testTwoSessionsExchangeMessagesAndAStream() async throws {
        let network = InProcessNetwork()
        let a = try MultipeerSession(config: config("alice"), network: network)
        let b = try MultipeerSession(config: config("bob"), network: network)
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
        let a = try MultipeerSession(config: alice, network: network)
        let b = try MultipeerSession(config: bob, network: network)
        let aIn = Inbox(a.events)
        let bIn = Inbox(b.events)
        let bobPeer = try await aIn.expect("bob added") { $0.addedPeer }
        _ = try await bIn.expect("alice added") { $0.addedPeer }
        let code = try a.verificationCode(for: bobPeer.id)
        XCTAssertNotNil(code)
        XCTAssertEqual(code, try b.verificationCode(for: a.localPeer.id))

        let c = try MultipeerSession(config: carol, network: network)
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
        let a = try MultipeerSession(config: config("alice"), network: network)
        let b = try MultipeerSession(config: config("bob"), network: network)
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

    func testInvalidConfigThrowsInvalidConfig() {
        let invalid = SessionConfig(serviceType: "Not A Service!", displayName: "x", discoveryInfo: [:])
        XCTAssertThrowsError(try MultipeerSession(config: invalid, network: InProcessNetwork())) { error in
            guard let error = error as? MultipeerError, case let .InvalidConfig(detail) = error else {
                return XCTFail("expected MultipeerError.InvalidConfig, got \(error)")
            }
            XCTAssertFalse(detail.isEmpty)
        }
    }

    func testSendAfterShutdownThrowsSessionClosed() async throws {
        let session = try MultipeerSession(config: config("carol"), network: InProcessNetwork())
        try await session.shutdown()
        do {
            try await session.send(Data("too late".utf8))
            XCTFail("send after shutdown must throw")
        } catch MultipeerError.SessionClosed {
            // Expected.
        }
    }

    func testEventsFinishAfterShutdown() async throws {
        let session = try MultipeerSession(config: config("dave"), network: InProcessNetwork())
        try await session.shutdown()
        for await event in session.events {
            XCTFail("no event expected from a lone session, got \(event)")
        }
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
        let a = try MultipeerSession(config: config("sender"), network: network)
        var receiverConfig = config("receiver")
        receiverConfig.resourceDirectory = directory.path
        receiverConfig.resourceAcceptance = .manual
        let b = try MultipeerSession(config: receiverConfig, network: network)
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
        let a = try MultipeerSession(config: alice, network: network)
        let b = try MultipeerSession(config: bob, network: network)
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
        let a = try MultipeerSession(config: config("alice"), network: network)
        let b = try MultipeerSession(config: config("bob"), network: network)
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
        let session = try MultipeerSession(config: withIdentity, network: InProcessNetwork())
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
}

/// Collects a session's events as they come so that tests can wait for one with a timeout. `tap` sees each
/// event first, as it arrives (for example to answer offers the way an app would).
private final class Inbox: @unchecked Sendable {
    private let lock = NSLock()
    private var pending: [SessionEvent] = []
    private var task: Task<Void, Never>?

    init(_ events: AsyncStream<SessionEvent>, tap: @escaping @Sendable (SessionEvent) -> Void = { _ in }) {
        task = Task { [weak self] in
            for await event in events {
                tap(event)
                self?.push(event)
            }
        }
    }

    deinit {
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

    private func push(_ event: SessionEvent) {
        lock.lock()
        pending.append(event)
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
