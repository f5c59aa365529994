"""Type stubs of the compiled extension module (see ``inferix``)."""

import os
import pathlib
from types import TracebackType
from typing import Dict, Iterator, List, Optional, Tuple, Type, Union, final

__all__ = [
    "Client",
    "DEMO_SCENE_FRAMES",
    "Event",
    "Job",
    "JobEvents",
    "JobStatus",
    "LocalNetwork",
    "Quote",
    "__version__",
    "_panic_for_test",
    "demo_scene",
]

__version__: str
DEMO_SCENE_FRAMES: int
"""Frames of the built-in demo animation."""

_Path = Union[str, "os.PathLike[str]"]
_Frames = Union[int, str, range, Tuple[int, int]]

def demo_scene(path: _Path) -> pathlib.Path:
    """Write the built-in animated demo scene (.glb) to ``path``."""

def _panic_for_test() -> None:
    """Panic inside the runtime; raises ``InternalError`` (tests only)."""

@final
class Quote:
    """A price for a job, before it is submitted."""

    estimated_ibm: float
    """Estimated work in IB-minutes (minutes on the reference machine)."""
    price_per_ibm: int
    """Micro-credits per IB-minute."""
    total_price: int
    """Total price in micro-credits."""
    frames: int
    """Frames in the job."""
    tasks: int
    """Tasks the job splits into."""

@final
class JobStatus:
    """A snapshot of a job."""

    id: str
    state: str
    """"active", "paused", "completed", "failed" or "cancelled"."""
    frames_done: int
    """Frames accepted so far."""
    frames_total: int
    waiting_reason: Optional[str]
    """Why the job is not progressing, when it waits."""
    price: int
    """Price agreed at submission, in micro-credits."""
    counts: List[Tuple[str, int]]
    @property
    def tasks(self) -> Dict[str, int]:
        """Tasks per status, e.g. ``{"queued": 2, "accepted": 4}``."""
    @property
    def finished(self) -> bool:
        """Whether the job can change no more."""

@final
class Event:
    """Something that happened to a job."""

    kind: str
    """"accepted", "rejected", "requeued", "waiting", "completed", "failed"
    or "cancelled"."""
    task: Optional[str]
    worker: Optional[str]
    accepted_frames: Optional[int]
    """Frames accepted so far ("accepted" events)."""
    total_frames: Optional[int]
    reasons: List[str]
    """The verifiers' reasons, or the re-queue, wait or failure cause."""
    @property
    def is_final(self) -> bool:
        """Whether this event ends the job."""

@final
class JobEvents(Iterator[Event]):
    """Events of one job; ends after the final one."""

    def __iter__(self) -> "JobEvents": ...
    def __next__(self) -> Event:
        """Blocks (GIL released) for the next event; raises ``Timeout`` if the
        per-event timeout passes, ``ConnectionError`` if the manager goes
        away."""

@final
class Job:
    """A submitted job."""

    @property
    def id(self) -> str:
        """The job id (32 hex digits)."""
    @property
    def quote(self) -> Optional[Quote]:
        """The price agreed at submission (None for a job looked up by id)."""
    def status(self) -> JobStatus:
        """The job's current status."""
    def wait(self, timeout: Optional[float] = None) -> JobStatus:
        """Block until the job completes, fails or is cancelled; return its
        final status. Raises ``Timeout`` after ``timeout`` seconds."""
    def events(self, timeout: Optional[float] = None) -> JobEvents:
        """Iterate over the job's events from now on (progress, verdicts,
        the end); ``timeout`` bounds the wait for each event."""
    def download(self, directory: _Path) -> List[pathlib.Path]:
        """Download every accepted frame as ``directory/frame_NNNN.<ext>``."""
    def download_output(self, name: str, directory: _Path) -> pathlib.Path:
        """Wait for the outputs the job asked for, then download the one
        named ``name`` (``"mp4"``, ``"zip"`` …) into ``directory``. An output
        that failed raises with its reason."""
    def cancel(self) -> None:
        """Cancel the job."""
    def pause(self) -> None:
        """Stop leasing the job's tasks (running ones finish)."""
    def resume(self) -> None:
        """Lease a paused job's tasks again."""
    def claim(self, frames: List[int], reason: str = "bad frames") -> int:
        """Claim accepted ``frames`` are bad; returns the claim number. The
        outcome arrives as a ``claim_settled`` event."""

