"""The import contract of docs/architecture.md: imports point down the layers only.

Read from the source with ``ast``, so imports inside functions count too, and so do module
names given to ``importlib.import_module`` or kept as strings to import later (the way the
runtime once named the dealer: ``"mpc.ss.dealer"``).
"""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SERVER = ("mpc.server", "mpc.client", "mpc.cluster", "mpc.cli", "mpc.demo")
ENGINES = ("mpc.ss", "mpc.paillier", "mpc.ot")
PROTOCOLS = ("protocols",)
RUNTIME = ("mpc.runtime",)

# package -> the modules it must never import
CONTRACT = {
    "protocols": SERVER,
    "mpc/ss": SERVER + PROTOCOLS,
    "mpc/paillier": SERVER + PROTOCOLS,
    "mpc/ot": SERVER + PROTOCOLS,
    "mpc/runtime": SERVER + PROTOCOLS + ENGINES,
    "mpc/crypto": SERVER + PROTOCOLS + ENGINES + RUNTIME,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every module a file imports or names for a later import."""
    module = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, path.name == "__init__.py")
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if "." in text and text.replace(".", "").replace("_", "").isalnum() and _within(text, ("mpc", "protocols")):
                out.append((node.lineno, text))
    return out


def _within(name: str, prefixes: tuple[str, ...]) -> str | None:
    return next((p for p in prefixes if name == p or name.startswith(p + ".")), None)


def violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, name in imported_modules(path):
            if _within(name, forbidden):
                out.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return out


@pytest.mark.parametrize("package", sorted(CONTRACT))
def test_imports_point_down_the_layers(package):
    assert violations(package, CONTRACT[package]) == []


def test_the_checker_sees_imports_inside_functions_and_module_strings(tmp_path, monkeypatch):
    pkg = tmp_path / "protocols"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bad.py").write_text('def f():\n    from mpc.server.data import numeric\n\n'
                                'HELPERS = {"x": ("dealer", "mpc.server.jobs", "run")}\n'
                                '"""Docs may name :mod:`mpc.server.jobs`."""\n')
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert violations("protocols", SERVER) == [
        "protocols/bad.py:2 imports mpc.server.data", "protocols/bad.py:2 imports mpc.server.data.numeric",
        "protocols/bad.py:4 imports mpc.server.jobs"]


def test_the_contract_fails_on_the_code_before_it(tmp_path, monkeypatch):
    """The imports this contract removed, as they were (runtime -> engine, protocols -> server)."""
    for rel, text in {"mpc/runtime/local.py": 'HELPERS = {("triples", "dealer"): ("dealer", "mpc.ss.dealer", "run")}\n',
                      "protocols/jobs.py": "def f():\n    from mpc.server.data import numeric\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert violations("mpc/runtime", CONTRACT["mpc/runtime"]) == ["mpc/runtime/local.py:1 imports mpc.ss.dealer"]
    assert violations("protocols", CONTRACT["protocols"])[0] == "protocols/jobs.py:2 imports mpc.server.data"


def _group_arithmetic(tree: ast.AST) -> list[int]:
    """Lines doing ciphertext group arithmetic: powmod / 3-argument pow, or ``... % nsq``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name.startswith("powmod") or (name == "pow" and len(node.args) == 3):
                lines.append(node.lineno)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            right = ast.unparse(node.right)
            if "nsq" in right or "nsquare" in right:
                lines.append(node.lineno)
    return lines


def test_ciphertext_arithmetic_lives_in_paillier_raw_only():
    """phe's _raw_add/_raw_mul: the group arithmetic on ciphertexts is in mpc/paillier/raw.py;
    vectors, packing, interop, keys, wire and the Paillier triples call it."""
    files = sorted((ROOT / "mpc" / "paillier").glob("*.py")) + [ROOT / "mpc" / "ss" / "paillier_triples.py"]
    found = {str(p.relative_to(ROOT)): _group_arithmetic(ast.parse(p.read_text()))
             for p in files if p.name != "raw.py"}
    assert {p: lines for p, lines in found.items() if lines} == {}
    assert _group_arithmetic(ast.parse("c = gmpy2.powmod(c, k, nsq)\nd = a * b % pk.nsquare"))  # the check bites
