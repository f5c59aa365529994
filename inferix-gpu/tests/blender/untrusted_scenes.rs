//! Hostile scenes: files outside a scene's folder are never packed,
//! rendered or copied anywhere, and a scene's own Python never runs.

use super::*;

/// A valid PNG (so Blender would happily use it as a texture) followed by
/// bytes that must never leave its folder.
const MARKER: &[u8] = b"INFERIX-TEST-SECRET-7d1c0e55a9b34f";

fn write_secret(path: &Path) {
    write_texture(path);
    let mut bytes = std::fs::read(path).unwrap();
    bytes.extend_from_slice(MARKER);
    std::fs::write(path, bytes).unwrap();
}

/// Every regular file under `dir`, recursively (symlinks not followed).
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let kind = e.file_type().unwrap();
        if kind.is_dir() {
            files_under(&e.path(), out);
        } else if kind.is_file() {
            out.push(e.path());
        }
    }
}

fn assert_no_secret_under(dirs: &[&Path]) {
    let mut files = Vec::new();
    for d in dirs {
        files_under(d, &mut files);
    }
    assert!(!files.is_empty(), "nothing to search in {dirs:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER),
            "the secret's bytes ended up in {}",
            f.display()
        );
    }
}

/// Asserts `res` is `OutsideFiles` naming a datablock that starts with
/// `datablock` and leads to `target`.
fn expect_outside<T>(res: Result<T, BlenderError>, scene: &Path, datablock: &str, target: &Path) {
    let target = target.canonicalize().unwrap();
    match res.map(|_| ()) {
        Err(BlenderError::OutsideFiles { path, refs }) => {
            assert_eq!(path, scene);
            assert!(
                refs.iter()
                    .any(|r| r.datablock.starts_with(datablock) && r.path == target),
                "expected {datablock} -> {}, got {refs:?}",
                target.display()
            );
        }
        other => panic!(
            "expected OutsideFiles for {}, got {other:?}",
            target.display()
        ),
    }
}

/// Renders, watermarks and packs `scene`, expecting each to refuse the
/// reference to `target`, and then searches every output for the secret.
async fn refused_everywhere(scene: &Path, datablock: &str, target: &Path) {
    let work = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = renderer().await.with_config(BlenderConfig {
        work_dir: Some(work.path().to_path_buf()),
        ..BlenderConfig::default()
    });
    expect_outside(
        r.render_blend(request(scene, vec![1], 2, None)).await,
        scene,
        datablock,
        target,
    );
    match r.render(request(scene, vec![1], 2, None)).await {
        Err(RenderError::InvalidScene { reason, .. }) => {
            assert!(reason.contains("outside its folder"), "{reason}")
        }
        other => panic!("expected InvalidScene, got {other:?}"),
    }

    let wm = BlenderWatermarker::new(blender().await).with_work_dir(work.path().to_path_buf());
    let mut settings = request(scene, vec![], 2, None).settings;
    (settings.width, settings.height) = (160, 120);
    let marked = out.path().join("marked.blend");
    expect_outside(
        wm.watermark_blend(scene, &patches_for(1, 160, 120), &settings, &marked)
            .await,
        scene,
        datablock,
        target,
    );
    assert!(matches!(
        wm.watermark(scene, &patches_for(1, 160, 120), &settings, &marked)
            .await,
        Err(RenderError::InvalidScene { .. })
    ));
    assert!(!marked.exists());

    let packed = out.path().join("packed.blend");
    expect_outside(
        blender()
            .await
            .pack_scene(scene, &packed, Duration::from_secs(120))
            .await,
        scene,
        datablock,
        target,
    );
    assert!(!packed.exists());

    // Nothing anywhere carries the secret: not the outputs, not the job
    // folders, not the scene's own folder.
    std::fs::write(out.path().join("searched"), b"x").unwrap();
    assert_no_secret_under(&[out.path(), work.path(), scene.parent().unwrap()]);
}

#[tokio::test]
async fn an_absolute_texture_path_outside_the_folder_is_refused() {
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("node.key.png");
    write_secret(&secret);
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(
        dir.path(),
        "scene.blend",
        &[format!("texture={}", secret.display())],
    )
    .await;
    refused_everywhere(&scene, "image", &secret).await;
}

#[tokio::test]
async fn a_volume_file_outside_the_folder_is_refused() {
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("credentials.vdb");
    write_secret(&secret);
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(
        dir.path(),
        "volume.blend",
        &[format!("volume={}", secret.display())],
    )
    .await;
    refused_everywhere(&scene, "volume", &secret).await;
}

