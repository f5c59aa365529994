//! The Blender renderer and watermarker against a real `blender`
//! (installed by `scripts/setup-blender.sh`).
//!
//! Every test builds its own small scene with Blender's Python (plane, cube,
//! sun, camera; the cube turns and the camera drifts so frames differ) and
//! renders it tiny with Cycles on the CPU.

use std::path::{Path, PathBuf};
use std::time::Duration;

use inferix_core::ids::{JobId, TaskId};
use inferix_core::image::{Image, Rect, Rgb8Image};
use inferix_core::por::key::{ManagerSecret, VerificationKey};
use inferix_core::por::prepare::SceneWatermarker;
use inferix_core::por::watermark::{self, DEFAULT_PATCHES, DEFAULT_THRESHOLD};
use inferix_core::renderer::{
    Background, RenderError, RenderProgress, RenderRequest, RenderSettings, Renderer, SceneFormat,
};
use inferix_gpu::blender::{
    Blender, BlenderConfig, BlenderEngine, BlenderError, BlenderOutput, BlenderRenderer,
    BlenderVersion, BlenderWatermarker, SandboxPolicy,
};

/// Builds the test scene. Options after `--`: the output path, then any of
/// `texture=<path>` (an external image on the ground plane),
/// `library=<path>` (writes a .blend there and links a sphere from it),
/// `raise` (a scene script whose frame-change handler raises),
/// `hang=<pid file>` (a handler that starts a child and never returns),
/// `dof` (camera depth of field on),
/// `texture_as=<raw path>` (the texture's stored path rewritten to this,
/// e.g. `//../x.png`, after the scene is saved),
/// `volume=<path>` (a volume object reading an OpenVDB file there),
/// `writes=<path>` (a registered text block that writes `<path>` when it
/// runs, and a Python driver that writes `<path>.driver` when evaluated).
const BUILD_SCENE: &str = include_str!("blender/build_scene.py");

const W: u32 = 64;
const H: u32 = 48;

async fn blender() -> Blender {
    Blender::locate(None)
        .await
        .expect("blender installed (bash scripts/setup-blender.sh)")
}

async fn renderer() -> BlenderRenderer {
    BlenderRenderer::new(blender().await, BlenderConfig::default())
}

/// A renderer outside the sandbox, whose scene scripts see the host's
/// files and process ids.
async fn unconfined_renderer(config: BlenderConfig) -> BlenderRenderer {
    let b = blender().await.with_sandbox(SandboxPolicy::Off).await;
    BlenderRenderer::new(b.unwrap(), config)
}

/// Builds the test scene at `dir/name` with builder options.
async fn build_scene(dir: &Path, name: &str, opts: &[String]) -> PathBuf {
    let b = blender().await;
    let script = dir.join("build_scene.py");
    std::fs::write(&script, BUILD_SCENE).unwrap();
    let out = dir.join(name);
    let status = tokio::process::Command::new(b.executable())
        .args([
            "-b",
            "--factory-startup",
            "--python-exit-code",
            "1",
            "--python",
        ])
        .arg(&script)
        .arg("--")
        .arg(&out)
        .args(opts)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "building the test scene failed: {status}");
    out
}

fn request(scene: &Path, frames: Vec<u32>, samples: u32, crop: Option<Rect>) -> RenderRequest {
    RenderRequest {
        scene: scene.to_path_buf(),
        format: SceneFormat::Blend,
        frames,
        settings: RenderSettings {
            width: W,
            height: H,
            samples,
            max_bounces: 4,
            seed: 7,
            fps: 24.0,
            ..RenderSettings::default()
        },
        crop,
        progress: None,
    }
}

async fn render_one(r: &BlenderRenderer, req: RenderRequest) -> Image {
    let mut frames = r.render(req).await.expect("render");
    assert_eq!(frames.len(), 1);
    frames.remove(0).image
}

fn mean(img: &Image) -> f32 {
    img.pixels.iter().sum::<f32>() / img.pixels.len() as f32
}

