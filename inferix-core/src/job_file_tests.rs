//! Job files: both syntaxes give one spec, defaults are [`JobSpec::new`]'s,
//! and every refusal names its field.

use super::*;

const TOML: &str = r#"
scene = "shots/a.glb"
frames = "1-24:2"
format = "exr"
chunk = 4
priority = -2
tags = ["gpu", "studio"]
min_ib = 1.5
environment = "maps/studio.hdr"
tiles = "2x3"
outputs = [{ kind = "mp4", fps = 30 }, { kind = "zip" }]

[render]
width = 320
height = 180
samples = 16
max_bounces = 3
seed = 7
fps = 30
background = "color:0.1,0.2,0.3"
"#;

const JSON: &str = r#"{
  "scene": { "path": "shots/a.glb" },
  "frames": { "start": 1, "end": 24, "step": 2 },
  "format": "exr",
  "chunk": 4,
  "priority": -2,
  "tags": ["gpu", "studio"],
  "min_ib": 1.5,
  "environment": "maps/studio.hdr",
  "tiles": "2x3",
  "outputs": [{ "kind": "mp4", "fps": 30 }, { "kind": "zip" }],
  "render": {
    "width": 320, "height": 180, "samples": 16, "max_bounces": 3,
    "seed": 7, "fps": 30.0, "background": "color:0.1,0.2,0.3"
  }
}"#;

fn scene() -> SceneRef {
    SceneRef {
        blob: ContentHash::of(b"scene"),
        format: SceneFormat::Gltf,
        file_name: "a.glb".into(),
    }
}

fn env() -> EnvironmentRef {
    EnvironmentRef {
        blob: ContentHash::of(b"map"),
        file_name: "studio.hdr".into(),
    }
}

#[test]
fn toml_and_json_give_the_same_spec() {
    let t = JobFile::from_toml_str(TOML).unwrap();
    let j = JobFile::from_json_str(JSON).unwrap();
    assert_eq!(t, j);
    assert_eq!(t.scene, JobInput::Path("shots/a.glb".into()));
    let spec = t.to_spec(scene(), Some(env())).unwrap();
    assert_eq!(spec, j.to_spec(scene(), Some(env())).unwrap());
    assert_eq!(spec.frames, FrameRange::new(1, 24).with_step(2));
    assert_eq!(
        (spec.settings.width, spec.settings.height),
        (320, 180),
        "{spec:?}"
    );
    assert_eq!(spec.settings.samples, 16);
    assert_eq!(spec.settings.max_bounces, 3);
    assert_eq!(spec.settings.seed, 7);
    assert_eq!(spec.settings.fps, 30.0);
    assert_eq!(spec.settings.background, Background::Color([0.1, 0.2, 0.3]));
    assert_eq!(spec.format, OutputFormat::Exr);
    assert_eq!(spec.chunk_size, 4);
    assert_eq!(spec.priority, -2);
    assert_eq!(spec.tags, ["gpu", "studio"]);
    assert_eq!(spec.min_ib, 1.5);
    assert_eq!(spec.environment, Some(env()));
    assert_eq!(spec.tiles, Some(crate::tiles::TileGrid::new(2, 3)));
    assert_eq!(
        spec.outputs,
        [OutputRequest::Mp4 { fps: 30 }, OutputRequest::Zip]
    );
    // What the file serialises to reads back as the same file.
    let again = JobFile::from_json_str(&serde_json::to_string(&t).unwrap()).unwrap();
    assert_eq!(again, t);
}

#[test]
fn an_absent_field_takes_the_default_of_a_flag_built_job() {
    let f = JobFile::from_toml_str("scene = \"a.glb\"").unwrap();
    assert_eq!(f, JobFile::new(JobInput::Path("a.glb".into())));
    assert_eq!(
        f.to_spec(scene(), None).unwrap(),
        JobSpec::new(scene(), FrameRange::new(1, 1))
    );
    // A single frame, as a number or as a table without its end.
    for text in [
        "scene = \"a.glb\"\nframes = 7",
        "scene = \"a.glb\"\nframes = { start = 7 }",
    ] {
        assert_eq!(
            JobFile::from_toml_str(text).unwrap().frames,
            FrameRange::new(7, 7)
        );
    }
}

/// The field an error names, with the error for the failure message.
fn field(r: Result<JobFile, JobFileError>) -> (String, String) {
    let e = r.expect_err("must be refused");
    (e.field().unwrap_or("<none>").to_string(), e.to_string())
}

