"""Inferix from Python: quote, submit, follow and download render jobs.

:class:`Client` talks to a manager over QUIC; :class:`LocalNetwork` runs a
manager, workers and verifiers inside this process. Blocking calls release
the GIL, can be interrupted with Ctrl-C, and raise subclasses of
:class:`InferixError`.
"""

from . import errors
from ._inferix import (
    DEMO_SCENE_FRAMES,
    Client,
    Event,
    Job,
    JobEvents,
    JobStatus,
    LocalNetwork,
    Quote,
    __version__,
    demo_scene,
)
from .errors import (
    AuthenticationError,
    ConnectionError,
    InferixError,
    InternalError,
    InvalidInput,
    JobNotFound,
    QuoteError,
    SceneNotFound,
    Timeout,
)

__all__ = [
    "DEMO_SCENE_FRAMES",
    "AuthenticationError",
    "Client",
    "ConnectionError",
    "Event",
    "InferixError",
    "InternalError",
    "InvalidInput",
    "Job",
    "JobEvents",
    "JobNotFound",
    "JobStatus",
    "LocalNetwork",
    "Quote",
    "QuoteError",
    "SceneNotFound",
    "Timeout",
    "__version__",
    "demo_scene",
    "errors",
]