#[tokio::test]
async fn renders_frames_with_progress_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(dir.path(), "scene.blend", &[]).await;
    let r = renderer().await;
    assert!(r.version() >= BlenderVersion::MINIMUM_SUPPORTED);
    let class = r.device_class();
    assert!(
        class.starts_with(&format!("blender-{}-cycles-cpu", r.version())),
        "{class}"
    );
    assert_eq!(r.formats(), &[SceneFormat::Blend]);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut req = request(&scene, vec![1, 6], 8, None);
    req.progress = Some(tx);
    let frames = r.render(req).await.unwrap();
    assert_eq!(
        frames.iter().map(|f| f.frame).collect::<Vec<_>>(),
        vec![1, 6]
    );
    for f in &frames {
        assert_eq!((f.image.width, f.image.height), (W, H));
        assert!(mean(&f.image) > 0.01, "frame {} is black", f.frame);
    }
    assert_ne!(
        frames[0].image, frames[1].image,
        "animation must change frames"
    );

    let mut progress: Vec<RenderProgress> = Vec::new();
    while let Ok(p) = rx.try_recv() {
        progress.push(p);
    }
    for frame in [1, 6] {
        assert!(
            progress
                .iter()
                .any(|p| p.frame == frame && p.fraction < 1.0),
            "no progress before the end of frame {frame}: {progress:?}"
        );
        assert!(progress
            .iter()
            .any(|p| p.frame == frame && p.fraction == 1.0));
    }

    // Same seed and settings: the same pixels, bit for bit.
    let again = render_one(&r, request(&scene, vec![6], 8, None)).await;
    assert_eq!(again, frames[1].image);
    // Another seed: other noise.
    let mut reseeded = request(&scene, vec![6], 8, None);
    reseeded.settings.seed = 8;
    assert_ne!(render_one(&r, reseeded).await, frames[1].image);
}

/// A transparent background leaves the sky clear (alpha in the frame, the
/// ground and cube opaque); a colour fills exactly those pixels; an
/// environment map is refused, a .blend being lit by its own world.
#[tokio::test]
async fn backgrounds_are_transparent_or_coloured_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(dir.path(), "scene.blend", &[]).await;
    let r = renderer().await;
    let with = |background| {
        let mut req = request(&scene, vec![1], 4, None);
        req.settings.background = background;
        req
    };
    let clear = render_one(&r, with(Background::Transparent)).await;
    let alpha = clear.alpha.clone().expect("the sky is transparent");
    assert!(alpha.contains(&0.0) && alpha.contains(&1.0));
    // What the customer gets: 8-bit straight alpha, clear where the sky was.
    let eight = clear.to_srgb8();
    assert_eq!(eight.alpha.as_ref().map(Vec::len), Some((W * H) as usize));
    let colour = [0.9, 0.1, 0.4];
    let filled = render_one(&r, with(Background::Color(colour))).await;
    assert_eq!(filled.alpha, None);
    for (p, a) in alpha.iter().enumerate() {
        if *a == 0.0 {
            assert_eq!(filled.get(p as u32 % W, p as u32 / W), colour);
        }
    }
    let own_world = render_one(&r, with(Background::Environment)).await;
    assert_eq!(own_world.alpha, None);
    let mut lit = with(Background::Environment);
    lit.settings.environment = Some(dir.path().join("sky.exr"));
    match r.render(lit).await {
        Err(RenderError::InvalidSettings(m)) => assert!(m.contains("own world"), "{m}"),
        other => panic!("an environment map for a .blend is refused: {other:?}"),
    }
}

