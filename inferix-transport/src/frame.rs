//! The wire format of envelopes on a byte stream.
//!
//! A frame is `[u32 length][u16 protocol version][payload]`, integers
//! big-endian, where `length` counts the bytes after itself (version and
//! payload) and the payload is the [`Envelope`] in postcard, a compact
//! non-self-describing serde codec. The version sits outside the payload so
//! that a peer of another version is told so instead of failing to decode,
//! and the length comes first so that a receiver can refuse an oversized
//! frame before reading or allocating it.
//!
//! Everything here is pure (no I/O), so that the decoder can be fuzzed.

use inferix_core::protocol::{Envelope, PROTOCOL_VERSION};

use crate::TransportError;

/// Largest frame (version and payload) accepted by default: large enough for
/// a blob chunk, small enough that a hostile peer cannot make a node buffer
/// much per connection.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024;

/// Bytes of the length prefix.
pub(crate) const LENGTH_BYTES: usize = 4;
/// Bytes of the version field.
const VERSION_BYTES: usize = 2;

/// Encodes `envelope` as one frame of the current protocol version.
///
/// Fails with [`TransportError::BadFrame`] when the frame would exceed
/// [`DEFAULT_MAX_FRAME_SIZE`], since no default peer would accept it.
pub fn encode_frame(envelope: &Envelope) -> Result<Vec<u8>, TransportError> {
    encode_frame_with(PROTOCOL_VERSION, envelope, DEFAULT_MAX_FRAME_SIZE)
}

/// Decodes one complete frame (length prefix included) of the current
/// protocol version, with the default size limit.
///
/// Never panics on any input: this is what a stranger controls.
pub fn decode_frame(bytes: &[u8]) -> Result<Envelope, TransportError> {
    let Some((prefix, body)) = bytes.split_first_chunk::<LENGTH_BYTES>() else {
        return Err(TransportError::BadFrame(format!(
            "{} bytes cannot hold a length prefix",
            bytes.len()
        )));
    };
    let len = check_length(u32::from_be_bytes(*prefix), DEFAULT_MAX_FRAME_SIZE)?;
    if body.len() != len {
        return Err(TransportError::BadFrame(format!(
            "length prefix says {len} bytes, frame has {}",
            body.len()
        )));
    }
    decode_body(body)
}

/// Encodes with an explicit version and limit (the connection's own limit;
/// tests forge other versions).
pub(crate) fn encode_frame_with(
    version: u16,
    envelope: &Envelope,
    max: u32,
) -> Result<Vec<u8>, TransportError> {
    let cannot = |e: postcard::Error| {
        TransportError::BadFrame(format!("cannot encode {}: {e}", envelope.body.kind()))
    };
    // Sizing first (cheap: byte payloads count as their length) refuses an
    // oversized message before encoding it, and lets a blob chunk be
    // written into one allocation instead of a doubling series of copies.
    let payload = postcard::experimental::serialized_size(envelope).map_err(cannot)?;
    let len = VERSION_BYTES + payload;
    if len > max as usize {
        return Err(TransportError::BadFrame(format!(
            "{} message of {len} bytes exceeds the {max}-byte frame limit",
            envelope.body.kind()
        )));
    }
    let mut buf = Vec::with_capacity(LENGTH_BYTES + len);
    buf.extend_from_slice(&[0; LENGTH_BYTES]);
    buf.extend_from_slice(&version.to_be_bytes());
    let mut buf = postcard::to_extend(envelope, buf).map_err(cannot)?;
    let len = buf.len() - LENGTH_BYTES;
    match u32::try_from(len) {
        Ok(l) if l <= max => {
            buf[..LENGTH_BYTES].copy_from_slice(&l.to_be_bytes());
            Ok(buf)
        }
        _ => Err(TransportError::BadFrame(format!(
            "{} message of {len} bytes exceeds the {max}-byte frame limit",
            envelope.body.kind()
        ))),
    }
}

/// Validates a length prefix before anything is read or allocated for it.
pub(crate) fn check_length(len: u32, max: u32) -> Result<usize, TransportError> {
    if (len as usize) < VERSION_BYTES {
        return Err(TransportError::BadFrame(format!(
            "frame of {len} bytes is shorter than its version field"
        )));
    }
    if len > max {
        return Err(TransportError::BadFrame(format!(
            "frame of {len} bytes exceeds the {max}-byte limit"
        )));
    }
    Ok(len as usize)
}

