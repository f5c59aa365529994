//! The demo network renders real frames with the cubecl path tracer: every
//! frame is delivered, decodes, has the requested size, and frames differ
//! (the scene is animated).

use std::sync::Arc;

use inferix_core::renderer::Renderer;
use inferix_gpu::codec::decode_png;
use inferix_local::demo::{run_demo, DemoOptions};

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

/// Busy loops on every core until dropped: other work on the machine.
struct CpuHogs {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl CpuHogs {
    fn start(n: usize) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut spins = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        spins = std::hint::black_box(spins.wrapping_add(1));
                    }
                    spins
                })
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for CpuHogs {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The demo on a machine whose every core is already busy: renders and
/// verifications take longer, and still every task is verified once and
/// every frame delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_completes_beside_programs_that_keep_every_core_busy() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _hogs = CpuHogs::start(cores);
    let dir = tempfile::tempdir().unwrap();
    let renderer: Arc<dyn Renderer> = Arc::new(inferix_gpu::PathTracer::new().unwrap());
    let opts = DemoOptions {
        data_dir: dir.path().join("data"),
        out_dir: dir.path().join("out"),
        width: 48,
        height: 27,
        samples: 2,
        chunk_size: 4,
        ..DemoOptions::default()
    };
    let summary = tokio::time::timeout(
        std::time::Duration::from_secs(1200),
        run_demo(&opts, renderer, |_| {}),
    )
    .await
    .expect("the demo finishes under load")
    .unwrap();
    assert_eq!(summary.files.len(), 24);
    assert_eq!(summary.accepted, summary.tasks, "every task verified once");
    assert_eq!(summary.rejected, 0, "honest workers are never rejected");
}
