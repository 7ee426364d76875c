// JVM tests of the Kotlin bindings: real sessions over loopback in one JVM.
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.multipeer.MultipeerSession
import org.multipeer.SessionEvent
import org.multipeer.fraction
import org.multipeer.progressFlow
import org.multipeer.ffi.DiscoveredPeerRecord
import org.multipeer.ffi.DuplexStream
import org.multipeer.ffi.Invitation
import org.multipeer.ffi.InvitationMode
import org.multipeer.ffi.ResourceAcceptance
import org.multipeer.ffi.ResourceOffer
import org.multipeer.ffi.DiscoverySink
import org.multipeer.ffi.ForeignDiscovery
import org.multipeer.ffi.InProcessNetwork
import org.multipeer.ffi.LocalAdvertisement
import org.multipeer.ffi.MultipeerException
import org.multipeer.ffi.NearbyPeerInfo
import org.multipeer.ffi.PeerInfo
import org.multipeer.ffi.RefusalReason
import org.multipeer.ffi.ResourceTransfer
import org.multipeer.ffi.Session
import org.multipeer.ffi.SessionConfig
import org.multipeer.ffi.SessionDelegate
import org.multipeer.ffi.CongestionControl
import org.multipeer.ffi.generateIdentity
import org.multipeer.ffi.identityPeerId
import java.nio.file.Files
import java.nio.file.Paths
import java.security.MessageDigest
import kotlin.system.exitProcess

fun config(name: String, identity: ByteArray? = null) =
    SessionConfig(serviceType = "jvmtest", displayName = name, discoveryInfo = mapOf("room" to "kt"), identity = identity)

fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw AssertionError(message())
}

/** Events of one session, collected into a channel so tests can wait for them with a timeout. */
class Inbox(flow: Flow<SessionEvent>, scope: CoroutineScope, tap: (SessionEvent) -> Unit = {}) {
    private val channel = Channel<SessionEvent>(Channel.UNLIMITED)
    /** The collector: it completes when the session's flow does. */
    val job = scope.launch(Dispatchers.Default) { flow.collect { tap(it); channel.send(it) } }

    suspend fun <T> expect(what: String, ms: Long = 10_000, pick: (SessionEvent) -> T?): T =
        try {
            withTimeout(ms) {
                while (true) {
                    val found = pick(channel.receive())
                    if (found != null) return@withTimeout found
                }
                @Suppress("UNREACHABLE_CODE") error("unreachable")
            }
        } catch (e: kotlinx.coroutines.TimeoutCancellationException) {
            throw AssertionError("timed out waiting for $what")
        }
}

suspend fun twoPeersExchangeMessagesAndAStream(scope: CoroutineScope) {
    val network = InProcessNetwork()
    val a = MultipeerSession.start(config("alice"), network)
    val b = MultipeerSession.start(config("bob").copy(congestionControl = CongestionControl.BBR), network)
    val aIn = Inbox(a.events, scope)
    val bIn = Inbox(b.events, scope)
    val bob = aIn.expect("bob added") { (it as? SessionEvent.PeerAdded)?.peer }
    val alice = bIn.expect("alice added") { (it as? SessionEvent.PeerAdded)?.peer }
    check(bob.displayName == "bob" && bob.id == b.localPeer.id) { "a sees bob: $bob" }
    check(alice.discoveryInfo["room"] == "kt") { "discovery info travels: $alice" }
    val code = a.verificationCode(bob.id)
    check(code != null && code.count { it.isDigit() } == 6 && code == b.verificationCode(alice.id)) { "verification codes $code" }
    check(a.verificationCode(a.localPeer.id) == null) { "no code for a peer that is not connected" }

    a.send("hello bob".toByteArray(), listOf(bob.id))
    val m1 = bIn.expect("message to bob") { it as? SessionEvent.Received }
    check(String(m1.data) == "hello bob" && m1.peer == alice.id && m1.reliable) { "bob got ${String(m1.data)}" }
    b.send("hello alice".toByteArray())
    val m2 = aIn.expect("message to alice") { it as? SessionEvent.Received }
    check(String(m2.data) == "hello alice") { "alice got ${String(m2.data)}" }
    b.send("datagram".toByteArray(), reliable = false)
    val d = aIn.expect("datagram") { it as? SessionEvent.Received }
    check(!d.reliable && String(d.data) == "datagram") { "datagram" }

    val payload = ByteArray(1 shl 20) { (it % 251).toByte() }
    val stream = a.openStream("photo.jpg", bob.id)
    stream.write(payload.copyOfRange(0, 500_000))
    stream.write(payload.copyOfRange(500_000, payload.size))
    stream.finish()
    val received = java.io.ByteArrayOutputStream()
    val end = bIn.expect("stream end") {
        when (it) {
            is SessionEvent.StreamData -> { check(it.name == "photo.jpg") { "name" }; received.write(it.data); null }
            is SessionEvent.StreamFinished -> it
            else -> null
        }
    }
    check(end.error == null) { "stream error ${end.error}" }
    check(received.toByteArray().contentEquals(payload)) { "stream bytes differ (${received.size()} bytes)" }

    a.shutdown()
    val removed = bIn.expect("alice removed") { it as? SessionEvent.PeerRemoved }
    check(removed.reason == "left") { "reason ${removed.reason}" }
    try {
        a.send("too late".toByteArray())
        throw AssertionError("send after shutdown must fail")
    } catch (e: MultipeerException.SessionClosed) {
    }
    b.shutdown()
}

