//! Worker messages name their task: a result, a failure or a hand-back for
//! a task the sender does not hold now (a late message of an earlier lease,
//! or a made-up one) is refused and changes nothing, neither the sender's
//! current lease nor anybody else's task. A raw worker speaks the protocol
//! directly so that it can send what an honest worker never would.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::{NodeId, TaskId};
use inferix_core::protocol::{Envelope, ErrorCode, Hello, Message, Role};
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_core::task::{TaskResult, TaskStatus};
use inferix_core::ContentHash;
use inferix_node::{Client, ManagerConfig};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{seeded_identity, start_manager, submit_stand_in_job};
use inferix_transport::{Connection, InProcNetwork, Transport};

/// The next message with correlation id `id` (0: the next push of `kind`).
async fn next(conn: &mut Connection, id: u64, kind: &str) -> Message {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let env = conn
                .receiver
                .recv()
                .await
                .expect("receive")
                .expect("connection open");
            if (id != 0 && env.id == id) || (id == 0 && env.body.kind() == kind) {
                return env.body;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} (id {id}) within a minute"))
}

#[tokio::test(start_paused = true)]
async fn messages_about_a_task_the_sender_does_not_hold_change_nothing() {
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let manager = start_manager(&net, store.clone(), blobs, ManagerConfig::default()).await;
    let client = Client::connect(&net.transport(NodeId(300)), manager.addr(), None)
        .await
        .unwrap();
    let job = submit_stand_in_job(&client, 2, 8, 1).await;

    let raw = net.node(seeded_identity(100));
    let me = raw.local_id();
    let mut conn = raw.connect(manager.addr()).await.unwrap();
    let hello = Hello {
        role: Role::Worker,
        node: me,
        ib: 1.0,
        tags: vec![],
        device_class: "raw".into(),
        token: None,
        formats: vec![inferix_core::renderer::SceneFormat::Gltf],
    };
    conn.sender
        .send(Envelope::with_id(1, Message::Hello(hello)))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut conn, 1, "welcome").await,
        Message::Welcome { .. }
    ));
    let Message::TaskOffer(offer) = next(&mut conn, 0, "task_offer").await else {
        unreachable!()
    };
    let held = offer.task;
    let other = TaskId::new(job, 1 - held.index);

    // A result for the task it does not hold.
    let result = TaskResult {
        worker: me,
        frames: vec![],
        render_ms: 1,
        attempt: 1,
        scene: ContentHash::of(b"scene"),
        device_class: "raw".into(),
        public_key: vec![0; 32],
        signature: vec![0; 64],
    };
    conn.sender
        .send(Envelope::with_id(
            2,
            Message::TaskDone {
                task: other,
                result: result.clone(),
            },
        ))
        .await
        .unwrap();
    match next(&mut conn, 2, "error").await {
        Message::Error { code, message } => {
            assert_eq!(code, ErrorCode::UnexpectedMessage);
            assert!(message.contains("not leased to you"), "{message}");
        }
        other => panic!("expected a refusal, got {}", other.kind()),
    }
    // A failure and a hand-back of somebody else's task.
    for body in [
        Message::TaskFailed {
            task: other,
            error: "made up".into(),
            cause: inferix_core::protocol::FailureCause::Render,
        },
        Message::TaskReleased { task: other },
    ] {
        conn.sender.send(Envelope::push(body)).await.unwrap();
    }
    // The reply to a later request on the same connection means every
    // message above has been handled (the manager reads a connection in
    // order).
    conn.sender
        .send(Envelope::with_id(
            3,
            Message::TaskDone {
                task: other,
                result: result.clone(),
            },
        ))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut conn, 3, "error").await,
        Message::Error { .. }
    ));

    let held_task = store.task(held).await.unwrap().unwrap();
    assert_eq!(
        held_task.status,
        TaskStatus::Leased,
        "the current lease stands"
    );
    assert_eq!(held_task.lease.as_ref().map(|l| l.worker), Some(me));
    let other_task = store.task(other).await.unwrap().unwrap();
    assert_eq!(
        other_task.status,
        TaskStatus::Queued,
        "{:?}",
        other_task.history
    );
    assert_eq!(other_task.attempts, 0, "no attempt was charged to it");
    assert!(
        other_task.excluded.is_empty(),
        "nobody was excluded from it"
    );
    manager.shutdown().await;
}
