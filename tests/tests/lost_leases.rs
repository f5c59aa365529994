//! Leases lost through a worker are charged to that worker, never to the
//! job: a frozen worker loses one lease and gets no more work until it
//! speaks; a crash-looping worker is excluded from each task it dropped and,
//! after repeated losses, blocklisted for the job. In both cases healthy
//! workers that join later finish the job with no task charged, although
//! the losses outnumber the job's retry budget per task. Fresh keys that
//! take tasks only to report them failed cannot fail a job either.

use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::{JobId, NodeId, TaskId};
use inferix_core::job::JobState;
use inferix_core::protocol::{
    Envelope, FailureCause, Hello, JobEvent, Message, Role, TaskAssignment,
};
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_node::{Client, ManagerConfig, ManagerHandle};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{spawn_honest_workers, spawn_verifiers, start_manager, submit_stand_in_job};
use inferix_transport::{Connection, InProcNetwork, Transport};
use tokio::sync::{mpsc, watch};

/// A worker driven by hand: says hello, then does only what the test says.
async fn raw_worker(net: &InProcNetwork, addr: &str, id: NodeId) -> Connection {
    let conn = net.transport(id).connect(addr).await.unwrap();
    let hello = Hello {
        role: Role::Worker,
        node: id,
        ib: 1.0,
        tags: vec![],
        device_class: "sim".into(),
        token: None,
        formats: vec![inferix_core::renderer::SceneFormat::Gltf],
    };
    conn.sender
        .send(Envelope::with_id(1, Message::Hello(hello)))
        .await
        .unwrap();
    conn
}