/** Presence: a peer is found (with its name and discovery info) and listed nearby, then lost when it leaves. */
suspend fun peersAreFoundAndLost(scope: CoroutineScope) {
    val network = InProcessNetwork()
    val a = MultipeerSession.start(config("alice"), network)
    val b = MultipeerSession.start(config("bob"), network)
    val aIn = Inbox(a.events, scope)
    val found = aIn.expect("bob found") { (it as? SessionEvent.PeerFound)?.peer }
    check(found.id == b.localPeer.id && found.displayName == "bob" && found.discoveryInfo["room"] == "kt") { "found $found" }
    check(a.nearby.value.map { it.id } == listOf(b.localPeer.id)) { "nearby ${a.nearby.value}" }
    b.shutdown()
    val lost = aIn.expect("bob lost") { (it as? SessionEvent.PeerLost)?.peer }
    check(lost.id == found.id) { "lost $lost" }
    check(a.nearby.value.isEmpty()) { "nearby after bob left: ${a.nearby.value}" }
    a.shutdown()
}

/** A removed peer is kept out until it is allowed again; then it joins anew. */
suspend fun aRemovedPeerIsKeptOutUntilAllowed(scope: CoroutineScope) {
    val network = InProcessNetwork()
    val a = MultipeerSession.start(config("alice"), network)
    val b = MultipeerSession.start(config("bob"), network)
    val aIn = Inbox(a.events, scope)
    val bIn = Inbox(b.events, scope)
    val bob = aIn.expect("bob added") { (it as? SessionEvent.PeerAdded)?.peer }
    bIn.expect("alice added") { it as? SessionEvent.PeerAdded }
    a.removePeer(bob.id)
    val removed = bIn.expect("bob removed") { it as? SessionEvent.PeerRemoved }
    check(removed.peer.id == a.localPeer.id) { "removed $removed" }
    check(a.peers.value.isEmpty()) { "a still has ${a.peers.value}" }
    a.allowPeer(bob.id)
    val again = aIn.expect("bob back") { (it as? SessionEvent.PeerAdded)?.peer }
    check(again.id == bob.id) { "back: $again" }
    a.shutdown()
    b.shutdown()
}

/** The admission passphrase: the same one joins (and both ends show one pairing code), another is refused. */
suspend fun passphrasesAdmitAndRefuse(scope: CoroutineScope) {
    val network = InProcessNetwork()
    val a = MultipeerSession.start(config("alice").copy(passphrase = "482913"), network)
    val b = MultipeerSession.start(config("bob").copy(passphrase = "482913"), network)
    val aIn = Inbox(a.events, scope)
    val bIn = Inbox(b.events, scope)
    val bob = aIn.expect("bob added") { (it as? SessionEvent.PeerAdded)?.peer }
    bIn.expect("alice added") { (it as? SessionEvent.PeerAdded)?.peer }
    val code = a.verificationCode(bob.id)
    check(code != null && code == b.verificationCode(a.localPeer.id)) { "pairing codes $code" }
    val c = MultipeerSession.start(config("carol").copy(passphrase = "000000"), network)
    val cIn = Inbox(c.events, scope)
    val refused = cIn.expect("carol refused") {
        when (it) {
            is SessionEvent.PeerAdded -> throw AssertionError("carol joined with a wrong passphrase")
            is SessionEvent.ConnectionFailed -> it
            else -> null
        }
    }
    check(refused.reason == "wrong passphrase") { "reason ${refused.reason}" }
    check(a.peers.value.size == 1 && b.peers.value.size == 1) { "the session still holds only alice and bob" }
    a.shutdown()
    b.shutdown()
    c.shutdown()
}

