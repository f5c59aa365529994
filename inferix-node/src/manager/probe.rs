//! Admission probes: before a worker or verifier that announces glTF is
//! admitted, it renders a small scene at a seed drawn for it, and the
//! manager renders the same with its own probe renderer.
//!
//! "Can render glTF" is then shown, not declared: a node whose pixels
//! differ beyond the network's crop tolerance (or that does not answer in
//! time) is refused. And the device class its results are compared as is
//! the one its pixels show: a node that matches the manager's renderer
//! bit for bit is taken to be of that class whatever it claims, so a
//! worker cannot claim another class to be compared within a tolerance
//! instead of exactly.
//!
//! The probe is also a benchmark whose answer the manager knows: the time
//! from sending it to the answer, beside the manager's own render time at
//! its known index, gives the worker's speed
//! ([`inferix_manager::speed::probe_ib`]), which caps the index it
//! announced (with a wide margin: the probe is tiny) until its first task
//! is measured.

use inferix_core::image::Rgb8Image;
use inferix_core::job::OutputFormat;
use inferix_core::protocol::AdmissionProbe;
use inferix_core::renderer::{RenderRequest, RenderSettings, SceneFormat};

use super::*;

/// Probe frames: tiny, so a probe costs the manager and the node little.
const PROBE_SIZE: (u32, u32) = (32, 24);
/// Samples per pixel of a probe.
const PROBE_SAMPLES: u32 = 4;

/// A node's hello held back while it renders its probe.
pub(super) struct PendingProbe {
    pub(super) hello: Hello,
    pub(super) operator: Option<(String, inferix_core::account::NodeStanding)>,
    pub(super) sent: u64,
    /// The manager's own render, once done, and how long it took (ms).
    pub(super) expected: Option<(Result<Rgb8Image, String>, u64)>,
    /// The node's answer: its request id and PNG, and when it came.
    pub(super) answer: Option<(u64, Vec<u8>, u64)>,
}

impl State {
    /// Whether the node saying `h` is probed before it is admitted.
    pub(super) fn probes(&self, h: &Hello) -> bool {
        self.probe_scene.is_some()
            && self.prober.is_some()
            && matches!(h.role, Role::Worker | Role::Verifier)
            && h.formats.contains(&SceneFormat::Gltf)
    }

    /// Sends `conn` its probe instead of a welcome (as the answer to its
    /// hello `id`) and starts the manager's own render of it.
    pub(super) async fn start_probe(
        &mut self,
        conn: ConnId,
        id: u64,
        h: Hello,
        operator: Option<(String, inferix_core::account::NodeStanding)>,
    ) {
        let (Some(scene), Some(prober)) = (self.probe_scene.clone(), self.prober.clone()) else {
            return;
        };
        let settings = RenderSettings {
            width: PROBE_SIZE.0,
            height: PROBE_SIZE.1,
            samples: PROBE_SAMPLES,
            seed: rand::random(),
            ..RenderSettings::default()
        };
        let probe = AdmissionProbe {
            scene_glb: scene.to_vec(),
            settings: settings.clone(),
            frame: 1,
            deadline_ms: self.cfg.probe_timeout.as_millis() as u64,
        };
        let now = self.now();
        let Some(p) = self.peers.get_mut(&conn) else {
            return;
        };
        p.probing = Some(Box::new(PendingProbe {
            hello: h,
            operator,
            sent: now,
            expected: None,
            answer: None,
        }));
        self.reply(conn, id, Message::Probe(probe)).await;
        let inputs = self.inputs.clone();
        let dir = self.prep_dir.join("probes");
        let limit = self.cfg.probe_timeout;
        tokio::spawn(async move {
            // The manager's own render has the node's deadline too: a node
            // that answered is not held because the manager's renderer hangs.
            let started = std::time::Instant::now();
            let render = render_expected(&*prober.renderer, &scene, settings, &dir);
            let image = tokio::time::timeout(limit, render)
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "the manager's own probe render took over {} s",
                        limit.as_secs_f64()
                    ))
                });
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let _ = inputs
                .send(Input::ProbeExpected {
                    conn,
                    image,
                    elapsed_ms,
                })
                .await;
        });
    }

    /// The node on `conn` answered its probe (request `id`).
    pub(super) async fn on_probe_done(&mut self, conn: ConnId, id: u64, png: Vec<u8>) {
        let now = self.now();
        match self.peers.get_mut(&conn).and_then(|p| p.probing.as_mut()) {
            Some(pending) if pending.answer.is_none() => pending.answer = Some((id, png, now)),
            _ => {
                self.reply(
                    conn,
                    id,
                    Message::error(ErrorCode::UnexpectedMessage, "no admission probe was sent"),
                )
                .await;
                return;
            }
        }
        self.judge_probe(conn).await;
    }

    /// The manager's own render of `conn`'s probe is done.
    pub(super) async fn on_probe_expected(
        &mut self,
        conn: ConnId,
        image: Result<Rgb8Image, String>,
        elapsed_ms: u64,
    ) {
        if let Some(pending) = self.peers.get_mut(&conn).and_then(|p| p.probing.as_mut()) {
            pending.expected = Some((image, elapsed_ms));
            self.judge_probe(conn).await;
        }
    }

    /// Refuses nodes whose probe is overdue.
    pub(super) async fn expire_probes(&mut self) {
        let now = self.now();
        let limit = self.cfg.probe_timeout.as_millis() as u64;
        let late: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.probing
                    .as_ref()
                    .is_some_and(|pp| pp.answer.is_none() && now.saturating_sub(pp.sent) > limit)
            })
            .map(|(c, _)| *c)
            .collect();
        for conn in late {
            warn!(conn, "admission probe not answered in time; refused");
            self.send(
                conn,
                Envelope::push(Message::error(
                    ErrorCode::Unauthorized,
                    format!(
                        "the admission render was not answered within {} s",
                        limit / 1000
                    ),
                )),
            )
            .await;
            self.refuse(conn, "admission probe not answered").await;
        }
    }

    /// Admits or refuses `conn` once both renders of its probe are in.
    async fn judge_probe(&mut self, conn: ConnId) {
        let ready = self
            .peers
            .get(&conn)
            .and_then(|p| p.probing.as_ref())
            .is_some_and(|pp| pp.expected.is_some() && pp.answer.is_some());
        if !ready {
            return;
        }
        let Some(pending) = self.peers.get_mut(&conn).and_then(|p| p.probing.take()) else {
            return;
        };
        let PendingProbe {
            mut hello,
            operator,
            expected,
            answer,
            sent,
        } = *pending;
        let (Some((expected, reference_ms)), Some((id, png, answered))) = (expected, answer) else {
            return;
        };
        let node = hello.node;
        let expected = match expected {
            Ok(img) => img,
            Err(why) => {
                // The manager's own trouble: the node is let in on its word,
                // as without a probe.
                warn!(?node, %why, "cannot render the admission probe; node admitted unprobed");
                self.finish_hello(conn, id, node, hello, None, operator)
                    .await;
                return;
            }
        };
        let tolerance = self.por.as_ref().map_or(2, |p| p.crop_tolerance);
        let reference = self
            .prober
            .as_ref()
            .map(|p| p.renderer.device_class_for(SceneFormat::Gltf))
            .unwrap_or_default();
        match probe_verdict(&expected, &png, tolerance, &reference, &hello.device_class) {
            Ok(observed) => {
                if observed != hello.device_class {
                    info!(?node, claimed = %hello.device_class, %observed, "device class taken from the admission probe");
                }
                self.observed_classes.insert(node, observed.clone());
                hello.device_class = observed;
                // The probe is also a benchmark with a known answer: how
                // fast the node answered caps the speed it announced.
                let reference_ib = self.prober.as_ref().map_or(0.0, |p| p.ib);
                let node_ms = answered.saturating_sub(sent).max(1);
                if let (Role::Worker, Some(ib)) = (
                    hello.role,
                    inferix_manager::speed::probe_ib(reference_ib, reference_ms, node_ms),
                ) {
                    info!(
                        ?node,
                        announced = hello.ib,
                        probed = ib,
                        node_ms,
                        reference_ms,
                        "admission probe timed"
                    );
                    self.workers.admission_speed(node, ib);
                }
                self.finish_hello(conn, id, node, hello, None, operator)
                    .await;
            }
            Err(why) => {
                warn!(?node, %why, "admission probe failed; refused");
                self.reply(conn, id, Message::error(ErrorCode::Unauthorized, why))
                    .await;
                self.refuse(conn, "admission probe failed").await;
            }
        }
    }
}

