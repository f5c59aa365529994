//! The web dashboard: a page at `/` and its scripts and style under
//! `/ui/`, compiled into the binary so that a manager serves it with no
//! files to install and no network access (no CDN).
//!
//! The pages hold no secrets and do no authorization of their own: the
//! browser keeps the API key the user logs in with and calls the JSON API
//! with it as a bearer token, so the manager's rules apply exactly as for
//! any other client.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The dashboard's files: name under `/ui/`, media type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/style.css"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/api.js"),
    ),
    (
        "util.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/util.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/app.js"),
    ),
    (
        "jobs.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/jobs.js"),
    ),
    (
        "job.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/job.js"),
    ),
    (
        "nodes.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/nodes.js"),
    ),
    (
        "ledger.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/ledger.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("dashboard/favicon.svg"),
    ),
];

const INDEX: &str = include_str!("dashboard/index.html");

/// Only the dashboard's own scripts and style run; images may be the
/// frames it fetched (with the key) and shows as `blob:` URLs. Keeps an
/// injected script, were one ever to slip into a page, from reading the
/// key out of session storage and sending it elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The dashboard's routes: `/` and `/ui/{file}`.
pub(crate) fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(StatusCode::OK, "text/html; charset=utf-8", INDEX) }),
        )
        .route("/ui/{file}", get(asset))
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, media_type, body)) => page(StatusCode::OK, media_type, body),
        None => page(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no such dashboard file",
        ),
    }
}

/// A response with the dashboard's headers. `no-cache` (revalidate, not
/// "never store") so that a manager upgraded in place serves its new
/// scripts at the next load.
fn page(status: StatusCode, media_type: &'static str, body: &'static str) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}
