//! Logs for phone apps: the library's `tracing` events and its panics, handed to a logger the
//! app implements ([`KithLogger`]), which forwards them to Logcat, `os_log` or a file.
//!
//! Android and iOS do not show a process's stderr, so nothing the library says is visible
//! unless it reaches the app. [`set_logger`] installs (once per process) a small
//! `tracing::Subscriber` of this module as the global default, and a panic hook; both read
//! the current logger and level from one global slot, so a later `set_logger` or
//! [`clear_logger`] takes effect at once. Spans are not tracked (the library does not use
//! them for meaning; dependencies' spans are ignored), events are formatted as
//! `message key=value ...` and passed as a [`LogRecord`].
//!
//! Safety rules: a logger that throws is ignored (the exception is caught, the library goes
//! on); events raised while the logger runs on the same thread (the app calling back into
//! Kith from `log`) are dropped instead of recursing; the panic hook keeps the previous
//! hook's behaviour (stderr) after reporting the panic with its location and a backtrace.
//!
//! In the `release-ffi` build apps ship (`panic = "abort"`, no unwind tables) the hook is the
//! last thing that runs: the app's logger gets the panic's message and location, then the
//! process aborts as a crash. The backtrace there is empty or partial (nothing to walk the
//! stack with); the location names the line.

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Once, PoisonError, RwLock};

use tracing::field::{Field, Visit};
use tracing::span;
use tracing::{Event, Metadata};

use crate::error::{KithError, KithResult};

/// Severity of a log record, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, uniffi::Enum)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something unexpected that the library handled.
    Warn,
    /// Lifecycle: store opened, sync started or stopped.
    Info,
    /// Detail for debugging.
    Debug,
    /// Everything, including the network stack's chatter.
    Trace,
}

impl LogLevel {
    fn of(level: tracing::Level) -> LogLevel {
        match level {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::TRACE => LogLevel::Trace,
        }
    }

    fn filter(self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self {
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }
}

/// One log line of the library.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LogRecord {
    /// How severe.
    pub level: LogLevel,
    /// Where it comes from (a Rust module path such as `kith_core::store`).
    pub target: String,
    /// The text, with its fields as `key=value`.
    pub message: String,
}

/// Implemented by the app to receive the library's logs (Logcat, `os_log`, a file). Called
/// on the thread that logged, which may be a thread of Kith's runtime: keep it quick and do
/// not block on the UI thread.
#[uniffi::export(with_foreign)]
///
/// `log` returns a `Result` so that an exception the app's logger throws comes back as an
/// error (ignored) rather than as a Rust panic, which would end the process in the
/// `release-ffi` build (`panic = "abort"`). An app's implementation need not declare it.
pub trait KithLogger: Send + Sync {
    /// One record at or above the level given to `set_logger`.
    fn log(&self, record: LogRecord) -> Result<(), KithError>;
}

struct Current {
    logger: Arc<dyn KithLogger>,
    level: LogLevel,
}

static CURRENT: RwLock<Option<Current>> = RwLock::new(None);
static INSTALL: Once = Once::new();