/// Decodes the bytes after the length prefix: version, then payload.
pub(crate) fn decode_body(body: &[u8]) -> Result<Envelope, TransportError> {
    let Some((version, payload)) = body.split_first_chunk::<VERSION_BYTES>() else {
        return Err(TransportError::BadFrame(
            "frame too short for its version field".into(),
        ));
    };
    let version = u16::from_be_bytes(*version);
    if version != PROTOCOL_VERSION {
        return Err(TransportError::UnsupportedVersion {
            theirs: version,
            ours: PROTOCOL_VERSION,
        });
    }
    let (envelope, rest) = postcard::take_from_bytes::<Envelope>(payload)
        .map_err(|e| TransportError::BadFrame(format!("undecodable envelope: {e}")))?;
    if !rest.is_empty() {
        return Err(TransportError::BadFrame(format!(
            "{} trailing bytes after the envelope",
            rest.len()
        )));
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use inferix_core::ids::{JobId, NodeId, TaskId};
    use inferix_core::image::Rect;
    use inferix_core::job::{FrameRange, Job, JobSpec, JobState, OutputFormat, SceneRef};
    use inferix_core::protocol::*;
    use inferix_core::renderer::{RenderSettings, SceneFormat};
    use inferix_core::task::{FrameOutput, TaskResult, TaskStatus};
    use inferix_core::ContentHash;

    use super::*;

    fn representative_messages() -> Vec<Message> {
        let hash = ContentHash::of(b"scene");
        let scene = SceneRef {
            blob: hash,
            format: SceneFormat::Gltf,
            file_name: "scene.glb".into(),
        };
        let spec = JobSpec::new(scene.clone(), FrameRange::new(1, 24));
        let task = TaskId::new(JobId(7), 3);
        let frame = FrameOutput {
            frame: 4,
            pixel_hash: hash,
            blob: ContentHash::of(b"png"),
            width: 64,
            height: 32,
            tile_root: ContentHash::of(b"tiles"),
        };
        let quote = Quote {
            estimated_ibm: 1.5,
            price_per_ibm: 10,
            total_price: 15,
            frames: 24,
            tasks: 5,
            warnings: vec![inferix_core::renderer::RenderWarning::new(
                "default-camera",
                "no camera",
            )],
        };
        vec![
            Message::Hello(Hello {
                role: Role::Worker,
                node: NodeId(42),
                ib: 123.25,
                tags: vec!["gpu".into(), "cuda".into()],
                device_class: "nvidia-h100".into(),
                token: Some("tok".into()),
                formats: vec![inferix_core::renderer::SceneFormat::Gltf],
            }),
            Message::Welcome {
                manager: NodeId(u128::MAX),
                max_blob_size: u64::MAX,
            },
            Message::Heartbeat,
            Message::Probe(inferix_core::protocol::AdmissionProbe {
                scene_glb: vec![0x67, 0x6c, 0x54, 0x46, 0, 1, 2],
                settings: RenderSettings {
                    seed: u64::MAX - 3,
                    ..RenderSettings::default()
                },
                frame: 1,
                deadline_ms: 30_000,
            }),
            Message::ProbeDone {
                png: vec![0x89, b'P', b'N', b'G'],
            },
            Message::TaskOffer(TaskAssignment {
                task,
                frames: vec![1, 2, 3],
                scene,
                settings: RenderSettings::default(),
                format: OutputFormat::Exr,
                deadline_ms: u64::MAX,
                attempt: 3,
                environment: Some(inferix_core::job::EnvironmentRef {
                    blob: ContentHash::of(b"studio"),
                    file_name: "studio.hdr".into(),
                }),
                region: Some(Rect::new(16, 8, 16, 8)),
            }),
            Message::TaskProgress {
                task,
                frame: 2,
                fraction: 0.5,
            },
            Message::TaskDone {
                task,
                result: TaskResult {
                    worker: NodeId(1),
                    frames: vec![frame.clone()],
                    render_ms: 99,
                    attempt: 3,
                    scene: ContentHash::of(b"prepared"),
                    device_class: "cubecl-pt/vulkan".into(),
                    public_key: vec![1; 32],
                    signature: vec![2; 64],
                },
            },
            Message::TaskFailed {
                task,
                error: "out of memory".into(),
                cause: inferix_core::protocol::FailureCause::Storage,
            },
            Message::VerifyOffer(VerificationAssignment {
                verification: 5,
                task,
                frames: vec![frame.clone()],
                width: 64,
                height: 32,
                format: OutputFormat::Png,
                watermark: vec![inferix_core::por::watermark::Patch {
                    rect: Rect::new(1, 2, 3, 4),
                    period_x: 25.0,
                    period_y: 21.0,
                    amplitude: 0.35,
                    origin: [16, 8],
                }],
                watermark_threshold: 5.0,
                challenges: vec![CropChallenge {
                    frame: 1,
                    rect: Rect::new(8, 8, 6, 4),
                }],
                scene: None,
                settings: RenderSettings::default(),
                worker_device_class: "cubecl-pt/vulkan".into(),
                crop_tolerance: 2,
                clean_scene: None,
                environment: None,
                region: Some(Rect::new(16, 8, 64, 32)),
            }),
            Message::VerifyDone(Verdict {
                verification: 5,
                task,
                passed: false,
                reasons: vec!["noise".into()],
                clean: vec![],
                inconclusive: Some("no renderer for .blend scenes".into()),
            }),
            Message::QuoteRequest { spec: spec.clone() },
            Message::Submitted {
                job: JobId(9),
                quote,
            },
            Message::StatusReply(Box::new(JobStatus {
                job: Job {
                    id: JobId(9),
                    spec,
                    state: JobState::Active,
                    created_ms: 1,
                    quoted_price: 15,
                    waiting_reason: None,
                    blocklist: Vec::new(),
                    history: Vec::new(),
                    warnings: vec![inferix_core::renderer::RenderWarning::new(
                        "default-environment",
                        "no lights",
                    )],
                    lease_copies_removed: false,
                    owner: None,
                    outputs: Vec::new(),
                },
                counts: vec![(TaskStatus::Queued, 3), (TaskStatus::Accepted, 2)],
                frames: vec![frame],
                next_task: Some(40),
                tasks: Vec::new(),
            })),
            Message::Event {
                job: JobId(9),
                event: JobEvent::TaskRejected {
                    task,
                    worker: NodeId(3),
                    reasons: vec!["cheat".into()],
                },
            },
            Message::Event {
                job: JobId(9),
                event: JobEvent::Cancelled,
            },
            Message::BlobChunk {
                data: vec![0, 1, 2, 255],
                last: true,
            },
            Message::BlobSizeReply { size: None },
            Message::BlobSizeReply {
                size: Some(1 << 40),
            },
            Message::Ok,
            Message::error(ErrorCode::VersionMismatch, "speak 1"),
        ]
    }

    #[test]
    fn representative_messages_round_trip_through_frames() {
        for (i, m) in representative_messages().into_iter().enumerate() {
            let e = Envelope::with_id(i as u64, m);
            let frame = encode_frame(&e).unwrap();
            assert_eq!(
                u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
                frame.len() - 4
            );
            assert_eq!(
                u16::from_be_bytes(frame[4..6].try_into().unwrap()),
                PROTOCOL_VERSION
            );
            assert_eq!(decode_frame(&frame).unwrap(), e, "{}", e.body.kind());
        }
    }

    /// Hashes travel as 32 raw bytes: a frame's commitment (three hashes)
    /// costs about a hundred bytes, where hex made it over two hundred.
    #[test]
    fn hashes_cost_their_bytes_on_the_wire() {
        let frames: Vec<FrameOutput> = (0..10_000u32)
            .map(|i| FrameOutput {
                frame: i,
                pixel_hash: ContentHash::of(&i.to_le_bytes()),
                blob: ContentHash::of(&(i + 1).to_le_bytes()),
                width: 1920,
                height: 1080,
                tile_root: ContentHash::of(&(i + 2).to_le_bytes()),
            })
            .collect();
        let e = Envelope::with_id(
            1,
            Message::TaskDone {
                task: TaskId::new(JobId(7), 3),
                result: TaskResult {
                    worker: NodeId(1),
                    frames,
                    render_ms: 99,
                    attempt: 1,
                    scene: ContentHash::of(b"prepared"),
                    device_class: "cubecl-pt/vulkan".into(),
                    public_key: vec![1; 32],
                    signature: vec![2; 64],
                },
            },
        );
        let frame = encode_frame(&e).unwrap();
        let per_frame = frame.len() / 10_000;
        assert!(
            (3 * 33..=115).contains(&per_frame),
            "{per_frame} bytes a frame"
        );
        assert_eq!(decode_frame(&frame).unwrap(), e);
    }

    #[test]
    fn garbage_truncated_and_trailing_bytes_are_bad_frames() {
        let good = encode_frame(&Envelope::with_id(1, Message::Heartbeat)).unwrap();
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0, 0],
            vec![0, 0, 0, 0],
            vec![0, 0, 0, 1, 0],
            good[..good.len() - 1].to_vec(),
            {
                let mut g = good.clone();
                g.push(0);
                g
            },
            {
                // Trailing byte inside a consistent length prefix.
                let mut g = good.clone();
                g.push(0);
                let l = (g.len() - 4) as u32;
                g[..4].copy_from_slice(&l.to_be_bytes());
                g
            },
            {
                // Unknown message variant index.
                let mut g = vec![0, 0, 0, 0, 0, 0, 1, 1, 200, 1];
                g[4..6].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
                let l = (g.len() - 4) as u32;
                g[..4].copy_from_slice(&l.to_be_bytes());
                g
            },
            vec![0xff; 64],
        ];
        for c in cases {
            assert!(
                matches!(decode_frame(&c), Err(TransportError::BadFrame(_))),
                "{c:?}"
            );
        }
    }

    #[test]
    fn oversized_frames_are_refused_from_the_prefix_alone() {
        let mut huge = (DEFAULT_MAX_FRAME_SIZE + 1).to_be_bytes().to_vec();
        huge.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        let err = decode_frame(&huge).unwrap_err();
        assert!(
            matches!(&err, TransportError::BadFrame(m) if m.contains("exceeds")),
            "{err}"
        );

        let big = Envelope::with_id(
            1,
            Message::BlobChunk {
                data: vec![7; 100],
                last: false,
            },
        );
        assert!(matches!(
            encode_frame_with(PROTOCOL_VERSION, &big, 50),
            Err(TransportError::BadFrame(_))
        ));
        let limit_sized = encode_frame_with(PROTOCOL_VERSION, &big, 1000).unwrap();
        assert!(matches!(
            check_length((limit_sized.len() - 4) as u32, 50),
            Err(TransportError::BadFrame(_))
        ));
    }

    /// What the fuzz target checks, on seeded random inputs so that it runs
    /// on stable in every test run: never a panic, and whatever decodes
    /// re-encodes to a frame that decodes to the same bytes again.
    #[test]
    fn seeded_random_and_mutated_frames_never_panic() {
        use rand::{Rng, SeedableRng};

        fn check(bytes: &[u8]) -> bool {
            let Ok(envelope) = decode_frame(bytes) else {
                return false;
            };
            let frame = encode_frame(&envelope).expect("a decoded envelope re-encodes");
            let again = decode_frame(&frame).expect("a re-encoded frame decodes");
            assert_eq!(encode_frame(&again).unwrap(), frame, "{bytes:?}");
            true
        }

        let mut rng = rand::rngs::StdRng::seed_from_u64(0x1f_e1_3a);
        let seeds: Vec<Vec<u8>> = representative_messages()
            .into_iter()
            .enumerate()
            .map(|(i, m)| encode_frame(&Envelope::with_id(i as u64, m)).unwrap())
            .collect();
        let (mut decoded, mut refused) = (0, 0);
        for i in 0..6000 {
            let bytes: Vec<u8> = match i % 3 {
                // Anything at all.
                0 => {
                    let n = rng.gen_range(0..96);
                    (0..n).map(|_| rng.gen()).collect()
                }
                // A consistent prefix and version before random payload, so
                // that the envelope decoder itself is exercised.
                1 => {
                    let n = rng.gen_range(0..64);
                    let mut b = ((n + 2) as u32).to_be_bytes().to_vec();
                    b.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
                    b.extend((0..n).map(|_| rng.gen::<u8>()));
                    b
                }
                // A real frame with a few bytes changed, cut or added, the
                // length prefix kept consistent half of the time.
                _ => {
                    let mut b = seeds[rng.gen_range(0..seeds.len())].clone();
                    for _ in 0..rng.gen_range(1..4) {
                        let at = rng.gen_range(LENGTH_BYTES..b.len());
                        match rng.gen_range(0..3) {
                            0 => b[at] = rng.gen(),
                            1 => {
                                b.remove(at);
                            }
                            _ => b.insert(at, rng.gen()),
                        }
                    }
                    if rng.gen() {
                        let l = (b.len() - LENGTH_BYTES) as u32;
                        b[..LENGTH_BYTES].copy_from_slice(&l.to_be_bytes());
                    }
                    b
                }
            };
            if check(&bytes) {
                decoded += 1;
            } else {
                refused += 1;
            }
        }
        // Both outcomes must occur, or the inputs miss the decoder.
        assert!(
            decoded > 20 && refused > 100,
            "{decoded} decoded, {refused} refused"
        );
    }

    #[test]
    fn another_protocol_version_is_a_typed_error() {
        let e = Envelope::with_id(1, Message::Heartbeat);
        let frame = encode_frame_with(PROTOCOL_VERSION + 1, &e, DEFAULT_MAX_FRAME_SIZE).unwrap();
        match decode_frame(&frame) {
            Err(TransportError::UnsupportedVersion { theirs, ours }) => {
                assert_eq!((theirs, ours), (PROTOCOL_VERSION + 1, PROTOCOL_VERSION));
            }
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
    }
}
