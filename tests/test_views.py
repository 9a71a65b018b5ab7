"""View tests for the secret-sharing engine and the statistics protocols: everything each
party and the dealer receives (``mpc.runtime.views.record_views``) carries nothing beyond
the reveal line.

Two kinds of checks:

* The dealer's view is independent of the data: two runs on different data of the same
  shapes (and, where the reveal line says so, different row counts) give dealer views
  with the same structure, every request the same op, shape and truncation shift
  (``canonical``). The dealer's random-looking arrays (masked rows) are compared by
  shape and checked for uniform bits.
* A computing party's received words look uniform and none of their bits correlates
  with another party's secret (``assert_masked``): the secret column is built from a
  random bit vector s, and every received uint64 array with a row axis is checked,
  bit by bit, for balance and for correlation with s.

Small sizes; a leak (a data-dependent shift, shape or unmasked share) fails these.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mpc import ss
from mpc.runtime.views import flatten, record_views
from mpc.ss import beaver
from mpc.ss.shuffle import shuffle
from protocols import stats
from protocols.psi import private_join

N = 2048
RNG = np.random.default_rng(7)           # test data only, never secrets


# -- helpers -------------------------------------------------------------------------------------

def canonical(value):
    """A comparable form of a received value: structure, ops, shapes and small integer
    arrays (truncation shifts) exactly; uint64/uint8 arrays (random-looking words, tags)
    by dtype and shape only; bytes by length."""
    if isinstance(value, dict):
        return tuple(sorted((k, canonical(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(canonical(v) for v in value)
    if isinstance(value, np.ndarray):
        if value.dtype in (np.uint64, np.uint8):
            return ("words", value.dtype.str, value.shape)
        return ("array", value.dtype.str, value.shape, value.tolist())
    if isinstance(value, bytes):
        return ("bytes", len(value))
    return value


def dealer_view(views):
    return [(sender, canonical(v)) for sender, v in views["dealer"]]


def truncations(views):
    """The dealer's truncation requests: (op, shape, shift) in order."""
    return [canonical(v) for _, v in views["dealer"]
            if isinstance(v, dict) and v.get("op") in ("trunc", "trunc_bits")]