/** A discovery written in Kotlin: sessions in this object see each other on loopback. */
class KotlinLan {
    private val members = mutableMapOf<String, Pair<LocalAdvertisement, DiscoverySink>>()

    fun discovery(): ForeignDiscovery = object : ForeignDiscovery {
        var me: String? = null
        override fun start(advertisement: LocalAdvertisement, sink: DiscoverySink) {
            synchronized(members) {
                for ((ad, other) in members.values) {
                    other.peerFound(record(advertisement))
                    sink.peerFound(record(ad))
                }
                members[advertisement.peerId] = advertisement to sink
                me = advertisement.peerId
            }
        }
        override fun stop() {
            synchronized(members) {
                val id = me ?: return
                members.remove(id)
                for ((_, other) in members.values) other.peerLost(id)
            }
        }
    }

    private fun record(ad: LocalAdvertisement) = DiscoveredPeerRecord(ad.txt, listOf("127.0.0.1"), ad.port)
}

suspend fun kotlinDiscoveryFindsPeersAndBadRecordsAreRefused(scope: CoroutineScope) {
    val lan = KotlinLan()
    val sessions = (1..3).map { MultipeerSession.start(config("k$it"), lan.discovery()) }
    val inboxes = sessions.map { Inbox(it.events, scope) }
    for (inbox in inboxes) {
        val names = (1..2).map { inbox.expect("peer added") { e -> (e as? SessionEvent.PeerAdded)?.peer?.displayName } }
        check(names.toSet().size == 2) { "each sees the two others: $names" }
    }
    // A record with garbage TXT is refused with a typed error, in Rust.
    val sink = object : ForeignDiscovery {
        var captured: DiscoverySink? = null
        override fun start(advertisement: LocalAdvertisement, sink: DiscoverySink) { captured = sink }
        override fun stop() {}
    }
    val probe = MultipeerSession.start(config("probe"), sink)
    try {
        sink.captured!!.peerFound(DiscoveredPeerRecord(mapOf("id" to "nonsense"), listOf("127.0.0.1"), 1u))
        throw AssertionError("garbage record accepted")
    } catch (e: MultipeerException.Discovery) {
        check(e.detail.contains("id")) { "reason: ${e.detail}" }
    }
    probe.shutdown()
    sessions.forEach { it.shutdown() }
}

fun invalidConfigAndIdentities() {
    for ((bad, expected) in listOf(
        config("x").copy(serviceType = "Bad_Type") to "service type",
        config("").copy() to "display name",
        config("x").copy(maxPeers = 9u) to "max_peers",
    )) {
        try {
            Session.inProcess(bad, NoopDelegate, InProcessNetwork())
            throw AssertionError("accepted invalid config $bad")
        } catch (e: MultipeerException.InvalidConfig) {
            check(e.detail.contains(expected)) { "message '${e.detail}' should mention $expected" }
        }
    }
    try {
        Session.inProcess(config("x", identity = byteArrayOf(1, 2, 3)), NoopDelegate, InProcessNetwork())
        throw AssertionError("accepted a garbage identity")
    } catch (e: MultipeerException.InvalidIdentity) {
    }
    val identity = generateIdentity()
    val session = Session.inProcess(config("keeper", identity), NoopDelegate, InProcessNetwork())
    check(session.localPeer().id == identityPeerId(identity)) { "saved identity keeps the id" }
    runBlocking { session.shutdown() }
    session.close()
}