#[tokio::test]
async fn crops_equal_the_full_frame_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(dir.path(), "scene.blend", &[]).await;
    let r = renderer().await;
    let full = render_one(&r, request(&scene, vec![4], 8, None)).await;
    let rects = [
        Rect::new(10, 7, 20, 15),
        Rect::new(0, 0, W, 10),
        Rect::new(50, 30, 14, 18),
        Rect::new(33, 21, 1, 1),
    ];
    // One crop through the trait, as a verifier asks for a challenge.
    let crop = render_one(&r, request(&scene, vec![4], 8, Some(rects[0]))).await;
    assert_eq!(crop, full.crop(rects[0]));
    // Several crops of two frames in one Blender process.
    let batch = r
        .render_crops_blend(request(&scene, vec![4, 7], 8, None), &rects)
        .await
        .unwrap();
    assert_eq!(batch.len(), 2 * rects.len());
    let full7 = render_one(&r, request(&scene, vec![7], 8, None)).await;
    for (i, c) in batch.iter().enumerate() {
        let (frame, source) = if i < rects.len() {
            (4, &full)
        } else {
            (7, &full7)
        };
        assert_eq!((c.frame, c.rect), (frame, rects[i % rects.len()]));
        assert_eq!(
            c.image,
            source.crop(c.rect),
            "crop {:?} of frame {frame}",
            c.rect
        );
    }
    assert!(matches!(
        r.render_crops_blend(
            request(&scene, vec![4], 8, None),
            &[Rect::new(60, 40, 8, 8)]
        )
        .await,
        Err(BlenderError::InvalidSettings(_))
    ));
    // The same through the trait, as a verifier calls it (the request's
    // own crop is ignored).
    let via_trait =
        Renderer::render_crops(&r, request(&scene, vec![4], 8, Some(rects[3])), &rects[..2])
            .await
            .unwrap();
    assert_eq!(via_trait.len(), 2);
    for (c, rect) in via_trait.iter().zip(&rects) {
        assert_eq!((c.frame, &c.image), (4, &full.crop(*rect)));
    }

    // A verifier with another core count gets the same pixels.
    let one_thread = r.with_config(BlenderConfig {
        threads: Some(1),
        ..BlenderConfig::default()
    });
    let crop = render_one(&one_thread, request(&scene, vec![4], 8, Some(rects[2]))).await;
    assert_eq!(crop, full.crop(rects[2]), "single-threaded crop differs");

    // The 8-bit PNG path gives the same bytes as encoding the float frame.
    let png = r.with_config(BlenderConfig {
        output: BlenderOutput::Png,
        ..BlenderConfig::default()
    });
    let rect = Rect::new(12, 9, 24, 16);
    let png_full = render_one(&png, request(&scene, vec![4], 8, None)).await;
    let png_crop = render_one(&png, request(&scene, vec![4], 8, Some(rect))).await;
    assert_eq!(png_crop.to_srgb8(), png_full.to_srgb8().crop(rect));
    let diff = png_full
        .to_srgb8()
        .max_channel_diff(&full.to_srgb8())
        .unwrap();
    assert!(diff <= 1, "PNG and EXR outputs differ by {diff}/255");

    let mut outside = request(&scene, vec![4], 8, Some(Rect::new(60, 0, 8, 8)));
    assert!(matches!(
        r.render(outside.clone()).await,
        Err(RenderError::InvalidSettings(_))
    ));
    outside.crop = None;
    outside.format = SceneFormat::Gltf;
    assert!(matches!(
        r.render(outside).await,
        Err(RenderError::UnsupportedFormat(SceneFormat::Gltf))
    ));
}

#[tokio::test]
async fn fewer_samples_are_detected_by_a_crop() {
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(dir.path(), "scene.blend", &[]).await;
    let r = renderer().await;
    let honest = render_one(&r, request(&scene, vec![3], 16, None))
        .await
        .to_srgb8();
    let lazy = render_one(&r, request(&scene, vec![3], 2, None))
        .await
        .to_srgb8();
    let rect = Rect::new(16, 12, 32, 24);
    let challenge = render_one(&r, request(&scene, vec![3], 16, Some(rect)))
        .await
        .to_srgb8();
    assert_eq!(challenge.max_channel_diff(&honest.crop(rect)), Some(0));
    let diff = challenge.max_channel_diff(&lazy.crop(rect)).unwrap();
    eprintln!("16 vs 2 samples: crop differs by {diff}/255");
    assert!(
        diff > 2,
        "2 samples instead of 16 differ by only {diff}/255"
    );
}

