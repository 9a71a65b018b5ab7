"""Datasets of a party server: read CSV/Parquet files (pyarrow) in row batches, hand out
policy-checked columns.

Files are streamed: :func:`iter_batches` yields numpy columns a batch of rows at a time
(``pyarrow.csv.open_csv``, ``pyarrow.parquet.ParquetFile.iter_batches``), so a bucketed
job (:mod:`protocols.buckets`) holds one batch of its input at once, whatever the file's
size. :func:`read_table` is the concatenation of those batches, and whole columns are
cached by :class:`DataStore` for the jobs that still read a whole column. A CSV file is
scanned once first (:func:`scan_csv`, cached per file and modification time): Arrow's
streaming reader infers column types from its first block only, so the scan widens a
column whose later rows need it (null -> int64 -> float64 -> string, as a whole-file read
infers) and finds malformed rows; the batches are then read with those types, so a
streamed file gives exactly the columns a whole-file read gives. Errors name the dataset,
the file, and where possible the line and column; they never quote cell values.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mpc.runtime.errors import DataError
from mpc.server.config import Dataset
from protocols.registry import ALLOWED, ColumnRef, ColumnUse, numeric

__all__ = ["DataError", "DataStore", "PolicyRefused", "iter_batches", "numeric", "read_table", "scan_csv"]


class PolicyRefused(DataError):
    """A job would use a column beyond what the party's policy allows."""


BATCH_ROWS = 1 << 20          # rows per streamed batch
_BLOCK_BYTES = 16 << 20       # CSV bytes Arrow parses at a time
_WIDER = {"null": "int64", "int64": "double", "double": "string", "bool": "string"}


def read_table(path: Path) -> dict[str, np.ndarray]:
    """Read a CSV or Parquet file into numpy columns (strings as object arrays): the
    concatenation of :func:`iter_batches`."""
    parts: dict[str, list[np.ndarray]] = {}
    names: list[str] = []
    for batch in iter_batches(path):
        names = names or list(batch)
        for name, arr in batch.items():
            parts.setdefault(name, []).append(arr)
    if not names:
        names = schema_names(path)
        return {name: np.zeros(0, dtype=object) for name in names}
    return {name: parts[name][0] if len(parts[name]) == 1 else np.concatenate(parts[name]) for name in names}


def schema_names(path: Path) -> list[str]:
    """The column names of a CSV or Parquet file."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq
        return list(_guard(path, lambda: pq.ParquetFile(path).schema_arrow.names))
    return list(scan_csv(path).types)


class CsvSchema:
    """What a scan of a CSV file found: each column's Arrow type, the columns with nulls,
    the number of data rows."""

    def __init__(self, types: dict[str, Any], nullable: set[str], rows: int) -> None:
        self.types, self.nullable, self.rows = types, nullable, rows


def scan_csv(path: Path) -> CsvSchema:
    """Stream a CSV file once to fix its column types (widened where later rows need it)
    and to find malformed rows (DataError naming the file and line)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types: dict[str, Any] = {}
    for _ in range(4 * 64):                     # each retry widens one column one step
        bad: list = []
        nullable: set[str] = set()
        rows = 0
        try:
            options = (pacsv.ReadOptions(block_size=_BLOCK_BYTES),
                       pacsv.ParseOptions(invalid_row_handler=lambda row, bad=bad: bad.append(row) or "skip"),
                       pacsv.ConvertOptions(column_types=types))
            reader = _guard(path, lambda o=options: pacsv.open_csv(path, *o))
            found = {f.name: f.type for f in reader.schema}
            for batch in _each(path, reader):
                rows += batch.num_rows
                for name, column in zip(batch.schema.names, batch.columns, strict=True):
                    if column.null_count:
                        nullable.add(name)
        except _Conversion as exc:
            name = list(found)[exc.column]
            now = str(types.get(name, found[name]))
            wider = _WIDER.get(now, "string")
            if now == "string":
                raise DataError(f"cannot read {path}: column {name!r}: {exc.reason}") from None
            types[name] = pa.type_for_alias(wider)
            continue
        if bad:
            raise DataError(f"cannot read {path}: line {_bad_line(path)}: expected "
                            f"{bad[0].expected_columns} columns, got {bad[0].actual_columns}")
        return CsvSchema({name: types.get(name, t) for name, t in found.items()}, nullable, rows)
    raise DataError(f"cannot read {path}: column types do not settle")


class _Conversion(Exception):
    """Arrow could not convert a value of column number ``column`` to its inferred type."""

    def __init__(self, column: int, reason: str) -> None:
        super().__init__(reason)
        self.column, self.reason = column, reason


