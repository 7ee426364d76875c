package org.multipeer.android

import android.content.Context
import android.net.nsd.NsdManager
import android.net.nsd.NsdServiceInfo
import android.os.Build
import android.util.Log
import androidx.annotation.RequiresApi
import java.net.Inet4Address
import java.net.Inet6Address
import java.net.InetAddress
import java.util.concurrent.Executors
import java.util.concurrent.ScheduledExecutorService
import java.util.concurrent.TimeUnit
import org.multipeer.ffi.DiscoveredPeerRecord
import org.multipeer.ffi.DiscoverySink
import org.multipeer.ffi.DiscoveryState
import org.multipeer.ffi.ForeignDiscovery
import org.multipeer.ffi.LocalAdvertisement
import org.multipeer.ffi.MultipeerException

/**
 * Peer discovery on Android's own DNS-SD service, [NsdManager], for
 * `MultipeerSession.start(config, NsdDiscovery(context))`.
 *
 * The library's built-in mDNS opens its own multicast socket, and many devices drop incoming multicast unless the
 * app holds a [android.net.wifi.WifiManager.MulticastLock] (see [MulticastLockHolder]); some drop it even then.
 * `NsdManager` runs the system's mDNS instead, needs no multicast lock, and is what Android recommends.
 *
 * - **Advertising**: [NsdManager.registerService] with the instance name, the port of the session's QUIC socket and
 *   every TXT entry the session asks for ([NsdServiceInfo.setAttribute]).
 * - **Browsing**: [NsdManager.discoverServices] for the session's service type; our own service is skipped.
 * - **Resolving**: on Android 14 (API 34) and later, [NsdManager.registerServiceInfoCallback] watches each service
 *   and reports every address and any later change. Below that, [NsdManager.resolveService] resolves each service
 *   once, to one address; those Android versions allow one resolve at a time, so resolves are queued and run one
 *   after another (and retried later when another resolve of the app is in progress).
 * - **Reporting**: each resolved service goes to [DiscoverySink.peerFound], where the library validates it
 *   (records it refuses are logged and skipped); TXT values are decoded as UTF-8 and link-local IPv6 addresses
 *   carry their interface index (`fe80::1%3`). A service that goes away is reported with [DiscoverySink.peerLost]
 *   under the peer id (TXT `id`) it was reported with.
 * - **State**: the session reports `DiscoveryState.Running` itself when [start] returns. After that, this class
 *   tells it of every change through [DiscoverySink.stateChanged], which the app sees as
 *   `SessionEvent.DiscoveryStateChanged` and in `MultipeerSession.discoveryState`:
 *   `DiscoveryState.PermissionDenied` when the system refuses local network access (`NsdManager` throws a
 *   `SecurityException`, or fails with `FAILURE_PERMISSION_DENIED`, Android 17's error code 7);
 *   `DiscoveryState.Failed` with the `NsdManager` error when advertising or browsing fails; and `Running` again once
 *   the service is registered and the browse has started. After the user grants the permission, the app looks for
 *   peers again (`stopLookingForPeers()` then `startLookingForPeers()`, or a new session): `NsdManager` does not
 *   retry by itself.
 *
 * The library calls [start] and [stop] (from its own threads); `NsdManager` calls back on its own thread and on a
 * private daemon thread. All state is guarded by one lock, and nothing here blocks. Diagnostics go to logcat with
 * the tag `MultipeerNsd`. One instance serves one session at a time.
 *
 * Needs the `INTERNET` and `ACCESS_NETWORK_STATE` permissions (declared by this library's manifest), and on
 * Android 17 (API 37) and later, for apps that target it, the runtime permission `ACCESS_LOCAL_NETWORK` (declared
 * too; the app requests it): see the README's "Permissions".
 */
class NsdDiscovery(context: Context) : ForeignDiscovery {
    private val nsd: NsdManager = context.applicationContext.getSystemService(NsdManager::class.java)
        ?: throw IllegalStateException("NsdManager is not available on this device")

    /** Runs the API 34 service callbacks and the resolve retries. */
    private val executor: ScheduledExecutorService = Executors.newSingleThreadScheduledExecutor { runnable ->
        Thread(runnable, "multipeer-nsd").apply { isDaemon = true }
    }

