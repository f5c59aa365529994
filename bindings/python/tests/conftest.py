"""Shared fixtures: the demo scene, an in-process network, and a manager
with workers and a verifier started as separate `inferix` processes."""

import os
import pathlib
import subprocess
import sys
from typing import Iterator, List, NamedTuple

import numpy as np
import pytest
from PIL import Image

import inferix

REPO = pathlib.Path(__file__).resolve().parents[3]

# Small jobs so the CPU Vulkan device renders them in seconds.
SMALL = dict(resolution=(64, 36), samples=2, chunk=1)


def inferix_bin() -> pathlib.Path:
    """The `inferix` binary of this tree (scripts/test-python.sh builds it)."""
    path = pathlib.Path(os.environ.get("INFERIX_BIN", REPO / "target" / "debug" / "inferix"))
    assert path.is_file(), f"{path} missing: run `cargo build -p inferix-node --bin inferix`"
    return path


def check_frames(files: List[pathlib.Path], count: int, size=(64, 36)) -> None:
    """Every frame exists, has the asked size and is not blank."""
    assert len(files) == count
    for f in files:
        with Image.open(f) as img:
            assert img.size == size, f
            pixels = np.asarray(img.convert("RGB"), dtype=np.float64)
        assert pixels.std() > 1.0, f"{f} is flat"
        assert pixels.max() > 0, f"{f} is black"


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return inferix.demo_scene(tmp_path_factory.mktemp("scene") / "demo.glb")


@pytest.fixture(scope="module")
def net() -> Iterator[inferix.LocalNetwork]:
    with inferix.LocalNetwork(workers=2, verifiers=1) as n:
        yield n


@pytest.fixture()
def client(net: inferix.LocalNetwork) -> Iterator[inferix.Client]:
    with net.client() as c:
        yield c


class Process:
    """A started `inferix` subcommand, killed at teardown."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(inferix_bin()), *args],
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
            # Managers give their quote probe this IB instead of benching.
            env={**os.environ, "INFERIX_LOG": "warn", "INFERIX_PROBE_IB": "1"},
        )

    def first_line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_manager(data_dir: pathlib.Path, *extra: str) -> "tuple[Process, str]":
    manager = Process(
        "manager", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), "--quorum", "1", *extra
    )
    line = manager.first_line()
    prefix = "manager listening on "
    assert line.startswith(prefix), f"unexpected manager output {line!r}"
    return manager, line[len(prefix):]


def account(data_dir: pathlib.Path, name: str, credits: str = "") -> str:
    """Creates an account in a manager's store, deposits `credits` when
    given, and returns its API key."""
    made = subprocess.run(
        [str(inferix_bin()), "account", "--data-dir", str(data_dir), "create", name],
        capture_output=True, text=True, check=True,
    )
    if credits:
        subprocess.run(
            [str(inferix_bin()), "account", "--data-dir", str(data_dir), "deposit", name, credits],
            capture_output=True, text=True, check=True,
        )
    return made.stdout.strip()


class Remote(NamedTuple):
    """A network of processes: the manager's address, the API key of a
    funded account, of a second funded account, and of one without funds,
    and the URL of the manager's HTTP API."""

    addr: str
    key: str
    other_key: str
    poor_key: str
    http: str


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    """A manager, two workers and a verifier, each its own process talking
    QUIC on loopback, and accounts to use it with."""
    d = tmp_path_factory.mktemp("remote")
    keys = [account(d / "m", "ana", "1000"), account(d / "m", "ben", "1000"), account(d / "m", "cy")]
    manager, addr = start_manager(d / "m", "--http", "127.0.0.1:0")
    line = manager.first_line()
    prefix = "http api listening on "
    assert line.startswith(prefix), f"unexpected manager output {line!r}"
    http = line[len(prefix):]
    nodes = [manager]
    try:
        for i in range(2):
            nodes.append(
                Process("worker", "--manager", addr, "--data-dir", str(d / f"w{i}"), "--ib", "1")
            )
        nodes.append(Process("verifier", "--manager", addr, "--data-dir", str(d / "v")))
        yield Remote(addr, *keys, http)
    finally:
        for n in reversed(nodes):
            n.stop()
