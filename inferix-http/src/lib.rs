//! The HTTP API of an Inferix manager: JSON REST for everything the QUIC
//! client can do (upload, quote, submit, list, status, events as
//! Server-Sent Events, frames one by one or zipped, cancel, pause, resume,
//! claim), operator listings, its OpenAPI 3 document at
//! `/api/openapi.json`, and a web dashboard at `/` built on that API.
//!
//! The API is a client of the manager: each request is made on a manager
//! connection that presents the caller's API key (`Authorization: Bearer`),
//! so the manager's rules decide everything — who may see a job, whether
//! an account can pay — exactly as for QUIC clients.
//!
//! ```no_run
//! # async fn run(transport: std::sync::Arc<dyn inferix_transport::Transport>) -> std::io::Result<()> {
//! let api = inferix_http::HttpApi::new(transport, "<id>@127.0.0.1:7400");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! api.serve(listener, std::future::pending()).await
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use inferix_transport::Transport;

mod dashboard;
mod error;
mod extract;
mod gateway;
pub mod model;
mod openapi;
mod routes;

pub use error::ApiError;
pub use openapi::{openapi_json, ApiDoc};

/// Produces the manager's metrics in the Prometheus text format.
pub type MetricsSource = Arc<dyn Fn() -> String + Send + Sync>;

/// The HTTP API of one manager.
pub struct HttpApi {
    gateway: Arc<gateway::Gateway>,
    metrics: Option<MetricsSource>,
}

impl HttpApi {
    /// An API that reaches the manager at `manager` (an address as the
    /// manager prints it) over `transport`.
    pub fn new(transport: Arc<dyn Transport>, manager: impl Into<String>) -> Self {
        Self {
            gateway: Arc::new(gateway::Gateway::new(transport, manager.into())),
            metrics: None,
        }
    }

    /// Also serves `metrics()` at `/metrics`, to operators' keys (e.g.
    /// `ManagerHandle::metrics` of the manager in this process).
    pub fn metrics(mut self, metrics: MetricsSource) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The routes, to serve or to nest in a larger application.
    pub fn router(&self) -> Router {
        let jobs = Router::new()
            .route("/api/quote", post(routes::quote))
            .route("/api/jobs", post(routes::submit).get(routes::list_jobs))
            .route("/api/jobs/{id}", get(routes::status))
            .route("/api/jobs/{id}/events", get(routes::events))
            .route("/api/jobs/{id}/frames/{frame}", get(routes::frame))
            .route("/api/jobs/{id}/frames.zip", get(routes::frames_zip))
            .route("/api/jobs/{id}/outputs/{name}", get(routes::output))
            .route("/api/jobs/{id}/cancel", post(routes::cancel))
            .route("/api/jobs/{id}/pause", post(routes::pause))
            .route("/api/jobs/{id}/resume", post(routes::resume))
            .route("/api/jobs/{id}/claims", post(routes::claim))
            .route("/api/nodes", get(routes::nodes))
            .route("/api/nodes/{node}/{action}", post(routes::node_action))
            .route("/api/ledger", get(routes::ledger))
            .route(
                "/api/openapi.json",
                get(|| async {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        openapi_json(),
                    )
                }),
            );
        // Uploads are streamed to the blob store, whose own limit applies.
        let uploads = Router::new()
            .route("/api/scenes", post(routes::upload))
            .layer(DefaultBodyLimit::disable());
        let mut router = jobs
            .merge(uploads)
            .with_state(self.gateway.clone())
            .merge(dashboard::router());
        if let Some(source) = self.metrics.clone() {
            let state = routes::MetricsState {
                gateway: self.gateway.clone(),
                source,
            };
            router = router.merge(
                Router::new()
                    .route("/metrics", get(routes::metrics))
                    .with_state(Arc::new(state)),
            );
        }
        router
    }

    /// Serves the API on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Serves `source` at `/metrics` on `listener`, without authentication: a
/// worker's or verifier's own metrics, on an address its operator keeps
/// private.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    source: MetricsSource,
) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let text = source();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    axum::serve(listener, app).await
}
