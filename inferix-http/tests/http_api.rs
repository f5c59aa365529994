//! The HTTP API driven end to end with a real HTTP client against a local
//! network rendering real frames: upload, quote, submit, follow the
//! Server-Sent Events to completion, download frames one by one and
//! zipped; another account is told "not found" for everything about the
//! job; an account without funds is refused with 402; bad keys with 401;
//! bad documents with a typed 400 naming the field; operators list the
//! nodes. The served OpenAPI document is the checked-in one.

use std::sync::Arc;

use inferix_core::store::accounts::Accounts;
use inferix_http::HttpApi;
use inferix_local::LocalNetwork;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

struct Api {
    base: String,
    http: Client,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, key: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, key: &str, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// Asserts an error answer: its status and its JSON kind.
async fn assert_error(r: reqwest::Response, status: StatusCode, code: &str) -> String {
    assert_eq!(r.status(), status, "{:?}", r.text().await);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_through_the_http_api_from_upload_to_zip() {
    let net = LocalNetwork::builder()
        .workers(2)
        .verifiers(1)
        .without_guest()
        .start()
        .await
        .unwrap();
    let store = net.store();
    let accounts = Accounts::new(&*store);
    let (_, ana) = accounts.create("ana", false, 1).await.unwrap();
    let (_, ben) = accounts.create("ben", false, 1).await.unwrap();
    let (_, ops) = accounts.create("ops", true, 1).await.unwrap();
    let (_, cy) = accounts.create("cy", false, 1).await.unwrap();
    accounts.deposit("ana", 1 << 40, "funds", 1).await.unwrap();
    accounts.deposit("ben", 1 << 40, "funds", 1).await.unwrap();

    let metrics = net.manager().metrics();
    let api = HttpApi::new(net.client_transport().unwrap(), net.address())
        .metrics(Arc::new(move || metrics.encode()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api.serve(listener, async {
        let _ = stopped.await;
    }));
    let api = Api {
        base,
        http: Client::new(),
    };

    let before = scrape(&api, &ops).await;

    // Keys: none, a made-up one and a malformed header are 401s.
    let anonymous = api.http.get(api.url("/api/jobs")).send().await.unwrap();
    assert_eq!(
        anonymous.headers().get("www-authenticate").unwrap(),
        "Bearer"
    );
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let made_up = "ifx_0123456789abcdef_0123456789abcdef0123456789abcdef";
    assert_error(
        api.get(made_up, "/api/jobs").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let basic = api
        .http
        .get(api.url("/api/jobs"))
        .header("authorization", "Basic YWxhZGRpbjpvcGVu")
        .send()
        .await
        .unwrap();
    assert_error(basic, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // Upload the scene as the request body.
    let upload = api
        .http
        .post(api.url("/api/scenes?name=demo.glb"))
        .bearer_auth(&ana)
        .body(inferix_gpu::demo_scene_glb())
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), StatusCode::CREATED);
    let upload: Value = upload.json().await.unwrap();
    let request = json!({
        "scene": upload["hash"],
        "scene_name": "demo.glb",
        "frames": "1-3",
        "width": 32,
        "height": 24,
        "samples": 2,
        "chunk": 1,
        "priority": 3,
        "tags": [],
    });

    // A wrong document is a 400 that names what is wrong.
    let mut unknown = request.clone();
    unknown["colour"] = json!("red");
    let why = assert_error(
        api.post(&ana, "/api/quote", &unknown).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert!(why.contains("colour"), "{why}");
    // The job-file form (docs/job-files.md) names the scene by its blob and
    // refuses an unknown field by its path.
    let document = json!({
        "scene": { "blob": upload["hash"], "name": "demo.glb" },
        "frames": "1-3",
        "render": { "width": 32, "height": 24, "samples": 2 },
        "chunk": 1,
        "priority": 3,
    });
    let mut misspelt = document.clone();
    misspelt["render"]["sampels"] = json!(2);
    let why = assert_error(
        api.post(&ana, "/api/jobs", &misspelt).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert!(why.contains("`render.sampels`"), "{why}");
    let mut reversed = request.clone();
    reversed["frames"] = json!("9-2");
    assert_error(
        api.post(&ana, "/api/quote", &reversed).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;

    let quote: Value = api
        .post(&ana, "/api/quote", &request)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (quote["frames"].as_u64(), quote["tasks"].as_u64()),
        (Some(3), Some(3))
    );
    let same: Value = api
        .post(&ana, "/api/quote", &document)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(same, quote, "both forms describe one job");

    // Without funds: 402, and the message says how to add them.
    let why = assert_error(
        api.post(&cy, "/api/jobs", &request).await,
        StatusCode::PAYMENT_REQUIRED,
        "payment_required",
    )
    .await;
    assert!(why.contains("deposit"), "{why}");

    // Submitted as a job file asking for a zip and a contact sheet.
    let mut with_outputs = document.clone();
    with_outputs["outputs"] = json!([{ "kind": "zip" }, { "kind": "contact-sheet" }]);
    let submitted = api.post(&ana, "/api/jobs", &with_outputs).await;
    assert_eq!(submitted.status(), StatusCode::CREATED);
    let submitted: Value = submitted.json().await.unwrap();
    let job = submitted["job"].as_str().unwrap().to_string();

    // Follow the events until the stream ends with the job.
    let mut events = api.get(&ana, &format!("/api/jobs/{job}/events")).await;
    assert_eq!(events.status(), StatusCode::OK);
    assert_eq!(
        events.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut text = String::new();
    let followed = tokio::time::timeout(std::time::Duration::from_secs(600), async {
        while let Some(chunk) = events.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(followed.is_ok(), "the event stream did not end: {text}");
    assert!(text.contains("event: task_accepted"), "{text}");
    assert!(text.contains("event: completed"), "{text}");
    assert!(
        text.trim_end().contains("event: outputs_finished"),
        "the stream ends once the outputs are made: {text}"
    );

    let status: Value = api
        .get(&ana, &format!("/api/jobs/{job}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "completed");
    assert_eq!(status["owner"], "ana");
    assert_eq!(status["frames_accepted"], 3);
    assert_eq!(status["priority"], 3);
    let url = status["frames"][1]["url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("/api/jobs/{job}/frames/2"));

    let frame = api.get(&ana, &url).await;
    assert_eq!(frame.headers().get("content-type").unwrap(), "image/png");
    let png = frame.bytes().await.unwrap();
    let image = inferix_gpu::codec::decode_png(&png).unwrap();
    assert_eq!((image.width, image.height), (32, 24));

    let zip = api.get(&ana, &format!("/api/jobs/{job}/frames.zip")).await;
    assert_eq!(zip.status(), StatusCode::OK);
    let bytes = zip.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(archive.len(), 3);
    let mut second = Vec::new();
    std::io::Read::read_to_end(&mut archive.by_name("frame_0002.png").unwrap(), &mut second)
        .unwrap();
    assert_eq!(second, png.to_vec(), "the zip holds the same frames");

    // The outputs: listed with their URLs, served with their media types.
    let listed: Vec<(&str, &str)> = status["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap(), o["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [("zip", "ready"), ("contact-sheet", "ready")],
        "{status}"
    );
    let output = api.get(&ana, &format!("/api/jobs/{job}/outputs/zip")).await;
    assert_eq!(output.status(), StatusCode::OK);
    assert_eq!(
        output.headers().get("content-type").unwrap(),
        "application/zip"
    );
    let made = output.bytes().await.unwrap();
    let mut made = zip::ZipArchive::new(std::io::Cursor::new(made.to_vec())).unwrap();
    let mut again = Vec::new();
    std::io::Read::read_to_end(&mut made.by_name("frame_0002.png").unwrap(), &mut again).unwrap();
    assert_eq!(again, png.to_vec(), "the network's zip holds the frames");
    let sheet = api
        .get(&ana, status["outputs"][1]["url"].as_str().unwrap())
        .await;
    assert_eq!(sheet.headers().get("content-type").unwrap(), "image/png");
    inferix_gpu::codec::decode_png(&sheet.bytes().await.unwrap()).unwrap();
    let why = assert_error(
        api.get(&ana, &format!("/api/jobs/{job}/outputs/mp4")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert!(why.contains("mp4"), "{why}");

    let mine: Value = api.get(&ana, "/api/jobs").await.json().await.unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["id"], job.as_str());

    // Ben is told "not found" for everything about Ana's job.
    for path in [
        format!("/api/jobs/{job}"),
        format!("/api/jobs/{job}/events"),
        format!("/api/jobs/{job}/frames/2"),
        format!("/api/jobs/{job}/frames.zip"),
        format!("/api/jobs/{job}/outputs/zip"),
    ] {
        assert_error(
            api.get(&ben, &path).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    for action in ["cancel", "pause", "resume"] {
        let path = format!("/api/jobs/{job}/{action}");
        assert_error(
            api.post(&ben, &path, &json!({})).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let claim = json!({ "frames": [2], "reason": "mine now" });
    assert_error(
        api.post(&ben, &format!("/api/jobs/{job}/claims"), &claim)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let theirs: Value = api.get(&ben, "/api/jobs").await.json().await.unwrap();
    assert_eq!(theirs, json!([]));
    assert_error(
        api.get(&ben, "/api/jobs?all=true").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // Ana may claim her own frame; the claim is filed.
    let filed = api
        .post(&ana, &format!("/api/jobs/{job}/claims"), &claim)
        .await;
    assert_eq!(filed.status(), StatusCode::ACCEPTED);

    // Operators list every job and the nodes; others may not.
    let all: Value = api
        .get(&ops, "/api/jobs?all=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);
    let nodes: Value = api.get(&ops, "/api/nodes").await.json().await.unwrap();
    let roles: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.iter().filter(|r| **r == "worker").count(), 2);
    assert_eq!(roles.iter().filter(|r| **r == "verifier").count(), 1);
    assert_error(
        api.get(&ana, "/api/nodes").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let ledger: Value = api.get(&ops, "/api/ledger").await.json().await.unwrap();
    assert_eq!(ledger["deposited"], json!(2i64 << 40), "{ledger}");
    let worker = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "worker")
        .unwrap()["node"]
        .as_str()
        .unwrap()
        .to_string();
    let drained = api
        .post(&ops, &format!("/api/nodes/{worker}/drain"), &json!({}))
        .await;
    assert_eq!(drained.status(), StatusCode::OK);
    let nodes: Value = api.get(&ops, "/api/nodes").await.json().await.unwrap();
    let state = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == worker.as_str())
        .unwrap()["state"]
        .clone();
    assert_eq!(state, "drained");
    assert_error(
        api.post(&ana, &format!("/api/nodes/{worker}/disable"), &json!({}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        api.get(&ana, "/api/ledger").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // The metrics moved with the job, and are the operators'.
    let after = scrape(&api, &ops).await;
    let moved = |name: &str| {
        after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
    };
    assert!(moved("inferix_dispatches_total") >= 3.0, "{after:?}");
    assert!(moved("inferix_job_events_total{kind=\"task_accepted\"}") >= 3.0);
    assert!(moved("inferix_job_events_total{kind=\"completed\"}") >= 1.0);
    assert!(moved("inferix_verification_rounds_total{kind=\"passed\"}") >= 3.0);
    assert!(
        moved("inferix_blob_bytes_total{kind=\"in\"}") > 0.0,
        "the upload"
    );
    assert!(
        moved("inferix_blob_bytes_total{kind=\"out\"}") > 0.0,
        "the downloads"
    );
    assert!(moved("inferix_store_operation_seconds_count{kind=\"update_task\"}") > 0.0);
    assert!(moved("inferix_ready_to_start_seconds_count") >= 3.0);
    // Counted as the scrape is answered: the two workers once each, one
    // of them drained.
    let workers: f64 = ["idle", "busy", "drained"]
        .iter()
        .map(|state| {
            let series = format!("inferix_connected_nodes{{role=\"Worker\",state=\"{state}\"}}");
            after.get(&series).copied().unwrap_or(0.0)
        })
        .sum();
    assert_eq!(workers, 2.0, "{after:?}");
    assert_eq!(
        after.get("inferix_connected_nodes{role=\"Worker\",state=\"drained\"}"),
        Some(&1.0)
    );
    assert_error(
        api.get(&ben, "/metrics").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    net.shutdown().await;
}

/// Scrapes `/metrics` and parses it as Prometheus text: each sample line is
/// `name{labels} value` with a number for value, every sample's family was
/// declared by `# TYPE`, and the text ends with `# EOF`.
async fn scrape(api: &Api, key: &str) -> std::collections::HashMap<String, f64> {
    let r = api.get(key, "/metrics").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    assert_eq!(text.lines().last(), Some("# EOF"), "{text}");
    let mut families = Vec::new();
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.push(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        assert!(
            families.iter().any(|f| name.starts_with(f.as_str())),
            "{name} has no # TYPE"
        );
        samples.insert(series.to_string(), value);
    }
    samples
}

/// `docs/openapi.json` is what the server serves. After changing the API,
/// `INFERIX_WRITE_OPENAPI=1 cargo test -p inferix-http --test http_api`
/// rewrites it.
#[tokio::test]
async fn the_checked_in_openapi_document_is_the_served_one() {
    let checked_in = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let generated = inferix_http::openapi_json();
    if std::env::var_os("INFERIX_WRITE_OPENAPI").is_some() {
        std::fs::write(&checked_in, &generated).unwrap();
    }
    let transport: Arc<dyn inferix_transport::Transport> =
        Arc::new(inferix_transport::InProcNetwork::new().transport(inferix_core::ids::NodeId(9)));
    let api = HttpApi::new(transport, "nowhere");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/openapi.json", listener.local_addr().unwrap());
    let server = tokio::spawn(api.serve(listener, std::future::pending()));
    let served = reqwest::get(&url).await.unwrap().text().await.unwrap();
    server.abort();
    assert_eq!(served, generated);
    let on_disk = std::fs::read_to_string(&checked_in).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/openapi.json is out of date: INFERIX_WRITE_OPENAPI=1 cargo test -p inferix-http --test http_api"
    );
    // Every path the router serves is documented.
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    for path in [
        "/api/scenes",
        "/api/quote",
        "/api/jobs",
        "/api/jobs/{id}",
        "/api/jobs/{id}/events",
        "/api/jobs/{id}/frames/{frame}",
        "/api/jobs/{id}/frames.zip",
        "/api/jobs/{id}/cancel",
        "/api/jobs/{id}/pause",
        "/api/jobs/{id}/resume",
        "/api/jobs/{id}/claims",
        "/api/nodes",
        "/api/nodes/{node}/{action}",
        "/api/ledger",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} undocumented");
    }
}

/// A worker's or verifier's metrics server answers `/metrics` with what
/// its source gives.
#[tokio::test]
async fn a_nodes_metrics_are_served_at_slash_metrics() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let source: inferix_http::MetricsSource =
        Arc::new(|| "# TYPE x counter\nx_total 3\n# EOF\n".to_string());
    let server = tokio::spawn(inferix_http::serve_metrics(listener, source));
    let r = reqwest::get(&url).await.unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert_eq!(
        r.text().await.unwrap(),
        "# TYPE x counter\nx_total 3\n# EOF\n"
    );
    server.abort();
}
