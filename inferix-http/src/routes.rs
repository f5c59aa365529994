//! The handlers, one per endpoint, each documented for the OpenAPI
//! document by its `#[utoipa::path]`.

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{Stream, TryStreamExt};
use inferix_core::blob::BlobStoreExt;
use inferix_core::job::OutputFormat;
use inferix_core::protocol::JobEvent;
use serde::Deserialize;
use tokio_util::io::StreamReader;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::gateway::{ApiKey, Gateway};
use crate::model::*;

type Api = State<Arc<Gateway>>;

/// Query of an upload.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct UploadQuery {
    /// The file's name (its extension tells a scene's format).
    #[allow(dead_code)]
    name: Option<String>,
}

/// Upload a scene or environment map (the request body, streamed); answers
/// its hash for a job request.
#[utoipa::path(
    post, path = "/api/scenes", tag = "jobs",
    params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored", body = UploadView),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 413, description = "Larger than the manager accepts", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn upload(
    State(gw): Api,
    ApiKey(key): ApiKey,
    Query(_): Query<UploadQuery>,
    body: Body,
) -> Result<(StatusCode, Json<UploadView>), ApiError> {
    let s = gw.client(key.as_deref()).await?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let meta = s
        .client
        .blob_store()
        .put(Box::pin(StreamReader::new(stream)))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UploadView {
            hash: meta.hash.to_string(),
            size: meta.size,
        }),
    ))
}