fn patches_for(task: u32, w: u32, h: u32) -> Vec<watermark::Patch> {
    let key = VerificationKey::derive(
        &ManagerSecret(b"blender test".to_vec()),
        TaskId::new(JobId(8), task),
    );
    watermark::layout(&key, w, h, DEFAULT_PATCHES)
}

#[tokio::test]
async fn watermarked_scene_passes_the_check_and_plain_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(dir.path(), "scene.blend", &[]).await;
    let (w, h) = (160, 120);
    let patches = patches_for(0, w, h);
    assert!(patches.len() >= 8, "layout gave {} patches", patches.len());
    let rects: Vec<Rect> = patches.iter().map(|p| p.rect).collect();
    let mut settings = request(&scene, vec![], 8, None).settings;
    settings.width = w;
    settings.height = h;

    let marked = dir.path().join("marked.blend");
    let wm = BlenderWatermarker::new(blender().await);
    assert_eq!(wm.formats(), &[SceneFormat::Blend]);
    wm.watermark(&scene, &patches, &settings, &marked)
        .await
        .unwrap();

    let r = renderer().await;
    let render = |scene: PathBuf, frames: Vec<u32>| {
        let mut req = request(&scene, frames, 8, None);
        req.settings = settings.clone();
        r.render(req)
    };
    let marked_frames = render(marked.clone(), vec![1, 9]).await.unwrap();
    let plain_frames = render(scene.clone(), vec![1, 9]).await.unwrap();
    for (m, p) in marked_frames.iter().zip(&plain_frames) {
        let (m8, p8) = (m.image.to_srgb8(), p.image.to_srgb8());
        if let Err(failing) = watermark::check(&m8, &rects, DEFAULT_THRESHOLD) {
            panic!("frame {}: watermark check failed on {failing:?}", m.frame);
        }
        let e = |img: &Rgb8Image| -> Vec<f64> {
            rects.iter().map(|r| watermark::contrast(img, *r)).collect()
        };
        eprintln!(
            "frame {}: contrast marked {:?} plain {:?}",
            m.frame,
            e(&m8),
            e(&p8)
        );
        // The full check (contrast and the key's own pattern) as well.
        if let Err(missing) = watermark::check_patches(&m8, &patches, DEFAULT_THRESHOLD) {
            panic!("frame {}: patches missing: {missing:?}", m.frame);
        }
        let missing = watermark::check_patches(&p8, &patches, DEFAULT_THRESHOLD).unwrap_err();
        assert_eq!(
            missing.len(),
            patches.len(),
            "frame {}: {missing:?}",
            p.frame
        );
        // The plain frame fails; a patch window that happens to hold a
        // sharp scene edge may still reach the threshold on its own.
        let failing = watermark::check(&p8, &rects, DEFAULT_THRESHOLD).unwrap_err();
        assert!(
            failing.len() * 4 >= rects.len() * 3,
            "frame {}: only {} of {} patches fail without a watermark",
            p.frame,
            failing.len(),
            rects.len()
        );
        // Outside the patches' windows the watermark changes nothing.
        let windows: Vec<Rect> = rects
            .iter()
            .map(|r| watermark::window_of(*r, w, h))
            .collect();
        for y in 0..h {
            for x in 0..w {
                let px = Rect::new(x, y, 1, 1);
                if !windows.iter().any(|win| win.overlaps(&px)) {
                    assert_eq!(
                        m.image.get(x, y),
                        p.image.get(x, y),
                        "pixel ({x},{y}) changed"
                    );
                }
            }
        }
    }
    // Another task's layout does not pass on this copy.
    let other: Vec<Rect> = patches_for(1, w, h).iter().map(|p| p.rect).collect();
    assert!(watermark::check(
        &marked_frames[0].image.to_srgb8(),
        &other,
        DEFAULT_THRESHOLD
    )
    .is_err());

    // Patches outside the frame are refused before Blender runs.
    let mut bad = patches.clone();
    bad[0].rect = Rect::new(w - 2, 0, 5, 5);
    assert!(matches!(
        wm.watermark(&scene, &bad, &settings, &dir.path().join("bad.blend"))
            .await,
        Err(RenderError::InvalidSettings(_))
    ));
}

