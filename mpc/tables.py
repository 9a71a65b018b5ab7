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
import os
from collections.abc import Iterable, Iterator
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
    streams the file's bytes to a client that fetches the result (the ``Result`` RPC with
    ``accept_files``); it reads it back whole (:meth:`load`) only for older clients.

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
        # a name of its own: a writer an interrupted attempt left open must not write into this one's file
        self._tmp = self.path.with_name(f".{self.path.name}.{os.urandom(6).hex()}.tmp")
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

    def abort(self) -> None:
        """Give up the file (a failed job): closed and removed, nothing appears under the name."""
        if self._writer is not None:
            try:
                self._writer.close()
            finally:
                self._writer = None
        self._tmp.unlink(missing_ok=True)

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


def rebatch(frames: Iterable[pd.DataFrame], rows: int, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """The rows of ``frames`` again, in frames of exactly ``rows`` rows (the last one shorter,
    and one empty frame of ``columns`` when there are no rows at all)."""
    held: list[pd.DataFrame] = []
    count = 0
    given = False
    for frame in frames:
        while len(frame):
            take = frame.iloc[:rows - count]
            frame = frame.iloc[len(take):]
            held.append(take)
            count += len(take)
            if count == rows:
                yield pd.concat(held, ignore_index=True) if len(held) > 1 else held[0].reset_index(drop=True)
                given, held, count = True, [], 0
    if held:
        yield pd.concat(held, ignore_index=True) if len(held) > 1 else held[0].reset_index(drop=True)
    elif not given:
        yield pd.DataFrame({c: pd.Series([], dtype=object) for c in columns or []})


def _write_parquet(path: Path, frames: Iterable[pd.DataFrame], group: int, schema: Any = None) -> int:
    """Write ``frames`` to a new Parquet file made with mode 0600 (row groups of ``group``
    rows; ``schema``: the Arrow schema to cast to, else the first frame's); returns its rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    rows = 0
    with os.fdopen(fd, "wb") as f:
        writer = None
        for frame in frames:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(f, schema if schema is not None else table.schema)
            writer.write_table(table.cast(writer.schema), row_group_size=group)
            rows += len(frame)
        if writer is not None:
            writer.close()
    return rows


class SortedRuns:
    """Rows sorted by a key in bounded memory, an external merge sort: :meth:`add` takes rows a
    batch at a time with one key per row; every ``run_rows`` rows held are sorted (stably, by
    key) and written as a *run*, a Parquet file of ``directory`` made with mode 0600;
    :meth:`merged` yields all rows in key order, ties in the order they were added, by a k-way
    merge of the runs read a row group (``run_rows / fan_in`` rows) at a time, in passes of at
    most ``fan_in`` runs (a pass merges groups of runs into longer runs). In memory: the rows of
    one run while it fills, then a row group of each of at most ``fan_in`` runs. The directory
    is the sort's own: runs an interrupted sort left there are removed first.

    The key: a 1-D numpy array of one sortable kind whose numpy order is the order wanted
    (numbers, or str or bytes in an object array: Python's order). The merge cuts each run's
    row group at the smallest last key among the runs still reading (``np.searchsorted``): the
    rows up to it are final, sorted together and given out."""

    KEY = "__key"

    def __init__(self, directory: Path, run_rows: int, fan_in: int = 16) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for old in self.dir.glob("run-*.parquet"):      # an interrupted sort's (a resumed job)
            old.unlink()
        self.run_rows, self.fan_in = max(1, int(run_rows)), max(2, int(fan_in))
        self.group = max(1, self.run_rows // self.fan_in)
        self.rows = 0
        self.runs: list[Path] = []
        self._held: list[pd.DataFrame] = []
        self._count = 0
        self._made = 0

    def add(self, frame: pd.DataFrame, key: np.ndarray) -> None:
        if len(frame) != len(key):
            raise ValueError(f"{len(frame)} rows with {len(key)} keys")
        if not len(frame):
            return
        part = frame.reset_index(drop=True)
        part[self.KEY] = key
        self._held.append(part)
        self._count += len(part)
        self.rows += len(part)
        if self._count >= self.run_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._held:
            return
        frame = pd.concat(self._held, ignore_index=True)
        self._held, self._count = [], 0
        self.runs.append(self._write([_by_key(frame, self.KEY)]))

    def _write(self, frames: Iterable[pd.DataFrame], schema: Any = None) -> Path:
        path = self.dir / f"run-{self._made:06d}.parquet"
        self._made += 1
        _write_parquet(path, frames, self.group, schema)
        return path

    def merged(self) -> Iterator[pd.DataFrame]:
        """Every row added, in key order (ties in the order added), a batch at a time, without
        the key; the runs are removed as they are read."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._flush()
        runs = self.runs
        while len(runs) > self.fan_in:      # a pass: groups of fan_in runs into longer runs
            longer = []
            for i in range(0, len(runs), self.fan_in):
                group = runs[i:i + self.fan_in]
                schema = pa.unify_schemas([pq.read_schema(p) for p in group], promote_options="permissive")
                longer.append(self._write(self._merge(group), schema))
                for p in group:
                    p.unlink()
            runs = longer
        self.runs = runs
        for frame in self._merge(runs):
            yield frame.drop(columns=[self.KEY])
        for p in runs:
            p.unlink(missing_ok=True)
        self.runs = []

    def _merge(self, paths: list[Path]) -> Iterator[pd.DataFrame]:
        import pyarrow.parquet as pq

        k = len(paths)
        readers = [pq.ParquetFile(p).iter_batches(batch_size=self.group) for p in paths]
        bufs: list[pd.DataFrame | None] = [None] * k
        keys: list[np.ndarray] = [np.zeros(0)] * k
        live = [True] * k

        def load(j: int) -> None:
            while live[j]:
                batch = next(readers[j], None)
                if batch is None:
                    live[j] = False
                elif batch.num_rows:
                    bufs[j] = batch.to_pandas()
                    keys[j] = bufs[j][self.KEY].to_numpy()
                    return

        for j in range(k):
            load(j)
        while True:
            reading = [j for j in range(k) if live[j]]
            if not reading:
                rest = [bufs[j] for j in range(k) if bufs[j] is not None and len(bufs[j])]
                if rest:
                    yield _by_key(pd.concat(rest, ignore_index=True), self.KEY)
                return
            # the frontier: the smallest last key of the runs still reading (ties: the first run);
            # every row at or below it is final (a run before r gives its ties too, one after not)
            r = min(reading, key=lambda j: (keys[j][-1], j))
            edge = keys[r][-1]
            out = []
            for j in range(k):
                if bufs[j] is None or not len(bufs[j]):
                    continue
                cut = len(keys[j]) if j == r else int(np.searchsorted(keys[j], edge,
                                                                      side="right" if j < r else "left"))
                if cut:
                    out.append(bufs[j].iloc[:cut])
                    bufs[j], keys[j] = bufs[j].iloc[cut:], keys[j][cut:]
            yield _by_key(pd.concat(out, ignore_index=True), self.KEY)
            for j in range(k):
                if live[j] and not len(bufs[j]):
                    load(j)


def _by_key(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """``frame`` stably sorted by its column ``key``."""
    order = np.argsort(frame[key].to_numpy(), kind="stable")
    return frame.iloc[order].reset_index(drop=True)
