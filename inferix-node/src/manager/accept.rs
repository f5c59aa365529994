//! The accept loop: one reader task per connection; blob requests of admitted
//! peers are served beside the manager loop.

use inferix_core::blob::BlobError;

use super::*;
use crate::blob_access::BlobAccess;
use crate::blob_service::WriteFailure;

pub(super) async fn accept_loop(
    listener: &mut dyn Listener,
    tx: mpsc::Sender<Input>,
    blobs: Arc<dyn BlobStore>,
    access: BlobAccess,
    metrics: super::metrics::SharedMetrics,
    hello_timeout: Duration,
) {
    let mut next: ConnId = 1;
    loop {
        let conn = match listener.accept().await {
            Ok(c) => c,
            Err(TransportError::Closed(_)) => return,
            Err(e) => {
                warn!(error = %e, "accept failed");
                continue;
            }
        };
        let id = next;
        next += 1;
        let Connection {
            peer,
            sender,
            mut receiver,
            ..
        } = conn;
        let failures = tx.clone();
        let on_write_failure: WriteFailure = Arc::new(move |e: &BlobError| {
            // A write failure is seen again on the next write: when the
            // loop is that far behind, one report may be dropped.
            let _ = failures.try_send(Input::StorageFailed(e.to_string()));
        });
        let mut blob_service = BlobService::new(
            blobs.clone(),
            sender.clone(),
            on_write_failure,
            access.clone(),
            id,
        )
        .metered(metrics.clone());
        if tx
            .send(Input::Connected(id, peer, sender.clone()))
            .await
            .is_err()
        {
            return;
        }
        let tx = tx.clone();
        // A timer, not a timeout around `recv`: a frame half read when a
        // timeout fired would be lost.
        let (timer_access, timer_sender) = (access.clone(), sender.clone());
        tokio::spawn(async move {
            tokio::time::sleep(hello_timeout).await;
            let greeted = timer_access.is_admitted(id);
            if !greeted {
                debug!(conn = id, "no hello in time; closing");
                timer_sender.close("no hello in time");
            }
        });
        let access = access.clone();
        tokio::spawn(async move {
            loop {
                match receiver.recv().await {
                    Ok(Some(env)) if BlobService::handles(&env.body) => {
                        if access.is_admitted(id) {
                            // Boxed: the handler's state is then allocated only while a blob
                            // moves, not kept inline in every idle reader task.
                            Box::pin(blob_service.handle(env)).await;
                        } else {
                            let refusal = Message::error(
                                ErrorCode::Unauthorized,
                                "say hello before moving blobs",
                            );
                            let _ = sender.send(Envelope::with_id(env.id, refusal)).await;
                        }
                    }
                    Ok(Some(env)) => {
                        if tx.send(Input::Received(id, Box::new(env))).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        debug!(conn = id, error = %e, "connection error");
                        break;
                    }
                }
            }
            let _ = tx.send(Input::Disconnected(id)).await;
        });
    }
}
