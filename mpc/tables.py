"""pandas DataFrames as a codec value kind (``table``), and result files.

A table travels as its column names and one numpy array per column (string columns as
lists of str, or inside :func:`compact_text` as numpy ``U`` arrays), so job results that
are tables reach clients as DataFrames again.
Results are written to disk atomically: a temporary file in the same directory, fsync,
then rename, so a reader (or a crash) never sees half a file.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mpc.runtime import codec, files

_COMPACT_TEXT: contextvars.ContextVar[bool] = contextvars.ContextVar("compact_text", default=False)


@contextlib.contextmanager
def compact_text() -> Iterator[None]:
    """Inside: tables encode text columns and the index as numpy ``U`` arrays where that is
    compact (the streaming ``Result`` RPC, whose clients decode them); outside, as lists of
    str, which clients before the ``U`` array kind also decode (``Status``)."""
    token = _COMPACT_TEXT.set(True)
    try:
        yield
    finally:
        _COMPACT_TEXT.reset(token)


def _strings(values: Any) -> list[str] | np.ndarray:
    """Text cells for the wire: a fixed-width numpy ``U`` array (one bytes field, about
    4 bytes a character) when padding at most doubles it and it keeps every value (numpy
    drops trailing NULs), else a list of str (one Value per cell, ~170 bytes each in
    memory). Both decode to the same DataFrame column."""
    cells = ["" if v is None else str(v) for v in values]
    if not cells or not _COMPACT_TEXT.get():
        return cells
    lengths = np.fromiter(map(len, cells), dtype=np.int64, count=len(cells))
    width = int(lengths.max())
    if width > 2 * lengths.mean() + 8:
        return cells
    packed = np.array(cells, dtype=f"U{max(width, 1)}")
    if not np.array_equal(np.strings.str_len(packed), lengths):
        return cells
    return packed


def _arrow_ascii(column: pd.Series) -> np.ndarray | None:
    """A pyarrow-backed text column of non-empty ASCII cells without nulls as the ``U``
    array :func:`_strings` would make (compact text only), built from Arrow's buffers a
    slice at a time without a Python str per cell (2^23 cells of a PSI result cost ~1 GB as
    str objects and their list); None where it does not apply."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chunked = getattr(column.array, "_pa_array", None)
    if chunked is None or not _COMPACT_TEXT.get() or not len(chunked) or chunked.null_count:
        return None
    arr = chunked.combine_chunks() if isinstance(chunked, pa.ChunkedArray) else chunked
    large = pa.types.is_large_string(arr.type)
    if not (large or pa.types.is_string(arr.type)) or not pc.all(pc.string_is_ascii(arr)).as_py():
        return None
    lengths = pc.utf8_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    width = int(lengths.max())
    if width == 0 or width > 2 * lengths.mean() + 8 or (lengths == 0).any():
        return None     # the list form, as _strings decides
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64 if large else np.int32)[
        arr.offset:arr.offset + len(arr) + 1]
    chars = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    if not chars[offsets[0]:offsets[-1]].all():
        return None     # a NUL character: numpy would drop it at the end of a cell
    out = np.zeros((len(arr), width), dtype=np.uint32)
    step = 1 << 18
    for start in range(0, len(arr), step):
        lens = lengths[start:start + step]
        rows = np.repeat(np.arange(start, start + len(lens)), lens)
        first = offsets[start:start + len(lens)].astype(np.int64)
        cols = np.arange(len(rows)) - np.repeat(np.cumsum(lens) - lens, lens)
        out[rows, cols] = chars[np.repeat(first, lens) + cols]
    return out.view(f"U{width}").ravel()


def _table_to_wire(frame: pd.DataFrame) -> dict[str, Any]:
    columns = []
    for name in frame.columns:
        values = _arrow_ascii(frame[name])
        if values is None:
            values = frame[name].to_numpy()
            if values.dtype.kind not in "biuf":
                values = _strings(values)
        columns.append(values)
    if (_COMPACT_TEXT.get() and isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
            and frame.index.step == 1):
        index: list[str] | np.ndarray | int = len(frame)     # 0..n-1: just its length
    else:
        index = _strings(frame.index)
    return {"names": [str(c) for c in frame.columns], "columns": columns, "index": index}


