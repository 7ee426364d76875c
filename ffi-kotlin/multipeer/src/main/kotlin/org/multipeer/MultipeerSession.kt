package org.multipeer

import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.distinctUntilChanged
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.flow.consumeAsFlow
import org.multipeer.ffi.DiscoveryState
import org.multipeer.ffi.DuplexStream
import org.multipeer.ffi.ForeignDiscovery
import org.multipeer.ffi.InProcessNetwork
import org.multipeer.ffi.LogLevel
import org.multipeer.ffi.LogRecord
import org.multipeer.ffi.LogSink
import org.multipeer.ffi.Invitation
import org.multipeer.ffi.MultipeerException
import org.multipeer.ffi.NearbyPeerInfo
import org.multipeer.ffi.OutgoingStream
import org.multipeer.ffi.PeerInfo
import org.multipeer.ffi.ResourceOffer
import org.multipeer.ffi.ResourceProgress
import org.multipeer.ffi.ResourceTransfer
import org.multipeer.ffi.Session
import org.multipeer.ffi.SessionConfig
import org.multipeer.ffi.SessionDelegate
import org.multipeer.ffi.clearLogSink
import org.multipeer.ffi.setLogSink

/** Everything that happens in a session, in order. */
sealed interface SessionEvent {
    /** Discovery found a peer nearby (or what it announces changed), whether or not it joins. */
    data class PeerFound(val peer: NearbyPeerInfo) : SessionEvent
    /** A peer found earlier stopped advertising. */
    data class PeerLost(val peer: NearbyPeerInfo) : SessionEvent
    /**
     * A peer invites us ([org.multipeer.ffi.InvitationMode.MANUAL] only). Keep [invitation] while the user
     * decides, then call `accept()` or `decline()` on it from any thread; `isExpired()` tells when it timed out.
     */
    class InvitationReceived(val invitation: Invitation) : SessionEvent
    /** A peer joined. */
    data class PeerAdded(val peer: PeerInfo) : SessionEvent
    /** A peer left, with the reason ("left", "timed out", ...). */
    data class PeerRemoved(val peer: PeerInfo, val reason: String) : SessionEvent
    /** A message arrived. */
    class Received(val peer: String, val data: ByteArray, val reliable: Boolean) : SessionEvent
    /** A chunk of a named incoming stream. */
    class StreamData(val peer: String, val name: String, val data: ByteArray) : SessionEvent
    /** A named incoming stream ended; [error] is null when it was finished cleanly. */
    data class StreamFinished(val peer: String, val name: String, val error: String?) : SessionEvent
    /** A peer opened a two-way named stream with us: `read`, `write` and `finish` it from any coroutine. */
    class DuplexStreamReceived(val stream: DuplexStream) : SessionEvent
    /** A connection failed before the peer joined. */
    data class ConnectionFailed(val peer: String, val reason: String) : SessionEvent
    /** Discovery started, stopped, failed or was refused permission (see [MultipeerSession.discoveryState]). */
    data class DiscoveryStateChanged(val state: DiscoveryState) : SessionEvent
    /** The session ended ("shut down", "released without shutdown"): the last event; the flow completes after it. */
    data class SessionEnded(val reason: String) : SessionEvent
    /**
     * A peer offers a resource ([org.multipeer.ffi.ResourceAcceptance.MANUAL] only). Keep [offer] while the user
     * decides, then call `accept()` (then [ResourceStarted] follows) or `decline()` on it from any thread.
     */
    class ResourceOffered(val offer: ResourceOffer) : SessionEvent
    /**
     * A peer started sending us a resource (a file). Follow [transfer] for progress ([progressFlow]) or cancel
     * it; [ResourceFinished] follows.
     */
    data class ResourceStarted(val transfer: ResourceTransfer) : SessionEvent
    /**
     * A resource from a peer finished: saved complete and verified at [path] ([error] is null), or failed with
     * [error] ([path] is null), for example [MultipeerException.ResourceCancelledByPeer].
     */
    data class ResourceFinished(
        val transfer: ResourceTransfer,
        val path: String?,
        val error: MultipeerException?,
    ) : SessionEvent
}

/** [ResourceProgress.transferred] as a fraction of [ResourceProgress.total], from 0.0 to 1.0. */
val ResourceProgress.fraction: Double
    get() = if (total == 0uL) 1.0 else transferred.toDouble() / total.toDouble()

/**
 * The transfer's progress, sampled every [intervalMs] milliseconds while it runs (unchanged values are
 * skipped). The flow completes once the transfer has finished, after emitting its final progress; then call
 * [ResourceTransfer.finished] for the outcome.
 */
fun ResourceTransfer.progressFlow(intervalMs: Long = 100): Flow<ResourceProgress> = flow {
    while (true) {
        // Read "finished" first, so that the last progress emitted is the final one.
        val done = isFinished()
        emit(progress())
        if (done) break
        delay(intervalMs)
    }
}.distinctUntilChanged()