object NoopDelegate : SessionDelegate {
    override fun peerFound(peer: NearbyPeerInfo) {}
    override fun peerLost(peer: NearbyPeerInfo) {}
    override fun peerAdded(peer: PeerInfo) {}
    override fun peerRemoved(peer: PeerInfo, reason: String) {}
    override fun received(peer: String, data: ByteArray, reliable: Boolean) {}
    override fun streamData(peer: String, name: String, data: ByteArray) {}
    override fun streamFinished(peer: String, name: String, error: String?) {}
    override fun connectionFailed(peer: String, reason: String) {}
    override fun resourceStarted(transfer: ResourceTransfer) {}
    override fun resourceFinished(transfer: ResourceTransfer, path: String?, error: MultipeerException?) {}
    override fun invitationReceived(invitation: Invitation) {}
    override fun duplexStreamReceived(stream: DuplexStream) {}
    override fun resourceOffered(offer: ResourceOffer) {}
    override fun discoveryStateChanged(state: org.multipeer.ffi.DiscoveryState) {}
    override fun sessionEnded(reason: String) {}
}

/** A delegate that throws on every message must not break the session: later events still arrive. */
suspend fun throwingCallbacksAreContained(scope: CoroutineScope) {
    val network = InProcessNetwork()
    val seen = Channel<String>(Channel.UNLIMITED)
    val thrower = object : SessionDelegate by NoopDelegate {
        override fun peerAdded(peer: PeerInfo) { seen.trySend("added") }
        override fun received(peer: String, data: ByteArray, reliable: Boolean) {
            seen.trySend(String(data))
            throw RuntimeException("app bug")
        }
    }
    val a = Session.inProcess(config("thrower"), thrower, network)
    val b = MultipeerSession.start(config("sender"), network)
    val bIn = Inbox(b.events, scope)
    bIn.expect("peer") { it as? SessionEvent.PeerAdded }
    withTimeout(10_000) { check(seen.receive() == "added") { "added first" } }
    for (i in 1..3) b.send("m$i".toByteArray())
    withTimeout(10_000) { for (i in 1..3) check(seen.receive() == "m$i") { "message $i after a throwing callback" } }
    b.shutdown()
    a.shutdown()
    a.close()
}

