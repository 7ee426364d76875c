import Foundation
import MultipeerFFI
import Network
import dnssd
import os

/// Peer discovery on Apple's own Bonjour (mDNSResponder), for
/// ``MultipeerSession/start(config:discovery:bufferSize:)``.
///
/// The library's built-in mDNS opens its own multicast socket, which on iOS needs the restricted entitlement
/// `com.apple.developer.networking.multicast`. Apple's Bonjour APIs need no entitlement, so on Apple platforms
/// discovery is best done here while the encrypted QUIC session stays in Rust:
///
/// ```swift
/// let session = try await MultipeerSession.start(config: config, discovery: BonjourDiscovery())
/// ```
///
/// The app's Info.plist must list the service in `NSBonjourServices` (`_<serviceType>._udp`, for example
/// `_chat._udp`) and explain local network use in `NSLocalNetworkUsageDescription`; without them iOS finds
/// nothing. Browsing triggers the local network permission prompt.
///
/// ## How it works
///
/// - **Advertising**: `DNSServiceRegister` (dns_sd) publishes the instance name, the port of the session's QUIC
///   socket and the TXT record the session asks for. `NWListener` cannot advertise here: it can only advertise a
///   port it listens on itself, and the QUIC socket belongs to the Rust library.
/// - **Browsing**: `NWBrowser` with `.bonjourWithTXTRecord` lists the service instances (our own is skipped).
/// - **Resolving**: `NWBrowser` gives names, not addresses, so each instance is resolved with `DNSServiceResolve`
///   (port and TXT record) and `DNSServiceGetAddrInfo` (its IPv4 and IPv6 addresses; link-local IPv6 addresses
///   carry their interface index as `%scope`). Both stay open while the instance is listed, so a changed port, TXT
///   record or address is reported again. Nothing is sent to the peer itself.
/// - **Reporting**: every resolved instance goes to `DiscoverySink.peerFound(record:)`, where the Rust library
///   validates it (records it refuses are logged and skipped); an instance that disappears is reported with
///   `DiscoverySink.peerLost(peerId:)`, using the peer id (TXT `id`) it was reported with.
///
/// ## Discovery state
///
/// The session reports `.running` as soon as ``start(advertisement:sink:)`` returns. After that this discovery
/// tells the session, through `DiscoverySink.stateChanged(state:)`, whenever that changes; the app sees it as
/// ``SessionEvent/discoveryStateChanged(_:)`` (and in ``MultipeerModel/discoveryState``):
///
/// - `.permissionDenied` when the system refuses local network access: the browser or the registration reports
///   `kDNSServiceErr_PolicyDenied` (-65570; `NWBrowser` waits with `NWError.dns(-65570)`). The user allows it in
///   Settings ▸ Privacy & Security ▸ Local Network; browsing and advertising resume by themselves then, and the
///   state goes back to `.running`.
/// - `.failed(reason:)` when browsing or advertising fails or waits for another reason (for example no network);
///   both are retried after 1 s, doubling up to 30 s.
/// - `.running` again once the registration is confirmed and the browser is ready.
///
/// ## Apple peer-to-peer Wi-Fi (AWDL)
///
/// With `includePeerToPeer: true` the service is also advertised, browsed and resolved over Apple's peer-to-peer
/// Wi-Fi (`NWParameters.includePeerToPeer`, `kDNSServiceFlagsIncludeP2P`), which lets two Apple devices find each
/// other without a shared Wi-Fi network. That is only the discovery half: the addresses found on the `awdl0`
/// interface are IPv6 link-local ones, reported with their scope (`fe80::…%<awdl0 index>`), and for the QUIC
/// connection the Rust socket must send to and receive from them. It is bound to every interface (`[::]`,
/// dual-stack), which covers the sending and the scope; but Apple only delivers incoming AWDL traffic to BSD
/// sockets that opt in with a socket option the public SDK does not offer (`SO_RECV_ANYIF`), so connections over
/// AWDL alone may not come up. This option is off by default and has not been tested (it needs two physical Apple
/// devices); on a shared Wi-Fi network it changes nothing.
///
/// Everything runs on one private serial queue: the dns_sd references are scheduled on it and released on it, so
/// no callback runs after its object went away. ``start(advertisement:sink:)`` and ``stop()`` are called by the
/// library (never on that queue) and wait for the queue. A failed registration, browse or resolve is retried after
/// 1 s, doubling up to 30 s. Diagnostics go to the unified log (subsystem `org.multipeer`, category `bonjour`).
///
/// One instance serves one session at a time.
///
/// `@unchecked Sendable`: its only mutable state, `run`, is read and written on `queue` alone.
public final class BonjourDiscovery: ForeignDiscovery, @unchecked Sendable {
    static let log = Logger(subsystem: "org.multipeer", category: "bonjour")

