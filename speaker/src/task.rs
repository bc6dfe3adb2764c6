//! Task ownership: a spawned task that ends when its owner drops it, so no task outlives the
//! thing that started it.

use tokio::task::JoinHandle;

/// Aborts its task when dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl AbortOnDrop {
    /// Aborts the task and waits until it has stopped.
    pub(crate) async fn stop(&mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
