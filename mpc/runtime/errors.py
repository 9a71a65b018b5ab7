"""Errors raised by the runtime. Messages name parties and jobs, never secret values."""

from __future__ import annotations

import os
import sysconfig
from types import FrameType


class GaotieError(Exception):
    """Base class of gaotie's own errors."""


class PeerFailed(GaotieError):
    """A peer of this job failed; raised by ``recv`` on every other party. ``party`` is the
    peer that told us, ``origin`` the party whose failure it reports (the same, or a third
    party the peer heard from or timed out waiting for)."""

    def __init__(self, party: str, reason: str, origin: str | None = None):
        super().__init__(f"party {party!r} failed: {reason}")
        self.party = party
        self.reason = reason
        self.origin = origin or party


class JobTimeout(GaotieError, TimeoutError):
    """No message arrived from a peer before the job's deadline; ``party`` is the silent
    peer when there is one."""

    def __init__(self, message: str, party: str | None = None):
        super().__init__(message)
        self.party = party


class JobFailed(GaotieError):
    """A job failed; ``party`` is the party whose error caused it."""

    def __init__(self, party: str, reason: str, job_id: str = ""):
        where = f"job {job_id}: " if job_id else ""
        super().__init__(f"{where}party {party!r} failed: {reason}")
        self.party = party
        self.reason = reason
        self.job_id = job_id


class DataError(ValueError):
    """A dataset or column is missing, unreadable, or not allowed for the requested use
    (raised by the party server's data store and by protocols reading its columns)."""


def culprit(party: str, exc: BaseException) -> str:
    """The party whose failure ``exc``, raised at ``party``, reports: a failed peer's origin,
    the silent peer of a timeout, else ``party`` itself."""
    if isinstance(exc, PeerFailed):
        return exc.origin
    if isinstance(exc, JobTimeout) and exc.party:
        return exc.party
    return party


class ProtocolViolation(GaotieError):
    """A peer sent something that breaks the wire protocol (bad sequence, over cap...)."""


# Where a traceback frame runs, by its module's top-level package. gaotie's own code and
# the machinery below say what went wrong in their messages (a pool broke, a shape or a
# gRPC status); libraries that parse or convert table cells may quote them.
_OWN = frozenset({"mpc", "protocols"})
_MACHINERY = frozenset({"numpy", "grpc", "google", "gmpy2", "nacl", "cryptography", "cffi", "tqdm"})
_QUOTES_DATA = frozenset({"pandas", "pyarrow", "_strptime"})
_SITE = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
_STDLIB = sysconfig.get_paths()["stdlib"] + os.sep
_MAX_CAUSES = 3


def _package(frame: FrameType) -> str:
    return str(frame.f_globals.get("__name__") or "").split(".")[0]


def _kind(frame: FrameType) -> str:
    """Who runs a frame: ``own`` (gaotie or the application), ``machinery`` (the standard
    library, numpy, gRPC, the crypto libraries) or ``data`` (a library whose messages may
    quote the values it handles: pandas, pyarrow, any other third-party package)."""
    package, path = _package(frame), frame.f_code.co_filename
    if package in _OWN:
        return "own"
    if package in _MACHINERY:
        return "machinery"
    if package in _QUOTES_DATA:
        return "data"
    if path.startswith("<"):  # <frozen importlib...> is the stdlib; <stdin>, <string> the application
        return "machinery" if path.startswith("<frozen") else "own"
    if any(s in path for s in _SITE) or not os.path.isabs(path):  # Cython frames: "pyarrow/error.pxi"
        return "data"
    return "machinery" if path.startswith(_STDLIB) else "own"


def _where(frame: FrameType, lineno: int) -> str:
    """``mpc/crypto/pool.py:63 in map_chunks``: a place in the code, never a value."""
    path = frame.f_code.co_filename
    package = _package(frame)
    parts = path.split(os.sep)
    if package and package in parts[:-1]:  # from the package down: mpc/crypto/pool.py
        path = "/".join(parts[len(parts) - 1 - parts[::-1].index(package):])
    elif path.startswith(_STDLIB):
        path = path[len(_STDLIB):]
    else:
        path = os.path.basename(path)
    return f"{path}:{lineno} in {frame.f_code.co_name}"


def _frames(exc: BaseException) -> list[tuple[FrameType, int]]:
    out, tb = [], exc.__traceback__
    while tb is not None:
        out.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return out


def _library_raising(exc: BaseException) -> tuple[str, str] | None:
    """(library, caller) when ``exc`` was raised inside a library that may quote data values:
    some frame after the last one of gaotie or the application runs in such a library."""
    frames = _frames(exc)
    kinds = [_kind(f) for f, _ in frames]
    last_own = max((i for i, k in enumerate(kinds) if k == "own"), default=-1)
    inside = [f for (f, _), k in zip(frames[last_own + 1:], kinds[last_own + 1:], strict=True) if k == "data"]
    if not inside:
        return None
    caller = f" (called from {_where(*frames[last_own])})" if last_own >= 0 else ""
    return (_package(inside[-1]) or "a compiled library"), caller


def describe(exc: BaseException) -> str:
    """One-line description of an exception for peers, users and logs: type and message.

    gaotie's own messages name what was wrong without quoting data; so do those of the
    standard library (``concurrent.futures``, ``queue``...), numpy, gRPC and the crypto
    libraries gaotie calls. Messages of exceptions raised inside libraries that convert
    table cells (pandas, pyarrow, any other third-party package) may quote cell values: for
    those, only the type, the library and the line of gaotie that called it are passed on.
    An exception without a message says where it was raised and what caused it.
    """
    return _describe(exc, _MAX_CAUSES)


def _describe(exc: BaseException, causes: int) -> str:
    if isinstance(exc, PeerFailed | JobFailed):
        return exc.reason
    name = type(exc).__name__
    if not isinstance(exc, GaotieError) and (lib := _library_raising(exc)) is not None:
        library, caller = lib
        return f"{name} raised in {library}{caller}; message withheld as it may quote data values"
    text = _message(exc)
    if text:
        return f"{name}: {text}"
    frames = _frames(exc)
    text = f"{name} (no message) at {_where(*frames[-1])}" if frames else f"{name} (no message)"
    own = [f for f in frames[:-1] if _kind(f[0]) == "own"]
    if own and _kind(frames[-1][0]) != "own":
        text += f", called from {_where(*own[-1])}"
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None and causes > 0:
        text += f", caused by {_describe(cause, causes - 1)}"
    return text


def _message(exc: BaseException) -> str:
    """The first line of an exception's message; for a gRPC error its status and details."""
    code, details = getattr(exc, "code", None), getattr(exc, "details", None)
    if callable(code) and callable(details):  # grpc.RpcError: str() is a multi-line repr
        try:
            status, text = getattr(code(), "name", str(code())), details()
            return f"{status}: {text}" if text else status
        except Exception:  # noqa: BLE001 - not a gRPC call after all
            pass
    text = str(exc)
    return text.splitlines()[0].strip() if text.strip() else ""
