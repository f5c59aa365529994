//! Manager, workers and verifiers as separate processes over QUIC on
//! loopback: a job submitted through the CLI completes with every frame even
//! when a worker is killed with SIGKILL, and nodes without the right token
//! get nothing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
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
    let job_args = [
        "--frames", "1-12", "--width", "48", "--height", "27", "--spp", "2", "--chunk", "2",
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
