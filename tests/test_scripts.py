"""Every ```python block of README.md runs as a plain script and prints the right numbers.

Convention (stated in the README's Python API section): each ```python block is a whole
script a user can paste into ``study.py`` and run with ``python study.py``: no names from
elsewhere, no ``if __name__ == "__main__":`` guard. Each block runs here in a fresh
interpreter, in an empty directory, and one checker below (chosen by a line the block
contains) compares what it prints with pandas / numpy on the same data. A new block
without a checker fails the test. The example scripts are run the same way by
tests/test_examples.py.
"""

import ast
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = resources.files("mpc.data")


def python_blocks(markdown: str) -> list[str]:
    """The code of every ```python fenced block, in order."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def run_script(path: Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python path`` in a fresh interpreter; gaotie importable as the test run imports it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=timeout,
                         cwd=cwd, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "\r" not in out.stderr, "progress bars redraw with \\r although stderr is not a terminal"
    return out


def _joined() -> pd.DataFrame:
    bank = pd.read_csv(DATA / "bank_accounts.csv")
    retail = pd.read_csv(DATA / "retailer_purchases.csv")
    return bank.merge(retail, on="customer_id")


def check_run_local(stdout: str) -> None:
    """The study (private_join + pearson) and secure_product blocks."""
    lines = stdout.splitlines()
    study = ast.literal_eval(lines[0])
    joined = _joined()
    assert set(study) == {"bank", "shop"} and study["bank"] == study["shop"]
    rows, r = study["bank"]
    assert rows == len(joined)
    assert r == pytest.approx(joined.income.corr(joined.spend), abs=1e-4)
    product = {k: float(v) for k, v in re.findall(r"'(\w+)': array\(([-\d.e]+)\)", lines[1])}
    assert product == {"a": pytest.approx(1.5 * 4.0 + 2.0 * -1.0, abs=1e-4),
                       "b": pytest.approx(1.5 * 4.0 + 2.0 * -1.0, abs=1e-4)}


def _numbers(line: str) -> list[float]:
    return [float(x) for x in line.split()[1:]]


def check_local_cluster(stdout: str) -> None:
    """The party-server block: datasets() shows policies, join.stats matches pandas."""
    lines = stdout.splitlines()
    datasets = ast.literal_eval(lines[0])
    assert datasets["bank"][0]["name"] == "accounts"
    assert datasets["bank"][0]["columns"] == {"customer_id": "join_key", "income": "aggregate"}
    joined = _joined()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["count", "mean"])
    assert lines[header].split() == ["count", "mean", "std", "min", "25%", "50%", "75%", "max"]
    for row in (1, 2):
        name = lines[header + row].split()[0]
        column = {"bank.income": "income", "retailer.spend": "spend"}[name]
        expected = joined[column].describe().to_numpy()
        assert np.allclose(_numbers(lines[header + row]), expected, rtol=1e-4, atol=0.01), (name, expected)
    names = ["bank.income", "retailer.spend"]
    corr_header = next(i for i in range(header + 3, len(lines)) if lines[i].split() == names)
    corr = [_numbers(lines[corr_header + 1]), _numbers(lines[corr_header + 2])]
    r = joined.income.corr(joined.spend)
    assert np.allclose(corr, [[1.0, r], [r, 1.0]], atol=1e-4)


CHECKERS = {"def study(ctx": check_run_local, "mpc.LocalCluster(": check_local_cluster}


def _checker(block: str):
    found = [check for marker, check in CHECKERS.items() if marker in block]
    assert len(found) == 1, f"README block without exactly one checker in {__file__}:\n{block[:300]}"
    return found[0]


BLOCKS = python_blocks((ROOT / "README.md").read_text())


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs_as_a_plain_script(index, tmp_path):
    block = BLOCKS[index]
    assert "__main__" not in block
    check = _checker(block)
    script = tmp_path / "study.py"
    script.write_text(block)
    check(run_script(script, tmp_path).stdout)
