//! `inferix demo` run the way the README tells a newcomer to run it: no
//! options, in a fresh folder, on whatever device this machine has (on a
//! machine without a GPU that is a software Vulkan device). It must finish
//! with 24 distinct frames, say what quality it chose, print progress lines
//! when its output is not a terminal, and print no warnings about the
//! environment.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_inferix");

/// Far above the couple of minutes the demo takes on a 2-core CPU machine,
/// so that only a hang (not a busy machine) fails the test.
const LIMIT: Duration = Duration::from_secs(20 * 60);

#[test]
fn the_demo_finishes_with_24_distinct_frames_at_the_settings_it_picks() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("demo")
        .current_dir(dir.path())
        .env_remove("INFERIX_LOG")
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start inferix demo");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "inferix demo did not finish within {LIMIT:?}\nstdout:\n{}\nstderr:\n{}",
                out.join().unwrap(),
                err.join().unwrap()
            );
        }
        std::thread::park_timeout(Duration::from_millis(200));
    };
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    assert!(
        status.success(),
        "inferix demo failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    eprintln!(
        "inferix demo took {:.1} s\n{stdout}",
        started.elapsed().as_secs_f64()
    );

    // It says what it chose, and reports progress line by line in a pipe.
    assert!(stdout.contains("frames at"), "{stdout}");
    assert!(stdout.contains("24/24 frames accepted"), "{stdout}");
    // Nothing about the environment (e.g. "XDG_RUNTIME_DIR is invalid").
    assert!(
        !stderr.contains("XDG_RUNTIME_DIR"),
        "environment warnings:\n{stderr}"
    );
    // Nor about its own scene or the watermarked copies workers render.
    assert!(
        !stderr.contains("not supported"),
        "scene warnings:\n{stderr}"
    );

    // The README's promise: 24 frames in ./inferix-out/<job-id>/.
    let jobs: Vec<_> = std::fs::read_dir(dir.path().join("inferix-out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(jobs.len(), 1, "one job folder: {jobs:?}");
    let mut frames: Vec<_> = std::fs::read_dir(&jobs[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    frames.sort();
    assert_eq!(frames.len(), 24, "{frames:?}");
    let mut contents: Vec<Vec<u8>> = frames.iter().map(|f| std::fs::read(f).unwrap()).collect();
    for (f, bytes) in frames.iter().zip(&contents) {
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "{} is not a PNG",
            f.display()
        );
    }
    contents.sort();
    contents.dedup();
    assert_eq!(contents.len(), 24, "every frame of the animation differs");
}