def _table_from_wire(value: Any) -> pd.DataFrame:
    if not isinstance(value, dict) or set(value) != {"names", "columns", "index"}:
        raise codec.CodecError("malformed table")
    names, columns, index = value["names"], value["columns"], value["index"]
    if isinstance(index, int) and not isinstance(index, bool):   # compact: the range 0..n-1
        if len(names) != len(columns) or any(len(c) != index for c in columns):
            raise codec.CodecError("table columns of different lengths")
        return pd.DataFrame({n: c for n, c in zip(names, columns, strict=True)}, index=pd.RangeIndex(index))
    if len(names) != len(columns) or any(len(c) != len(index) for c in columns):
        raise codec.CodecError("table columns of different lengths")
    frame = pd.DataFrame({n: c for n, c in zip(names, columns, strict=True)})
    frame.index = index
    if all(i == str(k) for k, i in enumerate(index)):
        frame = frame.reset_index(drop=True)
    return frame


codec.register_extension("table", pd.DataFrame, _table_to_wire, _table_from_wire)


def to_frame(result: Any) -> pd.DataFrame:
    """A result of any shape as a DataFrame, for the results directory.

    Tables stay tables; a dict of equal-length columns becomes a table; a dict of scalars
    one row; any other dict (e.g. several tables) one row per entry with the entry as JSON.
    """
    if isinstance(result, pd.DataFrame):
        return result
    if isinstance(result, dict) and result and all(np.ndim(v) == 1 and not isinstance(v, dict)
                                                   for v in result.values()):
        lengths = {len(v) for v in result.values()}
        if len(lengths) == 1:
            return pd.DataFrame(result)
    if isinstance(result, dict) and all(np.ndim(v) == 0 and not isinstance(v, dict) for v in result.values()):
        return pd.DataFrame([{k: _cell(v) for k, v in result.items()}])
    if isinstance(result, dict):
        return pd.DataFrame({"name": list(result), "value": [_json(v) for v in result.values()]})
    if isinstance(result, (list, tuple, np.ndarray)) and np.ndim(result) == 1:
        return pd.DataFrame({"value": list(result)})
    return pd.DataFrame({"value": [_cell(result)]})


def _json(v: Any) -> str:
    """JSON text of a result entry (tables in pandas' "split" layout)."""
    import json

    if isinstance(v, pd.DataFrame):
        return v.to_json(orient="split")
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_json(x)}" for k, x in v.items()) + "}"
    if isinstance(v, np.ndarray):
        return json.dumps(v.tolist())
    return json.dumps(v, default=str)


def _cell(v: Any) -> Any:
    if isinstance(v, np.ndarray | list | tuple | dict):
        return str(v if not isinstance(v, np.ndarray) else v.tolist())
    return v


def write_atomic(path: Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as Parquet to ``path`` atomically (:mod:`mpc.runtime.files`)."""
    path = Path(path)
    files.write_atomic(path, lambda f: frame.to_parquet(f, index=False))
    return path


class ResultFile:
    """A table result a job wrote to a Parquet file batch by batch (a bucketed PSI's matched
    rows), so that no process holds the whole table while the job runs: the party server
    moves the file into its results directory (:meth:`move`) instead of writing a frame, and
    reads it back (:meth:`load`) only when a client fetches the result.

    Args:
        path: the Parquet file.
        rows: its number of rows.
        columns: its column names.
    """

    def __init__(self, path: Path, rows: int, columns: list[str]) -> None:
        self.path, self.rows, self.columns = Path(path), int(rows), list(columns)

    def load(self) -> pd.DataFrame:
        return pd.read_parquet(self.path)

    def move(self, target: Path) -> ResultFile:
        """The same result at ``target`` (an atomic rename: the same file system)."""
        import os
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, target)
        return ResultFile(target, self.rows, self.columns)


class ResultWriter:
    """Writes a table result to a Parquet file a batch of rows at a time (one row group per
    batch); :meth:`close` returns the :class:`ResultFile`. The file appears under its name
    only once complete (a temporary name, then a rename)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._writer = None
        self._columns: list[str] = []
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._tmp.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._tmp, table.schema)
            self._columns = list(frame.columns)
        self._writer.write_table(table.cast(self._writer.schema))
        self.rows += len(frame)

    def close(self, empty: pd.DataFrame) -> ResultFile:
        """Finish the file (``empty``: the frame written when no batch was, for its columns)."""
        import os
        if self._writer is None:
            self.write(empty)
        self._writer.close()
        with open(self._tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self._tmp, self.path)
        return ResultFile(self.path, self.rows, self._columns)