/// The next task offer on `conn`, or `None` if none comes within `within`
/// (virtual time) or the connection ends.
async fn next_offer(conn: &mut Connection, within: Duration) -> Option<TaskAssignment> {
    tokio::time::timeout(within, async {
        loop {
            match conn.receiver.recv().await {
                Ok(Some(env)) => {
                    if let Message::TaskOffer(a) = env.body {
                        return Some(a);
                    }
                }
                _ => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Waits until the manager re-queues `task`.
async fn requeued(events: &mut mpsc::UnboundedReceiver<JobEvent>, task: TaskId) {
    loop {
        match events.recv().await {
            Some(JobEvent::TaskRequeued { task: t, .. }) if t == task => return,
            Some(JobEvent::Failed { reason }) => panic!("the job failed: {reason}"),
            Some(_) => {}
            None => panic!("the event stream ended before {task} was re-queued"),
        }
    }
}

struct Farm {
    net: InProcNetwork,
    store: Arc<MemoryTaskStore>,
    manager: ManagerHandle,
    addr: String,
    client: Client,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
    dir: tempfile::TempDir,
}

async fn farm(config: ManagerConfig) -> Farm {
    let net = InProcNetwork::new();
    let store = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let manager = start_manager(&net, store.clone(), blobs, config).await;
    let addr = manager.addr().to_string();
    let client = Client::connect(&net.transport(NodeId(50)), &addr, None)
        .await
        .unwrap();
    let (stop, stopped) = watch::channel(false);
    Farm {
        net,
        store,
        manager,
        addr,
        client,
        stop,
        stopped,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Farm {
    async fn submit(&self, frames: u32) -> JobId {
        submit_stand_in_job(&self.client, frames, 8, 1).await
    }

    /// Healthy workers and a verifier join; returns their handles.
    fn healthy(
        &self,
        workers: u128,
    ) -> Vec<tokio::task::JoinHandle<Result<(), inferix_node::NodeError>>> {
        let dir = self.dir.path();
        let mut handles = spawn_verifiers(&self.net, &self.addr, 1, None, None, dir, &self.stopped);
        handles.extend(spawn_honest_workers(
            &self.net,
            &self.addr,
            workers,
            Duration::from_millis(200),
            dir,
            &self.stopped,
        ));
        handles
    }

    /// Waits for `job` to end, then checks that it completed with every
    /// frame and that no task was charged a failed attempt.
    async fn completes_uncharged(&self, job: JobId, frames: usize) {
        let status =
            tokio::time::timeout(Duration::from_secs(3_600), self.client.wait(job, |_| {}))
                .await
                .expect("the job ends")
                .unwrap();
        assert_eq!(status.job.state, JobState::Completed, "{:?}", status.job);
        assert_eq!(status.frames.len(), frames);
        for t in self.store.tasks_of_job(job).await.unwrap() {
            assert_eq!(t.failures, 0, "{:?} was charged: {:?}", t.id, t.history);
        }
    }

    async fn shut(
        self,
        handles: Vec<tokio::task::JoinHandle<Result<(), inferix_node::NodeError>>>,
    ) {
        let _ = self.stop.send(true);
        for h in handles {
            h.await.unwrap().unwrap();
        }
        self.manager.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_frozen_worker_gets_no_more_work_until_it_speaks() {
    let f = farm(ManagerConfig {
        quorum: 1,
        lease: Duration::from_secs(5),
        // Longer than the lease, so the lease runs out first, as it does
        // for a worker stopped with SIGSTOP under a short lease.
        heartbeat_timeout: Duration::from_secs(3_600),
        tick: Duration::from_secs(1),
        ..ManagerConfig::default()
    })
    .await;
    let frozen_id = NodeId(70);
    let mut frozen = raw_worker(&f.net, &f.addr, frozen_id).await;
    let job = f.submit(3).await;
    let mut events = f.client.watch(job).await.unwrap();

    // It takes the first task and is never heard from again.
    let first = next_offer(&mut frozen, Duration::from_secs(60))
        .await
        .expect("the only worker is offered a task");
    requeued(&mut events, first.task).await;
    // Silent since its lease began: no other task is offered to it, though
    // two wait and it is the only worker.
    assert!(
        next_offer(&mut frozen, Duration::from_secs(120))
            .await
            .is_none(),
        "a worker silent through its lease is offered nothing more"
    );

    // It speaks again: it may work again, but never on the task it lost.
    frozen
        .sender
        .send(Envelope::push(Message::Heartbeat))
        .await
        .unwrap();
    let second = next_offer(&mut frozen, Duration::from_secs(60))
        .await
        .expect("heard from again, it is offered work");
    assert_ne!(
        second.task, first.task,
        "it is excluded from the task it lost"
    );
    requeued(&mut events, second.task).await;

    // Healthy workers join and finish the job; no task was charged for the
    // two leases the frozen worker lost.
    let handles = f.healthy(2);
    f.completes_uncharged(job, 3).await;
    for lost in [first.task, second.task] {
        let t = f.store.task(lost).await.unwrap().unwrap();
        assert!(t.excluded.contains(&frozen_id), "{:?}", t.excluded);
    }
    drop(frozen);
    f.shut(handles).await;
}

#[tokio::test(start_paused = true)]
async fn a_crash_looping_worker_is_excluded_then_blocklisted_and_the_job_completes() {
    let f = farm(ManagerConfig {
        quorum: 1,
        // One loss per task would exhaust this budget if losses counted.
        max_attempts: 1,
        failures_before_blocklist: 3,
        tick: Duration::from_secs(1),
        ..ManagerConfig::default()
    })
    .await;
    let looping = NodeId(71);
    let job = f.submit(6).await;
    let mut lost = Vec::new();
    // It connects, takes a task and dies (kill -9) with it, three times.
    for _ in 0..3 {
        let mut conn = raw_worker(&f.net, &f.addr, looping).await;
        let offer = next_offer(&mut conn, Duration::from_secs(60))
            .await
            .expect("each new session is offered a task");
        assert!(
            !lost.contains(&offer.task),
            "never a task it already lost: {lost:?}"
        );
        lost.push(offer.task);
        conn.sender.close("killed");
        drop(conn);
    }
    // The fourth time it is blocklisted for the job: nothing is offered.
    let mut conn = raw_worker(&f.net, &f.addr, looping).await;
    assert!(
        next_offer(&mut conn, Duration::from_secs(120))
            .await
            .is_none(),
        "after three losses on the job it gets none of its tasks"
    );
    let status = f.client.status(job).await.unwrap();
    assert!(status.job.blocklist.contains(&looping), "{:?}", status.job);

    let handles = f.healthy(2);
    f.completes_uncharged(job, 6).await;
    for task in lost {
        let t = f.store.task(task).await.unwrap().unwrap();
        assert!(t.excluded.contains(&looping), "{:?}", t.excluded);
    }
    drop(conn);
    f.shut(handles).await;
}

#[tokio::test(start_paused = true)]
async fn fresh_keys_that_fail_every_task_they_take_cannot_fail_a_job() {
    let f = farm(ManagerConfig {
        quorum: 1,
        // One charged failure would fail the job.
        max_attempts: 1,
        tick: Duration::from_secs(1),
        ..ManagerConfig::default()
    })
    .await;
    let job = f.submit(4).await;
    let mut events = f.client.watch(job).await.unwrap();
    // Six new keys, none with accepted work, each take a task and say the
    // render failed.
    for n in 0..6u128 {
        let griefer = NodeId(500 + n);
        let mut conn = raw_worker(&f.net, &f.addr, griefer).await;
        let offer = next_offer(&mut conn, Duration::from_secs(60))
            .await
            .expect("a griefer is offered a task");
        let failed = Message::TaskFailed {
            task: offer.task,
            error: "simulated device fault".into(),
            cause: FailureCause::Render,
        };
        conn.sender.send(Envelope::push(failed)).await.unwrap();
        requeued(&mut events, offer.task).await;
        let t = f.store.task(offer.task).await.unwrap().unwrap();
        assert!(t.excluded.contains(&griefer), "{:?}", t.excluded);
        conn.sender.close("done");
    }
    let handles = f.healthy(2);
    f.completes_uncharged(job, 4).await;
    f.shut(handles).await;
}