    private let domain: String
    private let includePeerToPeer: Bool
    private let queue = DispatchQueue(label: "org.multipeer.bonjour")
    /// The running advertisement and browse; only touched on `queue`.
    private var run: BonjourRun?

    /// A Bonjour discovery in `domain` (the local link, `local.`, unless told otherwise).
    ///
    /// - Parameter includePeerToPeer: also use Apple's peer-to-peer Wi-Fi (AWDL); see "Apple peer-to-peer Wi-Fi"
    ///   above for what that does and does not give.
    public init(domain: String = "local.", includePeerToPeer: Bool = false) {
        self.domain = domain
        self.includePeerToPeer = includePeerToPeer
    }

    deinit {
        // The library calls stop() before it lets go of a discovery; this is only a safety net.
        if let run {
            queue.async { run.stop() }
        }
    }

    /// Starts advertising `advertisement` and browsing its service type, reporting peers to `sink`.
    ///
    /// Called by the library when the session starts (or looks for peers again).
    ///
    /// - Throws: `MultipeerError.Discovery` when the TXT record cannot be encoded or mDNSResponder refuses the
    ///   registration outright (a refused permission is reported as `.permissionDenied` instead).
    public func start(advertisement: LocalAdvertisement, sink: DiscoverySink) throws {
        dispatchPrecondition(condition: .notOnQueue(queue))
        try queue.sync {
            run?.stop()
            run = nil
            let newRun = BonjourRun(
                advertisement: advertisement,
                sink: sink,
                domain: domain,
                includePeerToPeer: includePeerToPeer,
                queue: queue
            )
            try newRun.start()
            run = newRun
        }
    }

    /// Stops advertising (peers see the service go away) and browsing. Called by the library.
    public func stop() throws {
        dispatchPrecondition(condition: .notOnQueue(queue))
        queue.sync {
            run?.stop()
            run = nil
        }
    }
}

// MARK: - One advertisement and browse

/// One `start` ... `stop` of ``BonjourDiscovery``.
///
/// `@unchecked Sendable`: confined to its queue; every method runs there (the dns_sd and `NWBrowser` callbacks are
/// scheduled on it, and ``BonjourDiscovery`` calls in through `queue.sync`).
private final class BonjourRun: @unchecked Sendable {
    private let advertisement: LocalAdvertisement
    private let sink: DiscoverySink
    private let domain: String
    private let includePeerToPeer: Bool
    private let queue: DispatchQueue
    private var registration: DNSServiceRef?
    private var registerRetryDelay: TimeInterval = DNSSD.firstRetryDelay
    private var browser: NWBrowser?
    private var browseRetryDelay: TimeInterval = DNSSD.firstRetryDelay
    /// The listed instances by instance name.
    private var services: [String: ResolvingService] = [:]
    private var stopped = false

    // What each half reports; together they make the state told to the sink.
    private var registered = false
    private var registrationProblem: DiscoveryState?
    private var browserReady = false
    private var browseProblem: DiscoveryState?
    /// The state last told to the sink. The session itself reports `.running` when `start` returns, so that is
    /// where it begins: only changes are reported.
    private var reportedState: DiscoveryState = .running

