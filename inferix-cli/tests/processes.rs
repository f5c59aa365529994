//! Manager, workers and verifiers as separate processes over QUIC on
//! loopback: a job submitted through the CLI completes with every frame even
//! when a worker is killed with SIGKILL, nodes without the right token get
//! nothing, a worker stopped with SIGTERM hands its task back and exits 0,
//! and settings come from flags over environment over a config file.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_inferix");

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> Node {
    Node(
        Command::new(BIN)
            .args(args)
            .env("INFERIX_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start inferix"),
    )
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run inferix")
}

/// Waits for a child with an upper bound, so a hang fails instead of
/// blocking CI forever.
fn wait_for(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
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

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn separate_processes_render_a_job_over_quic_despite_a_killed_worker() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut manager = spawn(&[
        "manager",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        path(&d.join("m")),
        "--node-token",
        "node-secret",
        "--client-token",
        "client-secret",
    ]);
    let mut line = String::new();
    BufReader::new(manager.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("manager listening on ")
        .expect("address line")
        .to_string();

    // A node without the operator's token is refused and exits.
    let intruder = run(&[
        "worker",
        "--manager",
        &addr,
        "--data-dir",
        path(&d.join("bad")),
        "--ib",
        "1",
    ]);
    assert!(
        !intruder.status.success(),
        "a worker without a token must not join"
    );
    assert!(String::from_utf8_lossy(&intruder.stderr).contains("not admitted"));

    let mut workers: Vec<Node> = (0..3)
        .map(|i| {
            let dd = d.join(format!("w{i}"));
            spawn(&[
                "worker",
                "--manager",
                &addr,
                "--data-dir",
                path(&dd),
                "--token",
                "node-secret",
                "--ib",
                "1",
            ])
        })
        .collect();
    let _verifiers: Vec<Node> = (0..2)
        .map(|i| {
            let dd = d.join(format!("v{i}"));
            spawn(&[
                "verifier",
                "--manager",
                &addr,
                "--data-dir",
                path(&dd),
                "--token",
                "node-secret",
            ])
        })
        .collect();

    let scene = d.join("scene.glb");
    assert!(run(&["demo-scene", path(&scene)]).status.success());
    // The job is lit by the client's own environment map, uploaded with it.
    let sky = d.join("sky.exr");
    let mut map = inferix_core::image::Image::new(16, 8);
    map.pixels.iter_mut().for_each(|v| *v = 0.7);
    std::fs::write(&sky, inferix_gpu::codec::encode_exr(&map).unwrap()).unwrap();
    let job_args = [
        "--frames",
        "1-12",
        "--width",
        "48",
        "--height",
        "27",
        "--spp",
        "2",
        "--chunk",
        "2",
        "--environment",
        path(&sky),
        "--background",
        "transparent",
    ];

    // A client without the token cannot submit.
    let mut anon = vec!["submit", path(&scene), "--manager", &addr];
    anon.extend_from_slice(&job_args);
    let refused = run(&anon);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("not admitted"), "{why}");

    let out = d.join("out");
    let mut args = vec![
        "submit",
        path(&scene),
        "--manager",
        &addr,
        "--token",
        "client-secret",
        "--out",
        path(&out),
    ];
    args.extend_from_slice(&job_args);
    let mut submit = spawn(&args);
    let mut job = String::new();
    BufReader::new(submit.0.stdout.take().unwrap())
        .read_line(&mut job)
        .unwrap();
    // SIGKILL one worker while the job runs.
    workers[0].0.kill().unwrap();
    workers[0].0.wait().unwrap();
    let status = wait_for(&mut submit.0, Duration::from_secs(300));
    assert!(status.success(), "submit --out must succeed");

    for f in 1..=12 {
        let file = out.join(format!("frame_{f:04}.png"));
        let img = inferix_gpu::codec::decode_png(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!((img.width, img.height), (48, 27), "{}", file.display());
    }
    let st = run(&[
        "status",
        job.trim(),
        "--manager",
        &addr,
        "--token",
        "client-secret",
    ]);
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(
        text.contains("completed") && text.contains("frames accepted: 12/12"),
        "{text}"
    );
    drop(workers);
}

/// Environment variables the binary reads; cleared for children so that the
/// caller's environment cannot leak into the precedence checks.
const INFERIX_VARS: &[&str] = &[
    "INFERIX_CONFIG",
    "INFERIX_DATA_DIR",
    "INFERIX_LISTEN",
    "INFERIX_NODE_TOKEN",
    "INFERIX_CLIENT_TOKEN",
    "INFERIX_QUORUM",
    "INFERIX_LEASE_SECONDS",
    "INFERIX_MANAGER",
    "INFERIX_TOKEN",
    "INFERIX_IB",
    "INFERIX_STORE",
    "INFERIX_STORE_SCHEMA",
    "INFERIX_BLOBS",
    "INFERIX_S3_ENDPOINT",
    "INFERIX_VERIFICATION_SECONDS",
    "INFERIX_POR_SECRET",
];

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env("INFERIX_LOG", "warn");
    for v in INFERIX_VARS {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Reads a child's output lines on a thread, so that a test can wait for a
/// line with a deadline instead of blocking on the pipe.
fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
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
fn wait_line(
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
fn sigterm(child: &Child) {
    let ok = Command::new("sh")
        .args(["-c", "kill -TERM \"$0\"", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {}", child.id());
}

/// Starts a manager and returns it with its address.
fn start_manager(args: &[&str], env: &[(&str, &str)]) -> (Node, String) {
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

/// Polls `inferix status` until `want` holds for its output.
fn wait_status(addr: &str, job: &str, limit: Duration, want: impl Fn(&str) -> bool) -> String {
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

#[test]
fn a_worker_stopped_with_sigterm_hands_its_task_back_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_manager, addr) = start_manager(
        &[
            "manager",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            path(&d.join("m")),
            "--quorum",
            "1",
        ],
        &[],
    );
    // Workers log at info level, so that the test sees the moment a render
    // starts ("rendering").
    let node = |role: &str, name: &str| {
        let dd = d.join(name);
        let mut args = vec![role, "--manager", &addr, "--data-dir", path(&dd)];
        if role == "worker" {
            args.extend_from_slice(&["--ib", "1"]);
        }
        Node(
            command(&args, &[("INFERIX_LOG", "inferix_node=info")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start inferix"),
        )
    };
    let _verifier = node("verifier", "v");
    let mut first = node("worker", "w1");
    let first_log = lines(first.0.stderr.take().unwrap());

    let scene = d.join("scene.glb");
    assert!(run(&["demo-scene", path(&scene)]).status.success());
    // One task for the only worker.
    let mut submit = Node(
        command(
            &[
                "submit",
                path(&scene),
                "--manager",
                &addr,
                "--frames",
                "1-4",
                "--chunk",
                "4",
                "--width",
                "160",
                "--height",
                "90",
                "--spp",
                "16",
                "--wait",
            ],
            &[],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let mut job = String::new();
    BufReader::new(submit.0.stdout.take().unwrap())
        .read_line(&mut job)
        .unwrap();
    let job = job.trim().to_string();
    let events = lines(submit.0.stderr.take().unwrap());

    // The signal lands as the render starts: the scene still has to be
    // fetched and the kernels compiled, so it cannot be finished yet.
    let mut seen = Vec::new();
    wait_line(&first_log, &mut seen, Duration::from_secs(120), |l| {
        l.contains("rendering")
    });
    let signalled = Instant::now();
    sigterm(&first.0);
    let status = wait_for(&mut first.0, Duration::from_secs(15));
    assert!(
        status.success(),
        "a worker stopped by SIGTERM exits 0, got {status}"
    );
    wait_line(&first_log, &mut seen, Duration::from_secs(5), |l| {
        l.contains("stopping")
    });
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "the worker took {:?} to stop",
        signalled.elapsed()
    );

    // The manager re-queues it at once, telling the client why.
    let mut seen = Vec::new();
    wait_line(&events, &mut seen, Duration::from_secs(30), |l| {
        l.contains("TaskRequeued") && l.contains("handed back by worker")
    });
    wait_status(&addr, &job, Duration::from_secs(30), |s| {
        s.contains("queued     1")
    });

    // Another worker finishes the job.
    let _second = node("worker", "w2");
    let status = wait_for(&mut submit.0, Duration::from_secs(300));
    assert!(status.success(), "the job completes on the second worker");
    let text = wait_status(&addr, &job, Duration::from_secs(10), |s| {
        s.contains("completed")
    });
    assert!(text.contains("frames accepted: 4/4"), "{text}");
}

#[test]
fn settings_come_from_flags_then_environment_then_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("manager.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:1\"\ndata_dir = {:?}\nclient_token = \"from-file\"\n",
            path(&d.join("from-file"))
        ),
    )
    .unwrap();
    let (mut manager, addr) = start_manager(
        &[
            "manager",
            "--config",
            path(&config),
            "--data-dir",
            path(&d.join("from-flag")),
        ],
        &[
            ("INFERIX_LISTEN", "127.0.0.1:0"),
            ("INFERIX_DATA_DIR", path(&d.join("from-env"))),
        ],
    );
    // The variable beat the file's port; the flag beat both folders.
    let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    assert_ne!(port, 1, "{addr}");
    assert!(d.join("from-flag").join("manager.addr").exists());
    assert!(!d.join("from-env").exists() && !d.join("from-file").exists());

    // The file's client token applies, as nothing overrides it.
    let job = "00000000000000000000000000000000";
    let anon = command(&["status", job, "--manager", &addr], &[])
        .output()
        .unwrap();
    let why = String::from_utf8_lossy(&anon.stderr);
    assert!(
        !anon.status.success() && why.contains("not admitted"),
        "{why}"
    );
    let known = command(
        &["status", job, "--manager", &addr, "--token", "from-file"],
        &[],
    )
    .output()
    .unwrap();
    let why = String::from_utf8_lossy(&known.stderr);
    assert!(!why.contains("not admitted"), "{why}");

    // SIGTERM: the manager stops and exits 0; its database reopens.
    sigterm(&manager.0);
    let status = wait_for(&mut manager.0, Duration::from_secs(15));
    assert!(status.success(), "manager exit: {status}");
    // The database was closed, which folds its journal back into the file.
    let db = d.join("from-flag").join("tasks.sqlite");
    assert!(db.exists());
    assert!(
        !d.join("from-flag").join("tasks.sqlite-wal").exists(),
        "the task database was not closed"
    );
    let (_again, addr2) = start_manager(
        &[
            "manager",
            "--config",
            path(&config),
            "--listen",
            "127.0.0.1:0",
        ],
        &[("INFERIX_DATA_DIR", path(&d.join("from-flag")))],
    );
    assert_eq!(
        addr.split_once('@').unwrap().0,
        addr2.split_once('@').unwrap().0,
        "the same data folder keeps the node key"
    );
}

#[test]
fn unknown_keys_and_bad_values_in_a_config_file_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "manager",
            "listen = \"127.0.0.1:0\"\nlisen = \"x\"\n",
            &["`lisen`"],
        ),
        ("manager", "quorum = \"three\"\n", &["`quorum`", "three"]),
        ("manager", "lease_seconds = 0\n", &["`lease_seconds`"]),
        (
            "worker",
            "manager = \"x@127.0.0.1:1\"\ndata-dir = \"w\"\n",
            &["`data-dir`"],
        ),
        ("verifier", "ib = \"fast\"\n", &["`ib`"]),
        ("worker", "manager = [\n", &["not valid TOML"]),
    ];
    for (i, (role, text, needles)) in cases.iter().enumerate() {
        let file = d.join(format!("c{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = command(&[role, "--config", path(&file)], &[])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{role} with {text:?} must not start");
        assert!(err.contains(path(&file)), "{err}");
        for n in *needles {
            assert!(err.contains(n), "{n} in {err}");
        }
    }
    // A bad environment value is refused by name too.
    let out = command(&["manager"], &[("INFERIX_QUORUM", "0")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--quorum"));
    // Required settings say where they may come from.
    let out = command(&["worker", "--data-dir", path(&d.join("w"))], &[])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("INFERIX_MANAGER"),
        "{err}"
    );
}

/// Where the test servers are: PostgreSQL URL, S3 bucket, and the
/// environment nodes need for S3.
struct TestServices {
    pg: String,
    bucket: String,
    env: Vec<(&'static str, String)>,
}

/// The test servers `scripts/services.sh` starts, or `None` (with the
/// reason printed) outside CI when they are not configured.
fn test_services() -> Option<TestServices> {
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

/// Two managers on one PostgreSQL database and one S3 bucket serve one
/// network: a job submitted to A is rendered by workers of both; A is
/// killed with SIGKILL mid-job and B finishes it, leases of A's workers
/// expiring and A's verification rounds taken over; every frame is
/// accepted exactly once and downloads from B.
#[test]
fn two_managers_on_one_database_survive_one_being_killed() {
    let Some(TestServices { pg, bucket, env }) = test_services() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let unique = format!(
        "mm_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let blobs = format!("s3://{bucket}/{unique}");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let manager_args = |name: &str| -> Vec<String> {
        [
            "manager",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            path(&d.join(name)),
            "--store",
            &pg,
            "--store-schema",
            &unique,
            "--blobs",
            &blobs,
            // Long enough for a render on a loaded machine, short enough
            // for A's workers' leases to expire soon after A dies.
            "--lease-seconds",
            "20",
            "--verification-seconds",
            "4",
            "--por-secret",
            "one network",
            "--quorum",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let start = |name: &str| {
        let args = manager_args(name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        start_manager(&args, &env)
    };
    let (mut a, addr_a) = start("ma");
    let (_b, addr_b) = start("mb");
    let node = |role: &str, addr: &str, name: &str| {
        let data = d.join(name);
        let mut args = vec![role, "--manager", addr, "--data-dir", path(&data)];
        if role == "worker" {
            args.extend_from_slice(&["--ib", "1"]);
        }
        Node(
            command(&args, &env)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start inferix"),
        )
    };
    let _nodes = [
        node("worker", &addr_a, "wa0"),
        node("worker", &addr_a, "wa1"),
        node("verifier", &addr_a, "va"),
        node("worker", &addr_b, "wb0"),
        node("worker", &addr_b, "wb1"),
        node("verifier", &addr_b, "vb"),
    ];
    let scene = d.join("scene.glb");
    assert!(run(&["demo-scene", path(&scene)]).status.success());
    let submitted = command(
        &[
            "submit",
            path(&scene),
            "--manager",
            &addr_a,
            "--frames",
            "1-24",
            "--width",
            "64",
            "--height",
            "36",
            "--spp",
            "8",
            "--chunk",
            "2",
        ],
        &env,
    )
    .output()
    .unwrap();
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let job = String::from_utf8_lossy(&submitted.stdout)
        .trim()
        .to_string();

    // B sees A's job at once (one database) and its progress.
    let before = wait_status(&addr_b, &job, Duration::from_secs(120), |t| {
        t.contains("frames accepted:") && !t.contains("frames accepted: 0/")
    });
    a.0.kill().unwrap();
    assert!(
        !before.contains("completed"),
        "A must die mid-job: {before}"
    );
    a.0.wait().unwrap();

    let done = wait_status(&addr_b, &job, Duration::from_secs(300), |t| {
        t.contains("completed") || t.contains("failed")
    });
    assert!(done.contains("completed"), "{done}");
    assert!(done.contains("frames accepted: 24/24"), "{done}");
    assert!(
        done.contains("accepted   12"),
        "twelve tasks accepted once each: {done}"
    );
    let out = d.join("out");
    let dl = command(
        &["download", &job, "--manager", &addr_b, "--out", path(&out)],
        &env,
    )
    .output()
    .unwrap();
    assert!(
        dl.status.success(),
        "{}",
        String::from_utf8_lossy(&dl.stderr)
    );
    for f in 1..=24 {
        let file = out.join(format!("frame_{f:04}.png"));
        let img = inferix_gpu::codec::decode_png(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!((img.width, img.height), (64, 36), "{}", file.display());
    }
}

/// One manager on its SQLite store, killed with SIGKILL mid-job and
/// started again on the same address and data folder: its workers notice
/// within seconds, rejoin, and the leases the store still shows for them
/// are released as they return, so the job's tail resumes at once instead
/// of at lease expiry (600 s by default). Prints the time from the
/// restart to the job's last frame.
#[test]
fn a_manager_killed_and_restarted_on_sqlite_finishes_the_job_soon_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manager_args = |listen: &str| -> Vec<String> {
        [
            "manager",
            "--listen",
            listen,
            "--data-dir",
            path(&d.join("m")),
            "--quorum",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let start = |listen: &str| {
        let args = manager_args(listen);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        start_manager(&args, &[])
    };
    let (mut first, addr) = start("127.0.0.1:0");
    let node = |role: &str, name: &str| {
        let data = d.join(name);
        let mut args = vec![role, "--manager", &addr, "--data-dir", path(&data)];
        if role == "worker" {
            args.extend_from_slice(&["--ib", "1"]);
        }
        Node(
            command(&args, &[])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start inferix"),
        )
    };
    let _nodes = [
        node("worker", "w0"),
        node("worker", "w1"),
        node("verifier", "v"),
    ];
    let scene = d.join("scene.glb");
    assert!(run(&["demo-scene", path(&scene)]).status.success());
    let submitted = command(
        &[
            "submit",
            path(&scene),
            "--manager",
            &addr,
            "--frames",
            "1-12",
            "--width",
            "64",
            "--height",
            "36",
            "--spp",
            "8",
            "--chunk",
            "1",
        ],
        &[],
    )
    .output()
    .unwrap();
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let job = String::from_utf8_lossy(&submitted.stdout)
        .trim()
        .to_string();
    let before = wait_status(&addr, &job, Duration::from_secs(300), |t| {
        t.contains("frames accepted:") && !t.contains("frames accepted: 0/")
    });
    assert!(!before.contains("completed"), "killed mid-job: {before}");
    first.0.kill().unwrap();
    first.0.wait().unwrap();

    let restarted = Instant::now();
    let (_second, again) = start(&addr);
    assert_eq!(again, addr, "the manager comes back on its address");
    let done = wait_status(&addr, &job, Duration::from_secs(300), |t| {
        t.contains("completed") || t.contains("failed")
    });
    let took = restarted.elapsed();
    assert!(done.contains("completed"), "{done}");
    assert!(done.contains("frames accepted: 12/12"), "{done}");
    assert!(
        done.contains("accepted   12"),
        "twelve tasks accepted once each: {done}"
    );
    println!("restart to the job's last frame: {took:.1?} (lease 600 s)");
    assert!(
        took < Duration::from_secs(200),
        "the tail resumed as the workers returned, not at lease expiry: {took:?}"
    );
}
