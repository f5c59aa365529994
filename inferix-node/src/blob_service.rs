//! The manager's side of blob transfers over a connection, run by the
//! connection's own reader so a large transfer never passes through (or
//! stalls) the manager's central loop.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use inferix_core::blob::{BlobError, BlobStore};
use inferix_core::protocol::{Envelope, ErrorCode, Message};
use inferix_transport::MessageSender;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tracing::debug;

use crate::remote_blob::{ChunkReader, CHUNK};

struct Upload {
    tx: mpsc::Sender<Message>,
}

/// Told of every upload the store itself failed (full disk, unreachable
/// object store): such a failure is the manager's, whoever uploaded.
pub(crate) type WriteFailure = Arc<dyn Fn(&BlobError) + Send + Sync>;

/// Blob requests of one connection.
pub(crate) struct BlobService {
    blobs: Arc<dyn BlobStore>,
    sender: Arc<dyn MessageSender>,
    uploads: HashMap<u64, Upload>,
    failed: HashSet<u64>,
    on_write_failure: WriteFailure,
}

fn error_reply(e: &BlobError) -> Message {
    match e {
        BlobError::NotFound(h) => {
            Message::error(ErrorCode::NotFound, format!("blob {h} not found"))
        }
        BlobError::TooLarge { limit } => Message::error(
            ErrorCode::TooLarge,
            format!("upload exceeds the limit of {limit} bytes"),
        ),
        other => Message::error(ErrorCode::Internal, other.to_string()),
    }
}

impl BlobService {
    pub(crate) fn new(
        blobs: Arc<dyn BlobStore>,
        sender: Arc<dyn MessageSender>,
        on_write_failure: WriteFailure,
    ) -> Self {
        Self {
            blobs,
            sender,
            uploads: HashMap::new(),
            failed: HashSet::new(),
            on_write_failure,
        }
    }

    /// Whether `body` is a blob message this service handles.
    pub(crate) fn handles(body: &Message) -> bool {
        matches!(
            body,
            Message::BlobGet { .. } | Message::BlobPut { .. } | Message::BlobSize { .. }
        )
    }

    /// Serves one blob message from an admitted peer.
    pub(crate) async fn handle(&mut self, env: Envelope) {
        let id = env.id;
        match env.body {
            Message::BlobSize { hash } => {
                let reply = match self.blobs.size(hash).await {
                    Ok(size) => Message::BlobSizeReply { size },
                    Err(e) => error_reply(&e),
                };
                let _ = self.sender.send(Envelope::with_id(id, reply)).await;
            }
            Message::BlobGet { hash } => {
                let blobs = self.blobs.clone();
                let sender = self.sender.clone();
                tokio::spawn(async move {
                    let mut r = match blobs.get(hash).await {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = sender.send(Envelope::with_id(id, error_reply(&e))).await;
                            return;
                        }
                    };
                    let mut buf = vec![0u8; CHUNK];
                    loop {
                        let mut n = 0;
                        while n < buf.len() {
                            match r.read(&mut buf[n..]).await {
                                Ok(0) => break,
                                Ok(k) => n += k,
                                Err(e) => {
                                    let _ = sender
                                        .send(Envelope::with_id(id, error_reply(&BlobError::Io(e))))
                                        .await;
                                    return;
                                }
                            }
                        }
                        let last = n < buf.len();
                        let chunk = Message::BlobChunk {
                            data: buf[..n].to_vec(),
                            last,
                        };
                        if sender.send(Envelope::with_id(id, chunk)).await.is_err() || last {
                            return;
                        }
                    }
                });
            }
            Message::BlobPut { data, last } => {
                if self.failed.contains(&id) {
                    if last {
                        self.failed.remove(&id);
                    }
                    return;
                }
                let upload = self.uploads.entry(id).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(4);
                    let blobs = self.blobs.clone();
                    let sender = self.sender.clone();
                    let on_write_failure = self.on_write_failure.clone();
                    tokio::spawn(async move {
                        let reply = match blobs.put(Box::pin(ChunkReader::new(rx))).await {
                            Ok(meta) => Message::BlobStored {
                                hash: meta.hash,
                                size: meta.size,
                            },
                            Err(e) => {
                                // Reported before the uploader hears of it,
                                // so the manager knows whose failure its
                                // report is.
                                if matches!(e, BlobError::Io(_) | BlobError::Backend(_)) {
                                    on_write_failure(&e);
                                }
                                error_reply(&e)
                            }
                        };
                        let _ = sender.send(Envelope::with_id(id, reply)).await;
                    });
                    Upload { tx }
                });
                // Waiting here is the upload's backpressure.
                if upload
                    .tx
                    .send(Message::BlobPut { data, last })
                    .await
                    .is_err()
                {
                    // The store gave up (too large); its error is on the way.
                    debug!(upload = id, "upload refused mid-stream");
                    self.uploads.remove(&id);
                    if !last {
                        self.failed.insert(id);
                    }
                    return;
                }
                if last {
                    self.uploads.remove(&id);
                }
            }
            _ => {}
        }
    }
}
