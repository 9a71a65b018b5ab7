"""Memory figures of a process from ``/proc/<pid>/status``, for the benchmarks' RSS columns.

``VmHWM`` is a process's peak resident set, ``VmRSS`` its current one (Linux, in KiB there).
Benchmarks import this as ``from procstatus import status_mib``: pytest and ``python
bench/...`` both put bench/ on sys.path.
"""

from __future__ import annotations

from pathlib import Path


def status_mib(pid: int, key: str, missing: float = float("nan")) -> float:
    """``key`` (e.g. ``"VmHWM"``, ``"VmRSS"``) of process ``pid`` in MiB; ``missing`` when the
    process has no such line or is gone (a sampled worker that exited)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return missing
