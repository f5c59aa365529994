//! Accepting connections: a listener hands out admitted connections.

use super::*;

pub(super) struct QuicListener {
    pub(super) endpoint: Endpoint,
    pub(super) addr: String,
    pub(super) incoming: mpsc::Receiver<Connection>,
    pub(super) task: JoinHandle<()>,
}

impl Drop for QuicListener {
    fn drop(&mut self) {
        self.task.abort();
        // Stop answering handshakes; the socket itself lives on while
        // connections accepted through it do.
        self.endpoint.set_server_config(None);
    }
}

#[async_trait]
impl Listener for QuicListener {
    async fn accept(&mut self) -> Result<Connection, TransportError> {
        self.incoming
            .recv()
            .await
            .ok_or(TransportError::Closed(Some("listener stopped".into())))
    }

    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

/// Handshakes run in their own tasks, so that a slow or hostile client
/// cannot hold up others; only admitted connections reach `accept`.
pub(super) async fn accept_loop(
    endpoint: Endpoint,
    tx: mpsc::Sender<Connection>,
    handshake_timeout: Duration,
    settings: ConnSettings,
) {
    while let Some(incoming) = endpoint.accept().await {
        let tx = tx.clone();
        let remote = incoming.remote_address();
        let settings = settings.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, server_handshake(incoming, settings))
                .await
            {
                Ok(Ok(conn)) => {
                    if let Err(mpsc::error::SendError(conn)) = tx.send(conn).await {
                        conn.sender.close("listener stopped");
                    }
                }
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "incoming connection failed"),
                Err(_) => {
                    tracing::debug!(%remote, "incoming connection timed out during the handshake")
                }
            }
        });
    }
}
