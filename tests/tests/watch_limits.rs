//! Watching is bounded per client connection: a job watched twice is
//! watched once (each event arrives once), a connection watches at most
//! `max_watches_per_client` jobs at a time (a further Watch is refused with
//! `InvalidRequest`, not queued), and a cancelled job frees its place.

use std::sync::Arc;

use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::protocol::{ErrorCode, JobEvent};
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ClientError, ManagerConfig};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{start_manager, submit_stand_in_job};
use inferix_transport::InProcNetwork;
use tokio::sync::mpsc::error::TryRecvError;

#[tokio::test(start_paused = true)]
async fn watches_are_deduplicated_bounded_and_released() {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let config = ManagerConfig {
        max_watches_per_client: 2,
        ..ManagerConfig::default()
    };
    let manager = start_manager(&net, store, blobs, config).await;
    let client = Client::connect(&net.transport(NodeId(300)), manager.addr(), None)
        .await
        .unwrap();
    // No workers: the jobs stay queued.
    let first = submit_stand_in_job(&client, 2, 8, 1).await;
    let second = submit_stand_in_job(&client, 2, 8, 1).await;
    let third = submit_stand_in_job(&client, 2, 8, 1).await;

    let mut a = client.watch(first).await.unwrap();
    let mut b = client.watch(first).await.unwrap();
    let _second = client.watch(second).await.unwrap();
    match client.watch(third).await {
        Err(ClientError::Refused { code, message }) => {
            assert_eq!(code, ErrorCode::InvalidRequest);
            assert!(message.contains("limit"), "{message}");
        }
        other => panic!("a third watched job must be refused, got {other:?}"),
    }

    // One Cancelled per receiver, not one per Watch sent.
    client.cancel(first).await.unwrap();
    for rx in [&mut a, &mut b] {
        loop {
            match rx.recv().await.expect("events until cancelled") {
                JobEvent::Cancelled => break,
                _ => continue,
            }
        }
    }
    // Messages on one connection arrive in order: once a later reply is
    // in, any duplicate event would have been delivered already.
    client.status(second).await.unwrap();
    for rx in [&mut a, &mut b] {
        assert!(
            !matches!(rx.try_recv(), Ok(JobEvent::Cancelled)),
            "an event arrived twice"
        );
        assert!(matches!(
            rx.try_recv(),
            Err(TryRecvError::Empty | TryRecvError::Disconnected)
        ));
    }

    // The cancelled job no longer counts against the connection.
    client.watch(third).await.unwrap();
    manager.shutdown().await;
}
