"""Zero tests on XOR shares and equality on arithmetic shares, for every triple source."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mpc
from mpc import ss
from mpc.crypto.random import PRG, new_seed
from mpc.runtime.views import record_views
from mpc.ss import beaver, compare

SOURCES = {"dealer": {"triples": "dealer"}, "ot": {"triples": "ot"},
           "paillier": {"triples": "paillier", "paillier_bits": 512}}
PARTIES = ["alice", "bob"]


def _all_zero(words, bits, source, parties=PARTIES, transport="memory"):
    """Share ``words`` XOR-wise (a random mask on the first party), run all_zero_xor, open."""
    mask = [PRG(new_seed()).uint64(words.shape) for _ in parties[1:]]
    shares = [words ^ np.bitwise_xor.reduce(mask, axis=0) if mask else words, *mask]

    def fn(ctx):
        out = compare.all_zero_xor(ctx, shares[ctx.rank], bits)
        assert out.dtype == np.uint64 and out.shape == words.shape
        return beaver.open_bits(ctx, out)

    return mpc.run_local(fn, parties, transport=transport, timeout=300, **SOURCES[source])[parties[0]]


def _expected(words, bits):
    low = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
    return ((words & low) == 0).astype(np.uint64)


words_st = st.integers(1, 200).flatmap(lambda n: hnp.arrays(
    np.uint64, n, elements=st.one_of(st.sampled_from([0, 1, 1 << 63, 1 << 31, 1 << 32, 2 ** 64 - 1]),
                                     st.integers(0, 2 ** 64 - 1))))


@pytest.mark.parametrize("source", ["dealer", "ot", "paillier"])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(words=words_st, bits=st.sampled_from([64, 63, 33, 32, 17, 8, 5, 1]))
def test_all_zero_xor_against_numpy(source, words, bits):
    words = words.copy()
    words[::3] &= ~np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(0)   # many zeros
    np.testing.assert_array_equal(_all_zero(words, bits, source), _expected(words, bits))


@pytest.mark.parametrize("n", [1, 63, 64, 65, 4097])
def test_all_zero_xor_every_single_bit(n):
    """Each one-bit word (and zero) at every lane position of a packed tree."""
    rng = np.random.default_rng(n)
    words = np.uint64(1) << rng.integers(0, 64, n).astype(np.uint64)
    words[rng.random(n) < 0.3] = 0
    np.testing.assert_array_equal(_all_zero(words, 64, "ot"), _expected(words, 64))


def test_all_zero_xor_three_parties_and_grpc():
    words = np.array([0, 5, 1 << 40, 0, 7 << 61], dtype=np.uint64)
    np.testing.assert_array_equal(_all_zero(words, 64, "dealer", ["a", "b", "c"]), _expected(words, 64))
    np.testing.assert_array_equal(_all_zero(words, 41, "ot", transport="grpc"), _expected(words, 41))


def test_all_zero_xor_rejects_bad_widths():
    with pytest.raises(Exception, match="bits must be in 1..64"):
        mpc.run_local(lambda ctx: compare.all_zero_xor(ctx, np.zeros(2, np.uint64), 0), PARTIES)


def _eq(x, y, source, parties=PARTIES, transport="memory"):
    def fn(ctx):
        a = ss.share(ctx, x if ctx.party == parties[0] else None, parties[0])
        b = ss.share(ctx, y if ctx.party == parties[-1] else None, parties[-1])
        return (a == b).reveal(), (a != b).reveal(), (a == 2.5).reveal()

    return mpc.run_local(fn, parties, transport=transport, timeout=300, **SOURCES[source])[parties[0]]


def q(v):
    return np.round(np.asarray(v, dtype=np.float64) * 2 ** 16) / 2 ** 16


def _check_eq(got, x, y):
    eq, ne, eq_pub = got
    np.testing.assert_array_equal(eq, (q(x) == q(y)).astype(np.int64))
    np.testing.assert_array_equal(ne, (q(x) != q(y)).astype(np.int64))
    np.testing.assert_array_equal(eq_pub, (q(x) == 2.5).astype(np.int64))


close = st.one_of(st.sampled_from([0.0, 2.5, -2.5, 1e4, -32767.5, 2 ** -16, -(2 ** -16)]),
                  st.floats(-30000, 30000))
pairs_st = st.integers(1, 30).flatmap(lambda n: st.tuples(hnp.arrays(np.float64, n, elements=close),
                                                          hnp.arrays(np.float64, n, elements=close)))


@pytest.mark.parametrize("source", ["dealer", "ot", "paillier"])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(xy=pairs_st, same=st.lists(st.booleans(), min_size=30, max_size=30))
def test_equality_against_numpy(source, xy, same):
    x, y = xy
    y = np.where(np.array(same[:len(x)]), x, y)        # about half the pairs equal
    _check_eq(_eq(x, y, source), x, y)


@pytest.mark.parametrize("source", ["dealer", "ot"])
def test_equality_over_grpc(source):
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=200) * 100, rng.normal(size=200) * 100
    y[::2] = x[::2]
    x[:3] = y[:3] = 2.5
    _check_eq(_eq(x, y, source, transport="grpc"), x, y)


def test_equality_three_parties_by_bit_decomposition():
    x = np.array([1.0, 2.5, -3.0, 0.0, 7.25])
    y = np.array([1.0, 2.0, -3.0, 2 ** -16, 7.25])
    _check_eq(_eq(x, y, "dealer", ["a", "b", "c"]), x, y)


def test_equality_far_apart_values():
    """The zero test reads the ring difference, exact for any integers in the engine's range
    (|x| < 2^61), including pairs one apart at its ends and differences in the top bits."""
    big = 2 ** 61 - 1
    x = np.array([-big, big, 5, -big, 2 ** 60, 0], dtype=np.int64)
    y = np.array([big, big, 5, -big + 1, -(2 ** 60), 0], dtype=np.int64)

    def fn(ctx):
        a = ss.share(ctx, x if ctx.party == "alice" else None, "alice")
        b = ss.share(ctx, y if ctx.party == "bob" else None, "bob")
        return (a == b).reveal()

    got = mpc.run_local(fn, PARTIES, triples="ot", timeout=300)["alice"]
    np.testing.assert_array_equal(got, (x == y).astype(np.int64))


def _less_than(a, b, transport="memory", bits=64):
    from mpc.ss.millionaire import compare_xor
    from mpc.ss.triples import get_source

    def fn(ctx):
        src = get_source(ctx)
        lt, eq = compare_xor(ctx, src._s, src._r, src.prg, a if ctx.rank == 0 else b, bits)
        assert lt.dtype == eq.dtype == np.uint64 and lt.shape == eq.shape == a.shape
        return beaver.open_bits(ctx, lt), beaver.open_bits(ctx, eq)

    return mpc.run_local(fn, PARTIES, transport=transport, triples="ot", timeout=300)["alice"]


u64 = st.one_of(st.integers(0, 2 ** 64 - 1), st.sampled_from([0, 1, 15, 16, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1]))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ab=st.integers(1, 300).flatmap(lambda n: st.tuples(hnp.arrays(np.uint64, n, elements=u64),
                                                          hnp.arrays(np.uint64, n, elements=u64))),
       flips=st.integers(0, 63))
def test_millionaires_against_numpy(ab, flips):
    """[a < b] and [a == b] of unsigned 64-bit words, including equal words and words differing in one
    bit (any digit, any position in it)."""
    a, b = ab
    b = b.copy()
    b[::3] = a[::3]
    b[1::3] = a[1::3] ^ (np.uint64(1) << np.uint64(flips))
    lt, eq = _less_than(a, b)
    np.testing.assert_array_equal(lt, (a < b).astype(np.uint64))
    np.testing.assert_array_equal(eq, (a == b).astype(np.uint64))


def test_millionaires_over_grpc_in_batches(monkeypatch):
    """Several OT batches (batch size shrunk to 128 elements), shape kept, over gRPC."""
    from mpc.ss import millionaire
    monkeypatch.setattr(millionaire, "_CHUNK", 128)
    rng = np.random.default_rng(11)
    a = rng.integers(0, 2 ** 63, (7, 50), dtype=np.uint64)
    b = np.where(rng.random((7, 50)) < 0.3, a, rng.integers(0, 2 ** 63, (7, 50), dtype=np.uint64))
    lt, eq = _less_than(a, b, "grpc")
    np.testing.assert_array_equal(lt, (a < b).astype(np.uint64))
    np.testing.assert_array_equal(eq, (a == b).astype(np.uint64))


def _bits_of(arr: np.ndarray) -> np.ndarray:
    return np.unpackbits(np.ascontiguousarray(arr).view(np.uint8), bitorder="little")


def _balanced_and_independent(bits: np.ndarray, secret: np.ndarray) -> None:
    bound = 6.0 / np.sqrt(bits.size)
    assert abs(bits.mean() - 0.5) < bound
    assert abs(np.corrcoef(bits.astype(float), secret.astype(float))[0, 1]) < bound


def _millionaire_case(relation):
    """(digit layout, the protocol on the OT source, numpy's relation, output bits per
    message slot, opened planes) of the comparison (``"<"``) or the equality (``"=="``)."""
    from mpc.ss.millionaire import compare_xor, eq_layout, equal_xor, layout
    from mpc.ss.triples import get_source

    if relation == "<":
        def lt(ctx, value):
            src = get_source(ctx)
            return beaver.open_bits(ctx, compare_xor(ctx, src._s, src._r, src.prg, value)[0])
        return layout(64), lt, np.less, 2, lambda count: count >= 4

    def eq(ctx, value):
        src = get_source(ctx)
        return beaver.open_bits(ctx, equal_xor(ctx, src._s, src._r, src.prg, value))
    return eq_layout(64), eq, np.equal, 1, lambda count: count == 5    # 4 tree levels, the output


@pytest.mark.parametrize("relation", ["<", "=="])
def test_millionaire_views_are_independent_of_the_peers_input(relation):
    """What alice receives while comparing her value with bob's (``compare_xor``'s [a < b],
    or ``equal_xor``'s [a == b]: the 1-of-2^m OTs and the AND tree): bob's value is all
    zeros or all ones per element by a secret bit s (so every choice bit and every digit
    bob uses follows s). Alice's view has the same structure for s and for not s; every
    valid bit of the OT messages (one 128-bit word per digit), every row of the IKNP
    matrices and every opened bit plane is balanced and uncorrelated with s (6-sigma
    bounds)."""
    from mpc.ot.extension import CHUNKS

    sizes, fn, expected, slot_bits, planes_ok = _millionaire_case(relation)
    n = 4096
    chosen = int(sizes[0::2].sum())           # bob chooses on the even digits (alice offers them)
    rng = np.random.default_rng(13)           # test data only
    s = rng.integers(0, 2, n).astype(np.uint64)
    a = rng.integers(0, 2 ** 64, n, dtype=np.uint64, endpoint=False)

    structures = []
    for secret in (s, 1 - s):
        b = np.uint64(0) - secret                  # 0 or 2^64 - 1
        out, views = record_views(fn, PARTIES, args={"alice": (a,), "bob": (b,)}, triples="ot")
        np.testing.assert_array_equal(out["alice"], expected(a, b).astype(np.uint64))
        got = [v for sender, v in views["alice"] if sender == "bob"]
        structures.append([(type(v).__name__, getattr(v, "dtype", None), getattr(v, "shape", None)) for v in got])
        kinds = {"ot": 0, "u": 0, "open": 0}
        for v in got:
            if not isinstance(v, np.ndarray):
                continue
            if v.dtype == np.uint64 and v.shape == (n, len(sizes[1::2]), 2):   # 1-of-2^m OT messages
                kinds["ot"] += 1
                words = v.reshape(n, -1).T.copy()                    # (digit word, element)
                for k, word in enumerate(words):
                    m = sizes[1::2][k // 2]                          # slices of values < 2^m only
                    for bit in range(min(64, slot_bits * 2 ** m - 64 * (k % 2))):
                        _balanced_and_independent((word >> np.uint64(bit)) & 1, secret)
            elif v.dtype == np.uint8 and v.ndim == 2 and v.shape[0] == CHUNKS and v.shape[1] * 8 >= chosen * n:
                kinds["u"] += 1                         # the extension matrix U of the batch
                choice = np.repeat(secret, chosen)      # OTs 0..chosen n - 1: (element, digit, bit)
                for row in v[::7]:
                    _balanced_and_independent(_bits_of(row)[:choice.size], choice)
            elif v.dtype == np.uint64 and v.ndim == 1 and v.size % (n // 64) == 0:   # opened planes
                kinds["open"] += 1
                for plane in v.reshape(-1, n // 64):
                    _balanced_and_independent(_bits_of(plane)[:n], secret)
        assert kinds["ot"] == 1 and kinds["u"] == 1 and planes_ok(kinds["open"]), kinds
    assert structures[0] == structures[1]


def test_malformed_ot_messages_name_the_peer():
    """A peer sending a millionaires' OT message of the wrong shape is refused, naming it."""
    from mpc.ss.millionaire import compare_xor
    from mpc.ss.triples import get_source

    def fn(ctx):
        src = get_source(ctx)
        if ctx.party == "bob":
            send = ctx.send
            ctx.send = lambda peer, v: send(peer, v[:-1] if getattr(v, "ndim", 0) == 3 else v)
        return compare_xor(ctx, src._s, src._r, src.prg, np.arange(10, dtype=np.uint64))

    with pytest.raises(Exception, match="party 'bob' sent .*millionaires' OT messages"):
        mpc.run_local(fn, PARTIES, triples="ot", timeout=30)


