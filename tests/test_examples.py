"""The example scripts run end to end (real party servers) and print the right numbers."""

import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = resources.files("mpc.data")


def run_example(name: str) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_ad_conversion():
    ads = pd.read_csv(DATA / "ad_impressions.csv")
    purchases = pd.read_csv(DATA / "retailer_purchases.csv")
    converted = purchases[purchases.customer_id.isin(ads.user_id)]
    stdout = run_example("ad_conversion.py")
    match = re.search(r"ad platform learned: (\d+) exposed users bought, spending ([\d,.]+)", stdout)
    assert match, stdout
    assert int(match.group(1)) == len(converted)
    assert float(match.group(2).replace(",", "")) == pytest.approx(converted.spend.sum(), abs=0.01)