    init(
        advertisement: LocalAdvertisement,
        sink: DiscoverySink,
        domain: String,
        includePeerToPeer: Bool,
        queue: DispatchQueue
    ) {
        self.advertisement = advertisement
        self.sink = sink
        self.domain = domain
        self.includePeerToPeer = includePeerToPeer
        self.queue = queue
    }

    func start() throws {
        try register()
        startBrowsing()
    }

    func stop() {
        stopped = true
        browser?.cancel()
        browser = nil
        for service in services.values {
            service.cancel()
        }
        services.removeAll()
        releaseRegistration()
    }

    /// The flags for dns_sd calls: `kDNSServiceFlagsIncludeP2P` when peer-to-peer Wi-Fi is wanted.
    var serviceFlags: DNSServiceFlags {
        includePeerToPeer ? DNSServiceFlags(kDNSServiceFlagsIncludeP2P) : 0
    }

    // MARK: Advertising

    private func register() throws {
        let txt = try DNSSD.txtRecord(advertisement.txt)
        var ref: DNSServiceRef?
        let context = Unmanaged.passUnretained(self).toOpaque()
        let error = txt.withUnsafeBytes { bytes in
            DNSServiceRegister(
                &ref,
                serviceFlags,  // no NoAutoRename: mDNSResponder renames on a name conflict
                0,  // every interface (with IncludeP2P, the peer-to-peer ones too)
                advertisement.instanceName,
                advertisement.serviceType,
                domain,
                nil,  // this host
                advertisement.port.bigEndian,
                UInt16(bytes.count),
                bytes.baseAddress,
                registerReply,
                context
            )
        }
        if let scheduled = DNSSD.schedule(ref, error, on: queue) {
            registration = scheduled
            return
        }
        if error == DNSSD.policyDenied {
            // Not a reason to fail the session: tickets still work, and access may be allowed later.
            registrationFailed(error)
            return
        }
        throw MultipeerError.Discovery(detail: "Bonjour registration failed (dns_sd error \(error))")
    }

    /// The registration's answer (on the queue): registered under `name`, or failed.
    fileprivate func registrationReplied(errorCode: DNSServiceErrorType, name: String) {
        guard !stopped else { return }
        if errorCode == DNSSD.noError {
            // The name may differ from the one asked for: mDNSResponder renames on a conflict.
            BonjourDiscovery.log.info("advertising as \(name)")
            registered = true
            registrationProblem = nil
            registerRetryDelay = DNSSD.firstRetryDelay
            reportState()
        } else {
            registrationFailed(errorCode)
        }
    }

    /// Records why advertising stopped, tells the sink, and registers again later.
    private func registrationFailed(_ errorCode: DNSServiceErrorType) {
        releaseRegistration()
        registered = false
        if errorCode == DNSSD.policyDenied {
            BonjourDiscovery.log.error("advertising refused: local network access is not allowed")
            registrationProblem = .permissionDenied
        } else {
            BonjourDiscovery.log.error("advertising failed: dns_sd error \(errorCode)")
            registrationProblem = .failed(reason: "Bonjour advertising failed (dns_sd error \(errorCode))")
        }
        reportState()
        let delay = registerRetryDelay
        registerRetryDelay = DNSSD.nextRetryDelay(after: delay)
        queue.asyncAfter(deadline: .now() + delay) { [weak self] in self?.registerAgain() }
    }

    private func registerAgain() {
        guard !stopped, registration == nil else { return }
        do {
            try register()
        } catch {
            BonjourDiscovery.log.error("advertising again failed: \(String(describing: error), privacy: .public)")
            registrationFailed(DNSServiceErrorType(kDNSServiceErr_Unknown))
        }
    }

    private func releaseRegistration() {
        if let registration {
            // Deregisters: mDNSResponder sends a goodbye, so other peers drop the service at once.
            DNSServiceRefDeallocate(registration)
            self.registration = nil
        }
    }

    // MARK: Browsing

