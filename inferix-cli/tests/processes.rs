//! Manager, workers and verifiers as separate processes over QUIC on
//! loopback: a job submitted through the CLI completes with every frame even
//! when a worker is killed with SIGKILL, nodes without the right token get
//! nothing, a worker stopped with SIGTERM hands its task back and exits 0,
//! and settings come from flags over environment over a config file.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

#[test]
fn separate_processes_render_a_job_over_quic_despite_a_killed_worker() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Secrets from files, as the README teaches: they stay out of `ps`.
    let node_token = d.join("node-token");
    std::fs::write(&node_token, "node-secret\n").unwrap();
    // Verifiers hold a token of their own: the workers' does not admit
    // them, so running workers is not enough to judge their work.
    let verifier_token = d.join("verifier-token");
    std::fs::write(&verifier_token, "judge-secret\n").unwrap();
    // An account with funds, made in the manager's store before it starts.
    let m = d.join("m");
    let created = run(&["account", "--data-dir", path(&m), "create", "studio"]);
    assert!(created.status.success(), "{created:?}");
    let key = String::from_utf8(created.stdout).unwrap();
    assert!(key.starts_with("ifx_"), "{key}");
    let client_token = d.join("api-key");
    std::fs::write(&client_token, &key).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(&client_token, private).unwrap();
    }
    let deposit = run(&[
        "account",
        "--data-dir",
        path(&m),
        "deposit",
        "studio",
        "1000",
    ]);
    assert!(deposit.status.success(), "{deposit:?}");
    let mut manager = spawn(&[
        "manager",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        path(&d.join("m")),
        "--node-token-file",
        path(&node_token),
        "--verifier-token-file",
        path(&verifier_token),
    ]);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", manager.0.id())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains("secret"));
    let mut line = String::new();
    BufReader::new(manager.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("manager listening on ")
        .expect("address line")
        .to_string();
    // The data folder holds the node key, the database and the blobs.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("m")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

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
    // Nor is a verifier holding only the workers' token.
    let judge = run(&[
        "verifier",
        "--manager",
        &addr,
        "--data-dir",
        path(&d.join("bad-verifier")),
        "--token-file",
        path(&node_token),
    ]);
    assert!(!judge.status.success(), "the node token admits no verifier");
    assert!(String::from_utf8_lossy(&judge.stderr).contains("not admitted"));

    let mut workers: Vec<Node> = (0..3)
        .map(|i| {
            let dd = d.join(format!("w{i}"));
            spawn(&[
                "worker",
                "--manager",
                &addr,
                "--data-dir",
                path(&dd),
                "--token-file",
                path(&node_token),
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
                "--token-file",
                path(&verifier_token),
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
        "--token-file",
        path(&client_token),
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
        "--token-file",
        path(&client_token),
    ]);
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(
        text.contains("completed") && text.contains("frames accepted: 12/12"),
        "{text}"
    );
    drop(workers);
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
            "--guest-account",
            "guest",
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
        l.contains("re-queued") && l.contains("handed back by worker")
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
            "listen = \"127.0.0.1:1\"\ndata_dir = {:?}\nguest_account = \"from-file\"\n",
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

    // The file's guest account applies, as nothing overrides it: a client
    // without a key is admitted (and told the job does not exist), where
    // the default would refuse it.
    let job = "00000000000000000000000000000000";
    let anon = command(&["status", job, "--manager", &addr], &[])
        .output()
        .unwrap();
    let why = String::from_utf8_lossy(&anon.stderr);
    assert!(!anon.status.success() && why.contains("not found"), "{why}");
    let wrong = command(
        &["status", job, "--manager", &addr, "--token", "from-file"],
        &[],
    )
    .output()
    .unwrap();
    let why = String::from_utf8_lossy(&wrong.stderr);
    assert!(why.contains("not admitted"), "a key that is not one: {why}");

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

/// A client never sends its token to an address that does not name the
/// manager's id.
#[test]
fn a_client_refuses_a_manager_address_without_an_id() {
    let out = run(&[
        "status",
        "00000000000000000000000000000001",
        "--manager",
        "127.0.0.1:9",
        "--token",
        "t",
    ]);
    assert!(!out.status.success());
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(why.contains("names no node id"), "{why}");
}
