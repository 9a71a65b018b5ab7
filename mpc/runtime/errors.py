"""Errors raised by the runtime. Messages name parties and jobs, never secret values."""

from __future__ import annotations

import os
import sysconfig


class GaotieError(Exception):
    """Base class of gaotie's own errors."""


class PeerFailed(GaotieError):
    """A peer of this job failed; raised by ``recv`` on every other party."""

    def __init__(self, party: str, reason: str):
        super().__init__(f"party {party!r} failed: {reason}")
        self.party = party
        self.reason = reason


class JobTimeout(GaotieError, TimeoutError):
    """No message arrived from a peer before the job's deadline."""


class JobFailed(GaotieError):
    """A job failed; ``party`` is the party whose error caused it."""

    def __init__(self, party: str, reason: str, job_id: str = ""):
        where = f"job {job_id}: " if job_id else ""
        super().__init__(f"{where}party {party!r} failed: {reason}")
        self.party = party
        self.reason = reason
        self.job_id = job_id


class ProtocolViolation(GaotieError):
    """A peer sent something that breaks the wire protocol (bad sequence, over cap...)."""


_OWN_CODE = (f"{os.sep}mpc{os.sep}", f"{os.sep}protocols{os.sep}")
_LIBRARIES = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")


def _raised_in_library(exc: BaseException) -> bool:
    """Whether the innermost Python frame of ``exc`` is an installed third-party library."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    path = tb.tb_frame.f_code.co_filename
    if any(p in path for p in _OWN_CODE):
        return False
    # Cython frames of compiled libraries carry relative paths ("pyarrow/error.pxi").
    return (not os.path.isabs(path) or any(p in path for p in _LIBRARIES)
            or path.startswith(sysconfig.get_paths()["stdlib"]))


def describe(exc: BaseException) -> str:
    """One-line description of an exception for peers, users and logs: type and message.

    gaotie's own messages name what was wrong without quoting data. Messages of
    exceptions raised inside third-party code (pandas, pyarrow...) may quote cell values,
    so only their type is passed on.
    """
    if isinstance(exc, PeerFailed | JobFailed):
        return exc.reason
    text = str(exc).splitlines()[0] if str(exc) else ""
    if text and not isinstance(exc, GaotieError) and _raised_in_library(exc):
        text = "raised inside a library; message withheld as it may quote data"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
