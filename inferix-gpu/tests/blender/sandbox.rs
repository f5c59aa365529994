//! Blender in its sandbox: a scene whose code runs (scene scripts allowed)
//! reads no file outside its folder, reaches no network and writes
//! nowhere but its job folder; the same scene unconfined does all three,
//! which shows the test would notice a sandbox that lets them through.

use std::io::Read;
use std::net::TcpListener;

use super::*;

/// A scene whose registered text block tries to escape, and where it
/// aims: (scene, secret file, marker it would write, listener it would
/// reach). The secret and the marker sit in a folder of their own, as a
/// node's data folder does.
async fn escaping_scene(
    scene_dir: &Path,
    data_dir: &Path,
) -> (PathBuf, PathBuf, PathBuf, TcpListener) {
    let secret = data_dir.join("node.key");
    std::fs::write(&secret, b"INFERIX-NODE-KEY-5e0b").unwrap();
    let marker = data_dir.join("escaped");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let scene = build_scene(
        scene_dir,
        "escaping.blend",
        &[format!(
            "escape={},{port},{}",
            secret.display(),
            marker.display()
        )],
    )
    .await;
    (scene, secret, marker, listener)
}

fn trusting(blender: Blender) -> BlenderRenderer {
    BlenderRenderer::new(
        blender,
        BlenderConfig {
            allow_scene_scripts: true,
            ..BlenderConfig::default()
        },
    )
}

#[tokio::test]
async fn a_scene_running_code_in_the_sandbox_reads_sends_and_writes_nothing() {
    let (scene_dir, data_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (scene, _secret, marker, listener) =
        escaping_scene(scene_dir.path(), data_dir.path()).await;

    let confined = blender()
        .await
        .with_sandbox(SandboxPolicy::Required)
        .await
        .expect("bubblewrap installed (bash scripts/setup-blender.sh)");
    assert!(confined.is_sandboxed());
    let img = render_one(&trusting(confined), request(&scene, vec![1], 2, None)).await;
    assert!(mean(&img) > 0.01, "the scene still renders");
    assert!(!marker.exists(), "the scene wrote outside its job folder");
    assert!(
        listener.accept().is_err(),
        "the scene reached a local port from the sandbox"
    );

    // Unconfined, the same scene reads the secret and sends it.
    let open = blender()
        .await
        .with_sandbox(SandboxPolicy::Off)
        .await
        .unwrap();
    assert!(!open.is_sandboxed());
    match trusting(open)
        .render_blend(request(&scene, vec![1], 2, None))
        .await
    {
        Err(BlenderError::Crashed { status, .. }) => assert!(status.contains("41"), "{status}"),
        other => panic!("expected the unconfined scene to read the secret, got {other:?}"),
    }
    listener.set_nonblocking(false).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    let mut sent = Vec::new();
    conn.read_to_end(&mut sent).unwrap();
    assert_eq!(sent, b"INFERIX-NODE-KEY-5e0b");
}

#[tokio::test]
async fn watermarking_and_packing_run_confined_too() {
    // The manager runs the customer's scene through Blender to watermark
    // it; confined, a scene naming the manager's files cannot pack them
    // even if the name check were bypassed, and plain scenes still work.
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(dir.path(), "plain.blend", &[]).await;
    let confined = blender()
        .await
        .with_sandbox(SandboxPolicy::Required)
        .await
        .unwrap();
    let mut settings = request(&scene, vec![], 2, None).settings;
    (settings.width, settings.height) = (160, 120);
    let marked = dir.path().join("marked.blend");
    BlenderWatermarker::new(confined.clone())
        .watermark_blend(&scene, &patches_for(1, 160, 120), &settings, &marked)
        .await
        .unwrap();
    let packed = dir.path().join("packed.blend");
    confined
        .pack_scene(&scene, &packed, Duration::from_secs(120))
        .await
        .unwrap();
    let r = BlenderRenderer::new(confined, BlenderConfig::default());
    let a = render_one(&r, request(&scene, vec![3], 2, None)).await;
    let b = render_one(&r, request(&packed, vec![3], 2, None)).await;
    assert_eq!(a, b, "the packed copy renders the same pixels");
    assert!(marked.is_file());
}

/// Host processes whose command line holds `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(pid);
        }
    }
    found
}

#[tokio::test]
async fn a_hanging_confined_render_times_out_and_leaves_no_process() {
    let dir = tempfile::tempdir().unwrap();
    // A sleep no other process has on its command line.
    let needle = format!("600.{}{}", std::process::id(), rand_digits());
    let fifo = dir.path().join("pids");
    let scene = build_scene(
        dir.path(),
        "hangs.blend",
        &[
            format!("hang={}", fifo.display()),
            format!("sleep={needle}"),
        ],
    )
    .await;
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let confined = blender()
        .await
        .with_sandbox(SandboxPolicy::Required)
        .await
        .unwrap();
    let r = BlenderRenderer::new(
        confined,
        BlenderConfig {
            allow_scene_scripts: true,
            timeout: Duration::from_secs(6),
            ..BlenderConfig::default()
        },
    );
    let render = tokio::spawn({
        let scene = scene.clone();
        async move { r.render_blend(request(&scene, vec![1], 2, None)).await }
    });
    // The handler writes into the FIFO (in the scene's folder, which the
    // sandbox shows) once its child runs, which wakes this reader.
    tokio::time::timeout(Duration::from_secs(120), tokio::fs::read(&fifo))
        .await
        .expect("the handler ran")
        .unwrap();
    let children = processes_with(&needle);
    assert!(!children.is_empty(), "the handler's child runs on the host");
    match render.await.unwrap() {
        Err(BlenderError::Timeout { seconds: 6 }) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    for pid in children {
        assert!(
            process_ended(pid as i32, Duration::from_secs(5)),
            "the scene's child {pid} survived the timeout"
        );
    }
}

/// Six digits that differ between runs.
fn rand_digits() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos % 1_000_000
}
