//! The manager's side of blob transfers over a connection, run by the
//! connection's own reader so a large transfer never passes through (or
//! stalls) the manager's central loop.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use inferix_core::blob::{BlobError, BlobStore};
use inferix_core::protocol::{Envelope, ErrorCode, Message};
use inferix_transport::MessageSender;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, Semaphore};
use tracing::debug;

use crate::blob_access::{BlobAccess, ConnId};
use crate::manager::metrics::SharedMetrics;
use crate::remote_blob::{ChunkReader, CHUNK};

struct Upload {
    tx: mpsc::Sender<Message>,
}

/// Blob transfers (downloads and uploads together) one connection may run
/// at once. Nodes move one blob at a time; the limit only stops a peer
/// from opening store reads and writes without end.
pub(crate) const MAX_TRANSFERS_PER_PEER: usize = 8;

/// Refused uploads whose remaining chunks are still to be skipped.
const MAX_SKIPPED_UPLOADS: usize = 1_024;

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
    /// Downloads in flight hold a permit each.
    downloads: Arc<Semaphore>,
    /// What this connection may read.
    access: BlobAccess,
    conn: ConnId,
    /// Counts the bytes moved, when the manager keeps metrics.
    metrics: Option<SharedMetrics>,
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
        access: BlobAccess,
        conn: ConnId,
    ) -> Self {
        Self {
            blobs,
            sender,
            uploads: HashMap::new(),
            failed: HashSet::new(),
            on_write_failure,
            downloads: Arc::new(Semaphore::new(MAX_TRANSFERS_PER_PEER)),
            access,
            conn,
            metrics: None,
        }
    }

    /// Counts the bytes this service moves into `metrics`.
    pub(crate) fn metered(mut self, metrics: SharedMetrics) -> Self {
        self.metrics = Some(metrics);
        self
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
            // Exactly what a missing blob gets: a peer learns nothing of
            // blobs it was not given.
            Message::BlobSize { hash } if !self.access.may_read(self.conn, hash) => {
                let reply = Message::BlobSizeReply { size: None };
                let _ = self.sender.send(Envelope::with_id(id, reply)).await;
            }
            Message::BlobGet { hash } if !self.access.may_read(self.conn, hash) => {
                let reply = error_reply(&BlobError::NotFound(hash));
                let _ = self.sender.send(Envelope::with_id(id, reply)).await;
            }
            Message::BlobSize { hash } => {
                let reply = match self.blobs.size(hash).await {
                    Ok(size) => Message::BlobSizeReply { size },
                    Err(e) => error_reply(&e),
                };
                let _ = self.sender.send(Envelope::with_id(id, reply)).await;
            }
            Message::BlobGet { hash } => {
                let permit = self
                    .has_transfer_slot()
                    .then(|| self.downloads.clone().try_acquire_owned().ok())
                    .flatten();
                let Some(permit) = permit else {
                    let _ = self.sender.send(Envelope::with_id(id, too_many())).await;
                    return;
                };
                let blobs = self.blobs.clone();
                let sender = self.sender.clone();
                let metrics = self.metrics.clone();
                tokio::spawn(async move {
                    let _permit = permit;
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
                        if let Some(m) = &metrics {
                            m.blob("out", n as u64);
                        }
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
                if let Some(m) = &self.metrics {
                    m.blob("in", data.len() as u64);
                }
                if self.failed.contains(&id) {
                    if last {
                        self.failed.remove(&id);
                    }
                    return;
                }
                if !self.uploads.contains_key(&id) && !self.has_transfer_slot() {
                    let _ = self.sender.send(Envelope::with_id(id, too_many())).await;
                    if !last {
                        self.skip(id);
                    }
                    return;
                }
                let upload = self.uploads.entry(id).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(4);
                    let blobs = self.blobs.clone();
                    let sender = self.sender.clone();
                    let on_write_failure = self.on_write_failure.clone();
                    let (access, conn) = (self.access.clone(), self.conn);
                    tokio::spawn(async move {
                        let reply = match blobs.put(Box::pin(ChunkReader::new(rx))).await {
                            Ok(meta) => {
                                // What one uploaded one may read back.
                                access.grant(conn, [meta.hash]);
                                Message::BlobStored {
                                    hash: meta.hash,
                                    size: meta.size,
                                }
                            }
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
                        self.skip(id);
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

    /// Whether one more transfer fits this connection's limit.
    fn has_transfer_slot(&self) -> bool {
        let downloads = MAX_TRANSFERS_PER_PEER - self.downloads.available_permits();
        downloads + self.uploads.len() < MAX_TRANSFERS_PER_PEER
    }

    /// Skips the rest of refused upload `id`, within a bounded memory.
    fn skip(&mut self, id: u64) {
        if self.failed.len() >= MAX_SKIPPED_UPLOADS {
            // A peer that never finishes its refused uploads: forget the
            // oldest-looking one; its chunks then start a fresh upload,
            // which the limit refuses again.
            if let Some(&any) = self.failed.iter().next() {
                self.failed.remove(&any);
            }
        }
        self.failed.insert(id);
    }
}

fn too_many() -> Message {
    Message::error(
        ErrorCode::Unavailable,
        format!(
            "more than {MAX_TRANSFERS_PER_PEER} blob transfers at once on this connection; \
             retry when one has finished"
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use inferix_core::blob::BlobStoreExt;
    use inferix_storage::ObjectBlobStore;
    use inferix_transport::TransportError;

    use super::*;

    /// A peer that never reads a blob chunk: every download stays in
    /// flight. Everything else it is sent is kept.
    #[derive(Default)]
    struct Stalled {
        sent: Mutex<Vec<Envelope>>,
    }

    #[async_trait]
    impl MessageSender for Stalled {
        async fn send(&self, envelope: Envelope) -> Result<(), TransportError> {
            if matches!(envelope.body, Message::BlobChunk { .. }) {
                std::future::pending::<()>().await;
            }
            self.sent.lock().unwrap().push(envelope);
            Ok(())
        }
        fn close(&self, _reason: &str) {}
    }

    fn refusals(sent: &Stalled) -> Vec<u64> {
        sent.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|e| {
                matches!(
                    &e.body,
                    Message::Error {
                        code: ErrorCode::Unavailable,
                        ..
                    }
                )
            })
            .map(|e| e.id)
            .collect()
    }

    #[tokio::test]
    async fn one_connection_runs_a_bounded_number_of_transfers() {
        let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
        let meta = blobs.put_bytes(vec![3u8; 3 * CHUNK]).await.unwrap();
        let peer = Arc::new(Stalled::default());
        let access = BlobAccess::default();
        access.admit(1);
        access.grant(1, [meta.hash]);
        let mut service =
            BlobService::new(blobs, peer.clone(), Arc::new(|_: &BlobError| {}), access, 1);
        let n = MAX_TRANSFERS_PER_PEER as u64;
        for id in 1..=n + 4 {
            service
                .handle(Envelope::with_id(id, Message::BlobGet { hash: meta.hash }))
                .await;
        }
        assert_eq!(refusals(&peer), (n + 1..=n + 4).collect::<Vec<_>>());
        // Uploads count against the same limit: refused, and the rest of
        // the refused one is skipped rather than started afresh.
        let put = |last| Message::BlobPut {
            data: vec![1; 16],
            last,
        };
        service.handle(Envelope::with_id(100, put(false))).await;
        service.handle(Envelope::with_id(100, put(false))).await;
        service.handle(Envelope::with_id(100, put(true))).await;
        assert_eq!(refusals(&peer).last(), Some(&100));
        assert_eq!(
            refusals(&peer).len(),
            5,
            "one refusal per upload, not per chunk"
        );
        assert!(service.uploads.is_empty() && service.failed.is_empty());
    }
}