/**
 * A multipeer session with a Kotlin Flow of events.
 *
 * Start it with the suspending [start] (no call blocks the caller's thread). Events are produced on the
 * session's delegate thread into a channel of `bufferSize` events; while it is full the session waits
 * (back-pressure), so collect [events] promptly. [events] has **one collector**: collect it once (a second
 * collector fails with `IllegalStateException`) and share it yourself (`shareIn`) if several parts of the app
 * need it; [peers], [nearby] and [discoveryState] are `StateFlow`s any number of observers can follow. The flow
 * completes after [SessionEvent.SessionEnded]. Collect on any dispatcher and hop to the main thread yourself
 * for UI work.
 *
 * Lifetime: [close] (or [shutdown]) when done; `close()` says goodbye to the peers (they see "left" at once).
 * Pass a `scope` to [start] (for example `lifecycleScope`) and the session closes when the scope ends.
 *
 * Resources (files) within the limits are received as [SessionEvent.ResourceStarted] and then
 * [SessionEvent.ResourceFinished]; with [SessionConfig.resourceAcceptance] `MANUAL` each offer first arrives
 * as [SessionEvent.ResourceOffered] for the app to accept or decline. With [SessionConfig.invitationMode]
 * `MANUAL` nobody joins until the app calls [invite] and the other app accepts its
 * [SessionEvent.InvitationReceived].
 */
class MultipeerSession private constructor(bufferSize: Int) : AutoCloseable {
    private val channel = Channel<SessionEvent>(bufferSize)
    private val nearbyState = MutableStateFlow<List<NearbyPeerInfo>>(emptyList())
    private val peersState = MutableStateFlow<List<PeerInfo>>(emptyList())
    private val discoveryStateFlow = MutableStateFlow<DiscoveryState?>(null)
    /** Set once started: delegate calls may come before the session is handed back. */
    @Volatile private var started: Session? = null
    private val delegate = ChannelDelegate(channel, discoveryStateFlow) { refresh() }
    private val session: Session get() = started ?: throw MultipeerException.SessionClosed()

    /** Reads the lists again (on the delegate thread, before the event that changed them is emitted). */
    private fun refresh() {
        val current = started ?: return
        nearbyState.value = current.nearby()
        peersState.value = current.peers()
    }

    /** The session's events, in order, for one collector; completes after [SessionEvent.SessionEnded]. */
    val events: Flow<SessionEvent> = channel.consumeAsFlow()

    /** Peers discovery sees nearby, in the session or not, ordered by id; updated as they are found and lost. */
    val nearby: StateFlow<List<NearbyPeerInfo>> = nearbyState.asStateFlow()

    /** Connected peers, ordered by id; updated as they join and leave, before the event that says so. */
    val peers: StateFlow<List<PeerInfo>> = peersState.asStateFlow()

    /** How discovery is doing (`null` until it reports): running, stopped, failed, or permission denied. */
    val discoveryState: StateFlow<DiscoveryState?> = discoveryStateFlow.asStateFlow()

    /** The local peer. */
    val localPeer: PeerInfo get() = session.localPeer()

    /**
     * Invites a nearby peer into this session, with [context] for its app to judge the invitation by (at most
     * 1024 bytes). Returns once it joined; throws [MultipeerException.InvitationDeclined],
     * [MultipeerException.InvitationTimedOut] or [MultipeerException.NotNearby].
     */
    suspend fun invite(peer: String, context: ByteArray? = null) = session.invite(peer, context)

    /** Sends [data] to [to] (empty: everyone), reliably or as a datagram. */
    suspend fun send(data: ByteArray, to: List<String> = emptyList(), reliable: Boolean = true) =
        session.send(data, to, reliable)

    /** Opens a byte stream called [name] to [peer] (what, then to whom, as in [send]). */
    suspend fun openStream(name: String, peer: String): OutgoingStream = session.openStream(name, peer)

    /** Opens a two-way stream called [name] with [peer]; it receives [SessionEvent.DuplexStreamReceived]. */
    suspend fun openDuplexStream(name: String, peer: String): DuplexStream = session.openDuplexStream(name, peer)

    /**
     * Sends the file at [path] to [peer] as a resource called [name] (the receiver saves it under a sanitized
     * form of it). Returns once the transfer has started; follow it with [progressFlow] and await
     * [ResourceTransfer.finished] for the outcome (it throws, for example,
     * [MultipeerException.ResourceRefused]). A transfer cut off by a lost connection resumes where it stopped
     * when the peer is back within the resume window.
     */
    suspend fun sendResource(path: String, name: String, peer: String): ResourceTransfer =
        session.sendResource(path, name, peer)

    /** A 6-digit code both ends of the connection to [peer] show alike; `null` if [peer] is not connected. */
    fun verificationCode(peer: String): String? = session.verificationCode(peer)

    /** Stops advertising, browsing and admitting new peers. */
    suspend fun stopLookingForPeers() = session.stopLookingForPeers()

    /** Looks for peers again. */
    suspend fun startLookingForPeers() = session.startLookingForPeers()

    /** Expels [peer] from the session and keeps it out until [allowPeer]. */
    suspend fun removePeer(peer: String) = session.removePeer(peer)

