"""Errors raised by the runtime. Messages name parties and jobs, never secret values."""

from __future__ import annotations


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


def describe(exc: BaseException) -> str:
    """One-line description of an exception for peers and users: type and message."""
    if isinstance(exc, PeerFailed | JobFailed):
        return exc.reason
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
