"""Progress of a job: the phase it is in and how many of that phase's steps are done.

Protocols report through ``ctx.report_progress(phase=..., done=..., total=..., unit=...)``
(for example "private join: encrypting rows (Paillier)", 3 of 8 batches); whoever runs
the job listens (a party server keeps the latest :class:`Progress` for ``Status``).
:class:`ProgressDisplay` shows it to a person: on a terminal one tqdm bar per phase
("n/total batches"); anywhere else (a pipe, a log file, CI) one plain line per phase and
never a carriage return. Progress carries counts of batches or rows, which the protocols'
reveal lines already allow (row counts), never values.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass(frozen=True)
class Progress:
    """Where a job is: ``done`` of ``total`` ``unit`` of ``phase`` (``total`` 0: unknown).

    ``fraction`` is the phase's ``done / total`` when the protocol counts steps, otherwise
    the fraction of the job the protocol reported.
    """

    fraction: float = 0.0
    phase: str = ""
    done: int = 0
    total: int = 0
    unit: str = "steps"

    def then(self, fraction: float | None = None, phase: str | None = None, done: int | None = None,
             total: int | None = None, unit: str | None = None) -> Progress:
        """The progress after a report: a report without ``phase`` stays in this phase."""
        phase = self.phase if phase is None else str(phase)
        same = phase == self.phase
        done = int(done) if done is not None else (self.done if same else 0)
        total = int(total) if total is not None else (self.total if same else 0)
        unit = str(unit) if unit else (self.unit if same else "steps")
        if fraction is None:
            fraction = done / total if total else (self.fraction if same else 0.0)
        return Progress(min(max(float(fraction), 0.0), 1.0), phase, max(done, 0), max(total, 0), unit)


class ProgressDisplay:
    """Shows a job's progress on ``stream`` (stderr by default) as its phases come.

    Args:
        title: what runs, e.g. ``"join.stats 3f2a..."``.
        stream: where to write.
        interactive: tqdm bars (True) or one line per phase (False); by default bars when
            ``stream`` is a terminal or in a Jupyter kernel.
    """

    def __init__(self, title: str, stream: TextIO | None = None, interactive: bool | None = None) -> None:
        self.title = title
        self.stream = stream if stream is not None else sys.stderr
        if interactive is None:
            interactive = _isatty(self.stream) or _in_jupyter()
        self.interactive = interactive
        self._phase: str | None = None
        self._bar: Any = None

    def update(self, progress: Progress) -> None:
        if progress == Progress() and self._phase is None:  # nothing reported yet
            return
        if progress.phase != self._phase:
            self._close_bar()
            self._phase = progress.phase
            self._start(progress)
        if self._bar is not None and self._bar.total:
            n = progress.done if progress.total else progress.fraction * 100
            self._bar.update(n - self._bar.n)
        elif self._bar is not None:
            self._bar.refresh()  # the phase's elapsed time keeps counting

    def _start(self, p: Progress) -> None:
        desc = f"{self.title}: {p.phase}" if p.phase else self.title
        if not self.interactive:
            counted = f" ({p.total} {p.unit})" if p.total else ""
            print(desc + counted, file=self.stream, flush=True)
            return
        from tqdm.auto import tqdm
        if p.total:  # n/total steps and their rate
            self._bar = tqdm(total=p.total, desc=desc, unit=f" {p.unit}", file=self.stream, leave=True)
        elif p.phase:  # a phase without counted steps: its name and how long it has run
            self._bar = tqdm(total=None, desc=desc, file=self.stream, leave=True, bar_format="{desc} [{elapsed}]")
        else:  # the protocol reported only a fraction of the job: a bar without a rate
            self._bar = tqdm(total=100, desc=desc, file=self.stream, leave=True,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}]")

    def finish(self) -> None:
        """The job is done: fill the last bar and close it."""
        if self._bar is not None and self._bar.total:
            self._bar.update(self._bar.total - self._bar.n)
        self._close_bar()

    def close(self) -> None:
        self._close_bar()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def _in_jupyter() -> bool:
    """Whether this runs in a Jupyter kernel (where tqdm draws widgets), not merely with
    IPython imported."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
    except Exception:  # noqa: BLE001 - an IPython too old or half-imported: not a notebook
        return False
    return type(shell).__name__ == "ZMQInteractiveShell"