    /** Lets a peer removed with [removePeer] join again. */
    suspend fun allowPeer(peer: String) = session.allowPeer(peer)

    /** Leaves the session; others see it at once. */
    suspend fun disconnect() = session.disconnect()

    /** A ticket other devices can use to join without mDNS. */
    fun ticket(): String = session.ticket()

    /** Invites the peer a ticket describes. */
    suspend fun connectTicket(ticket: String) = session.connectTicket(ticket)

    /** Leaves and releases everything; the event flow ends with [SessionEvent.SessionEnded] and completes. */
    suspend fun shutdown() = session.shutdown()

    /** Releases the session; the peers see it leave at once (the goodbye is sent, bounded by a second). */
    override fun close() {
        channel.close()
        started?.close()
    }

    companion object {
        private suspend fun launch(
            bufferSize: Int,
            scope: CoroutineScope?,
            create: suspend (SessionDelegate) -> Session,
        ): MultipeerSession {
            val wrapper = MultipeerSession(bufferSize)
            wrapper.started = create(wrapper.delegate)
            wrapper.refresh()
            scope?.coroutineContext?.get(Job)?.invokeOnCompletion { wrapper.close() }
            return wrapper
        }

        /** Starts a session with the built-in mDNS discovery; with a [scope], it closes when the scope ends. */
        suspend fun start(config: SessionConfig, bufferSize: Int = 1024, scope: CoroutineScope? = null) =
            launch(bufferSize, scope) { Session.create(config, it) }

        /** Starts a session whose discovery is implemented in Kotlin (for example on Android's NsdManager). */
        suspend fun start(
            config: SessionConfig,
            discovery: ForeignDiscovery,
            bufferSize: Int = 1024,
            scope: CoroutineScope? = null,
        ) = launch(bufferSize, scope) { Session.createWithDiscovery(config, it, discovery) }

        /** Starts a session that only sees sessions on the same in-process [network]. */
        suspend fun start(
            config: SessionConfig,
            network: InProcessNetwork,
            bufferSize: Int = 1024,
            scope: CoroutineScope? = null,
        ) = launch(bufferSize, scope) { Session.createInProcess(config, it, network) }
    }
}

/** The library's log records, delivered to a Kotlin logger (see `AndroidLog` on Android for Logcat). */
object MultipeerLog {
    /** Sends records at [level] and more severe to [log], on a thread of the library's own. */
    fun install(level: LogLevel = LogLevel.INFO, log: (LogRecord) -> Unit) =
        setLogSink(level, object : LogSink {
            override fun log(record: LogRecord) = log(record)
        })

    /** Stops sending records. */
    fun uninstall() = clearLogSink()
}

/** Turns delegate calls into events; [changed] refreshes the peer lists before a presence or membership event. */
private class ChannelDelegate(
    private val channel: Channel<SessionEvent>,
    private val discoveryState: MutableStateFlow<DiscoveryState?>,
    private val changed: () -> Unit,
) : SessionDelegate {
    private fun emit(event: SessionEvent) {
        channel.trySendBlocking(event)
    }

    private fun membership(event: SessionEvent) {
        changed()
        emit(event)
    }

    override fun peerFound(peer: NearbyPeerInfo) = membership(SessionEvent.PeerFound(peer))
    override fun peerLost(peer: NearbyPeerInfo) = membership(SessionEvent.PeerLost(peer))
    override fun invitationReceived(invitation: Invitation) = emit(SessionEvent.InvitationReceived(invitation))
    override fun peerAdded(peer: PeerInfo) = membership(SessionEvent.PeerAdded(peer))
    override fun peerRemoved(peer: PeerInfo, reason: String) = membership(SessionEvent.PeerRemoved(peer, reason))
    override fun received(peer: String, data: ByteArray, reliable: Boolean) =
        emit(SessionEvent.Received(peer, data, reliable))
    override fun streamData(peer: String, name: String, data: ByteArray) =
        emit(SessionEvent.StreamData(peer, name, data))
    override fun streamFinished(peer: String, name: String, error: String?) =
        emit(SessionEvent.StreamFinished(peer, name, error))
    override fun duplexStreamReceived(stream: DuplexStream) = emit(SessionEvent.DuplexStreamReceived(stream))
    override fun connectionFailed(peer: String, reason: String) = emit(SessionEvent.ConnectionFailed(peer, reason))
    override fun discoveryStateChanged(state: DiscoveryState) {
        discoveryState.value = state
        emit(SessionEvent.DiscoveryStateChanged(state))
    }
    override fun sessionEnded(reason: String) {
        changed()
        emit(SessionEvent.SessionEnded(reason))
        channel.close()
    }
    override fun resourceOffered(offer: ResourceOffer) = emit(SessionEvent.ResourceOffered(offer))
    override fun resourceStarted(transfer: ResourceTransfer) = emit(SessionEvent.ResourceStarted(transfer))
    override fun resourceFinished(transfer: ResourceTransfer, path: String?, error: MultipeerException?) =
        emit(SessionEvent.ResourceFinished(transfer, path, error))
}
