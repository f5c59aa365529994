//! The Blender add-on (`integrations/blender/inferix_render`) against a
//! real network: a headless Blender installs the zip that
//! `scripts/build-blender-addon.sh` builds, opens a scene with an external
//! texture, and renders frames 5-7 on a local network through the HTTP
//! API. The frames land where Blender would write them
//! (`scene.render.frame_path`, so `out/frame_0005.png` …) at the add-on's
//! resolution percentage; the user's file and session are not changed by
//! packing; a wrong key, an unreachable manager and a malformed URL are
//! Blender error reports, never tracebacks.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use inferix_core::store::accounts::Accounts;
use inferix_gpu::blender::{Blender, BlenderConfig, BlenderRenderer};
use inferix_http::HttpApi;
use inferix_local::LocalNetwork;

/// A 128×96 scene, frames 5-7, a cube textured by an external PNG next to
/// the .blend (relative path), output to `//out/frame_`.
const BUILD_SCENE: &str = r#"
import bpy, math, os, sys
blend = sys.argv[sys.argv.index("--") + 1]
folder = os.path.dirname(blend)
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.preferences.filepaths.save_version = 0
sc = bpy.context.scene
sc.render.engine = "CYCLES"
sc.cycles.samples = 4
sc.render.resolution_x, sc.render.resolution_y = 128, 96
sc.render.resolution_percentage = 100
sc.frame_start, sc.frame_end = 5, 7
sc.render.filepath = "//out/frame_"
sc.render.image_settings.file_format = "PNG"
img = bpy.data.images.new("tex", 4, 4)
img.pixels = [v for i in range(16) for v in ((1, 0.8, 0.1, 1) if i % 2 else (0.1, 0.2, 1, 1))]
img.filepath_raw = os.path.join(folder, "tex.png")
img.file_format = "PNG"
img.save()
bpy.ops.mesh.primitive_plane_add(size=10)
bpy.ops.mesh.primitive_cube_add(size=1.5, location=(0, 0, 0.75))
cube = bpy.context.object
cube.keyframe_insert("rotation_euler", frame=5)
cube.rotation_euler = (0, 0, math.pi / 2)
cube.keyframe_insert("rotation_euler", frame=7)
mat = bpy.data.materials.new("tex")
mat.use_nodes = True
nodes = mat.node_tree.nodes
node = nodes.new("ShaderNodeTexImage")
node.image = img
mat.node_tree.links.new(node.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])
cube.data.materials.append(mat)
bpy.ops.object.light_add(type="SUN", rotation=(0.6, 0.2, 0.5))
bpy.context.object.data.energy = 3
bpy.ops.object.camera_add(location=(5, -5, 4), rotation=(math.radians(60), 0, math.radians(45)))
sc.camera = bpy.context.object
w = bpy.data.worlds.new("w")
sc.world = w
w.use_nodes = True
w.node_tree.nodes["Background"].inputs["Color"].default_value = (0.05, 0.07, 0.1, 1)
bpy.ops.wm.save_as_mainfile(filepath=blend)
bpy.ops.file.make_paths_relative()
bpy.ops.wm.save_mainfile()
assert bpy.data.images["tex"].filepath.startswith("//"), bpy.data.images["tex"].filepath
"#;

/// Installs and enables the add-on from the zip, opens the scene, then
/// runs each case (`NAME URL KEY` triples after the zip and the scene):
/// preferences, the panel's settings, the button, and for a render
/// `wait()`, the function the panel's timer runs, to the job's end. Prints
/// `INFERIX-TEST` lines for the test.
const DRIVE: &str = r#"
import bpy, sys
args = sys.argv[sys.argv.index("--") + 1:]
zip_path, blend, rest = args[0], args[1], args[2:]
bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
bpy.ops.preferences.addon_enable(module="inferix_render")
import inferix_render
bpy.ops.wm.open_mainfile(filepath=blend)
prefs = bpy.context.preferences.addons["inferix_render"].preferences
for i in range(0, len(rest), 3):
    case = dict(zip(("name", "url", "key"), rest[i:i + 3]))
    prefs.url, prefs.api_key = case["url"], case["key"]
    settings = bpy.context.scene.inferix
    settings.resolution_percentage = 50
    settings.use_scene_samples = True
    settings.priority = 2
    try:
        bpy.ops.inferix.render()
    except RuntimeError as e:
        print("INFERIX-TEST %s refused: %s" % (case["name"], str(e).strip()))
        continue
    inferix_render.Progress.job.interval = 0.2
    print("INFERIX-TEST %s ended: %s" % (case["name"], inferix_render.wait()))
    print("INFERIX-TEST %s message: %s" % (case["name"], inferix_render.Progress.message))
image = bpy.data.images["tex"]
print("INFERIX-TEST session: packed=%s dirty=%s path=%s image=%s" % (
    image.packed_file is not None, bpy.data.is_dirty, bpy.data.filepath, image.filepath))
"#;

