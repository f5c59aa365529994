//! Subcommands that run nodes as separate processes over QUIC.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use inferix_core::por::key::ManagerSecret;
use inferix_core::por::prepare::PorConfig;
use inferix_core::renderer::Renderer;
use inferix_core::scheduler::WeightedRandomScheduler;
use inferix_core::store::TaskStore;
use inferix_gpu::blender::{
    Blender, BlenderConfig, BlenderRenderer, BlenderWatermarker, SandboxPolicy,
};
use inferix_node::RendererSet;
use inferix_node::{
    ManagerBuilder, ManagerConfig, VerifierConfig, VerifierNode, WorkerConfig, WorkerNode,
};
use inferix_storage::{open_blob_store, open_task_store, ObjectBlobStore, OpenOptions};
use inferix_transport::{NodeIdentity, QuicConfig, QuicTransport, ServerTrust, Transport};
use tokio::sync::watch;

use crate::config_file::{self, ConfigError, ManagerFile, NodeFile};
use crate::secrets::secret;

/// Options of `inferix manager`.
///
/// Each option is taken from, in order: the flag, its `INFERIX_*`
/// environment variable, the `--config` file, the default.
#[derive(Args, Debug)]
pub(crate) struct ManagerArgs {
    /// TOML file with any of the options below, keys spelled like the long
    /// options with `_` (`lease_seconds = 600`); unknown keys are an error.
    #[arg(long, env = "INFERIX_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Folder for the node key, the task database and the blobs
    /// [default: inferix-manager].
    #[arg(long, env = "INFERIX_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// UDP address to listen on; port 0 picks a free one
    /// [default: 127.0.0.1:7400].
    #[arg(long, env = "INFERIX_LISTEN")]
    listen: Option<String>,
    /// Token workers and verifiers must present [default: none, anyone may
    /// join]. Prefer --node-token-file: a flag's value shows in `ps`.
    #[arg(long, env = "INFERIX_NODE_TOKEN", hide_env_values = true)]
    node_token: Option<String>,
    /// File holding the node token (its first line).
    #[arg(long, env = "INFERIX_NODE_TOKEN_FILE", value_name = "FILE")]
    node_token_file: Option<PathBuf>,
    /// Token verifiers must present instead of the node token, which then
    /// admits workers only: whoever runs workers cannot also judge their
    /// work [default: verifiers present the node token]. Prefer
    /// --verifier-token-file.
    #[arg(long, env = "INFERIX_VERIFIER_TOKEN", hide_env_values = true)]
    verifier_token: Option<String>,
    /// File holding the verifier token (its first line).
    #[arg(long, env = "INFERIX_VERIFIER_TOKEN_FILE", value_name = "FILE")]
    verifier_token_file: Option<PathBuf>,
    /// Account that clients without an API key act as, with no credit
    /// limit: only for a private network whose every client is trusted
    /// [default: none; clients need a key from `inferix account create`].
    #[arg(long, env = "INFERIX_GUEST_ACCOUNT")]
    guest_account: Option<String>,
    /// TCP address to serve the HTTP API on (JSON REST, events, OpenAPI
    /// document at /api/openapi.json), e.g. 127.0.0.1:8080; port 0 picks a
    /// free one [default: none, no HTTP API].
    #[arg(long, env = "INFERIX_HTTP")]
    http: Option<String>,
    /// IB of this machine's device, which times a small probe render of
    /// each scene to quote it [default: measured by the bench at the first
    /// start and kept in DATA_DIR/probe-ib].
    #[arg(long, env = "INFERIX_PROBE_IB", value_parser = positive_f64)]
    probe_ib: Option<f64>,
    /// Verifiers that must agree on each result [default: 2].
    #[arg(long, env = "INFERIX_QUORUM", value_parser = at_least_1)]
    quorum: Option<u64>,
    /// Seconds a worker may hold a task before it is re-queued
    /// [default: 600].
    #[arg(long, env = "INFERIX_LEASE_SECONDS", value_parser = at_least_1)]
    lease_seconds: Option<u64>,
    /// Task database: a SQLite file (`sqlite:PATH` or a path), a
    /// `postgres://` URL that several managers share, or `memory:`
    /// [default: tasks.sqlite in the data folder].
    #[arg(long, env = "INFERIX_STORE")]
    store: Option<String>,
    /// PostgreSQL schema of the tables [default: the connection's].
    #[arg(long, env = "INFERIX_STORE_SCHEMA")]
    store_schema: Option<String>,
    /// PostgreSQL password, replacing the URL's [default: the URL's].
    #[arg(long, env = "INFERIX_STORE_PASSWORD", hide_env_values = true)]
    store_password: Option<String>,
    /// File holding the PostgreSQL password (its first line).
    #[arg(long, env = "INFERIX_STORE_PASSWORD_FILE", value_name = "FILE")]
    store_password_file: Option<PathBuf>,
    /// Blob storage: a folder (`file:PATH` or a path), or
    /// `s3://bucket[/prefix]` (credentials, region and endpoint from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL)
    /// [default: blobs in the data folder].
    #[arg(long, env = "INFERIX_BLOBS")]
    blobs: Option<String>,
    /// URL of an S3-compatible server for `s3://` blobs [default: AWS].
    #[arg(long, env = "INFERIX_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// Seconds a verifier may take over a verification before it is
    /// replaced; a round whose manager died is taken over after twice this
    /// [default: 300].
    #[arg(long, env = "INFERIX_VERIFICATION_SECONDS", value_parser = at_least_1)]
    verification_seconds: Option<u64>,
    /// Seconds between sweeps of blob storage for blobs that no job names
    /// (uploads never submitted, frames of rejected results), deleted
    /// once older than --blob-retention-seconds [default: 3600].
    #[arg(long, env = "INFERIX_BLOB_SWEEP_SECONDS", value_parser = at_least_1)]
    blob_sweep_seconds: Option<u64>,
    /// Seconds a blob that no job names is kept before a sweep deletes it:
    /// longer than a client takes from uploading a scene to submitting it
    /// [default: 604800, 7 days].
    #[arg(long, env = "INFERIX_BLOB_RETENTION_SECONDS", value_parser = at_least_1)]
    blob_retention_seconds: Option<u64>,
    /// Tasks one job may split into; larger jobs are refused at quote and
    /// submission, naming the chunk size that fits [default: 100000].
    #[arg(long, env = "INFERIX_MAX_TASKS_PER_JOB", value_parser = at_least_1)]
    max_tasks_per_job: Option<u64>,
    /// Proof-of-Render secret shared by every manager of the network
    /// (watermarked leases, crop challenges, clean delivery) [default: a
    /// random secret kept in the data folder, `por-secret`; managers that
    /// share a task store must be given the same one].
    #[arg(long, env = "INFERIX_POR_SECRET", hide_env_values = true)]
    por_secret: Option<String>,
    /// File holding the Proof-of-Render secret (its first line).
    #[arg(long, env = "INFERIX_POR_SECRET_FILE", value_name = "FILE")]
    por_secret_file: Option<PathBuf>,
    /// Whether Blender (watermarking customers' `.blend` scenes) runs in
    /// bubblewrap, seeing neither the data folder nor the network: `auto`
    /// (when bubblewrap works here), `required` (refuse to start without
    /// it) or `off` [default: auto].
    #[arg(long, env = "INFERIX_BLENDER_SANDBOX", value_name = "POLICY")]
    blender_sandbox: Option<SandboxPolicy>,
}

