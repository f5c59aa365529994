//! The Proof-of-Render adversarial suite: seeded tasks rendered by honest
//! and cheating workers with the real path tracer, checked by the real
//! verifier code, reporting detection and false-rejection rates and what
//! verification costs next to rendering.
//!
//! Each task goes through the protocol's own steps: the manager derives the
//! lease key and watermarks a copy of the scene; the worker renders (or
//! cheats), uploads PNG frames and signs its commitment; the manager draws
//! the crop challenges from the key and that commitment; a verifier checks
//! the frames alone, then re-renders the crops.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inferix_core::blob::{BlobStore, BlobStoreExt};
use inferix_core::ids::{JobId, TaskId};
use inferix_core::image::{linear_to_srgb8, Image, Rect};
use inferix_core::job::{OutputFormat, SceneRef};
use inferix_core::por::key::ManagerSecret;
use inferix_core::por::merkle::TileTree;
use inferix_core::por::plan::{patches_for_lease, plan_verification};
use inferix_core::por::prepare::PorConfig;
use inferix_core::por::watermark::Patch;
use inferix_core::protocol::VerificationAssignment;
use inferix_core::renderer::{RenderRequest, RenderSettings, Renderer, SceneFormat};
use inferix_core::task::{FrameOutput, TaskResult};
use inferix_gpu::codec::{decode_png, encode_png};
use inferix_node::verifier::{verify, CropRenderer};
use inferix_storage::ObjectBlobStore;
use inferix_transport::NodeIdentity;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::work_share::work_share;

mod strategy;
pub use strategy::Strategy;

/// Size of a run.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Tasks per strategy.
    pub tasks: usize,
    /// Frames per task.
    pub frames_per_task: u32,
    /// Render settings of every job.
    pub settings: RenderSettings,
    /// Seed of task ids, frames and cheaters' randomness.
    pub seed: u64,
    /// Scratch folder.
    pub work_dir: PathBuf,
    /// Crop challenges per task and the area of each, when not the
    /// network's defaults: a run can measure another choice beside them.
    pub crops: Option<(usize, f64)>,
    /// Print progress and the time left to stderr.
    pub progress: bool,
    /// Measure the work each partial-frame cheat saves by timing renders
    /// at this multiple of the run's width and height (at the run's own
    /// size a render's fixed cost hides its pixels'); `None` takes each
    /// cheat's share of the frame's area instead.
    pub work_scale: Option<u32>,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        Self {
            tasks: 20,
            frames_per_task: 2,
            settings: RenderSettings {
                width: 160,
                height: 90,
                samples: 32,
                ..RenderSettings::default()
            },
            seed: 1,
            work_dir: std::env::temp_dir().join("inferix-por-adversarial"),
            crops: None,
            progress: false,
            work_scale: None,
        }
    }
}

/// Outcome of one strategy.
#[derive(Debug, Clone, Default)]
pub struct StrategyReport {
    /// Tasks run.
    pub tasks: usize,
    /// Tasks rejected by a verifier that checks the frames alone (it
    /// cannot answer the crop challenges: a task its checks do not reject
    /// is inconclusive to it, never passed).
    pub rejected_frames_only: usize,
    /// Tasks rejected by a verifier that also re-renders the crops.
    pub rejected: usize,
    /// Tasks the rendering verifier could not check (its renders failed).
    pub inconclusive: usize,
    /// Time the rendering verifier spent.
    pub verify_time: Duration,
    /// Time an honest worker spent rendering the same tasks.
    pub honest_render_time: Duration,
    /// One reason given, for the report.
    pub sample_reason: Option<String>,
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct SuiteReport {
    /// Per strategy.
    pub strategies: BTreeMap<Strategy, StrategyReport>,
    /// The fraction of an honest worker's rendering work each strategy
    /// saves.
    pub work_saved: BTreeMap<Strategy, f64>,
    /// Whether the partial-frame cheats' savings were measured (else they
    /// follow the cheap pixels' share of the area).
    pub work_measured: bool,
}

/// Cheats that save less of the work than this need not be caught every
/// time: they are caught as often as a crop lands on their cheap pixels,
/// and the stake makes them lose more than they save (see
/// `economy::cheat_odds`).
pub const SMALL_CHEAT: f64 = 0.25;

impl SuiteReport {
    /// The cheats that save some work but less than [`SMALL_CHEAT`], with
    /// the fraction they save.
    pub fn small_cheats(&self) -> impl Iterator<Item = (Strategy, f64)> + '_ {
        self.work_saved
            .iter()
            .filter(|(_, w)| **w > 0.0 && **w < SMALL_CHEAT)
            .map(|(s, w)| (*s, *w))
    }