    private func startBrowsing() {
        guard !stopped, browser == nil else { return }
        let parameters = NWParameters()
        parameters.includePeerToPeer = includePeerToPeer
        let browser = NWBrowser(
            for: .bonjourWithTXTRecord(type: advertisement.serviceType, domain: domain),
            using: parameters
        )
        browser.stateUpdateHandler = { [weak self] state in self?.browserStateChanged(state) }
        browser.browseResultsChangedHandler = { [weak self] results, _ in self?.update(results) }
        self.browser = browser
        browser.start(queue: queue)
    }

    private func browserStateChanged(_ state: NWBrowser.State) {
        guard !stopped else { return }
        switch state {
        case .ready:
            browseRetryDelay = DNSSD.firstRetryDelay
            browserReady = true
            browseProblem = nil
        case let .waiting(error):
            browserReady = false
            if DNSSD.isPolicyDenied(error) {
                BonjourDiscovery.log.error("browsing refused: local network access is not allowed")
                browseProblem = .permissionDenied
            } else {
                // For example no network, or NSBonjourServices lacks the service type. NWBrowser goes on by itself.
                BonjourDiscovery.log.warning(
                    "browsing waits: \(String(describing: error), privacy: .public); is \(self.advertisement.serviceType, privacy: .public) listed in NSBonjourServices?"
                )
                browseProblem = .failed(reason: "Bonjour browsing waits: \(error)")
            }
        case let .failed(error):
            BonjourDiscovery.log.error("browsing failed: \(String(describing: error), privacy: .public)")
            browserReady = false
            if DNSSD.isPolicyDenied(error) {
                browseProblem = .permissionDenied
            } else {
                browseProblem = .failed(reason: "Bonjour browsing failed: \(error)")
            }
            browser?.cancel()
            browser = nil
            let delay = browseRetryDelay
            browseRetryDelay = DNSSD.nextRetryDelay(after: delay)
            queue.asyncAfter(deadline: .now() + delay) { [weak self] in self?.startBrowsing() }
        case .setup, .cancelled:
            return
        @unknown default:
            return
        }
        reportState()
    }

    // MARK: State

    /// Tells the sink the state both halves make together, if it changed: permission denied if either was
    /// refused it, else failed if either failed, else running once both are up. While they are still starting,
    /// nothing is said.
    private func reportState() {
        guard !stopped else { return }
        let problems = [registrationProblem, browseProblem].compactMap { $0 }
        let state: DiscoveryState
        if problems.contains(.permissionDenied) {
            state = .permissionDenied
        } else if let problem = problems.first {
            state = problem
        } else if registered, browserReady {
            state = .running
        } else {
            return
        }
        guard state != reportedState else { return }
        reportedState = state
        do {
            try sink.stateChanged(state: state)
        } catch {
            BonjourDiscovery.log.info("cannot report the discovery state: \(String(describing: error), privacy: .public)")
        }
    }

    /// Compares the browser's full result set with the tracked instances.
    private func update(_ results: Set<NWBrowser.Result>) {
        guard !stopped else { return }
        var listed = Set<String>()
        for result in results {
            guard case let .service(name, _, _, _) = result.endpoint else { continue }
            if name == advertisement.instanceName { continue }
            if case let .bonjour(record) = result.metadata,
               let id = DNSSD.peerId(in: record.dictionary), isOwn(id) {
                continue  // ourselves, renamed after a name conflict
            }
            listed.insert(name)
        }
        for (name, service) in services where !listed.contains(name) {
            services[name] = nil
            service.cancel()
            reportLost(service)
        }
        for name in listed where services[name] == nil {
            let service = ResolvingService(
                name: name,
                type: advertisement.serviceType,
                domain: domain,
                flags: serviceFlags,
                queue: queue
            ) { [weak self] in self?.report($0) }
            services[name] = service
            service.start()
        }
    }

    // MARK: Reporting

    private func isOwn(_ peerId: String) -> Bool {
        peerId.caseInsensitiveCompare(advertisement.peerId) == .orderedSame
    }

