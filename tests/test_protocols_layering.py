"""Protocols do no raw cryptography beside the engines: no module of protocols/ does
ciphertext arithmetic (``% nsq``, ``powmod``, ``.nsquare``, ``.ciphertexts``, the ``raw_*``
key methods, gmpy2, ``mpc.paillier.raw``, constructing an EncryptedVector from ciphertexts)
and, in protocols/psi and protocols/jobs.py, no share arithmetic (``t.share``, uint64 words,
PRG masks, the raw share protocols of mpc.ss). Shares another engine made enter through
``ss.from_shares``, whose arguments are passed as the engine returned them, never computed.
An AST check, so a comment or docstring never trips it. (protocols/stats has its own,
stricter share check: tests/test_stats_layering.py.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROTOCOLS = Path(__file__).resolve().parent.parent / "protocols"
CIPHERTEXT_ATTRS = {"nsquare", "ciphertexts", "powmod", "raw_encrypt", "raw_decrypt", "raw_rerandomise",
                    "h_s", "_cts"}
CIPHERTEXT_NAMES = {"nsq", "nsquare", "powmod", "gmpy2", "mpz"}
CIPHERTEXT_TYPES = {"EncryptedVector", "PackedEncryptedVector"}
# the mpc.ss modules a psi protocol or a job may import: capabilities, encoding of its own
# plaintexts, and the dealer and circuit joins (engine calls that return shares)
ALLOWED_SS_MODULES = {"mpc.ss", "mpc.ss.provider", "mpc.ss.fixed", "mpc.ss.dealer_join", "mpc.ss.circuit_join"}
# uint64 words that are not shares: the OPRF's hash blocks and bit rows (KKRT/OT extension)
PLAIN_UINT64 = {"blocks.py", "oprf.py"}


def _imports(node: ast.AST) -> list[tuple[str, str | None]]:
    """(module, imported name or None) of an import statement."""
    if isinstance(node, ast.Import):
        return [(a.name, None) for a in node.names]
    if isinstance(node, ast.ImportFrom):
        return [(node.module or "", a.name) for a in node.names]
    return []


def ciphertext_violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[str] = []
    where = lambda node: f"{path.name}:{node.lineno}"  # noqa: E731
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in CIPHERTEXT_ATTRS:
            out.append(f"{where(node)}: raw ciphertext access (.{node.attr})")
        if isinstance(node, ast.Name) and node.id in CIPHERTEXT_NAMES:
            out.append(f"{where(node)}: raw ciphertext arithmetic ({node.id})")
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in CIPHERTEXT_TYPES:
                out.append(f"{where(node)}: builds a {name} from ciphertexts")
            if name == "pow" and len(node.args) == 3:
                out.append(f"{where(node)}: modular exponentiation (pow with a modulus)")
        for mod, name in _imports(node):
            full = f"{mod}.{name}" if name else mod
            if full.startswith("mpc.paillier.raw") or mod.startswith("gmpy2") or full == "mpc.paillier.keys":
                out.append(f"{where(node)}: imports {full}")
    return out


def share_violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[str] = []
    where = lambda node: f"{path.name}:{node.lineno}"  # noqa: E731
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr == "share" and not (isinstance(node.value, ast.Name) and node.value.id == "ss"):
                out.append(f"{where(node)}: reads a share array (.share)")
            if node.attr == "join_mask" or (node.attr == "uint64" and path.name not in PLAIN_UINT64):
                out.append(f"{where(node)}: share word arithmetic (.{node.attr})")
        if isinstance(node, ast.Name) and node.id in ("PRG", "SharedTensor") and isinstance(node.ctx, ast.Load):
            out.append(f"{where(node)}: builds share words or tensors by hand ({node.id})")
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name == "from_shares":
                for arg in node.args[1:2]:
                    if not isinstance(arg, ast.Name | ast.Subscript):
                        out.append(f"{where(node)}: from_shares of computed words (pass the engine's output)")
        for mod, name in _imports(node):
            if name == "PRG":
                out.append(f"{where(node)}: imports PRG (mask words belong to an engine)")
            full = f"{mod}.{name}" if name else mod
            if full.startswith("mpc.ss.") and full not in ALLOWED_SS_MODULES and mod not in ALLOWED_SS_MODULES:
                out.append(f"{where(node)}: imports the raw share protocol {full}")
            if mod == "mpc.ss" and name is not None and f"mpc.ss.{name}" not in ALLOWED_SS_MODULES \
                    and name[:1].islower() and name not in ("provider", "fixed", "dealer_join"):
                out.append(f"{where(node)}: imports the raw share protocol mpc.ss.{name}")
    return out


def _all_protocol_modules() -> list[Path]:
    return sorted(PROTOCOLS.rglob("*.py"))


def _share_checked_modules() -> list[Path]:
    return sorted((PROTOCOLS / "psi").glob("*.py")) + [PROTOCOLS / "jobs.py"]


def _id(p: Path) -> str:
    return str(p.relative_to(PROTOCOLS))


@pytest.mark.parametrize("path", _all_protocol_modules(), ids=_id)
def test_protocols_do_no_ciphertext_arithmetic(path):
    assert ciphertext_violations(path) == []


@pytest.mark.parametrize("path", _share_checked_modules(), ids=_id)
def test_psi_and_jobs_do_no_share_arithmetic(path):
    assert share_violations(path) == []


def test_the_checks_catch_raw_code(tmp_path):
    bad = tmp_path / "leaky.py"
    bad.write_text(
        "import gmpy2\n"
        "import numpy as np\n"
        "from mpc import ss\n"
        "from mpc.crypto.random import PRG\n"
        "from mpc.paillier import EncryptedVector, raw\n"
        "from mpc.ss import beaver\n"
        "def f(ctx, pk, ev, t, seed):\n"
        "    nsq = pk.nsquare\n"
        "    cts = [c * (1 + 5 * pk.n) % nsq for c in ev.ciphertexts]\n"
        "    x = gmpy2.powmod(cts[0], 3, nsq) + pow(cts[0], 3, nsq)\n"
        "    out = EncryptedVector(pk, raw.horner_pack([cts], 135, pk.n))\n"
        "    words = t.share - PRG(seed).uint64(t.shape)\n"
        "    return out, x, ss.from_shares(ctx, -words, 0), beaver\n")
    found = ciphertext_violations(bad)
    for needle in (".nsquare", ".ciphertexts", "(nsq)", "powmod", "pow with a modulus",
                   "builds a EncryptedVector", "imports mpc.paillier.raw", "imports gmpy2"):
        assert any(needle in v for v in found), needle
    found = share_violations(bad)
    for needle in ("(.share)", "(.uint64)", "(PRG)", "imports PRG", "computed words",
                   "raw share protocol mpc.ss.beaver"):
        assert any(needle in v for v in found), needle


def test_engine_output_passes(tmp_path):
    good = tmp_path / "clean.py"
    good.write_text(
        "from mpc import ss\n"
        "from mpc.paillier import packing\n"
        "from mpc.ss.dealer_join import join_tables\n"
        "def f(ctx, sk, ev, shares):\n"
        "    mine = packing.decrypt_rows(sk, ev, 3, 2)\n"
        "    return [ss.from_shares(ctx, mine[j], 0) for j in range(2)], ss.from_shares(ctx, shares, 0)\n")
    assert ciphertext_violations(good) == [] and share_violations(good) == []