def _guard(path: Path, step):
    """Run one Arrow step; its errors as DataError naming the file (never quoting cells)."""
    import pyarrow as pa
    try:
        return step()
    except FileNotFoundError:
        raise DataError(f"dataset file {path} does not exist") from None
    except pa.ArrowInvalid as exc:
        text = str(exc)
        if text.startswith("In CSV column #") and "conversion error" in text:
            raise _Conversion(int(text[len("In CSV column #"):].split(":", 1)[0]), _scrub(text)) from None
        raise DataError(f"cannot read {path}: {_scrub(text)}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {_scrub(str(exc))}") from None


def iter_batches(path: Path, columns: list[str] | None = None, batch_rows: int = BATCH_ROWS,
                 schema: CsvSchema | None = None) -> Iterator[dict[str, np.ndarray]]:
    """The file's rows a batch at a time (at most about ``batch_rows`` rows each) as numpy
    columns (strings as object arrays; integer columns holding nulls as float64), only
    ``columns`` (all by default). Every batch has the same dtypes as :func:`read_table`.
    ``schema``: a :func:`scan_csv` of the file already made (CSV only)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".parquet":
        pf = _guard(path, lambda: pq.ParquetFile(path))
        nullable = _parquet_nullable(path, pf)
        batches = pf.iter_batches(batch_size=batch_rows, columns=columns)
    else:
        schema = schema or scan_csv(path)
        nullable = schema.nullable
        reader = _guard(path, lambda: pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(block_size=_BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(column_types=schema.types, include_columns=columns)))
        batches = _rebatch(_guard(path, lambda: iter(reader)), batch_rows)
    try:
        for batch in _each(path, batches):
            yield {name: _to_numpy(col, name in nullable)
                   for name, col in zip(batch.schema.names, batch.columns, strict=True)}
    except _Conversion as exc:      # the file changed since it was scanned
        raise DataError(f"cannot read {path}: {exc.reason}") from None


def _each(path: Path, batches: Any) -> Iterator[Any]:
    """The items of an Arrow batch iterator, its errors through :func:`_guard`."""
    it = _guard(path, lambda: iter(batches))
    while (batch := _guard(path, lambda: next(it, None))) is not None:
        yield batch


def _parquet_nullable(path: Path, pf: Any) -> set[str]:
    """The columns of a Parquet file holding nulls: from the row groups' statistics, or a
    pass over the columns whose statistics do not count them."""
    names = pf.schema_arrow.names
    out, unknown = set(), set()
    for rg in range(pf.metadata.num_row_groups):
        group = pf.metadata.row_group(rg)
        for i, name in enumerate(names):
            st = group.column(i).statistics
            if st is None or not st.has_null_count:
                unknown.add(name)
            elif st.null_count:
                out.add(name)
    unknown -= out
    if unknown:
        for batch in _each(path, pf.iter_batches(columns=sorted(unknown))):
            out.update(n for n, c in zip(batch.schema.names, batch.columns, strict=True) if c.null_count)
    return out


def _rebatch(batches: Iterator[Any], rows: int) -> Iterator[Any]:
    """Arrow record batches cut to at most ``rows`` rows."""
    for batch in batches:
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def _to_numpy(column: Any, nullable: bool) -> np.ndarray:
    import pyarrow as pa

    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
        arr = column.to_numpy(zero_copy_only=False)
        if nullable and arr.dtype.kind in "iub":
            arr = arr.astype(np.float64)
        return arr
    return np.array(column.to_pylist(), dtype=object)


def _bad_line(path: Path) -> str:
    """The line number of the first malformed CSV row (Arrow knows it single-threaded only)."""
    import pyarrow.csv as pacsv

    lines: list[int] = []

    def note(row) -> str:
        lines.append(row.number)
        return "skip"

    try:
        pacsv.read_csv(path, parse_options=pacsv.ParseOptions(invalid_row_handler=note),
                       read_options=pacsv.ReadOptions(use_threads=False))
    except Exception:  # noqa: BLE001 - only looking for the line number
        pass
    return str(lines[0]) if lines and lines[0] is not None else "?"


def _scrub(reason: str) -> str:
    """Drop the quoted row text Arrow appends to parse errors (it may hold private values)."""
    return reason.split(": '", 1)[0].split(' "', 1)[0]


class DataStore:
    """The datasets of one party, loaded lazily."""

    def __init__(self, party: str, datasets: dict[str, Dataset], workdir: Path | None = None,
                 memory: int | None = None, bucket_join_sizes: bool = False, bucket_psi_sizes: bool = False) -> None:
        self.party = party
        self.datasets = datasets
        self.workdir = workdir          # bucketed jobs spill and checkpoint under it
        self.memory = memory            # [limits] memory: bytes a bucketed job may hold
        self.bucket_join_sizes = bucket_join_sizes   # [limits]: consent to per-bucket join sizes
        self.bucket_psi_sizes = bucket_psi_sizes     # [limits]: consent to an N-party PSI's per-bucket sizes
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, np.ndarray]]] = {}
        self._scans: dict[str, tuple[tuple[float, int], CsvSchema]] = {}
        self._digests: dict[str, tuple[tuple[float, int], str]] = {}

    def describe(self) -> list[dict[str, Any]]:
        return [d.describe() for d in self.datasets.values()]

    def dataset(self, name: str) -> Dataset:
        if name not in self.datasets:
            raise DataError(f"party {self.party!r} has no dataset {name!r} "
                            f"(it has: {', '.join(sorted(self.datasets)) or 'none'})")
        return self.datasets[name]

    def check(self, uses: list[ColumnUse]) -> None:
        """Refuse unless every use of this party's columns is allowed by its policy."""
        for use in uses:
            if use.ref.party != self.party:
                continue
            ds = self.dataset(use.ref.dataset)
            if use.ref.column not in ds.policies:
                # Do not confirm or deny that a hidden column exists.
                raise PolicyRefused(f"party {self.party!r} refuses: dataset {ds.name!r} offers no column "
                                    f"{use.ref.column!r} (columns its policy does not list are hidden)")
            level = ds.policy(use.ref.column)
            if use.use not in ALLOWED[level]:
                raise PolicyRefused(f"party {self.party!r} refuses: dataset {ds.name!r} column "
                                    f"{use.ref.column!r} has policy {level!r}, which does not allow "
                                    f"use as {use.use}")

    def table(self, name: str) -> dict[str, np.ndarray]:
        ds = self.dataset(name)
        try:
            mtime = ds.path.stat().st_mtime
        except OSError:
            raise DataError(f"dataset {name!r}: file {ds.path} does not exist") from None
        with self._lock:
            cached = self._cache.get(name)
            if cached is None or cached[0] != mtime:
                cached = (mtime, read_table(ds.path))
                self._cache[name] = cached
            return cached[1]

    def _stamp(self, name: str) -> tuple[Dataset, tuple[float, int]]:
        ds = self.dataset(name)
        try:
            st = ds.path.stat()
        except OSError:
            raise DataError(f"dataset {name!r}: file {ds.path} does not exist") from None
        return ds, (st.st_mtime, st.st_size)

    def batches(self, refs: list[ColumnRef], batch_rows: int = BATCH_ROWS) -> Iterator[dict[str, np.ndarray]]:
        """This party's columns ``refs`` (all of one dataset) streamed a batch of rows at a
        time, keyed by column name; nothing is cached but the file's type scan."""
        names = {r.dataset for r in refs}
        if len(names) != 1 or any(r.party != self.party for r in refs):
            raise DataError(f"party {self.party!r}: a stream reads columns of one of its own datasets, "
                            f"not {', '.join(map(str, refs))}")
        ds, stamp = self._stamp(names.pop())
        schema = None
        if ds.path.suffix.lower() != ".parquet":
            with self._lock:
                cached = self._scans.get(ds.name)
            if cached is None or cached[0] != stamp:
                cached = (stamp, scan_csv(ds.path))
                with self._lock:
                    self._scans[ds.name] = cached
            schema = cached[1]
        present = set(schema.types) if schema is not None else set(schema_names(ds.path))
        for r in refs:
            if r.column not in present:
                raise DataError(f"dataset {r.dataset!r} of party {self.party!r} has no column {r.column!r}")
        columns = list(dict.fromkeys(r.column for r in refs))
        yield from iter_batches(ds.path, columns, batch_rows, schema)

    def fingerprint(self, name: str) -> str:
        """SHA-256 of a dataset's file (hex), cached per modification time and size: what a
        checkpoint's manifest records of its inputs."""
        ds, stamp = self._stamp(name)
        with self._lock:
            cached = self._digests.get(name)
        if cached is None or cached[0] != stamp:
            digest = hashlib.sha256()
            with open(ds.path, "rb") as f:
                while chunk := f.read(8 << 20):
                    digest.update(chunk)
            cached = (stamp, digest.hexdigest())
            with self._lock:
                self._digests[name] = cached
        return cached[1]

    def column(self, ref: ColumnRef) -> np.ndarray:
        if ref.party != self.party:
            raise DataError(f"party {self.party!r} cannot read column {ref} of another party")
        table = self.table(ref.dataset)
        if ref.column not in table:
            raise DataError(f"dataset {ref.dataset!r} of party {self.party!r} has no column {ref.column!r}")
        return table[ref.column]

    def min_group_size(self, ref: ColumnRef) -> int:
        return self.dataset(ref.dataset).min_group_size
