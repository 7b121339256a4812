//! One shutdown signal for every task: SIGTERM or SIGINT (Ctrl-C) trips it once.

use tokio::sync::watch;

/// A cloneable handle that resolves when the process is asked to stop.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Listens for SIGTERM and SIGINT.
    pub(crate) fn on_signals() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let which = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = which, "stopping");
            let _ = tx.send(true);
        });
        Ok(Self { rx })
    }

    /// Resolves once shutdown has been asked for.
    pub(crate) async fn wait(mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}
