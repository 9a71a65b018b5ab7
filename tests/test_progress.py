"""Progress: protocols report real phases and step counts; people see a bar per phase on a
terminal and one line per phase (no carriage returns) anywhere else."""

import io
import re

import numpy as np
import pytest

import mpc
from mpc import client as client_module
from mpc.runtime.progress import Progress, ProgressDisplay
from protocols.psi import ecdh_psi, intersection_sum, oprf_psi, private_join
from protocols.psi.oprf import PHASE as OPRF_PHASE

KEY_BITS = 1024  # Paillier tests only: fast keys


def _with_progress(body):
    """A protocol that records every progress report of its party, then runs ``body``."""
    def job(ctx, *args):
        seen = []
        ctx.on_progress(seen.append)
        body(ctx, *args)
        return seen
    return job


def _phases(events):
    out = []
    for p in events:
        if not out or out[-1] != p.phase:
            out.append(p.phase)
    return out


def test_report_progress_keeps_the_phase_and_counts():
    p = Progress().then(phase="a", total=4, unit="batches").then(done=1).then(done=3)
    assert p == Progress(0.75, "a", 3, 4, "batches")
    assert p.then(phase="b") == Progress(0.0, "b", 0, 0, "steps")
    assert p.then(1.0) == Progress(1.0, "a", 3, 4, "batches")
    assert Progress().then(7.0).fraction == 1.0  # older callers: a fraction of the job, clipped


def test_psi_reports_its_batches():
    ids = [f"id{i}" for i in range(1000)]
    job = _with_progress(lambda ctx, items: ecdh_psi(ctx, items, bucket_size=128))
    out = mpc.run_local(job, ["a", "b"], args={"a": (ids,), "b": (ids[300:],)}, triples=None)
    for party, events in out.items():
        batches = [p for p in events if p.phase == "ECDH PSI: blinding and exchanging ids"]
        # 1000 rows / 128: 8 batches, one at a time; then the PSI says it is done
        assert [p.done for p in batches] == [1, 2, 3, 4, 5, 6, 7, 8, 8], party
        assert {p.total for p in batches} == {8} and {p.unit for p in batches} == {"batches"}
        assert [p.fraction for p in batches] == [i / 8 for i in range(1, 9)] + [1.0]


@pytest.mark.parametrize("receivers", [None, "a", "b"])
def test_oprf_psi_reports_its_buckets(receivers):
    ids = [f"id{i}" for i in range(1000)]
    job = _with_progress(lambda ctx, items: oprf_psi(ctx, items, receivers, bucket_size=128))
    out = mpc.run_local(job, ["a", "b"], args={"a": (ids,), "b": (ids[300:],)}, triples=None)
    for party, events in out.items():
        buckets = [p for p in events if p.phase == OPRF_PHASE]
        done = [p.done for p in buckets]
        # max(1000, 700) ids / 128: 8 buckets, counted from 0 to 8 one at a time, then done
        assert done[0] == 0 and done[-1] == 8 and sorted(done) == done, (party, done)
        assert set(done) == set(range(9)), (party, done)
        assert {p.total for p in buckets} == {8} and {p.unit for p in buckets} == {"buckets"}
        assert buckets[-1].fraction == 1.0 and events[-1] == buckets[-1]


def test_private_join_reports_its_phases_in_order():
    ids = [f"id{i}" for i in range(600)]
    job = _with_progress(lambda ctx, i, c: private_join(ctx, i, c, key_bits=KEY_BITS, bucket_size=100))
    out = mpc.run_local(job, ["a", "b"], triples=None, args={
        "a": (ids, {"x": np.arange(600.0)}), "b": (ids[200:], {"y": np.arange(400.0)})})
    for events in out.values():
        assert _phases(events) == ["private join: matching ids (ECDH)", "private join: encrypting rows (Paillier)",
                                   "private join: masking and decrypting the joined rows (Paillier)"]
        enc = [p for p in events if p.phase == "private join: encrypting rows (Paillier)"]
        assert [(p.done, p.total) for p in enc] == [(i, 6) for i in range(1, 7)]  # max(600, 400) / 100