    /// The least detection, at its lower 95 % bound, of the cheats that
    /// save at least `saving` of the work, and how many there are (honest
    /// work saves nothing and is never among them).
    pub fn least_detection_saving(&self, saving: f64) -> (f64, usize) {
        self.strategies
            .iter()
            .filter(|(s, _)| self.work_saved.get(s).is_some_and(|w| *w >= saving))
            .map(|(_, r)| wilson_interval(r.rejected, r.tasks).0)
            .fold((1.0, 0), |(least, n), lower| (least.min(lower), n + 1))
    }
}

impl fmt::Display for SuiteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| strategy | work saved | tasks | rejected, frames-only checks | rejected, with crop re-renders | 95 % bound | verifier time / render time |"
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|---:|---:|")?;
        for (s, r) in &self.strategies {
            let rate = |n: usize| 100.0 * n as f64 / r.tasks.max(1) as f64;
            let (lo, hi) = wilson_interval(r.rejected, r.tasks);
            let (label, bound) = if *s == Strategy::Honest {
                ("false rejection", format!("≤ {:.2} %", 100.0 * hi))
            } else {
                ("detection", format!("≥ {:.2} %", 100.0 * lo))
            };
            let saved = self.work_saved.get(s).copied().unwrap_or(0.0);
            let how = match s.cheap_part(1, 1, 1) {
                Some(_) if self.work_measured => " (timed)",
                Some(_) => " (by area)",
                None => "",
            };
            writeln!(
                f,
                "| {s} | {:.0} %{how} | {} | {:.0} % | {:.1} % ({label}) | {bound} | {:.3} |",
                100.0 * saved,
                r.tasks,
                rate(r.rejected_frames_only),
                rate(r.rejected),
                r.verify_time.as_secs_f64() / r.honest_render_time.as_secs_f64().max(1e-9),
            )?;
        }
        let (least, n) = self.least_detection_saving(SMALL_CHEAT);
        writeln!(
            f,
            "\nThe {n} cheats that save at least 25 % of the work: least detection ≥ {:.2} % at 95 % confidence.",
            100.0 * least
        )
    }
}

struct Suite {
    tracer: Arc<dyn Renderer>,
    blobs: Arc<dyn BlobStore>,
    cfg: PorConfig,
    opts: SuiteOptions,
    plain: PathBuf,
    worker: NodeIdentity,
    /// Renders of the original scene by frame and by whether they are the
    /// rough ones: the same for every task.
    plain_frames: Mutex<HashMap<(u32, bool), Image>>,
}