    /// Reports an instance once it has a port and an address, and again whenever its record changes.
    private func report(_ service: ResolvingService) {
        guard !stopped, let record = service.record, record != service.lastReported else { return }
        let peerId = DNSSD.peerId(in: record.txt)
        if let peerId, isOwn(peerId) { return }
        if let previous = service.reportedPeerId, previous != peerId {
            reportLost(service)
        }
        do {
            try sink.peerFound(record: record)
            service.lastReported = record
            service.reportedPeerId = peerId
        } catch {
            BonjourDiscovery.log.info("ignoring service \(service.name): \(String(describing: error), privacy: .public)")
        }
    }

    private func reportLost(_ service: ResolvingService) {
        guard let peerId = service.reportedPeerId else { return }
        service.reportedPeerId = nil
        service.lastReported = nil
        do {
            try sink.peerLost(peerId: peerId)
        } catch {
            BonjourDiscovery.log.info("cannot report \(service.name) lost: \(String(describing: error), privacy: .public)")
        }
    }
}

// MARK: - Resolving one instance

/// Resolves one listed instance to its port, TXT record and addresses, and keeps them up to date. The dns_sd
/// callbacks reach it through an unretained context pointer, which stays valid because the references are
/// released (on the queue) before the object is.
///
/// `@unchecked Sendable`: confined to its queue, like ``BonjourRun``.
private final class ResolvingService: @unchecked Sendable {
    let name: String
    /// The last record reported to the library, and the peer id it carried.
    var lastReported: DiscoveredPeerRecord?
    var reportedPeerId: String?

    private let type: String
    private let domain: String
    private let flags: DNSServiceFlags
    private let queue: DispatchQueue
    private let onChange: (ResolvingService) -> Void
    private var resolveRef: DNSServiceRef?
    private var addressRef: DNSServiceRef?
    private var host: String?
    private var port: UInt16 = 0
    private var txt: [String: String] = [:]
    private var addresses = Set<String>()
    private var cancelled = false
    private var retryDelay: TimeInterval = DNSSD.firstRetryDelay

    init(
        name: String,
        type: String,
        domain: String,
        flags: DNSServiceFlags,
        queue: DispatchQueue,
        onChange: @escaping (ResolvingService) -> Void
    ) {
        self.name = name
        self.type = type
        self.domain = domain
        self.flags = flags
        self.queue = queue
        self.onChange = onChange
    }

    deinit {
        releaseReferences()
    }

    /// The record to report, once the port and at least one address are known.
    var record: DiscoveredPeerRecord? {
        guard port != 0, !addresses.isEmpty else { return nil }
        return DiscoveredPeerRecord(txt: txt, addresses: addresses.sorted(), port: port)
    }

    func start() {
        guard !cancelled, resolveRef == nil else { return }
        var ref: DNSServiceRef?
        let context = Unmanaged.passUnretained(self).toOpaque()
        let error = DNSServiceResolve(&ref, flags, 0, name, type, domain, resolveReply, context)
        guard let scheduled = DNSSD.schedule(ref, error, on: queue) else {
            failed("resolving", error)
            return
        }
        resolveRef = scheduled
    }

    func cancel() {
        cancelled = true
        releaseReferences()
    }

    fileprivate func resolved(errorCode: DNSServiceErrorType, host: String?, port: UInt16, txt: [UInt8]) {
        guard !cancelled else { return }
        guard errorCode == DNSSD.noError else {
            failed("resolving", errorCode)
            return
        }
        retryDelay = DNSSD.firstRetryDelay
        self.port = port
        self.txt = DNSSD.parseTXTRecord(txt)
        if let host, !host.isEmpty, host != self.host {
            self.host = host
            guard lookUpAddresses(of: host) else { return }
        }
        onChange(self)
    }

