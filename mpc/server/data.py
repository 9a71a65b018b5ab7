"""Datasets of a party server: read CSV/Parquet files (pyarrow), hand out policy-checked columns.

Files are read when a job first needs them and cached until the file changes. Errors
name the dataset, the file, and where possible the row and column; they never quote
cell values.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from mpc.runtime.errors import DataError
from mpc.server.config import Dataset
from protocols.registry import ALLOWED, ColumnRef, ColumnUse, numeric

__all__ = ["DataError", "DataStore", "PolicyRefused", "numeric", "read_table"]


class PolicyRefused(DataError):
    """A job would use a column beyond what the party's policy allows."""


def read_table(path: Path) -> dict[str, np.ndarray]:
    """Read a CSV or Parquet file into numpy columns (strings as object arrays)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if path.suffix.lower() == ".parquet":
            table = pq.read_table(path)
        else:
            bad: list = []
            table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(
                invalid_row_handler=lambda row: bad.append(row) or "skip"))
            if bad:
                raise DataError(f"cannot read {path}: line {_bad_line(path)}: expected "
                                f"{bad[0].expected_columns} columns, got {bad[0].actual_columns}")
    except FileNotFoundError:
        raise DataError(f"dataset file {path} does not exist") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {path}: {_scrub(str(exc))}") from None
    out = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
            arr = column.to_numpy(zero_copy_only=False)
            if column.null_count and arr.dtype.kind in "iub":
                arr = arr.astype(np.float64)
        else:
            arr = np.array(column.to_pylist(), dtype=object)
        out[name] = arr
    return out


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

    def __init__(self, party: str, datasets: dict[str, Dataset]) -> None:
        self.party = party
        self.datasets = datasets
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, np.ndarray]]] = {}

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

    def column(self, ref: ColumnRef) -> np.ndarray:
        if ref.party != self.party:
            raise DataError(f"party {self.party!r} cannot read column {ref} of another party")
        table = self.table(ref.dataset)
        if ref.column not in table:
            raise DataError(f"dataset {ref.dataset!r} of party {self.party!r} has no column {ref.column!r}")
        return table[ref.column]

    def min_group_size(self, ref: ColumnRef) -> int:
        return self.dataset(ref.dataset).min_group_size