#[test]
fn unknown_fields_are_refused_by_their_path_in_both_syntaxes() {
    for (toml_text, json_text, want) in [
        (
            "scene = \"a.glb\"\nsampels = 3",
            r#"{"scene": "a.glb", "sampels": 3}"#,
            "sampels",
        ),
        (
            "scene = \"a.glb\"\n[render]\nsampels = 3",
            r#"{"scene": "a.glb", "render": {"sampels": 3}}"#,
            "render.sampels",
        ),
        (
            "scene = { path = \"a.glb\", nmae = \"x\" }",
            r#"{"scene": {"path": "a.glb", "nmae": "x"}}"#,
            "scene.nmae",
        ),
        (
            "scene = \"a.glb\"\nframes = { start = 1, stpe = 2 }",
            r#"{"scene": "a.glb", "frames": {"start": 1, "stpe": 2}}"#,
            "frames.stpe",
        ),
    ] {
        for r in [
            JobFile::from_toml_str(toml_text),
            JobFile::from_json_str(json_text),
        ] {
            let e = r.expect_err(want);
            assert!(
                matches!(&e, JobFileError::UnknownField { field, .. } if field == want),
                "{want}: {e:?}"
            );
            assert!(e.to_string().contains(&format!("`{want}`")), "{e}");
        }
    }
    // The message lists what is allowed there.
    let e = JobFile::from_toml_str("scene = \"a.glb\"\n[render]\nsampels = 3").unwrap_err();
    assert!(e.to_string().contains("samples"), "{e}");
}

#[test]
fn every_bad_value_names_its_field() {
    let cases: &[(&str, &str)] = &[
        ("frames = \"10-1\"", "frames"),
        ("frames = \"1-9:0\"", "frames"),
        ("frames = \"a-b\"", "frames"),
        ("frames = -3", "frames"),
        ("frames = \"0-2000000\"", "frames"),
        ("chunk = 0", "chunk"),
        ("chunk = 101", "chunk"),
        ("chunk = 4294967296", "chunk"),
        ("chunk = -1", "chunk"),
        ("min_ib = -1.0", "min_ib"),
        ("min_ib = nan", "min_ib"),
        ("format = \"tiff\"", "format"),
        ("priority = \"high\"", "priority"),
        ("tags = [\"gpu\", 1]", "tags[1]"),
        ("environment = \"studio.png\"", "environment"),
        ("[render]\nwidth = 0", "render.width"),
        ("[render]\nwidth = \"wide\"", "render.width"),
        ("[render]\nheight = 20000", "render.height"),
        ("[render]\nsamples = 0", "render.samples"),
        ("[render]\nfps = 0.0", "render.fps"),
        ("[render]\nbackground = \"purple\"", "render.background"),
        ("[render]\nview = \"sepia\"", "render.view"),
        (
            "format = \"exr\"\n[render]\nview = \"filmic\"",
            "render.view",
        ),
        ("tiles = \"0x2\"", "tiles"),
        ("tiles = \"4 by 4\"", "tiles"),
        ("tiles = \"64x64\"", "tiles"),
        ("outputs = [{ kind = \"avi\" }]", "outputs[0].kind"),
        ("outputs = [{ kind = \"jpeg\", quality = 0 }]", "outputs"),
    ];
    for (line, want) in cases {
        let text = format!("scene = \"a.glb\"\n{line}");
        let (got, message) = field(JobFile::from_toml_str(&text).and_then(|f| {
            f.check()?;
            Ok(f)
        }));
        assert_eq!(&got, want, "{line}: {message}");
        assert!(message.contains(&format!("`{want}`")), "{message}");
    }
    // The scene's own fields: a format the extension does not tell, a hash
    // that is not one, a blob without its name.
    let cases: &[(&str, &str)] = &[
        ("scene = \"notes.txt\"", "scene"),
        ("scene = { blob = \"zz\", name = \"a.glb\" }", "scene.blob"),
        ("scene = { blob = \"%H\" }", "scene"),
        ("scene = { blob = \"%H\", name = \"a.txt\" }", "scene.name"),
        ("scene = 3", "scene"),
    ];
    let hash = ContentHash::of(b"scene").to_string();
    for (text, want) in cases {
        let text = text.replace("%H", &hash);
        let (got, message) = field(JobFile::from_toml_str(&text).and_then(|f| {
            f.check()?;
            Ok(f)
        }));
        assert_eq!(&got, want, "{text}: {message}");
    }
    // Missing fields are named by their path too.
    for (text, want) in [
        ("frames = \"1-2\"", "scene"),
        ("scene = \"a.glb\"\nframes = { end = 2 }", "frames.start"),
    ] {
        let e = JobFile::from_toml_str(text).unwrap_err();
        assert!(
            matches!(&e, JobFileError::MissingField { field } if field == want),
            "{e:?}"
        );
        assert_eq!(e.to_string(), format!("missing field `{want}`"));
    }
}

