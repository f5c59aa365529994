"""The Python example runs end to end, against an in-process network and
against a manager given by URL."""

import pathlib
import re
import subprocess
import sys

import inferix
from PIL import Image

from conftest import REPO

PIPELINE = REPO / "examples" / "pipeline.py"


def run_pipeline(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(PIPELINE), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def check_outputs(out: str, frames: int, columns: int, size=(48, 27)) -> None:
    assert re.search(rf"rendering: {frames}/{frames} frames", out), out
    sheet = pathlib.Path(re.search(r"contact sheet: (\S+)", out).group(1))
    rows = -(-frames // columns)
    with Image.open(sheet) as img:
        assert img.size == (columns * size[0], rows * size[1])
    gif = pathlib.Path(re.search(r"animation: (\S+)", out).group(1))
    with Image.open(gif) as img:
        assert img.n_frames == frames


def test_pipeline_on_a_local_network(tmp_path):
    out = run_pipeline("--frames", "1-6", "--resolution", "48x27", "--samples", "2",
                       "--columns", "3", "--out", str(tmp_path))
    check_outputs(out, 6, 3)


def test_pipeline_against_a_url(tmp_path):
    with inferix.LocalNetwork(workers=2, verifiers=1, transport="quic") as net:
        out = run_pipeline("--url", net.url, "--frames", "1-3", "--resolution", "48x27",
                           "--samples", "2", "--out", str(tmp_path))
    check_outputs(out, 3, 4)


def test_pipeline_reports_errors_without_a_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, str(PIPELINE), "--scene", str(tmp_path / "nope.glb")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "error: scene file not found" in done.stderr
    assert "Traceback" not in done.stderr
