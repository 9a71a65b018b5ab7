"""Atomic file writes (a reader sees the old file or the whole new one, never a part), and
arrays spilled to memory-mapped files (:func:`spill`, :func:`release`).

Results and checkpoints are written to a temp file in the target's directory, fsynced and
renamed over the target (``os.replace`` is atomic within one file system); on any failure
the temp file is removed and the target is untouched, so a crash never leaves a
half-written result or checkpoint behind.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def write_atomic(path: Path, write: Callable[[BinaryIO], None], check: Callable[[Path], None] | None = None) -> None:
    """Create or replace ``path`` with what ``write(file)`` writes (streamed, not buffered);
    ``check(temp_path)``, if given, runs on the complete temp file before the rename and may
    raise to refuse it (the target is then untouched)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_SPILLED: weakref.WeakSet = weakref.WeakSet()    # the maps ``spill`` and ``scratch`` made (shared)


def spill(directory: Path, parts: Iterable[np.ndarray], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A read-only array of ``shape`` whose contents (``parts``, written in order: the C-order
    pieces of the array, a chunk at a time) live in a file of ``directory``, memory-mapped,
    so the array does not count in the process's memory until it is read, and pages read
    leave it again on :func:`release`. The file is made with mode 0600 (``mkstemp``) and
    unlinked as soon as it is mapped: nothing is left behind whether the job ends or fails
    (its disk space goes when the last view of the array does)."""
    def write(f: BinaryIO, size: int) -> None:
        written = 0
        for part in parts:
            part = np.ascontiguousarray(part, dtype=dtype)
            f.write(memoryview(part).cast("B"))
            written += part.nbytes
        if written != size:
            raise ValueError(f"spill of {shape} {dtype}: {written} bytes written, {size} expected")
        f.flush()

    return _mapped(directory, "spill-", shape, dtype, write, mmap.ACCESS_READ)


def scratch(directory: Path, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A writable array of ``shape`` (zeros) in a file of ``directory``, memory-mapped shared:
    what is written goes to the page cache and the file, so pages leave the process's
    resident memory on :func:`release` without losing data. Mode 0600 and unlinked as soon
    as it is mapped, as :func:`spill`."""
    return _mapped(directory, "scratch-", shape, dtype, lambda f, size: f.truncate(size), mmap.ACCESS_WRITE)


def _mapped(directory: Path, prefix: str, shape: tuple[int, ...], dtype: Any,
            fill: Callable[[BinaryIO, int], Any], access: int) -> np.ndarray:
    """An array of ``shape`` on a shared map of a new 0600 file of ``directory``, unlinked
    once mapped, after ``fill(file, bytes)`` has written it (or sized it)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size == 0:
        return np.zeros(shape, dtype)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".bin", dir=directory)
    try:
        with os.fdopen(fd, "r+b") as f:
            fill(f, size)
            mapped = mmap.mmap(f.fileno(), size, access=access)
            _SPILLED.add(mapped)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return np.frombuffer(mapped, dtype).reshape(shape)


def release(array: np.ndarray) -> None:
    """Drop the pages of the memory map behind ``array`` (a :func:`spill` or :func:`scratch`
    array or a view of one) from this process's resident memory; they stay in the page cache
    (written ones too: the maps are shared) and are read again when touched. Nothing for any
    other array (a private map would lose data)."""
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    mapped = base.obj if isinstance(base, memoryview) else base
    if isinstance(mapped, mmap.mmap) and mapped in _SPILLED and not mapped.closed:
        mapped.madvise(mmap.MADV_DONTNEED)
