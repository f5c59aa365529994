//! A 10-frame `.blend` job through a network with Proof of Render: the
//! manager watermarks each lease's copy with Blender, two honest workers
//! render with Blender Cycles, two verifiers check the patches and
//! re-render crop challenges with Blender. A worker rendering with fewer
//! samples is caught by the crops; the honest workers' frames all pass,
//! and the downloaded frames equal a local Blender render of the scene
//! (clean delivery: no watermark patch is left in them), transparent sky
//! included: the job asks for a transparent background.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::BlobStore;
use inferix_core::ids::NodeId;

use inferix_core::job::{FrameRange, JobSpec};
use inferix_core::por::key::ManagerSecret;
use inferix_core::por::prepare::PorConfig;
use inferix_core::renderer::{Background, Renderer, SceneFormat};
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_gpu::blender::{Blender, BlenderConfig, BlenderRenderer, BlenderWatermarker};
use inferix_node::{Client, ManagerBuilder, ManagerConfig, WorkerConfig, WorkerNode};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{
    accepted_until_completed, assert_clean_delivery, first_rejection, seeded_identity,
    spawn_verifiers, FewerSamples,
};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

/// A small animated scene: ground, a turning cube, a sun, a drifting camera.
const BUILD_SCENE: &str = r#"
import bpy, math, sys
out = sys.argv[sys.argv.index("--") + 1]
bpy.ops.wm.read_factory_settings(use_empty=True)
sc = bpy.context.scene
sc.render.engine = "CYCLES"
sc.frame_start, sc.frame_end = 1, 10
bpy.ops.mesh.primitive_plane_add(size=10)
bpy.ops.mesh.primitive_cube_add(size=1.5, location=(0, 0, 0.75))
cube = bpy.context.object
cube.keyframe_insert("rotation_euler", frame=1)
cube.rotation_euler = (0, 0, math.pi)
cube.keyframe_insert("rotation_euler", frame=10)
mat = bpy.data.materials.new("cube")
mat.use_nodes = True
mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (0.8, 0.2, 0.1, 1)
cube.data.materials.append(mat)
bpy.ops.object.light_add(type="SUN", rotation=(0.6, 0.2, 0.5))
bpy.context.object.data.energy = 3
bpy.ops.object.camera_add(location=(5, -5, 4), rotation=(math.radians(60), 0, math.radians(45)))
cam = bpy.context.object
sc.camera = cam
cam.keyframe_insert("location", frame=1)
cam.location = (5.5, -4.5, 4.2)
cam.keyframe_insert("location", frame=10)
w = bpy.data.worlds.new("w")
sc.world = w
w.use_nodes = True
w.node_tree.nodes["Background"].inputs["Color"].default_value = (0.05, 0.07, 0.1, 1)
bpy.ops.wm.save_as_mainfile(filepath=out)
"#;

async fn build_scene(blender: &Blender, dir: &Path) -> PathBuf {
    let script = dir.join("build_scene.py");
    std::fs::write(&script, BUILD_SCENE).unwrap();
    let out = dir.join("shot.blend");
    let status = tokio::process::Command::new(blender.executable())
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
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "building the scene failed: {status}");
    out
}

/// A manager watermarking `.blend` copies with `blender`, with Proof of
/// Render on, on an in-process network; its store and blob store.
async fn blender_manager(
    net: &InProcNetwork,
    blender: &Blender,
    scratch: PathBuf,
    quorum: usize,
    secret: &[u8],
) -> (
    inferix_node::ManagerHandle,
    Arc<dyn TaskStore>,
    Arc<dyn BlobStore>,
) {
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let manager = ManagerBuilder::new(
        Arc::new(net.transport(NodeId(1))),
        store.clone(),
        blobs.clone(),
    )
    .config(ManagerConfig {
        quorum,
        tick: Duration::from_millis(100),
        ..ManagerConfig::default()
    })
    .scratch_dir(scratch)
    .proof_of_render(PorConfig::new(ManagerSecret(secret.to_vec())))
    .watermarker(Arc::new(BlenderWatermarker::new(blender.clone())))
    .build()
    .start()
    .await
    .unwrap();
    (manager, store, blobs)
}