fn write_texture(path: &Path) {
    let (w, h) = (16u32, 16u32);
    let pixels = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .flat_map(|(x, y)| {
            if (x / 4 + y / 4) % 2 == 0 {
                [230u8, 230, 40]
            } else {
                [20u8, 60, 200]
            }
        })
        .collect();
    let png = inferix_gpu::codec::encode_png(&Rgb8Image {
        width: w,
        height: h,
        pixels,
        alpha: None,
    });
    std::fs::write(path, png).unwrap();
}

#[tokio::test]
async fn packed_scene_carries_its_texture_and_library() {
    let dir = tempfile::tempdir().unwrap();
    let tex = dir.path().join("ground.png");
    let lib = dir.path().join("props.blend");
    write_texture(&tex);
    let scene = build_scene(
        dir.path(),
        "textured.blend",
        &[
            format!("texture={}", tex.display()),
            format!("library={}", lib.display()),
        ],
    )
    .await;
    let r = renderer().await;
    let original = render_one(&r, request(&scene, vec![2], 4, None)).await;

    // The packed copy renders the same pixels with nothing beside it.
    let elsewhere = tempfile::tempdir().unwrap();
    let packed = elsewhere.path().join("packed.blend");
    let b = blender().await;
    b.pack_scene(&scene, &packed, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 1);
    std::fs::remove_file(&tex).unwrap();
    std::fs::remove_file(&lib).unwrap();
    let from_pack = render_one(&r, request(&packed, vec![2], 4, None)).await;
    assert_eq!(from_pack, original);

    // Without them the original scene is refused, naming both files.
    let expect_missing = |res: Result<_, BlenderError>| match res {
        Err(BlenderError::MissingFiles { files, .. }) => {
            assert_eq!(files.len(), 2, "{files:?}");
            assert!(files.iter().any(|f| f.ends_with("ground.png")), "{files:?}");
            assert!(
                files.iter().any(|f| f.ends_with("props.blend")),
                "{files:?}"
            );
        }
        other => panic!("expected MissingFiles, got {other:?}"),
    };
    expect_missing(
        r.render_blend(request(&scene, vec![2], 4, None))
            .await
            .map(|_| ()),
    );
    assert!(matches!(
        r.render(request(&scene, vec![2], 4, None)).await,
        Err(RenderError::InvalidScene { .. })
    ));
    expect_missing(
        b.pack_scene(
            &scene,
            &elsewhere.path().join("p2.blend"),
            Duration::from_secs(120),
        )
        .await,
    );
}

/// A render that works, to show a failure left the renderer healthy.
async fn still_healthy(r: &BlenderRenderer, scene: &Path) {
    let img = render_one(r, request(scene, vec![1], 2, None)).await;
    assert!(mean(&img) > 0.01);
}

#[tokio::test]
async fn unreadable_scenes_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(dir.path(), "scene.blend", &[]).await;
    let r = renderer().await;

    let garbage = dir.path().join("garbage.blend");
    std::fs::write(&garbage, b"this is not a blend file at all").unwrap();
    match r.render_blend(request(&garbage, vec![1], 2, None)).await {
        Err(BlenderError::UnreadableScene { path, reason }) => {
            assert_eq!(path, garbage);
            assert!(reason.contains("not supported"), "{reason}");
        }
        other => panic!("expected UnreadableScene, got {other:?}"),
    }
    let bytes = std::fs::read(&scene).unwrap();
    let truncated = dir.path().join("truncated.blend");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    assert!(matches!(
        r.render(request(&truncated, vec![1], 2, None)).await,
        Err(RenderError::InvalidScene { .. })
    ));
    let absent = dir.path().join("absent.blend");
    assert!(matches!(
        r.render_blend(request(&absent, vec![1], 2, None)).await,
        Err(BlenderError::UnreadableScene { .. })
    ));
    still_healthy(&r, &scene).await;
}