/// The manager's settings once flags, environment, file and defaults are
/// merged.
#[derive(Debug, PartialEq)]
pub(crate) struct ManagerSettings {
    pub(crate) data_dir: PathBuf,
    pub(crate) listen: String,
    pub(crate) node_token: Option<String>,
    pub(crate) verifier_token: Option<String>,
    pub(crate) guest_account: Option<String>,
    pub(crate) http: Option<String>,
    pub(crate) probe_ib: Option<f64>,
    pub(crate) quorum: usize,
    pub(crate) lease_seconds: u64,
    pub(crate) store: Option<String>,
    pub(crate) store_schema: Option<String>,
    pub(crate) store_password: Option<String>,
    pub(crate) blobs: Option<String>,
    pub(crate) s3_endpoint: Option<String>,
    pub(crate) verification_seconds: u64,
    pub(crate) blob_sweep_seconds: u64,
    pub(crate) blob_retention_seconds: u64,
    pub(crate) max_tasks_per_job: u64,
    pub(crate) por_secret: Option<String>,
    pub(crate) blender_sandbox: SandboxPolicy,
}

impl ManagerArgs {
    /// Merges the command line (flags and environment, which clap already
    /// ordered) over the config file over the defaults.
    pub(crate) fn resolve(self) -> Result<ManagerSettings, ConfigError> {
        let file: ManagerFile = config_file::load_optional(self.config.as_deref())?;
        Ok(ManagerSettings {
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| "inferix-manager".into()),
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:7400".into()),
            node_token: secret(
                "--node-token",
                self.node_token.or(file.node_token),
                self.node_token_file.or(file.node_token_file).as_deref(),
            )?,
            verifier_token: secret(
                "--verifier-token",
                self.verifier_token.or(file.verifier_token),
                self.verifier_token_file
                    .or(file.verifier_token_file)
                    .as_deref(),
            )?,
            guest_account: self.guest_account.or(file.guest_account),
            http: self.http.or(file.http),
            probe_ib: self.probe_ib.or(file.probe_ib),
            quorum: self
                .quorum
                .map(|q| usize::try_from(q).unwrap_or(usize::MAX))
                .or(file.quorum)
                .unwrap_or(2),
            lease_seconds: self.lease_seconds.or(file.lease_seconds).unwrap_or(600),
            store: self.store.or(file.store),
            store_schema: self.store_schema.or(file.store_schema),
            store_password: secret(
                "--store-password",
                self.store_password.or(file.store_password),
                self.store_password_file
                    .or(file.store_password_file)
                    .as_deref(),
            )?,
            blobs: self.blobs.or(file.blobs),
            s3_endpoint: self.s3_endpoint.or(file.s3_endpoint),
            verification_seconds: self
                .verification_seconds
                .or(file.verification_seconds)
                .unwrap_or(300),
            blob_sweep_seconds: self
                .blob_sweep_seconds
                .or(file.blob_sweep_seconds)
                .unwrap_or(3600),
            blob_retention_seconds: self
                .blob_retention_seconds
                .or(file.blob_retention_seconds)
                .unwrap_or(7 * 24 * 3600),
            max_tasks_per_job: self
                .max_tasks_per_job
                .or(file.max_tasks_per_job)
                .unwrap_or(ManagerConfig::default().max_tasks_per_job),
            por_secret: secret(
                "--por-secret",
                self.por_secret.or(file.por_secret),
                self.por_secret_file.or(file.por_secret_file).as_deref(),
            )?,
            blender_sandbox: self
                .blender_sandbox
                .or(file.blender_sandbox)
                .unwrap_or_default(),
        })
    }
}

