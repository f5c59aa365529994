//! Blobs moved through a manager connection (what a client or worker that
//! cannot reach the object store uses) behave like any other blob store:
//! the shared blob suite runs against a client's store of a real manager.

use std::sync::{Arc, Mutex};

use inferix_core::blob::conformance::{self, test_all};
use inferix_core::blob::BlobStore;
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ManagerBuilder, ManagerHandle};
use inferix_storage::ObjectBlobStore;
use inferix_transport::{InProcNetwork, NodeIdentity};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blobs_through_a_manager_pass_the_blob_conformance_suite() {
    // Each case gets a fresh manager with a fresh store; the managers and
    // clients live until the suite ends.
    let keep: Arc<Mutex<Vec<(ManagerHandle, Client)>>> = Arc::default();
    let build = || {
        let keep = keep.clone();
        async move {
            let net = InProcNetwork::new();
            let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
            let blobs: Arc<dyn BlobStore> = Arc::new(
                ObjectBlobStore::in_memory().with_max_blob_size(conformance::SUITE_MIN_LIMIT),
            );
            let manager =
                ManagerBuilder::new(Arc::new(net.node(NodeIdentity::generate())), store, blobs)
                    .build()
                    .start()
                    .await
                    .unwrap();
            let client = Client::connect(&net.node(NodeIdentity::generate()), manager.addr(), None)
                .await
                .unwrap();
            let remote = client.blob_store();
            keep.lock().unwrap().push((manager, client));
            remote
        }
    };
    test_all(build).await;
    let kept = std::mem::take(&mut *keep.lock().unwrap());
    for (manager, client) in kept {
        drop(client);
        manager.shutdown().await;
    }
}
