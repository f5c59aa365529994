//! What the renderer substitutes in a job's scene reaches the client: in
//! the quote and in the job's status (kept with the job record).

use inferix_core::job::{FrameRange, JobSpec};
use inferix_local::LocalNetwork;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quote_and_status_carry_the_renderers_substitutions() {
    let dir = tempfile::tempdir().unwrap();
    let net = LocalNetwork::builder()
        .workers(0)
        .verifiers(0)
        .data_dir(dir.path().join("net"))
        .start()
        .await
        .unwrap();
    let client = net.client().await.unwrap();
    let scene_path = dir.path().join("cube.glb");
    std::fs::write(&scene_path, inferix_gpu::builder::bare_cube_glb()).unwrap();
    let scene = client.upload_scene(&scene_path).await.unwrap();
    let mut spec = JobSpec::new(scene, FrameRange::new(1, 2));
    spec.settings.width = 32;
    spec.settings.height = 18;
    spec.settings.samples = 4;
    let quote = client.quote(&spec).await.unwrap();
    let mut codes: Vec<&str> = quote.warnings.iter().map(|w| w.code.as_str()).collect();
    codes.sort();
    assert_eq!(codes, ["default-camera", "default-environment"]);
    let (job, _) = client.submit(&spec).await.unwrap();
    let status = client.status(job).await.unwrap();
    assert_eq!(status.job.warnings, quote.warnings);
    net.shutdown().await;
}
