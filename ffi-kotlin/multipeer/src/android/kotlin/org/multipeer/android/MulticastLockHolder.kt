package org.multipeer.android

import android.content.Context
import android.net.wifi.WifiManager

/**
 * Holds a [WifiManager.MulticastLock] while the library's built-in mDNS discovery runs.
 *
 * Many devices filter incoming multicast packets on Wi-Fi to save power, so without the lock the built-in mDNS
 * (`MultipeerSession.start(config)`) may never hear other peers. Acquire it before starting such a session and
 * release it when the session ends; the lock costs battery, so do not hold it longer. [NsdDiscovery] does not need
 * it: the system's own mDNS service receives multicast for it.
 *
 * ```kotlin
 * val multicast = MulticastLockHolder(context).apply { acquire() }
 * val session = MultipeerSession.start(config)
 * // ...
 * session.shutdown()
 * multicast.release()
 * ```
 *
 * Needs the `CHANGE_WIFI_MULTICAST_STATE` permission (declared by this library's manifest). The lock is not
 * reference counted: one [release] undoes any number of [acquire] calls. Thread-safe.
 *
 * @param tag names the lock in `dumpsys wifi` and battery statistics.
 */
class MulticastLockHolder(context: Context, tag: String = "multipeer") : AutoCloseable {
    private val lock: WifiManager.MulticastLock =
        (context.applicationContext.getSystemService(Context.WIFI_SERVICE) as WifiManager)
            .createMulticastLock(tag)
            .apply { setReferenceCounted(false) }

    /** Whether the lock is held. */
    val isHeld: Boolean
        get() = synchronized(lock) { lock.isHeld }

    /** Acquires the lock (again acquiring a held lock does nothing). */
    fun acquire() {
        synchronized(lock) { if (!lock.isHeld) lock.acquire() }
    }

    /** Releases the lock if it is held. */
    fun release() {
        synchronized(lock) { if (lock.isHeld) lock.release() }
    }

    /** Releases the lock; for `use { }`. */
    override fun close() = release()
}
