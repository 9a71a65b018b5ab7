"""Jobs on a party server: prepare (registry + policy check), run, record, report.

A job is submitted to the requester's own server, which asks every other party of the
job to *prepare* it (each checks the protocol is registered, the parameters are valid
and its own column policy allows the job) and only when all agree tells everyone to
*start*: a refusal anywhere means nothing runs anywhere. Each party runs the protocol
in a thread with a Context over the server's gRPC transport, writes its result
atomically to its results directory, appends one line to its audit log, and keeps the
outcome for ``Status``.

Only a computing party of a job may request it (a helper such as the dealer serves
correlated randomness and never asks for a computation on the companies' data), and a
party's ``allowed_requesters`` narrows who may request jobs that involve it. Both are
checked in ``prepare``, so every party checks them, at Submit and at Join alike.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mpc import tables
from mpc.runtime.checkpoint import sweep
from mpc.runtime.context import Context
from mpc.runtime.errors import GaotieError, PeerFailed, culprit, describe
from mpc.runtime.helpers import default_options, helper_function, resolve_options
from mpc.runtime.local import run_party
from mpc.runtime.progress import Progress
from mpc.ss import provider  # also registers the engines' helper parties (the dealer)
from protocols import registry

log = logging.getLogger(__name__)


class RequesterRefused(GaotieError):
    """The job's requester may not request it (a helper, or not in ``allowed_requesters``)."""


STATES = ("prepared", "running", "done", "failed", "cancelled", "refused")
_KEEP_FINISHED = 1000


@dataclass
class Job:
    job_id: str
    spec: registry.ProtocolSpec
    params: dict[str, Any]
    parties: list[str]
    helpers: list[str]
    requester: str
    timeout: float
    state: str = "prepared"
    error: str = ""
    failed_party: str = ""  # with state failed or refused: the party that caused it
    result: Any = None
    progress: Progress = field(default_factory=Progress)
    started: float = 0.0
    ended: float = 0.0
    created: float = field(default_factory=time.monotonic)
    ctx: Context | None = None
    done: threading.Event = field(default_factory=threading.Event)


