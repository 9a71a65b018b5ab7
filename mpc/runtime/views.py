"""Views: everything each party of a job receives, kept for checking what it can learn.

A protocol's security argument is about *views*: the messages a party receives, in order.
:func:`record_views` runs a protocol on the in-memory transport (values still go through
the codec) and returns, beside the results, every value each party and helper received,
so a test can assert that a view carries nothing beyond the protocol's reveal line (for
example, that no bit of it correlates with another party's secret input).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mpc.runtime.memory import MemoryTransport


class RecordingTransport(MemoryTransport):
    """The in-memory transport, keeping ``views[receiver]`` as a list of ``(sender, value)``."""

    def __init__(self, parties: Sequence[str]) -> None:
        super().__init__(parties)
        self.views: dict[str, list[tuple[str, Any]]] = {p: [] for p in parties}

    def recv(self, job_id: str, sender: str, receiver: str, deadline: float) -> Any:
        value = super().recv(job_id, sender, receiver, deadline)
        self.views[receiver].append((sender, value))
        return value


def record_views(fn: Callable[..., Any], parties: Sequence[str],
                 args: Mapping[str, Sequence[Any]] | None = None,
                 kwargs: Mapping[str, Mapping[str, Any]] | None = None,
                 timeout: float = 60.0, **runtime_options: Any
                 ) -> tuple[dict[str, Any], dict[str, list[tuple[str, Any]]]]:
    """Run ``fn`` like :func:`mpc.run_local` (memory transport) and return ``(results, views)``.

    ``views[p]`` lists, in the order ``p`` received them, ``(sender, value)`` for every value
    party or helper ``p`` received during the job (helpers such as the dealer included).
    """
    from mpc.runtime.local import run_local

    recorders: list[RecordingTransport] = []

    def make(everyone: Sequence[str]) -> RecordingTransport:
        recorders.append(RecordingTransport(everyone))
        return recorders[-1]

    results = run_local(fn, parties, args=args, kwargs=kwargs, transport=make, timeout=timeout,
                        **runtime_options)
    return results, recorders[0].views


def flatten(view: list[tuple[str, Any]]) -> list[Any]:
    """Every leaf (array, bytes, int, str, float...) of a view, nested lists and dicts opened."""
    out: list[Any] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        else:
            out.append(v)

    for _sender, value in view:
        walk(value)
    return out