def _bits(words: np.ndarray) -> np.ndarray:
    return ((words[..., None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).astype(np.float64)


def assert_masked(view, secret: np.ndarray, min_arrays: int = 1) -> int:
    """Every uint64 array of ``view`` with an axis of len(secret) rows: each of its 64 bits is
    balanced and uncorrelated with the 0/1 ``secret`` (6 sigma bounds). Returns how many
    arrays were checked."""
    n = len(secret)
    s = secret.astype(np.float64) - secret.mean()
    bound = 6.0 / math.sqrt(n)
    checked = 0
    for leaf in flatten(view):
        if not (isinstance(leaf, np.ndarray) and leaf.dtype == np.uint64 and leaf.size and leaf.size % n == 0):
            continue
        if n in leaf.shape:                 # a row axis; else a flat concatenation of row vectors
            leaf = np.moveaxis(leaf, leaf.shape.index(n), -1)
        rows = leaf.reshape(-1, n)
        rows = np.concatenate([rows[:32], rows[32:][-32:]])
        b = _bits(rows)                                              # (r, n, 64)
        mean = b.mean(axis=1)
        assert np.abs(mean - 0.5).max() < bound, "a received word has a biased bit"
        corr = np.einsum("rnk,n->rk", b - mean[:, None, :], s) / (n * s.std() * np.maximum(b.std(axis=1), 1e-9))
        assert np.abs(corr).max() < bound, f"a received bit correlates with the secret ({np.abs(corr).max():.3f})"
        checked += 1
    assert checked >= min_arrays, f"only {checked} arrays checked"
    return checked


def secret_column(scale: float, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """(values, s): values whose sign and magnitude follow the random bit vector s."""
    s = RNG.integers(0, 2, n)
    values = (np.where(s == 1, 3.0, -1.0) + RNG.normal(0, 0.1, n)) * scale
    return values, s


# -- SharedTensor: share, mul, compare, reveal ---------------------------------------------------

def _tensor_ops(ctx, x, y):
    a = ss.share(ctx, x if ctx.party == "a" else None, owner="a")
    b = ss.share(ctx, y if ctx.party == "b" else None, owner="b")
    prod = a * b
    less = a < b
    return prod.sum().reveal(to="a"), less.reveal(to="a")


def test_tensor_views():
    x, s = secret_column(1.0)
    y = RNG.normal(0, 1, N)
    runs = []
    for xs in (x, -x * 100):
        res, views = record_views(_tensor_ops, ["a", "b"], args={"a": (xs, None), "b": (None, y)})
        assert res["a"][0] == pytest.approx(float(np.sum(xs * y)), rel=1e-3, abs=1e-2)
        assert np.array_equal(res["a"][1], (xs < y).astype(np.int64))
        assert res["b"] == (None, None)                          # reveal(to="a") only
        runs.append(views)
    assert dealer_view(runs[0]) == dealer_view(runs[1])          # independent of the data
    assert truncations(runs[0]) == [(("bits", ("array", "<i8", (), 16)), ("op", "trunc"),
                                     ("shape", (N,)))]           # the job's frac_bits, nothing else
    # b sees a's secret only through Beaver / edaBit masks; a sees b's input likewise
    assert_masked(runs[0]["b"], s, min_arrays=3)
    assert_masked(runs[1]["b"], s, min_arrays=3)
    assert not any(isinstance(v, np.ndarray) and v.dtype != np.uint64 for v in flatten(runs[0]["b"])), \
        "b received a plaintext array"


# -- the truncations a dealer cannot read ----------------------------------------------------------

def _truncations(ctx, x, bits, limit):
    t = ss.share(ctx, x if ctx.party == "a" else None, owner="a")
    hidden = ss.from_shares(ctx, beaver.truncate_hidden(ctx, t.share, bits, limit)).reveal()
    private = ss.from_shares(ctx, beaver.truncate_private(ctx, t.share, bits)).reveal()
    return hidden, private


@pytest.mark.parametrize("triples", ["dealer", "paillier"])
def test_hidden_and_private_truncation(triples):
    n = 512 if triples == "dealer" else 24
    x = RNG.integers(-(1 << 40), 1 << 40, n)
    bits = RNG.integers(0, 21, n)
    bits[:4] = 0
    opts = {"triples": triples, "paillier_bits": 512} if triples == "paillier" else {}
    out, views = record_views(_truncations, ["a", "b"], args={p: (x, bits, 21) for p in "ab"}, **opts)
    hidden, private = out["a"]
    want = x >> bits                                              # floor division by 2^bits
    for got in (hidden, private):
        assert np.all((got - want >= 0) & (got - want <= 1))
        assert np.array_equal(got[:4], x[:4])                     # bits == 0: exact
    if triples == "dealer":
        # the dealer is asked for the public limit, and for a pair naming no shift
        assert truncations(views) == [(("bits", ("array", "<i8", (), 21)), ("op", "trunc"), ("shape", (n,))),
                                      (("op", "trunc_bits"), ("shape", (n,)))]


# -- shuffle ------------------------------------------------------------------------------------------

def _shuffle(ctx, x):
    t = ss.share(ctx, x if ctx.party == "a" else None, owner="a")
    out = ss.from_shares(ctx, shuffle(ctx, t.share[None, :]), t.frac_bits)
    return np.sort(out.reveal()[0])


def test_shuffle_views():
    x, s = secret_column(1.0)
    runs = []
    for xs in (x, x * 1000 + 5):
        res, views = record_views(_shuffle, ["a", "b"], args={p: (xs,) for p in "ab"})
        assert np.allclose(res["a"], np.sort(xs), atol=1e-4)
        runs.append(views)
    assert dealer_view(runs[0]) == dealer_view(runs[1])
    assert [v for _, v in runs[0]["dealer"] if v.get("op") == "shuffle"] == [{"op": "shuffle", "shape": [1, N]}]
    assert_masked(runs[0]["b"], s, min_arrays=1)


def _ot_shuffle(ctx, x, jointly):
    t = ss.share(ctx, x if ctx.party == "a" else None, owner="a")
    rows = np.stack([t.share, t.share * np.uint64(3)])
    return shuffle(ctx, rows, jointly=jointly), rows                # shares only: nothing opened


def _bytes_balanced(view) -> int:
    """Every uint8 array received (IKNP matrices, packed OT corrections): bits balanced (6
    sigma) overall and in each array of at least 4 KiB. Returns the bytes checked."""
    arrays = [leaf for leaf in flatten(view) if isinstance(leaf, np.ndarray) and leaf.dtype == np.uint8]
    total = 0
    for a in arrays:
        bits = np.unpackbits(a.ravel())
        if bits.size >= 1 << 15:
            assert abs(bits.mean() - 0.5) < 6 / math.sqrt(bits.size), "a received byte array is biased"
        total += a.size
    return total


@pytest.mark.parametrize("jointly", [False, True])
def test_ot_shuffle_views(monkeypatch, jointly):
    """triples="ot": what each party receives has the same structure whatever the values
    and whatever the permutations (identity, reversal or uniform: a party's choice bits
    vary with its permutation), looks uniform, and no received word correlates with the
    secret column."""
    from mpc.ss import ot_shuffle

    x, s = secret_column(1.0)
    runs = []
    for xs, perms in ((x, None), (x * 1000 + 5, "identity"), (-x, "reversed")):
        if perms == "identity":
            monkeypatch.setattr(ot_shuffle, "row_permutations",
                                lambda shape: np.tile(np.arange(shape[1]), (shape[0], 1)))
        elif perms == "reversed":
            monkeypatch.setattr(ot_shuffle, "row_permutations",
                                lambda shape: np.tile(np.arange(shape[1])[::-1], (shape[0], 1)))
        res, views = record_views(_ot_shuffle, ["a", "b"], args={p: (xs, jointly) for p in "ab"}, triples="ot")
        out, before = (res["a"][k] + res["b"][k] for k in (0, 1))
        assert np.array_equal(np.sort(out, axis=1), np.sort(before, axis=1))
        if perms is not None:         # both factors fixed: the identity, or a reversal applied twice
            assert np.array_equal(out, before)
        runs.append(views)
        for p in "ab":
            assert _bytes_balanced(views[p]) > 100_000
            assert_masked(views[p], s, min_arrays=1)
    for p in "ab":
        assert len({tuple((sender, canonical(v)) for sender, v in run[p]) for run in runs}) == 1


def _clos_shuffle(ctx, x, wires):
    from mpc.ss import clos_shuffle
    ctx.state[clos_shuffle.WIRES] = wires
    return _ot_shuffle(ctx, x, True)


def test_clos_shuffle_views(monkeypatch):
    """The shuffle in Clos stages (4 chunks: networks of N/4 wires): what each party receives has the
    same structure for any values and in every run (the flow matrix and its decomposition,
    drawn anew each time, shape no message), also with every stage's arrangement fixed to
    the identity; it looks uniform, and no word received correlates with the secret of the
    chunk it came from."""
    from mpc.ss import clos_shuffle

    x, s = secret_column(1.0)
    runs = []
    for xs, identity in ((x, False), (x * 1000 + 5, False), (-x, False), (x, True)):
        if identity:
            monkeypatch.setattr(clos_shuffle, "_uniform", lambda n: np.arange(n))
        res, views = record_views(_clos_shuffle, ["a", "b"], args={p: (xs, N // 4) for p in "ab"}, triples="ot")
        out, before = (res["a"][k] + res["b"][k] for k in (0, 1))
        assert np.array_equal(np.sort(out, axis=1), np.sort(before, axis=1))
        assert np.array_equal(out[1], out[0] * np.uint64(3))            # one permutation for both rows
        runs.append(views)
        for p in "ab":
            assert _bytes_balanced(views[p]) > 100_000
            assert_masked(views[p], s[:N // 4], min_arrays=4)
    for p in "ab":
        assert len({tuple((sender, canonical(v)) for sender, v in run[p]) for run in runs}) == 1


def test_permutations_break_ties_on_the_second_word():
    """Equal high words must not fall back to the row order (a biased permutation)."""
    from mpc.ss.dealer import _permutations

    class TiedPRG:
        def __init__(self):
            self.calls = 0

        def uint64(self, shape):
            self.calls += 1
            if self.calls == 1:
                return np.zeros(shape, np.uint64)                 # every high word tied
            return np.arange(shape[-1], 0, -1, dtype=np.uint64).reshape(1, -1).repeat(shape[0], 0)

    perm = _permutations(TiedPRG(), (2, 6))
    assert np.array_equal(perm, np.tile(np.arange(5, -1, -1), (2, 1)))


# -- dealer join -----------------------------------------------------------------------------------------

def _join(ctx, ids, cols):
    t = private_join(ctx, ids, cols, method="dealer")
    return t.num_rows


def test_dealer_join_views():
    """The dealer sees keyed tags and masked rows: sizes only (its reveal line)."""
    runs = []
    for offset in (0, 10_000):
        ids_a = list(range(offset, offset + N))
        ids_b = list(range(offset + N // 2, offset + N // 2 + N))
        v = np.arange(N, dtype=np.int64) * 1000
        res, views = record_views(_join, ["a", "b"], args={"a": (ids_a, {"x": v}), "b": (ids_b, {"y": -v})})
        assert res["a"] == res["b"] == N // 2
        runs.append(views)
    assert dealer_view(runs[0]) == dealer_view(runs[1])
    tags = [[leaf for leaf in flatten([m]) if isinstance(leaf, np.ndarray) and leaf.dtype == np.uint8]
            for m in runs[0]["dealer"]]
    tags = [t for ts in tags for t in ts]
    assert len(tags) == 2 and tags[0].shape == (N, 16)
    # keyed per job: the same id never gives the same tag in two jobs
    tags2 = [leaf for m in runs[1]["dealer"] for leaf in flatten([m])
             if isinstance(leaf, np.ndarray) and leaf.dtype == np.uint8]
    assert not set(map(bytes, tags[0])) & set(map(bytes, tags2[0]))
    rows = [leaf for m in runs[0]["dealer"] for leaf in flatten([m])
            if isinstance(leaf, np.ndarray) and leaf.dtype == np.uint64]
    for r in rows:                                                # masked rows: uniform bits
        assert np.abs(_bits(r.reshape(-1)).mean(axis=0) - 0.5).max() < 6 / math.sqrt(r.size)


# -- vertical statistics ----------------------------------------------------------------------------------

def _vertical(ctx, x, y):
    a = ss.share(ctx, x if ctx.party == "a" else None, owner="a")
    b = ss.share(ctx, y if ctx.party == "b" else None, owner="b")
    return (stats.var(ctx, a), stats.sum(ctx, a), stats.pearson(ctx, a, b),
            stats.describe(ctx, {"a": a, "b": b}))


def test_vertical_views():
    """Columns of very different magnitude (so different opened bit lengths): the dealer is
    asked the same truncations (shapes and shifts) either way."""
    x, s = secret_column(1e-3)
    y = RNG.normal(0, 1, N)
    runs = []
    for xs in (x, x * 1e7):
        res, views = record_views(_vertical, ["a", "b"], args={"a": (xs, None), "b": (None, y)})
        var, total, r, desc = res["b"]
        assert var == pytest.approx(np.var(xs, ddof=1), rel=1e-3)
        assert r == pytest.approx(np.corrcoef(xs, y)[0, 1], abs=1e-3)
        assert desc.loc["a", "max"] == pytest.approx(xs.max(), abs=2.0 ** -15)
        runs.append(views)
    trunc = truncations(runs[0])
    assert trunc == truncations(runs[1])
    assert len(trunc) > 5
    # every request but the quickselect's (whose round sizes follow the secret random order)
    ops = ("arith", "matmul", "trunc", "trunc_bits")
    fixed = [[canonical(v) for _, v in views["dealer"] if v.get("op") in ops] for views in runs]
    assert fixed[0] == fixed[1]
    assert_masked(runs[0]["b"], s, min_arrays=10)


def _scaled(ctx, x):
    t = stats.share_scaled(ctx, x if ctx.party == "a" else None, owner="a")
    return stats.mean(ctx, t), stats.std(ctx, t)


def test_scaled_column_views():
    """A column with its owner's scale (the registry jobs' path): the dealer's view does not
    depend on the column's magnitude, the other party's bits do not correlate with it."""
    x, s = secret_column(1.0)
    runs = []
    for xs in (x * 1e-4, x * 1e4):
        res, views = record_views(_scaled, ["a", "b"], args={p: (xs,) for p in "ab"})
        assert res["b"][0] == pytest.approx(xs.mean(), rel=1e-6)
        assert res["b"][1] == pytest.approx(xs.std(ddof=1), rel=1e-6)
        runs.append(views)
    assert dealer_view(runs[0]) == dealer_view(runs[1])
    assert_masked(runs[0]["b"], s, min_arrays=3)


# -- group_by, horizontal, woe ----------------------------------------------------------------------------

def _group_by(ctx, key, v):
    view = {"key": key if ctx.party == "a" else None, "v": v if ctx.party == "b" else None}
    return stats.group_by(ctx, view, "key", {"v": ["sum"]}, min_group_size=5)


def test_group_by_views():
    """Which groups are suppressed is public to the parties, not to the dealer."""
    n = 60
    keys_all_kept = np.repeat([0, 1, 2], 20)
    keys_one_small = np.concatenate([np.zeros(3, int), np.ones(27, int), np.full(30, 2)])
    v = RNG.normal(0, 1, n)
    runs = []
    for keys in (keys_all_kept, keys_one_small):
        res, views = record_views(_group_by, ["a", "b"], args={"a": (keys, None), "b": (None, v)})
        out = res["a"]
        kept = ~out["suppressed"].to_numpy()
        sums = np.array([v[keys == g].sum() for g in range(3)])
        assert np.allclose(out["v_sum"].to_numpy()[kept], sums[kept])
        runs.append(views)
    assert dealer_view(runs[0]) == dealer_view(runs[1])


def _horizontal(ctx, frame):
    return stats.horizontal_describe(ctx, frame)


def test_horizontal_views():
    """The dealer learns the number of parties and columns only: not the row counts."""
    runs = []
    for sizes in ((50, 70), (3000, 9)):
        frames = {p: pd.DataFrame({"u": RNG.normal(0, 10 ** i, k), "w": RNG.exponential(1, k)})
                  for i, (p, k) in enumerate(zip("ab", sizes, strict=True))}
        res, views = record_views(_horizontal, ["a", "b"], args={p: (f,) for p, f in frames.items()})
        want = pd.concat(frames.values()).describe().T
        assert np.allclose(res["a"]["mean"], want["mean"])
        assert np.allclose(res["a"]["std"], want["std"], rtol=1e-6)
        runs.append(views)
    assert dealer_view(runs[0]) == dealer_view(runs[1])


def _woe(ctx, table, bins):
    return stats.woe_iv(ctx, table, "y", ["f"], bins=bins, method="ss")


def test_woe_ss_views():
    """Merged bin edges (a feature with few distinct values) do not show to the dealer; the
    feature holder's view carries no bit of the label."""
    n = N
    y = RNG.integers(0, 2, n)
    runs = []
    for f in (RNG.normal(0, 1, n), RNG.integers(0, 2, n).astype(float)):
        res, views = record_views(_woe, ["a", "b"], args={"a": ({"y": y}, 4), "b": ({"f": f}, 4)})
        table, _ = res["a"]
        assert table["count"].sum() == n and table["events"].sum() == y.sum()
        runs.append(views)
    assert dealer_view(runs[0]) == dealer_view(runs[1])
    assert_masked(runs[0]["b"], y, min_arrays=1)


def test_the_checks_catch_a_leak():
    """The checkers themselves fail on a leaky view: an unmasked fixed-point share, a
    data-dependent truncation shift."""
    from mpc.ss import fixed

    x, s = secret_column(1.0)
    with pytest.raises(AssertionError):
        assert_masked([("a", fixed.encode(x, 16))], s)
    with pytest.raises(AssertionError):                       # a share masked with a biased mask
        assert_masked([("a", fixed.encode(x, 16) + (RNG.integers(0, 1 << 20, N).astype(np.uint64)))], s)
    leaky = [{"views": {"dealer": [("b", {"op": "trunc", "shape": [N], "bits": np.int64(b)})]}}["views"]
             for b in (3, 9)]
    assert truncations(leaky[0]) != truncations(leaky[1])


# -- dealer-free (triples="ot"): what the OT messages tell the other party -------------------------

N_OT = 1024          # elements: every OT of one operation in one extension batch


def assert_independent(view, secret: np.ndarray) -> tuple[int, int]:
    """No bit of any received array (uint8 OT matrices and corrections, uint64 words, any
    integer array) correlates with the 0/1 ``secret`` of n elements (6 sigma), whatever the
    array's layout: its bits are read element-major (``reshape(n, -1)``: each element's OTs
    or words together) and bit-major (``reshape(-1, n)``), for the whole array and for each
    row of a 2-D or wider one (the rows of an IKNP matrix U each cover every OT). Bits that
    are constant in every element are independent of anything (padding of short
    corrections). Returns (bytes checked, bytes received)."""
    n = len(secret)
    s = secret.astype(np.float32) - secret.mean()
    bound = 6.0 / math.sqrt(n)
    checked = total = 0

    def check(bits: np.ndarray) -> bool:
        if not bits.size or bits.size % n:
            return False
        for m in (bits.reshape(n, -1), bits.reshape(-1, n).T):
            m = m.astype(np.float32)
            sd = m.std(axis=0)
            live = sd > 0
            corr = (s @ (m[:, live] - m[:, live].mean(axis=0))) / (n * s.std() * sd[live])
            assert not corr.size or np.abs(corr).max() < bound, \
                f"a received bit correlates with the secret ({np.abs(corr).max():.3f}, array of {bits.size} bits)"
        return True

    for leaf in flatten(view):
        if not (isinstance(leaf, np.ndarray) and leaf.dtype.kind in "iu"):
            continue
        arr = np.ascontiguousarray(leaf)
        total += arr.nbytes
        ok = check(np.unpackbits(arr.reshape(-1).view(np.uint8), bitorder="little"))
        if arr.ndim >= 2:
            rows = arr.reshape(arr.shape[0], -1)
            if rows[0].nbytes * 8 % n == 0:
                for row in rows:
                    ok = check(np.unpackbits(row.view(np.uint8), bitorder="little")) or ok
        checked += arr.nbytes if ok else 0
    return checked, total


def _ot_op(ctx, op, x_share, y_share, frac):
    x, y = ss.from_shares(ctx, x_share, frac), ss.from_shares(ctx, y_share, frac)
    out = {"mul": lambda: x * y, "lt": lambda: y < x, "eq": lambda: y == x}[op]()
    return out.reveal(to="bob")            # alice receives no share of the result


@pytest.mark.parametrize("op, frac", [("mul", 0), ("mul", 16), ("lt", 16), ("eq", 0)])
def test_ot_messages_are_independent_of_the_peers_shares(op, frac):
    """triples="ot", two parties: alice holds x, bob holds y, and bob's share of y is all
    zeros or all ones per element by a secret bit s (so every bit bob chooses or corrects
    with follows s; alice's shares are 0 for y and her own x for x). What alice receives
    while computing x * y (integers; fixed point, with the dealer-free truncation), y < x
    and y == x has the same structure for s and for its complement, and no bit of it
    correlates with s, in any array or layout (``assert_independent``, which checks nearly
    every byte received); bob's result is right."""
    rng = np.random.default_rng(17)                               # test data only
    s = rng.integers(0, 2, N_OT).astype(np.uint64)
    x = rng.integers(-(1 << 40), 1 << 40, N_OT)
    if op == "eq":                                                # equal where t == s (t independent of s)
        x[::2] = -rng.integers(0, 2, N_OT // 2)
    x_share, zero = x.view(np.uint64), np.zeros(N_OT, np.uint64)
    structures = []
    for secret in (s, 1 - s):
        y = np.uint64(0) - secret
        out, views = record_views(_ot_op, ["alice", "bob"],
                                  args={"alice": (op, x_share, zero, frac), "bob": (op, zero, y, frac)}, triples="ot")
        yv, xv = y.view(np.int64), x
        want = {"mul": (xv * yv) >> frac, "lt": (yv < xv), "eq": (yv == xv)}[op]
        got = out["bob"] * (2 ** frac if op == "mul" else 1)
        if op == "mul" and frac:
            assert np.isin(np.round(got).astype(np.int64) - want, (0, 1)).all()
        else:
            np.testing.assert_array_equal(got, want.astype(np.int64))
        assert out["alice"] is None
        received = [v for sender, v in views["alice"] if sender == "bob"]
        assert received and all(sender == "bob" for sender, _ in views["alice"])
        structures.append([canonical(v) for v in received])
        checked, total = assert_independent(views["alice"], secret)
        assert checked >= 0.95 * total, f"only {checked} of {total} received bytes could be checked"
    assert structures[0] == structures[1]


def test_the_ot_view_check_catches_a_leak():
    """assert_independent fails on a share sent in a uint8 message, and on one bit of it in
    an otherwise pseudorandom array, in either layout or in one row of a U matrix (a bit
    XORed with a pseudorandom one would be a one-time pad: no leak, and it passes)."""
    rng = np.random.default_rng(3)
    s = rng.integers(0, 2, N_OT).astype(np.uint64)
    share = np.uint64(0) - s
    noise = rng.integers(0, 256, (N_OT, 40), dtype=np.uint8)
    with pytest.raises(AssertionError):
        assert_independent([("bob", share.view(np.uint8))], s)
    one_bit = noise.copy()
    one_bit[:, 17] = (one_bit[:, 17] & np.uint8(0xF7)) | (s.astype(np.uint8) << np.uint8(3))   # element-major
    with pytest.raises(AssertionError):
        assert_independent([("bob", one_bit)], s)
    bit_major = np.unpackbits(noise.reshape(-1), bitorder="little").reshape(-1, N_OT)
    bit_major[5] = s.astype(np.uint8)
    with pytest.raises(AssertionError):
        assert_independent([("bob", np.packbits(bit_major.reshape(-1), bitorder="little"))], s)
    u = rng.integers(0, 256, (64, N_OT * 64 // 8), dtype=np.uint8)               # a U matrix, one row leaks
    row = np.unpackbits(u[9], bitorder="little").reshape(N_OT, 64)
    row[:, 0] = s
    u[9] = np.packbits(row.reshape(-1), bitorder="little")
    with pytest.raises(AssertionError):
        assert_independent([("bob", u)], s)
    padded = noise.copy()
    padded[:, 17] ^= s.astype(np.uint8) << np.uint8(3)
    assert assert_independent([("bob", padded)], s) == (noise.nbytes, noise.nbytes)