    /// (Re)starts the address lookup of `host`; `false` if it could not start (a retry is then scheduled).
    private func lookUpAddresses(of host: String) -> Bool {
        if let addressRef {
            DNSServiceRefDeallocate(addressRef)
            self.addressRef = nil
        }
        addresses.removeAll()
        var ref: DNSServiceRef?
        let context = Unmanaged.passUnretained(self).toOpaque()
        let error = DNSServiceGetAddrInfo(
            &ref,
            flags,
            0,
            DNSServiceProtocol(kDNSServiceProtocol_IPv4 | kDNSServiceProtocol_IPv6),
            host,
            addressReply,
            context
        )
        guard let scheduled = DNSSD.schedule(ref, error, on: queue) else {
            failed("looking up the addresses of", error)
            return false
        }
        addressRef = scheduled
        return true
    }

    fileprivate func addressChanged(errorCode: DNSServiceErrorType, flags: DNSServiceFlags, address: String?) {
        guard !cancelled else { return }
        if errorCode == DNSServiceErrorType(kDNSServiceErr_NoSuchRecord) {
            // One address family has no record; the other may still answer.
        } else if errorCode != DNSSD.noError {
            failed("looking up the addresses of", errorCode)
            return
        } else if let address {
            if flags & DNSServiceFlags(kDNSServiceFlagsAdd) != 0 {
                addresses.insert(address)
            } else {
                addresses.remove(address)
            }
        }
        if flags & DNSServiceFlags(kDNSServiceFlagsMoreComing) == 0 {
            onChange(self)
        }
    }

    /// An asynchronous dns_sd error (for example mDNSResponder restarted): start over later.
    private func failed(_ what: String, _ errorCode: DNSServiceErrorType) {
        BonjourDiscovery.log.warning("\(what, privacy: .public) \(self.name) failed: dns_sd error \(errorCode)")
        releaseReferences()
        host = nil
        let delay = retryDelay
        retryDelay = DNSSD.nextRetryDelay(after: delay)
        queue.asyncAfter(deadline: .now() + delay) { [weak self] in self?.start() }
    }

    private func releaseReferences() {
        if let addressRef {
            DNSServiceRefDeallocate(addressRef)
            self.addressRef = nil
        }
        if let resolveRef {
            DNSServiceRefDeallocate(resolveRef)
            self.resolveRef = nil
        }
    }
}

// MARK: - dns_sd callbacks (C function pointers: no captures, the object comes through `context`)

private let registerReply: DNSServiceRegisterReply = { _, _, errorCode, name, _, _, context in
    guard let context else { return }
    let run = Unmanaged<BonjourRun>.fromOpaque(context).takeUnretainedValue()
    run.registrationReplied(errorCode: errorCode, name: name.map { String(cString: $0) } ?? "?")
}

private let resolveReply: DNSServiceResolveReply = {
    _, _, _, errorCode, _, hostTarget, port, txtLength, txtRecord, context in
    guard let context else { return }
    let service = Unmanaged<ResolvingService>.fromOpaque(context).takeUnretainedValue()
    let txt = txtRecord.map { Array(UnsafeBufferPointer(start: $0, count: Int(txtLength))) } ?? []
    service.resolved(
        errorCode: errorCode,
        host: hostTarget.map { String(cString: $0) },
        port: UInt16(bigEndian: port),
        txt: txt
    )
}

private let addressReply: DNSServiceGetAddrInfoReply = {
    _, flags, _, errorCode, _, address, _, context in
    guard let context else { return }
    let service = Unmanaged<ResolvingService>.fromOpaque(context).takeUnretainedValue()
    service.addressChanged(errorCode: errorCode, flags: flags, address: address.flatMap(DNSSD.ipLiteral))
}

// MARK: - Helpers

private enum DNSSD {
    static let noError = DNSServiceErrorType(kDNSServiceErr_NoError)
    /// The system refused local network access (-65570).
    static let policyDenied = DNSServiceErrorType(kDNSServiceErr_PolicyDenied)
    static let firstRetryDelay: TimeInterval = 1
    static let maxRetryDelay: TimeInterval = 30

    static func nextRetryDelay(after delay: TimeInterval) -> TimeInterval {
        min(delay * 2, maxRetryDelay)
    }

