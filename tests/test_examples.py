"""The example scripts run as plain scripts (``python examples/x.py``, no main guard) end to end
(real party servers) and print the right numbers."""

import re
import tempfile
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from test_scripts import run_script

ROOT = Path(__file__).resolve().parent.parent
DATA = resources.files("mpc.data")


def run_example(name: str) -> str:
    """``python examples/<name>`` in a fresh interpreter and an empty directory; its stdout."""
    with tempfile.TemporaryDirectory() as cwd:
        return run_script(ROOT / "examples" / name, Path(cwd)).stdout


def test_every_example_is_a_plain_script_with_a_test():
    for path in sorted((ROOT / "examples").glob("*.py")):
        assert "__main__" not in path.read_text(), f"{path.name}: examples are plain scripts, no main guard"
        assert f"test_{path.stem}" in globals(), f"{path.name} has no test in {__file__}"


def test_ad_conversion():
    ads = pd.read_csv(DATA / "ad_impressions.csv")
    purchases = pd.read_csv(DATA / "retailer_purchases.csv")
    converted = purchases[purchases.customer_id.isin(ads.user_id)]
    stdout = run_example("ad_conversion.py")
    match = re.search(r"ad platform learned: (\d+) exposed users bought, spending ([\d,.]+)", stdout)
    assert match, stdout
    assert int(match.group(1)) == len(converted)
    assert float(match.group(2).replace(",", "")) == pytest.approx(converted.spend.sum(), abs=0.01)


def _joined():
    bank = pd.read_csv(DATA / "bank_accounts.csv")
    retail = pd.read_csv(DATA / "retailer_purchases.csv")
    return bank.merge(retail, on="customer_id")


def test_joint_stats():
    joined = _joined()
    stdout = run_example("joint_stats.py")
    assert f"customers in common: {len(joined)}" in stdout
    pearson = float(re.search(r"pearson\(income, spend\) over them: ([-\d.]+)", stdout).group(1))
    assert pearson == pytest.approx(joined.income.corr(joined.spend), abs=1e-4)
    for segment, row in joined.groupby("segment").spend.agg(["count", "sum"]).iterrows():
        line = next(x for x in stdout.splitlines() if x.strip().startswith(segment))
        fields = line.split()
        assert float(fields[1]) == row["count"] and float(fields[2]) == pytest.approx(row["sum"], abs=0.01)


def test_credit_woe():
    joined = _joined()
    stdout = run_example("credit_woe.py")
    assert f"rows aligned: {len(joined)}" in stdout
    ivs = dict(re.findall(r"IV (\w+): ([\d.]+)", stdout))
    assert set(ivs) == {"spend", "visits"}
    # The events per bin add up to the defaults among the shared customers.
    events = [int(line.split()[5]) for line in stdout.splitlines() if line.strip().startswith("spend ")]
    assert sum(events) == joined["default"].sum()


def test_notebook_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(ROOT / "examples" / "notebook.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = {i: cell.outputs for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}
    text = "".join(o.get("data", {}).get("text/plain", "") for outs in outputs.values() for o in outs)
    joined = _joined()
    assert str(len(joined)) in text  # the PSI cardinality cell
    assert any("image/png" in o.get("data", {}) for outs in outputs.values() for o in outs)  # the histogram
    printed = "".join(o.get("text", "") for outs in outputs.values() for o in outs)
    assert "what each party learns:" in printed and "avg_spend" in text     # the SQL cells


def test_sql_query():
    joined = _joined()
    frequent = joined[joined.visits >= 12]
    stdout = run_example("sql_query.py")
    assert "what each party learns:" in stdout and "as a secret 0/1 weight per row" in stdout
    want = frequent.groupby("segment").agg(n=("spend", "size"), avg=("spend", "mean"), sd=("income", "std"))
    for segment, row in want.iterrows():
        line = next(x for x in stdout.splitlines() if x.strip().startswith(segment + " "))
        fields = line.split()
        assert float(fields[1]) == row["n"]
        assert float(fields[2]) == pytest.approx(row["avg"], rel=1e-5)
        assert float(fields[3]) == pytest.approx(row["sd"], rel=1e-4)
