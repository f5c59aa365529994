//! The OpenAPI 3 document, generated from the handlers and types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::model::*;
use crate::routes;

/// The API's OpenAPI document (`ApiDoc::openapi()`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Inferix manager HTTP API",
        description = "Submit and follow render jobs on an Inferix network. \
            Authenticate with an account's API key as a bearer token \
            (`inferix account create` makes one).",
    ),
    paths(
        routes::upload,
        routes::quote,
        routes::submit,
        routes::list_jobs,
        routes::status,
        routes::events,
        routes::frame,
        routes::frames_zip,
        routes::output,
        routes::cancel,
        routes::pause,
        routes::resume,
        routes::claim,
        routes::nodes,
        routes::node_action,
        routes::ledger,
        routes::metrics,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, UploadView, JobBody, JobRequest, JobDocument, BlobRef,
        RenderDocument, QuoteView, SubmittedView,
        FrameView, OutputView, JobView, JobSummaryView, NodeView, ClaimRequest, ClaimView, ActionView,
        NodeActionView, LedgerView, TaskView, VerdictView, BalanceView, TransactionView,
        PostingView,
    )),
    modifiers(&BearerKey),
    tags(
        (name = "jobs", description = "Upload, quote, submit, follow and download jobs"),
        (name = "operators", description = "The network's nodes (operators' keys only)"),
    )
)]
pub struct ApiDoc;

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An account's API key (ifx_…)"))
                    .build(),
            ),
        );
    }
}

/// The document as served at `/api/openapi.json` and checked in as
/// `docs/openapi.json`.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
