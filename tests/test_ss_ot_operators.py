"""Every SharedTensor operator and every function of ``mpc.ss`` with ``triples="ot"`` (two
parties, no dealer) against numpy, on hypothesis inputs, in memory and over gRPC.

One table, ``OPS``, lists each operation once: the SharedTensor expression, the numpy
expression on the encoded (rounded) inputs, the check (exact, within some units in the last
place, within a relative error, or a floor shift's {0, 1}) and the operators it exercises.
``test_every_operator_is_in_the_table_and_right_at_the_extremes`` fails when SharedTensor or ``mpc.ss`` gains a
public operator or function that the table does not exercise (or loses one it names), and
checks, by recording every call, that the table really calls each one it claims.

Inputs (the same length n): x (alice) and y (bob) over the fixed-point range, equal on a
drawn subset so that == and the ties of <= and max are tested; s (alice) small, for powers
and numerators; p (bob) positive, for division, reciprocal and roots; i (alice) and j (bob)
integers.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from conftest import FIXED_POINT_FLOATS
from hypothesis import HealthCheck, given, settings

import mpc
from mpc import ss
from mpc.ss import SharedTensor

F = 16
ULP = 2.0 ** -F
PARTIES = ["alice", "bob"]
OPTS = {"triples": "ot", "timeout": 300}
M = np.array([[1.5, -0.25], [2.0, 0.75], [-1.0, 0.5]])      # a public matrix (3, 2)


def q(x: Any) -> np.ndarray:
    """What fixed point makes of a float (mpc.ss.fixed.encode rounds)."""
    return np.round(np.asarray(x, dtype=np.float64) * 2 ** F) / 2 ** F


def ring(x: np.ndarray) -> np.ndarray:
    """The ring integers of fixed-point values."""
    return np.round(np.asarray(x) * 2 ** F).astype(np.int64)


@dataclass(frozen=True)
class Op:
    secret: Callable[[SimpleNamespace], Any]      # shares t.x, t.y, t.s, t.p, t.i, t.j -> SharedTensor(s) or value
    plain: Callable[[SimpleNamespace], Any]       # rounded inputs v.x, ... -> numpy
    check: str | tuple[str, float]                # "exact", ("ulp", k), ("rel", r), "floor" (+{0,1}), "value"
    covers: tuple[str, ...]                       # SharedTensor attributes / mpc.ss functions it calls


def _onehot(i: np.ndarray) -> np.ndarray:
    a = np.abs(i)
    bits = np.zeros((62, len(a)), np.int64)
    for k, v in enumerate(a):
        if v:
            bits[int(v).bit_length() - 1, k] = 1
    return bits


def _setitem(t):
    u = t.x * 1
    u[0] = t.y[0]
    u[1:] = 7.25
    return u


def _setitem_plain(v):
    u = v.x.copy()
    u[0] = v.y[0]
    u[1:] = 7.25
    return u


SHIFTS = np.array([0, 3, 8])


def _shifts(n):
    return np.resize(SHIFTS, n)


def _scale_pow2(t):
    c = t.i < t.j
    return ss.scale_pow2(t.i, ss.stack([c, 1 - c]), [2, -1])


OPS: dict[str, Op] = {
    # linear, local
    "add": Op(lambda t: t.x + t.y, lambda v: v.x + v.y, "exact", ("__add__",)),
    "add_public": Op(lambda t: t.x + 2.5, lambda v: v.x + 2.5, "exact", ("__add__",)),
    "radd_public": Op(lambda t: 2.5 + t.x, lambda v: v.x + 2.5, "exact", ("__radd__",)),
    "add_int_fixed": Op(lambda t: t.x + t.i, lambda v: v.x + v.i, "exact", ("__add__",)),
    "sub": Op(lambda t: t.x - t.y, lambda v: v.x - v.y, "exact", ("__sub__",)),
    "rsub_public": Op(lambda t: 3.0 - t.x, lambda v: 3.0 - v.x, "exact", ("__rsub__",)),
    "neg": Op(lambda t: -t.x, lambda v: -v.x, "exact", ("__neg__",)),
    "int_ops": Op(lambda t: t.i * 3 - t.j + 1, lambda v: v.i * 3 - v.j + 1, "exact", ("__mul__", "__sub__")),
    "sum": Op(lambda t: t.x.sum(), lambda v: v.x.sum(), "exact", ("sum",)),
    "sum_axis": Op(lambda t: ss.stack([t.x, t.y]).sum(axis=0, keepdims=True),
                   lambda v: np.stack([v.x, v.y]).sum(axis=0, keepdims=True), "exact", ("sum", "ss.stack")),
    "mean": Op(lambda t: t.x.mean(), lambda v: v.x.mean(), ("rel", 2 ** -14), ("mean",)),
    "mean_int": Op(lambda t: ss.stack([t.i, t.j]).mean(axis=0), lambda v: (v.i + v.j) / 2, ("ulp", 2), ("mean",)),
    "getitem": Op(lambda t: t.x[::-2], lambda v: v.x[::-2], "exact", ("__getitem__",)),
    "setitem": Op(_setitem, _setitem_plain, "exact", ("__setitem__",)),
    "reshape": Op(lambda t: t.x.reshape(1, -1).reshape(-1, 1), lambda v: v.x.reshape(-1, 1), "exact", ("reshape",)),
    "flatten": Op(lambda t: ss.stack([t.x, t.y], axis=1).flatten(), lambda v: np.stack([v.x, v.y], 1).ravel(),
                  "exact", ("flatten", "ss.stack")),
    "transpose": Op(lambda t: ss.stack([t.x, t.y]).transpose(), lambda v: np.stack([v.x, v.y]).T, "exact",
                    ("transpose",)),
    "T": Op(lambda t: ss.stack([t.x, t.i]).T, lambda v: np.stack([v.x, v.i]).T, "exact", ("T",)),
    "concatenate": Op(lambda t: ss.concatenate([t.x, t.i, t.y]), lambda v: np.concatenate([v.x, v.i, v.y]),
                      "exact", ("ss.concatenate",)),
    "public": Op(lambda t: ss.public(t.ctx, np.array([1.5, -2.0])) + ss.public(t.ctx, np.array([3, 4])),
                 lambda v: np.array([4.5, 2.0]), "exact", ("ss.public",)),
    "from_shares": Op(lambda t: ss.from_shares(t.ctx, t.own_int), lambda v: v.i + v.j, "exact", ("ss.from_shares",)),
    "sum_of_locals": Op(lambda t: ss.sum_of_locals(t.ctx, t.own_int), lambda v: v.i + v.j, "exact",
                        ("ss.sum_of_locals",)),
    # products: one truncation, at most one unit in the last place
    "mul": Op(lambda t: t.x * t.y, lambda v: v.x * v.y, ("ulp", 1.01), ("__mul__",)),
    "mul_public": Op(lambda t: t.x * 0.5, lambda v: v.x * 0.5, ("ulp", 1.01), ("__mul__",)),
    "rmul_public": Op(lambda t: 3 * t.x, lambda v: 3 * v.x, "exact", ("__rmul__",)),
    "mul_int": Op(lambda t: t.i * t.j, lambda v: v.i * v.j, "exact", ("__mul__",)),
    "square": Op(lambda t: t.y ** 2, lambda v: v.y ** 2, ("ulp", 1.01), ("__pow__",)),
    "cube": Op(lambda t: t.s ** 3, lambda v: v.s ** 3, ("ulp", 45), ("__pow__",)),
    "pow1": Op(lambda t: t.x ** 1, lambda v: v.x, "exact", ("__pow__",)),
    "abs": Op(lambda t: abs(t.x), lambda v: np.abs(v.x), "exact", ("__abs__",)),
    "dot": Op(lambda t: t.s @ t.y, lambda v: v.s @ v.y, ("ulp", 1.01), ("__matmul__",)),
    "outer": Op(lambda t: t.s.reshape(-1, 1) @ t.y.reshape(1, -1), lambda v: np.outer(v.s, v.y), ("ulp", 1.01),
                ("__matmul__",)),
    "matmul_public": Op(lambda t: ss.stack([t.x, t.y], axis=1) @ M.T, lambda v: np.stack([v.x, v.y], 1) @ q(M).T,
                        ("ulp", 1.01), ("__matmul__",)),
    "rmatmul_public": Op(lambda t: M @ ss.stack([t.s, t.y]), lambda v: q(M) @ np.stack([v.s, v.y]), ("ulp", 1.01),
                         ("__rmatmul__",)),
    "gram_matrix": Op(lambda t: ss.gram_matrix(ss.stack([t.i, t.j])),
                      lambda v: np.stack([v.i, v.j]) @ np.stack([v.i, v.j]).T, "exact", ("ss.gram_matrix",)),
    "at_precision": Op(lambda t: t.x.at_precision(8) * t.y, lambda v: v.x * v.y, ("ulp", 257), ("at_precision",)),
    "div_public": Op(lambda t: t.x / 4.0, lambda v: v.x / 4.0, ("ulp", 2.01), ("__truediv__",)),
    "div_public_odd": Op(lambda t: t.x / -3.0, lambda v: v.x / -3.0, ("rel", 2 ** -14), ("__truediv__",)),
    # scalars (0-d tensors: a sum, an element) keep their shape ()
    "scalar_products": Op(lambda t: (t.s.sum() * t.s[0], t.s.sum() / 3.0, t.s[-1] ** 2),
                          lambda v: (v.s.sum() * v.s[0], v.s.sum() / 3.0, v.s[-1] ** 2),
                          ("rel", 2 ** -14), ("__mul__", "__truediv__", "__pow__")),
    "scalar_rshift": Op(lambda t: t.i.sum() >> 1, lambda v: v.i.sum() // 2, "floor", ("__rshift__",)),
    "scalar_compare": Op(lambda t: (t.i.sum() == t.j.sum(), t.x[0] < t.y[0], abs(t.s[0])),
                         lambda v: (v.i.sum() == v.j.sum(), v.x[0] < v.y[0], abs(v.s[0])), "exact",
                         ("__eq__", "__lt__", "__abs__")),
    "scalar_functions": Op(lambda t: (t.s.sum() / t.p[0], ss.sqrt(t.p.sum()), ss.where(t.x[0] < 0, t.x[0], 1.0)),
                           lambda v: (v.s.sum() / v.p[0], np.sqrt(v.p.sum()), np.where(v.x[0] < 0, v.x[0], 1.0)),
                           ("rel", 1e-3), ("__truediv__", "ss.sqrt", "ss.where")),
    # ring integers: shifts and scales
    "lshift": Op(lambda t: t.i << 3, lambda v: v.i * 8, "exact", ("__lshift__",)),
    "lshift_fixed": Op(lambda t: t.x << np.resize([0, 1, 2], len(t.x)), lambda v: v.x * np.resize([1, 2, 4], len(v.x)),
                       "exact", ("__lshift__",)),
    "rshift": Op(lambda t: t.i >> 2, lambda v: v.i // 4, "floor", ("__rshift__",)),
    "rshift_hidden": Op(lambda t: t.i.rshift_hidden(_shifts(len(t.i)), 8), lambda v: v.i >> _shifts(len(v.i)),
                        "floor", ("rshift_hidden",)),
    "rshift_private": Op(lambda t: t.i.rshift_private(_shifts(len(t.i))), lambda v: v.i >> _shifts(len(v.i)),
                         "floor", ("rshift_private",)),
    "with_frac_bits": Op(lambda t: t.i.with_frac_bits(4) + t.x.with_frac_bits(0),
                         lambda v: v.i / 16 + ring(v.x), "exact", ("with_frac_bits",)),
    "top_bit_onehot": Op(lambda t: abs(t.i).top_bit_onehot(), lambda v: _onehot(v.i), "exact", ("top_bit_onehot",)),
    "bit_length": Op(lambda t: abs(t.j).bit_length(),
                     lambda v: np.array([int(a).bit_length() for a in np.abs(v.j)]), "exact", ("bit_length",)),
    "scale_pow2": Op(_scale_pow2, lambda v: np.where(v.i < v.j, v.i * 4, v.i // 2), "floor", ("ss.scale_pow2",)),
    # comparisons: exact on the encoded values
    "lt": Op(lambda t: t.x < t.y, lambda v: v.x < v.y, "exact", ("__lt__",)),
    "gt": Op(lambda t: t.x > t.y, lambda v: v.x > v.y, "exact", ("__gt__",)),
    "le": Op(lambda t: t.x <= t.y, lambda v: v.x <= v.y, "exact", ("__le__",)),
    "ge": Op(lambda t: t.x >= t.y, lambda v: v.x >= v.y, "exact", ("__ge__",)),
    "eq": Op(lambda t: t.x == t.y, lambda v: v.x == v.y, "exact", ("__eq__",)),
    "ne": Op(lambda t: t.x != t.y, lambda v: v.x != v.y, "exact", ("__ne__",)),
    "lt_public": Op(lambda t: t.x < 0.0, lambda v: v.x < 0, "exact", ("__lt__",)),
    "ge_public": Op(lambda t: t.y >= 1e4, lambda v: v.y >= 1e4, "exact", ("__ge__",)),
    "eq_int": Op(lambda t: t.i == t.j, lambda v: v.i == v.j, "exact", ("__eq__",)),
    # selections and order statistics
    "where": Op(lambda t: ss.where(t.x < t.y, t.x, t.y * 2.0), lambda v: np.where(v.x < v.y, v.x, 2 * v.y),
                ("ulp", 1.01), ("ss.where",)),
    "maximum": Op(lambda t: ss.maximum(t.x, t.y), lambda v: np.maximum(v.x, v.y), "exact", ("ss.maximum",)),
    "minimum": Op(lambda t: ss.minimum(t.x, 0.0), lambda v: np.minimum(v.x, 0.0), "exact", ("ss.minimum",)),
    "max": Op(lambda t: t.x.max(), lambda v: v.x.max(), "exact", ("max",)),
    "max_": Op(lambda t: ss.max_(ss.stack([t.x, t.y], axis=1), axis=1), lambda v: np.maximum(v.x, v.y), "exact",
               ("ss.max_",)),
    "min": Op(lambda t: t.y.min(), lambda v: v.y.min(), "exact", ("min",)),
    "min_": Op(lambda t: ss.min_(t.y), lambda v: v.y.min(), "exact", ("ss.min_",)),
    "max_axis": Op(lambda t: ss.stack([t.x, t.y]).max(axis=0), lambda v: np.maximum(v.x, v.y), "exact", ("max",)),
    "min_max": Op(lambda t: ss.min_max(t.x), lambda v: (v.x.min(), v.x.max()), "exact", ("ss.min_max",)),
    # argmax/argmin: ties may pick any index, so the check reads the value at the index
    "argmax": Op(lambda t: (t.x.argmax(), ss.argmax(t.y)), lambda v: (v.x, v.y), ("arg", np.max),
              ("argmax", "ss.argmax")),
    "argmin": Op(lambda t: (t.x.argmin(), ss.argmin(t.y)), lambda v: (v.x, v.y), ("arg", np.min),
              ("argmin", "ss.argmin")),
    "sort": Op(lambda t: ss.sort(t.x), lambda v: np.sort(v.x), "exact", ("ss.sort",)),
    "median": Op(lambda t: ss.median(t.y), lambda v: np.median(v.y), ("ulp", 1.01), ("ss.median",)),
    "quantile": Op(lambda t: ss.quantile(t.x, [0.0, 0.3, 1.0], method="nearest"),
                   lambda v: np.quantile(v.x, [0.0, 0.3, 1.0], method="nearest"), "exact", ("ss.quantile",)),
    # division by a secret, reciprocal, roots (Newton: see mpc.ss.functions)
    "div_secret": Op(lambda t: t.s / t.p, lambda v: v.s / v.p, ("rel", 1e-3), ("__truediv__",)),
    "div_large": Op(lambda t: t.x / t.p, lambda v: v.x / v.p, ("rel", 1e-3), ("__truediv__",)),
    "rtruediv": Op(lambda t: 2.0 / t.p, lambda v: 2.0 / v.p, ("rel", 1e-3), ("__rtruediv__",)),
    "divide": Op(lambda t: ss.divide(t.s, t.p), lambda v: v.s / v.p, ("rel", 1e-3), ("ss.divide",)),
    "reciprocal": Op(lambda t: ss.reciprocal(t.p), lambda v: 1 / v.p, ("rel", 1e-3), ("ss.reciprocal",)),
    "sqrt": Op(lambda t: ss.sqrt(t.p), lambda v: np.sqrt(v.p), ("rel", 1e-3), ("ss.sqrt",)),
    "inv_sqrt": Op(lambda t: ss.inv_sqrt(t.p), lambda v: 1 / np.sqrt(v.p), ("rel", 1e-3), ("ss.inv_sqrt",)),
    # metadata and output (local)
    "metadata": Op(lambda t: (t.x.shape, t.x.ndim, t.x.size, len(t.x), t.x.is_fixed, t.i.is_fixed,
                              t.x.working_bits, t.x.at_precision(9).working_bits, "SharedTensor(" in repr(t.x)),
                   lambda v: ((len(v.x),), 1, len(v.x), len(v.x), True, False, F, 9, True), "value",
                   ("shape", "ndim", "size", "__len__", "is_fixed", "working_bits", "__repr__")),
    "reveal_to": Op(lambda t: t.x.reveal(to="bob"), lambda v: v.x, "reveal_to", ("reveal",)),
}


_CURRENT: dict[int, str] = {}        # thread -> the OPS entry it is running


def _job(ctx, data: dict[str, np.ndarray | None], names: list[str]) -> dict[str, Any]:
    def mine(key, owner):
        return ss.share(ctx, data[key] if ctx.party == owner else None, owner)

    t = SimpleNamespace(ctx=ctx, x=mine("x", "alice"), y=mine("y", "bob"), s=mine("s", "alice"),
                        p=mine("p", "bob"), i=mine("i", "alice"), j=mine("j", "bob"),
                        own_int=data["i"] if ctx.party == "alice" else data["j"])
    out = {}
    for name in names:
        _CURRENT[threading.get_ident()] = name          # for the coverage test's call records
        value = OPS[name].secret(t)
        if OPS[name].check in ("value", "reveal_to"):
            out[name] = value
        elif isinstance(value, tuple):
            out[name] = tuple(v.reveal() for v in value)
        else:
            out[name] = value.reveal()
    return out


def _check(name: str, got: Any, want: Any, got_bob: Any) -> None:
    op = OPS[name]
    kind, arg = (op.check, None) if isinstance(op.check, str) else op.check
    if kind == "value":
        assert got == want, name
        return
    if kind == "reveal_to":
        assert got is None, "reveal(to='bob') gave alice a value"
        np.testing.assert_array_equal(got_bob, want)
        return
    if kind == "arg":
        for index, values in zip(got, want, strict=True):
            assert values[int(index)] == arg(values), name
        return
    if isinstance(want, tuple):
        for g, w in zip(got, want, strict=True):
            _compare(name, kind, arg, g, w)
    else:
        _compare(name, kind, arg, got, want)


def _compare(name: str, kind: str, arg: float | None, got: Any, want: Any) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, numpy {want.shape}"
    if kind == "exact":
        np.testing.assert_array_equal(got, want, err_msg=name)
    elif kind == "ulp":
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=arg * ULP, err_msg=name)
    elif kind == "rel":
        np.testing.assert_allclose(got, want, rtol=arg, atol=8 * ULP, err_msg=name)
    elif kind == "floor":            # floor(x / 2^k) + {0, 1}
        diff = got - want
        assert np.isin(diff, (0, 1)).all(), f"{name}: {got} vs floor {want}"
    else:
        raise AssertionError(f"unknown check {kind!r}")


@st.composite
def inputs(draw, max_n: int = 12) -> dict[str, np.ndarray]:
    n = draw(st.integers(1, max_n))
    arr = functools.partial(hnp.arrays, np.float64, n)
    x, y = draw(arr(elements=FIXED_POINT_FLOATS)), draw(arr(elements=FIXED_POINT_FLOATS))
    same = draw(hnp.arrays(np.bool_, n))
    y = np.where(same, x, y)                                     # ties for ==, <=, max, sort
    return {"x": x, "y": y, "s": draw(arr(elements=st.floats(-40, 40))),
            "p": draw(arr(elements=st.floats(0.5, 2000))),
            "i": draw(hnp.arrays(np.int64, n, elements=st.integers(-1000, 1000))),
            "j": draw(hnp.arrays(np.int64, n, elements=st.integers(-1000, 1000)))}


def run(data: dict[str, np.ndarray], transport: str, names: list[str]) -> tuple[dict, SimpleNamespace]:
    """Both parties' results of the OPS entries ``names``, and the rounded inputs."""
    out = mpc.run_local(_job, PARTIES, args={p: (data, names) for p in PARTIES}, transport=transport, **OPTS)
    return out, SimpleNamespace(**{k: (q(a) if a.dtype.kind == "f" else a) for k, a in data.items()})


