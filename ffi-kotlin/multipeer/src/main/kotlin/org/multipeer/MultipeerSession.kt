package org.multipeer

import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.distinctUntilChanged
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.flow.receiveAsFlow
import org.multipeer.ffi.ForeignDiscovery
import org.multipeer.ffi.InProcessNetwork
import org.multipeer.ffi.MultipeerException
import org.multipeer.ffi.NearbyPeerInfo
import org.multipeer.ffi.OutgoingStream
import org.multipeer.ffi.PeerInfo
import org.multipeer.ffi.ResourceProgress
import org.multipeer.ffi.ResourceTransfer
import org.multipeer.ffi.Session
import org.multipeer.ffi.SessionConfig
import org.multipeer.ffi.SessionDelegate

/** Everything that happens in a session, in order. */
sealed interface SessionEvent {
    /** Discovery found a peer nearby (or what it announces changed), whether or not it joins. */
    data class PeerFound(val peer: NearbyPeerInfo) : SessionEvent
    /** A peer found earlier stopped advertising. */
    data class PeerLost(val peer: NearbyPeerInfo) : SessionEvent
    /** A peer joined. */
    data class PeerAdded(val peer: PeerInfo) : SessionEvent
    /** A peer left, with the reason ("left", "timed out", ...). */
    data class PeerRemoved(val peer: PeerInfo, val reason: String) : SessionEvent
    /** A message arrived. */
    class Received(val from: String, val data: ByteArray, val reliable: Boolean) : SessionEvent
    /** A chunk of a named incoming stream. */
    class StreamData(val from: String, val name: String, val data: ByteArray) : SessionEvent
    /** A named incoming stream ended; [error] is null when it was finished cleanly. */
    data class StreamFinished(val from: String, val name: String, val error: String?) : SessionEvent
    /** A connection failed before the peer joined. */
    data class ConnectionFailed(val peer: String, val reason: String) : SessionEvent
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

/**
 * Decides whether to accept a resource a peer offers: the offering peer's id, the resource's name and its size
 * in bytes. Called on the session's network thread: return quickly. Throwing declines.
 */
typealias ResourceFilter = (peer: String, name: String, size: ULong) -> Boolean

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
 * Events are produced on the session's delegate thread into a channel of [bufferSize] events; while the
 * channel is full the session waits (back-pressure), so collect [events] promptly. Collect on any dispatcher
 * and hop to the main thread yourself for UI work. Close the session (or call [shutdown]) when done.
 *
 * Each `start` takes an optional `acceptResource` [ResourceFilter] that decides whether to accept a resource a
 * peer offers (by default every one; offers above [SessionConfig.maxResourceSize] are refused before it is
 * asked). Accepted resources arrive as [SessionEvent.ResourceStarted] and then [SessionEvent.ResourceFinished].
 */
class MultipeerSession private constructor(
    private val channel: Channel<SessionEvent>,
    acceptResource: ResourceFilter,
    start: (SessionDelegate) -> Session,
) : AutoCloseable {
    private val session: Session = start(ChannelDelegate(channel, acceptResource))

    /** The session's events, in order. Collect once. */
    val events: Flow<SessionEvent> = channel.receiveAsFlow()

    /** The local peer. */
    val localPeer: PeerInfo get() = session.localPeer()

    /** Peers discovery sees nearby now, in the session or not, ordered by id. */
    val nearby: List<NearbyPeerInfo> get() = session.nearby()

    /** Connected peers, ordered by id. */
    val peers: List<PeerInfo> get() = session.peers()

    /** Sends [data] to [to] (empty: everyone), reliably or as a datagram. */
    suspend fun send(data: ByteArray, to: List<String> = emptyList(), reliable: Boolean = true) =
        session.send(data, to, reliable)

    /** Opens a named byte stream to [peer]. */
    suspend fun openStream(peer: String, name: String): OutgoingStream = session.openStream(peer, name)

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

    /** Leaves and releases everything; the event flow completes. */
    suspend fun shutdown() {
        session.shutdown()
        channel.close()
    }

    override fun close() {
        channel.close()
        session.close()
    }

    companion object {
        private val acceptAll: ResourceFilter = { _, _, _ -> true }

        /** Starts a session with the built-in mDNS discovery. */
        fun start(
            config: SessionConfig,
            bufferSize: Int = 1024,
            acceptResource: ResourceFilter = acceptAll,
        ): MultipeerSession = MultipeerSession(Channel(bufferSize), acceptResource) { Session(config, it) }

        /** Starts a session whose discovery is implemented in Kotlin (for example on Android's NsdManager). */
        fun start(
            config: SessionConfig,
            discovery: ForeignDiscovery,
            bufferSize: Int = 1024,
            acceptResource: ResourceFilter = acceptAll,
        ): MultipeerSession =
            MultipeerSession(Channel(bufferSize), acceptResource) { Session.withDiscovery(config, it, discovery) }

        /** Starts a session that only sees sessions on the same in-process [network]. */
        fun start(
            config: SessionConfig,
            network: InProcessNetwork,
            bufferSize: Int = 1024,
            acceptResource: ResourceFilter = acceptAll,
        ): MultipeerSession =
            MultipeerSession(Channel(bufferSize), acceptResource) { Session.inProcess(config, it, network) }
    }
}

private class ChannelDelegate(
    private val channel: Channel<SessionEvent>,
    private val acceptResource: ResourceFilter,
) : SessionDelegate {
    private fun emit(event: SessionEvent) {
        channel.trySendBlocking(event)
    }

    override fun peerFound(peer: NearbyPeerInfo) = emit(SessionEvent.PeerFound(peer))
    override fun peerLost(peer: NearbyPeerInfo) = emit(SessionEvent.PeerLost(peer))
    override fun peerAdded(peer: PeerInfo) = emit(SessionEvent.PeerAdded(peer))
    override fun peerRemoved(peer: PeerInfo, reason: String) = emit(SessionEvent.PeerRemoved(peer, reason))
    override fun received(from: String, data: ByteArray, reliable: Boolean) =
        emit(SessionEvent.Received(from, data, reliable))
    override fun streamData(from: String, name: String, data: ByteArray) =
        emit(SessionEvent.StreamData(from, name, data))
    override fun streamFinished(from: String, name: String, error: String?) =
        emit(SessionEvent.StreamFinished(from, name, error))
    override fun connectionFailed(peer: String, reason: String) = emit(SessionEvent.ConnectionFailed(peer, reason))
    override fun resourceStarted(transfer: ResourceTransfer) = emit(SessionEvent.ResourceStarted(transfer))
    override fun resourceFinished(transfer: ResourceTransfer, path: String?, error: MultipeerException?) =
        emit(SessionEvent.ResourceFinished(transfer, path, error))
    override fun shouldAcceptResource(peer: String, name: String, size: ULong): Boolean =
        acceptResource(peer, name, size)
}
