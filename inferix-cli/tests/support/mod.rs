//! What the process tests share: starting `inferix` commands, waiting on
//! their output and status with deadlines, and the test servers.
// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_inferix");

pub(crate) struct Node(pub(crate) Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The IB managers started by tests give their quote probe, instead of
/// each running the bench at its first start.
pub(crate) const PROBE_IB: &str = "1";

pub(crate) fn spawn(args: &[&str]) -> Node {
    Node(
        Command::new(BIN)
            .args(args)
            .env("INFERIX_LOG", "warn")
            .env("INFERIX_PROBE_IB", PROBE_IB)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start inferix"),
    )
}

pub(crate) fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run inferix")
}

/// Waits for a child with an upper bound, so a hang fails instead of
/// blocking CI forever.
pub(crate) fn wait_for(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < limit,
            "process did not finish within {limit:?}"
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

pub(crate) fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Environment variables the binary reads; cleared for children so that the
/// caller's environment cannot leak into the precedence checks.
pub(crate) const INFERIX_VARS: &[&str] = &[
    "INFERIX_CONFIG",
    "INFERIX_DATA_DIR",
    "INFERIX_LISTEN",
    "INFERIX_NODE_TOKEN",
    "INFERIX_GUEST_ACCOUNT",
    "INFERIX_HTTP",
    "INFERIX_LOG_FORMAT",
    "INFERIX_QUORUM",
    "INFERIX_LEASE_SECONDS",
    "INFERIX_MANAGER",
    "INFERIX_TOKEN",
    "INFERIX_IB",
    "INFERIX_METRICS",
    "INFERIX_PROBE_IB",
    "INFERIX_STORE",
    "INFERIX_STORE_SCHEMA",
    "INFERIX_BLOBS",
    "INFERIX_S3_ENDPOINT",
    "INFERIX_VERIFICATION_SECONDS",
    "INFERIX_POR_SECRET",
    "INFERIX_BLOB_SWEEP_SECONDS",
    "INFERIX_BLOB_RETENTION_SECONDS",
    "INFERIX_BLENDER_SANDBOX",
    "INFERIX_MAX_TASKS_PER_JOB",
];

pub(crate) fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env("INFERIX_LOG", "warn");
    for v in INFERIX_VARS {
        c.env_remove(v);
    }
    c.env("INFERIX_PROBE_IB", PROBE_IB);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Reads a child's output lines on a thread, so that a test can wait for a
/// line with a deadline instead of blocking on the pipe.
pub(crate) fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line that satisfies `want`, failing after `limit`; the lines
/// seen are kept in `seen` for the failure message.
pub(crate) fn wait_line(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    limit: Duration,
    want: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if want(&line) {
                    return line;
                }
            }
            Err(e) => panic!("no matching line within {limit:?} ({e}); seen: {seen:#?}"),
        }
    }
}

/// Sends SIGTERM through the shell's `kill` builtin (no extra package, no
/// unsafe code).
pub(crate) fn sigterm(child: &Child) {
    let ok = Command::new("sh")
        .args(["-c", "kill -TERM \"$0\"", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {}", child.id());
}

/// Starts a manager and returns it with its address.
pub(crate) fn start_manager(args: &[&str], env: &[(&str, &str)]) -> (Node, String) {
    let mut manager = Node(
        command(args, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start inferix"),
    );
    let mut line = String::new();
    BufReader::new(manager.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("manager listening on ")
        .unwrap_or_else(|| panic!("address line, got {line:?}"))
        .to_string();
    (manager, addr)
}

/// Submits the demo scene (written into `dir`) to `addr` at 64x36, 8
/// samples, `frames` in chunks of `chunk`, and returns the job's id.
pub(crate) fn submit_demo_job(
    dir: &Path,
    addr: &str,
    frames: &str,
    chunk: &str,
    env: &[(&str, &str)],
) -> String {
    let scene = dir.join("scene.glb");
    assert!(run(&["demo-scene", path(&scene)]).status.success());
    let submitted = command(
        &[
            "submit",
            path(&scene),
            "--manager",
            addr,
            "--frames",
            frames,
            "--width",
            "64",
            "--height",
            "36",
            "--spp",
            "8",
            "--chunk",
            chunk,
        ],
        env,
    )
    .output()
    .unwrap();
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    String::from_utf8_lossy(&submitted.stdout)
        .trim()
        .to_string()
}

/// Polls `inferix status` until `want` holds for its output.
pub(crate) fn wait_status(
    addr: &str,
    job: &str,
    limit: Duration,
    want: impl Fn(&str) -> bool,
) -> String {
    let start = Instant::now();
    loop {
        let out = command(&["status", job, "--manager", addr], &[])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if want(&text) {
            return text;
        }
        assert!(
            start.elapsed() < limit,
            "status never matched within {limit:?}; last: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

/// Where the test servers are: PostgreSQL URL, S3 bucket, and the
/// environment nodes need for S3.
pub(crate) struct TestServices {
    pub(crate) pg: String,
    pub(crate) bucket: String,
    pub(crate) env: Vec<(&'static str, String)>,
}

/// The test servers `scripts/services.sh` starts, or `None` (with the
/// reason printed) outside CI when they are not configured.
pub(crate) fn test_services() -> Option<TestServices> {
    let var = |k: &str| std::env::var(k).ok();
    match (
        var("INFERIX_TEST_PG_URL"),
        var("INFERIX_TEST_S3_ENDPOINT"),
        var("INFERIX_TEST_S3_BUCKET"),
    ) {
        (Some(pg), Some(endpoint), Some(bucket)) => {
            let env = vec![
                ("INFERIX_S3_ENDPOINT", endpoint),
                (
                    "AWS_ACCESS_KEY_ID",
                    var("INFERIX_TEST_S3_ACCESS_KEY_ID").unwrap_or_default(),
                ),
                (
                    "AWS_SECRET_ACCESS_KEY",
                    var("INFERIX_TEST_S3_SECRET_ACCESS_KEY").unwrap_or_default(),
                ),
                (
                    "AWS_REGION",
                    var("INFERIX_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
                ),
            ];
            Some(TestServices { pg, bucket, env })
        }
        _ if std::env::var_os("CI").is_some() => {
            panic!("INFERIX_TEST_PG_URL / INFERIX_TEST_S3_*: run `bash scripts/services.sh && source target/services/env`")
        }
        _ => {
            eprintln!(
                "skipped: PostgreSQL/S3 test servers not configured (bash scripts/services.sh)"
            );
            None
        }
    }
}
