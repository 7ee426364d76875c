import Foundation
import MultipeerFFI
import Observation

/// A session's state, observable with the Observation framework: SwiftUI views that read these properties
/// update when they change. Get it from ``MultipeerSession/model``.
///
/// ```swift
/// struct PeersView: View {
///     let model: MultipeerModel
///
///     var body: some View {
///         List(model.peers, id: \.id) { Text($0.displayName) }
///         if model.discoveryState == .permissionDenied {
///             Text("Allow local network access in Settings to find nearby devices.")
///         }
///     }
/// }
/// ```
///
/// Each property changes before the event that reports the change reaches any ``MultipeerSession/events``
/// stream: a consumer handling `.peerAdded(peer)` already finds `peer` in ``peers``.
///
/// The changes are made on the library's callback thread, not the main thread. The properties can be read from
/// any thread (their values are guarded by a lock); SwiftUI schedules the view update itself. Code that observes
/// them with `withObservationTracking` gets its `onChange` call on that callback thread.
///
/// The class conforms to `Observable` by hand rather than through the `@Observable` macro: the macro's storage is
/// not guarded against the concurrent reads and writes a model updated by a background thread sees.
@available(iOS 17.0, macOS 14.0, tvOS 17.0, watchOS 10.0, *)
public final class MultipeerModel: Observable, SnapshotObserver, Sendable {
    private let registrar = ObservationRegistrar()
    private let snapshot: Locked<SessionSnapshot>

    init(snapshot: Locked<SessionSnapshot>) {
        self.snapshot = snapshot
    }

    /// The connected peers, ordered by id.
    public var peers: [PeerInfo] {
        registrar.access(self, keyPath: \.peers)
        return snapshot.withLock { $0.peers }
    }

    /// Peers discovery sees nearby, in the session or not, ordered by id.
    public var nearby: [NearbyPeerInfo] {
        registrar.access(self, keyPath: \.nearby)
        return snapshot.withLock { $0.nearby }
    }

    /// How discovery is doing (`nil` until it first reports): `.running`, `.stopped`, `.permissionDenied` or
    /// `.failed(reason:)`.
    public var discoveryState: DiscoveryState? {
        registrar.access(self, keyPath: \.discoveryState)
        return snapshot.withLock { $0.discoveryState }
    }

    /// Why the session ended ("shut down", or "released without shutdown"); `nil` while it runs. Once it is set,
    /// ``peers`` and ``nearby`` are empty.
    public var endReason: String? {
        registrar.access(self, keyPath: \.endReason)
        return snapshot.withLock { $0.endReason }
    }

    /// Makes one change, telling the registrar's observers before and after.
    func change(_ field: SnapshotField, _ apply: () -> Void) {
        switch field {
        case .peers:
            registrar.withMutation(of: self, keyPath: \.peers, apply)
        case .nearby:
            registrar.withMutation(of: self, keyPath: \.nearby, apply)
        case .discoveryState:
            registrar.withMutation(of: self, keyPath: \.discoveryState, apply)
        case .endReason:
            registrar.withMutation(of: self, keyPath: \.endReason, apply)
        }
    }
}