/** A 4 MiB file arrives intact with progress; a refused one fails with a typed error; a cancelled one too. */
suspend fun resourcesAreDeliveredVerifiedOrRefused(scope: CoroutineScope) {
    val network = InProcessNetwork()
    val inbox = Files.createTempDirectory("multipeer-received")
    val a = MultipeerSession.start(config("sender"), network)
    val b = MultipeerSession.start(
        config("receiver").copy(resourceDirectory = inbox.toString(), resourceAcceptance = ResourceAcceptance.MANUAL),
        network,
    )
    val aIn = Inbox(a.events, scope)
    // The receiving app answers each offer on a thread of its own, as a UI would once its user decided.
    val bIn = Inbox(b.events, scope) { event ->
        if (event is SessionEvent.ResourceOffered) {
            val offer = event.offer
            Thread {
                Thread.sleep(50)
                if (offer.name().endsWith(".exe")) offer.decline() else offer.accept()
            }.start()
        }
    }
    val receiver = aIn.expect("receiver added") { (it as? SessionEvent.PeerAdded)?.peer }
    bIn.expect("sender added") { it as? SessionEvent.PeerAdded }

    val bytes = ByteArray(4 shl 20).also { java.security.SecureRandom().nextBytes(it) }
    val sha256 = MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it) }
    val source = Files.createTempFile("multipeer-source", ".bin")
    Files.write(source, bytes)
    val size = bytes.size.toULong()
    try {
        val sending = a.sendResource(source.toString(), "holiday photo.raw", receiver.id)
        check(!sending.isIncoming() && sending.size() == size && sending.name() == "holiday photo.raw") { "$sending" }
        check(sending.peer() == receiver.id) { "sender's transfer goes to ${sending.peer()}" }
        val samples = scope.async { sending.progressFlow(intervalMs = 5).toList() }

        val started = bIn.expect("resource started") { (it as? SessionEvent.ResourceStarted)?.transfer }
        check(started.isIncoming() && started.id() == sending.id() && started.size() == size) { "started $started" }
        check(started.name() == "holiday photo.raw" && started.peer() == a.localPeer.id) { "started $started" }
        val done = bIn.expect("resource finished") { it as? SessionEvent.ResourceFinished }
        check(done.error == null) { "receiver error ${done.error}" }
        check(done.transfer == started) { "the same transfer starts and finishes" }
        val path = done.path ?: throw AssertionError("no path")
        check(Paths.get(path).toAbsolutePath().startsWith(inbox.toAbsolutePath())) { "saved at $path, not in $inbox" }
        check(Files.readAllBytes(Paths.get(path)).contentEquals(bytes)) { "saved bytes differ" }

        val sent = sending.finished()
        check(sent.sha256 == sha256 && sent.size == size && sent.path == null) { "sender's result $sent" }
        val received = started.finished()
        check(received.sha256 == sha256 && received.path == path) { "receiver's result $received" }
        val progress = samples.await()
        check(progress.isNotEmpty() && progress.last().transferred == size && progress.last().total == size) {
            "sender's progress ended at ${progress.lastOrNull()}"
        }
        check(progress.zipWithNext().all { (x, y) -> x.transferred <= y.transferred }) { "progress goes forward" }
        check(started.progress().fraction == 1.0 && sending.isFinished()) { "receiver's progress ${started.progress()}" }

        // Declined by the receiving app: the sender gets a typed error, the receiver no transfer.
        for (name in listOf("setup.exe")) {
            val refused = a.sendResource(source.toString(), name, receiver.id)
            try {
                refused.finished()
                throw AssertionError("$name was delivered")
            } catch (e: MultipeerException.ResourceRefused) {
                check(e.reason == RefusalReason.DECLINED) { "$name refused as ${e.reason}" }
            }
        }

        // Cancelled by the sender at once.
        val cancelled = a.sendResource(source.toString(), "later.bin", receiver.id)
        cancelled.cancel()
        try {
            cancelled.finished()
            throw AssertionError("a cancelled resource was delivered")
        } catch (e: MultipeerException.ResourceCancelled) {
        }

        // The next accepted resource is the next the receiver hears of (nothing for the refused one).
        val small = a.sendResource(source.toString(), "notes.bin", receiver.id)
        val next = bIn.expect("next resource") {
            when (it) {
                is SessionEvent.ResourceStarted -> if (it.transfer.name() == "later.bin") null else it.transfer
                is SessionEvent.ResourceFinished -> if (it.transfer.name() == "later.bin") null else it.transfer
                else -> null
            }
        }
        check(next.name() == "notes.bin") { "the receiver heard of ${next.name()}" }
        check(small.finished().sha256 == sha256) { "second delivery" }

        try {
            a.sendResource(source.toString(), "", receiver.id)
            throw AssertionError("an empty name was accepted")
        } catch (e: MultipeerException.InvalidResourceName) {
        }
    } finally {
        a.shutdown()
        b.shutdown()
        Files.deleteIfExists(source)
        inbox.toFile().deleteRecursively()
    }
}

/** Manual mode: nobody joins until invited; a declined invitation fails the inviter, an accepted one joins. */
suspend fun manualInvitationsAreAcceptedAndDeclined(scope: CoroutineScope) {
    val network = InProcessNetwork()
    val manual = { name: String -> config(name).copy(invitationMode = InvitationMode.MANUAL) }
    val a = MultipeerSession.start(manual("alice"), network)
    val b = MultipeerSession.start(manual("bob"), network)
    val aIn = Inbox(a.events, scope)
    val bIn = Inbox(b.events, scope)
    val bob = aIn.expect("bob found") { (it as? SessionEvent.PeerFound)?.peer }
    val declining = scope.async { runCatching { a.invite(bob.id, "first".toByteArray()) } }
    val first = bIn.expect("first invitation") { (it as? SessionEvent.InvitationReceived)?.invitation }
    check(first.peerId() == a.localPeer.id && String(first.context()!!) == "first") { "first invitation" }
    check(!first.isExpired()) { "a fresh invitation is not expired" }
    first.decline()
    val outcome = declining.await().exceptionOrNull()
    check(outcome is MultipeerException.InvitationDeclined) { "the inviter got $outcome" }
    check(a.peers.value.isEmpty() && b.peers.value.isEmpty()) { "nobody joined after a decline" }
    val accepting = scope.async { a.invite(bob.id, "second".toByteArray()) }
    val second = bIn.expect("second invitation") { (it as? SessionEvent.InvitationReceived)?.invitation }
    check(second.displayName() == "alice" && String(second.context()!!) == "second") { "invitation ${second.displayName()}" }
    second.accept()
    accepting.await()
    bIn.expect("alice added") { (it as? SessionEvent.PeerAdded)?.peer }
    aIn.expect("bob added") { (it as? SessionEvent.PeerAdded)?.peer }
    check(a.peers.value.map { it.id } == listOf(bob.id)) { "alice's peers ${a.peers.value}" }
    try {
        second.accept()
        throw AssertionError("an invitation answered twice")
    } catch (e: MultipeerException.AnswerExpired) {
    }
    a.shutdown()
    b.shutdown()
}

