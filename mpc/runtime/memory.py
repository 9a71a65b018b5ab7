"""In-memory transport: all parties are threads of one process.

Values still go through the codec (encode then decode), so a protocol that sends
something the gRPC transport could not carry fails here too, and parties never share
mutable objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mpc.runtime import codec
from mpc.runtime.errors import PeerFailed
from mpc.runtime.mailbox import Mailbox


class MemoryTransport:
    """Delivers straight into each party's mailbox."""

    def __init__(self, parties: Iterable[str]) -> None:
        self.mailboxes = {p: Mailbox() for p in parties}

    def open(self, job_id: str) -> None:
        for box in self.mailboxes.values():
            box.open(job_id)

    def close(self, job_id: str) -> None:
        for box in self.mailboxes.values():
            box.close(job_id)

    def send(self, job_id: str, sender: str, receiver: str, value: Any, deadline: float) -> None:
        copy = codec.loads(codec.dumps(value))  # the bytes the gRPC transport would send
        self.mailboxes[receiver].put(job_id, sender, receiver, copy)

    def recv(self, job_id: str, sender: str, receiver: str, deadline: float) -> Any:
        return self.mailboxes[receiver].get(job_id, sender, receiver, deadline)

    def abort(self, job_id: str, sender: str, receivers: Sequence[str], reason: str, origin: str = "") -> None:
        for r in receivers:
            self.mailboxes[r].fail(job_id, PeerFailed(sender, reason, origin))

    def finish(self, job_id: str, sender: str, deadline: float) -> None:
        pass