    /// Whether Network.framework reports the local-network policy refusal (`NWError.dns(-65570)`).
    static func isPolicyDenied(_ error: NWError) -> Bool {
        if case let .dns(code) = error {
            return code == policyDenied
        }
        return false
    }

    /// Schedules a newly created reference on `queue`; `nil` (the reference released) if creating or scheduling
    /// failed.
    static func schedule(_ ref: DNSServiceRef?, _ error: DNSServiceErrorType, on queue: DispatchQueue) -> DNSServiceRef? {
        guard error == noError, let ref else { return nil }
        guard DNSServiceSetDispatchQueue(ref, queue) == noError else {
            DNSServiceRefDeallocate(ref)
            return nil
        }
        return ref
    }

    /// The TXT `id` entry (keys are case-insensitive).
    static func peerId(in txt: [String: String]) -> String? {
        txt.first { $0.key.caseInsensitiveCompare("id") == .orderedSame }?.value
    }

    /// Encodes TXT entries in DNS wire format: each `key=value` as one length-prefixed string of at most 255
    /// bytes (RFC 6763, section 6).
    static func txtRecord(_ entries: [String: String]) throws -> [UInt8] {
        var record: [UInt8] = []
        for (key, value) in entries.sorted(by: { $0.key < $1.key }) {
            guard !key.isEmpty, !key.contains("=") else {
                throw MultipeerError.Discovery(detail: "invalid TXT key \"\(key)\"")
            }
            let item = Array("\(key)=\(value)".utf8)
            guard item.count <= 255 else {
                throw MultipeerError.Discovery(detail: "TXT entry \"\(key)\" is longer than 255 bytes")
            }
            record.append(UInt8(item.count))
            record.append(contentsOf: item)
        }
        guard record.count <= Int(UInt16.max) else {
            throw MultipeerError.Discovery(detail: "TXT record is longer than 65535 bytes")
        }
        return record.isEmpty ? [0] : record
    }

    /// Decodes a TXT record in DNS wire format. Values are decoded as UTF-8 (invalid bytes replaced); a key without
    /// `=` gets an empty value; only the first occurrence of a key counts (RFC 6763, section 6.4).
    static func parseTXTRecord(_ bytes: [UInt8]) -> [String: String] {
        var entries: [String: String] = [:]
        var index = 0
        while index < bytes.count {
            let length = Int(bytes[index])
            index += 1
            guard index + length <= bytes.count else { break }  // truncated
            let item = bytes[index ..< index + length]
            index += length
            let separator = item.firstIndex(of: UInt8(ascii: "="))
            let key = String(decoding: item[item.startIndex ..< (separator ?? item.endIndex)], as: UTF8.self)
            let value = separator.map { String(decoding: item[($0 + 1)...], as: UTF8.self) } ?? ""
            guard !key.isEmpty, indexOfKey(key, in: entries) == nil else { continue }
            entries[key] = value
        }
        return entries
    }

    private static func indexOfKey(_ key: String, in entries: [String: String]) -> Dictionary<String, String>.Index? {
        entries.firstIndex { $0.key.caseInsensitiveCompare(key) == .orderedSame }
    }

    /// The numeric literal of an IPv4 or IPv6 socket address; IPv6 addresses with a scope (link-local) get
    /// `%<interface index>`, the form the library parses.
    static func ipLiteral(_ address: UnsafePointer<sockaddr>) -> String? {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            var ipv4 = UnsafeRawPointer(address).load(as: sockaddr_in.self)
            var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            guard inet_ntop(AF_INET, &ipv4.sin_addr, &buffer, socklen_t(buffer.count)) != nil else { return nil }
            return String(cString: buffer)
        case AF_INET6:
            var ipv6 = UnsafeRawPointer(address).load(as: sockaddr_in6.self)
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &ipv6.sin6_addr, &buffer, socklen_t(buffer.count)) != nil else { return nil }
            let literal = String(cString: buffer)
            return ipv6.sin6_scope_id == 0 ? literal : "\(literal)%\(ipv6.sin6_scope_id)"
        default:
            return nil
        }
    }
}