/** A two-way stream: each side reads what the other wrote, and the end of each direction. */
suspend fun duplexStreamsCarryBothWays(scope: CoroutineScope) {
    val network = InProcessNetwork()
    val a = MultipeerSession.start(config("alice"), network)
    val b = MultipeerSession.start(config("bob"), network)
    val aIn = Inbox(a.events, scope)
    val bIn = Inbox(b.events, scope)
    val bob = aIn.expect("bob added") { (it as? SessionEvent.PeerAdded)?.peer }
    bIn.expect("alice added") { it as? SessionEvent.PeerAdded }
    val ours = a.openDuplexStream("tunnel", bob.id)
    ours.write("ping".toByteArray())
    val theirs = bIn.expect("duplex stream") { (it as? SessionEvent.DuplexStreamReceived)?.stream }
    check(theirs.name() == "tunnel" && theirs.peerId() == a.localPeer.id) { "stream ${theirs.name()}" }
    check(String(theirs.read(64u)) == "ping") { "bob reads ping" }
    theirs.write("pong".toByteArray())
    // `finish` returns once the other side has read the end: read it meanwhile.
    val aliceReads = scope.async { Pair(String(ours.read(64u)), ours.read(64u)) }
    theirs.finish()
    val (pong, aliceEnd) = aliceReads.await()
    check(pong == "pong" && aliceEnd.isEmpty()) { "alice reads pong, then the end" }
    val bobEnd = scope.async { theirs.read(64u) }
    ours.finish()
    check(bobEnd.await().isEmpty()) { "bob reads the end" }
    a.shutdown()
    b.shutdown()
}

/** Releasing a session without shutdown says goodbye: the other side sees "left" at once, not a timeout. */
suspend fun closeWithoutShutdownIsSeenAsLeft(scope: CoroutineScope) {
    val network = InProcessNetwork()
    val a = MultipeerSession.start(config("alice"), network)
    val b = MultipeerSession.start(config("bob"), network)
    val bIn = Inbox(b.events, scope)
    bIn.expect("alice added") { it as? SessionEvent.PeerAdded }
    val closed = System.nanoTime()
    a.close()
    val removed = bIn.expect("alice removed", ms = 1_000) { it as? SessionEvent.PeerRemoved }
    val ms = (System.nanoTime() - closed) / 1_000_000
    check(removed.reason == "left") { "alice's removal after close(): ${removed.reason} after $ms ms" }
    b.shutdown()
}

/** The event flow has one collector: a second one fails with a clear error instead of splitting events. */
suspend fun aSecondCollectorFailsClearly(scope: CoroutineScope) {
    val a = MultipeerSession.start(config("alice"), InProcessNetwork())
    val first = Inbox(a.events, scope)
    first.expect("the first collector's first event") { it as? SessionEvent.DiscoveryStateChanged }
    val second = runCatching { withTimeout(5_000) { a.events.collect { } } }.exceptionOrNull()
    check(second is IllegalStateException) { "a second collector got $second" }
    a.shutdown()
    first.expect("session ended") { it as? SessionEvent.SessionEnded }
}

