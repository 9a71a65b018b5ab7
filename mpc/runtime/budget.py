"""Memory budgets as people write them: ``"2GiB"``, ``"512 MiB"``, ``"2G"`` or bytes; and
durations: ``"7d"``, ``"12h"``, ``"30m"``, ``"90s"`` or seconds.

``[limits] memory`` of a party server and a job's ``memory`` parameter are parsed here;
:mod:`protocols.buckets` turns a budget into the rows of one hash bucket.
``[limits] checkpoint_retention`` (how long a stale bucket checkpoint is kept) too.
"""

from __future__ import annotations

import re

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text: str | int, what: str = "memory") -> int:
    """``text`` as a positive number of bytes (binary units: 1 GiB = 1 G = 2^30 bytes);
    ValueError naming ``what`` otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(text))
        if not m:
            raise ValueError(f"{what}: {text!r} is not a size such as '2GiB', '512MiB' or a number of bytes")
        value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value <= 0:
        raise ValueError(f"{what} must be positive, got {text!r}")
    return value


_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int | float, what: str = "duration") -> float:
    """``text`` as a number of seconds, zero or more (``"7d"``, ``"12h"``, ``"30m"``, ``"90s"``
    or a number); ValueError naming ``what`` otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdSMHD]?)\s*", str(text))
        if not m:
            raise ValueError(f"{what}: {text!r} is not a duration such as '7d', '12h', '30m' or a number of seconds")
        value = float(m.group(1)) * _SECONDS[m.group(2).lower()]
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{what} must be zero or more seconds, got {text!r}")
    return value
