//! One bounded outbound queue per peer, emptied by a writer task of its own.
//!
//! The manager loop never waits on a peer: a transport send waits while the
//! peer's flow-control window is full, so a single client that stops
//! reading would otherwise stall leasing, verification and housekeeping for
//! everyone. Here the loop only puts envelopes in the peer's queue; a peer
//! that lets its queue fill up is not reading and is disconnected.

use std::sync::Arc;

use inferix_core::protocol::Envelope;
use inferix_transport::MessageSender;
use tokio::sync::{mpsc, watch};
use tracing::debug;

/// Envelopes a peer may have waiting before it is taken not to read. A
/// live peer is far below it (a watcher of a busy job gets one event per
/// accepted task); the queue allocates only what is waiting.
pub(crate) const OUTBOUND_CAPACITY: usize = 4096;

/// Why an envelope was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The peer's queue is full: it does not read.
    Full,
    /// The connection is closed.
    Closed,
}

/// The sending side of one peer's connection.
pub(crate) struct Outbound {
    queue: mpsc::Sender<Envelope>,
    sender: Arc<dyn MessageSender>,
    stop: watch::Sender<bool>,
}

impl Outbound {
    /// Starts the writer task of `sender` with room for `capacity`
    /// envelopes.
    pub(crate) fn spawn(sender: Arc<dyn MessageSender>, capacity: usize) -> Self {
        let (queue, mut rx) = mpsc::channel::<Envelope>(capacity.max(1));
        let (stop, mut stopped) = watch::channel(false);
        let writer = sender.clone();
        tokio::spawn(async move {
            // Ends when the connection is closed here (even while a send
            // waits on a peer that does not read), when a send fails, or
            // when the queue is dropped and empty.
            loop {
                let env = tokio::select! {
                    env = rx.recv() => match env {
                        Some(env) => env,
                        None => return,
                    },
                    _ = stopped.wait_for(|s| *s) => return,
                };
                tokio::select! {
                    sent = writer.send(env) => {
                        if let Err(e) = sent {
                            debug!(error = %e, "send failed; writer stops");
                            return;
                        }
                    }
                    _ = stopped.wait_for(|s| *s) => return,
                }
            }
        });
        Self {
            queue,
            sender,
            stop,
        }
    }

    /// Queues one envelope without waiting.
    pub(crate) fn push(&self, env: Envelope) -> Result<(), Refused> {
        if *self.stop.borrow() {
            return Err(Refused::Closed);
        }
        self.queue.try_send(env).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refused::Full,
            mpsc::error::TrySendError::Closed(_) => Refused::Closed,
        })
    }

    /// Closes the connection; what is still queued is dropped.
    pub(crate) fn close(&self, why: &str) {
        self.stop.send_replace(true);
        self.sender.close(why);
    }

    /// Closes the connection once `linger` has passed, time for what is
    /// queued (a refusal) to reach the peer; closing at once would discard
    /// it.
    pub(crate) fn close_after(&self, linger: std::time::Duration, why: String) {
        let (stop, sender) = (self.stop.clone(), self.sender.clone());
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            stop.send_replace(true);
            sender.close(&why);
        });
    }
}
