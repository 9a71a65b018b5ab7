"""Checkpoints of bucketed jobs: a manifest and one result file per finished bucket.

A long job (a bucketed PSI or join, :mod:`protocols.buckets`) works through its input one
hash bucket at a time. After each bucket it saves that bucket's result here, in the party
server's work directory (``<workdir>/checkpoints/<key>/``), and records the bucket as
finished in ``manifest.json`` (the job id that started it, the protocol, its parameters,
the SHA-256 of each input file and whatever the protocol needs to go on, such as the
number of buckets). When the server restarts and the same job is submitted again (same
protocol, parameters and input files: the same ``key``), the protocol finds the
checkpoint, agrees with its peers on the buckets every party has finished, and skips
them. Every file is written atomically (temporary file, fsync, rename), so a crash leaves
either the old or the new version. The directory is removed when the job's result is
written; a job that fails keeps it for a later resume, until :func:`sweep` removes it: a
checkpoint no running job uses, last written longer ago than the server's ``[limits]
checkpoint_retention`` (default 7 days), goes when the server starts and whenever a job
ends, so the spilled inputs of abandoned jobs do not fill the disk.

What is stored is what the party already holds: its own input's spilled buckets, its
share of results, the joint hashing key both parties drew (which the peer knows too) and,
for the jobs with a Paillier pass, the party's own Paillier key pair and the running
ciphertext sums it holds under the peer's key (:meth:`Checkpoint.save_value`, in the wire
codec's encoding: no pickle). The work directory is as private as the party's results
directory: a checkpoint's directory is made ``0700`` and its manifest, bucket and value
files are written ``0600`` (:func:`mpc.runtime.files.write_atomic`), so only the server's
own user reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mpc.runtime import files

MANIFEST = "manifest.json"
DIRECTORY = "checkpoints"   # under a party server's work directory
VERSION = 1
RETENTION = 7 * 86400.0     # seconds a stale checkpoint is kept by default ([limits] checkpoint_retention)


def job_key(protocol: str, params: Any, parties: list[str], inputs: dict[str, str]) -> str:
    """The name of a job's checkpoint: a hash of what makes two submissions the same job
    (protocol, parameters, parties and the SHA-256 of each input file)."""
    text = json.dumps({"protocol": protocol, "params": params, "parties": parties, "inputs": inputs},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _write_atomic(path: Path, data: bytes) -> None:
    files.write_atomic(path, lambda f: f.write(data))


class Checkpoint:
    """The checkpoint directory of one job at one party.

    Args:
        root: the server's checkpoint directory (``<workdir>/checkpoints``).
        key: :func:`job_key` of the job.
        manifest: what identifies the job (job id, protocol, parameters, input hashes);
            an existing checkpoint whose manifest differs in any of these is discarded.
    """

    def __init__(self, root: Path, key: str, manifest: dict[str, Any]) -> None:
        self.dir = Path(root) / key
        self.key = key
        identity = {"version": VERSION, **{k: v for k, v in manifest.items() if k != "job_id"}}
        old = self._read()
        if old is not None and {k: old.get(k) for k in identity} == json.loads(json.dumps(identity, default=str)):
            self.manifest = old
            self.resumed = True
        else:
            self.clear()
            self.manifest = {**identity, "job_id": manifest.get("job_id", ""), "done": [], "state": {}}
            self.resumed = False
            self._save()
        os.chmod(self.dir, 0o700)       # the party's own secrets (value files) live here

    def _read(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.dir / MANIFEST).read_text())
        except (OSError, ValueError):
            return None

    def _save(self) -> None:
        _write_atomic(self.dir / MANIFEST, json.dumps(self.manifest, sort_keys=True, default=str).encode())

    @property
    def state(self) -> dict[str, Any]:
        """Protocol state saved with the manifest (JSON values)."""
        return self.manifest["state"]

    def set_state(self, **values: Any) -> None:
        self.manifest["state"].update(values)
        self._save()

    @property
    def done(self) -> set[int]:
        """The buckets finished and saved."""
        return set(self.manifest["done"])

    def path(self, name: str) -> Path:
        """A file or directory of this checkpoint (spilled input, for example)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir / name

    def save_bucket(self, bucket: int, arrays: dict[str, np.ndarray]) -> None:
        """Store bucket ``bucket``'s result, then record it as finished."""
        import io
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        _write_atomic(self.dir / f"bucket-{bucket}.npz", buf.getvalue())
        if bucket not in self.manifest["done"]:
            self.manifest["done"].append(bucket)
        self._save()

    def load_bucket(self, bucket: int, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Bucket ``bucket``'s stored result: every array, or only those ``names`` (the
        others are not read)."""
        with np.load(self.dir / f"bucket-{bucket}.npz", allow_pickle=False) as z:
            return {k: z[k] for k in (z.files if names is None else names)}

    def save_value(self, name: str, value: Any) -> None:
        """Store ``value`` (what the wire codec encodes: ints of any size, arrays, bytes,
        Paillier public keys, dicts and lists of those) as ``<name>.value``, atomically,
        ``0600``. For the party's own state, such as its Paillier key pair: never sent."""
        from mpc.runtime import codec
        _write_atomic(self.dir / f"{name}.value", codec.dumps(value))

    def load_value(self, name: str) -> Any:
        """What :meth:`save_value` stored under ``name``, or None (never stored, or unreadable:
        the caller starts that part afresh)."""
        from mpc.runtime import codec
        try:
            data = (self.dir / f"{name}.value").read_bytes()
        except OSError:
            return None
        try:
            return codec.loads(data)
        except (codec.CodecError, ValueError, TypeError):
            return None

    def drop_values(self) -> None:
        """Remove every value :meth:`save_value` stored."""
        for path in self.dir.glob("*.value"):
            path.unlink(missing_ok=True)

    def forget(self, buckets: set[int]) -> None:
        """Drop buckets from the finished list (a peer has not finished them: redo)."""
        self.manifest["done"] = [b for b in self.manifest["done"] if b not in buckets]
        self._save()

    def clear(self) -> None:
        """Remove the checkpoint and everything in it."""
        shutil.rmtree(self.dir, ignore_errors=True)


def sweep(root: Path, retention: float, keep: Iterable[str] = (), now: float | None = None) -> list[str]:
    """Remove the checkpoints under ``root`` last written more than ``retention`` seconds
    ago (the manifest's modification time: every finished bucket rewrites it), except
    those named in ``keep`` (the keys of running jobs). Returns the keys removed.

    A checkpoint is only ever a resume point: removing one makes a resubmitted job start
    afresh, never a wrong result."""
    root = Path(root)
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    keep = set(keep)
    removed = []
    for d in sorted(root.iterdir()):
        if not d.is_dir() or d.name in keep:
            continue
        try:
            written = (d / MANIFEST).stat().st_mtime if (d / MANIFEST).exists() else d.stat().st_mtime
        except OSError:
            continue
        if now - written > retention:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
    return removed
