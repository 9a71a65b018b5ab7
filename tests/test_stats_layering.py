"""The statistics speak SharedTensor only: no module of protocols/stats reaches into share
arrays (``t.share``, ``ss.from_shares``, constructing a SharedTensor), imports the raw
share protocols of mpc.ss (beaver, compare, shuffle, triples, the dealer, fixed-point
encoding, PRGs), does uint64 arithmetic outside the few plaintext helpers that map
floats to ordered words, or changes a job's options (precision is carried by the tensor:
``SharedTensor.at_precision``). An AST check, so a comment or docstring never trips it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

STATS = Path(__file__).resolve().parent.parent / "protocols" / "stats"

# the only names protocols/stats may import from mpc.ss (and its submodules)
ALLOWED_SS = {"mpc.ss": {"SharedTensor", "order"}, "mpc": {"ss"}}
# protocols/stats/order.py re-exports mpc.ss.order's raw pieces under their old name (the
# tests of the quickselect use it); it defines nothing
REEXPORT = "order.py"
# plaintext helpers: words of this party's own floats, never shares
PLAIN_UINT64 = {("horizontal.py", "_float_keys"), ("horizontal.py", "_from_keys"),
                ("horizontal.py", "_order_stats")}


def violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[str] = []

    def where(node: ast.AST) -> str:
        return f"{path.name}:{node.lineno}"

    funcs: list[tuple[int, int, str]] = [
        (n.lineno, n.end_lineno or n.lineno, n.name) for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]

    def function_of(node: ast.AST) -> str | None:
        inside = [(lo, name) for lo, hi, name in funcs if lo <= node.lineno <= hi]
        return max(inside)[1] if inside else None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr == "share" and not (isinstance(node.value, ast.Name) and node.value.id == "ss"):
                out.append(f"{where(node)}: reads a share array (.share)")
            if node.attr == "from_shares":
                out.append(f"{where(node)}: wraps raw shares (from_shares)")
            if node.attr == "uint64" and (path.name, function_of(node)) not in PLAIN_UINT64:
                out.append(f"{where(node)}: uint64 arithmetic in {function_of(node)}")
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del) \
                and isinstance(node.value, ast.Attribute) and node.value.attr == "options":
            out.append(f"{where(node)}: changes the job's options")
        if isinstance(node, ast.Name) and node.id in ("from_shares", "SharedTensor") \
                and isinstance(node.ctx, ast.Load):
            parent_calls = [c for c in ast.walk(tree) if isinstance(c, ast.Call) and c.func is node]
            if node.id == "from_shares" or parent_calls:
                out.append(f"{where(node)}: builds a SharedTensor from shares ({node.id})")
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("mpc.ss.") or a.name.startswith("mpc.crypto"):
                    out.append(f"{where(node)}: imports {a.name}")
        if isinstance(node, ast.ImportFrom) and path.name != REEXPORT:
            mod = node.module or ""
            if mod.startswith("mpc.ss.") or mod.startswith("mpc.crypto"):
                out.append(f"{where(node)}: imports from {mod}")
            elif mod in ALLOWED_SS:
                bad = [a.name for a in node.names if a.name not in ALLOWED_SS[mod]]
                if bad:
                    out.append(f"{where(node)}: imports {bad} from {mod}")
    if path.name == REEXPORT and any(isinstance(n, ast.FunctionDef | ast.ClassDef) for n in tree.body):
        out.append(f"{path.name}: the re-export module defines code")
    return out


def _modules() -> list[Path]:
    return sorted(STATS.glob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_stats_use_only_shared_tensors(path):
    assert violations(path) == []


def test_the_check_catches_raw_share_code(tmp_path):
    bad = tmp_path / "leaky.py"
    bad.write_text(
        "import numpy as np\n"
        "from mpc.ss import beaver, from_shares\n"
        "def f(ctx, t):\n"
        "    ctx.options['frac_bits'] = 20\n"
        "    raw = beaver.truncate(ctx, t.share * np.uint64(3), 2)\n"
        "    return from_shares(ctx, raw, 0)\n")
    found = violations(bad)
    assert any(".share" in v for v in found)
    assert any("uint64" in v for v in found)
    assert any("options" in v for v in found)
    assert any("from_shares" in v for v in found)
    assert any("['beaver', 'from_shares']" in v for v in found)
