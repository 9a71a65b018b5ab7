"""Party configuration (TOML): who this party is, where its peers are, TLS, datasets, policy.

Example::

    party = "bank"
    listen = "0.0.0.0:50051"
    workdir = "state"                # results/ and audit.jsonl go here (relative to this file)
    allowed_requesters = ["bank"]    # optional: who may request jobs that involve this party

    [tls]                            # required (mutual TLS), unless insecure = true
    ca = "certs/ca.pem"
    cert = "certs/bank.pem"
    key = "certs/bank.key"

    [peers]
    retailer = "retailer.example.com:50051"
    dealer = "dealer.example.com:50051"   # optional: a peer named "dealer" serves Beaver triples

    [limits]                         # all optional
    job_timeout = 600.0
    max_value_bytes = 1073741824
    max_chunk_bytes = 2097152
    max_open_jobs = 64
    max_unread_bytes = 4294967296    # per job: received, not yet read by the protocol
    memory = "2GiB"                  # optional: PSI and join.stats stream their input into hash
                                     # buckets (spilled under workdir) sized to this budget, and
                                     # checkpoint per bucket; without it they hold the input whole
    bucket_join_sizes = false        # optional: let a join.stats in several buckets reveal the
                                     # number of joined rows of each bucket (refused by default)
    bucket_psi_sizes = false         # optional: the same for a psi.ecdh of 3 or more parties (the
                                     # leader's and mixer's extra reveals, per bucket)
    checkpoint_retention = "7d"      # optional: a bucket checkpoint no running job uses, last
                                     # written longer ago, is removed at start and at each job's end

    [executor]                       # optional: where bucket-local CPU work runs
    kind = "ray"                     # "in-process" (default: threads of the server) or "ray"
    address = "10.0.0.5:6379"        # the party's own Ray cluster ("local": a private one here)
    window = 64                      # optional: tasks in flight (default: 2 x the cluster's CPUs)
    task_timeout = 600.0             # optional: seconds to wait for one task

    [datasets.accounts]
    path = "data/accounts.csv"       # .csv or .parquet, relative to this file
    id = "customer_id"
    min_group_size = 10              # for columns with policy "aggregate"
    [datasets.accounts.columns]      # columns not listed are hidden
    customer_id = "join_key"
    income = "aggregate"
    segment = "plaintext"

Who may request a job: only a computing party of that job (a party whose columns it
names), never a helper such as the dealer; every party checks this when the job is
submitted to it and when it is asked to join. ``allowed_requesters`` narrows it
further for jobs that involve this party: a job requested by a party not in the list
is refused here (list this party's own name too if its own users may submit jobs).
Without the key, any computing party of the job may request it.

``[tls]`` is required. ``insecure = true`` (a top-level key, instead of ``[tls]``) runs
the server without TLS, for tests and demos on one machine: it is accepted only when
``listen`` and every peer address are loopback (127.0.0.0/8, ::1, localhost). Without
TLS there are no identities: anything that can connect to the port acts as this party
(submits jobs, reads results, cancels) and can send messages under any party's name.

``[executor]`` with ``kind = "ray"`` runs the party's hashing, OPRF and ECDH evaluation and
matching as tasks on a Ray cluster (:mod:`mpc.runtime.executor`); the server stays the only
endpoint its peers talk to. The cluster receives the party's secret keys and items: it must
be the party's own (docs/security.md). ``kind = "in-process"`` takes ``workers`` (threads).

Every error names the file and the key that is wrong.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpc.runtime.budget import parse_bytes, parse_duration
from mpc.runtime.checkpoint import DIRECTORY, RETENTION
from mpc.runtime.executor import KINDS as EXECUTOR_KINDS
from mpc.runtime.executor import LOCAL, Executor
from mpc.runtime.executor import make as make_executor
from mpc.runtime.grpc_transport import DEFAULT_CHUNK_BYTES, DEFAULT_MAX_UNREAD_BYTES, DEFAULT_MAX_VALUE_BYTES
from mpc.server.tls import TlsFiles
from mpc.ss.provider import DEALER

POLICY_LEVELS = ("plaintext", "join_key", "aggregate", "hidden")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class ConfigError(ValueError):
    """The configuration file is unreadable or wrong; the message names file and key."""


@dataclass(frozen=True)
class Dataset:
    """A table a party offers to joint queries, and the policy of each column."""

    name: str
    path: Path
    id: str | None
    policies: dict[str, str]
    min_group_size: int = 10

    def policy(self, column: str) -> str:
        return self.policies.get(column, "hidden")

    def describe(self) -> dict[str, Any]:
        """What peers may know about the dataset: names and policies, never rows."""
        return {"name": self.name, "id": self.id or "", "min_group_size": self.min_group_size,
                "columns": dict(self.policies)}


@dataclass(frozen=True)
class Limits:
    job_timeout: float = 600.0
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES
    max_open_jobs: int = 64
    max_unread_bytes: int = DEFAULT_MAX_UNREAD_BYTES
    memory: int | None = None   # bytes a bucketed job may hold per party (None: jobs are not bucketed)
    # a join in more than one bucket reveals each bucket's joined-row count: only with consent
    bucket_join_sizes: bool = False
    bucket_psi_sizes: bool = False   # likewise an N-party PSI's per-bucket leader and mixer reveals
    checkpoint_retention: float = RETENTION   # seconds a stale bucket checkpoint is kept


@dataclass(frozen=True)
class ExecutorConfig:
    """The ``[executor]`` table: ``kind`` and the options of :func:`mpc.runtime.executor.make`."""

    kind: str = "in-process"
    options: dict[str, Any] = field(default_factory=dict)

    def make(self) -> Executor:
        """The executor this table describes (not started: the server starts it)."""
        return make_executor(self.kind, **self.options)


# key -> (type, kinds it applies to)
_EXECUTOR_KEYS: dict[str, tuple[type, tuple[str, ...]]] = {
    "workers": (int, ("in-process",)),
    "address": (str, ("ray",)),
    "num_cpus": (int, ("ray",)),
    "window": (int, ("ray",)),
    "cpus_per_task": (int, ("ray",)),
    "task_timeout": (float, ("ray",)),
}


def _parse_executor(raw: dict[str, Any], where: str) -> ExecutorConfig:
    table = _get(raw, "executor", dict, where, {})
    ewhere = f"{where}: [executor]"
    kind = _get(table, "kind", str, ewhere, "in-process")
    if kind not in EXECUTOR_KINDS:
        raise ConfigError(f"{ewhere}: key 'kind': {kind!r} is not one of {', '.join(EXECUTOR_KINDS)}")
    options: dict[str, Any] = {}
    for key, value in table.items():
        if key == "kind":
            continue
        if key not in _EXECUTOR_KEYS:
            raise ConfigError(f"{ewhere}: unknown key 'executor.{key}' (expected kind, "
                              f"{', '.join(_EXECUTOR_KEYS)})")
        kind_type, kinds = _EXECUTOR_KEYS[key]
        if kind not in kinds:
            raise ConfigError(f"{ewhere}: key 'executor.{key}' applies to kind = {kinds[0]!r}, not {kind!r}")
        value = _get(table, key, kind_type, ewhere)
        if kind_type is not str and value <= 0:
            raise ConfigError(f"{ewhere}: key 'executor.{key}' must be positive, got {value!r}")
        options[key] = value
    if kind == "ray":
        address = options.get("address")
        if not address:
            raise ConfigError(f"{ewhere}: missing key 'executor.address' (the Ray cluster's host:port, "
                              f"or {LOCAL!r} for a private instance on this machine)")
        if address != LOCAL:
            _check_address(address, f"{ewhere}: key 'executor.address'")
            if "num_cpus" in options:
                raise ConfigError(f"{ewhere}: key 'executor.num_cpus' applies only to address = {LOCAL!r} "
                                  "(a cluster has its own CPUs)")
    return ExecutorConfig(kind, options)


@dataclass(frozen=True)
class PartyConfig:
    party: str
    listen: str
    peers: dict[str, str]
    workdir: Path
    tls: TlsFiles | None = None
    datasets: dict[str, Dataset] = field(default_factory=dict)
    limits: Limits = Limits()
    source: Path | None = None
    allowed_requesters: tuple[str, ...] | None = None  # None: any computing party of the job
    insecure: bool = False  # plaintext on loopback, no identities (tests and demos only)
    executor: ExecutorConfig = ExecutorConfig()

    def __post_init__(self) -> None:
        if (self.tls is None) != self.insecure:
            raise ConfigError(f"{self.source or self.party}: a party server needs [tls] "
                              "or insecure = true (exactly one)")

    @property
    def addresses(self) -> dict[str, str]:
        """Every party's address, this one's included."""
        return {**self.peers, self.party: self.listen}

    @property
    def results_dir(self) -> Path:
        return self.workdir / "results"

    @property
    def checkpoints_dir(self) -> Path:
        return self.workdir / DIRECTORY

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.jsonl"


def _get(table: dict, key: str, kind: type | tuple, where: str, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise ConfigError(f"{where}: missing key {key!r}")
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}: key {key!r} must be {names}, got {type(value).__name__}")
    return value


def _check_name(name: str, where: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"{where}: {name!r} is not a valid name (letters, digits, _ and -)")
    return name


def _check_address(address: str, where: str) -> str:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{where}: {address!r} is not a host:port address")
    return address


def is_loopback(address: str) -> bool:
    """Whether a ``host:port`` address is on this machine only (127.0.0.0/8, ::1, localhost)."""
    host = address.rpartition(":")[0].removeprefix("[").removesuffix("]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_tls(raw: dict[str, Any], listen: str, peers: dict[str, str], base: Path,
               where: str) -> TlsFiles | None:
    """The TLS files, or None for an explicit ``insecure = true`` on loopback."""
    insecure = _get(raw, "insecure", bool, where, False)
    tls_raw = _get(raw, "tls", dict, where, None)
    if insecure:
        if tls_raw is not None:
            raise ConfigError(f"{where}: key 'insecure': insecure = true turns TLS off, but a [tls] "
                              "table is given too; remove one of them")
        if not is_loopback(listen):
            raise ConfigError(f"{where}: key 'insecure': plaintext is allowed only on a loopback listen "
                              f"address (127.0.0.0/8, ::1, localhost), and 'listen' is {listen!r}; "
                              "configure [tls] to serve on other addresses")
        for name, address in peers.items():
            if not is_loopback(address):
                raise ConfigError(f"{where}: key 'peers.{name}': with insecure = true every peer must be "
                                  f"on loopback too (plaintext never leaves this machine), not {address!r}")
        return None
    if tls_raw is None:
        raise ConfigError(f"{where}: missing table [tls] (keys ca, cert, key): party servers use mutual "
                          "TLS; for a plaintext test server on loopback set insecure = true instead")
    unknown = set(tls_raw) - {"ca", "cert", "key"}
    if unknown:
        raise ConfigError(f"{where}: unknown key 'tls.{sorted(unknown)[0]}' (expected ca, cert, key; "
                          "to turn TLS off on loopback set insecure = true at the top level)")
    files = {}
    for key in ("ca", "cert", "key"):
        file = base / _get(tls_raw, key, str, f"{where}: [tls]")
        if not file.is_file():
            raise ConfigError(f"{where}: key 'tls.{key}': file {file} does not exist")
        files[key] = file
    return TlsFiles(**files)


def _parse_requesters(raw: dict[str, Any], party: str, peers: dict[str, str],
                      where: str) -> tuple[str, ...] | None:
    names = _get(raw, "allowed_requesters", list, where, None)
    if names is None:
        return None
    key = f"{where}: key 'allowed_requesters'"
    for name in names:
        if not isinstance(name, str):
            raise ConfigError(f"{key} must be a list of party names, got a {type(name).__name__}")
        if name == DEALER:
            raise ConfigError(f"{key}: {DEALER!r} is a helper, and helpers never request jobs")
        if name != party and name not in peers:
            raise ConfigError(f"{key}: {name!r} is neither this party nor one of its [peers]")
    return tuple(names)


def _parse_memory(lim_raw: dict[str, Any], where: str) -> int | None:
    """``[limits] memory``: a size such as "2GiB" or a number of bytes (at least 64 MiB)."""
    value = _get(lim_raw, "memory", (str, int), where, None)
    if value is None:
        return None
    try:
        size = parse_bytes(value, "memory")
    except ValueError as exc:
        raise ConfigError(f"{where}: key 'memory': {exc}") from None
    if size < 64 << 20:
        raise ConfigError(f"{where}: key 'memory': {value!r} is under the 64 MiB a party process needs")
    return size


def _parse_retention(lim_raw: dict[str, Any], where: str) -> float:
    """``[limits] checkpoint_retention``: a duration such as "7d" or "12h", or seconds (0: a
    failed job's checkpoint goes at the next job's end)."""
    value = _get(lim_raw, "checkpoint_retention", (str, int, float), where, None)
    if value is None:
        return RETENTION
    try:
        return parse_duration(value, "checkpoint_retention")
    except ValueError as exc:
        raise ConfigError(f"{where}: key 'checkpoint_retention': {exc}") from None


def load_config(path: str | Path) -> PartyConfig:
    """Read and validate a party's TOML configuration."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(raw, path)