    /** Guards [run] and all state of the running [Run]. */
    private val lock = Any()
    private var run: Run? = null

    /**
     * Starts advertising [advertisement] and browsing its service type, reporting peers to [sink]. Called by the
     * library when the session starts (or looks for peers again).
     *
     * @throws MultipeerException.Discovery when `NsdManager` refuses the service (for example a TXT entry). A
     *   refused permission is not thrown: it is reported as `DiscoveryState.PermissionDenied`, so that the session
     *   still starts (tickets work without discovery).
     */
    override fun start(advertisement: LocalAdvertisement, sink: DiscoverySink) {
        synchronized(lock) {
            run?.stop()
            run = null
            val next = Run(advertisement, sink)
            next.start()
            run = next
        }
    }

    /** Stops advertising (peers see the service go away) and browsing. Called by the library. */
    override fun stop() {
        synchronized(lock) {
            run?.stop()
            run = null
        }
    }

    /** One [start] ... [stop]; every member is used with [lock] held. */
    private inner class Run(private val ad: LocalAdvertisement, private val sink: DiscoverySink) {
        private var stopped = false
        private var registration: NsdManager.RegistrationListener? = null
        private var browsing: NsdManager.DiscoveryListener? = null

        /** The name we are registered under (NsdManager may rename it on a conflict). */
        private var ownName: String = ad.instanceName

        /** The services found, by service name. */
        private val services = HashMap<String, Service>()

        /** Below API 34: the services waiting to be resolved, one at a time. */
        private val resolveQueue = ArrayDeque<Service>()
        private var resolving = false

        // What each half reports; together they make the state told to the sink.
        private var registered = false
        private var registrationProblem: DiscoveryState? = null
        private var discovering = false
        private var discoveryProblem: DiscoveryState? = null

        /** The state last told to the sink: the session reports Running when [start] returns, so that is where it
         * begins, and only changes are reported. */
        private var reportedState: DiscoveryState = DiscoveryState.Running

        fun start() {
            val info = NsdServiceInfo().apply {
                serviceName = ad.instanceName
                serviceType = ad.serviceType
                port = ad.port.toInt()
            }
            try {
                for ((key, value) in ad.txt) info.setAttribute(key, value)
            } catch (e: IllegalArgumentException) {
                throw MultipeerException.Discovery("NsdManager refused a TXT entry: ${e.message}")
            }
            val registrationListener = RegistrationListener()
            val discoveryListener = DiscoveryListener()
            try {
                try {
                    nsd.registerService(info, NsdManager.PROTOCOL_DNS_SD, registrationListener)
                    registration = registrationListener
                } catch (e: SecurityException) {
                    Log.e(TAG, "advertising refused: ${e.message}")
                    registrationProblem = DiscoveryState.PermissionDenied
                }
                try {
                    nsd.discoverServices(ad.serviceType, NsdManager.PROTOCOL_DNS_SD, discoveryListener)
                    browsing = discoveryListener
                } catch (e: SecurityException) {
                    Log.e(TAG, "browsing refused: ${e.message}")
                    discoveryProblem = DiscoveryState.PermissionDenied
                }
            } catch (e: IllegalArgumentException) {
                stop()
                throw MultipeerException.Discovery("NsdManager refused the service: ${e.message}")
            }
            reportState()
        }

        fun stop() {
            if (stopped) return
            stopped = true
            // Each call throws IllegalArgumentException if its listener is not (or no longer) registered.
            registration?.let { ignoringUnregistered { nsd.unregisterService(it) } }
            browsing?.let { ignoringUnregistered { nsd.stopServiceDiscovery(it) } }
            if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.UPSIDE_DOWN_CAKE) {
                for (service in services.values) unwatch(service)
            }
            services.clear()
            resolveQueue.clear()
            sink.close()
        }

        // ---- State ----

        /**
         * Tells the sink the state both halves make together, if it changed: permission denied if either was refused
         * it, else failed if either failed, else running once the service is registered and the browse started.
         * While they are still starting, nothing is said.
         */
        private fun reportState() {
            if (stopped) return
            val problems = listOfNotNull(registrationProblem, discoveryProblem)
            val state = when {
                DiscoveryState.PermissionDenied in problems -> DiscoveryState.PermissionDenied
                problems.isNotEmpty() -> problems.first()
                registered && discovering -> DiscoveryState.Running
                else -> return
            }
            if (state == reportedState) return
            reportedState = state
            try {
                sink.stateChanged(state)
            } catch (e: MultipeerException) {
                Log.i(TAG, "cannot report the discovery state: ${e.message}")
            }
        }

