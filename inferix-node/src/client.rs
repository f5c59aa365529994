//! The client: quote, submit, follow and download jobs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use inferix_core::blob::{BlobStore, BlobStoreExt};
use inferix_core::ids::{JobId, NodeId};
use inferix_core::job::{EnvironmentRef, JobSpec, JobState, SceneRef};
use inferix_core::outputs::OutputState;
use inferix_core::protocol::{
    ErrorCode, Hello, JobEvent, JobStatus, JobSummary, LedgerTotals, Message, NodeAction,
    NodeSummary, Quote, Role,
};
use inferix_core::renderer::SceneFormat;
use inferix_transport::{Transport, TransportError};
use tokio::sync::mpsc;

use crate::remote_blob::RemoteBlobStore;
use crate::rpc::RpcPeer;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The manager refused the request.
    #[error("manager refused ({code:?}): {message}")]
    Refused {
        /// Kind of refusal.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
    /// Connection trouble.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Blob upload or download failed.
    #[error(transparent)]
    Blob(#[from] inferix_core::blob::BlobError),
    /// Local file trouble.
    #[error("{path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A scene file of unknown type.
    #[error("cannot tell the scene format of {0} (expected .glb, .gltf or .blend)")]
    UnknownSceneFormat(PathBuf),
    /// An environment map that is not a `.hdr` or `.exr` file.
    #[error("environment map {0} must be a .hdr or .exr file")]
    UnknownEnvironmentFormat(PathBuf),
    /// The manager answered with something else than expected.
    #[error("unexpected reply: {0}")]
    Unexpected(String),
    /// A job output that is not there to download: not asked for, not
    /// made yet, or failed.
    #[error("output {name:?} of job {job}: {reason}")]
    Output {
        /// The job.
        job: JobId,
        /// The output asked for.
        name: String,
        /// Why it cannot be downloaded.
        reason: String,
    },
}

type Watchers = Arc<Mutex<HashMap<JobId, Vec<mpsc::UnboundedSender<JobEvent>>>>>;

/// A connection to a manager on behalf of a user.
pub struct Client {
    rpc: Arc<RpcPeer>,
    blobs: Arc<dyn BlobStore>,
    watchers: Watchers,
    id: NodeId,
    pump: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.pump.abort();
        self.rpc.close("client dropped");
    }
}

fn check(reply: Message) -> Result<Message, ClientError> {
    match reply {
        Message::Error { code, message } => Err(ClientError::Refused { code, message }),
        other => Ok(other),
    }
}

impl Client {
    /// Connects to the manager at `addr` with an optional API token; scenes
    /// and frames move through the manager connection.
    pub async fn connect(
        transport: &dyn Transport,
        addr: &str,
        token: Option<String>,
    ) -> Result<Self, ClientError> {
        Self::connect_inner(transport, addr, token, None).await
    }

    /// Like [`Client::connect`], but scenes and frames move through `blobs`
    /// directly (a client that can reach the network's object store).
    pub async fn connect_with_blobs(
        transport: &dyn Transport,
        addr: &str,
        token: Option<String>,
        blobs: Arc<dyn BlobStore>,
    ) -> Result<Self, ClientError> {
        Self::connect_inner(transport, addr, token, Some(blobs)).await
    }

