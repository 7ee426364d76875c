import Foundation
import MultipeerFFI
import os

/// The library's own log records (sessions starting, peers joining, connection attempts, discovery details),
/// delivered to the app.
///
/// ```swift
/// MultipeerLog.install(level: .debug)   // to the unified log: Console.app, `log stream --predicate 'subsystem == "org.multipeer"'`
/// ```
///
/// Records go through a bounded queue to one thread of the library's own, so logging never waits on the app;
/// when the app falls behind, records are dropped (and the next one says how many). The setting is global to the
/// process: the last `install` wins. If the process already routes Rust's `tracing` records elsewhere (an app
/// with Rust code of its own that installed a subscriber), they keep going there and `install` changes nothing.
public enum MultipeerLog {
    /// Whether messages show in the unified log as they are, or redacted.
    public enum Privacy: Sendable {
        /// Redacted outside a debugger, as the unified log does by default: messages name peers, display names and
        /// network addresses.
        case `private`
        /// Shown as they are (useful while developing, and in sysdiagnoses users send).
        case `public`
    }

    /// Sends the library's records at `level` and more severe to the unified log (`os.Logger`) with the subsystem
    /// `org.multipeer` and the record's module as the category (for example `multipeer::session::actor`).
    /// `.error` is logged as an error, `.warn` at the default level, `.info` as info, `.debug` and `.trace` as
    /// debug.
    public static func install(level: LogLevel = .info, privacy: Privacy = .private) {
        setLogSink(level: level, sink: UnifiedLogSink(privacy: privacy))
    }

    /// Sends the library's records at `level` and more severe to `log`, called on a thread of the library's own,
    /// one record at a time.
    public static func install(level: LogLevel = .info, _ log: @escaping @Sendable (LogRecord) -> Void) {
        setLogSink(level: level, sink: ClosureLogSink(log: log))
    }

    /// Stops sending records.
    public static func uninstall() {
        clearLogSink()
    }
}

/// Forwards records to `os.Logger`, one logger per category (the record's target).
private final class UnifiedLogSink: LogSink {
    private let privacy: MultipeerLog.Privacy
    private let loggers = Locked<[String: Logger]>([:])

    init(privacy: MultipeerLog.Privacy) {
        self.privacy = privacy
    }

    func log(record: LogRecord) {
        let logger = loggers.withLock { (loggers: inout [String: Logger]) -> Logger in
            if let logger = loggers[record.target] {
                return logger
            }
            let logger = Logger(subsystem: "org.multipeer", category: record.target)
            loggers[record.target] = logger
            return logger
        }
        let type: OSLogType
        switch record.level {
        case .error:
            type = .error
        case .warn:
            type = .default
        case .info:
            type = .info
        case .debug, .trace:
            type = .debug
        }
        // The unified log takes its privacy as a constant of each message, hence two calls.
        switch privacy {
        case .public:
            logger.log(level: type, "\(record.message, privacy: .public)")
        case .private:
            logger.log(level: type, "\(record.message, privacy: .private)")
        }
    }
}

private final class ClosureLogSink: LogSink {
    private let body: @Sendable (LogRecord) -> Void

    init(log: @escaping @Sendable (LogRecord) -> Void) {
        body = log
    }

    func log(record: LogRecord) {
        body(record)
    }
}