/// Price a job without running it.
#[utoipa::path(
    post, path = "/api/quote", tag = "jobs",
    request_body = JobBody,
    responses(
        (status = 200, description = "The price", body = QuoteView),
        (status = 400, description = "A wrong field, named", body = ErrorBody),
        (status = 404, description = "The scene was not uploaded", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn quote(
    State(gw): Api,
    ApiKey(key): ApiKey,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<QuoteView>, ApiError> {
    let spec = job_spec(body)?;
    let s = gw.client(key.as_deref()).await?;
    let q = s.client.quote(&spec).await.map_err(|e| s.fail(&gw, e))?;
    Ok(Json(q.into()))
}

/// Submit a job: priced, checked against the account's funds and quotas,
/// and escrowed from its balance.
#[utoipa::path(
    post, path = "/api/jobs", tag = "jobs",
    request_body = JobBody,
    responses(
        (status = 201, description = "Submitted", body = SubmittedView),
        (status = 400, description = "A wrong field, named", body = ErrorBody),
        (status = 402, description = "The account cannot pay the quote", body = ErrorBody),
        (status = 429, description = "Over one of the account's quotas", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn submit(
    State(gw): Api,
    ApiKey(key): ApiKey,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<SubmittedView>), ApiError> {
    let spec = job_spec(body)?;
    let s = gw.client(key.as_deref()).await?;
    let (job, q) = s.client.submit(&spec).await.map_err(|e| s.fail(&gw, e))?;
    Ok((
        StatusCode::CREATED,
        Json(SubmittedView {
            job: job.to_string(),
            quote: q.into(),
        }),
    ))
}

/// Query of a job listing.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct ListQuery {
    /// Every account's jobs (operators only).
    #[serde(default)]
    all: bool,
}

/// The caller's jobs, newest first (with `all=true`, every account's:
/// operators only).
#[utoipa::path(
    get, path = "/api/jobs", tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "Jobs", body = Vec<JobSummaryView>),
        (status = 403, description = "all=true without an operator's key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn list_jobs(
    State(gw): Api,
    ApiKey(key): ApiKey,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<JobSummaryView>>, ApiError> {
    let s = gw.client(key.as_deref()).await?;
    let jobs = s
        .client
        .list_jobs(q.all)
        .await
        .map_err(|e| s.fail(&gw, e))?;
    Ok(Json(jobs.into_iter().map(Into::into).collect()))
}

/// A job's status: progress, tasks per state, accepted frames.
#[utoipa::path(
    get, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Status", body = JobView),
        (status = 404, description = "No such job, or another account's", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn status(
    State(gw): Api,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let job = job_id(&id)?;
    let s = gw.client(key.as_deref()).await?;
    let st = s.client.status(job).await.map_err(|e| s.fail(&gw, e))?;
    Ok(Json(st.into()))
}

/// A job's events as Server-Sent Events, from now until it completes
/// (and, when it asked for outputs, until they are made: `outputs_finished`),
/// fails or is cancelled. Each event's name is its kind and its data the
/// event as JSON.
#[utoipa::path(
    get, path = "/api/jobs/{id}/events", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "text/event-stream of the job's events", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such job, or another account's", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn events(
    State(gw): Api,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let job = job_id(&id)?;
    let s = gw.client(key.as_deref()).await?;
    let rx = s.client.watch(job).await.map_err(|e| s.fail(&gw, e))?;
    // A job that asked for outputs ends its stream once they are made.
    let outputs = !s
        .client
        .status_page(job, 0)
        .await
        .map_err(|e| s.fail(&gw, e))?
        .job
        .spec
        .outputs
        .is_empty();
    let stream = futures::stream::unfold((rx, false), move |(mut rx, ended)| async move {
        if ended {
            return None;
        }
        let ev = rx.recv().await?;
        let last = match ev {
            JobEvent::Completed { .. } => !outputs,
            JobEvent::OutputsFinished { .. } | JobEvent::Failed { .. } | JobEvent::Cancelled => {
                true
            }
            _ => false,
        };
        let event = Event::default()
            .event(ev.kind())
            .json_data(&ev)
            .unwrap_or_else(|_| Event::default().event("error"));
        Some((Ok(event), (rx, last)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn media_type(format: OutputFormat) -> &'static str {
    match format {
        OutputFormat::Png => "image/png",
        _ => "image/x-exr",
    }
}

/// One accepted frame's file.
#[utoipa::path(
    get, path = "/api/jobs/{id}/frames/{frame}", tag = "jobs",
    params(
        ("id" = String, Path, description = "Job id"),
        ("frame" = u32, Path, description = "Frame number"),
    ),
    responses(
        (status = 200, description = "The image (PNG or EXR)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No such job or accepted frame", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn frame(
    State(gw): Api,
    ApiKey(key): ApiKey,
    Path((id, frame)): Path<(String, u32)>,
) -> Result<Response, ApiError> {
    let job = job_id(&id)?;
    let s = gw.client(key.as_deref()).await?;
    let st = s.client.status(job).await.map_err(|e| s.fail(&gw, e))?;
    let f =
        st.frames.iter().find(|f| f.frame == frame).ok_or_else(|| {
            ApiError::not_found(format!("frame {frame} of job {id} is not accepted"))
        })?;
    let bytes = s.client.blob_store().get_bytes(f.blob).await?;
    let format = st.job.spec.format;
    let name = format!("frame_{frame:04}.{}", format.extension());
    Ok((
        [
            (header::CONTENT_TYPE, media_type(format).to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Every accepted frame in one zip archive (entries stored: frames are
/// compressed images already).
#[utoipa::path(
    get, path = "/api/jobs/{id}/frames.zip", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "A zip of frame_NNNN files", content_type = "application/zip", body = Vec<u8>),
        (status = 404, description = "No such job, or another account's", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn frames_zip(
    State(gw): Api,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = job_id(&id)?;
    let s = gw.client(key.as_deref()).await?;
    let st = s.client.status(job).await.map_err(|e| s.fail(&gw, e))?;
    let ext = st.job.spec.format.extension();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let internal = |e: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e);
    for f in &st.frames {
        let bytes = s.client.blob_store().get_bytes(f.blob).await?;
        zip.start_file(format!("frame_{:04}.{ext}", f.frame), stored)
            .map_err(|e| internal(e.to_string()))?;
        zip.write_all(&bytes).map_err(|e| internal(e.to_string()))?;
    }
    let bytes = zip
        .finish()
        .map_err(|e| internal(e.to_string()))?
        .into_inner();
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.zip\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// One output of a completed job (its video, archive, preview or contact
/// sheet), once made.
#[utoipa::path(
    get, path = "/api/jobs/{id}/outputs/{name}", tag = "jobs",
    params(
        ("id" = String, Path, description = "Job id"),
        ("name" = String, Path, description = "Output name: mp4, zip, tar, jpeg, png16, exr-half, gif, webp or contact-sheet"),
    ),
    responses(
        (status = 200, description = "The file (its media type says which)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No such job, or it did not ask for this output", body = ErrorBody),
        (status = 409, description = "The output is not made yet, or failed (the message says why)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn output(
    State(gw): Api,
    ApiKey(key): ApiKey,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    use inferix_core::outputs::OutputState;
    let job = job_id(&id)?;
    let s = gw.client(key.as_deref()).await?;
    let st = s
        .client
        .status_page(job, 0)
        .await
        .map_err(|e| s.fail(&gw, e))?;
    let out = st
        .job
        .outputs
        .iter()
        .find(|o| o.name() == name)
        .ok_or_else(|| ApiError::not_found(format!("job {id} has no output {name:?}")))?;
    let blob = match &out.state {
        OutputState::Ready { blob, .. } => *blob,
        OutputState::Pending => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_ready",
                format!("output {name} of job {id} is not made yet"),
            ))
        }
        OutputState::Failed { reason } => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "output_failed",
                format!("output {name} of job {id} failed: {reason}"),
            ))
        }
    };
    let bytes = s.client.blob_store().get_bytes(blob).await?;
    Ok((
        [
            (header::CONTENT_TYPE, out.request.media_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", out.request.file_name()),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn act(
    gw: &Gateway,
    key: Option<String>,
    id: String,
    action: Action,
) -> Result<Json<ActionView>, ApiError> {
    let job = job_id(&id)?;
    let s = gw.client(key.as_deref()).await?;
    let (result, done) = match action {
        Action::Cancel => (s.client.cancel(job).await, "cancelled"),
        Action::Pause => (s.client.pause(job).await, "paused"),
        Action::Resume => (s.client.resume(job).await, "resumed"),
    };
    result.map_err(|e| s.fail(gw, e))?;
    Ok(Json(ActionView {
        job: id,
        done: done.into(),
    }))
}

enum Action {
    Cancel,
    Pause,
    Resume,
}

/// Cancel a job: running tasks are revoked, unspent escrow refunded.
#[utoipa::path(
    post, path = "/api/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Cancelled", body = ActionView),
        (status = 400, description = "Already finished", body = ErrorBody),
        (status = 404, description = "No such job, or another account's", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn cancel(
    State(gw): Api,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
) -> Result<Json<ActionView>, ApiError> {
    act(&gw, key, id, Action::Cancel).await
}

/// Pause a job: no new leases; running tasks finish.
#[utoipa::path(
    post, path = "/api/jobs/{id}/pause", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Paused", body = ActionView),
        (status = 400, description = "Not active", body = ErrorBody),
        (status = 404, description = "No such job, or another account's", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn pause(
    State(gw): Api,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
) -> Result<Json<ActionView>, ApiError> {
    act(&gw, key, id, Action::Pause).await
}

/// Resume a paused job.
#[utoipa::path(
    post, path = "/api/jobs/{id}/resume", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Resumed", body = ActionView),
        (status = 400, description = "Not paused", body = ErrorBody),
        (status = 404, description = "No such job, or another account's", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn resume(
    State(gw): Api,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
) -> Result<Json<ActionView>, ApiError> {
    act(&gw, key, id, Action::Resume).await
}

/// Claim that accepted frames are bad: another node re-renders them, and
/// the outcome arrives as a `claim_settled` event.
#[utoipa::path(
    post, path = "/api/jobs/{id}/claims", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    request_body = ClaimRequest,
    responses(
        (status = 202, description = "Filed", body = ClaimView),
        (status = 400, description = "Frames not accepted, or the window closed", body = ErrorBody),
        (status = 404, description = "No such job, or another account's", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn claim(
    State(gw): Api,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ClaimRequest>,
) -> Result<(StatusCode, Json<ClaimView>), ApiError> {
    let job = job_id(&id)?;
    let s = gw.client(key.as_deref()).await?;
    let claim = s
        .client
        .claim(job, req.frames, &req.reason)
        .await
        .map_err(|e| s.fail(&gw, e))?;
    Ok((StatusCode::ACCEPTED, Json(ClaimView { claim })))
}

/// The connected workers and verifiers (operators only).
#[utoipa::path(
    get, path = "/api/nodes", tag = "operators",
    responses(
        (status = 200, description = "Nodes", body = Vec<NodeView>),
        (status = 403, description = "Not an operator's key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn nodes(
    State(gw): Api,
    ApiKey(key): ApiKey,
) -> Result<Json<Vec<NodeView>>, ApiError> {
    let s = gw.client(key.as_deref()).await?;
    let nodes = s.client.list_nodes().await.map_err(|e| s.fail(&gw, e))?;
    Ok(Json(nodes.into_iter().map(Into::into).collect()))
}

/// Drain, undrain, disable or enable a connected node (operators only).
#[utoipa::path(
    post, path = "/api/nodes/{node}/{action}", tag = "operators",
    params(
        ("node" = String, Path, description = "Node id"),
        ("action" = String, Path, description = "`drain` (no new task), `undrain`, `disable` (disconnect and refuse) or `enable`"),
    ),
    responses(
        (status = 200, description = "Done", body = NodeActionView),
        (status = 403, description = "Not an operator's key", body = ErrorBody),
        (status = 404, description = "No such node connected, or no such action", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn node_action(
    State(gw): Api,
    ApiKey(key): ApiKey,
    Path((node, action)): Path<(String, String)>,
) -> Result<Json<NodeActionView>, ApiError> {
    use inferix_core::protocol::NodeAction;
    let id: inferix_core::ids::NodeId = node
        .parse()
        .map_err(|_| ApiError::not_found(format!("node {node} not found")))?;
    let act = match action.as_str() {
        "drain" => NodeAction::Drain,
        "undrain" => NodeAction::Undrain,
        "disable" => NodeAction::Disable,
        "enable" => NodeAction::Enable,
        other => return Err(ApiError::not_found(format!("no node action {other:?}"))),
    };
    let s = gw.client(key.as_deref()).await?;
    s.client
        .control_node(id, act)
        .await
        .map_err(|e| s.fail(&gw, e))?;
    Ok(Json(NodeActionView { node, done: action }))
}

/// The ledger's totals, each account's balance and the latest
/// transactions (operators only).
#[utoipa::path(
    get, path = "/api/ledger", tag = "operators",
    responses(
        (status = 200, description = "Totals, balances and recent transactions", body = LedgerView),
        (status = 403, description = "Not an operator's key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn ledger(
    State(gw): Api,
    ApiKey(key): ApiKey,
) -> Result<Json<LedgerView>, ApiError> {
    let s = gw.client(key.as_deref()).await?;
    let totals = s.client.ledger().await.map_err(|e| s.fail(&gw, e))?;
    Ok(Json(totals.into()))
}

/// What `/metrics` needs: who may scrape, and where the text comes from.
pub(crate) struct MetricsState {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) source: crate::MetricsSource,
}

/// The manager's metrics in the Prometheus (OpenMetrics) text format, for
/// operators' keys: counts of the network's activity are the operator's.
#[utoipa::path(
    get, path = "/metrics", tag = "operators",
    responses(
        (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String),
        (status = 403, description = "Not an operator's key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn metrics(
    State(m): State<Arc<MetricsState>>,
    ApiKey(key): ApiKey,
) -> Result<Response, ApiError> {
    let s = m.gateway.client(key.as_deref()).await?;
    // Only operators may list nodes: the same check gates the metrics.
    s.client
        .list_nodes()
        .await
        .map_err(|e| s.fail(&m.gateway, e))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        (m.source)(),
    )
        .into_response())
}