def run_all(data: dict[str, np.ndarray], transport: str) -> None:
    out, v = run(data, transport, list(OPS))
    for name in OPS:
        _check(name, out["alice"][name], OPS[name].plain(v), out["bob"][name])


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=inputs())
def test_every_operator_in_memory(data):
    run_all(data, "memory")


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=inputs(max_n=6))
def test_every_operator_over_grpc(data):
    run_all(data, "grpc")


# the largest values the strategies allow, every element at once (run by the coverage test)
EXTREMES = {"x": np.array([30000.0, -30000.0, 29999.99, -1e-3, 0.0]),
            "y": np.array([-30000.0, 30000.0, 29999.99, 1e-3, 0.0]),
            "s": np.array([40.0, -40.0, 0.0, 39.5, -0.01]), "p": np.array([0.5, 2000.0, 1.0, 0.75, 1999.9]),
            "i": np.array([1000, -1000, 0, 1, -1]), "j": np.array([-1000, 1000, 0, 1, 1])}


# -- the table covers every operator ---------------------------------------------------------------

NOT_OPERATORS = {"__init__", "__hash__", "__array_priority__", "__dict__", "__doc__", "__module__",
                 "__weakref__", "__annotations__"}


def public_operators() -> set[str]:
    """SharedTensor's public methods, properties and operator dunders."""
    return {k for k in vars(SharedTensor) if k not in NOT_OPERATORS and (not k.startswith("_") or k.endswith("__"))}


