//! Request/response over a [`Connection`]: requests carry an id, replies echo
//! it, and unsolicited pushes go to a separate channel. A request may also
//! open a stream of replies (blob downloads).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use inferix_core::protocol::{Envelope, Message};
use inferix_transport::{Connection, MessageSender, TransportError};
use tokio::sync::{mpsc, oneshot};

enum Waiter {
    Once(oneshot::Sender<Message>),
    Stream(mpsc::Sender<Message>),
}

type Pending = Arc<Mutex<HashMap<u64, Waiter>>>;

/// Replies buffered per stream before the connection's reader waits.
const STREAM_BUFFER: usize = 8;

/// The caller side of a connection.
pub(crate) struct RpcPeer {
    sender: Arc<dyn MessageSender>,
    pending: Pending,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

impl RpcPeer {
    /// Starts reading `conn`; pushes (id 0) and unmatched replies go to the
    /// returned receiver.
    pub(crate) fn start(conn: Connection) -> (Self, mpsc::UnboundedReceiver<Envelope>) {
        let Connection {
            sender,
            mut receiver,
            ..
        } = conn;
        let pending: Pending = Arc::default();
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let p = pending.clone();
        let reader = tokio::spawn(async move {
            while let Ok(Some(env)) = receiver.recv().await {
                let waiter = if env.id != 0 { take(&p, env.id) } else { None };
                match waiter {
                    Some(Waiter::Once(w)) => {
                        let _ = w.send(env.body);
                    }
                    Some(Waiter::Stream(tx)) => {
                        // Waiting here is the backpressure of a download.
                        if tx.send(env.body).await.is_ok() {
                            lock(&p).insert(env.id, Waiter::Stream(tx));
                        }
                    }
                    None => {
                        if push_tx.send(env).is_err() {
                            break;
                        }
                    }
                }
            }
            // Dropping the waiters wakes every caller with an error.
            lock(&p).clear();
        });
        (
            Self {
                sender,
                pending,
                next_id: AtomicU64::new(1),
                reader,
            },
            push_rx,
        )
    }

    /// A fresh request id.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `body` and waits for the reply.
    pub(crate) async fn request(&self, body: Message) -> Result<Message, TransportError> {
        let id = self.next_id();
        let rx = self.expect_reply(id);
        self.send_as(id, body)
            .await
            .inspect_err(|_| self.forget(id))?;
        rx.await.map_err(|_| lost())
    }

    /// Registers interest in the reply to `id` before sending it.
    pub(crate) fn expect_reply(&self, id: u64) -> oneshot::Receiver<Message> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, Waiter::Once(tx));
        rx
    }

    /// Sends `body` and returns the stream of its replies; call
    /// [`RpcPeer::forget`] with the id when done.
    pub(crate) async fn stream(
        &self,
        body: Message,
    ) -> Result<(u64, mpsc::Receiver<Message>), TransportError> {
        let id = self.next_id();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        lock(&self.pending).insert(id, Waiter::Stream(tx));
        self.send_as(id, body)
            .await
            .inspect_err(|_| self.forget(id))?;
        Ok((id, rx))
    }

    /// Stops routing replies to `id`.
    pub(crate) fn forget(&self, id: u64) {
        lock(&self.pending).remove(&id);
    }

    /// Sends `body` with envelope id `id`.
    pub(crate) async fn send_as(&self, id: u64, body: Message) -> Result<(), TransportError> {
        self.sender.send(Envelope::with_id(id, body)).await
    }

    /// Sends a message that expects no reply.
    pub(crate) async fn push(&self, body: Message) -> Result<(), TransportError> {
        self.sender.send(Envelope::push(body)).await
    }

    /// Closes the connection.
    pub(crate) fn close(&self, reason: &str) {
        self.sender.close(reason);
    }
}

impl Drop for RpcPeer {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn lost() -> TransportError {
    TransportError::Closed(Some("connection lost before the reply".into()))
}

fn take(p: &Pending, id: u64) -> Option<Waiter> {
    lock(p).remove(&id)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
