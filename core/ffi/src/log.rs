//! The library's log records, delivered to the app (Logcat, os_log, Python `logging`) at a level it sets.
//!
//! Records go through a bounded queue to one thread of their own that calls the app's sink, so logging never
//! waits on the app: when the app falls behind, records are dropped (and counted in the next one).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// How severe a log record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, uniffi::Enum)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something is wrong but the session goes on.
    Warn,
    /// Sessions starting, peers joining and leaving.
    Info,
    /// Connection attempts, discovery details.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    fn of(level: &tracing::Level) -> Self {
        match *level {
            tracing::Level::ERROR => Self::Error,
            tracing::Level::WARN => Self::Warn,
            tracing::Level::INFO => Self::Info,
            tracing::Level::DEBUG => Self::Debug,
            _ => Self::Trace,
        }
    }
}

/// One log record of the library.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LogRecord {
    /// How severe it is.
    pub level: LogLevel,
    /// The module it comes from (for example `multipeer::session::actor`).
    pub target: String,
    /// The message, with its fields (`peer=3a05…`) after it.
    pub message: String,
}

/// Receives the library's log records (a Kotlin interface / Swift protocol / Python class), one at a time on a
/// thread of the library's own.
#[uniffi::export(with_foreign)]
pub trait LogSink: Send + Sync {
    /// One record.
    fn log(&self, record: LogRecord);
}

/// Records waiting for the sink; more are dropped.
const LOG_QUEUE: usize = 1024;

struct Bridge {
    /// Most verbose level delivered, as `LogLevel as u8`; `u8::MAX`: none.
    level: AtomicU8,
    dropped: AtomicU64,
    queue: SyncSender<LogRecord>,
    sink: Arc<Mutex<Option<Arc<dyn LogSink>>>>,
}

static BRIDGE: OnceLock<Bridge> = OnceLock::new();

/// Sends the library's log records at `level` and more severe to `sink`, replacing any sink set before. The
/// first call installs the library's log subscriber for the process; if the process already has one (a Rust
/// app using `tracing`), records keep going there and this call changes nothing.
#[uniffi::export]
pub fn set_log_sink(level: LogLevel, sink: Arc<dyn LogSink>) {
    let bridge = BRIDGE.get_or_init(|| {
        let (queue, records) = sync_channel::<LogRecord>(LOG_QUEUE);
        let sink: Arc<Mutex<Option<Arc<dyn LogSink>>>> = Arc::default();
        let deliver = sink.clone();
        let _ = std::thread::Builder::new().name("multipeer-log".into()).spawn(move || {
            for record in records {
                let current = deliver.lock().ok().and_then(|s| s.clone());
                if let Some(sink) = current {
                    sink.log(record);
                }
            }
        });
        let subscriber = tracing_subscriber::registry().with(Forward);
        if tracing::subscriber::set_global_default(subscriber).is_err() {
            tracing::debug!("a log subscriber is installed already; the log sink receives nothing");
        }
        Bridge {
            level: AtomicU8::new(u8::MAX),
            dropped: AtomicU64::new(0),
            queue,
            sink,
        }
    });
    if let Ok(mut current) = bridge.sink.lock() {
        *current = Some(sink);
    }
    bridge.level.store(level as u8, Ordering::Release);
    tracing::callsite::rebuild_interest_cache();
}

/// Stops sending log records to the app.
#[uniffi::export]
pub fn clear_log_sink() {
    if let Some(bridge) = BRIDGE.get() {
        bridge.level.store(u8::MAX, Ordering::Release);
        if let Ok(mut current) = bridge.sink.lock() {
            *current = None;
        }
    }
}

/// The layer that turns `tracing` events into [`LogRecord`]s for the bridge.
struct Forward;

impl<S: tracing::Subscriber> Layer<S> for Forward {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        let wanted = BRIDGE.get().map_or(u8::MAX, |b| b.level.load(Ordering::Acquire));
        wanted != u8::MAX
            && (LogLevel::of(metadata.level()) as u8) <= wanted
            && metadata.target().starts_with("multipeer")
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let Some(bridge) = BRIDGE.get() else { return };
        let mut text = Text::default();
        event.record(&mut text);
        let dropped = bridge.dropped.swap(0, Ordering::AcqRel);
        if dropped > 0 {
            let _ = write!(text.fields, " ({dropped} earlier records dropped)");
        }
        let record = LogRecord {
            level: LogLevel::of(event.metadata().level()),
            target: event.metadata().target().to_owned(),
            message: format!("{}{}", text.message, text.fields),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = bridge.queue.try_send(record) {
            bridge.dropped.fetch_add(1 + dropped, Ordering::AcqRel);
        }
    }
}

#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}