/// Options shared by `inferix worker` and `inferix verifier`.
///
/// Each option is taken from, in order: the flag, its `INFERIX_*`
/// environment variable, the `--config` file, the default.
#[derive(Args, Debug)]
pub(crate) struct NodeArgs {
    /// TOML file with any of the options below, keys spelled like the long
    /// options with `_` (`data_dir = "w"`); unknown keys are an error.
    #[arg(long, env = "INFERIX_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Manager address as printed by `inferix manager` (`<id>@host:port`),
    /// or several separated by commas: the node moves to the next when its
    /// manager is unreachable; required. An address without `<id>@` is
    /// trusted on first use: the id met is kept in DATA_DIR/known-managers
    /// and any other key at that address is refused later.
    #[arg(long, env = "INFERIX_MANAGER")]
    manager: Option<String>,
    /// Folder for the node key and scene cache; required.
    #[arg(long, env = "INFERIX_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Admission token issued by the manager's operator [default: none].
    /// Prefer --token-file: a flag's value shows in `ps`.
    #[arg(long, env = "INFERIX_NODE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the admission token (its first line).
    #[arg(long, env = "INFERIX_NODE_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Inferix Bench index to announce (workers) [default: measured at
    /// start].
    #[arg(long, env = "INFERIX_IB", value_parser = positive_f64)]
    ib: Option<f64>,
    /// TCP address to serve this node's Prometheus metrics on, at
    /// /metrics, without authentication: give a private address
    /// [default: none].
    #[arg(long, env = "INFERIX_METRICS")]
    metrics: Option<String>,
    /// Whether Blender runs strangers' `.blend` scenes in bubblewrap,
    /// seeing neither the data folder nor the network: `auto` (when
    /// bubblewrap works here), `required` (refuse to start without it) or
    /// `off` [default: auto].
    #[arg(long, env = "INFERIX_BLENDER_SANDBOX", value_name = "POLICY")]
    blender_sandbox: Option<SandboxPolicy>,
}