/// Runs Blender headless on `script` (saved as `name` in `dir`) with fresh
/// user folders under `dir`; returns whether it exited 0 and its output
/// (stdout then stderr).
async fn blender(
    exe: &Path,
    dir: &Path,
    (name, script): (&str, &str),
    args: &[&str],
) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    let (config, scripts) = (dir.join("user-config"), dir.join("user-scripts"));
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&scripts).unwrap();
    let child = tokio::process::Command::new(exe)
        .args(["-b", "--factory-startup", "--python-exit-code", "1"])
        .arg("--python")
        .arg(&path)
        .arg("--")
        .args(args)
        .env("BLENDER_USER_CONFIG", &config)
        .env("BLENDER_USER_SCRIPTS", &scripts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start blender");
    let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("blender ran over 5 minutes")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The text after `INFERIX-TEST {key}: ` in Blender's output.
fn reported<'a>(output: &'a str, key: &str) -> &'a str {
    let prefix = format!("INFERIX-TEST {key}: ");
    output
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {prefix:?} line in Blender's output:\n{output}"))
}

fn build_addon_zip(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let zip = dir.join("inferix_render.zip");
    let status = std::process::Command::new("bash")
        .arg(root.join("scripts/build-blender-addon.sh"))
        .arg(&zip)
        .stdout(Stdio::null())
        .status()
        .expect("run scripts/build-blender-addon.sh");
    assert!(status.success(), "building the add-on zip failed: {status}");
    zip
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_addon_renders_the_open_scene_into_its_output_path() {
    let located = Blender::locate(None).await.unwrap_or_else(|e| {
        panic!("this test needs Blender: run `bash scripts/setup-blender.sh` ({e})")
    });
    let exe = located.executable().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let zip = build_addon_zip(dir.path());
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let blend = project.join("shot.blend");
    let scene_args = [blend.to_str().unwrap()];
    let (built, output) = blender(&exe, dir.path(), ("scene.py", BUILD_SCENE), &scene_args).await;
    assert!(built, "building the scene failed:\n{output}");
    let original = std::fs::read(&blend).unwrap();

    let renderer = BlenderRenderer::new(located, BlenderConfig::default());
    let net = LocalNetwork::builder()
        .workers(1)
        .verifiers(1)
        .renderer(Arc::new(renderer))
        .without_proof_of_render()
        .without_guest()
        .start()
        .await
        .unwrap();
    let store = net.store();
    let accounts = Accounts::new(&*store);
    let (_, key) = accounts.create("ana", false, 1).await.unwrap();
    accounts.deposit("ana", 1 << 40, "funds", 1).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let api = HttpApi::new(net.client_transport().unwrap(), net.address());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api.serve(listener, async {
        let _ = stopped.await;
    }));

    // Refusals first: each is a report, and nothing is written.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let wrong_key = "ifx_0123456789abcdef_0123456789abcdef0123456789abcdef";
    let (zip, blend_path) = (zip.to_str().unwrap(), blend.to_str().unwrap());
    let refusals = [
        zip,
        blend_path,
        "wrong-key",
        &url,
        wrong_key,
        "unreachable",
        &closed,
        &key,
        "malformed",
        "manager.example:8080",
        &key,
    ];
    let (ok, output) = blender(&exe, dir.path(), ("drive.py", DRIVE), &refusals).await;
    assert!(ok, "{output}");
    assert!(!output.contains("Traceback"), "{output}");
    let refused = reported(&output, "wrong-key refused");
    assert!(refused.contains("refused the API key (401"), "{refused}");
    assert!(
        refused.starts_with("Error: ") && output.lines().any(|l| l == refused),
        "reported by Blender: {output}"
    );
    let refused = reported(&output, "unreachable refused");
    assert!(
        refused.contains("Cannot reach the Inferix manager"),
        "{refused}"
    );
    let refused = reported(&output, "malformed refused");
    assert!(refused.contains("not an http:// or https://"), "{refused}");
    assert!(!project.join("out").exists(), "nothing written");

    // The render.
    let render = [zip, blend_path, "render", &url, &key];
    let (ok, output) = blender(&exe, dir.path(), ("drive.py", DRIVE), &render).await;
    assert!(ok, "{output}");
    assert!(!output.contains("Traceback"), "{output}");
    assert_eq!(reported(&output, "render ended"), "done", "{output}");
    let session = reported(&output, "session");
    assert!(
        session.starts_with("packed=False dirty=False path=")
            && session.ends_with("image=//tex.png"),
        "the open session is unchanged: {session}"
    );
    assert_eq!(
        std::fs::read(&blend).unwrap(),
        original,
        "the user's .blend is unchanged"
    );

    let mut names: Vec<String> = std::fs::read_dir(project.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["frame_0005.png", "frame_0006.png", "frame_0007.png"],
        "the scene's frame numbering"
    );
    let mut firsts = Vec::new();
    for name in &names {
        let bytes = std::fs::read(project.join("out").join(name)).unwrap();
        let image = inferix_gpu::codec::decode_png(&bytes).unwrap();
        assert_eq!(
            (image.width, image.height),
            (64, 48),
            "{name}: 50 % of 128×96"
        );
        firsts.push(bytes);
    }
    assert_ne!(
        firsts[0], firsts[2],
        "the cube turns between frames 5 and 7"
    );

    // The job was asked as the panel said.
    let client = net.client_with_token(Some(key.clone())).await.unwrap();
    let jobs = client.list_jobs(false).await.unwrap();
    assert_eq!(jobs.len(), 1, "the refusals submitted nothing");
    let spec = client.status(jobs[0].id).await.unwrap().job.spec;
    assert_eq!((spec.frames.start, spec.frames.end), (5, 7));
    assert_eq!((spec.settings.width, spec.settings.height), (64, 48));
    assert_eq!((spec.settings.samples, spec.priority), (4, 2));
    assert_eq!(spec.scene.file_name, "shot.blend");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    net.shutdown().await;
}
