"""Exceptions raised by :mod:`inferix`.

Every error derives from :class:`InferixError`; most also derive from the
built-in exception a Python programmer would expect (``ValueError``,
``ConnectionError``, ``LookupError``, ``TimeoutError``...), so both
``except inferix.InferixError`` and ``except ValueError`` work.
"""

import builtins

__all__ = [
    "InferixError",
    "InvalidInput",
    "SceneNotFound",
    "ConnectionError",
    "AuthenticationError",
    "QuoteError",
    "JobNotFound",
    "Timeout",
    "InternalError",
]


class InferixError(Exception):
    """Base class of every error raised by inferix."""


class InvalidInput(InferixError, ValueError, TypeError):
    """An argument has the wrong type or value (checked before any network
    traffic)."""


class SceneNotFound(InvalidInput, FileNotFoundError):
    """The scene file does not exist."""


class ConnectionError(InferixError, builtins.ConnectionError):
    """The manager cannot be reached, went away, or the client is closed."""


class AuthenticationError(InferixError, PermissionError):
    """The manager refused the token (or this node's identity)."""


class QuoteError(InferixError):
    """The manager refused to price or accept the job (e.g. a scene it
    cannot render, or settings out of range)."""


class JobNotFound(InferixError, LookupError):
    """No job with this id on the manager."""


class Timeout(InferixError, TimeoutError):
    """A wait ran past its timeout; the job itself goes on."""


class InternalError(InferixError):
    """A bug in inferix or the manager, including a Rust panic (the
    interpreter keeps running)."""
