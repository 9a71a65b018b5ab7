"""The wheel ships what users import: py.typed markers (PEP 561), sample data, proto stubs."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_has_py_typed_data_and_stubs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("mpc", "protocols"):  # a copy: building in the worktree would leave build/ behind
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          str(src), "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("gaotie-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"mpc/py.typed", "protocols/py.typed"} <= names
    assert {"mpc/data/bank_accounts.csv", "mpc/_proto/gaotie/v1/party_pb2.pyi"} <= names
