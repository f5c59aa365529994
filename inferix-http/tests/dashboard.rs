//! The web dashboard driven in a real headless Chromium through
//! chromedriver (WebDriver), against a local network rendering real frames:
//! a customer logs in with an API key, watches a job submitted through the
//! API reach 100 % with thumbnails, opens a frame full size, and cancels a
//! second job from its page (the API then reports it cancelled); an
//! operator sees the nodes, drains one, and reads the ledger.
//!
//! Needs /usr/bin/chromium and /usr/bin/chromedriver: `bash
//! scripts/setup-browser.sh` installs them. Each page's screenshot is saved
//! under `target/dashboard-screenshots/`; with `INFERIX_WRITE_SCREENSHOTS=1`
//! the ones the documentation shows are copied to `docs/images/`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use inferix_core::store::accounts::Accounts;
use inferix_http::HttpApi;
use inferix_local::LocalNetwork;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The screenshots the documentation shows, as `docs/images/dashboard-*.png`.
const DOCUMENTED: &[&str] = &["jobs", "job", "nodes", "ledger"];

/// How long any one condition may take to hold; the rendering of the job
/// is the slowest (seconds on two cores).
const PATIENCE: Duration = Duration::from_secs(180);

/// chromedriver, stopped (with the browser it started) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver on a free port and waits until it answers.
async fn start_driver() -> Driver {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: the dashboard test needs Chromium and chromedriver; \
             run `bash scripts/setup-browser.sh` (as root) to install them"
        );
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let mut driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // chromedriver says on its standard output when it listens; the rest
    // of what it prints is drained so it never blocks on a full pipe.
    let out = driver.child.stdout.take().expect("piped");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(out));
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("started successfully"));
    assert!(started, "chromedriver exited before it listened");
    std::thread::spawn(move || lines.for_each(drop));
    driver
}

/// A browser session in a fresh profile. The flags keep Chromium from
/// reaching out to the network (which is closed in CI, where it would
/// hang on those connections) and from sandboxing as root.
async fn start_browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--window-size=1280,860",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session");
    // How long a page may take to show what a step waits for.
    let mut timeouts = client.get_timeouts().await.expect("timeouts");
    timeouts.set_script(Some(PATIENCE));
    client
        .update_timeouts(timeouts)
        .await
        .expect("timeouts set");
    client
}

/// Waits until the script (a function body) returns something truthy in
/// the page, and answers it.
async fn wait_js(c: &Client, what: &str, script: &str) -> Value {
    // The page itself waits: the check runs again on every change to the
    // document and every image or resource that finishes loading, and
    // answers the first truthy value (the session's script timeout is the
    // test's patience).
    let waiting = format!(
        "const done = arguments[arguments.length - 1];\n\
         const check = () => {{ {script} }};\n\
         const truthy = v => !(v == null || v === false || v === 0 || v === '' \
           || (Array.isArray(v) && v.length === 0));\n\
         let finished = false;\n\
         const again = () => {{ if (finished) return; const v = check(); \
           if (truthy(v)) {{ finished = true; observer.disconnect(); \
           document.removeEventListener('load', again, true); done(v); }} }};\n\
         const observer = new MutationObserver(again);\n\
         observer.observe(document, {{ subtree: true, childList: true, attributes: true, \
           characterData: true }});\n\
         document.addEventListener('load', again, true);\n\
         again();"
    );
    c.execute_async(&waiting, vec![])
        .await
        .unwrap_or_else(|e| panic!("timed out after {PATIENCE:?} waiting for {what}: {e}"))
}

async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
}

/// Clicks the element once a click lands: pages re-render as they
/// refresh, so an element found may be replaced (stale) before the click.
async fn click(c: &Client, css: &str) {
    for _ in 0..50 {
        if wait_for(c, css).await.click().await.is_ok() {
            return;
        }
    }
    panic!("no click landed on {css}");
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots")
}

