"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

Results and checkpoints are written to a temp file in the target's directory, fsynced and
renamed over the target (``os.replace`` is atomic within one file system); on any failure
the temp file is removed and the target is untouched, so a crash never leaves a
half-written result or checkpoint behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Create or replace ``path`` with what ``write(file)`` writes (streamed, not buffered)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