/// The manager's render of a probe, through the PNG a node sends.
async fn render_expected(
    renderer: &dyn Renderer,
    scene: &[u8],
    settings: RenderSettings,
    dir: &std::path::Path,
) -> Result<Rgb8Image, String> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| e.to_string())?;
    let path = dir.join(format!("probe-{}.glb", ContentHash::of(scene)));
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        // Written aside and renamed into place: a probe starting while
        // another writes the file must never read half of it (it would
        // then let its node in unprobed).
        let aside = dir.join(format!(
            "probe-{}.{}.tmp",
            ContentHash::of(scene),
            rand::random::<u64>()
        ));
        tokio::fs::write(&aside, scene)
            .await
            .map_err(|e| e.to_string())?;
        tokio::fs::rename(&aside, &path)
            .await
            .map_err(|e| e.to_string())?;
    }
    let frames = renderer
        .render(RenderRequest {
            scene: path,
            format: SceneFormat::Gltf,
            frames: vec![1],
            settings,
            crop: None,
            progress: None,
        })
        .await
        .map_err(|e| e.to_string())?;
    let frame = frames.into_iter().next().ok_or("no frame rendered")?;
    let png =
        crate::frame_codec::encode(&frame.image, OutputFormat::Png).map_err(|e| e.to_string())?;
    crate::frame_codec::decode(&png, OutputFormat::Png, PROBE_SIZE).map_err(|e| e.to_string())
}

/// What a node's probe render says: the device class to compare its work
/// as, or why it is refused. Bit-identical to the manager's render
/// (`reference` class): that class, unless its claim already names it.
/// Within `tolerance`: its claim, marked unconfirmed if it named the
/// reference class (it does not render like it). Beyond: refused.
pub(super) fn probe_verdict(
    expected: &Rgb8Image,
    png: &[u8],
    tolerance: u8,
    reference: &str,
    claimed: &str,
) -> Result<String, String> {
    let theirs = crate::frame_codec::decode(png, OutputFormat::Png, PROBE_SIZE)
        .map_err(|e| format!("the admission render is not a {PROBE_SIZE:?} PNG: {e}"))?;
    let diff = expected.max_channel_diff(&theirs).unwrap_or(u8::MAX);
    let names_reference = claimed.split('+').any(|c| c == reference);
    if diff == 0 {
        Ok(if names_reference {
            claimed.to_string()
        } else {
            reference.to_string()
        })
    } else if diff <= tolerance {
        Ok(if names_reference {
            format!("unconfirmed:{claimed}")
        } else {
            claimed.to_string()
        })
    } else {
        Err(format!(
            "the admission render differs from the reference by {diff}/255 \
             (allowed {tolerance}): this node does not render glTF scenes as it announced"
        ))
    }
}