class JobManager:
    """The jobs this party takes part in."""

    def __init__(self, party: str, transport, mailbox, data, config, executor=None) -> None:
        self.party = party
        self.transport = transport
        self.mailbox = mailbox
        self.data = data
        self.config = config
        self.executor = executor      # None: the in-process default (mpc.runtime.executor)
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._audit_lock = threading.Lock()

    # -- phase 1 ---------------------------------------------------------------------
    def prepare(self, job_id: str, protocol: str, params: Any, parties: list[str], requester: str,
                timeout: float) -> Job:
        """Validate and get ready; raises (and records nothing running) if this party refuses."""
        spec = registry.get(protocol)
        params = spec.validate(params)
        expected = spec.parties(params)
        helpers = self._helpers(spec, params, expected, list(parties), requester)
        if self.party not in expected + helpers:
            raise ValueError(f"party {self.party!r} takes no part in this job")
        self._check_requester(requester, expected, [*helpers, *spec.helpers, *spec.required_helpers(params)])
        self._check_required(spec, params, helpers, requester)
        unknown = [p for p in expected + helpers if p != self.party and p not in self.config.peers]
        if unknown:
            raise ValueError(f"party {self.party!r} has no address for {unknown[0]!r}")
        provider.check(spec.needs(params), self._options(expected, helpers), f"protocol {spec.name!r}")
        if self.party in expected:
            self.data.check(spec.uses(params))
        timeout = min(timeout or self.config.limits.job_timeout, self.config.limits.job_timeout)
        self._expire_prepared()
        job = Job(job_id, spec, params, expected, helpers, requester, timeout)
        with self._lock:
            if job_id in self._jobs:
                raise ValueError(f"job {job_id} already exists")
            self.mailbox.open(job_id, expected + helpers)
            self._jobs[job_id] = job
            self._forget_old()
        return job

    def _helpers(self, spec, params: dict[str, Any], expected: list[str], parties: list[str],
                 requester: str) -> list[str]:
        """The job's helper parties. The requester picks them: the spec's helpers its own
        config lists as peers (a dealer if the deployment has one); it sends them after the
        computing parties in the job request's ``parties``, which the others take as given,
        so every party agrees (:meth:`_check_required` then refuses a job that lacks a helper
        its parameters require)."""
        if parties and parties[:len(expected)] != expected:
            raise ValueError(f"job parties {parties} do not match the parameters ({expected})")
        required = list(spec.required_helpers(params))
        if parties[len(expected):] or self.party != requester:
            helpers = parties[len(expected):]
            unknown = [h for h in helpers if h not in spec.helpers and h not in required]
            if unknown:
                raise ValueError(f"protocol {spec.name!r} uses no helper party {unknown[0]!r}")
        else:
            helpers = [h for h in (*spec.helpers, *required) if h in self.config.peers or h == self.party]
            helpers = list(dict.fromkeys(helpers))
        return helpers

    @staticmethod
    def _check_required(spec, params: dict[str, Any], helpers: list[str], requester: str) -> None:
        for h in spec.required_helpers(params):
            if h not in helpers:
                raise ValueError(f"protocol {spec.name!r} with these parameters needs the helper party {h!r}, "
                                 f"which this deployment does not have (party {requester!r} lists no "
                                 f"{h!r} peer); configure a {h!r} or choose parameters that need none")

    @staticmethod
    def _options(parties: list[str], helpers: list[str]) -> dict[str, Any]:
        """The job's runtime options: the helpers' options, "auto" resolved for these helpers."""
        return resolve_options(default_options(), parties, helpers)

    def _check_requester(self, requester: str, parties: list[str], helpers: list[str]) -> None:
        if requester not in parties:
            role = "a helper of this job" if requester in helpers else "not a party of this job"
            raise RequesterRefused(
                f"party {self.party!r} refuses: requester {requester!r} is {role}; only a computing party "
                f"({', '.join(map(repr, parties))}) may request it, helpers never do")
        allowed = self.config.allowed_requesters
        if allowed is not None and requester not in allowed:
            raise RequesterRefused(
                f"party {self.party!r} refuses: requester {requester!r} may not request jobs that involve "
                f"{self.party!r} (not in its allowed_requesters)")

    # -- phase 2 ---------------------------------------------------------------------
    def start(self, job_id: str) -> Job:
        job = self.get(job_id)
        with self._lock:
            if job.state != "prepared":
                raise ValueError(f"job {job_id} is {job.state}, not prepared")
            job.state = "running"
            job.started = time.time()
        threading.Thread(target=self._run, args=(job,), daemon=True, name=f"job-{job_id}").start()
        return job

    def _run(self, job: Job) -> None:
        options = self._options(job.parties, job.helpers)
        ctx = Context(self.party, job.parties, job.job_id, self.transport, job.timeout, options, job.helpers,
                      self.executor)
        ctx.on_progress(lambda p: setattr(job, "progress", p))
        job.ctx = ctx
        if self.party in job.parties:
            body = lambda c: job.spec.run(c, job.params, self.data)  # noqa: E731
        else:
            body = helper_function(self.party)
        try:
            result = run_party(ctx, body)
            target = self.config.results_dir / f"{job.job_id}.parquet"
            if isinstance(result, tables.ResultFile):     # written as the job went: moved, not loaded
                result = result.move(target)
            elif self.party in job.parties and result is not None:
                tables.write_atomic(target, tables.to_frame(result))
            checkpoint = ctx.state.get("checkpoint")
            if checkpoint is not None:    # a bucketed job: its result is safe, its buckets go
                checkpoint.clear()
            job.result, job.state, job.progress = result, "done", job.progress.then(1.0)
        except BaseException as exc:  # noqa: BLE001 - recorded and reported through Status
            if job.state != "cancelled":
                job.state = "failed"
                job.failed_party, job.error = job_failure(self.party, exc)
            log.info("job %s failed on %s: %s", job.job_id, self.party, job.error)
        finally:
            job.ended = time.time()
            self.mailbox.close(job.job_id)
            self._audit(job)
            job.done.set()
            self._sweep_checkpoints()

    def _sweep_checkpoints(self) -> None:
        """Remove the checkpoints of finished or failed jobs last written longer ago than
        ``[limits] checkpoint_retention``; a running job's checkpoint stays."""
        with self._lock:
            running = [j.ctx.state.get("checkpoint") for j in self._jobs.values()
                       if j.ctx is not None and not j.done.is_set()]
        keep = {c.key for c in running if c is not None}
        try:
            for key in sweep(self.config.checkpoints_dir, self.config.limits.checkpoint_retention, keep):
                log.info("removed stale checkpoint %s (older than [limits] checkpoint_retention)", key)
        except OSError as exc:      # a full or read-only disk must not fail the job that just ended
            log.warning("could not sweep checkpoints: %s", exc)

    # -- queries ---------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(f"unknown job {job_id!r}")
        return job

    def cancel(self, job_id: str, reason: str = "cancelled", state: str = "cancelled",
               failed_party: str = "") -> Job:
        """Stop a prepared or running job here (and tell its peers); ``state`` is what it ends
        as, ``failed_party`` the party whose refusal or error made it end (if any)."""
        job = self.get(job_id)
        if job.state in ("prepared", "running"):
            was = job.state
            job.state, job.error, job.failed_party = state, reason, failed_party
            self.mailbox.fail(job_id, GaotieError(f"job {job_id} {reason}"))
            if was == "prepared":
                self.mailbox.close(job_id)
                job.ended = time.time()
                self._audit(job)
                job.done.set()
            elif job.ctx is not None:
                job.ctx.abort(reason)
        return job

    def refuse(self, job_id: str, protocol: str, params: Any, requester: str, error: str) -> None:
        """Record a job this party (or a peer) refused, for the audit log."""
        self._write_audit({"job_id": job_id, "protocol": protocol, "requester": requester,
                           "party": self.party, "params": _jsonable(params), "outcome": "refused",
                           "error": error, "start": time.time(), "end": time.time()})

    def _expire_prepared(self) -> None:
        """Cancel jobs prepared longer ago than their timeout and never started: their requester
        is gone, and they must not hold open-job slots (``max_open_jobs``) for good."""
        now = time.monotonic()
        with self._lock:
            stale = [j for j in self._jobs.values() if j.state == "prepared" and now - j.created > j.timeout]
        for job in stale:
            self.cancel(job.job_id, f"never started by {job.requester!r} within the job timeout")

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.done.is_set()]
        for job in finished[:max(0, len(finished) - _KEEP_FINISHED)]:
            del self._jobs[job.job_id]

    # -- audit -----------------------------------------------------------------------
    def _audit(self, job: Job) -> None:
        self._write_audit({
            "job_id": job.job_id, "protocol": job.spec.name, "requester": job.requester,
            "party": self.party, "parties": job.parties + job.helpers, "params": _jsonable(job.params),
            "reveals": job.spec.reveals, "revealed_to_me": summarize(job.result) if job.state == "done" else "",
            "start": job.started, "end": job.ended, "outcome": job.state, "error": job.error,
            **({k: job.ctx.state[k] for k in ("resumed_buckets", "resumed_paillier_buckets")
                if k in job.ctx.state} if job.ctx is not None else {})})

    def _write_audit(self, record: dict[str, Any]) -> None:
        path = self.config.audit_log
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._audit_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(line)


