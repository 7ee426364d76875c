package org.multipeer

import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.receiveAsFlow
import org.multipeer.ffi.ForeignDiscovery
import org.multipeer.ffi.InProcessNetwork
import org.multipeer.ffi.OutgoingStream
import org.multipeer.ffi.PeerInfo
import org.multipeer.ffi.Session
import org.multipeer.ffi.SessionConfig
import org.multipeer.ffi.SessionDelegate

/** Everything that happens in a session, in order. */
sealed interface SessionEvent {
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
}

/**
 * A multipeer session with a Kotlin Flow of events.
 *
 * Events are produced on the session's delegate thread into a channel of [bufferSize] events; while the
 * channel is full the session waits (back-pressure), so collect [events] promptly. Collect on any dispatcher
 * and hop to the main thread yourself for UI work. Close the session (or call [shutdown]) when done.
 */
class MultipeerSession private constructor(
    private val channel: Channel<SessionEvent>,
    start: (SessionDelegate) -> Session,
) : AutoCloseable {
    private val session: Session = start(ChannelDelegate(channel))

    /** The session's events, in order. Collect once. */
    val events: Flow<SessionEvent> = channel.receiveAsFlow()

    /** The local peer. */
    val localPeer: PeerInfo get() = session.localPeer()

    /** Connected peers, ordered by id. */
    val peers: List<PeerInfo> get() = session.peers()

    /** Sends [data] to [to] (empty: everyone), reliably or as a datagram. */
    suspend fun send(data: ByteArray, to: List<String> = emptyList(), reliable: Boolean = true) =
        session.send(data, to, reliable)

    /** Opens a named byte stream to [peer]. */
    suspend fun openStream(peer: String, name: String): OutgoingStream = session.openStream(peer, name)

    /** A 6-digit code both ends of the connection to [peer] show alike; `null` if [peer] is not connected. */
    fun verificationCode(peer: String): String? = session.verificationCode(peer)

    /** Stops advertising, browsing and admitting new peers. */
    suspend fun stopLookingForPeers() = session.stopLookingForPeers()

    /** Looks for peers again. */
    suspend fun startLookingForPeers() = session.startLookingForPeers()

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
        /** Starts a session with the built-in mDNS discovery. */
        fun start(config: SessionConfig, bufferSize: Int = 1024): MultipeerSession =
            MultipeerSession(Channel(bufferSize)) { Session(config, it) }

        /** Starts a session whose discovery is implemented in Kotlin (for example on Android's NsdManager). */
        fun start(config: SessionConfig, discovery: ForeignDiscovery, bufferSize: Int = 1024): MultipeerSession =
            MultipeerSession(Channel(bufferSize)) { Session.withDiscovery(config, it, discovery) }

        /** Starts a session that only sees sessions on the same in-process [network]. */
        fun start(config: SessionConfig, network: InProcessNetwork, bufferSize: Int = 1024): MultipeerSession =
            MultipeerSession(Channel(bufferSize)) { Session.inProcess(config, it, network) }
    }
}

private class ChannelDelegate(private val channel: Channel<SessionEvent>) : SessionDelegate {
    private fun emit(event: SessionEvent) {
        channel.trySendBlocking(event)
    }

    override fun peerAdded(peer: PeerInfo) = emit(SessionEvent.PeerAdded(peer))
    override fun peerRemoved(peer: PeerInfo, reason: String) = emit(SessionEvent.PeerRemoved(peer, reason))
    override fun received(from: String, data: ByteArray, reliable: Boolean) =
        emit(SessionEvent.Received(from, data, reliable))
    override fun streamData(from: String, name: String, data: ByteArray) =
        emit(SessionEvent.StreamData(from, name, data))
    override fun streamFinished(from: String, name: String, error: String?) =
        emit(SessionEvent.StreamFinished(from, name, error))
    override fun connectionFailed(peer: String, reason: String) = emit(SessionEvent.ConnectionFailed(peer, reason))
}