#[tokio::test]
async fn scene_script_exceptions_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(dir.path(), "raises.blend", &["raise".into()]).await;
    let trusting = renderer().await.with_config(BlenderConfig {
        allow_scene_scripts: true,
        ..BlenderConfig::default()
    });
    match trusting
        .render_blend(request(&scene, vec![1], 2, None))
        .await
    {
        Err(BlenderError::SceneScript { path, traceback }) => {
            assert_eq!(path, scene);
            assert!(traceback.contains("scene script exploded"), "{traceback}");
        }
        other => panic!("expected SceneScript, got {other:?}"),
    }
    // By default the scene's Python never runs, so the same scene renders.
    still_healthy(&renderer().await, &scene).await;
}

/// Whether process `pid` has ended (gone, or a zombie waiting to be reaped),
/// waiting for it through a pidfd for at most `limit`.
fn process_ended(pid: i32, limit: Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::process::{pidfd_open, Pid, PidfdFlags};
    let Some(pid) = Pid::from_raw(pid) else {
        return true;
    };
    let Ok(fd) = pidfd_open(pid, PidfdFlags::empty()) else {
        return true; // no such process
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = Timespec::try_from(limit).unwrap();
    matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
}

#[tokio::test]
async fn a_hanging_render_times_out_and_its_processes_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let scene = build_scene(
        dir.path(),
        "hangs.blend",
        &[format!("hang={}", pid_file.display())],
    )
    .await;
    // Unconfined: the process group is what ends them (the sandboxed
    // case is in sandbox.rs).
    let r = unconfined_renderer(BlenderConfig {
        allow_scene_scripts: true,
        timeout: Duration::from_secs(6),
        ..BlenderConfig::default()
    })
    .await;
    let started = std::time::Instant::now();
    match r.render_blend(request(&scene, vec![1], 2, None)).await {
        Err(BlenderError::Timeout { seconds: 6 }) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    let pids = std::fs::read_to_string(&pid_file).expect("the handler ran");
    let pids: Vec<i32> = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    for pid in pids {
        assert!(
            process_ended(pid, Duration::from_secs(5)),
            "process {pid} survived the timeout"
        );
    }
    // Through the trait the same failure is `RenderError::Timeout`.
    assert!(matches!(
        RenderError::from(BlenderError::Timeout { seconds: 6 }),
        RenderError::Timeout { seconds: 6 }
    ));
    still_healthy(&renderer().await, &scene).await;
}

#[tokio::test]
async fn dropping_a_render_kills_blender() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let scene = build_scene(
        dir.path(),
        "hangs.blend",
        &[format!("hang={}", pid_file.display())],
    )
    .await;
    let r = unconfined_renderer(BlenderConfig {
        allow_scene_scripts: true,
        ..BlenderConfig::default()
    })
    .await;
    // The handler writes its pids into a FIFO once Blender is inside it,
    // which wakes this reader; the render future is then dropped.
    let made = std::process::Command::new("mkfifo")
        .arg(&pid_file)
        .status()
        .unwrap();
    assert!(made.success());
    let render = r.render(request(&scene, vec![1], 2, None));
    let text = tokio::select! {
        res = render => panic!("render ended: {res:?}"),
        text = tokio::time::timeout(Duration::from_secs(120), tokio::fs::read_to_string(&pid_file)) => {
            text.expect("the handler ran").unwrap()
        }
    };
    let pids: Vec<i32> = text
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{text:?}");
    for pid in pids {
        assert!(
            process_ended(pid, Duration::from_secs(5)),
            "process {pid} survived cancellation"
        );
    }
}

