"""The README's "Deployment on two machines" section, followed as written by two companies
with no dealer: certificates by its ``gaotie certs`` command, each company's ``party.toml``
from its TOML block, two real ``gaotie serve`` processes, the job file of step 4 run by its
``gaotie run`` command, and the statistics jobs it names, against pandas.

The commands and the config are read from README.md (the section between its heading and
the next one), so this test fails when the README drifts from the code. The only changes
are the ones two machines on one host need: the example host names become ``localhost``,
``0.0.0.0:50051`` a free loopback port each, and each company's files live in its own
directory (its own ``certs/``, ``data/`` and ``party.toml``).
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import check_group_by, check_woe_iv

from mpc.client import Client
from mpc.cluster import free_port, write_toml
from mpc.server.tls import TlsFiles

ROOT = Path(__file__).resolve().parent.parent
HOSTS = {"bank": "bank.example.com", "retailer": "retail.example.com"}
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def section() -> str:
    """The README's two-machine section (its heading to the next ``## `` heading)."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Deployment on two machines\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert match, "README.md has no '## Deployment on two machines' section"
    return match.group(1)


def command(text: str, start: str) -> list[str]:
    """The one inline `command` of ``text`` that starts with ``start`` and has options, as argv."""
    found = [c for c in re.findall(r"`([^`\n]+)`", text) if c.startswith(start + " ") and " --" in c]
    assert len(found) == 1, f"expected one `{start} ...` command in the README section, found {found}"
    return shlex.split(found[0])


def toml_blocks(text: str) -> list[str]:
    """Every ```toml block (indented under a list item or not), dedented."""
    blocks = re.findall(r"^( *)```toml\n(.*?)^\1```", text, flags=re.S | re.M)
    return [re.sub(rf"(?m)^{indent}", "", body) for indent, body in blocks]


def to_loopback(argv: list[str], ports: dict[str, int]) -> list[str]:
    """argv with each example host name as ``localhost`` (and HOST:50051 on its party's port)."""
    out = []
    for arg in argv:
        for party, host in HOSTS.items():
            arg = arg.replace(f"{host}:50051", f"localhost:{ports[party]}").replace(host, "localhost")
        out.append(arg)
    return out