def job_failure(party: str, exc: BaseException) -> tuple[str, str]:
    """(the party that caused it, the error as users see it) of a job that failed at ``party``."""
    origin = culprit(party, exc)
    if isinstance(exc, PeerFailed):
        if origin != exc.party:     # the peer passes on a third party's failure
            return origin, f"{exc.reason} (reported by {exc.party!r})"
        return origin, str(exc)
    text = describe(exc)
    return origin, text if "party '" in text else f"party {party!r} failed: {text}"


def summarize(result: Any) -> str:
    """What a result is, without its values: for the audit log."""
    import numpy as np
    import pandas as pd

    if result is None:
        return "nothing"
    if isinstance(result, tables.ResultFile):
        return f"table {result.rows} rows x {len(result.columns)} columns ({', '.join(result.columns)})"
    if isinstance(result, pd.DataFrame):
        return f"table {result.shape[0]} rows x {result.shape[1]} columns ({', '.join(map(str, result.columns))})"
    if isinstance(result, dict):
        return "{" + ", ".join(f"{k}: {summarize(v)}" for k, v in result.items()) + "}"
    if isinstance(result, (list, tuple, np.ndarray)):
        return f"{type(result).__name__} of {len(result)}"
    return f"one {type(result).__name__}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(type(value).__name__)