thread_local! {
    /// Set while this thread is inside the app's logger.
    static IN_LOGGER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Sends the library's logs at `level` and above, and every panic, to `logger` (replacing a
/// logger set before). Fails with `Internal` when something else in the process already
/// installed a global `tracing` subscriber (then logs keep going there; panics still reach
/// `logger`).
#[uniffi::export]
pub fn set_logger(logger: Arc<dyn KithLogger>, level: LogLevel) -> KithResult<()> {
    crate::guard::guard("set_logger", || {
        *CURRENT.write().unwrap_or_else(PoisonError::into_inner) = Some(Current { logger, level });
        let mut installed = Ok(());
        INSTALL.call_once(|| {
            install_panic_hook();
            installed = tracing::subscriber::set_global_default(ForeignSubscriber).map_err(|e| {
                KithError::Internal {
                    reason: format!("another tracing subscriber is installed: {e}"),
                }
            });
        });
        // Callsites cached their interest under the previous level.
        tracing::callsite::rebuild_interest_cache();
        installed
    })
}

/// Stops sending logs to the app's logger (panics go to stderr only, as before).
#[uniffi::export]
pub fn clear_logger() {
    *CURRENT.write().unwrap_or_else(PoisonError::into_inner) = None;
    tracing::callsite::rebuild_interest_cache();
}

fn current_level() -> Option<LogLevel> {
    CURRENT
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map(|c| c.level)
}

/// Hands `record` to the app's logger, unless this thread is already inside it.
fn emit(record: LogRecord) {
    if IN_LOGGER.with(std::cell::Cell::get) {
        return;
    }
    let logger = match CURRENT
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        Some(c) if record.level <= c.level => Arc::clone(&c.logger),
        _ => return,
    };
    IN_LOGGER.with(|f| f.set(true));
    // A logger that throws must not take the library down with it (nor be logged: that
    // would call it again).
    let _ = catch_unwind(AssertUnwindSafe(|| logger.log(record)));
    IN_LOGGER.with(|f| f.set(false));
}

fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = crate::guard::panic_message(info.payload());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let backtrace = std::backtrace::Backtrace::force_capture();
        emit(LogRecord {
            level: LogLevel::Error,
            target: "panic".into(),
            message: format!("panic{at}: {message}\n{backtrace}"),
        });
        previous(info);
    }));
}

/// The subscriber behind [`set_logger`]: events only, filtered by the current level.
struct ForeignSubscriber;

impl tracing::Subscriber for ForeignSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        current_level().is_some_and(|l| l.filter() >= *metadata.level())
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(current_level().map_or(tracing::level_filters::LevelFilter::OFF, LogLevel::filter))
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        // Spans are not tracked; every one gets the same id.
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let mut text = Text::default();
        event.record(&mut text);
        let mut message = text.message;
        if !text.fields.is_empty() {
            if !message.is_empty() {
                message.push(' ');
            }
            message.push_str(&text.fields);
        }
        emit(LogRecord {
            level: LogLevel::of(*metadata.level()),
            target: metadata.target().to_string(),
            message,
        });
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// An event's `message` and its other fields as `key=value`.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.push(field, format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.push(field, format_args!("{value:?}"));
        }
    }
}

impl Text {
    fn push(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{}={value}", field.name());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<LogRecord>>);

    impl KithLogger for Recorder {
        fn log(&self, record: LogRecord) -> Result<(), KithError> {
            self.0.lock().unwrap().push(record);
            Ok(())
        }
    }

    /// One test touches the process-wide logger, so nothing races on it.
    #[test]
    fn events_at_the_level_and_panics_reach_the_logger_and_clear_stops_them() {
        let rec = Arc::new(Recorder::default());
        set_logger(rec.clone(), LogLevel::Info).unwrap();
        tracing::info!(n = 3, "opened the store");
        tracing::debug!("too detailed");
        let _ = crate::guard::guard("op", || -> KithResult<()> {
            #[allow(clippy::panic)]
            {
                panic!("boom for the logger")
            }
        });
        clear_logger();
        tracing::warn!("after clear");
        let got = rec.0.lock().unwrap().clone();
        assert_eq!(got[0].level, LogLevel::Info);
        assert_eq!(got[0].message, "opened the store n=3");
        assert!(got[0].target.contains("logging"), "{:?}", got[0]);
        assert!(got.iter().all(|r| !r.message.contains("too detailed")));
        assert!(got.iter().all(|r| !r.message.contains("after clear")));
        let panic = got.iter().find(|r| r.target == "panic").expect("the panic");
        assert_eq!(panic.level, LogLevel::Error);
        assert!(panic.message.contains("boom for the logger"), "{panic:?}");
        assert!(panic.message.contains("logging.rs"), "{panic:?}");
    }
}