def gaotie(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    assert argv[0] == "gaotie"
    return subprocess.run([sys.executable, "-m", "mpc.cli", *argv[1:]], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def company_config(readme_config: dict, party: str, ports: dict[str, int], dataset: str,
                   columns: dict[str, str]) -> dict:
    """``party``'s party.toml: the README's (the bank's) with this party's names, its peer on
    loopback and its dataset; the retailer drops the bank's ``allowed_requesters`` (as the
    README says), so that the bank's users may start the joint jobs."""
    peer = next(p for p in HOSTS if p != party)
    config = {k: v for k, v in readme_config.items() if k not in ("datasets", "peers", "allowed_requesters")}
    config["party"] = party
    assert readme_config["listen"] == "0.0.0.0:50051"
    config["listen"] = f"127.0.0.1:{ports[party]}"
    config["tls"] = {k: v.replace("bank", party) for k, v in readme_config["tls"].items()}
    assert set(readme_config["peers"]) == {peer if party == "bank" else party}, readme_config["peers"]
    config["peers"] = {peer: f"localhost:{ports[peer]}"}
    if party == "bank":
        config["allowed_requesters"] = readme_config["allowed_requesters"]
    (name, spec), = readme_config["datasets"].items()
    config["datasets"] = {dataset: {**spec, "path": spec["path"].replace(name, dataset), "columns": columns}}
    return config


def wait_serving(client: Client, party: str, process: subprocess.Popen, timeout: float = 30) -> None:
    """Until the bank's server lists ``party``'s datasets (the retailer's: asked over the peer link)."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"gaotie serve exited with {process.returncode}"
        try:
            assert client.datasets(None if party == "bank" else party)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    text = section()
    assert "no dealer" in text and "optional" in text        # the section's promise: two servers suffice
    top = tmp_path_factory.mktemp("readme")
    ports = {p: free_port() for p in HOSTS}

    # step 1: the CA and certificates, as written (host names as the loopback name)
    certs = command(text, "gaotie certs")
    assert "--party" in certs and certs[certs.index("--out") + 1] == "certs"
    out = gaotie(to_loopback(certs, ports), top)
    assert out.returncode == 0, out.stderr
    for party in HOSTS:                                        # each company gets its files
        (top / party / "certs").mkdir(parents=True)
        for name in (f"{party}.pem", f"{party}.key", "ca.pem"):
            (top / party / "certs" / name).write_bytes((top / "certs" / name).read_bytes())

    # step 2: party.toml (the README's block), the datasets it names
    configs = [b for b in toml_blocks(text) if "[tls]" in b]
    assert len(configs) == 1, "expected one party.toml block in the README section"
    readme = tomllib.loads(configs[0])
    rng = np.random.default_rng(11)                            # test data
    n_bank, n_retail, overlap = 220, 200, 160
    ids = [f"c{i:05d}" for i in range(n_bank + n_retail - overlap)]
    bank = pd.DataFrame({"customer_id": ids[:n_bank], "income": rng.lognormal(10, 0.5, n_bank).round(2),
                         "segment": rng.choice(["gold", "silver", "basic"], n_bank),
                         "default": (rng.random(n_bank) < 0.3).astype(int)})
    retail = pd.DataFrame({"customer_id": ids[n_bank - overlap:], "spend": rng.gamma(2.0, 300.0, n_retail).round(2)})
    bank_columns = {**readme["datasets"]["accounts"]["columns"], "default": "aggregate"}
    assert bank_columns["customer_id"] == "join_key" and readme["datasets"]["accounts"]["id"] == "customer_id"
    frames = {"bank": ("accounts", bank, bank_columns),
              "retailer": ("purchases", retail, {"customer_id": "join_key", "spend": "aggregate"})}
    processes: dict[str, subprocess.Popen] = {}
    serve = command(text, "gaotie serve")
    try:
        for party, (dataset, frame, columns) in frames.items():
            config = company_config(readme, party, ports, dataset, columns)
            path = top / party / config["datasets"][dataset]["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(path, index=False)
            write_toml(top / party / "party.toml", config)
            # step 3: gaotie serve --config party.toml, in the company's directory
            log = open(top / party / "serve.log", "wb")  # noqa: SIM115 - closed with the process
            processes[party] = subprocess.Popen([sys.executable, "-m", "mpc.cli", *serve[1:]], cwd=top / party,
                                                env=ENV, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL)
            log.close()
        files = TlsFiles(*(top / "bank" / "certs" / n for n in ("ca.pem", "bank.pem", "bank.key")))
        with Client(f"localhost:{ports['bank']}", tls=files) as client:   # the name in the certificate
            for party in HOSTS:
                wait_serving(client, party, processes[party])
            yield {"top": top, "ports": ports, "text": text, "client": client,
                   "joined": bank.merge(retail, on="customer_id"), "processes": processes}
    finally:
        for proc in processes.values():
            proc.terminate()
        for proc in processes.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def printed(stdout: str) -> dict[str, object]:
    """What ``gaotie run`` printed: ``key: value`` lines as strings, ``key:`` blocks (tables
    printed in full) as DataFrames."""
    out: dict[str, object] = {}
    name, lines = None, []
    for line in [*stdout.splitlines(), "end:"]:
        head = re.fullmatch(r"([\w.%]+):(?: (.*))?", line)
        if head is None:
            lines.append(line)
            continue
        if name is not None:
            out[name] = pd.read_csv(io.StringIO("\n".join(lines)), sep=r"\s+")
        name, lines = (head.group(1), []) if head.group(2) is None else (None, [])
        if head.group(2) is not None:
            out[head.group(1)] = head.group(2)
    return out


def test_the_readme_job_file_runs_with_its_command(deployment):
    """Step 4 as written: the README's job file (join.stats: describe with the quartiles,
    by the dealer-free shuffle and quickselect; corr; histogram) by its ``gaotie run``
    command on the bank's side; what it prints equals pandas on the joined rows."""
    text, top = deployment["text"], deployment["top"]
    jobs = [b for b in toml_blocks(text) if b.startswith("protocol")]
    assert len(jobs) == 1, "expected one job file block in the README section"
    (top / "bank" / "job.toml").write_text(jobs[0])
    job = tomllib.loads(jobs[0])
    assert job["protocol"] == "join.stats" and set(job["params"]["stats"]) == {"describe", "corr", "histogram"}
    run = to_loopback(command(text, "gaotie run"), deployment["ports"])
    assert run[:2] == ["gaotie", "run"] and "--server" in run and "--ca" in run
    out = gaotie(run, top / "bank")
    assert out.returncode == 0, out.stderr[-3000:]
    got = printed(out.stdout)
    plain = deployment["joined"][["income", "spend"]].rename(columns=lambda c: {"income": "bank.income",
                                                                              "spend": "retailer.spend"}[c])
    assert int(got["rows"]) == len(plain)
    ref = plain.describe().T
    describe = got["describe"].loc[ref.index, ref.columns]
    np.testing.assert_allclose(describe.to_numpy(dtype=float), ref.to_numpy(), rtol=1e-4)
    np.testing.assert_allclose(got["corr"].loc[ref.index, ref.index].to_numpy(), plain.corr().to_numpy(), atol=1e-4)
    for name in ref.index:
        hist = got[f"histogram.{name}"]
        counts, edges = np.histogram(plain[name], bins=job["params"].get("bins", 10))
        np.testing.assert_allclose(hist.lower, edges[:-1], rtol=1e-5)
        shown = ~hist.suppressed.to_numpy(dtype=bool)
        assert shown.any() and (hist["count"].to_numpy()[shown] == counts[shown]).all()
        assert (counts[~shown] < 20).all() and (hist["count"].to_numpy()[~shown] == -1).all()   # min_group_size


def _params(text: str) -> dict:
    return tomllib.loads(next(b for b in toml_blocks(text) if b.startswith("protocol")))["params"]


def test_group_by_matches_pandas(deployment):
    params = _params(deployment["text"])
    out = deployment["client"].run("stats.group_by", ids=params["ids"], key="bank.accounts.segment",
                                   values=["retailer.purchases.spend"], progress=False)
    check_group_by(out, deployment["joined"], 20)


def test_woe_iv_matches_plain_computation(deployment):
    params = _params(deployment["text"])
    out = deployment["client"].run("stats.woe_iv", ids=params["ids"], label="bank.accounts.default",
                                   features=["retailer.purchases.spend"], bins=4, progress=False)
    check_woe_iv(out, deployment["joined"])


def test_the_jobs_ran_on_the_two_servers_alone(deployment):
    """Each server's audit log: every job of this module done, with the bank and the
    retailer as its only parties (no helper joined any of them)."""
    for party in HOSTS:
        config = tomllib.loads((deployment["top"] / party / "party.toml").read_text())
        assert list(config["peers"]) == [next(p for p in HOSTS if p != party)]
        log = deployment["top"] / party / f"{party}-state" / "audit.jsonl"     # the default workdir
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert "join.stats" in {r["protocol"] for r in records}
        for r in records:
            assert r["outcome"] == "done" and sorted(r["parties"]) == ["bank", "retailer"], r
        assert deployment["processes"][party].poll() is None
