package org.multipeer.android

import android.util.Log
import org.multipeer.MultipeerLog
import org.multipeer.ffi.LogLevel
import org.multipeer.ffi.LogRecord

/**
 * Sends the library's own log records (sessions starting, peers joining and leaving; at `DEBUG` also connection
 * attempts and discovery details) to Logcat, with the tag `multipeer`:
 *
 * ```kotlin
 * class App : Application() {
 *     override fun onCreate() {
 *         super.onCreate()
 *         if (BuildConfig.DEBUG) AndroidLog.install(LogLevel.DEBUG)
 *     }
 * }
 * ```
 *
 * Watch them with `adb logcat -s multipeer`. Each line starts with the Rust module the record comes from (for
 * example `multipeer::session::actor`). Records arrive on a thread of the library's own, through a bounded queue:
 * logging never slows the session, and when Logcat falls behind, records are dropped (the next one says how many).
 * The setting is global to the process; the last `install` wins. Messages name peers, display names and network
 * addresses: think twice before shipping `DEBUG` in a release build.
 */
object AndroidLog {
    /** The Logcat tag of every record. */
    const val TAG = "multipeer"

    /** Logcat drops the end of longer messages; longer records are split into lines of at most this many chars. */
    private const val MAX_LINE = 4000

    /** Sends records at [level] and more severe to Logcat. */
    fun install(level: LogLevel = LogLevel.INFO) = MultipeerLog.install(level) { record -> write(record) }

    /** Stops sending records. */
    fun uninstall() = MultipeerLog.uninstall()

    private fun write(record: LogRecord) {
        val priority = when (record.level) {
            LogLevel.ERROR -> Log.ERROR
            LogLevel.WARN -> Log.WARN
            LogLevel.INFO -> Log.INFO
            LogLevel.DEBUG -> Log.DEBUG
            LogLevel.TRACE -> Log.VERBOSE
        }
        val text = "${record.target}: ${record.message}"
        var start = 0
        while (start < text.length) {
            val end = minOf(start + MAX_LINE, text.length)
            Log.println(priority, TAG, text.substring(start, end))
            start = end
        }
    }
}
