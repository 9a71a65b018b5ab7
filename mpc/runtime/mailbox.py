"""Mailbox: values received by one party, queued FIFO per (job, sender, receiver).

Both transports deliver into a mailbox; ``Context.recv`` takes from it. A job can be
failed as a whole (a peer aborted, a stream broke): every waiting and later ``get`` for
that job raises at once, so no party waits for the timeout after a peer has died.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable
from typing import Any

from mpc.runtime.errors import GaotieError, JobTimeout, ProtocolViolation

# How many finished job ids are remembered, to reject late or replayed messages.
_CLOSED_MEMORY = 10_000


WEAK_GRACE = 1.0   # seconds a broken stream's error waits for the abort that may explain it


class _JobBox:
    __slots__ = ("queues", "error", "weak", "next_seq", "parties", "unread")

    def __init__(self, parties: frozenset[str] | None = None) -> None:
        self.parties = parties
        self.unread = 0  # bytes received (as announced on the wire) and not yet taken by get
        self.queues: dict[tuple[str, str], collections.deque] = collections.defaultdict(collections.deque)
        self.next_seq: dict[tuple[str, str], int] = collections.defaultdict(int)
        self.error: BaseException | None = None
        self.weak: tuple[BaseException, float] | None = None    # a broken stream's error, and when


class Mailbox:
    """Thread-safe per-job FIFO queues of decoded values.

    ``max_unread_bytes`` (None: no cap) bounds, per job, the wire size of values received
    and not yet read by the protocol, so peers cannot pile up unbounded memory here.
    """

    def __init__(self, max_open_jobs: int = 1000, max_unread_bytes: int | None = None) -> None:
        self._cond = threading.Condition()
        self._jobs: dict[str, _JobBox] = {}
        self._closed: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.max_open_jobs = max_open_jobs
        self.max_unread_bytes = max_unread_bytes

    def open(self, job_id: str, parties: Iterable[str] | None = None) -> None:
        """Accept messages for ``job_id`` from now on (only from ``parties``, if given)."""
        with self._cond:
            if job_id in self._jobs:
                return
            if job_id in self._closed:
                raise GaotieError(f"job {job_id} has already finished")
            if len(self._jobs) >= self.max_open_jobs:
                raise GaotieError(f"too many open jobs (limit {self.max_open_jobs})")
            self._jobs[job_id] = _JobBox(None if parties is None else frozenset(parties))

    def is_open(self, job_id: str, sender: str | None = None) -> bool:
        """Whether ``job_id`` is open (and, given ``sender``, whether it is a party of it)."""
        with self._cond:
            box = self._jobs.get(job_id)
            return box is not None and (sender is None or box.parties is None or sender in box.parties)

    def close(self, job_id: str) -> None:
        """Forget ``job_id``: drop queued values, reject later messages for it."""
        with self._cond:
            self._jobs.pop(job_id, None)
            self._closed[job_id] = None
            while len(self._closed) > _CLOSED_MEMORY:
                self._closed.popitem(last=False)
            self._cond.notify_all()

    def check_seq(self, job_id: str, sender: str, receiver: str, seq: int) -> None:
        """Verify ``seq`` is the next sequence number on this channel, and advance it."""
        with self._cond:
            box = self._box(job_id)
            key = (sender, receiver)
            if seq != box.next_seq[key]:
                raise ProtocolViolation(f"job {job_id}: message {seq} from {sender!r} out of "
                                        f"order (expected {box.next_seq[key]})")
            box.next_seq[key] += 1

    def put(self, job_id: str, sender: str, receiver: str, value: Any, size: int = 0) -> None:
        """Queue ``value`` (``size`` bytes on the wire) for ``receiver``; ProtocolViolation over
        the job's cap of unread bytes."""
        with self._cond:
            box = self._box(job_id)
            cap = self.max_unread_bytes
            if cap is not None and box.unread + size > cap:
                raise ProtocolViolation(f"job {job_id}: over {cap} bytes sent to {receiver!r} and not "
                                        f"read yet (limit max_unread_bytes)")
            box.unread += size
            box.queues[(sender, receiver)].append((value, size))
            self._cond.notify_all()

    def fail(self, job_id: str, error: BaseException, weak: bool = False) -> None:
        """Make every current and future ``get`` of the job raise ``error`` (first wins).

        ``weak``: the evidence is only a broken stream (the sender may have ended its side of
        the job because of another party, and its abort naming that party may be behind):
        ``get`` raises it only after ``WEAK_GRACE`` seconds without a stronger one."""
        with self._cond:
            box = self._jobs.get(job_id)
            if box is None or box.error is not None:
                return
            if weak:
                if box.weak is None:
                    box.weak = (error, time.monotonic())
            else:
                box.error = error
            self._cond.notify_all()

    def get(self, job_id: str, sender: str, receiver: str, deadline: float) -> Any:
        """Next value from ``sender`` to ``receiver``; waits until ``deadline`` (monotonic)."""
        with self._cond:
            while True:
                box = self._jobs.get(job_id)
                if box is None:
                    raise GaotieError(f"job {job_id} is not open on {receiver!r}")
                queue = box.queues.get((sender, receiver))
                if queue:
                    value, size = queue.popleft()
                    box.unread -= size
                    return value
                if box.error is not None:
                    raise box.error
                if box.weak is not None:
                    left = box.weak[1] + WEAK_GRACE - time.monotonic()
                    if left <= 0:
                        raise box.weak[0]
                    self._cond.wait(left)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise JobTimeout(f"party {sender!r} sent nothing to {receiver!r} before "
                                     f"the job timeout (job {job_id})", party=sender)
                self._cond.wait(min(remaining, 1.0))

    def _box(self, job_id: str) -> _JobBox:
        box = self._jobs.get(job_id)
        if box is None:
            state = "finished" if job_id in self._closed else "unknown"
            raise ProtocolViolation(f"message for {state} job {job_id}")
        return box
