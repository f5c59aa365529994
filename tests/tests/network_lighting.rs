//! A network job lit by the customer's own environment map, on a
//! transparent background, with Proof of Render on: the map travels with
//! the job as a blob, every worker and verifier lights the scene with it,
//! and the delivered frames carry alpha and equal a local render with the
//! same map and settings, pixel for pixel. A map the network cannot use is
//! refused at submission, before anything is leased.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use inferix_core::blob::{BlobStore, BlobStoreExt};
use inferix_core::ids::NodeId;
use inferix_core::image::Image;
use inferix_core::job::{EnvironmentRef, FrameRange, JobSpec};
use inferix_core::por::key::ManagerSecret;
use inferix_core::por::prepare::PorConfig;
use inferix_core::protocol::ErrorCode;
use inferix_core::renderer::{Background, RenderRequest, Renderer, SceneFormat};
use inferix_core::store::{MemoryTaskStore, TaskStore};
use inferix_gpu::builder::{box_mesh, GltfBuilder, MaterialDesc, NodeDesc};
use inferix_node::{Client, ClientError, ManagerBuilder, ManagerConfig, WorkerConfig, WorkerNode};
use inferix_storage::ObjectBlobStore;
use inferix_tests::{assert_clean_delivery, seeded_identity, spawn_verifiers, until_completed};
use inferix_transport::InProcNetwork;
use tokio::sync::watch;

/// A lightless, camera-less cube: the default camera frames it with empty
/// space around it, and only the environment lights it.
fn cube_glb() -> Vec<u8> {
    let mut b = GltfBuilder::new();
    let grey = b.material(MaterialDesc::default());
    let (p, n, i) = box_mesh([0.5; 3], false);
    let cube = b.mesh(&p, Some(&n), &i, grey);
    b.node(
        NodeDesc {
            mesh: Some(cube),
            ..Default::default()
        },
        true,
    );
    b.to_glb()
}

/// A strongly coloured sky (blue above, orange below) as an EXR, so that a
/// render lit by it differs from one lit by the default grey studio.
fn write_sky(dir: &Path) -> PathBuf {
    let (w, h) = (32u32, 16u32);
    let mut sky = Image::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let rgb = if y < h / 2 {
                [0.2, 0.4, 2.0]
            } else {
                [1.5, 0.6, 0.1]
            };
            sky.set(x, y, rgb);
        }
    }
    let path = dir.join("sky.exr");
    std::fs::write(&path, inferix_gpu::codec::encode_exr(&sky).unwrap()).unwrap();
    path
}