/// Worker `n` of the manager at `addr`, rendering with `renderer`.
fn blender_worker(
    net: &InProcNetwork,
    addr: &str,
    dir: &Path,
    n: u128,
    renderer: Arc<dyn Renderer>,
    blobs: &Arc<dyn BlobStore>,
) -> WorkerNode {
    WorkerNode::new(
        Arc::new(net.node(seeded_identity(n))),
        renderer,
        WorkerConfig {
            manager: addr.to_string(),
            work_dir: dir.join(format!("worker-{n}")),
            heartbeat: Duration::from_millis(500),
            ..WorkerConfig::default()
        },
    )
    .with_blob_store(blobs.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blend_job_is_verified_and_a_lazy_worker_is_caught() {
    let blender = Blender::locate(None)
        .await
        .expect("blender installed (bash scripts/setup-blender.sh)");
    let dir = tempfile::tempdir().unwrap();
    let shot = build_scene(&blender, dir.path()).await;
    let renderer: Arc<dyn Renderer> = Arc::new(BlenderRenderer::new(
        blender.clone(),
        BlenderConfig::default(),
    ));

    let net = InProcNetwork::new();
    let (manager, store, blobs) = blender_manager(
        &net,
        &blender,
        dir.path().join("manager"),
        2,
        b"blender e2e",
    )
    .await;
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let mut nodes = spawn_verifiers(
        &net,
        &addr,
        2,
        Some(blobs.clone()),
        Some(renderer.clone()),
        dir.path(),
        &stopped,
    );
    let worker =
        |n: u128, r: Arc<dyn Renderer>| blender_worker(&net, &addr, dir.path(), n, r, &blobs);
    let lazy = worker(
        100,
        Arc::new(FewerSamples {
            inner: renderer.clone(),
            divisor: 4,
        }),
    );
    let lazy_id = lazy.id();
    let lazy_run = tokio::spawn(lazy.run(stopped.clone()));

    let client =
        Client::connect_with_blobs(&net.transport(NodeId(300)), &addr, None, blobs.clone())
            .await
            .unwrap();
    let scene = client.upload_scene(&shot).await.unwrap();
    assert_eq!(scene.format, SceneFormat::Blend);
    let mut spec = JobSpec::new(scene, FrameRange::new(1, 10));
    spec.settings.width = 64;
    spec.settings.height = 48;
    spec.settings.samples = 16;
    spec.settings.background = Background::Transparent;
    spec.chunk_size = 2;
    let (job, _) = client.submit(&spec).await.unwrap();
    let mut events = client.watch(job).await.unwrap();

    let reasons = first_rejection(&mut events, lazy_id, Duration::from_secs(600)).await;
    assert!(
        reasons.iter().any(|r| r.contains("re-rendered crop")),
        "caught by its crops: {reasons:?}"
    );
    // Its frames carry the patches (it rendered the watermarked lease
    // copy): at fewer samples a patch may read too noisy, never most.
    for r in reasons.iter().filter(|r| r.contains("watermark")) {
        // "frame F: N of M watermark patches missing …"
        let words: Vec<&str> = r.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "of").expect("N of M");
        let missing: u32 = words[at - 1].parse().expect("N");
        let of: u32 = words[at + 1].parse().expect("M");
        assert!(2 * missing < of, "its frames carry the patches: {r}");
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), lazy_run).await;

    let honest: Vec<NodeId> = (101..103u128)
        .map(|n| {
            let w = worker(n, renderer.clone());
            let id = w.id();
            nodes.push(tokio::spawn(w.run(stopped.clone())));
            id
        })
        .collect();
    let accepted_by =
        accepted_until_completed(&mut events, lazy_id, Duration::from_secs(900)).await;
    assert_eq!(accepted_by.len(), 5, "five tasks of two frames");
    assert!(accepted_by.iter().all(|w| honest.contains(w)));
    let files = client.download(job, &dir.path().join("out")).await.unwrap();
    assert_eq!(files.len(), 10);
    // Without the patches: each frame equals a local Blender render.
    assert_clean_delivery(&*store, job, &files, &*renderer, &shot, &spec.settings).await;
    let first = inferix_gpu::codec::decode_png(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert!(
        first.alpha.as_ref().is_some_and(|a| a.contains(&0)),
        "the sky is delivered transparent"
    );

    let _ = stop.send(true);
    for n in nodes {
        let _ = n.await;
    }
    manager.shutdown().await;
}

/// A `.blend` still in 2×2 tiles: each tile is a border render of its own,
/// watermarked, challenged and cleaned inside the tile, and the stitched
/// frame the customer downloads equals a local Blender render of the whole
/// frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiled_blend_still_equals_the_frame_rendered_whole() {
    let blender = Blender::locate(None)
        .await
        .expect("blender installed (bash scripts/setup-blender.sh)");
    let dir = tempfile::tempdir().unwrap();
    let shot = build_scene(&blender, dir.path()).await;
    let renderer: Arc<dyn Renderer> = Arc::new(BlenderRenderer::new(
        blender.clone(),
        BlenderConfig::default(),
    ));
    let net = InProcNetwork::new();
    let (manager, store, blobs) = blender_manager(
        &net,
        &blender,
        dir.path().join("manager"),
        1,
        b"blender tiles",
    )
    .await;
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let mut nodes = spawn_verifiers(
        &net,
        &addr,
        1,
        Some(blobs.clone()),
        Some(renderer.clone()),
        dir.path(),
        &stopped,
    );
    for n in 101..103u128 {
        let w = blender_worker(&net, &addr, dir.path(), n, renderer.clone(), &blobs);
        nodes.push(tokio::spawn(w.run(stopped.clone())));
    }
    let client =
        Client::connect_with_blobs(&net.transport(NodeId(300)), &addr, None, blobs.clone())
            .await
            .unwrap();
    let scene = client.upload_scene(&shot).await.unwrap();
    let mut spec = JobSpec::new(scene, FrameRange::new(4, 4));
    spec.settings.width = 64;
    spec.settings.height = 48;
    spec.settings.samples = 8;
    spec.chunk_size = 1;
    spec.tiles = Some("2x2".parse().unwrap());
    let (job, _) = client.submit(&spec).await.unwrap();
    let mut events = client.watch(job).await.unwrap();
    inferix_tests::until_completed(&mut events, Duration::from_secs(900)).await;

    let tasks = store.tasks_of_job(job).await.unwrap();
    assert_eq!(tasks.len(), 4, "one task per tile");
    for t in &tasks {
        let region = spec.task_region(t.id.index).expect("a tile");
        let frames = &t.result.as_ref().expect("a result").frames;
        assert!(frames
            .iter()
            .all(|f| (f.width, f.height) == (region.width, region.height)));
    }
    let files = client.download(job, &dir.path().join("out")).await.unwrap();
    assert_eq!(files.len(), 1, "one stitched frame");
    assert_clean_delivery(&*store, job, &files, &*renderer, &shot, &spec.settings).await;

    let _ = stop.send(true);
    for n in nodes {
        let _ = n.await;
    }
    manager.shutdown().await;
}
