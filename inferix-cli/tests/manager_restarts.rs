//! Managers killed with SIGKILL mid-job, as separate processes over QUIC:
//! two managers sharing one PostgreSQL database and S3 bucket, where the
//! survivor finishes the job, and one manager restarted on its SQLite
//! store, whose job resumes as soon as its workers return.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

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
            // Clients without a key (the status polls) act as this account.
            "--guest-account",
            "guest",
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
    let job = submit_demo_job(d, &addr_a, "1-24", "2", &env);

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
            // Clients without a key (the status polls) act as this account.
            "--guest-account",
            "guest",
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
    let job = submit_demo_job(d, &addr, "1-12", "1", &[]);
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
