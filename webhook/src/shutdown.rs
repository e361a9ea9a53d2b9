//! Shutdown: the first SIGTERM or SIGINT starts a drain (readiness drops, the listener
//! closes, open connections finish); a second signal exits at once.

use tokio::sync::watch;

/// Starts a drain when triggered; cloneable receivers wait for it.
#[derive(Debug, Clone)]
pub struct Drain {
    rx: watch::Receiver<bool>,
}

/// Triggers the drain.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

/// A drain handle pair.
pub fn channel() -> (Trigger, Drain) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx }, Drain { rx })
}

impl Trigger {
    /// Starts the drain.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl Drain {
    /// Whether the drain has started.
    pub fn is_draining(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once the drain has started (or the trigger is gone).
    pub async fn signaled(&mut self) {
        let _ = self.rx.wait_for(|d| *d).await;
    }
}

/// Waits for SIGTERM/SIGINT, triggers the drain, then exits the process on a second signal.
pub async fn on_signals(trigger: Trigger) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = int.recv() => tracing::info!("SIGINT: draining"),
    }
    trigger.trigger();
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::warn!("second signal: exiting without draining");
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_reaches_every_clone() {
        let (trigger, drain) = channel();
        let mut a = drain.clone();
        assert!(!drain.is_draining());
        let waiter = tokio::spawn(async move { a.signaled().await });
        trigger.trigger();
        waiter.await.unwrap();
        assert!(drain.is_draining());
        // A receiver created after the trigger resolves at once.
        let mut late = drain.clone();
        late.signaled().await;
    }
}