        /** Resolving a service was refused local network access: nothing can be found until it is granted. */
        private fun resolvingRefused() {
            discoveryProblem = DiscoveryState.PermissionDenied
            reportState()
        }

        // ---- Found and lost ----

        private fun found(info: NsdServiceInfo) {
            val name = info.serviceName ?: return
            if (stopped || name == ownName || name == ad.instanceName || services.containsKey(name)) return
            val service = Service(name, info)
            services[name] = service
            if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.UPSIDE_DOWN_CAKE) {
                watch(service)
            } else {
                resolveQueue.addLast(service)
                resolveNext()
            }
        }

        private fun lost(info: NsdServiceInfo) {
            val service = services.remove(info.serviceName ?: return) ?: return
            if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.UPSIDE_DOWN_CAKE) unwatch(service)
            reportLost(service)
        }

        private fun isCurrent(service: Service) = !stopped && services[service.name] === service

        // ---- Resolving, API 34 and later ----

        @RequiresApi(Build.VERSION_CODES.UPSIDE_DOWN_CAKE)
        private fun watch(service: Service) {
            val callback = object : NsdManager.ServiceInfoCallback {
                override fun onServiceUpdated(serviceInfo: NsdServiceInfo) {
                    synchronized(lock) { if (isCurrent(service)) report(service, serviceInfo) }
                }

                override fun onServiceLost() {
                    // The service may come back; it stays watched until discovery loses it or we stop.
                    synchronized(lock) { if (isCurrent(service)) reportLost(service) }
                }

                override fun onServiceInfoCallbackRegistrationFailed(errorCode: Int) {
                    Log.w(TAG, "cannot watch ${service.name}: NsdManager error ${errorName(errorCode)}")
                    synchronized(lock) {
                        if (service.callback === this) service.callback = null
                        if (isCurrent(service) && errorCode == FAILURE_PERMISSION_DENIED) resolvingRefused()
                    }
                }

                override fun onServiceInfoCallbackUnregistered() {}
            }
            try {
                nsd.registerServiceInfoCallback(service.info, executor, callback)
                service.callback = callback
            } catch (e: IllegalArgumentException) {
                Log.w(TAG, "cannot watch ${service.name}: ${e.message}")
            } catch (e: SecurityException) {
                Log.e(TAG, "watching ${service.name} refused: ${e.message}")
                resolvingRefused()
            }
        }

        @RequiresApi(Build.VERSION_CODES.UPSIDE_DOWN_CAKE)
        private fun unwatch(service: Service) {
            val callback = service.callback as? NsdManager.ServiceInfoCallback ?: return
            service.callback = null
            ignoringUnregistered { nsd.unregisterServiceInfoCallback(callback) }
        }

        // ---- Resolving below API 34: one at a time ----

        @Suppress("DEPRECATION") // resolveService is deprecated from API 34, where watch() is used instead.
        private fun resolveNext() {
            if (stopped || resolving) return
            // Services lost while they waited are skipped.
            val service = generateSequence { resolveQueue.removeFirstOrNull() }.firstOrNull { isCurrent(it) } ?: return
            resolving = true
            val listener = object : NsdManager.ResolveListener {
                override fun onServiceResolved(serviceInfo: NsdServiceInfo) {
                    synchronized(lock) {
                        resolving = false
                        if (isCurrent(service)) report(service, serviceInfo)
                        resolveNext()
                    }
                }

                override fun onResolveFailed(serviceInfo: NsdServiceInfo, errorCode: Int) {
                    synchronized(lock) {
                        resolving = false
                        if (errorCode == FAILURE_PERMISSION_DENIED && isCurrent(service)) resolvingRefused()
                        retryResolve(service, errorCode)
                        resolveNext()
                    }
                }
            }
            try {
                nsd.resolveService(service.info, listener)
            } catch (e: IllegalArgumentException) {
                resolving = false
                Log.w(TAG, "cannot resolve ${service.name}: ${e.message}")
                resolveNext()
            } catch (e: SecurityException) {
                // Back to the front of the queue: the next service found, or a new browse, tries again.
                resolving = false
                resolveQueue.addFirst(service)
                Log.e(TAG, "resolving ${service.name} refused: ${e.message}")
                resolvingRefused()
            }
        }

        /** Queues [service] again after a delay (another resolve of the app was running, or a transient error). */
        private fun retryResolve(service: Service, errorCode: Int) {
            service.resolveAttempts += 1
            if (service.resolveAttempts > MAX_RESOLVE_ATTEMPTS) {
                Log.w(TAG, "giving up resolving ${service.name}: NsdManager error ${errorName(errorCode)}")
                return
            }
            val delayMs = RESOLVE_RETRY_MS shl (service.resolveAttempts - 1)
            val retry = Runnable {
                synchronized(lock) {
                    if (isCurrent(service)) {
                        resolveQueue.addLast(service)
                        resolveNext()
                    }
                }
            }
            executor.schedule(retry, delayMs, TimeUnit.MILLISECONDS)
        }

        // ---- Reporting ----

        /** Reports a resolved service, unless it is ours or nothing changed since the last report. */
        private fun report(service: Service, info: NsdServiceInfo) {
            val record = info.toRecord()
            if (record == null) {
                Log.d(TAG, "${service.name} has no usable address or port yet")
                return
            }
            val peerId = record.txt.entries.firstOrNull { it.key.equals("id", ignoreCase = true) }?.value
            if (peerId != null && peerId.equals(ad.peerId, ignoreCase = true)) return
            if (record == service.lastReported) return
            if (service.peerId != null && service.peerId != peerId) reportLost(service)
            try {
                sink.peerFound(record)
                service.lastReported = record
                service.peerId = peerId
            } catch (e: MultipeerException) {
                Log.i(TAG, "ignoring ${service.name}: ${e.message}")
            }
        }

        private fun reportLost(service: Service) {
            val peerId = service.peerId ?: return
            service.peerId = null
            service.lastReported = null
            try {
                sink.peerLost(peerId)
            } catch (e: MultipeerException) {
                Log.i(TAG, "cannot report ${service.name} lost: ${e.message}")
            }
        }

        // ---- NsdManager listeners (called on NsdManager's thread) ----

        private inner class RegistrationListener : NsdManager.RegistrationListener {
            override fun onServiceRegistered(serviceInfo: NsdServiceInfo) {
                Log.i(TAG, "advertising as ${serviceInfo.serviceName}")
                synchronized(lock) {
                    serviceInfo.serviceName?.let { ownName = it }
                    registered = true
                    registrationProblem = null
                    reportState()
                }
            }

            override fun onRegistrationFailed(serviceInfo: NsdServiceInfo, errorCode: Int) {
                Log.e(TAG, "advertising failed: NsdManager error ${errorName(errorCode)}")
                synchronized(lock) {
                    if (registration === this) registration = null
                    registered = false
                    registrationProblem = failure("advertising", errorCode)
                    reportState()
                }
            }

            override fun onServiceUnregistered(serviceInfo: NsdServiceInfo) {}

            override fun onUnregistrationFailed(serviceInfo: NsdServiceInfo, errorCode: Int) {
                Log.w(TAG, "withdrawing the advertisement failed: NsdManager error ${errorName(errorCode)}")
            }
        }

        private inner class DiscoveryListener : NsdManager.DiscoveryListener {
            override fun onDiscoveryStarted(serviceType: String) {
                synchronized(lock) {
                    discovering = true
                    discoveryProblem = null
                    reportState()
                }
            }

            override fun onDiscoveryStopped(serviceType: String) {
                synchronized(lock) {
                    // After our own stop() this is expected; otherwise the system ended the browse.
                    if (stopped || browsing !== this) return
                    Log.w(TAG, "browsing for $serviceType stopped")
                    browsing = null
                    discovering = false
                    discoveryProblem = DiscoveryState.Failed("NsdManager stopped browsing for $serviceType")
                    reportState()
                }
            }

            override fun onStartDiscoveryFailed(serviceType: String, errorCode: Int) {
                Log.e(TAG, "browsing for $serviceType failed: NsdManager error ${errorName(errorCode)}")
                synchronized(lock) {
                    if (browsing === this) browsing = null
                    discovering = false
                    discoveryProblem = failure("browsing", errorCode)
                    reportState()
                }
            }

            override fun onStopDiscoveryFailed(serviceType: String, errorCode: Int) {
                Log.w(TAG, "stopping the browse for $serviceType failed: NsdManager error ${errorName(errorCode)}")
            }

            override fun onServiceFound(serviceInfo: NsdServiceInfo) {
                synchronized(lock) { found(serviceInfo) }
            }

            override fun onServiceLost(serviceInfo: NsdServiceInfo) {
                synchronized(lock) { lost(serviceInfo) }
            }
        }
    }

    /** A service found by the browse. */
    private class Service(val name: String, val info: NsdServiceInfo) {
        /** The peer id and record last reported to the library (null: not reported, or reported lost). */
        var peerId: String? = null
        var lastReported: DiscoveredPeerRecord? = null

        /** API 34+: the `NsdManager.ServiceInfoCallback` watching it (typed loosely so older devices load this class). */
        var callback: Any? = null
        var resolveAttempts = 0
    }

    private companion object {
        const val TAG = "MultipeerNsd"
        const val MAX_RESOLVE_ATTEMPTS = 5
        const val RESOLVE_RETRY_MS = 500L

        /**
         * `NsdManager.FAILURE_PERMISSION_DENIED`, added in Android 17 (API 37): the app may not use the local network.
         * Spelled out because this library compiles against an older SDK; the value is the platform's.
         */
        const val FAILURE_PERMISSION_DENIED = 7

        /** The state a failed `NsdManager` operation means: permission denied, or failed with what and why. */
        fun failure(what: String, errorCode: Int): DiscoveryState =
            if (errorCode == FAILURE_PERMISSION_DENIED) {
                DiscoveryState.PermissionDenied
            } else {
                DiscoveryState.Failed("$what failed: NsdManager error ${errorName(errorCode)}")
            }

        /** An `NsdManager.FAILURE_*` code with its name. */
        fun errorName(errorCode: Int): String = when (errorCode) {
            NsdManager.FAILURE_INTERNAL_ERROR -> "$errorCode (internal error)"
            NsdManager.FAILURE_ALREADY_ACTIVE -> "$errorCode (already active)"
            NsdManager.FAILURE_MAX_LIMIT -> "$errorCode (too many requests)"
            5 -> "$errorCode (operation not running)" // FAILURE_OPERATION_NOT_RUNNING, API 34
            6 -> "$errorCode (bad parameters)" // FAILURE_BAD_PARAMETERS, API 34
            FAILURE_PERMISSION_DENIED -> "$errorCode (permission denied)"
            else -> "$errorCode"
        }

        inline fun ignoringUnregistered(block: () -> Unit) {
            try {
                block()
            } catch (e: IllegalArgumentException) {
                // The listener was not registered (its start failed) or is already unregistered.
            }
        }

        /** The record for the library, or null while the service has no port or no usable address. */
        fun NsdServiceInfo.toRecord(): DiscoveredPeerRecord? {
            val port = port
            if (port !in 1..65535) return null
            val addresses = addressesCompat().mapNotNull { it.literal() }.distinct()
            if (addresses.isEmpty()) return null
            val txt = attributes.orEmpty().mapValues { (_, value) -> value?.toString(Charsets.UTF_8) ?: "" }
            return DiscoveredPeerRecord(txt, addresses, port.toUShort())
        }

        @Suppress("DEPRECATION") // host is deprecated from API 34, where hostAddresses is used instead.
        fun NsdServiceInfo.addressesCompat(): List<InetAddress> =
            if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.UPSIDE_DOWN_CAKE) hostAddresses else listOfNotNull(host)

        /** The numeric literal the library parses; link-local IPv6 needs its interface index (`%3`) or is skipped. */
        fun InetAddress.literal(): String? {
            if (isAnyLocalAddress || isMulticastAddress) return null
            return when (this) {
                is Inet4Address -> hostAddress
                is Inet6Address -> {
                    val bare = hostAddress?.substringBefore('%') ?: return null
                    when {
                        scopeId != 0 -> "$bare%$scopeId"
                        isLinkLocalAddress -> null
                        else -> bare
                    }
                }
                else -> null
            }
        }
    }
}