/// A worker's or verifier's settings once merged.
#[derive(Debug, PartialEq)]
pub(crate) struct NodeSettings {
    pub(crate) manager: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) token: Option<String>,
    pub(crate) ib: Option<f64>,
    pub(crate) metrics: Option<String>,
    pub(crate) blender_sandbox: SandboxPolicy,
}

impl NodeArgs {
    /// Merges flags and environment over the config file; the manager
    /// address and the data folder have no default.
    pub(crate) fn resolve(self) -> Result<NodeSettings, ConfigError> {
        let file: NodeFile = config_file::load_optional(self.config.as_deref())?;
        Ok(NodeSettings {
            manager: self.manager.or(file.manager).ok_or(ConfigError::Missing {
                flag: "--manager",
                env: "INFERIX_MANAGER",
                key: "manager",
            })?,
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .ok_or(ConfigError::Missing {
                    flag: "--data-dir",
                    env: "INFERIX_DATA_DIR",
                    key: "data_dir",
                })?,
            token: secret(
                "--token",
                self.token.or(file.token),
                self.token_file.or(file.token_file).as_deref(),
            )?,
            ib: self.ib.or(file.ib),
            metrics: self.metrics.or(file.metrics),
            blender_sandbox: self
                .blender_sandbox
                .or(file.blender_sandbox)
                .unwrap_or_default(),
        })
    }
}