async fn local_render(
    tracer: &dyn Renderer,
    scene: &Path,
    settings: &inferix_core::renderer::RenderSettings,
) -> Image {
    tracer
        .render(RenderRequest {
            scene: scene.to_path_buf(),
            format: SceneFormat::Gltf,
            frames: vec![1],
            settings: settings.clone(),
            crop: None,
            progress: None,
        })
        .await
        .unwrap()
        .remove(0)
        .image
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_environment_lights_a_transparent_job_as_it_lights_a_local_render() {
    let scratch = tempfile::tempdir().unwrap();
    let net = InProcNetwork::new();
    let store: Arc<dyn TaskStore> = Arc::new(MemoryTaskStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::in_memory());
    let tracer: Arc<dyn Renderer> = Arc::new(inferix_gpu::PathTracer::new().unwrap());
    let manager = ManagerBuilder::new(
        Arc::new(net.transport(NodeId(1))),
        store.clone(),
        blobs.clone(),
    )
    .config(ManagerConfig {
        tick: Duration::from_millis(50),
        ..ManagerConfig::default()
    })
    .scratch_dir(scratch.path().join("manager"))
    .proof_of_render(PorConfig::new(ManagerSecret(b"lighting".to_vec())))
    .watermarker(Arc::new(inferix_gpu::GltfWatermarker))
    .inspector(Arc::new(inferix_gpu::GltfInspector))
    .build()
    .start()
    .await
    .unwrap();
    let addr = manager.addr().to_string();
    let (stop, stopped) = watch::channel(false);
    let verifiers = spawn_verifiers(
        &net,
        &addr,
        2,
        Some(blobs.clone()),
        Some(tracer.clone()),
        scratch.path(),
        &stopped,
    );
    let worker = WorkerNode::new(
        Arc::new(net.node(seeded_identity(100))),
        tracer.clone(),
        WorkerConfig {
            manager: addr.clone(),
            work_dir: scratch.path().join("worker"),
            heartbeat: Duration::from_millis(200),
            ..WorkerConfig::default()
        },
    )
    .with_blob_store(blobs.clone());
    let worker = tokio::spawn(worker.run(stopped.clone()));
    let client =
        Client::connect_with_blobs(&net.transport(NodeId(300)), &addr, None, blobs.clone())
            .await
            .unwrap();

    let local_scene = scratch.path().join("cube.glb");
    std::fs::write(&local_scene, cube_glb()).unwrap();
    let sky = write_sky(scratch.path());
    let scene = client.upload_scene(&local_scene).await.unwrap();
    let mut spec = JobSpec::new(scene, FrameRange::new(1, 2));
    spec.settings.width = 48;
    spec.settings.height = 36;
    spec.settings.samples = 8;
    spec.settings.background = Background::Transparent;
    spec.chunk_size = 1;

    // Refused at submission: a map that was never uploaded, and bytes that
    // are no environment map; nothing is leased for either.
    let mut missing = spec.clone();
    missing.environment = Some(EnvironmentRef {
        blob: inferix_core::ContentHash::of(b"never uploaded"),
        file_name: "sky.exr".into(),
    });
    match client.submit(&missing).await {
        Err(ClientError::Refused { code, message }) => {
            assert_eq!(code, ErrorCode::NotFound, "{message}");
            assert!(message.contains("environment map"), "{message}");
        }
        other => panic!("a missing map is refused: {other:?}"),
    }
    let garbage = blobs
        .put_bytes(b"#?RADIANCE but not really".to_vec())
        .await
        .unwrap();
    let mut unreadable = spec.clone();
    unreadable.environment = Some(EnvironmentRef {
        blob: garbage.hash,
        file_name: "sky.hdr".into(),
    });
    match client.submit(&unreadable).await {
        Err(ClientError::Refused { code, message }) => {
            assert_eq!(code, ErrorCode::InvalidRequest, "{message}");
            assert!(message.contains("cannot be read"), "{message}");
        }
        other => panic!("an unreadable map is refused: {other:?}"),
    }
    match client.upload_environment(&local_scene).await {
        Err(ClientError::UnknownEnvironmentFormat(_)) => {}
        other => panic!("a .glb is no environment map: {other:?}"),
    }

    spec.environment = Some(client.upload_environment(&sky).await.unwrap());
    let (job, quote) = client.submit(&spec).await.unwrap();
    assert!(
        !quote
            .warnings
            .iter()
            .any(|w| w.code == "default-environment"),
        "the customer's map lights the scene: {:?}",
        quote.warnings
    );
    let mut events = client.watch(job).await.unwrap();
    until_completed(&mut events, Duration::from_secs(600)).await;

    let files = client
        .download(job, &scratch.path().join("out"))
        .await
        .unwrap();
    assert_eq!(files.len(), 2);
    let mut local_settings = spec.settings.clone();
    local_settings.environment = Some(sky.clone());
    assert_clean_delivery(
        &*store,
        job,
        &files,
        &*tracer,
        &local_scene,
        &local_settings,
    )
    .await;

    // The frames are cut out: the cube opaque, the space around it clear.
    let delivered = inferix_gpu::codec::decode_png(&std::fs::read(&files[0]).unwrap()).unwrap();
    let alpha = delivered.alpha.as_ref().expect("delivered with alpha");
    assert!(alpha.contains(&0) && alpha.contains(&255), "cut out");
    // And the map did light it: the default studio renders another cube.
    let studio = local_render(&*tracer, &local_scene, &spec.settings).await;
    let lit = local_render(&*tracer, &local_scene, &local_settings).await;
    assert_ne!(studio.to_srgb8(), lit.to_srgb8());

    let _ = stop.send(true);
    let _ = worker.await;
    for v in verifiers {
        let _ = v.await;
    }
    manager.shutdown().await;
}
