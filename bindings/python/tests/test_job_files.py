"""Job files (docs/job-files.md) through the Python client: the file's
values become the job, its scene is found from its folder, and a wrong
field fails naming it before anything is submitted."""

import pytest

import inferix


def test_a_job_file_is_submitted_with_its_values(client, scene, tmp_path):
    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "shot.glb").write_bytes(scene.read_bytes())
    job_file = folder / "shot.toml"
    job_file.write_text(
        'scene = "shot.glb"\n'
        'frames = "1-3"\n'
        "chunk = 1\n"
        "[render]\n"
        "width = 64\n"
        "height = 36\n"
        "samples = 2\n"
    )
    quote = client.quote_file(str(job_file))
    assert (quote.frames, quote.tasks) == (3, 3)
    job = client.submit_file(job_file)
    assert job.quote is not None and job.quote.frames == 3
    status = job.wait(timeout=120)
    assert (status.state, status.frames_done) == ("completed", 3)


def test_a_wrong_field_is_named_and_nothing_is_submitted(client, scene, tmp_path):
    (tmp_path / "shot.glb").write_bytes(scene.read_bytes())
    bad = tmp_path / "bad.json"
    bad.write_text('{"scene": "shot.glb", "render": {"sampels": 2}}')
    with pytest.raises(inferix.InvalidInput, match=r"render\.sampels"):
        client.submit_file(bad)
    zero = tmp_path / "zero.toml"
    zero.write_text('scene = "shot.glb"\nchunk = 0\n')
    with pytest.raises(inferix.InvalidInput, match="`chunk`"):
        client.quote_file(zero)
    missing = tmp_path / "missing.toml"
    missing.write_text('scene = "absent.glb"\n')
    with pytest.raises(inferix.SceneNotFound):
        client.submit_file(missing)


def test_tiles_a_view_and_outputs_as_keywords(client, scene, tmp_path):
    job = client.submit(
        scene,
        frames="1-2",
        resolution=(64, 36),
        samples=2,
        chunk=1,
        tiles="2x1",
        view="filmic",
        outputs=["zip", "contact-sheet"],
    )
    status = job.wait(timeout=180)
    assert (status.state, status.frames_done) == ("completed", 2)
    frames = job.download(tmp_path / "frames")
    assert [f.name for f in frames] == ["frame_0001.png", "frame_0002.png"]
    archive = job.download_output("zip", tmp_path / "out")
    import zipfile

    with zipfile.ZipFile(archive) as z:
        assert z.namelist() == ["frame_0001.png", "frame_0002.png"]
        assert z.read("frame_0001.png") == frames[0].read_bytes()
    with pytest.raises(inferix.InvalidInput, match="tiles"):
        client.submit(scene, tiles="0x2")
    with pytest.raises(inferix.InvalidInput, match="view"):
        client.submit(scene, view="sepia")
    with pytest.raises(inferix.InvalidInput, match="outputs"):
        client.submit(scene, outputs=["avi"])
