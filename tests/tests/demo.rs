//! The demo network renders real frames with the cubecl path tracer: every
//! frame is delivered, decodes, has the requested size, and frames differ
//! (the scene is animated).

use std::sync::Arc;

use inferix_core::renderer::Renderer;
use inferix_gpu::codec::decode_png;
use inferix_node::demo::{run_demo, DemoOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_delivers_24_distinct_decodable_frames() {
    let dir = tempfile::tempdir().unwrap();
    let renderer: Arc<dyn Renderer> = Arc::new(inferix_gpu::PathTracer::new().unwrap());
    let opts = DemoOptions {
        data_dir: dir.path().join("data"),
        out_dir: dir.path().join("out"),
        width: 64,
        height: 36,
        samples: 2,
        chunk_size: 4,
        ..DemoOptions::default()
    };
    let mut events = 0;
    let summary = run_demo(&opts, renderer, |_| events += 1).await.unwrap();
    assert_eq!(summary.files.len(), 24);
    assert_eq!(summary.tasks, 6);
    assert_eq!(summary.accepted, 6, "every task verified once");
    assert_eq!(summary.rejected, 0, "honest workers are never rejected");
    assert!(events >= 7, "progress and completion were reported");
    assert_eq!(
        summary
            .frames_per_worker
            .iter()
            .map(|(_, _, n)| n)
            .sum::<usize>(),
        24
    );
    assert!(summary.quote.total_price > 0);
    let frames: Vec<_> = summary
        .files
        .iter()
        .map(|p| {
            assert!(p.starts_with(opts.out_dir.join(summary.job.to_string())));
            let img = decode_png(&std::fs::read(p).unwrap()).unwrap();
            assert_eq!((img.width, img.height), (64, 36));
            img
        })
        .collect();
    for w in frames.windows(2) {
        assert_ne!(w[0].pixels, w[1].pixels, "consecutive frames differ");
    }
    assert!(summary.to_string().contains("24 frames"));
}