fn at_least_1(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) => Err(format!("must be a positive number, not {v}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The node's QUIC transport. A manager address without `<id>@` is
/// trusted on first use by nodes with a data folder (the id met first is
/// kept in `known-managers` and required from then on) and refused by
/// clients, which keep nothing: a token goes only to the manager meant.
pub(crate) fn quic(data_dir: Option<&Path>) -> anyhow::Result<QuicTransport> {
    let mut config = QuicConfig::default();
    let identity = match data_dir {
        Some(d) => {
            config.server_trust(ServerTrust::KnownHosts(d.join("known-managers")));
            NodeIdentity::load_or_create(d.join("identity"))?
        }
        None => {
            config.server_trust(ServerTrust::PinnedOnly);
            NodeIdentity::generate()
        }
    };
    Ok(QuicTransport::new(identity, config)?)
}

/// Serves a worker's or verifier's metrics at `addr`, when given, for the
/// life of the process.
async fn serve_metrics(
    addr: Option<&str>,
    source: inferix_http::MetricsSource,
) -> anyhow::Result<()> {
    let Some(addr) = addr else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    println!("metrics on http://{}/metrics", listener.local_addr()?);
    tokio::spawn(inferix_http::serve_metrics(listener, source));
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Longest a stopping node waits for its last messages to reach the peer.
const EXIT_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// Lets closing connections deliver what was sent before the close (a
/// worker's "task handed back"), within [`EXIT_FLUSH`].
async fn flush_connections(transport: &QuicTransport) {
    if tokio::time::timeout(EXIT_FLUSH, transport.wait_closed())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within {EXIT_FLUSH:?}");
    }
}

pub(crate) async fn manager(a: ManagerArgs) -> anyhow::Result<()> {
    let a = a.resolve()?;
    inferix_core::fs::create_private_dir(&a.data_dir)
        .with_context(|| format!("cannot create {}", a.data_dir.display()))?;
    let quic = quic(Some(&a.data_dir))?;
    let transport: Arc<dyn Transport> = Arc::new(quic.clone());
    let store = open_store(&a).await?;
    let blobs = Arc::new(open_blobs(&a)?);
    let config = ManagerConfig {
        listen: a.listen,
        node_token: a.node_token,
        verifier_token: a.verifier_token,
        guest_account: a.guest_account,
        quorum: a.quorum,
        lease: std::time::Duration::from_secs(a.lease_seconds),
        verification_timeout: std::time::Duration::from_secs(a.verification_seconds),
        blob_sweep: std::time::Duration::from_secs(a.blob_sweep_seconds),
        blob_retention: std::time::Duration::from_secs(a.blob_retention_seconds),
        max_tasks_per_job: a.max_tasks_per_job,
        ..ManagerConfig::default()
    };
    let mut builder = ManagerBuilder::new(transport, store.clone(), blobs)
        .scheduler(WeightedRandomScheduler::default())
        .config(config)
        .scratch_dir(a.data_dir.join("scratch"))
        .inspector(Arc::new(inferix_gpu::GltfInspector));
    // Proof of Render is always on: workers are strangers.
    let secret = match &a.por_secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => local_por_secret(&a.data_dir)?,
    };
    builder = builder
        .proof_of_render(PorConfig::new(ManagerSecret(secret)))
        .watermarker(Arc::new(inferix_gpu::GltfWatermarker));
    if let Some(blender) = blender(a.blender_sandbox).await? {
        builder = builder.watermarker(Arc::new(BlenderWatermarker::new(blender)));
    }
    if let Some((probe, ib)) =
        crate::probe::quote_probe(&a.data_dir, a.probe_ib, a.blender_sandbox).await?
    {
        // Nodes that announce glTF render a probe of the demo scene
        // before they are admitted.
        builder = builder
            .probe_renderer(probe, ib)
            .admission_probe(inferix_gpu::demo_scene_glb());
    }
    let handle = builder.build().start().await?;
    // The file first, so that it exists once the address is announced.
    std::fs::write(a.data_dir.join("manager.addr"), handle.addr())?;
    println!("manager listening on {}", handle.addr());
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = match &a.http {
        Some(addr) => {
            // A client of this manager, as each caller's account.
            let metrics = handle.metrics();
            let api = inferix_http::HttpApi::new(Arc::new(self::quic(None)?), handle.addr())
                .metrics(Arc::new(move || metrics.encode()));
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for HTTP"))?;
            println!("http api listening on http://{}", listener.local_addr()?);
            Some(tokio::spawn(api.serve(listener, async {
                let _ = http_stopped.await;
            })))
        }
        None => None,
    };
    terminated().await;
    eprintln!("manager stopping");
    let _ = stop_http.send(());
    if let Some(server) = http {
        let _ = server.await;
    }
    // Stops accepting and closes every session; every store write is its
    // own committed transaction, so nothing is lost in between.
    handle.shutdown().await;
    flush_connections(&quic).await;
    // The last handle closes the database, which checkpoints its journal.
    drop(store);
    eprintln!("manager stopped");
    Ok(())
}

pub(crate) async fn worker(a: NodeArgs) -> anyhow::Result<()> {
    let a = a.resolve()?;
    inferix_core::fs::create_private_dir(&a.data_dir)
        .with_context(|| format!("cannot create {}", a.data_dir.display()))?;
    let tracer = Arc::new(inferix_gpu::PathTracer::new()?);
    let ib = match a.ib {
        Some(ib) => ib,
        None => inferix_gpu::bench::run_bench(&tracer).await?.ib,
    };
    let (renderer, tags) = renderers(tracer, a.blender_sandbox).await?;
    let cfg = WorkerConfig {
        manager: a.manager,
        ib,
        tags,
        token: a.token,
        work_dir: a.data_dir.join("work"),
        ..WorkerConfig::default()
    };
    let quic = quic(Some(&a.data_dir))?;
    let node = WorkerNode::new(Arc::new(quic.clone()), renderer, cfg);
    println!("worker {} (IB {ib:.2})", node.id());
    let metrics = node.metrics();
    serve_metrics(a.metrics.as_deref(), Arc::new(move || metrics.encode())).await?;
    let result = until_terminated(|stopped| node.run(stopped)).await;
    flush_connections(&quic).await;
    result
}

pub(crate) async fn verifier(a: NodeArgs) -> anyhow::Result<()> {
    let a = a.resolve()?;
    inferix_core::fs::create_private_dir(&a.data_dir)
        .with_context(|| format!("cannot create {}", a.data_dir.display()))?;
    let cfg = VerifierConfig {
        manager: a.manager,
        token: a.token,
        work_dir: a.data_dir.join("work"),
        ..VerifierConfig::default()
    };
    let quic = quic(Some(&a.data_dir))?;
    let tracer = Arc::new(inferix_gpu::PathTracer::new()?);
    let (renderer, _) = renderers(tracer, a.blender_sandbox).await?;
    let node = VerifierNode::new(Arc::new(quic.clone()), cfg).with_renderer(renderer);
    println!("verifier {}", node.id());
    let metrics = node.metrics();
    serve_metrics(a.metrics.as_deref(), Arc::new(move || metrics.encode())).await?;
    let result = until_terminated(|stopped| node.run(stopped)).await;
    flush_connections(&quic).await;
    result
}

/// The path tracer, plus Blender for `.blend` scenes when one is installed,
/// and the capability tags that announce them (`blender`, `blender-3.4`).
pub(crate) async fn renderers(
    tracer: Arc<inferix_gpu::PathTracer>,
    sandbox: SandboxPolicy,
) -> anyhow::Result<(Arc<dyn Renderer>, Vec<String>)> {
    let mut list: Vec<Arc<dyn Renderer>> = vec![tracer];
    let mut tags = Vec::new();
    if let Some(b) = blender(sandbox).await? {
        let v = b.version();
        tags.push("blender".to_string());
        tags.push(format!("blender-{}.{}", v.major, v.minor));
        list.push(Arc::new(BlenderRenderer::new(b, BlenderConfig::default())));
    }
    Ok((Arc::new(RendererSet::new(list)), tags))
}

/// The installed Blender under `sandbox`, or none when there is no
/// Blender; a sandbox that is required and cannot run is an error, so the
/// node does not start.
async fn blender(sandbox: SandboxPolicy) -> anyhow::Result<Option<Blender>> {
    match Blender::locate(None).await {
        Ok(b) => Ok(Some(b.with_sandbox(sandbox).await?)),
        Err(e) => {
            tracing::info!("no Blender: .blend scenes are not rendered here ({e})");
            Ok(None)
        }
    }
}

/// The Proof-of-Render secret of a manager given none: 32 random bytes kept
/// (hex, readable by its owner only) in `por-secret` in the data folder,
/// so that leases granted before a restart still verify after it.
fn local_por_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("por-secret");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return hex::decode(text.trim())
                .with_context(|| format!("{} is not a hex secret", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let secret: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(hex::encode(secret).as_bytes())?;
            f.sync_all()?;
            Ok(secret.to_vec())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => local_por_secret(data_dir),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Where settings name no store: `tasks.sqlite` and `blobs/` in the data
/// folder; a name is opened by [`inferix_storage`]'s URL rules.
fn storage_options(a: &ManagerSettings) -> OpenOptions {
    OpenOptions::from_env()
        .with_schema(a.store_schema.clone())
        .with_postgres_password(a.store_password.clone())
        .with_s3_endpoint(a.s3_endpoint.clone())
}

/// The task database the settings name.
pub(crate) async fn open_store(a: &ManagerSettings) -> anyhow::Result<Arc<dyn TaskStore>> {
    let url = match &a.store {
        Some(url) => url.clone(),
        None => format!("sqlite:{}", a.data_dir.join("tasks.sqlite").display()),
    };
    Ok(open_task_store(&url, &storage_options(a)).await?)
}

/// The blob store the settings name.
fn open_blobs(a: &ManagerSettings) -> anyhow::Result<ObjectBlobStore> {
    let url = match &a.blobs {
        Some(url) => url.clone(),
        None => format!("file:{}", a.data_dir.join("blobs").display()),
    };
    Ok(open_blob_store(&url, &storage_options(a))?)
}

/// Runs a node until it ends by itself or SIGINT/SIGTERM asks it to stop,
/// then waits for its own shutdown (a worker hands back its task).
async fn until_terminated<F>(run: impl FnOnce(watch::Receiver<bool>) -> F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = Result<(), inferix_node::NodeError>> + Send + 'static,
{
    let (stop, stopped) = watch::channel(false);
    let mut node = tokio::spawn(run(stopped));
    tokio::select! {
        r = &mut node => return Ok(r??),
        _ = terminated() => {}
    }
    eprintln!("stopping");
    let _ = stop.send(true);
    Ok(node.await??)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manager_without_a_secret_keeps_one_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let first = local_por_secret(dir.path()).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(
            local_por_secret(dir.path()).unwrap(),
            first,
            "the same secret after a restart"
        );
        let other = tempfile::tempdir().unwrap();
        assert_ne!(local_por_secret(other.path()).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("por-secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
        }
        std::fs::write(dir.path().join("por-secret"), "not hex").unwrap();
        assert!(local_por_secret(dir.path()).is_err());
    }
}