/** `peers` follows joins and leaves before the events say so; the flow ends with SessionEnded and completes. */
suspend fun peersFollowAndTheFlowCompletes(scope: CoroutineScope) {
    val network = InProcessNetwork()
    val a = MultipeerSession.start(config("alice"), network, scope = scope)
    val aIn = Inbox(a.events, scope)
    check(aIn.expect("discovery running") { (it as? SessionEvent.DiscoveryStateChanged)?.state } ==
        org.multipeer.ffi.DiscoveryState.Running) { "discovery state" }
    check(a.discoveryState.value == org.multipeer.ffi.DiscoveryState.Running) { "discoveryState ${a.discoveryState.value}" }
    val b = MultipeerSession.start(config("bob"), network)
    val bob = aIn.expect("bob added") { (it as? SessionEvent.PeerAdded)?.peer }
    check(a.peers.value.map { it.id } == listOf(bob.id)) { "peers when bob's addition arrives: ${a.peers.value}" }
    b.shutdown()
    aIn.expect("bob removed") { it as? SessionEvent.PeerRemoved }
    check(a.peers.value.isEmpty()) { "peers after bob left: ${a.peers.value}" }
    a.shutdown()
    val ended = aIn.expect("session ended") { it as? SessionEvent.SessionEnded }
    check(ended.reason == "shut down") { "ended: ${ended.reason}" }
    withTimeout(5_000) { aIn.job.join() }
}

/** Log records reach a Kotlin logger at the level it asked for. */
suspend fun logRecordsReachAKotlinLogger(scope: CoroutineScope) {
    val records = Channel<org.multipeer.ffi.LogRecord>(Channel.UNLIMITED)
    org.multipeer.MultipeerLog.install(org.multipeer.ffi.LogLevel.INFO) { records.trySend(it) }
    try {
        val a = MultipeerSession.start(config("logged"), InProcessNetwork())
        val started = withTimeout(10_000) {
            var record = records.receive()
            while (!record.message.contains("session started")) record = records.receive()
            record
        }
        check(started.level == org.multipeer.ffi.LogLevel.INFO && started.target.startsWith("multipeer")) { "$started" }
        a.shutdown()
    } finally {
        org.multipeer.MultipeerLog.uninstall()
    }
}

fun main() {
    val tests = listOf<Pair<String, suspend (CoroutineScope) -> Unit>>(
        "two peers exchange messages and a stream" to ::twoPeersExchangeMessagesAndAStream,
        "peers are found and lost" to ::peersAreFoundAndLost,
        "a removed peer is kept out until allowed" to ::aRemovedPeerIsKeptOutUntilAllowed,
        "a discovery written in Kotlin finds peers" to ::kotlinDiscoveryFindsPeersAndBadRecordsAreRefused,
        "invalid config and identities" to { _ -> invalidConfigAndIdentities() },
        "throwing callbacks are contained" to ::throwingCallbacksAreContained,
        "resources are delivered, verified, refused and cancelled" to ::resourcesAreDeliveredVerifiedOrRefused,
        "passphrases admit and refuse; both ends show one pairing code" to ::passphrasesAdmitAndRefuse,
        "manual invitations are accepted and declined" to ::manualInvitationsAreAcceptedAndDeclined,
        "duplex streams carry both ways" to ::duplexStreamsCarryBothWays,
        "close() without shutdown is seen as left" to ::closeWithoutShutdownIsSeenAsLeft,
        "a second collector fails clearly" to ::aSecondCollectorFailsClearly,
        "peers follow joins and leaves; the flow completes" to ::peersFollowAndTheFlowCompletes,
        "log records reach a Kotlin logger" to ::logRecordsReachAKotlinLogger,
    )
    var failed = 0
    for ((name, test) in tests) {
        val started = System.nanoTime()
        try {
            runBlocking { withTimeout(60_000) { CoroutineScope(coroutineContext).let { scope ->
                val job = kotlinx.coroutines.Job()
                test(CoroutineScope(Dispatchers.Default + job))
                job.cancel()
            } } }
            println("ok   $name (${(System.nanoTime() - started) / 1_000_000} ms)")
        } catch (e: Throwable) {
            failed++
            println("FAIL $name: $e")
            e.printStackTrace()
        }
    }
    println(if (failed == 0) "all ${tests.size} Kotlin tests passed" else "$failed of ${tests.size} Kotlin tests failed")
    exitProcess(if (failed == 0) 0 else 1)
}
