//! Accepting connections: a listener hands out admitted connections.

use std::collections::HashMap;
use std::net::IpAddr;

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

/// How many connections a listener keeps, from one address and in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ConnLimits {
    pub(super) per_address: usize,
    pub(super) total: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            per_address: 1_024,
            total: 250_000,
        }
    }
}

/// Connections counted against [`ConnLimits`], per remote IP address.
#[derive(Default)]
struct Counts {
    by_address: HashMap<IpAddr, usize>,
    total: usize,
}

impl Counts {
    /// Counts one more connection from `ip`, unless a limit is reached.
    fn admit(&mut self, ip: IpAddr, limits: ConnLimits) -> bool {
        let from_ip = self.by_address.get(&ip).copied().unwrap_or(0);
        if from_ip >= limits.per_address || self.total >= limits.total {
            return false;
        }
        self.by_address.insert(ip, from_ip + 1);
        self.total += 1;
        true
    }

    fn release(&mut self, ip: IpAddr) {
        if let Some(n) = self.by_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.by_address.remove(&ip);
            }
            self.total -= 1;
        }
    }
}

/// Releases a connection's place when it ends, however it ends.
struct Place {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(self.ip);
    }
}

/// Handshakes run in their own tasks, so that a slow or hostile client
/// cannot hold up others; only admitted connections reach `accept`. A
/// connection over the limits is refused before its handshake is read.
pub(super) async fn accept_loop(
    endpoint: Endpoint,
    tx: mpsc::Sender<Connection>,
    handshake_timeout: Duration,
    limits: ConnLimits,
    settings: ConnSettings,
) {
    let counts = Arc::new(Mutex::new(Counts::default()));
    while let Some(incoming) = endpoint.accept().await {
        let remote = incoming.remote_address();
        let ip = remote.ip().to_canonical();
        let admitted = counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(ip, limits);
        if !admitted {
            tracing::debug!(%remote, "connection refused: too many connections");
            incoming.refuse();
            continue;
        }
        let place = Place {
            counts: counts.clone(),
            ip,
        };
        let tx = tx.clone();
        let settings = settings.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, server_handshake(incoming, settings))
                .await
            {
                Ok(Ok((conn, quic))) => {
                    if let Err(mpsc::error::SendError(conn)) = tx.send(conn).await {
                        conn.sender.close("listener stopped");
                    }
                    // The place is held for the connection's life.
                    quic.closed().await;
                    drop(place);
                }
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "incoming connection failed"),
                Err(_) => {
                    tracing::debug!(%remote, "incoming connection timed out during the handshake")
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hold_each_limit_and_release_places() {
        let limits = ConnLimits {
            per_address: 2,
            total: 3,
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut c = Counts::default();
        assert!(c.admit(a, limits) && c.admit(a, limits));
        assert!(!c.admit(a, limits), "third from one address");
        assert!(c.admit(b, limits));
        assert!(!c.admit(b, limits), "fourth in all");
        c.release(a);
        assert!(c.admit(b, limits));
        c.release(a);
        c.release(b);
        c.release(b);
        assert_eq!((c.total, c.by_address.len()), (0, 0));
    }
}
