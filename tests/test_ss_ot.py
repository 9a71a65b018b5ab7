"""Dealer-free OT triples (``triples="ot"``): relations, every operator against numpy, views."""

import numpy as np
import pytest
from conftest import float_pairs
from hypothesis import HealthCheck, given, settings

import mpc
from mpc import ss
from mpc.runtime.views import record_views
from mpc.ss import beaver, ot_triples
from mpc.ss.triples import get_source

F = 16
ULP = 2.0 ** -F
OPTS = {"triples": "ot", "timeout": 300}


def q(x):
    return np.round(np.asarray(x, dtype=np.float64) * 2 ** F) / 2 ** F


def _all_triples(ctx, n):
    s = get_source(ctx)
    return {"arith": s.arithmetic((n,)), "bool": s.boolean((n // 3 + 1,)), "dabit": s.dabit((n + 1,)),
            "edabit": s.edabit((n,)), "matmul": s.matmul((3, 5), (5, 2)), "pair": s.trunc_pair((n,), 7),
            "empty": s.arithmetic((0,))}


def test_triple_relations():
    out = mpc.run_local(_all_triples, ["alice", "bob"], args={p: (1001,) for p in ("alice", "bob")}, **OPTS)
    mine, peer = out["alice"], out["bob"]
    add = {k: [x + y for x, y in zip(mine[k], peer[k], strict=True)] for k in mine}
    xor = {k: [x ^ y for x, y in zip(mine[k], peer[k], strict=True)] for k in mine}
    a, b, c = add["arith"]
    assert np.array_equal(a * b, c) and len(np.unique(a)) == len(a)
    a, b, c = xor["bool"]
    assert np.array_equal(a & b, c) and abs(np.unpackbits(a.view(np.uint8)).mean() - 0.5) < 0.05
    assert np.array_equal(add["dabit"][0], xor["dabit"][1]) and set(xor["dabit"][1].tolist()) == {0, 1}
    assert np.array_equal(add["edabit"][0], xor["edabit"][1])
    a, b, c = add["matmul"]
    assert np.array_equal(a @ b, c)
    r, top, low = add["pair"]
    assert np.array_equal(top, r >> np.uint64(63))
    assert np.array_equal(low, (r & np.uint64((1 << 63) - 1)) >> np.uint64(7))
    assert add["empty"][0].shape == (0,)


def run(fn, x, y, transport="memory"):
    def body(ctx, xv, yv):
        return fn(ctx, ss.share(ctx, xv, "alice"), ss.share(ctx, yv, "bob"))

    out = mpc.run_local(body, ["alice", "bob"], args={"alice": (x, None), "bob": (None, y)},
                        transport=transport, **OPTS)
    return out["alice"]


def _ops(ctx, a, b):
    return {k: v.reveal() for k, v in {
        "mul": a * b, "add": a + b, "sub": a - b, "mul_pub": a * 0.5, "lt": a < b, "gt": a > b,
        "le": a <= b, "eq": a == b, "max": ss.maximum(a, b), "where": ss.where(a < b, a, b * 2.0),
        "div": a / 4.0}.items()}


def _check_ops(res, x, y):
    qx, qy = q(x), q(y)
    np.testing.assert_allclose(res["mul"], qx * qy, rtol=0, atol=1.01 * ULP)
    np.testing.assert_allclose(res["add"], qx + qy, rtol=1e-12, atol=ULP)
    np.testing.assert_allclose(res["sub"], qx - qy, rtol=1e-12, atol=ULP)
    np.testing.assert_allclose(res["mul_pub"], qx * 0.5, rtol=0, atol=1.01 * ULP)
    np.testing.assert_allclose(res["div"], qx / 4.0, rtol=0, atol=2.01 * ULP)  # two truncations
    np.testing.assert_array_equal(res["lt"], (qx < qy).astype(np.int64))
    np.testing.assert_array_equal(res["gt"], (qx > qy).astype(np.int64))
    np.testing.assert_array_equal(res["le"], (qx <= qy).astype(np.int64))
    np.testing.assert_array_equal(res["eq"], (qx == qy).astype(np.int64))
    np.testing.assert_array_equal(res["max"], np.maximum(qx, qy))
    np.testing.assert_allclose(res["where"], np.where(qx < qy, qx, 2 * qy), rtol=0, atol=1.01 * ULP)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(xy=float_pairs(40))
def test_operators_against_numpy(xy):
    x, y = xy
    _check_ops(run(_ops, x, y), x, y)


def test_operators_over_grpc():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=300) * 1000, rng.normal(size=300) * 1000
    y[:10] = x[:10]
    _check_ops(run(_ops, x, y, transport="grpc"), x, y)


def test_matmul_and_integers():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(7, 4)) * 10, rng.normal(size=(4, 3)) * 10

    def fn(ctx, a, b):
        ia = ss.share(ctx, np.arange(6).reshape(2, 3) if ctx.party == "alice" else None, "alice")
        return (a @ b).reveal(), (ia * ia).sum().reveal(), (ia @ ia.T).reveal()

    mm, isum, imm = run(fn, x, y)
    np.testing.assert_allclose(mm, q(x) @ q(y), rtol=1e-9, atol=4 * ULP)
    assert isum == (np.arange(6) ** 2).sum()
    np.testing.assert_array_equal(imm, np.arange(6).reshape(2, 3) @ np.arange(6).reshape(2, 3).T)


