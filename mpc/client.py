"""Client: how an analyst (notebook, script, CLI) submits joint queries to its party server.

The client talks only to its own party's server; that server coordinates the peers.
Results are what this party is allowed to learn: a pandas DataFrame for tables, plain
Python values otherwise; ``result(job_id, to=path)`` saves a table as a Parquet file instead
(a bucketed job's result file streamed to disk as it arrives, never held whole).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from mpc._proto.gaotie.v1 import party_pb2, party_pb2_grpc, value_pb2
from mpc.runtime import codec, files
from mpc.runtime.errors import GaotieError, JobFailed
from mpc.runtime.grpc_transport import DEFAULT_CHUNK_BYTES, grpc_options
from mpc.runtime.progress import Progress, ProgressDisplay
from mpc.server.tls import TlsFiles, channel_credentials

_POLL = 0.05
_SHOW_PROGRESS_AFTER = 2.0
_RESULT_TIMEOUT = 600.0
_FORMATS = ("", "parquet")     # ResultChunk.format: a serialized Value, a Parquet file's bytes


class Client:
    """A connection to one party server.

    Args:
        address: ``host:port`` of the party server.
        tls: the party's TLS files (CA, certificate, key) for mutual TLS, or None for a
            plaintext server.
        server_name: the name in the server's certificate to expect (its party name);
            by default the certificate must match the address's host.
    """

    def __init__(self, address: str, tls: TlsFiles | None = None, server_name: str | None = None) -> None:
        import mpc.tables  # noqa: F401 - registers the table value kind

        self.address = address
        options = grpc_options()
        if tls is None:
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            if server_name:
                options.append(("grpc.ssl_target_name_override", server_name))
            self._channel = grpc.secure_channel(address, channel_credentials(tls), options=options)
        self._stub = party_pb2_grpc.PartyStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _rpc(self, method: str, request: Any, timeout: float = 30.0) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise GaotieError(f"party server {self.address}: {exc.code().name}: {exc.details()}") from None

    def datasets(self, party: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Datasets of this party, or of peer ``party`` (asked through this party's server):
        ``{party: [{name, id, min_group_size, columns: {column: policy}}]}``, never rows."""
        request = party_pb2.DatasetsRequest(party=party or "")
        return codec.decode(self._rpc("Datasets", request).datasets)

    def submit(self, protocol: str, *, job_timeout: float = 0.0, **params: Any) -> str:
        """Start a job and return its id; raises JobFailed if a party refuses it."""
        request = party_pb2.JobRequest(protocol=protocol, params=codec.encode(params), timeout=job_timeout)
        reply = self._rpc("Submit", request)
        if reply.state in ("refused", "failed"):
            raise _job_failed(reply.failed_party, reply.error, reply.job_id)
        return reply.job_id

    def status(self, job_id: str) -> dict[str, Any]:
        """``{"job_id", "state", "error", "failed_party", "progress", "protocol", "phase", "done",
        "total", "unit"}`` of a job: ``failed_party`` is the party whose error or refusal made it
        fail ("" otherwise), ``phase`` is what it does now, ``done`` of ``total`` ``unit`` of that
        phase are finished (total 0: not counted), ``progress`` is their fraction."""
        s = self._rpc("Status", party_pb2.JobQuery(job_id=job_id, omit_result=True))
        return {"job_id": s.job_id, "state": s.state, "error": s.error, "failed_party": s.failed_party,
                "progress": s.progress,
                "protocol": s.protocol, "phase": s.phase, "done": s.done, "total": s.total, "unit": s.unit}

    def result(self, job_id: str, timeout: float | None = None, progress: bool = True,
               to: str | Path | None = None) -> Any:
        """Wait for a job and return this party's result; JobFailed if it failed.

        With ``progress``, a job that takes more than two seconds shows its phases on stderr:
        a bar per phase on a terminal (or in a notebook), one line per phase elsewhere.

        With ``to`` (a path), a table result is saved there as a Parquet file and the call
        returns its Path: a result the job wrote to a file (a bucketed ``psi.ecdh`` or
        ``sql.rows``) is the server's file byte for byte, written as it arrives (never held
        whole here or in the server); a table that comes as a value is written by pandas
        (``to_parquet``). Either way atomically: a temporary name in the same directory,
        fsync, rename; on any error nothing is left at ``to`` (a file already there stays as
        it was). A result that is not a table (a dict of statistics, a number) raises
        ValueError: fetch it again without ``to``. A party that gets no result gets None and
        nothing is written. Without ``to``, a result file is read into a DataFrame (pyarrow:
        what ``pandas.read_parquet`` of the server's file gives).
        """
        start = time.monotonic()
        display: ProgressDisplay | None = None
        try:
            while True:
                s = self._rpc("Status", party_pb2.JobQuery(job_id=job_id, omit_result=True))
                if s.state == "done":
                    if display is not None:
                        display.finish()
                    return self._fetch(job_id, None if to is None else Path(to).expanduser())
                if s.state in ("failed", "cancelled", "refused"):
                    raise _job_failed(s.failed_party, s.error or s.state, job_id)
                elapsed = time.monotonic() - start
                if timeout is not None and elapsed > timeout:
                    raise TimeoutError(f"job {job_id} still {s.state} after {timeout}s")
                if progress and display is None and elapsed > _SHOW_PROGRESS_AFTER:
                    display = ProgressDisplay(f"{s.protocol} {job_id}")
                if display is not None and s.state == "running":
                    display.update(Progress(s.progress, s.phase, s.done, s.total, s.unit or "steps"))
                time.sleep(min(_POLL * (1 + elapsed), 0.5))
        finally:
            if display is not None:
                display.close()

    def _fetch(self, job_id: str, to: Path | None = None) -> Any:
        """A done job's result through the streaming Result RPC (any size, chunks under the
        cap): a Value decoded, or a result file's Parquet bytes, saved at ``to`` as they come
        or read into a DataFrame."""
        chunks = self._chunks(job_id)
        first = next(chunks)
        if first.format == "parquet" and to is not None:
            def write(f) -> None:
                f.write(first.payload)
                for chunk in chunks:
                    f.write(chunk.payload)
            files.write_atomic(to, write, check=lambda tmp: self._check_parquet(job_id, tmp))
            return to
        data = b"".join([first.payload, *(chunk.payload for chunk in chunks)])
        if first.format == "parquet":
            result = self._read_parquet(job_id, data)
        else:
            value = value_pb2.Value()
            value.ParseFromString(data)
            result = codec.decode(value)
        if to is None or result is None:
            return result
        import pandas as pd

        if not isinstance(result, pd.DataFrame):
            kind = type(result).__name__
            raise ValueError(f"the result of job {job_id} is {'an' if kind[0] in 'aeiou' else 'a'} {kind}, not a "
                             f"table: it cannot be saved as a Parquet file (fetch it without `to`)")
        files.write_atomic(to, lambda f: result.to_parquet(f))
        return to

    def _chunks(self, job_id: str) -> Iterator[Any]:
        """The ResultChunks of a done job's result (the Result RPC, files accepted), checked
        as they come: numbered in order, of this job, one total size and one known format
        throughout, never more bytes than declared; at the end, the last one marked and
        exactly the declared bytes. GaotieError otherwise."""
        where = f"party server {self.address}: result of job {job_id}"
        total = got = count = 0
        fmt, ended = "", False
        call = self._stub.Result(party_pb2.ResultRequest(job_id=job_id, max_chunk_bytes=DEFAULT_CHUNK_BYTES,
                                                         accept_files=True), timeout=_RESULT_TIMEOUT)
        try:
            for chunk in call:
                if chunk.chunk_index != count or (count and (chunk.total_size != total or chunk.format != fmt)):
                    raise GaotieError(f"{where} arrived out of order")
                if chunk.job_id != job_id:
                    raise GaotieError(f"{where} arrived as job {chunk.job_id[:40]!r}")
                if not count and chunk.format not in _FORMATS:
                    raise GaotieError(f"{where} arrived in an unknown format {chunk.format[:40]!r}")
                total, fmt = chunk.total_size, chunk.format
                count += 1
                got += len(chunk.payload)
                if got > total:
                    raise GaotieError(f"{where} exceeds its size {total}")
                yield chunk
                if chunk.last:
                    ended = True
                    break
        except grpc.RpcError as exc:
            raise GaotieError(f"party server {self.address}: fetching the result of job {job_id} failed "
                              f"({exc.code().name}): {exc.details()}") from exc
        finally:
            call.cancel()       # a stream given up half-way (a bad chunk, a failed write) ends here
        if got != total or not ended:
            raise GaotieError(f"{where} is incomplete ({got} of {total} bytes)")

    @staticmethod
    def _read_parquet(job_id: str, data: bytes) -> Any:
        """A result file's bytes as the DataFrame ``pandas.read_parquet`` (pyarrow) makes of them."""
        import io

        import pandas as pd
        import pyarrow as pa

        try:
            return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
        except (pa.ArrowException, OSError) as exc:
            raise GaotieError(f"the result of job {job_id} is not a valid Parquet file: {exc}") from None

    @staticmethod
    def _check_parquet(job_id: str, path: Path) -> None:
        """Refuse a saved result that is not a Parquet file (its footer and schema, pyarrow)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pq.read_metadata(path)
        except (pa.ArrowException, OSError) as exc:
            raise GaotieError(f"the result of job {job_id} is not a valid Parquet file: {exc}") from None

    def run(self, protocol: str, *, job_timeout: float = 0.0, progress: bool = True, to: str | Path | None = None,
            **params: Any) -> Any:
        """Submit a job, wait for it, and return this party's result (with ``to``: saved
        there as a Parquet file, see :meth:`result`)."""
        return self.result(self.submit(protocol, job_timeout=job_timeout, **params), progress=progress, to=to)

    def _plan(self, sql: str):
        from protocols import sql as sqlmod

        schemas = {}
        for party in sqlmod.tables_of(sql):
            try:
                schemas.update(self.datasets(party))
            except GaotieError as exc:
                raise sqlmod.SqlError(f"cannot read the datasets of party {party!r}: {exc}") from None
        return sqlmod.parse(sql, schemas)

    def query(self, sql: str, *, reveal_to: str | None = None, progress: bool = True,
              join: str = "ecdh", min_group_size: int | None = None, memory: str | int | None = None,
              to: str | Path | None = None) -> Any:
        """Run a SQL query over the parties' tables (``party.dataset``) and return the result
        as a pandas DataFrame (``suppressed`` marks groups under min_group_size), or None at a
        party that is not ``reveal_to``.

        The SQL is planned here (:mod:`protocols.sql`: unsupported SQL and policy violations
        raise ``SqlError`` / ``PolicyRefused`` before anything runs) into the ``sql.aggregate``
        job (aggregates), or ``sql.rows`` (no aggregates: plaintext columns, and after a join
        the join keys, delivered row by row to ``reveal_to``), which every party checks
        against its own policy; ``explain(sql)`` shows the plan and what each party learns.
        ``join`` and ``min_group_size`` apply to aggregates. ``memory`` (e.g. "2GiB"; the
        servers' ``[limits] memory`` binds too, the smaller wins) runs a query of two parties'
        tables in hash buckets, checkpointed per bucket: aggregates by :mod:`protocols.sql.bucketed`,
        row-level output of two or three parties' tables by a PSI per bucket, the rows sorted on
        disk and written to the server's result file a batch at a time (:mod:`protocols.sql.rows`).
        ``to``: save the result there as a Parquet file and return its Path (:meth:`result`)."""
        from protocols import sql as sqlmod

        me = next(iter(self.datasets()), None)
        protocol, params = sqlmod.compile_query(self._plan(sql), reveal_to=reveal_to, join=join, requester=me)
        if min_group_size is not None and protocol == "sql.aggregate":
            params["min_group_size"] = int(min_group_size)
        if memory is not None and protocol in ("sql.aggregate", "sql.rows"):
            params["memory"] = str(memory)
        return self.run(protocol, progress=progress, to=to, **params)

    def explain(self, sql: str, *, reveal_to: str | None = None, join: str = "ecdh") -> str:
        """The plan of a SQL query: protocols, who computes what in plaintext, what is
        secret-shared and what every party learns. Runs nothing."""
        from protocols import sql as sqlmod

        return sqlmod.explain(self._plan(sql), reveal_to=reveal_to, join=join)

    def cancel(self, job_id: str) -> str:
        """Cancel a job on every party; returns the job's state."""
        return self._rpc("Cancel", party_pb2.JobQuery(job_id=job_id)).state


def _job_failed(party: str, error: str, job_id: str) -> JobFailed:
    """JobFailed naming the party the reply names as the cause ("?" for a cancelled job)."""
    party = party or "?"
    return JobFailed(party, error.removeprefix(f"party {party!r} failed: "), job_id)
