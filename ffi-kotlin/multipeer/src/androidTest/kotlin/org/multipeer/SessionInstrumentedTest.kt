package org.multipeer

import androidx.test.ext.junit.runners.AndroidJUnit4
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.ReceiveChannel
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeoutOrNull
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.multipeer.ffi.InProcessNetwork
import org.multipeer.ffi.SessionConfig

/**
 * Runs on a device or an emulator: the native library for its ABI, loaded through JNA, with two real sessions in
 * one process on an in-process network (QUIC over loopback; no discovery, so no permission is needed).
 */
@RunWith(AndroidJUnit4::class)
class SessionInstrumentedTest {
    @Test
    fun twoSessionsExchangeAMessageAndCloseIsSeenAsLeft() = runBlocking {
        val network = InProcessNetwork()
        val collectors = CoroutineScope(SupervisorJob() + Dispatchers.Default)
        val alice = MultipeerSession.start(config("alice"), network)
        val bob = MultipeerSession.start(config("bob"), network)
        try {
            val aliceEvents = collect(collectors, alice)
            val bobEvents = collect(collectors, bob)
            val aliceId = alice.localPeer.id

            val bobPeer = aliceEvents.expect<SessionEvent.PeerAdded>("bob added").peer
            assertEquals(bob.localPeer.id, bobPeer.id)
            bobEvents.expect<SessionEvent.PeerAdded>("alice added")

            alice.send("hello bob".encodeToByteArray(), listOf(bobPeer.id))
            val message = bobEvents.expect<SessionEvent.Received>("the message to bob")
            assertEquals("hello bob", message.data.decodeToString())
            assertEquals(aliceId, message.peer)
            assertTrue(message.reliable)

            // Released without shutdown(): close() still says goodbye, so bob sees alice leave at once.
            alice.close()
            val removed = bobEvents.expect<SessionEvent.PeerRemoved>("alice removed")
            assertEquals(aliceId, removed.peer.id)
            assertEquals("left", removed.reason)
        } finally {
            bob.shutdown()
            bob.close()
            alice.close()
            collectors.cancel()
            network.close()
        }
    }

    private fun config(name: String) =
        SessionConfig(serviceType = "androidtest", displayName = name, discoveryInfo = mapOf("room" to "android"))

    /** Collects the session's events (one collector, as the flow allows) into a channel the test reads. */
    private fun collect(scope: CoroutineScope, session: MultipeerSession): ReceiveChannel<SessionEvent> {
        val events = Channel<SessionEvent>(Channel.UNLIMITED)
        scope.launch {
            session.events.collect { events.send(it) }
        }
        return events
    }

    /** Skips events until one of type [T] arrives; fails after [TIMEOUT_MS]. */
    private suspend inline fun <reified T : SessionEvent> ReceiveChannel<SessionEvent>.expect(what: String): T =
        withTimeoutOrNull(TIMEOUT_MS) {
            var found: T? = null
            while (found == null) {
                found = receive() as? T
            }
            found
        } ?: throw AssertionError("timed out waiting for $what")

    private companion object {
        const val TIMEOUT_MS = 20_000L
    }
}