@pytest.mark.parametrize("bits", [2, 5, 7, 13, 37, 61, 63, 64])
def test_millionaires_on_fewer_bits_read_the_low_bits_only(bits):
    """``bits`` < 64: [a < b] and [a == b] of the low ``bits`` bits, whatever the words'
    higher bits (random here), including equal and one-bit-apart low parts and the extremes."""
    from mpc.ss.millionaire import layout
    rng = np.random.default_rng(bits)
    low = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(2 ** 64 - 1)
    a = rng.integers(0, 2 ** 64, 400, dtype=np.uint64, endpoint=False)
    b = rng.integers(0, 2 ** 64, 400, dtype=np.uint64, endpoint=False)
    b[::4] = (a[::4] & low) | (b[::4] & ~low)                            # equal low parts
    b[1::4] = a[1::4] ^ (np.uint64(1) << rng.integers(0, bits, 100).astype(np.uint64))
    a[2:6], b[2:6] = [0, low, 0, low], [low, 0, 0, low]
    lt, eq = _less_than(a, b, bits=bits)
    np.testing.assert_array_equal(lt, ((a & low) < (b & low)).astype(np.uint64))
    np.testing.assert_array_equal(eq, ((a & low) == (b & low)).astype(np.uint64))
    sizes = layout(bits)
    assert sizes.sum() == bits and sizes.max() <= 6 and len(sizes) == max(2, -(-bits // 6))


def _boundary_values(b):
    """Signed values around the bound |x| <= 2^b - 1 and random ones inside it."""
    rng = np.random.default_rng(b)
    edge = (1 << b) - 1
    return np.concatenate([[0, 1, -1, edge, -edge, edge - 1, -edge + 1, 1 << (b - 1), -(1 << (b - 1))],
                           rng.integers(-edge, edge + 1, 300)]).astype(np.int64)


@pytest.mark.parametrize("source", ["ot", "dealer"])
@pytest.mark.parametrize("b", [2, 9, 30, 45, 61, 62])
def test_ltz_open_with_a_public_bound_matches_numpy(source, b):
    """|x| < 2^b, so x is a signed (b + 1)-bit integer: ``bits=b + 1`` gives numpy's sign at
    the boundary values +-(2^b - 1), 0, +-1 (the OT source compares b bits instead of 63;
    the dealer's edaBit path ignores the bound). Shares are uniform mod 2^64, so their
    high bits are noise the bounded comparison must not read."""
    x = _boundary_values(b)
    r = PRG(new_seed()).uint64(x.shape)
    shares = {"alice": (x.astype(np.uint64) - r,), "bob": (r,)}

    def job(ctx, share):
        return compare.ltz_open(ctx, share, bits=b + 1), compare.ltz_open(ctx, share)

    out = mpc.run_local(job, PARTIES, args=shares, timeout=120, **SOURCES[source])
    for bounded, full in out.values():
        np.testing.assert_array_equal(bounded, x < 0)
        np.testing.assert_array_equal(full, x < 0)


def test_bounded_comparison_rejects_bad_widths():
    def job(ctx):
        with pytest.raises(ValueError, match="bits must be in 3..64"):
            compare.msb_xor(ctx, np.zeros(3, np.uint64), bits=2)
        with pytest.raises(ValueError, match="bits must be in 3..64"):
            compare.ltz_open(ctx, np.zeros(3, np.uint64), bits=65)
        return True

    assert all(mpc.run_local(job, PARTIES, triples="ot", timeout=30).values())


def _equal_cases(bits, rng):
    """Pairs (a, b) of ``bits``-bit-relevant words: equal low parts, unequal in exactly one
    digit of :func:`eq_layout` (its lowest bit, its highest bit, all its bits), the edge
    values 0 and 2^bits - 1 against each other and themselves, and random pairs; the
    words' higher bits are random (they must not count)."""
    from mpc.ss.millionaire import eq_layout
    low = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(2 ** 64 - 1)
    sizes = eq_layout(bits)
    starts = np.cumsum(sizes) - sizes
    a = rng.integers(0, 2 ** 64, 40 + 3 * len(sizes), dtype=np.uint64, endpoint=False)
    b = (a & low) | (rng.integers(0, 2 ** 64, len(a), dtype=np.uint64, endpoint=False) & ~low)
    for j, (s, m) in enumerate(zip(starts, sizes, strict=True)):
        digit = np.uint64(((1 << int(m)) - 1) << int(s))
        b[3 * j] ^= np.uint64(1) << np.uint64(s)                      # lowest bit of digit j
        b[3 * j + 1] ^= np.uint64(1) << np.uint64(s + m - 1)          # highest bit of digit j
        b[3 * j + 2] ^= digit                                         # every bit of digit j
    k = 3 * len(sizes)
    a[k:k + 4], b[k:k + 4] = [0, low, 0, low], [low, 0, 0, low]
    b[k + 4:k + 20] = rng.integers(0, 2 ** 64, 16, dtype=np.uint64, endpoint=False)   # random, unequal
    return a, b, low


def test_equal_xor_against_numpy_at_every_width():
    """equal_xor: [a == b] on the low ``bits`` bits, for every width 2..64, in one job."""
    from mpc.ss.millionaire import eq_layout, equal_xor
    from mpc.ss.triples import get_source

    rng = np.random.default_rng(18)
    cases = {bits: _equal_cases(bits, rng) for bits in range(2, 65)}

    def fn(ctx):
        src = get_source(ctx)
        out = {}
        for bits, (a, b, _) in cases.items():
            eq = equal_xor(ctx, src._s, src._r, src.prg, a if ctx.rank == 0 else b, bits)
            assert eq.dtype == np.uint64 and eq.shape == a.shape
            out[bits] = beaver.open_bits(ctx, eq)
        return out

    got = mpc.run_local(fn, PARTIES, triples="ot", timeout=300)["alice"]
    for bits, (a, b, low) in cases.items():
        np.testing.assert_array_equal(got[bits], ((a & low) == (b & low)).astype(np.uint64), err_msg=f"{bits}")
        sizes = eq_layout(bits)
        assert sizes.sum() == bits and sizes.max() <= 7 and len(sizes) == max(2, -(-bits // 7))


def test_equal_xor_over_grpc_in_batches(monkeypatch):
    """Several OT batches (batch size shrunk to 128 elements), shape kept, over gRPC."""
    from mpc.ss import millionaire
    from mpc.ss.triples import get_source
    monkeypatch.setattr(millionaire, "_CHUNK", 128)
    rng = np.random.default_rng(12)
    a = rng.integers(0, 2 ** 64, (7, 50), dtype=np.uint64, endpoint=False)
    b = np.where(rng.random((7, 50)) < 0.4, a, rng.integers(0, 2 ** 64, (7, 50), dtype=np.uint64, endpoint=False))

    def fn(ctx):
        src = get_source(ctx)
        return beaver.open_bits(ctx, millionaire.equal_xor(ctx, src._s, src._r, src.prg,
                                                           a if ctx.rank == 0 else b, 60))

    got = mpc.run_local(fn, PARTIES, transport="grpc", triples="ot", timeout=300)["alice"]
    low = np.uint64((1 << 60) - 1)
    np.testing.assert_array_equal(got, ((a & low) == (b & low)).astype(np.uint64))


@pytest.mark.parametrize("source", ["ot", "dealer"])
@pytest.mark.parametrize("bits", [2, 7, 40, 60, 64])
def test_eqz_on_fewer_bits_tests_the_low_bits_only(source, bits):
    """compare.eqz(x, bits): [x == 0 mod 2^bits] for uniform shares, whatever x's high bits."""
    rng = np.random.default_rng(bits)
    low = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(2 ** 64 - 1)
    x = rng.integers(0, 2 ** 64, 300, dtype=np.uint64, endpoint=False)
    x[::3] &= ~low                                             # zero low part, high bits random
    x[1::3] = (x[1::3] & ~low) | (np.uint64(1) << rng.integers(0, bits, 100).astype(np.uint64))
    x[:4] = [0, low, 2 ** 64 - 1, 1 << 63]
    r = PRG(new_seed()).uint64(x.shape)
    shares = {"alice": (x - r,), "bob": (r,)}
    out = mpc.run_local(lambda ctx, sh: beaver.open_arith(ctx, compare.eqz(ctx, sh, bits)), PARTIES,
                        args=shares, timeout=120, **SOURCES[source])
    np.testing.assert_array_equal(out["alice"], ((x & low) == 0).astype(np.uint64))


def test_eqz_rejects_bad_widths():
    def job(ctx):
        for bits in (1, 65):
            with pytest.raises(ValueError, match="bits must be in 2..64"):
                compare.eqz(ctx, np.zeros(3, np.uint64), bits)
        return True

    assert all(mpc.run_local(job, PARTIES, triples="ot", timeout=30).values())
