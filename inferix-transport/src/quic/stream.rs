//! The one envelope stream of a connection: its preamble handshake, and the
//! sender and receiver halves that frame envelopes on it.

use super::*;

/// Client side of the stream setup: open the stream, send the preamble, wait
/// for the server's echo (which also means we were admitted).
pub(super) async fn client_stream(
    conn: &quinn::Connection,
) -> Result<(SendStream, RecvStream), ConnectionOrOther> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(PREAMBLE)
        .await
        .or_else(preamble_write_error)?;
    let mut echo = [0u8; PREAMBLE.len()];
    recv.read_exact(&mut echo)
        .await
        .or_else(preamble_read_error)?;
    if &echo != PREAMBLE {
        conn.close(VarInt::from_u32(code::PROTOCOL), b"bad preamble");
        return Err(ConnectionOrOther::Other(
            "server answered with a bad preamble".into(),
        ));
    }
    Ok((send, recv))
}

/// Server side: the mirror of [`client_stream`].
pub(super) async fn server_handshake(
    incoming: quinn::Incoming,
    settings: ConnSettings,
) -> Result<(Connection, quinn::Connection), String> {
    let conn = incoming.await.map_err(|e| format!("handshake: {e}"))?;
    let peer = peer_node_id(&conn).map_err(|e| e.to_string())?;
    let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| format!("{peer}: {e}"))?;
    let mut preamble = [0u8; PREAMBLE.len()];
    recv.read_exact(&mut preamble)
        .await
        .map_err(|e| format!("{peer}: reading the preamble: {e}"))?;
    if &preamble != PREAMBLE {
        conn.close(VarInt::from_u32(code::PROTOCOL), b"bad preamble");
        return Err(format!("{peer}: bad preamble"));
    }
    send.write_all(PREAMBLE)
        .await
        .map_err(|e| format!("{peer}: writing the preamble: {e}"))?;
    Ok((wrap(conn.clone(), send, recv, peer, settings), conn))
}

/// What every connection of a transport shares.
#[derive(Clone)]
pub(super) struct ConnSettings {
    max_frame_size: u32,
    close_linger: Duration,
    closing: Arc<Closing>,
}

impl Inner {
    pub(super) fn conn_settings(&self) -> ConnSettings {
        ConnSettings {
            max_frame_size: self.config.max_frame_size,
            close_linger: self.config.close_linger,
            closing: self.closing.clone(),
        }
    }
}

pub(super) fn wrap(
    conn: quinn::Connection,
    send: SendStream,
    recv: RecvStream,
    peer: NodeId,
    settings: ConnSettings,
) -> Connection {
    let max_frame_size = settings.max_frame_size;
    Connection {
        peer,
        remote_addr: format!("{peer}@{}", conn.remote_address()),
        sender: Arc::new(QuicSender {
            conn: conn.clone(),
            send: Arc::new(tokio::sync::Mutex::new(send)),
            closed: Mutex::new(None),
            settings,
        }),
        receiver: Box::new(QuicReceiver {
            conn,
            recv,
            max_frame_size,
        }),
    }
}

pub(super) struct QuicSender {
    conn: quinn::Connection,
    /// Held for a whole frame so that concurrent senders never interleave.
    send: Arc<tokio::sync::Mutex<SendStream>>,
    /// Why `close` was called, once it was: later sends fail at once.
    closed: Mutex<Option<String>>,
    settings: ConnSettings,
}

#[async_trait]
impl MessageSender for QuicSender {
    async fn send(&self, envelope: Envelope) -> Result<(), TransportError> {
        if let Some(reason) = self
            .closed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(TransportError::Closed(Some(reason)));
        }
        let frame = encode_frame_with(PROTOCOL_VERSION, &envelope, self.settings.max_frame_size)?;
        // Waits for QUIC flow control: a slow reader slows the sender down.
        self.send
            .lock()
            .await
            .write_chunk(Bytes::from(frame))
            .await
            .map_err(write_error)
    }

    /// Closes like a socket: envelopes sent before still reach the peer
    /// (whose receiver then ends), later sends fail at once. The stream is
    /// finished now and the connection closed once the peer has acknowledged
    /// everything, or after the close linger; [`QuicTransport::wait_closed`]
    /// waits for that.
    fn close(&self, reason: &str) {
        {
            let mut closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
            if closed.is_some() {
                return;
            }
            *closed = Some(reason.to_string());
        }
        let conn = self.conn.clone();
        let reason = reason_bytes(reason).to_vec();
        let close = move || conn.close(VarInt::from_u32(code::CLOSED), &reason);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            close();
            return;
        };
        let guard = self.settings.closing.begin();
        let send = self.send.clone();
        let linger = self.settings.close_linger;
        runtime.spawn(async move {
            let delivered = async {
                // Behind any send in progress, so its frame is not cut.
                let mut send = send.lock().await;
                if send.finish().is_ok() {
                    let _ = send.stopped().await;
                }
            };
            let _ = tokio::time::timeout(linger, delivered).await;
            close();
            drop(guard);
        });
    }
}

pub(super) struct QuicReceiver {
    conn: quinn::Connection,
    recv: RecvStream,
    max_frame_size: u32,
}

impl QuicReceiver {
    /// Closes the connection over a frame we cannot accept and hands the
    /// error back, so that a bad peer costs one connection, not the node.
    fn reject(&self, e: TransportError) -> TransportError {
        let c = match e {
            TransportError::UnsupportedVersion { .. } => code::UNSUPPORTED_VERSION,
            _ => code::BAD_FRAME,
        };
        tracing::debug!(peer = %self.conn.remote_address(), error = %e, "closing connection over a bad frame");
        self.conn
            .close(VarInt::from_u32(c), reason_bytes(&e.to_string()));
        e
    }
}

#[async_trait]
impl MessageReceiver for QuicReceiver {
    async fn recv(&mut self) -> Result<Option<Envelope>, TransportError> {
        let mut prefix = [0u8; LENGTH_BYTES];
        match self.recv.read_exact(&mut prefix).await {
            Ok(()) => {}
            Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
            Err(ReadExactError::FinishedEarly(_)) => {
                return Err(self.reject(TransportError::BadFrame(
                    "stream ended inside a length prefix".into(),
                )))
            }
            Err(ReadExactError::ReadError(e)) => return read_error(e),
        }
        let len = match check_length(u32::from_be_bytes(prefix), self.max_frame_size) {
            Ok(len) => len,
            Err(e) => return Err(self.reject(e)),
        };
        // Keep the pieces as they arrive (no copy), so that a peer announcing
        // a large frame and sending nothing costs us nothing, then join them
        // with one copy into a buffer of the exact size; a frame that came
        // in one piece, as small messages do, is decoded where it lies.
        let mut pieces: Vec<Bytes> = Vec::new();
        let mut got = 0;
        while got < len {
            match self.recv.read_chunk(len - got, true).await {
                Ok(Some(chunk)) => {
                    got += chunk.bytes.len();
                    pieces.push(chunk.bytes);
                }
                Ok(None) => {
                    return Err(self.reject(TransportError::BadFrame(
                        "stream ended inside a frame".into(),
                    )))
                }
                Err(e) => return read_error(e),
            }
        }
        let decoded = match pieces.as_slice() {
            [one] => decode_body(one),
            many => {
                let mut body = Vec::with_capacity(len);
                for p in many {
                    body.extend_from_slice(p);
                }
                decode_body(&body)
            }
        };
        decoded.map(Some).map_err(|e| self.reject(e))
    }
}