/// Saves the whole page as `NAME.png` (the window grown to the page's
/// height, toasts hidden), and to `docs/images/dashboard-NAME.png` when
/// asked to (the documented ones).
async fn screenshot(c: &Client, name: &str) {
    c.execute(
        "document.getElementById('toast').hidden = true; window.scrollTo(0, 0);",
        vec![],
    )
    .await
    .unwrap();
    let size = c
        .execute(
            "return [document.documentElement.scrollHeight,
                     window.outerHeight - window.innerHeight];",
            vec![],
        )
        .await
        .unwrap();
    let number = |v: &Value| v.as_f64().unwrap_or(0.0).ceil() as u32;
    let page = number(&size[0]).clamp(600, 1800);
    let frame = number(&size[1]);
    c.set_window_size(1280, page + frame).await.unwrap();
    // The resize lands asynchronously: wait for the viewport to have it.
    wait_js(
        c,
        "the window resized",
        &format!("return window.innerHeight >= {page};"),
    )
    .await;
    let png = c.screenshot().await.unwrap();
    assert_eq!(&png[1..4], b"PNG", "a PNG screenshot");
    std::fs::create_dir_all(screenshot_dir()).unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), &png).unwrap();
    if DOCUMENTED.contains(&name) && std::env::var_os("INFERIX_WRITE_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/images");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(format!("dashboard-{name}.png")), &png).unwrap();
    }
    c.set_window_size(1280, 860).await.unwrap();
}

async fn log_in(c: &Client, base: &str, key: &str) {
    c.goto(&format!("{base}/#/jobs")).await.unwrap();
    let input = wait_for(c, "#api-key").await;
    input.send_keys(key).await.unwrap();
    click(c, "#login").await;
    wait_for(c, "#jobs-body").await;
}

async fn log_out(c: &Client) {
    click(c, "#logout").await;
    wait_for(c, "#api-key").await;
}