def test_truncation_of_a_million_elements_never_fails():
    """The wrap-bit truncation is exact up to one ulp for every |x| < 2^62: 2^20 elements up
    to 2^61 in magnitude (where SecureML's local shift would fail for about a quarter)."""
    n = 1 << 20
    rng = np.random.default_rng(5)
    x = rng.integers(-(1 << 61), 1 << 61, n)
    x[:4] = [(1 << 62) - 1, -(1 << 62) + 1, 0, -1]

    r = rng.integers(0, 1 << 63, n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)   # uniform-ish masks

    def fn(ctx, xv):
        share = xv.astype(np.uint64) + r if ctx.party == "alice" else np.uint64(0) - r
        return beaver.open_arith(ctx, beaver.truncate(ctx, share, 16)).astype(np.int64)

    got = mpc.run_local(fn, ["alice", "bob"], args={p: (x,) for p in ("alice", "bob")}, **OPTS)["bob"]
    diff = got - (x >> 16)
    assert diff.min() >= 0 and diff.max() <= 1


def _bits_of(u8: np.ndarray) -> np.ndarray:
    return np.unpackbits(np.ascontiguousarray(u8).view(np.uint8), bitorder="little")


def _corr(bits: np.ndarray, secret: np.ndarray) -> float:
    b, s = bits.astype(np.float64), secret.astype(np.float64)
    return float(np.corrcoef(b, s)[0, 1])


