//! Outputs made by the network: a job of real frames asks for an MP4, a
//! zip, a contact sheet and JPEGs; once every frame is accepted the
//! manager makes them where the blobs are, and the client downloads each.
//! ffprobe reads the MP4 back. With a manager pointed at an ffmpeg that
//! does not exist, only the MP4 fails, with the reason, and the job and
//! its frames are untouched. Needs `ffmpeg` and `ffprobe`
//! (`scripts/setup-ffmpeg.sh`).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use inferix_core::job::JobState;
use inferix_core::outputs::{OutputRequest, OutputState};
use inferix_node::ManagerConfig;
use inferix_tests::PorNetwork;

const LIMIT: Duration = Duration::from_secs(600);

/// A network with one honest worker and one rendering verifier (quorum 1),
/// the manager using `ffmpeg`; returns it with a client.
async fn network(secret: &[u8], ffmpeg: &str) -> (PorNetwork, inferix_node::Client) {
    PorNetwork::with_worker_and_verifier(
        secret,
        ManagerConfig {
            quorum: 1,
            ffmpeg: ffmpeg.into(),
            ..ManagerConfig::default()
        },
    )
    .await
}

/// `ffprobe`'s `key=value` lines about the first video stream of `file`.
fn probe(file: &Path) -> std::collections::HashMap<String, String> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,r_frame_rate,nb_read_frames,pix_fmt",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs (scripts/setup-ffmpeg.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn zip_entries(file: &Path) -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(file).unwrap()).unwrap();
    (0..z.len())
        .map(|i| {
            let mut e = z.by_index(i).unwrap();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (e.name().to_string(), bytes)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_animation_job_gets_its_video_archive_contact_sheet_and_jpegs() {
    let (n, client) = network(b"outputs", "ffmpeg").await;
    let mut spec = PorNetwork::demo_job(&client, 12, 4).await;
    spec.outputs = vec![
        OutputRequest::Mp4 { fps: 12 },
        OutputRequest::Zip,
        OutputRequest::ContactSheet {
            columns: 4,
            thumb_width: 32,
        },
        OutputRequest::Jpeg { quality: 80 },
    ];
    let (job, _) = client.submit(&spec).await.unwrap();
    let status = tokio::time::timeout(LIMIT, client.wait_outputs(job))
        .await
        .expect("outputs made in time")
        .unwrap();
    assert_eq!(status.job.state, JobState::Completed);
    let names: Vec<_> = status.job.outputs.iter().map(|o| o.name()).collect();
    assert_eq!(names, ["mp4", "zip", "contact-sheet", "jpeg"]);
    for o in &status.job.outputs {
        assert!(
            matches!(o.state, OutputState::Ready { size, .. } if size > 0),
            "{o:?}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let mp4 = client
        .download_output(job, "mp4", dir.path())
        .await
        .unwrap();
    let v = probe(&mp4);
    assert_eq!(v["codec_name"], "h264", "{v:?}");
    assert_eq!(v["pix_fmt"], "yuv420p", "{v:?}");
    assert_eq!((v["width"].as_str(), v["height"].as_str()), ("64", "48"));
    assert_eq!(v["r_frame_rate"], "12/1", "{v:?}");
    assert_eq!(v["nb_read_frames"], "12", "{v:?}");

    let frames = client
        .download(job, &dir.path().join("frames"))
        .await
        .unwrap();
    assert_eq!(frames.len(), 12);
    let zip = client
        .download_output(job, "zip", dir.path())
        .await
        .unwrap();
    let entries = zip_entries(&zip);
    let expected: Vec<String> = (1..=12).map(|f| format!("frame_{f:04}.png")).collect();
    assert_eq!(
        entries.iter().map(|e| e.0.clone()).collect::<Vec<_>>(),
        expected
    );
    for ((_, bytes), file) in entries.iter().zip(&frames) {
        assert_eq!(bytes, &std::fs::read(file).unwrap(), "{}", file.display());
    }

    let jpeg = client
        .download_output(job, "jpeg", dir.path())
        .await
        .unwrap();
    let jpegs = zip_entries(&jpeg);
    assert_eq!(jpegs.len(), 12);
    for (name, bytes) in &jpegs {
        assert!(
            name.starts_with("frame_") && name.ends_with(".jpg"),
            "{name}"
        );
        let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg).unwrap();
        assert_eq!((img.width(), img.height()), (64, 48), "{name}");
    }

    let sheet = client
        .download_output(job, "contact-sheet", dir.path())
        .await
        .unwrap();
    let sheet = inferix_codec::decode_png(&std::fs::read(sheet).unwrap()).unwrap();
    // 4 columns and 3 rows of 32x24 thumbnails, each with its label.
    assert_eq!((sheet.width, sheet.height), (4 + 4 * 36, 4 + 3 * 39));
    let _ = n.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_ffmpeg_fails_only_the_video_and_the_frames_still_download() {
    let (n, client) = network(b"outputs without ffmpeg", "/nonexistent/ffmpeg").await;
    let mut spec = PorNetwork::demo_job(&client, 4, 2).await;
    spec.outputs = vec![OutputRequest::Mp4 { fps: 24 }, OutputRequest::Zip];
    let (job, _) = client.submit(&spec).await.unwrap();
    let status = tokio::time::timeout(LIMIT, client.wait_outputs(job))
        .await
        .expect("outputs finished in time")
        .unwrap();
    assert_eq!(status.job.state, JobState::Completed);
    match &status.job.outputs[0].state {
        OutputState::Failed { reason } => {
            assert!(reason.contains("/nonexistent/ffmpeg"), "{reason}")
        }
        other => panic!("the mp4 should fail: {other:?}"),
    }
    assert!(status.job.outputs[1].blob().is_some(), "{status:?}");

    let dir = tempfile::tempdir().unwrap();
    let err = client
        .download_output(job, "mp4", dir.path())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("failed"), "{err}");
    let frames = client.download(job, dir.path()).await.unwrap();
    assert_eq!(frames.len(), 4);
    for f in &frames {
        let png = inferix_codec::decode_png(&std::fs::read(f).unwrap()).unwrap();
        assert_eq!((png.width, png.height), (64, 48));
    }
    let zip = client
        .download_output(job, "zip", dir.path())
        .await
        .unwrap();
    assert_eq!(zip_entries(&zip).len(), 4);
    let _ = n.stop.send(true);
}

/// An EXR job of a lightless, camera-less cube over a transparent
/// background asks for a zip: it holds one linear EXR per frame, with an
/// alpha channel that is empty where the background shows and covered on
/// the cube, and a JPEG sequence beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exr_job_with_a_transparent_background_gets_a_zip_of_exrs_with_alpha() {
    use inferix_core::job::{FrameRange, JobSpec, OutputFormat};
    use inferix_core::renderer::Background;
    use inferix_gpu::builder::{box_mesh, GltfBuilder, MaterialDesc, NodeDesc};

    let (n, client) = network(b"exr outputs", "ffmpeg").await;
    let mut b = GltfBuilder::new();
    let grey = b.material(MaterialDesc::default());
    let (p, normals, i) = box_mesh([0.5; 3], false);
    let cube = b.mesh(&p, Some(&normals), &i, grey);
    b.node(
        NodeDesc {
            mesh: Some(cube),
            ..Default::default()
        },
        true,
    );
    let scene = client
        .upload_scene_bytes(b.to_glb(), "cube.glb")
        .await
        .unwrap();
    let mut spec = JobSpec::new(scene, FrameRange::new(1, 3));
    spec.settings.width = 48;
    spec.settings.height = 36;
    spec.settings.samples = 8;
    spec.settings.background = Background::Transparent;
    spec.format = OutputFormat::Exr;
    spec.chunk_size = 3;
    spec.outputs = vec![
        OutputRequest::Zip,
        OutputRequest::Jpeg { quality: 90 },
        OutputRequest::ExrHalf,
    ];
    let (job, _) = client.submit(&spec).await.unwrap();
    let status = tokio::time::timeout(LIMIT, client.wait_outputs(job))
        .await
        .expect("outputs made in time")
        .unwrap();
    assert!(
        status.job.outputs.iter().all(|o| o.blob().is_some()),
        "{status:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let zip = client
        .download_output(job, "zip", dir.path())
        .await
        .unwrap();
    let entries = zip_entries(&zip);
    let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        ["frame_0001.exr", "frame_0002.exr", "frame_0003.exr"]
    );
    for (name, bytes) in &entries {
        let img = inferix_codec::decode_exr(bytes).unwrap();
        assert_eq!((img.width, img.height), (48, 36), "{name}");
        let alpha = img.alpha.as_ref().expect("an alpha channel");
        assert!(alpha.contains(&0.0), "{name}: background shows");
        assert!(alpha.iter().any(|a| *a > 0.99), "{name}: the cube covers");
    }
    let jpegs = zip_entries(
        &client
            .download_output(job, "jpeg", dir.path())
            .await
            .unwrap(),
    );
    assert_eq!(jpegs.len(), 3);
    // Half-float copies: the same frames within half precision, alpha
    // included, in smaller files.
    let halves = zip_entries(
        &client
            .download_output(job, "exr-half", dir.path())
            .await
            .unwrap(),
    );
    assert_eq!(halves.len(), 3);
    for ((name, full), (half_name, half)) in entries.iter().zip(&halves) {
        assert_eq!(name, half_name);
        assert!(half.len() < full.len(), "{name}");
        let (full, half) = (
            inferix_codec::decode_exr(full).unwrap(),
            inferix_codec::decode_exr(half).unwrap(),
        );
        for (a, b) in full.pixels.iter().zip(&half.pixels) {
            assert!((a - b).abs() <= a.abs() / 1024.0, "{name}: {a} became {b}");
        }
        let (fa, ha) = (full.alpha.unwrap(), half.alpha.unwrap());
        for (a, b) in fa.iter().zip(&ha) {
            assert!(
                (a - b).abs() <= 1.0 / 1024.0,
                "{name}: alpha {a} became {b}"
            );
        }
    }
    let _ = n.stop.send(true);
}
