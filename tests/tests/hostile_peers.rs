//! Peers that connect and then do not behave: a connection that never says
//! hello is closed once `hello_timeout` has passed, while a client that
//! did is served on.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ManagerConfig};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{seeded_identity, start_manager, submit_stand_in_job};
use inferix_transport::{InProcNetwork, Transport};

#[tokio::test(start_paused = true)]
async fn a_connection_without_a_hello_is_closed_after_the_hello_timeout() {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let config = ManagerConfig {
        hello_timeout: Duration::from_secs(5),
        ..ManagerConfig::default()
    };
    let manager = start_manager(&net, store, blobs, config).await;
    let client = Client::connect(&net.transport(NodeId(300)), manager.addr(), None)
        .await
        .unwrap();
    let job = submit_stand_in_job(&client, 2, 8, 1).await;

    let silent = net.node(seeded_identity(66));
    let opened = tokio::time::Instant::now();
    let mut conn = silent.connect(manager.addr()).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(60), conn.receiver.recv())
        .await
        .expect("the silent connection is closed within a minute");
    assert!(
        !matches!(end, Ok(Some(_))),
        "a peer that said nothing was sent {end:?}"
    );
    assert!(
        opened.elapsed() >= Duration::from_secs(5),
        "closed before its hello was due"
    );
    // The client that said hello was not closed with it.
    assert_eq!(client.status(job).await.unwrap().job.id, job);
    manager.shutdown().await;
}