def parse_config(raw: dict[str, Any], path: Path) -> PartyConfig:
    """Validate a parsed config table (``path`` is used for messages and relative paths)."""
    base = path.parent
    where = str(path)
    known = {"party", "listen", "workdir", "tls", "insecure", "allowed_requesters", "peers", "limits",
             "datasets", "executor"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    party = _check_name(_get(raw, "party", str, where), f"{where}: key 'party'")
    listen = _check_address(_get(raw, "listen", str, where), f"{where}: key 'listen'")
    workdir = base / _get(raw, "workdir", str, where, f"{party}-state")

    peers_raw = _get(raw, "peers", dict, where, {})
    peers = {}
    for name, address in peers_raw.items():
        _check_name(name, f"{where}: key 'peers'")
        if name == party:
            raise ConfigError(f"{where}: key 'peers.{name}': a party cannot be its own peer")
        if not isinstance(address, str):
            raise ConfigError(f"{where}: key 'peers.{name}' must be a host:port string")
        peers[name] = _check_address(address, f"{where}: key 'peers.{name}'")

    tls = _parse_tls(raw, listen, peers, base, where)
    allowed = _parse_requesters(raw, party, peers, where)

    lim_raw = _get(raw, "limits", dict, where, {})
    defaults = Limits()
    limits = Limits(
        job_timeout=_get(lim_raw, "job_timeout", float, f"{where}: [limits]", defaults.job_timeout),
        max_value_bytes=_get(lim_raw, "max_value_bytes", int, f"{where}: [limits]", defaults.max_value_bytes),
        max_chunk_bytes=_get(lim_raw, "max_chunk_bytes", int, f"{where}: [limits]", defaults.max_chunk_bytes),
        max_open_jobs=_get(lim_raw, "max_open_jobs", int, f"{where}: [limits]", defaults.max_open_jobs),
        max_unread_bytes=_get(lim_raw, "max_unread_bytes", int, f"{where}: [limits]", defaults.max_unread_bytes),
        memory=_parse_memory(lim_raw, f"{where}: [limits]"),
        bucket_join_sizes=_get(lim_raw, "bucket_join_sizes", bool, f"{where}: [limits]", False),
        bucket_psi_sizes=_get(lim_raw, "bucket_psi_sizes", bool, f"{where}: [limits]", False),
        checkpoint_retention=_parse_retention(lim_raw, f"{where}: [limits]"))
    if min(limits.job_timeout, limits.max_value_bytes, limits.max_chunk_bytes, limits.max_open_jobs,
           limits.max_unread_bytes) <= 0:
        raise ConfigError(f"{where}: [limits] values must be positive")

    datasets = {}
    for name, table in _get(raw, "datasets", dict, where, {}).items():
        dwhere = f"{where}: [datasets.{name}]"
        _check_name(name, dwhere)
        if not isinstance(table, dict):
            raise ConfigError(f"{dwhere} must be a table")
        file = base / _get(table, "path", str, dwhere)
        if file.suffix.lower() not in (".csv", ".parquet"):
            raise ConfigError(f"{dwhere}: key 'path': {file} is neither .csv nor .parquet")
        policies = {}
        for column, level in _get(table, "columns", dict, dwhere, {}).items():
            if level not in POLICY_LEVELS:
                raise ConfigError(f"{dwhere}: key 'columns.{column}': policy {level!r} is not one of "
                                  f"{', '.join(POLICY_LEVELS)}")
            policies[column] = level
        id_column = _get(table, "id", str, dwhere, None)
        if id_column is not None and policies.get(id_column, "hidden") == "hidden":
            policies[id_column] = "join_key"
        min_group = _get(table, "min_group_size", int, dwhere, 10)
        if min_group < 1:
            raise ConfigError(f"{dwhere}: key 'min_group_size' must be at least 1")
        datasets[name] = Dataset(name, file, id_column, policies, min_group)
    executor = _parse_executor(raw, where)
    return PartyConfig(party, listen, peers, workdir, tls, datasets, limits, path, allowed, tls is None,
                       executor)
