//! Waiting for the operating system to ask the process to stop, so that an app can shut its session down
//! cleanly (peers then see it leave at once, and its mDNS advertisement is withdrawn) instead of vanishing.

use std::future::Future;

/// Which request to stop arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopSignal {
    /// `SIGINT` on Unix (Ctrl-C in a terminal), Ctrl-C or Ctrl-Break elsewhere.
    Interrupt,
    /// `SIGTERM` on Unix (what `kill`, systemd and container runtimes send).
    Terminate,
}

/// Why [`shutdown_signal`] could not listen for signals.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// It was called outside a Tokio runtime.
    #[error("listening for signals needs a Tokio runtime")]
    NoRuntime,
    /// The operating system refused to install the handler.
    #[error("cannot listen for signals: {0}")]
    Install(#[from] std::io::Error),
}

/// Starts listening for a request to stop the process: `SIGINT` or `SIGTERM` on Unix, Ctrl-C elsewhere. The
/// returned future resolves when one arrives; await it (for example in a `tokio::select!` next to the app's
/// work) and then call [`crate::Session::shutdown`].
///
/// The handlers are installed by this call, before the future is first polled: call it early, as a signal
/// that arrives before then stops the process the default way. Once installed they replace the default
/// action for the rest of the process, so a second Ctrl-C no longer kills it: an app that wants that must exit
/// on its own. Call it on a Tokio runtime.
///
/// ```no_run
/// # async fn run(session: multipeer::Session) -> Result<(), Box<dyn std::error::Error>> {
/// let stop = multipeer::shutdown_signal()?;
/// stop.await;
/// session.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub fn shutdown_signal() -> Result<impl Future<Output = StopSignal> + Send + 'static, SignalError> {
    tokio::runtime::Handle::try_current().map_err(|_| SignalError::NoRuntime)?;
    listen()
}

#[cfg(unix)]
fn listen() -> Result<impl Future<Output = StopSignal> + Send + 'static, SignalError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => StopSignal::Interrupt,
            _ = terminate.recv() => StopSignal::Terminate,
        }
    })
}

#[cfg(windows)]
fn listen() -> Result<impl Future<Output = StopSignal> + Send + 'static, SignalError> {
    let mut ctrl_c = tokio::signal::windows::ctrl_c()?;
    let mut ctrl_break = tokio::signal::windows::ctrl_break()?;
    Ok(async move {
        tokio::select! {
            _ = ctrl_c.recv() => StopSignal::Interrupt,
            _ = ctrl_break.recv() => StopSignal::Interrupt,
        }
    })
}

#[cfg(not(any(unix, windows)))]
fn listen() -> Result<impl Future<Output = StopSignal> + Send + 'static, SignalError> {
    Ok(async move {
        let _ = tokio::signal::ctrl_c().await;
        StopSignal::Interrupt
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn outside_a_runtime_it_says_so() {
        assert!(matches!(shutdown_signal(), Err(SignalError::NoRuntime)));
    }

    #[tokio::test]
    async fn a_terminate_signal_resolves_it() {
        let stop = shutdown_signal().unwrap();
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::TERM).unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), stop).await;
        assert_eq!(got.unwrap(), StopSignal::Terminate);
    }
}