#[tokio::test]
async fn missing_or_old_blender_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    match Blender::locate(Some(&dir.path().join("no-blender"))).await {
        Err(BlenderError::NotFound { searched }) => assert!(searched.contains("no-blender")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let old = dir.path().join("old-blender");
        std::fs::write(&old, "#!/bin/sh\necho 'Blender 2.79 (sub 7)'\n").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
        match Blender::at(&old).await {
            Err(BlenderError::TooOld { found, required }) => {
                assert_eq!(found, BlenderVersion::new(2, 79, 0));
                assert_eq!(required, BlenderVersion::MINIMUM_SUPPORTED);
            }
            other => panic!("expected TooOld, got {other:?}"),
        }
        let broken = dir.path().join("broken-blender");
        std::fs::write(&broken, "#!/bin/sh\necho nope\nexit 2\n").unwrap();
        std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            Blender::at(&broken).await,
            Err(BlenderError::Unusable { .. })
        ));
    }
    // A job that needs a newer Blender than this one is refused.
    let scene = build_scene(dir.path(), "scene.blend", &[]).await;
    let r = renderer().await;
    let picky = r.with_config(BlenderConfig {
        min_version: Some(BlenderVersion::new(99, 0, 0)),
        ..BlenderConfig::default()
    });
    match picky.render_blend(request(&scene, vec![1], 2, None)).await {
        Err(BlenderError::TooOld { found, required }) => {
            assert_eq!(found, r.version());
            assert_eq!(required, BlenderVersion::new(99, 0, 0));
        }
        other => panic!("expected TooOld, got {other:?}"),
    }
    assert!(matches!(
        picky.render(request(&scene, vec![1], 2, None)).await,
        Err(RenderError::NoDevice(_))
    ));
    still_healthy(&r, &scene).await;
}

#[tokio::test]
async fn eevee_and_workbench_render_headless_and_crop_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(dir.path(), "scene.blend", &[]).await;
    let base = renderer().await;
    for (engine, name) in [
        (BlenderEngine::Eevee, "eevee"),
        (BlenderEngine::Workbench, "workbench"),
    ] {
        let r = base.with_config(BlenderConfig {
            engine,
            ..BlenderConfig::default()
        });
        assert!(r.device_class().ends_with(name), "{}", r.device_class());
        let full = render_one(&r, request(&scene, vec![5], 8, None)).await;
        assert!(mean(&full) > 0.01, "{name} frame is black");
        let rect = Rect::new(10, 7, 20, 15);
        // A second process reproduces the same pixels in the crop.
        let crop = render_one(&r, request(&scene, vec![5], 8, Some(rect))).await;
        assert_eq!(crop, full.crop(rect), "{name} crop differs");
    }
}

#[tokio::test]
async fn watermarking_refuses_a_camera_with_depth_of_field() {
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(dir.path(), "dof.blend", &["dof".into()]).await;
    let patches = patches_for(2, 160, 120);
    let mut settings = request(&scene, vec![], 8, None).settings;
    settings.width = 160;
    settings.height = 120;
    let out = dir.path().join("marked.blend");
    match BlenderWatermarker::new(blender().await)
        .watermark_blend(&scene, &patches, &settings, &out)
        .await
    {
        Err(BlenderError::InvalidScene { path, reason }) => {
            assert_eq!(path, scene);
            assert!(reason.contains("depth of field"), "{reason}");
        }
        other => panic!("expected InvalidScene, got {other:?}"),
    }
    assert!(!out.exists());
}

#[tokio::test]
async fn cycles_gpu_renders_or_reports_no_device() {
    let dir = tempfile::tempdir().unwrap();
    let scene = build_scene(dir.path(), "scene.blend", &[]).await;
    let r = renderer().await.with_config(BlenderConfig {
        engine: BlenderEngine::CyclesGpu,
        ..BlenderConfig::default()
    });
    assert!(r.device_class().ends_with("cycles-gpu"));
    match r.render_blend(request(&scene, vec![1], 4, None)).await {
        Ok(frames) => assert!(mean(&frames[0].image) > 0.01, "GPU frame is black"),
        Err(BlenderError::NoDevice(reason)) => assert!(reason.contains("no GPU"), "{reason}"),
        Err(other) => panic!("expected a frame or NoDevice, got {other:?}"),
    }
}

#[path = "blender/conformance.rs"]
mod conformance;

#[path = "blender/untrusted_scenes.rs"]
mod untrusted_scenes;

#[path = "blender/sandbox.rs"]
mod sandbox;