/// Runs every strategy on `opts.tasks` seeded tasks.
pub async fn run_suite(
    tracer: Arc<dyn Renderer>,
    opts: SuiteOptions,
) -> anyhow::Result<SuiteReport> {
    std::fs::create_dir_all(&opts.work_dir)?;
    let plain = opts.work_dir.join("scene.glb");
    std::fs::write(&plain, inferix_gpu::demo_scene_glb())?;
    let mut cfg = PorConfig::new(ManagerSecret(
        format!("adversarial-{}", opts.seed).into_bytes(),
    ));
    if let Some((per_task, area)) = opts.crops {
        cfg.challenges_per_task = per_task;
        cfg.challenge_area = area;
    }
    let suite = Suite {
        tracer,
        blobs: Arc::new(ObjectBlobStore::in_memory()),
        cfg,
        plain,
        worker: NodeIdentity::from_seed([opts.seed as u8; 32]),
        opts,
        plain_frames: Mutex::new(HashMap::new()),
    };
    let mut report = SuiteReport {
        work_saved: suite.work_saved().await?,
        work_measured: suite.opts.work_scale.is_some(),
        ..SuiteReport::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(suite.opts.seed);
    let last_first = inferix_gpu::DEMO_SCENE_FRAMES.saturating_sub(2 * suite.opts.frames_per_task);
    let started = Instant::now();
    let mut previous: Option<Vec<Image>> = None;
    for t in 0..suite.opts.tasks {
        let task = TaskId::new(JobId(suite.opts.seed as u128), t as u32);
        let first = rng.gen_range(1..=last_first.max(1));
        let frames: Vec<u32> = (first..first + suite.opts.frames_per_task).collect();
        let lease = suite.lease(task).await?;
        let honest_started = Instant::now();
        let honest = suite
            .render(&lease.scene_path, &frames, &suite.opts.settings)
            .await?;
        let honest_time = honest_started.elapsed();
        let renders = suite
            .task_renders(task, &lease, &frames, honest, previous.take())
            .await?;
        for s in Strategy::ALL {
            let images = suite.cheat(s, &lease, &renders, rng.gen());
            let (frames_only, with_crops, took) =
                suite.check(task, &lease, &frames, images).await?;
            let r = report.strategies.entry(s).or_default();
            r.tasks += 1;
            r.rejected_frames_only +=
                usize::from(!frames_only.passed && frames_only.inconclusive.is_none());
            r.rejected += usize::from(!with_crops.passed && with_crops.inconclusive.is_none());
            r.inconclusive += usize::from(with_crops.inconclusive.is_some());
            r.verify_time += took;
            r.honest_render_time += honest_time;
            if r.sample_reason.is_none() {
                r.sample_reason = with_crops.reasons.first().cloned();
            }
        }
        previous = Some(renders.honest);
        let done = t + 1;
        if suite.opts.progress && (done % 25 == 0 || done == suite.opts.tasks) {
            let elapsed = started.elapsed().as_secs_f64();
            let left = elapsed / done as f64 * (suite.opts.tasks - done) as f64;
            eprintln!(
                "{done}/{} tasks, {:.0} s, about {:.0} s left",
                suite.opts.tasks, elapsed, left
            );
        }
    }
    Ok(report)
}

/// The renders of one task that the strategies are made of. A cheater's
/// renders depend only on the scene, the frames and the settings, so each
/// is rendered once per task and spliced or copied by every strategy that
/// uses it, and the original scene's (the same for every task) once per
/// frame for the whole run: a task's renders cost about two honest ones
/// whatever the number of strategies.
struct TaskRenders {
    honest: Vec<Image>,
    /// A quarter of the samples, the lease's scene.
    quarter_samples: Vec<Image>,
    /// An eighth of the samples, the lease's scene.
    eighth_samples: Vec<Image>,
    /// One sample, the lease's scene.
    one_sample: Vec<Image>,
    /// Half the resolution at full samples, upscaled; the lease's scene.
    half_resolution: Vec<Image>,
    /// The original scene (no patches) at the job's settings.
    plain: Vec<Image>,
    /// The original scene at one sample and half the resolution, upscaled.
    plain_rough: Vec<Image>,
    /// An honest render of another task (the one before, under another
    /// key).
    other: Vec<Image>,
}

/// A lease: its patches and the watermarked scene copy./// A lease: its patches and the watermarked scene copy.
struct Lease {
    patches: Vec<Patch>,
    scene_path: PathBuf,
    scene_blob: inferix_core::ContentHash,
}

impl Suite {
    async fn lease(&self, task: TaskId) -> anyhow::Result<Lease> {
        let s = &self.opts.settings;
        let patches = patches_for_lease(&self.cfg, task, 1, s.width, s.height);
        let marked = inferix_gpu::watermark::watermark_gltf(
            &std::fs::read(&self.plain)?,
            &self.plain,
            &patches,
            s,
        )?;
        let scene_path = self.opts.work_dir.join(format!("{task}.glb"));
        std::fs::write(&scene_path, &marked)?;
        let scene_blob = self.blobs.put_bytes(marked).await?.hash;
        Ok(Lease {
            patches,
            scene_path,
            scene_blob,
        })
    }

    /// What each strategy saves of an honest worker's work: measured on
    /// the original scene's middle frame for partial-frame cheats when
    /// `work_scale` is set, by the cheap pixels' share of the area
    /// otherwise.
    async fn work_saved(&self) -> anyhow::Result<BTreeMap<Strategy, f64>> {
        let job = &self.opts.settings;
        let mut saved = BTreeMap::new();
        for s in Strategy::ALL {
            let share = match (
                s.cheap_part(job.width, job.height, job.samples),
                self.opts.work_scale,
            ) {
                (None, _) => 0.0,
                (Some(_), Some(scale)) => {
                    let big = RenderSettings {
                        width: job.width * scale.max(1),
                        height: job.height * scale.max(1),
                        ..job.clone()
                    };
                    let (cheap, _) = s
                        .cheap_part(big.width, big.height, big.samples)
                        .expect("partial");
                    let frame = inferix_gpu::DEMO_SCENE_FRAMES / 2;
                    work_share(&*self.tracer, &self.plain, frame, &big, &cheap, 3).await?
                }
                (Some((cheap, _)), None) => {
                    let area: u64 = cheap.iter().map(|r| r.area()).sum();
                    area as f64 / (job.width as f64 * job.height as f64)
                }
            };
            saved.insert(
                s,
                s.work_saved(self.opts.frames_per_task, job.samples, share),
            );
        }
        Ok(saved)
    }

    async fn render(
        &self,
        scene: &Path,
        frames: &[u32],
        settings: &RenderSettings,
    ) -> anyhow::Result<Vec<Image>> {
        let req = RenderRequest {
            scene: scene.to_path_buf(),
            format: SceneFormat::Gltf,
            frames: frames.to_vec(),
            settings: settings.clone(),
            crop: None,
            progress: None,
        };
        Ok(self
            .tracer
            .render(req)
            .await?
            .into_iter()
            .map(|f| f.image)
            .collect())
    }

    async fn task_renders(
        &self,
        task: TaskId,
        lease: &Lease,
        frames: &[u32],
        honest: Vec<Image>,
        previous: Option<Vec<Image>>,
    ) -> anyhow::Result<TaskRenders> {
        let job = &self.opts.settings;
        let (w, h) = (job.width, job.height);
        let scene = &lease.scene_path;
        let other = match previous {
            Some(other) => other,
            None => {
                let other = TaskId::new(task.job, task.index + 100_000);
                let other_lease = self.lease(other).await?;
                self.render(&other_lease.scene_path, frames, job).await?
            }
        };
        Ok(TaskRenders {
            quarter_samples: self
                .render(scene, frames, &self.cheap((job.samples / 4).max(1), 1))
                .await?,
            eighth_samples: self
                .render(scene, frames, &self.cheap((job.samples / 8).max(1), 1))
                .await?,
            one_sample: self.render(scene, frames, &self.cheap(1, 1)).await?,
            half_resolution: self
                .render(scene, frames, &self.cheap(job.samples, 2))
                .await?
                .iter()
                .map(|i| upscale(i, w, h))
                .collect(),
            plain: self.plain_render(frames, false).await?,
            plain_rough: self.plain_render(frames, true).await?,
            other,
            honest,
        })
    }

    /// The job's settings at `samples` samples and `1/scale` of the
    /// resolution: what a cheater renders instead.
    fn cheap(&self, samples: u32, scale: u32) -> RenderSettings {
        let job = &self.opts.settings;
        RenderSettings {
            width: (job.width / scale).max(1),
            height: (job.height / scale).max(1),
            samples,
            ..job.clone()
        }
    }

    /// The original scene's `frames`, at the job's settings or (`rough`)
    /// at one sample and half the resolution, upscaled; each frame
    /// rendered once per run.
    async fn plain_render(&self, frames: &[u32], rough: bool) -> anyhow::Result<Vec<Image>> {
        let missing: Vec<u32> = {
            let cache = self.plain_frames.lock().expect("not poisoned");
            frames
                .iter()
                .copied()
                .filter(|f| !cache.contains_key(&(*f, rough)))
                .collect()
        };
        if !missing.is_empty() {
            let job = &self.opts.settings;
            let settings = if rough { self.cheap(1, 2) } else { job.clone() };
            let rendered = self.render(&self.plain, &missing, &settings).await?;
            let mut cache = self.plain_frames.lock().expect("not poisoned");
            for (f, img) in missing.into_iter().zip(rendered) {
                let img = if rough {
                    upscale(&img, job.width, job.height)
                } else {
                    img
                };
                cache.insert((f, rough), img);
            }
        }
        let cache = self.plain_frames.lock().expect("not poisoned");
        Ok(frames.iter().map(|f| cache[&(*f, rough)].clone()).collect())
    }

    fn cheat(&self, s: Strategy, lease: &Lease, r: &TaskRenders, seed: u64) -> Vec<Image> {
        let (w, h) = (self.opts.settings.width, self.opts.settings.height);
        let frames = r.honest.len();
        match s {
            Strategy::Honest => r.honest.clone(),
            Strategy::FewerSamples => r.quarter_samples.clone(),
            Strategy::LowResUpscaled => r.half_resolution.clone(),
            Strategy::NeighbourCopy => vec![r.honest[0].clone(); frames],
            Strategy::Blank => {
                let mut img = Image::new(w, h);
                for y in 0..h {
                    for x in 0..w {
                        img.set(x, y, [0.2, 0.2, 0.2]);
                    }
                }
                vec![img; frames]
            }
            Strategy::Noise => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                (0..frames)
                    .map(|_| {
                        let mut img = Image::new(w, h);
                        for y in 0..h {
                            for x in 0..w {
                                img.set(x, y, [rng.gen(), rng.gen(), rng.gen()]);
                            }
                        }
                        img
                    })
                    .collect()
            }
            Strategy::OtherTaskOutput => r.other.clone(),
            Strategy::PatchesRemoved => r.plain.clone(),
            Strategy::PaintedWatermark => {
                let mut imgs = r.plain_rough.clone();
                for img in &mut imgs {
                    paint_patches(img, &lease.patches);
                }
                imgs
            }
            Strategy::OneCheapFrame => {
                let mut out = r.honest.clone();
                out[0] = r.quarter_samples[0].clone();
                out
            }
            s @ (Strategy::PartialTiles | Strategy::CheapBorder | Strategy::CheapBand) => {
                let samples = self.opts.settings.samples;
                let (cheap, n) = s.cheap_part(w, h, samples).expect("a partial cheat");
                let rough = if n == 1 {
                    r.one_sample.clone()
                } else {
                    r.eighth_samples.clone()
                };
                splice(&r.honest, rough, |x, y| {
                    !cheap.iter().any(|c| c.overlaps(&Rect::new(x, y, 1, 1)))
                })
            }
        }
    }

    /// Uploads and commits to `images` as a worker does, then verifies the
    /// result without and with crop re-rendering.
    async fn check(
        &self,
        task: TaskId,
        lease: &Lease,
        frames: &[u32],
        images: Vec<Image>,
    ) -> anyhow::Result<(
        inferix_core::protocol::Verdict,
        inferix_core::protocol::Verdict,
        Duration,
    )> {
        let mut outputs = Vec::new();
        for (frame, img) in frames.iter().zip(images) {
            let png = encode_png(&img.to_srgb8());
            let decoded = decode_png(&png)?;
            let blob = self.blobs.put_bytes(png).await?.hash;
            outputs.push(FrameOutput {
                frame: *frame,
                pixel_hash: decoded.pixel_hash(),
                blob,
                width: decoded.width,
                height: decoded.height,
                tile_root: TileTree::build(&decoded).root(),
            });
        }
        let mut result = TaskResult {
            worker: self.worker.node_id(),
            frames: outputs,
            render_ms: 0,
            attempt: 1,
            scene: lease.scene_blob,
            device_class: self.tracer.device_class(),
            public_key: Vec::new(),
            signature: Vec::new(),
        };
        result.sign(task, &self.worker);
        inferix_transport::verify_result(task, &result)?;
        let s = &self.opts.settings;
        let plan = plan_verification(&self.cfg, task, &result, s.width, s.height, true);
        let assignment = VerificationAssignment {
            verification: 1,
            task,
            frames: result.frames.clone(),
            width: s.width,
            height: s.height,
            format: OutputFormat::Png,
            watermark: plan.watermark,
            watermark_threshold: self.cfg.threshold,
            challenges: plan.challenges,
            scene: Some(SceneRef {
                blob: lease.scene_blob,
                format: SceneFormat::Gltf,
                file_name: "scene.glb".into(),
            }),
            settings: s.clone(),
            worker_device_class: result.device_class.clone(),
            crop_tolerance: self.cfg.crop_tolerance,
            clean_scene: None,
            environment: None,
            region: None,
        };
        let frames_only = verify(&*self.blobs, None, &assignment).await;
        let crops = CropRenderer {
            renderer: self.tracer.clone(),
            work_dir: self.opts.work_dir.join("verifier"),
        };
        let started = Instant::now();
        let with_crops = verify(&*self.blobs, Some(&crops), &assignment).await;
        Ok((frames_only, with_crops, started.elapsed()))
    }
}