def public_functions() -> set[str]:
    """The functions of mpc.ss (its __all__ without the submodules and the class)."""
    import types
    return {f"ss.{k}" for k in ss.__all__ if not isinstance(getattr(ss, k), (types.ModuleType, type))}


def uncovered() -> tuple[set[str], set[str]]:
    """(public operators and functions no OPS entry names, names in OPS that do not exist)."""
    covered = {c for op in OPS.values() for c in op.covers} | {"ss.share"}      # ss.share: every entry's inputs
    expected = public_operators() | public_functions()
    return expected - covered, covered - expected


def test_every_operator_is_in_the_table_and_right_at_the_extremes(monkeypatch):
    missing, unknown = uncovered()
    assert not missing, f"operators no OPS entry covers: {sorted(missing)}"
    assert not unknown, f"OPS names operators that do not exist: {sorted(unknown)}"
    with pytest.MonkeyPatch.context() as mp:                 # a new operator or function is noticed
        mp.setattr(SharedTensor, "relu", lambda self: self, raising=False)
        mp.setattr(SharedTensor, "__mod__", lambda self, k: self, raising=False)
        mp.setattr(ss, "__all__", [*ss.__all__, "logistic"])
        mp.setattr(ss, "logistic", lambda x: x, raising=False)
        assert uncovered()[0] == {"relu", "__mod__", "ss.logistic"}

    # ... and each entry calls what it claims: every call recorded under the entry running it
    calls: dict[str, set[str]] = {}

    def record(name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            calls.setdefault(_CURRENT.get(threading.get_ident(), "setup"), set()).add(name)
            return fn(*args, **kwargs)
        return wrapper

    for name in public_operators():
        attr = vars(SharedTensor)[name]
        wrapped = property(record(name, attr.fget)) if isinstance(attr, property) else record(name, attr)
        monkeypatch.setattr(SharedTensor, name, wrapped)
    for name in public_functions():
        monkeypatch.setattr(ss, name[3:], record(name, getattr(ss, name[3:])))
    _CURRENT.clear()
    out, v = run(EXTREMES, "memory", list(OPS))
    assert calls.pop("setup") == {"ss.share"}              # the inputs, before any entry
    for name, op in OPS.items():
        missing = set(op.covers) - calls.get(name, set())
        assert not missing, f"OPS[{name!r}] does not call {sorted(missing)}"
        _check(name, out["alice"][name], op.plain(v), out["bob"][name])      # and right at the extremes


SMALL = {"x": np.array([1.5, -2.0, 3.0]), "y": np.array([1.5, 4.0, -1.0]), "s": np.array([2.0, -3.0, 0.5]),
         "p": np.array([4.0, 0.5, 9.0]), "i": np.array([5, -3, 0]), "j": np.array([2, -3, 7])}


def test_a_wrong_reference_fails():
    """The checks can fail: a reference off by one unit in the last place, a comparison
    inverted, a floor shift off by two, a value at the wrong index are caught."""
    out, v = run(SMALL, "memory", ["add", "lt", "mul", "rshift", "argmax", "reveal_to"])
    wrong = {"add": lambda v: v.x + v.y + ULP, "lt": lambda v: v.x >= v.y, "mul": lambda v: v.x * v.y + 2 * ULP,
             "rshift": lambda v: v.i // 4 - 2, "argmax": lambda v: (-v.x, -v.y), "reveal_to": lambda v: v.y}
    for name, plain in wrong.items():
        _check(name, out["alice"][name], OPS[name].plain(v), out["bob"][name])       # right: passes
        with pytest.raises(AssertionError):
            _check(name, out["alice"][name], plain(v), out["bob"][name])
