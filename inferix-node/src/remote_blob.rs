//! Blob storage reached through a manager connection: what a worker or
//! client on another machine uses when it cannot (or may not) talk to the
//! object store directly. Transfers are chunked and flow-controlled, never
//! whole files in memory.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use inferix_core::blob::{BlobError, BlobMeta, BlobReader, BlobStore};
use inferix_core::protocol::{ErrorCode, Message};
use inferix_core::ContentHash;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::mpsc;

use crate::rpc::RpcPeer;

/// Bytes per chunk message.
pub(crate) const CHUNK: usize = 256 * 1024;

/// A [`BlobStore`] whose bytes move over a manager connection.
pub struct RemoteBlobStore {
    peer: Arc<RpcPeer>,
    max: u64,
}

impl RemoteBlobStore {
    pub(crate) fn new(peer: Arc<RpcPeer>, max: u64) -> Self {
        Self { peer, max }
    }

    /// `direct` when the node was given a store it can reach, otherwise
    /// blobs through the manager connection `peer`, whose store takes
    /// blobs up to `max` bytes.
    pub(crate) fn unless_direct(
        direct: &Option<Arc<dyn BlobStore>>,
        peer: &Arc<RpcPeer>,
        max: u64,
    ) -> Arc<dyn BlobStore> {
        match direct {
            Some(b) => b.clone(),
            None => Arc::new(Self::new(peer.clone(), max)),
        }
    }
}

fn refused(code: ErrorCode, message: String, hash: Option<ContentHash>, max: u64) -> BlobError {
    match (code, hash) {
        (ErrorCode::NotFound, Some(h)) => BlobError::NotFound(h),
        (ErrorCode::TooLarge, _) => BlobError::TooLarge { limit: max },
        _ => BlobError::Backend(message),
    }
}

fn transport(e: inferix_transport::TransportError) -> BlobError {
    BlobError::Backend(e.to_string())
}

#[async_trait]
impl BlobStore for RemoteBlobStore {
    async fn put(&self, mut reader: BlobReader) -> Result<BlobMeta, BlobError> {
        let id = self.peer.next_id();
        let mut reply = self.peer.expect_reply(id);
        let mut buf = vec![0u8; CHUNK];
        let mut pending: Option<Vec<u8>> = None;
        loop {
            let n = read_full(&mut reader, &mut buf)
                .await
                .inspect_err(|_| self.peer.forget(id))?;
            let last = n < buf.len();
            // Hold one chunk back so the last one is sent with `last: true`.
            if let Some(prev) = pending.take() {
                self.peer
                    .send_as(
                        id,
                        Message::BlobPut {
                            data: prev,
                            last: false,
                        },
                    )
                    .await
                    .map_err(transport)?;
            }
            if let Ok(early) = reply.try_recv() {
                return match early {
                    Message::Error { code, message } => Err(refused(code, message, None, self.max)),
                    other => Err(BlobError::Backend(format!("unexpected {}", other.kind()))),
                };
            }
            if last {
                self.peer
                    .send_as(
                        id,
                        Message::BlobPut {
                            data: buf[..n].to_vec(),
                            last: true,
                        },
                    )
                    .await
                    .map_err(transport)?;
                break;
            }
            pending = Some(buf.clone());
        }
        match reply
            .await
            .map_err(|_| BlobError::Backend("connection lost during upload".into()))?
        {
            Message::BlobStored { hash, size } => Ok(BlobMeta { hash, size }),
            Message::Error { code, message } => Err(refused(code, message, None, self.max)),
            other => Err(BlobError::Backend(format!("unexpected {}", other.kind()))),
        }
    }

    async fn get(&self, hash: ContentHash) -> Result<BlobReader, BlobError> {
        let (id, mut rx) = self
            .peer
            .stream(Message::BlobGet { hash })
            .await
            .map_err(transport)?;
        // The first reply tells apart "not found" from a download.
        let first = rx
            .recv()
            .await
            .ok_or_else(|| BlobError::Backend("connection lost".into()))?;
        let (data, last) = match first {
            Message::BlobChunk { data, last } => (data, last),
            Message::Error { code, message } => {
                self.peer.forget(id);
                return Err(refused(code, message, Some(hash), self.max));
            }
            other => {
                self.peer.forget(id);
                return Err(BlobError::Backend(format!("unexpected {}", other.kind())));
            }
        };
        let reader = ChunkReader {
            rx,
            buf: data,
            pos: 0,
            done: last,
            on_drop: Some((self.peer.clone(), id)),
        };
        Ok(Box::pin(reader))
    }

    async fn size(&self, hash: ContentHash) -> Result<Option<u64>, BlobError> {
        match self
            .peer
            .request(Message::BlobSize { hash })
            .await
            .map_err(transport)?
        {
            Message::BlobSizeReply { size } => Ok(size),
            Message::Error { code, message } => Err(refused(code, message, Some(hash), self.max)),
            other => Err(BlobError::Backend(format!("unexpected {}", other.kind()))),
        }
    }

    fn max_blob_size(&self) -> u64 {
        self.max
    }
}

/// Fills `buf` unless the reader ends first; returns the bytes read.
async fn read_full(r: &mut BlobReader, buf: &mut [u8]) -> Result<usize, BlobError> {
    let mut n = 0;
    while n < buf.len() {
        let k = r.read(&mut buf[n..]).await?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

/// Reads chunk messages (`BlobChunk` of a download or `BlobPut` of an
/// upload) as one byte stream; the channel closing early is an error, so a
/// transfer cut short never passes for a complete blob.
pub(crate) struct ChunkReader {
    rx: mpsc::Receiver<Message>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    on_drop: Option<(Arc<RpcPeer>, u64)>,
}

impl ChunkReader {
    /// A reader over chunks still to arrive on `rx`.
    pub(crate) fn new(rx: mpsc::Receiver<Message>) -> Self {
        Self {
            rx,
            buf: Vec::new(),
            pos: 0,
            done: false,
            on_drop: None,
        }
    }
}

impl Drop for ChunkReader {
    fn drop(&mut self) {
        if let Some((peer, id)) = &self.on_drop {
            peer.forget(*id);
        }
    }
}

impl AsyncRead for ChunkReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.pos < self.buf.len() {
                let n = (self.buf.len() - self.pos).min(out.remaining());
                let pos = self.pos;
                out.put_slice(&self.buf[pos..pos + n]);
                self.pos += n;
                return Poll::Ready(Ok(()));
            }
            if self.done {
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "transfer cut short",
                    )))
                }
                Poll::Ready(Some(
                    Message::BlobChunk { data, last } | Message::BlobPut { data, last },
                )) => {
                    self.buf = data;
                    self.pos = 0;
                    self.done = last;
                }
                Poll::Ready(Some(Message::Error { message, .. })) => {
                    return Poll::Ready(Err(io::Error::other(message)))
                }
                Poll::Ready(Some(other)) => {
                    return Poll::Ready(Err(io::Error::other(format!(
                        "unexpected {}",
                        other.kind()
                    ))))
                }
            }
        }
    }
}