/// Each cheap frame of `rough` with the pixels `keep` names taken from the
/// honest render.
fn splice(honest: &[Image], rough: Vec<Image>, keep: impl Fn(u32, u32) -> bool) -> Vec<Image> {
    honest
        .iter()
        .zip(rough)
        .map(|(good, mut bad)| {
            for y in 0..good.height {
                for x in 0..good.width {
                    if keep(x, y) {
                        bad.set(x, y, good.get(x, y));
                    }
                }
            }
            bad
        })
        .collect()
}

fn upscale(img: &Image, w: u32, h: u32) -> Image {
    let mut out = Image::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let sx = (x * img.width / w).min(img.width - 1);
            let sy = (y * img.height / h).min(img.height - 1);
            out.set(x, y, img.get(sx, sy));
        }
    }
    out
}

/// Paints each patch's pattern where its quad projects, as a cheater who
/// read the watermarked scene would.
fn paint_patches(img: &mut Image, patches: &[Patch]) {
    for p in patches {
        for y in p.rect.y..p.rect.y + p.rect.height {
            for x in p.rect.x..p.rect.x + p.rect.width {
                let v = inferix_core::image::srgb8_to_linear(linear_to_srgb8(p.radiance(x, y)));
                img.set(x, y, [v, v, v]);
            }
        }
    }
}

/// The Wilson score interval at 95 % confidence for `hits` of `n`: the
/// range the true rate lies in, given what was seen (0 and n hits give a
/// one-sided bound that narrows as n grows: about 3/n).
pub fn wilson_interval(hits: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_964f64;
    let n = n as f64;
    let p = hits as f64 / n;
    let centre = p + z * z / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    let denom = 1.0 + z * z / n;
    (
        ((centre - spread) / denom).max(0.0),
        ((centre + spread) / denom).min(1.0),
    )
}

#[cfg(test)]
mod tests {
    use super::wilson_interval;

    #[test]
    fn wilson_bounds_follow_the_sample_size() {
        let (lo, hi) = wilson_interval(0, 3_000);
        assert_eq!(lo, 0.0);
        assert!(hi < 0.0013 && hi > 0.001, "{hi}");
        let (lo, _) = wilson_interval(3_000, 3_000);
        assert!(lo > 0.998, "{lo}");
        let (lo, hi) = wilson_interval(50, 100);
        assert!(
            (lo - 0.404).abs() < 0.002 && (hi - 0.596).abs() < 0.002,
            "{lo} {hi}"
        );
        assert_eq!(wilson_interval(0, 0), (0.0, 1.0));
    }
}