async fn api_get(http: &reqwest::Client, base: &str, key: &str, path: &str) -> Value {
    let r = http
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_in_a_headless_browser() {
    let driver = start_driver().await;
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
    let (_, ops) = accounts.create("ops", true, 1).await.unwrap();
    accounts.deposit("ana", 1 << 40, "funds", 1).await.unwrap();

    let api = HttpApi::new(net.client_transport().unwrap(), net.address());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(api.serve(listener, std::future::pending()));
    let http = reqwest::Client::new();

    // The page and its files are served with the policy that keeps them
    // to their own scripts.
    let index = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
    assert!(index.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert!(index.text().await.unwrap().contains("/ui/app.js"));
    let missing = http.get(format!("{base}/ui/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);

    let profile = tempfile::tempdir().unwrap();
    let c = start_browser(&driver, profile.path()).await;

    // A wrong key is refused on the login form.
    c.goto(&format!("{base}/")).await.unwrap();
    wait_for(&c, "#api-key")
        .await
        .send_keys("ifx_0123456789abcdef_0123456789abcdef0123456789abcdef")
        .await
        .unwrap();
    click(&c, "#login").await;
    let refused = wait_for(&c, "#login-error:not([hidden])").await;
    assert!(refused.text().await.unwrap().contains("not accepted"));
    screenshot(&c, "login").await;
    wait_for(&c, "#api-key").await.clear().await.unwrap();
    wait_for(&c, "#api-key")
        .await
        .send_keys(&ana)
        .await
        .unwrap();
    click(&c, "#login").await;
    wait_for(&c, "#jobs-body").await;
    // A customer's key shows no operator pages.
    assert!(!c
        .find(Locator::Css("a[data-page=nodes]"))
        .await
        .unwrap()
        .is_displayed()
        .await
        .unwrap());

    // Two jobs through the API: a small one that renders, and one asking
    // for a tag no worker has, which waits until it is cancelled.
    let upload: Value = http
        .post(format!("{base}/api/scenes?name=demo.glb"))
        .bearer_auth(&ana)
        .body(inferix_gpu::demo_scene_glb())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let submit = |frames: &str, tags: Value| {
        let request = json!({
            "scene": upload["hash"], "scene_name": "demo.glb", "frames": frames,
            "width": 64, "height": 48, "samples": 16, "chunk": 1, "tags": tags,
        });
        let r = http
            .post(format!("{base}/api/jobs"))
            .bearer_auth(&ana)
            .json(&request)
            .send();
        async move {
            let r = r.await.unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::CREATED);
            let v: Value = r.json().await.unwrap();
            v["job"].as_str().unwrap().to_string()
        }
    };
    let rendered = submit("1-6", json!([])).await;
    let waiting = submit("1-4", json!(["no-such-gpu"])).await;

    // The listing shows both, the rendered one reaching its six frames.
    c.goto(&format!("{base}/#/jobs")).await.unwrap();
    wait_for(&c, &format!("tr[data-job='{waiting}']")).await;
    let done_row = format!("tr[data-job='{rendered}'][data-state=completed] td.frames");
    let frames = wait_for(&c, &done_row).await.text().await.unwrap();
    assert_eq!(frames, "6 / 6");
    screenshot(&c, "jobs").await;

    // Its page: 100 %, six thumbnails loaded, each task with its worker
    // and the verifiers' verdict, and what was paid.
    c.goto(&format!("{base}/#/jobs/{rendered}")).await.unwrap();
    wait_js(
        &c,
        "the job page at 100 % with six thumbnails",
        "const l = document.querySelector('#job-progress .progress-label');
         const imgs = [...document.querySelectorAll('.frame-cell[data-state=accepted] img')];
         return l && l.textContent === '100 %' && imgs.length === 6
             && imgs.every(i => i.complete && i.naturalWidth === 64);",
    )
    .await;
    // Shown capitalised; the text itself is the API's state.
    let state = wait_for(&c, "#job-state").await.text().await.unwrap();
    assert_eq!(state.to_lowercase(), "completed");
    let tasks = c
        .execute(
            "return [...document.querySelectorAll('#tasks tbody tr')]
                .map(r => [...r.cells].map(c => c.textContent).join('|'))",
            vec![],
        )
        .await
        .unwrap();
    let tasks = tasks.as_array().unwrap();
    assert_eq!(tasks.len(), 6, "{tasks:?}");
    for t in tasks {
        let t = t.as_str().unwrap();
        assert!(t.contains("accepted") && t.contains("verified"), "{t}");
    }
    let status = api_get(&http, &base, &ana, &format!("/api/jobs/{rendered}")).await;
    let paid = status["paid"].as_u64().unwrap();
    assert!(paid > 0 && paid <= status["quoted_price"].as_u64().unwrap());
    assert!(status["task_details"][0]["worker"].is_string(), "{status}");
    screenshot(&c, "job").await;

    // A thumbnail opens the frame full size.
    click(&c, ".frame-cell[data-frame='3']").await;
    wait_js(
        &c,
        "the full-size frame",
        "const i = document.querySelector('#lightbox:not([hidden]) #full-frame');
         return i && i.complete && i.naturalWidth === 64 && i.naturalHeight === 48;",
    )
    .await;
    screenshot(&c, "frame").await;
    click(&c, "#lightbox-close").await;

    // The waiting job is cancelled from its page.
    c.goto(&format!("{base}/#/jobs/{waiting}")).await.unwrap();
    wait_for(&c, ".frame-cell[data-state=queued]").await;
    click(&c, "#btn-cancel").await;
    click(&c, "#confirm-cancel").await;
    wait_js(
        &c,
        "the job shown cancelled",
        "const s = document.querySelector('#job-state');
         return s && s.textContent === 'cancelled';",
    )
    .await;
    let status = api_get(&http, &base, &ana, &format!("/api/jobs/{waiting}")).await;
    assert_eq!(status["state"], "cancelled");
    log_out(&c).await;

    // The operator: the nodes, one drained from the page, and the ledger.
    log_in(&c, &base, &ops).await;
    click(&c, "a[data-page=nodes]").await;
    let counts = wait_js(
        &c,
        "two workers and a verifier listed",
        "const w = document.querySelectorAll('#workers-body tr[data-role=worker]').length;
         const v = document.querySelectorAll('#verifiers-body tr[data-role=verifier]').length;
         return w === 2 && v === 1 && [w, v];",
    )
    .await;
    assert_eq!(counts, json!([2, 1]));
    let nodes = api_get(&http, &base, &ops, "/api/nodes").await;
    for n in nodes.as_array().unwrap() {
        let node = n["node"].as_str().unwrap();
        wait_for(&c, &format!("tr[data-node='{node}']")).await;
    }
    screenshot(&c, "nodes").await;
    let worker = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "worker")
        .unwrap()["node"]
        .as_str()
        .unwrap()
        .to_string();
    click(
        &c,
        &format!("tr[data-node='{worker}'] button[data-action=drain]"),
    )
    .await;
    wait_for(
        &c,
        &format!("tr[data-node='{worker}'] button[data-action=undrain]"),
    )
    .await;
    let nodes = api_get(&http, &base, &ops, "/api/nodes").await;
    let state = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == worker.as_str())
        .unwrap()["state"]
        .clone();
    assert_eq!(state, "drained");

    click(&c, "a[data-page=ledger]").await;
    let ledger = wait_js(
        &c,
        "the ledger with ana's balance and the task payments",
        "const b = [...document.querySelectorAll('#balances-body tr')].map(r => r.innerText);
         const t = [...document.querySelectorAll('#transactions-body tr')].map(r => r.innerText);
         return b.some(r => r.startsWith('ana')) && t.some(r => r.includes('pay:')) && [b, t];",
    )
    .await;
    assert!(ledger[1].as_array().unwrap().len() >= 6, "{ledger}");
    screenshot(&c, "ledger").await;

    c.close().await.unwrap();
    drop(driver);
    server.abort();
    net.shutdown().await;
}