    async fn connect_inner(
        transport: &dyn Transport,
        addr: &str,
        token: Option<String>,
        blobs: Option<Arc<dyn BlobStore>>,
    ) -> Result<Self, ClientError> {
        let conn = transport.connect(addr).await?;
        let (rpc, mut pushes) = RpcPeer::start(conn);
        let rpc = Arc::new(rpc);
        let watchers: Watchers = Arc::default();
        let w = watchers.clone();
        let pump = tokio::spawn(async move {
            while let Some(env) = pushes.recv().await {
                if let Message::Event { job, event } = env.body {
                    if let Some(list) = w.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&job) {
                        list.retain(|tx| tx.send(event.clone()).is_ok());
                    }
                }
            }
            // Connection gone: end every watch.
            w.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        let id = transport.local_id();
        let hello = Hello {
            role: Role::Client,
            node: id,
            ib: 0.0,
            tags: vec![],
            device_class: String::new(),
            token,
            formats: vec![],
        };
        let max_blob_size = match check(rpc.request(Message::Hello(hello)).await?)? {
            Message::Welcome { max_blob_size, .. } => max_blob_size,
            other => return Err(ClientError::Unexpected(other.kind().into())),
        };
        let blobs =
            blobs.unwrap_or_else(|| Arc::new(RemoteBlobStore::new(rpc.clone(), max_blob_size)));
        Ok(Self {
            rpc,
            blobs,
            watchers,
            id,
            pump,
        })
    }

    /// This client's node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The blob store this client uploads scenes to and downloads frames
    /// from: the one it was given, or the manager's through the connection.
    pub fn blob_store(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }

    /// Uploads a scene file (streamed) and returns its reference.
    pub async fn upload_scene(&self, path: &Path) -> Result<SceneRef, ClientError> {
        let format = SceneFormat::from_path(path)
            .ok_or_else(|| ClientError::UnknownSceneFormat(path.to_path_buf()))?;
        let meta = self.blobs.put_file(path).await?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scene".into());
        Ok(SceneRef {
            blob: meta.hash,
            format,
            file_name,
        })
    }

    /// Uploads an equirectangular `.hdr` or `.exr` environment map for
    /// [`JobSpec::environment`].
    pub async fn upload_environment(&self, path: &Path) -> Result<EnvironmentRef, ClientError> {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if inferix_core::job::environment_kind(&file_name).is_none() {
            return Err(ClientError::UnknownEnvironmentFormat(path.to_path_buf()));
        }
        let meta = self.blobs.put_file(path).await?;
        Ok(EnvironmentRef {
            blob: meta.hash,
            file_name,
        })
    }

    /// Uploads scene bytes (e.g. a generated scene).
    pub async fn upload_scene_bytes(
        &self,
        bytes: Vec<u8>,
        file_name: &str,
    ) -> Result<SceneRef, ClientError> {
        let format = SceneFormat::from_path(Path::new(file_name))
            .ok_or_else(|| ClientError::UnknownSceneFormat(file_name.into()))?;
        let meta = self.blobs.put_bytes(bytes).await?;
        Ok(SceneRef {
            blob: meta.hash,
            format,
            file_name: file_name.to_string(),
        })
    }

    /// Asks for a price.
    pub async fn quote(&self, spec: &JobSpec) -> Result<Quote, ClientError> {
        match check(
            self.rpc
                .request(Message::QuoteRequest { spec: spec.clone() })
                .await?,
        )? {
            Message::QuoteReply(q) => Ok(q),
            other => Err(ClientError::Unexpected(other.kind().into())),
        }
    }

    /// Submits a job; returns its id and the agreed price.
    pub async fn submit(&self, spec: &JobSpec) -> Result<(JobId, Quote), ClientError> {
        match check(
            self.rpc
                .request(Message::Submit { spec: spec.clone() })
                .await?,
        )? {
            Message::Submitted { job, quote } => Ok((job, quote)),
            other => Err(ClientError::Unexpected(other.kind().into())),
        }
    }

    /// Current status of a job, with every accepted frame and task: the
    /// pages the manager sends ([`Client::status_page`]) joined into one.
    pub async fn status(&self, job: JobId) -> Result<JobStatus, ClientError> {
        let mut status = self.status_page(job, 0).await?;
        let mut next = status.next_task.take();
        while let Some(from) = next {
            let mut page = self.status_page(job, from).await?;
            if page.next_task.is_some_and(|n| n <= from) {
                return Err(ClientError::Unexpected(format!(
                    "status page from task {from} points back to task {:?}",
                    page.next_task
                )));
            }
            status.frames.append(&mut page.frames);
            status.tasks.append(&mut page.tasks);
            // The job and its counts as of the last page.
            (status.job, status.counts) = (page.job, page.counts);
            next = page.next_task;
        }
        Ok(status)
    }

    /// One page of a job's status: its record and counts, and the accepted
    /// frames of its tasks from `from_task` on, as many as the manager
    /// sends at once; `next_task` says where the next page starts.
    pub async fn status_page(&self, job: JobId, from_task: u32) -> Result<JobStatus, ClientError> {
        match check(
            self.rpc
                .request(Message::StatusRequest { job, from_task })
                .await?,
        )? {
            Message::StatusReply(s) => Ok(*s),
            other => Err(ClientError::Unexpected(other.kind().into())),
        }
    }

    /// The jobs of this client's account, newest first; with `all`, every
    /// account's (operators only, else `Forbidden`).
    pub async fn list_jobs(&self, all: bool) -> Result<Vec<JobSummary>, ClientError> {
        match check(self.rpc.request(Message::ListJobs { all }).await?)? {
            Message::JobList(jobs) => Ok(jobs),
            other => Err(ClientError::Unexpected(other.kind().into())),
        }
    }

    /// The manager's connected workers and verifiers (operators only).
    pub async fn list_nodes(&self) -> Result<Vec<NodeSummary>, ClientError> {
        match check(self.rpc.request(Message::ListNodes).await?)? {
            Message::NodeList(nodes) => Ok(nodes),
            other => Err(ClientError::Unexpected(other.kind().into())),
        }
    }

    /// Drains, undrains, disables or enables a node (operators only).
    pub async fn control_node(&self, node: NodeId, action: NodeAction) -> Result<(), ClientError> {
        check(
            self.rpc
                .request(Message::NodeControl { node, action })
                .await?,
        )?;
        Ok(())
    }

    /// The ledger's totals (operators only).
    pub async fn ledger(&self) -> Result<LedgerTotals, ClientError> {
        match check(self.rpc.request(Message::LedgerRequest).await?)? {
            Message::LedgerReply(t) => Ok(t),
            other => Err(ClientError::Unexpected(other.kind().into())),
        }
    }

    /// Events of a job from now on (a finished job reports its end at once).
    pub async fn watch(
        &self,
        job: JobId,
    ) -> Result<mpsc::UnboundedReceiver<JobEvent>, ClientError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(job)
            .or_default()
            .push(tx);
        match check(self.rpc.request(Message::Watch { job }).await?) {
            Ok(Message::Ok) => Ok(rx),
            Ok(other) => Err(ClientError::Unexpected(other.kind().into())),
            Err(e) => {
                self.watchers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&job);
                Err(e)
            }
        }
    }

    /// Waits until the job completes, fails or is cancelled; returns its
    /// final status. `on_event` sees every event on the way.
    pub async fn wait(
        &self,
        job: JobId,
        mut on_event: impl FnMut(&JobEvent),
    ) -> Result<JobStatus, ClientError> {
        let mut events = self.watch(job).await?;
        while let Some(ev) = events.recv().await {
            on_event(&ev);
            if matches!(
                ev,
                JobEvent::Completed { .. } | JobEvent::Failed { .. } | JobEvent::Cancelled
            ) {
                break;
            }
        }
        self.status(job).await
    }

    /// Claims that accepted frames of a job are bad, inside its
    /// confirmation window. Returns the claim number; the outcome arrives
    /// to watchers as [`JobEvent::ClaimSettled`].
    pub async fn claim(
        &self,
        job: JobId,
        frames: Vec<u32>,
        reason: &str,
    ) -> Result<u64, ClientError> {
        let msg = Message::Claim {
            job,
            frames,
            reason: reason.to_string(),
        };
        match check(self.rpc.request(msg).await?)? {
            Message::ClaimFiled { claim } => Ok(claim),
            other => Err(ClientError::Unexpected(other.kind().into())),
        }
    }

    /// Pauses a job: no new tasks are leased; running ones finish.
    pub async fn pause(&self, job: JobId) -> Result<(), ClientError> {
        check(self.rpc.request(Message::Pause { job }).await?)?;
        Ok(())
    }

    /// Resumes a paused job.
    pub async fn resume(&self, job: JobId) -> Result<(), ClientError> {
        check(self.rpc.request(Message::Resume { job }).await?)?;
        Ok(())
    }

    /// Cancels a job.
    pub async fn cancel(&self, job: JobId) -> Result<(), ClientError> {
        check(self.rpc.request(Message::Cancel { job }).await?)?;
        Ok(())
    }

    /// Waits until every output of `job` was made or failed (or the job
    /// failed or was cancelled); returns its status, whose job record lists
    /// the outputs. Returns at once for a job without outputs.
    pub async fn wait_outputs(&self, job: JobId) -> Result<JobStatus, ClientError> {
        // Watching before reading: an event sent in between is not lost.
        let mut events = self.watch(job).await?;
        loop {
            let status = self.status_page(job, 0).await?;
            let done = match status.job.state {
                JobState::Completed => !status
                    .job
                    .outputs
                    .iter()
                    .any(|o| o.state == OutputState::Pending),
                JobState::Failed | JobState::Cancelled => true,
                _ => false,
            };
            if done {
                return Ok(status);
            }
            loop {
                match events.recv().await {
                    Some(
                        JobEvent::OutputsFinished { .. }
                        | JobEvent::Failed { .. }
                        | JobEvent::Cancelled,
                    ) => break,
                    Some(_) => {}
                    None => {
                        return Err(ClientError::Unexpected(
                            "the connection closed while waiting for outputs".into(),
                        ))
                    }
                }
            }
        }
    }

    /// Downloads the output `name` of `job` (`mp4`, `zip`, `jpeg`, …, see
    /// [`inferix_core::outputs::OutputRequest::name`]) as
    /// `dir/<its file name>`; returns the file. An output not made yet,
    /// or failed, is an error saying so.
    pub async fn download_output(
        &self,
        job: JobId,
        name: &str,
        dir: &Path,
    ) -> Result<PathBuf, ClientError> {
        let status = self.status_page(job, 0).await?;
        let fail = |reason: String| ClientError::Output {
            job,
            name: name.to_string(),
            reason,
        };
        let out = status
            .job
            .outputs
            .iter()
            .find(|o| o.name() == name)
            .ok_or_else(|| fail("the job did not ask for it".into()))?;
        let blob = match &out.state {
            OutputState::Ready { blob, .. } => *blob,
            OutputState::Pending => return Err(fail("not made yet".into())),
            OutputState::Failed { reason } => return Err(fail(format!("failed: {reason}"))),
        };
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| ClientError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        let path = dir.join(out.request.file_name());
        self.blobs.get_to_file(blob, &path).await?;
        Ok(path)
    }

    /// Downloads every accepted frame as `dir/frame_NNNN.<ext>`.
    pub async fn download(&self, job: JobId, dir: &Path) -> Result<Vec<PathBuf>, ClientError> {
        let status = self.status(job).await?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ClientError::Io { path, source }
        };
        tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
        let ext = status.job.spec.format.extension();
        let mut out = Vec::new();
        for f in &status.frames {
            let path = dir.join(format!("frame_{:04}.{ext}", f.frame));
            self.blobs.get_to_file(f.blob, &path).await?;
            out.push(path);
        }
        Ok(out)
    }
}
