"""LocalCluster: real party servers (one ``gaotie serve`` process each) on loopback.

For tests, notebooks and the demo. Generates a CA and per-party certificates (mutual
TLS) unless ``tls=False`` (then each config says ``insecure = true``: plaintext on
loopback, no identities), writes a TOML config per party, starts the processes on free
ports, waits until each reports SERVING on the standard gRPC health service, and stops
every process when the ``with`` block ends, also on error.

``datasets`` maps party -> dataset name -> one of:
- a path to a .csv/.parquet file, or a pandas DataFrame (written to the workdir as
  Parquet): the first column is the id (policy ``join_key``), every other column gets
  policy ``aggregate``;
- a dict ``{"path" or "frame", "id", "columns": {column: policy}, "min_group_size"}``.

``settings`` maps party -> further top-level keys of its party.toml (for example
``{"retailer": {"allowed_requesters": ["bank"]}}``).
"""

from __future__ import annotations

import atexit
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mpc.server.config import DEALER

_START_TIMEOUT = 30.0


_ISSUED: set[int] = set()
_PORT_ATTEMPTS = 3


def free_port() -> int:
    """A loopback port no socket listens on, and not one this process has handed out before:
    the kernel may give a just-closed port again, and two servers of one cluster on one port
    would each take the other's calls (they now refuse to share it: ``grpc.so_reuseport`` 0)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ISSUED:
            _ISSUED.add(port)
            return port


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_toml(path: Path, tables: dict[str, Any]) -> None:
    """Write a config of top-level keys and (nested) tables; enough for party configs."""
    lines: list[str] = []

    def emit(prefix: str, table: dict[str, Any]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        subtables = {k: v for k, v in table.items() if isinstance(v, dict)}
        if prefix:
            lines.append(f"\n[{prefix}]")
        for k, v in scalars.items():
            lines.append(f'"{k}" = {_toml_value(v)}')
        for k, v in subtables.items():
            emit(f'{prefix}."{k}"' if prefix else f'"{k}"', v)

    emit("", tables)
    path.write_text("\n".join(lines) + "\n")


class LocalCluster:
    """Party servers in separate processes on this machine (see module docstring)."""

    def __init__(self, parties: list[str], tls: bool = True, datasets: dict[str, dict[str, Any]] | None = None,
                 workdir: str | Path | None = None, dealer: bool = True,
                 limits: dict[str, Any] | None = None,
                 settings: dict[str, dict[str, Any]] | None = None) -> None:
        if len(set(parties)) != len(parties) or not parties:
            raise ValueError(f"parties must be distinct names, got {parties}")
        if DEALER in parties:
            raise ValueError(f"{DEALER!r} is reserved for the dealer party")
        unknown = set(datasets or {}) - set(parties)
        if unknown:
            raise ValueError(f"datasets given for unknown parties {sorted(unknown)}")
        self.servers = list(parties) + ([DEALER] if dealer else [])
        unknown = set(settings or {}) - set(self.servers)
        if unknown:
            raise ValueError(f"settings given for unknown parties {sorted(unknown)}")
        self.parties = list(parties)
        self.tls = tls
        self._datasets = datasets or {}
        self._limits = limits or {}
        self._settings = settings or {}
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="gaotie-cluster-"))
        self.addresses: dict[str, str] = {}
        self.configs: dict[str, Path] = {}
        self.tls_files: dict[str, Any] = {}
        self.processes: dict[str, subprocess.Popen] = {}

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Start every server (use ``with LocalCluster(...)`` or call :meth:`stop` after).

        The servers are also stopped when this Python process exits, so a notebook kernel
        that dies does not leave them running.
        """
        atexit.register(self.stop)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.tls:
            from mpc.server.tls import make_deployment
            self.tls_files = make_deployment(self.workdir / "certs", self.servers)
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        for attempt in range(_PORT_ATTEMPTS):
            # a port free when chosen may be taken before the server binds it (another process,
            # or a client socket's ephemeral port): then every server starts again on new ports
            self.addresses = {p: f"127.0.0.1:{free_port()}" for p in self.servers}
            for party in self.servers:
                self.configs[party] = self._write_config(party)
            for party in self.servers:
                log = open(logs / f"{party}.log", "wb")  # noqa: SIM115 - closed with the process
                self.processes[party] = subprocess.Popen(
                    [sys.executable, "-m", "mpc.cli", "serve", "--config", str(self.configs[party])],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                log.close()
            try:
                for party in self.servers:
                    self._wait_serving(party)
                return
            except RuntimeError as exc:
                if "cannot listen on" not in str(exc) or attempt == _PORT_ATTEMPTS - 1:
                    raise
                self._stop_processes()

    def restart(self, party: str, kill: bool = True) -> None:
        """Stop ``party``'s server (SIGKILL by default: a crash, nothing flushed) and start it
        again with the same config, address and work directory."""
        proc = self.processes[party]
        if proc.poll() is None:
            proc.kill() if kill else proc.terminate()
        proc.wait()
        log = open(self.workdir / "logs" / f"{party}.log", "ab")  # noqa: SIM115 - closed with the process
        self.processes[party] = subprocess.Popen(
            [sys.executable, "-m", "mpc.cli", "serve", "--config", str(self.configs[party])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self._wait_serving(party)

    def stop(self) -> None:
        """Stop every server process (idempotent)."""
        atexit.unregister(self.stop)
        self._stop_processes()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_processes(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()

    # -- helpers ---------------------------------------------------------------------
    def _write_config(self, party: str) -> Path:
        directory = self.workdir / party
        directory.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {"party": party, "listen": self.addresses[party], "workdir": str(directory / "state"),
                                  "peers": {p: a for p, a in self.addresses.items() if p != party}}
        if self.tls:
            files = self.tls_files[party]
            config["tls"] = {"ca": str(files.ca), "cert": str(files.cert), "key": str(files.key)}
        else:
            config["insecure"] = True  # allowed because every address is 127.0.0.1
        config.update(self._settings.get(party, {}))
        if self._limits:    # a party's own settings' limits win over the cluster-wide ones
            config["limits"] = {**self._limits, **config.get("limits", {})}
        datasets = {}
        for name, spec in self._datasets.get(party, {}).items():
            datasets[name] = self._dataset_config(directory, name, spec)
        if datasets:
            config["datasets"] = datasets
        path = directory / "party.toml"
        write_toml(path, config)
        return path

    def _dataset_config(self, directory: Path, name: str, spec: Any) -> dict[str, Any]:
        import pandas as pd

        if not isinstance(spec, dict):
            spec = {"frame": spec} if isinstance(spec, pd.DataFrame) else {"path": spec}
        out: dict[str, Any] = {}
        if "frame" in spec:
            path = directory / "data" / f"{name}.parquet"
            path.parent.mkdir(exist_ok=True)
            spec["frame"].to_parquet(path, index=False)
            columns = [str(c) for c in spec["frame"].columns]
        else:
            path = Path(spec["path"]).resolve()
            if spec.get("columns"):
                columns = list(spec["columns"])
            else:
                from mpc.server.data import read_table
                columns = list(read_table(path))
        out["path"] = str(path)
        id_column = spec.get("id", columns[0] if columns else None)
        if id_column:
            out["id"] = id_column
        if "min_group_size" in spec:
            out["min_group_size"] = spec["min_group_size"]
        out["columns"] = spec.get("columns") or {c: ("join_key" if c == id_column else "aggregate") for c in columns}
        return out

    def _wait_serving(self, party: str) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + _START_TIMEOUT
        channel = self._channel(party)
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                proc = self.processes[party]
                if proc.poll() is not None:
                    raise RuntimeError(f"party server {party!r} exited with code {proc.returncode}:\n"
                                       f"{self.log(party)[-2000:]}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"party server {party!r} not serving after {_START_TIMEOUT}s:\n"
                                       f"{self.log(party)[-2000:]}")
                time.sleep(0.1)
        finally:
            channel.close()

    def _channel(self, party: str):
        import grpc

        if not self.tls:
            return grpc.insecure_channel(self.addresses[party])
        from mpc.server.tls import channel_credentials
        return grpc.secure_channel(self.addresses[party], channel_credentials(self.tls_files[party]),
                                   options=[("grpc.ssl_target_name_override", party)])

    def log(self, party: str) -> str:
        """The server log of ``party`` so far."""
        path = self.workdir / "logs" / f"{party}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self, party: str):
        """An :class:`mpc.Client` connected to ``party``'s server with its credentials."""
        from mpc.client import Client

        if party not in self.addresses:
            raise ValueError(f"unknown party {party!r}; the cluster has {self.servers}")
        return Client(self.addresses[party], tls=self.tls_files.get(party), server_name=party if self.tls else None)

    def results_dir(self, party: str) -> Path:
        return self.workdir / party / "state" / "results"

    def audit_log(self, party: str) -> Path:
        return self.workdir / party / "state" / "audit.jsonl"

    def checkpoints_left(self, wait: float = 10.0) -> list[Path]:
        """The checkpoint manifests still on any party's disk, waiting up to ``wait`` seconds
        for them to go: a party clears a finished job's checkpoint when the job ends there,
        which may be after another party's client already has the result."""
        deadline = time.monotonic() + wait
        while True:
            left = [m for p in self.parties
                    for m in (self.workdir / p / "state" / "checkpoints").glob("*/manifest.json")]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def audit_record(self, party: str, job_id: str, wait: float = 10.0) -> dict:
        """The audit record ``party`` wrote for ``job_id``, waiting up to ``wait`` seconds:
        a party writes it when the job ends there, which may be after another party's
        client already has the result."""
        deadline = time.monotonic() + wait
        while True:
            path = self.audit_log(party)
            lines = path.read_text().splitlines() if path.exists() else []
            found = [r for r in map(json.loads, lines) if r.get("job_id") == job_id]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise LookupError(f"no audit record of job {job_id} at {party!r} after {wait} s")
            time.sleep(0.1)
