//! `inferix submit JOB.toml` against a manager process over QUIC: the job
//! file's values become the job, flags override them, its scene path is
//! taken from its own folder, and a file with an unknown field is refused
//! by the field's path with nothing submitted.

mod support;

use std::path::Path;

use serde_json::Value;
use support::*;

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn a_job_file_is_submitted_with_flags_over_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Clients without a key act as the guest account, which may spend.
    let (_manager, addr) = start_manager(
        &[
            "manager",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            path(&d.join("m")),
            "--guest-account",
            "guest",
        ],
        &[],
    );
    // The example job file, with the demo scene beside it as its comment
    // says, run from another folder.
    let jobs = d.join("jobs");
    std::fs::create_dir(&jobs).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/jobs/demo.toml");
    std::fs::copy(&example, jobs.join("demo.toml")).unwrap();
    let scene = jobs.join("inferix-demo.glb");
    assert!(run(&["demo-scene", path(&scene)]).status.success());

    // A misspelt field: refused by its path, before anything is sent.
    let bad = jobs.join("bad.toml");
    std::fs::write(
        &bad,
        "scene = \"inferix-demo.glb\"\n[render]\nsampels = 8\n",
    )
    .unwrap();
    let out = command(&["submit", path(&bad), "--manager", &addr], &[])
        .current_dir(d)
        .output()
        .unwrap();
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{why}");
    assert!(why.contains("`render.sampels`"), "{why}");
    assert!(why.contains("bad.toml"), "{why}");

    let out = command(
        &[
            "submit",
            path(&jobs.join("demo.toml")),
            "--manager",
            &addr,
            "--spp",
            "3",
            "--tag",
            "cpu",
            "--json",
        ],
        &[],
    )
    .current_dir(d)
    .output()
    .unwrap();
    let submitted = json(&out);
    let job = submitted["job"].as_str().expect("job id").to_string();

    let listed = json(
        &command(&["jobs", "--manager", &addr, "--json"], &[])
            .output()
            .unwrap(),
    );
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(1),
        "only the good file was submitted: {listed}"
    );
    let status = json(
        &command(&["status", &job, "--manager", &addr, "--json"], &[])
            .output()
            .unwrap(),
    );
    let spec = &status["job"]["spec"];
    // From the file.
    assert_eq!(spec["frames"]["start"], 1, "{spec}");
    assert_eq!(spec["frames"]["end"], 24, "{spec}");
    assert_eq!(spec["settings"]["width"], 320, "{spec}");
    assert_eq!(spec["settings"]["height"], 180, "{spec}");
    assert_eq!(spec["chunk_size"], 4, "{spec}");
    assert_eq!(spec["scene"]["file_name"], "inferix-demo.glb", "{spec}");
    // From the flags, over the file's 16 samples and empty tags.
    assert_eq!(spec["settings"]["samples"], 3, "{spec}");
    assert_eq!(spec["tags"], serde_json::json!(["cpu"]), "{spec}");
}