def test_ot_views_are_independent_of_the_peers_values():
    """What each party receives from the OT engine: the extension matrix U (64 rows, one
    per column pair of SoftSpokenOT, one column per OT) and the packed corrections. Shapes
    are fixed by n; U's bits are balanced and uncorrelated with the peer's choice bits (the
    bits of its b); the corrections' bits are balanced and uncorrelated with the bits of the
    sender's a (6-sigma bounds)."""
    n = min(2048, ot_triples._CHUNK_OTS // 64)     # one IKNP batch
    shapes = []
    for _ in range(2):
        out, views = record_views(lambda ctx: get_source(ctx).arithmetic((n,)), ["alice", "bob"], triples="ot")
        shapes.append({p: [(type(v).__name__, getattr(v, "shape", None)) for _, v in views[p]] for p in views})
        for me, peer in (("alice", "bob"), ("bob", "alice")):
            arrays = [v for _, v in views[me] if isinstance(v, np.ndarray) and v.dtype == np.uint8]
            (u,) = [v for v in arrays if v.shape == (64, 64 * n // 8)]
            (tau,) = [v for v in arrays if v.shape == (288 * n,)]
            choice = _bits_of(out[peer][1])                       # OT i chooses bit i % 64 of b[i // 64]
            bound = 6.0 / np.sqrt(choice.size)
            for row in u[::4]:
                bits = _bits_of(row)
                assert abs(bits.mean() - 0.5) < bound and abs(_corr(bits, choice)) < bound
            # OT l carries ceil((64 - l) / 8) bytes: 288 per element, OTs 0..7's 8 bytes first
            low = tau[:n * 8 * 8].reshape(n, 8, 8)[:, 0, 0]           # OT 0: correlation a_peer
            bits0, a0 = low & 1, out[peer][0] & np.uint64(1)
            assert abs(bits0.mean() - 0.5) < 6 / np.sqrt(n) and abs(_corr(bits0, a0)) < 6 / np.sqrt(n)
    assert shapes[0] == shapes[1]


def test_mul_multiplies_the_shares_without_opening():
    """OtSource.mul: x * y mod 2^64 from the two parties' shares by cross products of the
    shares themselves; all a party receives is OT traffic (uint8 matrices and corrections),
    no opened uint64 value."""
    n = 3000
    rng = np.random.default_rng(5)
    x, y, x0, y0 = (rng.integers(0, 2**64, n, dtype=np.uint64) for _ in range(4))
    shares = {"alice": (x0, y0), "bob": (x - x0, y - y0)}
    out, views = record_views(lambda ctx, a, b: get_source(ctx).mul(a, b), ["alice", "bob"],
                              args=shares, triples="ot")
    assert np.array_equal(out["alice"] + out["bob"], x * y)
    for party in views:
        arrays = [v for _, v in views[party] if isinstance(v, np.ndarray)]
        assert arrays and all(v.dtype == np.uint8 for v in arrays)


@pytest.mark.parametrize("n", [1, 127, 129])
def test_odd_sizes(n):
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=n) * 50, rng.normal(size=n) * 50
    res = run(lambda ctx, a, b: ((a * b).reveal(), (a < b).reveal()), x, y)
    np.testing.assert_allclose(res[0], q(x) * q(y), atol=1.01 * ULP)
    np.testing.assert_array_equal(res[1], (q(x) < q(y)).astype(np.int64))


def test_ot_source_is_two_party_and_three_parties_get_ot_parties():
    from mpc.ss.ot_triples import OtSource
    with pytest.raises(Exception, match="exactly two"):
        mpc.run_local(lambda ctx: OtSource(ctx), ["a", "b", "c"], **OPTS)
    out = mpc.run_local(lambda ctx: type(get_source(ctx)).__name__, ["a", "b", "c"], **OPTS)
    assert set(out.values()) == {"OtParties"}


def test_functions_on_the_edabit_path():
    """sort, argmax, division and sqrt (bit decomposition with the source's edaBits, and the
    two-party msb adder) against numpy."""
    x = np.array([3.5, -1.25, 8.0, 0.5, 2.0, -7.75, 100.0, 0.0])
    y = np.array([2.0, 0.5, 4.0, 9.0, 1.5, 3.0, 25.0, 7.0])

    def fn(ctx, a, b):
        return (ss.sort(a).reveal(), a.argmax().reveal(), (a / b).reveal(), ss.sqrt(b).reveal(),
                ss.reciprocal(b).reveal())

    srt, am, div, sq, rec = run(fn, x, y)
    np.testing.assert_array_equal(srt, np.sort(x))
    assert int(am) == int(np.argmax(x))
    np.testing.assert_allclose(div, x / y, atol=1e-3)
    np.testing.assert_allclose(sq, np.sqrt(y), atol=1e-3)
    np.testing.assert_allclose(rec, 1 / y, atol=1e-3)


def test_tall_matmul_in_row_blocks(monkeypatch):
    """A @ B with more rows than one block (blocks shrunk to 3 rows here): same triple relation."""
    from mpc.ss import ot_triples
    monkeypatch.setattr(ot_triples, "_MATMUL_ROWS", 3)
    out = mpc.run_local(lambda ctx: get_source(ctx).matmul((8, 3), (3, 2)), ["alice", "bob"], **OPTS)
    a, b, c = [x + y for x, y in zip(out["alice"], out["bob"], strict=True)]
    assert np.array_equal(a @ b, c)


def test_statistics_without_a_dealer():
    """Joint statistics between two parties alone: describe, correlation and quantiles (the
    dealer-free shuffle and quickselect) against pandas / numpy."""
    import pandas as pd

    from protocols import stats

    rng = np.random.default_rng(12)
    data = {"x": np.round(rng.normal(size=60) * 10, 2), "y": np.round(rng.normal(size=60), 3)}

    def job(ctx):
        x = ss.share(ctx, data["x"] if ctx.party == "alice" else None, "alice")
        y = ss.share(ctx, data["y"] if ctx.party == "bob" else None, "bob")
        return (stats.describe(ctx, {"x": x, "y": y}), stats.corr_matrix(ctx, {"x": x, "y": y}),
                stats.quantile(ctx, x, [0.25, 0.5], method="nearest"))

    d, c, qs = mpc.run_local(job, ["alice", "bob"], **OPTS)["alice"]
    ref = pd.DataFrame(data).describe().T
    np.testing.assert_allclose(d.loc[ref.index, ["count", "mean", "std", "min", "max"]].to_numpy(),
                               ref[["count", "mean", "std", "min", "max"]].to_numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(c.to_numpy(), np.corrcoef(data["x"], data["y"]), atol=1e-3)
    np.testing.assert_allclose(qs, np.quantile(data["x"], [0.25, 0.5], method="nearest"), atol=1e-3)


@pytest.mark.parametrize("parties", [["alice", "bob"], ["a", "b", "c"]])
def test_eqz_xor_on_low_bits_two_and_three_parties(parties):
    """The source's eqz_xor(x, bits) (OtSource, and OtParties folding onto its first pair):
    XOR shares of [x == 0 mod 2^bits] against numpy at the widths the join uses (40..64)
    and the smallest, with x's high bits random and one-bit-apart values."""
    from mpc.crypto.random import PRG, new_seed
    rng = np.random.default_rng(len(parties))
    widths = [2, 40, 57, 60, 63, 64]
    xs = {}
    for bits in widths:
        low = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(2 ** 64 - 1)
        x = rng.integers(0, 2 ** 64, 200, dtype=np.uint64, endpoint=False)
        x[::2] &= ~low
        x[1::4] = (x[1::4] & ~low) | (np.uint64(1) << rng.integers(0, bits, 50).astype(np.uint64))
        x[:2] = [0, low]
        xs[bits] = x
    masks = {bits: [PRG(new_seed()).uint64(200) for _ in parties[1:]] for bits in widths}

    def fn(ctx):
        out = {}
        for bits, x in xs.items():
            share = x - np.sum(masks[bits], axis=0, dtype=np.uint64) if ctx.rank == 0 else masks[bits][ctx.rank - 1]
            out[bits] = beaver.open_bits(ctx, get_source(ctx).eqz_xor(share, bits))
        return out

    got = mpc.run_local(fn, parties, **OPTS)[parties[0]]
    for bits, x in xs.items():
        low = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(2 ** 64 - 1)
        np.testing.assert_array_equal(got[bits], ((x & low) == 0).astype(np.uint64), err_msg=f"{bits}")
