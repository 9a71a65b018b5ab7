"""Context: the one handle an SPMD protocol function has on the outside world.

Every party of a job runs the same function with its own Context. Channels are FIFO per
(job, sender, receiver), so protocol code never invents message tags: the n-th ``recv``
from a peer returns the n-th value that peer sent here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from mpc.runtime import executor as executors
from mpc.runtime.errors import GaotieError
from mpc.runtime.executor import Executor
from mpc.runtime.progress import Progress


class Transport(Protocol):
    """How values move between parties; the in-memory and gRPC transports implement it."""

    def send(self, job_id: str, sender: str, receiver: str, value: Any, deadline: float) -> None: ...

    def recv(self, job_id: str, sender: str, receiver: str, deadline: float) -> Any: ...

    def abort(self, job_id: str, sender: str, receivers: Sequence[str], reason: str, origin: str = "") -> None: ...

    def finish(self, job_id: str, sender: str, deadline: float) -> None: ...


class Context:
    """A party's view of one job.

    Attributes:
        party: this party's name.
        parties: the computing parties, in rank order (the same list on every party).
        helpers: helper parties of the job that run no protocol code (e.g. ``dealer``).
        rank: index of ``party`` in ``parties`` (None for a helper).
        job_id: identifier of the job, the same on every party.
        options: runtime options (``frac_bits``, ``triples``...), the same on every party.
        executor: where this party's bucket-local CPU work runs
            (:mod:`mpc.runtime.executor`: ``ctx.executor.map(fn, args, shared)``); the
            process's in-process thread pool unless the runner (a party server with an
            ``[executor]`` table, ``run_local(executor=...)``) gives another. Local to this
            party: its peers never see it.
    """

    def __init__(self, party: str, parties: Sequence[str], job_id: str, transport: Transport,
                 timeout: float = 60.0, options: dict[str, Any] | None = None,
                 helpers: Sequence[str] = (), executor: Executor | None = None) -> None:
        self.party = party
        self.parties = list(parties)
        self.helpers = list(helpers)
        everyone = self.parties + self.helpers
        if len(set(everyone)) != len(everyone):
            raise ValueError(f"duplicate party names in {everyone}")
        if party not in everyone:
            raise ValueError(f"party {party!r} is not one of {everyone}")
        self.rank = self.parties.index(party) if party in self.parties else None
        self.job_id = job_id
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.options = dict(options or {})
        self.state: dict[str, Any] = {}  # per-job scratch space for libraries (e.g. triple sources)
        self.executor: Executor = executor if executor is not None else executors.default()
        self._transport = transport
        self._progress: Callable[[Progress], None] | None = None  # see on_progress
        self._progress_now = Progress()

    def __repr__(self) -> str:
        return f"Context(party={self.party!r}, parties={self.parties}, job_id={self.job_id!r})"

    @property
    def peers(self) -> list[str]:
        """The other computing parties, in rank order."""
        return [p for p in self.parties if p != self.party]

    def _check_peer(self, peer: str) -> None:
        if peer == self.party:
            raise ValueError(f"party {self.party!r} cannot send to or receive from itself")
        if peer not in self.parties and peer not in self.helpers:
            raise ValueError(f"unknown party {peer!r}; the job's parties are "
                             f"{self.parties + self.helpers}")

    def send(self, peer: str, value: Any) -> None:
        """Send ``value`` to ``peer`` (asynchronously; FIFO per peer). TypeError if unsendable."""
        self._check_peer(peer)
        self._transport.send(self.job_id, self.party, peer, value, self.deadline)

    def recv(self, peer: str) -> Any:
        """The next value ``peer`` sent to this party; waits until the job deadline."""
        self._check_peer(peer)
        return self._transport.recv(self.job_id, peer, self.party, self.deadline)

    def exchange(self, peer: str, value: Any) -> Any:
        """Send ``value`` to ``peer`` and return what ``peer`` sent back in the same step."""
        self.send(peer, value)
        return self.recv(peer)

    def broadcast(self, value: Any) -> None:
        """Send ``value`` to every other computing party."""
        for peer in self.peers:
            self.send(peer, value)

    def gather(self, value: Any, root: str | None = None) -> list[Any] | None:
        """Collect every computing party's ``value`` in rank order.

        With ``root=None`` every party gets the list (all-to-all); otherwise only ``root``
        does and the others get None.
        """
        if root is None:
            self.broadcast(value)
            return [value if p == self.party else self.recv(p) for p in self.parties]
        if root not in self.parties:
            raise ValueError(f"unknown root party {root!r}")
        if self.party != root:
            self.send(root, value)
            return None
        return [value if p == self.party else self.recv(p) for p in self.parties]

    def renew_deadline(self) -> None:
        """Progress was made (a bucket of a bucketed job, a chunk of an out-of-core pass): the
        job's timeout starts again from now, so it bounds the time without progress, not the
        whole job. A renewal within a quarter of the timeout of the last one is skipped (each
        moves the transport's streams to new calls): a job fails after between 3/4 of its
        timeout and all of it without progress."""
        now = time.monotonic()
        if now + self.timeout - self.deadline > self.timeout / 4:
            self.deadline = now + self.timeout

    def report_progress(self, fraction: float | None = None, phase: str | None = None, *,
                        done: int | None = None, total: int | None = None, unit: str | None = None) -> None:
        """Tell whoever runs the job how far along it is; a no-op when nobody listens.

        ``phase`` says what the job does now ("private join: encrypting rows (Paillier)"),
        ``done`` of ``total`` steps of it are finished, counted in ``unit`` ("batches",
        "rows"). A call without ``phase`` stays in the current phase; ``fraction`` (0..1)
        alone is the older form. Report counts of public sizes only (batches of the row
        counts the protocol reveals), never anything that depends on secret values.
        """
        if self._progress is not None:
            self._progress_now = self._progress_now.then(fraction, phase, done, total, unit)
            self._progress(self._progress_now)

    # -- used by the runners (run_local, the party server), not by protocol code ----------

    def on_progress(self, listener: Callable[[Progress], None] | None) -> None:
        """Call ``listener`` with the job's :class:`~mpc.runtime.progress.Progress` at every
        ``report_progress`` of this party (None: stop listening)."""
        self._progress = listener

    def abort(self, reason: str, origin: str | None = None) -> None:
        """Tell every other party of the job that this party failed (``reason``, which
        names no secret value, is what they report; ``origin`` is the party whose failure
        this is, when this party only passes on a peer's)."""
        others = [p for p in self.parties + self.helpers if p != self.party]
        try:
            self._transport.abort(self.job_id, self.party, others, reason, origin or self.party)
        except GaotieError:
            pass

    def finish(self) -> None:
        """Flush this party's outgoing messages at the end of the job."""
        self._transport.finish(self.job_id, self.party, self.deadline)
