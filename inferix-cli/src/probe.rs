//! The manager's quote probe: the renderers a worker would use, timed on a
//! small render of each submitted scene, so that a quote follows the
//! scene's real cost rather than its pixel count.

use std::path::Path;
use std::sync::Arc;

use inferix_core::renderer::Renderer;
use inferix_gpu::blender::SandboxPolicy;

use crate::net_cli::renderers;

/// The probe renderer and its device's IB: `ib` when given, else the IB
/// measured by the bench at the first start and kept in
/// `DATA_DIR/probe-ib`. `None` (quotes then use a fixed cost per
/// pixel-sample) when this machine has no device to render with.
pub(crate) async fn quote_probe(
    data_dir: &Path,
    ib: Option<f64>,
    sandbox: SandboxPolicy,
) -> anyhow::Result<Option<(Arc<dyn Renderer>, f64)>> {
    let tracer = match inferix_gpu::PathTracer::new() {
        Ok(t) => Arc::new(t),
        Err(e) => {
            tracing::warn!(
                "no render device for quote probes ({e}); quotes use a fixed cost per pixel-sample"
            );
            return Ok(None);
        }
    };
    let ib = match ib {
        Some(ib) => ib,
        None => measured_ib(data_dir, &tracer).await?,
    };
    let (renderer, _) = renderers(tracer, sandbox).await?;
    Ok(Some((renderer, ib)))
}

/// The IB kept in `DATA_DIR/probe-ib`, measured (and kept) when missing.
async fn measured_ib(data_dir: &Path, tracer: &inferix_gpu::PathTracer) -> anyhow::Result<f64> {
    let path = data_dir.join("probe-ib");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(ib) = text.trim().parse::<f64>() {
            if ib.is_finite() && ib > 0.0 {
                return Ok(ib);
            }
        }
    }
    eprintln!("measuring this machine's IB for quote probes (once; --probe-ib skips it)");
    let ib = inferix_gpu::bench::run_bench(tracer).await?.ib;
    std::fs::write(&path, format!("{ib}\n"))?;
    Ok(ib)
}