#[test]
fn the_spec_validation_error_is_kept_with_its_field() {
    let f = JobFile::from_toml_str("scene = \"a.glb\"\nchunk = 0").unwrap();
    match f.check() {
        Err(JobFileError::InvalidJob { field, reason }) => {
            assert_eq!(field, "chunk");
            assert_eq!(reason, JobSpecError::ZeroChunkSize);
        }
        other => panic!("{other:?}"),
    }
    // An environment map lights glTF scenes only.
    let f = JobFile::from_toml_str("scene = \"a.blend\"\nenvironment = \"s.hdr\"").unwrap();
    assert_eq!(f.check().unwrap_err().field(), Some("environment"));
    // Half-float copies are made from EXR frames only.
    let half = "scene = \"a.glb\"\noutputs = [{ kind = \"exr-half\" }]";
    let f = JobFile::from_toml_str(half).unwrap();
    assert_eq!(f.check().unwrap_err().field(), Some("outputs"));
    let f = JobFile::from_toml_str(&format!("{half}\nformat = \"exr\"")).unwrap();
    f.check().unwrap();
}

#[test]
fn syntax_errors_say_where() {
    let e = JobFile::from_toml_str("scene = \"a.glb\"\n[render\n").unwrap_err();
    assert!(
        matches!(
            e,
            JobFileError::Syntax {
                format: "TOML",
                line: Some(2),
                ..
            }
        ),
        "{e:?}"
    );
    let e = JobFile::from_json_str("{\"scene\": \"a.glb\",\n}").unwrap_err();
    assert!(
        matches!(
            e,
            JobFileError::Syntax {
                format: "JSON",
                line: Some(2),
                ..
            }
        ),
        "{e:?}"
    );
    let e = JobFile::from_json_str("{\"scene\": \"a.glb\"} trailing").unwrap_err();
    assert!(matches!(e, JobFileError::Syntax { .. }), "{e:?}");
}

#[test]
fn uploaded_documents_name_blobs_and_paths_are_refused() {
    let hash = ContentHash::of(b"scene");
    let map = ContentHash::of(b"map");
    let doc = format!(
        r#"{{"scene": {{"blob": "{hash}", "name": "a.glb"}}, "frames": "1-3",
            "environment": {{"blob": "{map}", "name": "studio.hdr"}}}}"#
    );
    let spec = JobFile::from_json_str(&doc)
        .unwrap()
        .to_uploaded_spec()
        .unwrap();
    assert_eq!(spec.scene.blob, hash);
    assert_eq!(spec.scene.file_name, "a.glb");
    assert_eq!(spec.environment.unwrap().blob, map);
    // A path names a file on the caller's disk, which a server cannot read.
    let f = JobFile::from_json_str(r#"{"scene": "a.glb"}"#).unwrap();
    assert_eq!(f.to_uploaded_spec().unwrap_err().field(), Some("scene"));
    let f = JobFile::from_json_str(&format!(
        r#"{{"scene": {{"blob": "{hash}", "name": "a.glb"}}, "environment": "s.hdr"}}"#
    ))
    .unwrap();
    assert_eq!(
        f.to_uploaded_spec().unwrap_err().field(),
        Some("environment")
    );
}

#[test]
fn files_are_read_by_extension_with_paths_from_their_folder() {
    let dir = std::env::temp_dir().join(format!("inferix-job-file-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("jobs")).unwrap();
    let toml_path = dir.join("jobs").join("a.toml");
    std::fs::write(&toml_path, TOML).unwrap();
    let json_path = dir.join("jobs").join("a.JSON");
    std::fs::write(&json_path, JSON).unwrap();
    let t = JobFile::from_path(&toml_path).unwrap();
    assert_eq!(t, JobFile::from_path(&json_path).unwrap());
    assert_eq!(t.scene.path(), Some(dir.join("jobs/shots/a.glb").as_path()));
    assert_eq!(
        t.environment.as_ref().and_then(JobInput::path),
        Some(dir.join("jobs/maps/studio.hdr").as_path())
    );
    // An absolute path stays as written.
    let abs = dir.join("abs.toml");
    std::fs::write(&abs, "scene = \"/srv/scenes/b.glb\"").unwrap();
    assert_eq!(
        JobFile::from_path(&abs).unwrap().scene.path(),
        Some(Path::new("/srv/scenes/b.glb"))
    );
    assert!(JobFile::is_job_file(&toml_path) && JobFile::is_job_file(&json_path));
    assert!(!JobFile::is_job_file(Path::new("scene.glb")));
    let yaml = dir.join("a.yaml");
    assert!(matches!(
        JobFile::from_path(&yaml),
        Err(JobFileError::Extension { .. })
    ));
    assert!(matches!(
        JobFile::from_path(&dir.join("absent.toml")),
        Err(JobFileError::Read { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_example_job_file_is_valid() {
    let f = JobFile::from_toml_str(include_str!("../../examples/jobs/demo.toml")).unwrap();
    f.check().unwrap();
    assert_eq!(f.scene, JobInput::Path("inferix-demo.glb".into()));
    assert_eq!(f.frames.len(), 24);
}
