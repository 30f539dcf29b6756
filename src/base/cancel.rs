//! Shutdown and cancellation: a token many tasks can wait on, cancelled once by its
//! source (a `tokio::sync::watch` channel underneath).

/// Waits for, or checks, cancellation. Clones share one source.
#[derive(Clone)]
pub struct CancelToken(tokio::sync::watch::Receiver<bool>);

/// Cancels every token made from it.
pub struct CancelSource(tokio::sync::watch::Sender<bool>);

/// A new source and a first token of it.
pub fn new() -> (CancelSource, CancelToken) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    (CancelSource(tx), CancelToken(rx))
}

impl CancelSource {
    /// Cancels every token (now and later ones).
    pub fn cancel(&self) {
        let _ = self.0.send(true);
    }
    /// Another token of this source.
    pub fn token(&self) -> CancelToken {
        CancelToken(self.0.subscribe())
    }
}

impl CancelToken {
    /// Whether the source has cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }
    /// Resolves once the source cancels or is dropped (at once if it already has).
    pub async fn cancelled(&mut self) {
        let _ = self.0.wait_for(|v| *v).await;
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn every_token_sees_the_cancel() {
        let (src, mut a) = super::new();
        let mut b = src.token();
        assert!(!a.is_cancelled());
        src.cancel();
        a.cancelled().await;
        b.cancelled().await;
        assert!(a.is_cancelled() && b.is_cancelled() && src.token().is_cancelled());
    }
}