#[tokio::test]
async fn dot_dot_and_symlink_escapes_are_refused() {
    let base = tempfile::tempdir().unwrap();
    let secret = base.path().join("tasks.sqlite.png");
    write_secret(&secret);
    let dir = base.path().join("scene");
    std::fs::create_dir(&dir).unwrap();

    // `//../x` names the file beside the scene's folder.
    let scene = build_scene(
        &dir,
        "dotdot.blend",
        &[
            format!("texture={}", secret.display()),
            "texture_as=//../tasks.sqlite.png".into(),
        ],
    )
    .await;
    refused_everywhere(&scene, "image", &secret).await;
    std::fs::remove_file(&scene).unwrap();

    // A symlink inside the folder leading out of it.
    let link = dir.join("ground.png");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let scene = build_scene(
        &dir,
        "symlink.blend",
        &[
            format!("texture={}", link.display()),
            "texture_as=//ground.png".into(),
        ],
    )
    .await;
    refused_everywhere(&scene, "image", &secret).await;
}

#[tokio::test]
async fn a_linked_library_outside_the_folder_is_refused() {
    let other = tempfile::tempdir().unwrap();
    let lib = other.path().join("other-users-scene.blend");
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(
        dir.path(),
        "linked.blend",
        &[format!("library={}", lib.display())],
    )
    .await;
    let r = renderer().await;
    expect_outside(
        r.render_blend(request(&scene, vec![1], 2, None)).await,
        &scene,
        "library",
        &lib,
    );
    let mut settings = request(&scene, vec![], 2, None).settings;
    (settings.width, settings.height) = (160, 120);
    let marked = dir.path().join("marked.blend");
    expect_outside(
        BlenderWatermarker::new(blender().await)
            .watermark_blend(&scene, &patches_for(1, 160, 120), &settings, &marked)
            .await,
        &scene,
        "library",
        &lib,
    );
    assert!(!marked.exists());
}

#[tokio::test]
async fn a_relative_texture_beside_the_scene_is_used_and_packed() {
    let dir = tempfile::tempdir().unwrap();
    let tex = dir.path().join("ground.png");
    write_texture(&tex);
    let plain = build_scene(dir.path(), "plain.blend", &[]).await;
    let scene = build_scene(
        dir.path(),
        "relative.blend",
        &[
            format!("texture={}", tex.display()),
            "texture_as=//ground.png".into(),
        ],
    )
    .await;
    let r = renderer().await;
    let textured = render_one(&r, request(&scene, vec![1], 2, None)).await;
    let untextured = render_one(&r, request(&plain, vec![1], 2, None)).await;
    assert_ne!(textured, untextured, "the texture was not used");

    // The watermarked copy carries the texture: it renders the same ground
    // with nothing beside it.
    let elsewhere = tempfile::tempdir().unwrap();
    let marked = elsewhere.path().join("marked.blend");
    let mut settings = request(&scene, vec![], 2, None).settings;
    (settings.width, settings.height) = (W, H);
    BlenderWatermarker::new(blender().await)
        .watermark_blend(&scene, &[], &settings, &marked)
        .await
        .unwrap();
    std::fs::remove_file(&tex).unwrap();
    let from_copy = render_one(&r, request(&marked, vec![1], 2, None)).await;
    assert_eq!(from_copy, textured);
}

#[tokio::test]
async fn scene_python_never_runs_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let driver_ran = dir.path().join("ran.driver");
    let scene = build_scene(
        dir.path(),
        "scripted.blend",
        &[format!("writes={}", ran.display())],
    )
    .await;
    let _ = std::fs::remove_file(&ran);
    let _ = std::fs::remove_file(&driver_ran);

    let r = renderer().await;
    still_healthy(&r, &scene).await;
    let mut settings = request(&scene, vec![], 2, None).settings;
    (settings.width, settings.height) = (160, 120);
    BlenderWatermarker::new(blender().await)
        .watermark_blend(
            &scene,
            &patches_for(1, 160, 120),
            &settings,
            &dir.path().join("marked.blend"),
        )
        .await
        .unwrap();
    blender()
        .await
        .pack_scene(
            &scene,
            &dir.path().join("packed.blend"),
            Duration::from_secs(120),
        )
        .await
        .unwrap();
    assert!(!ran.exists(), "the scene's text block ran");
    assert!(!driver_ran.exists(), "the scene's Python driver ran");

    // The same scene with scripts allowed does run them: the check above
    // would notice autoexec being switched on.
    // Unconfined, so that what they write beside the scene stays there.
    let trusting = unconfined_renderer(BlenderConfig {
        allow_scene_scripts: true,
        ..BlenderConfig::default()
    })
    .await;
    still_healthy(&trusting, &scene).await;
    assert!(
        ran.exists(),
        "the text block did not run with scripts allowed"
    );
    assert!(
        driver_ran.exists(),
        "the driver did not run with scripts allowed"
    );
}