def test_intersection_sum_reports_paillier_batches():
    ids = [f"id{i}" for i in range(500)]
    job = _with_progress(lambda ctx, *a: intersection_sum(ctx, *a, key_bits=KEY_BITS, bucket_size=100))
    out = mpc.run_local(job, ["ids", "vals"], triples=None,
                        args={"ids": (ids[:300],), "vals": (ids, np.ones(500))})
    enc = [p for p in out["vals"] if p.phase == "intersection-sum: encrypting values (Paillier)"]
    assert [(p.done, p.total, p.unit) for p in enc] == [(i, 5, "batches") for i in range(1, 6)]
    add = [p for p in out["ids"] if p.phase == "intersection-sum: matching and adding (Paillier)"]
    assert [(p.done, p.total) for p in add] == [(i, 5) for i in range(1, 6)]


def test_display_without_a_terminal_prints_one_line_per_phase():
    out = io.StringIO()  # not a terminal
    display = ProgressDisplay("join.stats j1", stream=out)
    assert not display.interactive
    for p in [Progress(), Progress(0.0, "matching ids")] + [Progress(i / 8, "encrypting rows", i, 8, "batches")
                                                 for i in range(1, 9)] + [Progress(0.0, "describe")]:
        display.update(p)
    display.finish()
    assert out.getvalue() == ("join.stats j1: matching ids\n"
                              "join.stats j1: encrypting rows (8 batches)\n"
                              "join.stats j1: describe\n")


def test_display_on_a_terminal_shows_a_bar_per_phase_with_steps():
    out = io.StringIO()
    display = ProgressDisplay("psi.ecdh j2", stream=out, interactive=True)
    for i in range(1, 4):
        display.update(Progress(i / 8, "blinding ids", i, 8, "batches"))
    display.update(Progress(0.0, "comparing"))
    display.finish()
    text = out.getvalue()
    assert "psi.ecdh j2: blinding ids" in text and "3/8" in text and "batches/s" in text
    assert "%/s" not in text


def test_a_job_without_a_terminal_prints_its_phases_once_each(tls_cluster, capsys, monkeypatch):
    monkeypatch.setattr(client_module, "_SHOW_PROGRESS_AFTER", 0.0)
    ids = ["bank.accounts.customer_id", "retailer.purchases.customer_id"]
    with tls_cluster.client("bank") as bank:
        out = bank.run("join.stats", ids=ids, columns=["bank.accounts.income", "retailer.purchases.spend"],
                       stats=["describe", "corr"], join="ecdh")   # the join with the most phases
    assert out["rows"] == 120
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    phases = [re.fullmatch(r"join\.stats \w+: (.*)", line).group(1) for line in lines]
    order = ["private join: matching ids (ECDH)", "private join: encrypting rows (Paillier)",
             "private join: masking and decrypting the joined rows (Paillier)",
             "statistics: describe", "statistics: correlation"]
    seen = [re.sub(r" \(\d+ batches\)$", "", p) for p in phases]
    assert seen and len(set(seen)) == len(seen), lines          # each phase once
    assert seen == [p for p in order if p in seen], lines       # in the protocol's order


@pytest.mark.parametrize(("method", "phase", "unit"), [("ecdh", "ECDH PSI: blinding and exchanging ids", "batches"),
                                                       ("oprf", OPRF_PHASE, "buckets")])
def test_status_reports_the_phase(tls_cluster, method, phase, unit):
    with tls_cluster.client("bank") as bank:
        job = bank.submit("psi.ecdh", ids=["bank.accounts.customer_id", "retailer.purchases.customer_id"],
                          method=method)
        bank.result(job, progress=False)
        s = bank.status(job)
    assert s["state"] == "done" and s["progress"] == 1.0
    assert s["phase"] == phase and s["unit"] == unit
    assert s["done"] == s["total"] >= 1


def _join(ctx, ids, cols):
    return private_join(ctx, ids, cols, key_bits=KEY_BITS, bucket_size=100).num_rows


def test_run_local_shows_phases_when_asked(capsys):
    ids = [f"id{i}" for i in range(300)]
    args = {"a": (ids, {"x": np.arange(300.0)}), "b": (ids[100:], {"y": np.arange(200.0)})}
    assert mpc.run_local(_join, ["a", "b"], args=args, triples=None, progress=True) == {"a": 200, "b": 200}
    err = capsys.readouterr().err
    assert "\r" not in err
    assert [line.split(": ", 1)[1] for line in err.splitlines()] == [
        "private join: matching ids (ECDH)", "private join: encrypting rows (Paillier) (3 batches)",
        "private join: masking and decrypting the joined rows (Paillier)"]
    assert all(line.startswith("_join ") for line in err.splitlines())
    mpc.run_local(_join, ["a", "b"], args=args, triples=None)
    assert capsys.readouterr().err == ""  # quiet by default