@final
class Client:
    """A connection to a manager over QUIC.

    ``url`` is the address printed by ``inferix manager``
    (``<node-id>@host:port``); ``token`` the API key of the account to act
    as (``inferix account create`` prints one; none acts as the manager's
    guest account, if it has one). Raises ``ConnectionError`` if no manager
    answers within ``timeout`` seconds and ``AuthenticationError`` if the
    key is refused.
    """

    def __new__(
        cls, url: str, token: Optional[str] = None, *, timeout: float = 10.0
    ) -> "Client": ...
    @property
    def url(self) -> str: ...
    def close(self) -> None:
        """Close the connection; later calls raise ``ConnectionError``."""
    def __enter__(self) -> "Client": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    def quote(
        self,
        scene: _Path,
        *,
        frames: Optional[_Frames] = None,
        resolution: Optional[Tuple[int, int]] = None,
        samples: Optional[int] = None,
        fmt: Optional[str] = None,
        chunk: Optional[int] = None,
        seed: Optional[int] = None,
        min_ib: Optional[float] = None,
        priority: Optional[int] = None,
        tags: Optional[List[str]] = None,
        tiles: Optional[str] = None,
        view: Optional[str] = None,
        outputs: Optional[List[str]] = None,
    ) -> Quote:
        """Price a job without submitting it.

        ``frames``: an int, ``"A-B"``/``"A-B:STEP"``, a ``range`` or an
        inclusive ``(first, last)`` tuple (default 1); ``resolution``
        (default (640, 360)); ``samples`` per pixel (default 64); ``fmt``
        ``"png"`` or ``"exr"``; ``chunk`` frames per task (default 5);
        ``priority`` (higher runs first, default 0); ``tags`` every worker
        rendering the job must carry; ``tiles`` ``"COLUMNSxROWS"`` splits
        each frame into tiles rendered by separate tasks; ``view``
        ``"standard"`` or ``"filmic"``; ``outputs`` files the network makes
        once the job completes (``"mp4:24"``, ``"zip"``, ``"jpeg:90"``,
        ``"contact-sheet"`` …).
        """
    def submit(
        self,
        scene: _Path,
        *,
        frames: Optional[_Frames] = None,
        resolution: Optional[Tuple[int, int]] = None,
        samples: Optional[int] = None,
        fmt: Optional[str] = None,
        chunk: Optional[int] = None,
        seed: Optional[int] = None,
        min_ib: Optional[float] = None,
        priority: Optional[int] = None,
        tags: Optional[List[str]] = None,
        tiles: Optional[str] = None,
        view: Optional[str] = None,
        outputs: Optional[List[str]] = None,
    ) -> Job:
        """Submit a job (same arguments as :meth:`quote`); returns at once."""
    def quote_file(self, path: _Path) -> Quote:
        """Price the job a job file (``.toml`` or ``.json``, see
        docs/job-files.md) describes. A wrong field raises ``InvalidInput``
        naming it (``render.sampels``)."""
    def submit_file(self, path: _Path) -> Job:
        """Submit the job a job file describes (see :meth:`quote_file`); its
        scene path is taken from the file's folder. Returns at once."""
    def job(self, job_id: str) -> Job:
        """A job submitted earlier, by id; raises ``JobNotFound``."""

@final
class LocalNetwork:
    """A manager, workers and verifiers inside this process.

    Defaults: 3 workers, 2 verifiers, quorum 1, every worker announcing IB
    1.0 (no start-up benchmark).

    ``transport="quic"`` listens on 127.0.0.1 so ``Client(net.url)`` and
    other processes can connect; ``"inproc"`` (default) is reachable only
    through :meth:`client`. Without ``data_dir`` a temporary folder is used
    and removed on shutdown.
    """

    def __new__(
        cls,
        workers: Optional[int] = None,
        verifiers: Optional[int] = None,
        *,
        quorum: Optional[int] = None,
        ib: Optional[float] = None,
        data_dir: Optional[_Path] = None,
        transport: Optional[str] = None,
    ) -> "LocalNetwork": ...
    @property
    def url(self) -> str: ...
    @property
    def data_dir(self) -> str: ...
    @property
    def device(self) -> str:
        """Render device of the workers."""
    def client(self) -> Client:
        """A client connected to this network."""
    def shutdown(self) -> None:
        """Stop every node and wait for them; idempotent."""
    def __enter__(self) -> "LocalNetwork": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
