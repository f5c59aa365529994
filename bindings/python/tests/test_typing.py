"""The stubs match the compiled module, and code using the package
type-checks against them."""

import subprocess
import sys

from conftest import REPO


def mypy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=300, cwd=REPO
    )


def test_stubs_match_the_runtime_module():
    done = mypy("mypy.stubtest", "inferix")
    assert done.returncode == 0, done.stdout + done.stderr


def test_pipeline_example_type_checks():
    done = mypy("mypy", "--cache-dir=/dev/null", "--ignore-missing-imports", "examples/pipeline.py")
    assert done.returncode == 0, done.stdout + done.stderr


def test_misuse_is_caught_by_the_type_checker(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import inferix\n"
        "c = inferix.Client('x@127.0.0.1:1')\n"
        "q: inferix.Quote = c.submit('s.glb', samples='many')\n"
    )
    done = mypy("mypy", "--cache-dir=/dev/null", str(bad))
    assert done.returncode != 0
    assert 'Argument "samples"' in done.stdout and "Incompatible types" in done.stdout
