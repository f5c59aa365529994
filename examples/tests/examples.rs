//! Runs each example program as a reader would and checks what it prints.

use std::process::Command;

fn run(bin: &str) -> String {
    let out = Command::new(bin)
        .env("INFERIX_LOG", "warn")
        .output()
        .expect("start the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{bin} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn embed_worker_renders_a_job_beside_its_host_service() {
    let out = run(env!("CARGO_BIN_EXE_embed_worker"));
    assert!(out.contains("embedded worker "), "{out}");
    assert!(out.contains(" completed"), "{out}");
    assert!(
        out.contains("status endpoint: ok, 4 frames rendered"),
        "{out}"
    );
}

#[test]
fn custom_scheduler_spreads_tasks_over_every_worker() {
    let out = run(env!("CARGO_BIN_EXE_custom_scheduler"));
    assert!(out.contains(" completed"), "{out}");
    let summary = out
        .lines()
        .find(|l| l.ends_with(" workers"))
        .unwrap_or_else(|| panic!("no summary in {out}"));
    let numbers: Vec<usize> = summary
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    // At least one choice per task (re-queued tasks are chosen again), by
    // one to three workers (depending on how many had connected).
    assert!(numbers[0] >= 6, "{summary}");
    assert!((1..=3).contains(&numbers[1]), "{summary}");
}

#[test]
fn custom_renderer_output_goes_through_the_network() {
    let out = run(env!("CARGO_BIN_EXE_custom_renderer"));
    assert!(out.contains(" completed on awk-ppm-1"), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains(" frames in "))
        .unwrap_or_else(|| panic!("no download line in {out}"));
    assert!(line.starts_with("4 frames in "), "{line}");
    let dir = line.trim_start_matches("4 frames in ");
    let frames = std::fs::read_dir(dir).unwrap().count();
    assert_eq!(frames, 4);
    std::fs::remove_dir_all(dir).unwrap();
}
