"""OT engine: base OT, IKNP (random / chosen / correlated), KKRT, transpose, wire checks, views."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mpc
import mpc.ot
from mpc.ot import IknpReceiver, IknpSender, KkrtReceiver, KkrtSender, base, bits, random_bits
from mpc.ot.bits import transpose
from mpc.ot.hashing import tccr, wide_hash
from mpc.runtime.errors import JobFailed
from mpc.runtime.views import flatten, record_views

PARTIES = ["alice", "bob"]


def run(fn, **args):
    return mpc.run_local(fn, PARTIES, args={p: (args.get(p),) for p in PARTIES}, triples=None)


def naive_transpose(m: np.ndarray) -> np.ndarray:
    bits = np.unpackbits(m, axis=1, bitorder="little")
    return np.packbits(bits.T, axis=1, bitorder="little")


@pytest.mark.parametrize("shape", [(64, 8), (128, 64), (128, 8), (128, 16 * 600), (128, 16 * 1100), (192, 24),
                                   (640, 16), (4096, 8), (64, 4096), (4096, 512), (2112, 528)])
def test_transpose_matches_naive(shape):
    m = np.frombuffer(os.urandom(shape[0] * shape[1]), dtype=np.uint8).reshape(shape)
    before = m.copy()
    out = transpose(m)
    assert out.shape == (8 * shape[1], shape[0] // 8)
    assert np.array_equal(out, naive_transpose(m))
    assert np.array_equal(m, before)            # the input is left alone
    assert np.array_equal(transpose(out), m)


# (row blocks, word columns) of 64: IKNP's 128 x many, many x 128, KKRT's 512 x many and
# many x 512, square, tiny and empty, and rows of more than 2048 bits.
_BLOCK_SHAPES = st.one_of(
    st.tuples(st.just(2), st.integers(0, 40)), st.tuples(st.integers(0, 40), st.just(2)),
    st.tuples(st.just(8), st.integers(1, 12)), st.tuples(st.integers(1, 40), st.just(8)),
    st.tuples(st.integers(0, 9), st.integers(0, 9)), st.tuples(st.integers(30, 40), st.integers(40, 48)))


@settings(max_examples=60, deadline=None)
@given(_BLOCK_SHAPES, st.sampled_from([1, 2, 3, 5, 16, bits._TILE_BLOCKS]), st.binary(min_size=16, max_size=16))
def test_transpose_property(blocks, tile, seed):
    """transpose equals unpackbits / .T / packbits for any shape of 64-multiples, with tiles
    of any size (so the partial tiles, the tiles cutting the short axis and the several
    tiles on the thread pool all run), and is its own inverse."""
    rb, cb = blocks
    m = np.random.default_rng(list(seed)).integers(0, 256, (64 * rb, 8 * cb), dtype=np.uint8)
    saved = bits._TILE_BLOCKS, bits._POOL_MIN_WORKERS
    bits._TILE_BLOCKS = tile
    try:
        out = transpose(m)
        bits._POOL_MIN_WORKERS = 1                  # the pool path, whatever the machine
        assert np.array_equal(transpose(m), out)
        back = transpose(out)
    finally:
        bits._TILE_BLOCKS, bits._POOL_MIN_WORKERS = saved
    assert out.shape == (64 * cb, 8 * rb) and out.dtype == np.uint8
    assert np.array_equal(out, naive_transpose(m))
    assert np.array_equal(back, m)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 40), st.sampled_from([1, 2, 3, bits._TILE_BLOCKS]), st.binary(min_size=16, max_size=16))
def test_transpose_sigma_is_sigma_of_the_rows(cb, tile, seed):
    """transpose(m, sigma=True) of a 128-row matrix gives sigma(a || b) = (a xor b) || a of
    every output row (whole tiles, cut tiles, the pool, fewer than 128 columns), so
    ccr_sigma of it and ccr_pair(presigma) are ccr's bits; other row counts are refused."""
    from mpc.ot.hashing import ccr, ccr_pair, ccr_sigma
    m = np.random.default_rng(list(seed)).integers(0, 256, (128, 8 * cb), dtype=np.uint8)
    saved = bits._TILE_BLOCKS
    bits._TILE_BLOCKS = tile
    try:
        got = transpose(m, sigma=True)
    finally:
        bits._TILE_BLOCKS = saved
    rows = np.ascontiguousarray(naive_transpose(m)).view(np.uint64).reshape(-1, 2)
    want = np.stack([rows[:, 0] ^ rows[:, 1], rows[:, 0]], axis=1)
    assert got.shape == (64 * cb, 16) and np.array_equal(got.view(np.uint64).reshape(-1, 2), want)
    x = np.ascontiguousarray(naive_transpose(m))
    assert np.array_equal(ccr_sigma(got), ccr(x))
    delta = np.frombuffer(os.urandom(16), np.uint8)
    for pair in (ccr_pair(got, delta, presigma=True), ccr_pair(x, delta)):
        assert np.array_equal(pair[0].view(np.uint8).reshape(-1, 16), ccr(x))
        assert np.array_equal(pair[1].view(np.uint8).reshape(-1, 16), ccr(x ^ delta))
    with pytest.raises(ValueError):
        transpose(np.zeros((64, 16), np.uint8), sigma=True)


def test_transpose_non_contiguous_input():
    """A strided view (a column slice) transposes like its contiguous copy."""
    m = np.frombuffer(os.urandom(256 * 48), dtype=np.uint8).reshape(256, 48)[:, 8:40]
    assert np.array_equal(transpose(m), naive_transpose(np.ascontiguousarray(m)))


def test_transpose_refuses_bad_shapes():
    with pytest.raises(ValueError):
        transpose(np.zeros((65, 8), dtype=np.uint8))
    with pytest.raises(TypeError):
        transpose(np.zeros((64, 1), dtype=np.uint64))


def test_aes_backends_match_pyca():
    """mpc.ot.aes (OpenSSL through ctypes where available) computes pyca's AES-ECB, and its
    CTR streams continue exactly as mpc.crypto.random.PRG's across calls of any size."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from mpc.crypto.random import PRG
    from mpc.ot import aes
    from mpc.ot.hashing import FIXED_KEY, ccr_words

    key = os.urandom(16)
    x = np.frombuffer(os.urandom(16 * 1000), dtype=np.uint8).reshape(1000, 16)
    want = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(x.tobytes())
    assert aes.Ecb(key).encrypt(x, np.empty_like(x)).tobytes() == want
    stream, prg = aes.CtrStream(key), PRG(key)
    for n in (16, 5, 27, 4096, 0, 48):
        assert stream.fill(np.empty(n, np.uint8)).tobytes() == prg.bytes(n)
    keys = [os.urandom(16) for _ in range(128)]
    rows = aes.fill_rows([aes.CtrStream(k) for k in keys], np.empty((128, 64), np.uint8))
    assert all(rows[j].tobytes() == PRG(k).bytes(64) for j, k in enumerate(keys))
    long = aes._SHORT_CALL + 16        # rows long enough for the GIL-releasing call
    rows = aes.fill_rows([aes.CtrStream(k) for k in keys[:2]], np.empty((2, long), np.uint8))
    assert all(rows[j].tobytes() == PRG(k).bytes(long) for j, k in enumerate(keys[:2]))
    with pytest.raises(TypeError):
        aes.Ecb(key).encrypt(x[:, :8], np.empty((1000, 8), np.uint8))   # not contiguous
    with pytest.raises(ValueError):
        aes.Ecb(key).encrypt(x, np.empty(16, np.uint8))                  # output too small
    # ccr_words: the low 64 bits of pi(sigma(x)) xor sigma(x), sigma(a || b) = (a xor b) || a
    lanes = x.view(np.uint64).reshape(1000, 2)
    sig = np.stack([lanes[:, 0] ^ lanes[:, 1], lanes[:, 0]], axis=1)
    pi = np.frombuffer(Cipher(algorithms.AES(FIXED_KEY), modes.ECB()).encryptor().update(sig.tobytes()),
                       dtype=np.uint64).reshape(1000, 2)
    assert np.array_equal(ccr_words(x), pi[:, 0] ^ sig[:, 0])


def test_hashes_are_tweaked_and_deterministic():
    x = np.frombuffer(os.urandom(16 * 100), dtype=np.uint8).reshape(100, 16)
    assert np.array_equal(tccr(x, 5), tccr(x, 5))
    assert not np.any(np.all(tccr(x, 5) == tccr(x, 6), axis=1))
    w = np.frombuffer(os.urandom(64 * 100), dtype=np.uint8).reshape(100, 64)
    w2 = w.copy()
    w2[:, 63] ^= 1                               # the last block changes every output
    assert not np.any(np.all(wide_hash(w, 0) == wide_hash(w2, 0), axis=1))


def test_base_ot():
    choices = random_bits(128)

    def job(ctx, c):
        if ctx.party == "alice":
            return base.send_random(ctx, "bob", 128)
        return base.receive_random(ctx, "alice", c)

    out = run(job, bob=choices)
    k0, k1 = out["alice"]
    k = out["bob"]
    assert np.array_equal(k, np.where(choices[:, None], k1, k0))
    assert not np.any(np.all(k == np.where(choices[:, None], k0, k1), axis=1))


@pytest.mark.parametrize("m", [1, 127, 1000])
def test_iknp_random_chosen_correlated(m):
    choices = random_bits(m)
    x = np.frombuffer(os.urandom(8 * m * 3), dtype=np.uint64).reshape(m, 3)
    c0 = np.frombuffer(os.urandom(m * 20), dtype=np.uint8).reshape(m, 20)
    c1 = np.frombuffer(os.urandom(m * 20), dtype=np.uint8).reshape(m, 20)

    def job(ctx, c):
        if ctx.party == "alice":
            s = IknpSender(ctx, "bob")
            pair = s.random(m)
            s.chosen(c0, c1)
            return pair, s.correlated(x), s.correlated(x[:, 0])
        r = IknpReceiver(ctx, "alice")
        return r.random(c), r.chosen(c, 20), r.correlated(c, 3), r.correlated(c)

    out = run(job, bob=choices)
    (m0, m1), a, a1 = out["alice"]
    mc, chosen, b, b1 = out["bob"]
    assert np.array_equal(mc, np.where(choices[:, None], m1, m0))
    assert not np.any(np.all(mc == np.where(choices[:, None], m0, m1), axis=1))
    assert np.array_equal(chosen, np.where(choices[:, None], c1, c0))
    assert np.array_equal(b, a + x * choices[:, None].astype(np.uint64))
    assert b1.shape == (m,) and np.array_equal(b1, a1 + x[:, 0] * choices.astype(np.uint64))


def test_kkrt_outputs_match_only_the_chosen_input():
    m = 700
    r = np.frombuffer(os.urandom(16 * m), dtype=np.uint8).reshape(m, 16)

    def job(ctx, inputs):
        if ctx.party == "alice":
            k = KkrtSender(ctx, "bob")
            q, first = k.receive(m)
            idx = np.arange(first, first + m, dtype=np.uint64)
            other = r.copy()
            other[:, 0] ^= 1
            return k.evaluate(q, idx, r), k.evaluate(q, idx, other), k.evaluate(q, idx + np.uint64(1), r)
        k = KkrtReceiver(ctx, "alice")
        out, first = k.evaluate(inputs)
        out2, first2 = k.evaluate(inputs[:10])   # a second batch continues the session
        assert first == 0 and first2 == 768   # batches are padded to 128
        return out

    out = run(job, bob=r)
    same, other, shifted = out["alice"]
    mine = out["bob"]
    assert np.array_equal(same, mine)
    assert not np.any(np.all(other == mine, axis=1))
    assert not np.any(np.all(shifted == mine, axis=1))     # the instance index matters


def test_malformed_extension_matrix_names_the_peer():
    def job(ctx, _):
        if ctx.party == "alice":
            IknpSender(ctx, "bob").random(256)
            return None
        IknpReceiver(ctx, "alice")
        ctx.send("alice", np.zeros((128, 3), dtype=np.uint8))   # wrong width
        return None

    with pytest.raises(JobFailed, match="party 'bob' sent an array uint8 \\(128, 3\\)"):
        run(job)


def test_softspoken_setup_punctures_one_leaf_per_column_pair():
    """The extension sender rebuilds, for each column pair with Delta bits (d0, d1), exactly
    the three GGM leaves other than (d0, d1), in the order A, B, C that extend() combines."""
    from mpc.ot import extension

    def job(ctx, _):
        if ctx.party == "alice":
            bits = random_bits(128)
            keys = base.receive_random(ctx, "bob", bits)
            return bits, extension._punctured_seeds(ctx, "bob", bits, keys)
        k0, k1 = base.send_random(ctx, "alice", 128)
        return extension._puncturable_seeds(ctx, "alice", k0, k1)

    out = run(job)
    (bits, known), leaves = out["alice"], out["bob"]
    assert len(known) == 3 * 64 and len(leaves) == 4 * 64 and len(set(leaves)) == 256
    for c in range(64):
        d0, d1 = int(bits[2 * c]), int(bits[2 * c + 1])
        four, mine = leaves[4 * c:4 * c + 4], known[3 * c:3 * c + 3]
        assert four[d0 + 2 * d1] not in known
        assert mine == [four[(1 - d0) + 2 * d1], four[(1 - d0) + 2 * (1 - d1)], four[d0 + 2 * (1 - d1)]]


def test_base_ot_refuses_a_small_order_point():
    def job(ctx, _):
        if ctx.party == "alice":
            ctx.send("bob", np.zeros((1, 32), dtype=np.uint8) + np.eye(1, 32, dtype=np.uint8))  # identity
            return None
        return base.receive_random(ctx, "alice", random_bits(4))

    with pytest.raises(JobFailed, match="prime-order subgroup"):
        run(job)


def test_sender_view_is_independent_of_choice_bits():
    """The extension sender's view (base-OT points, matrix U) has the same shapes and looks
    uniform whatever the receiver chooses: all-zero and all-one choices give balanced bits."""
    m = 4096

    def job(ctx, c):
        if ctx.party == "alice":
            IknpSender(ctx, "bob").random(m)
            return None
        return IknpReceiver(ctx, "alice").random(c)

    views = []
    for choices in (np.zeros(m, dtype=bool), np.ones(m, dtype=bool)):
        _, v = record_views(job, PARTIES, args={"alice": (None,), "bob": (choices,)}, triples=None)
        views.append(flatten(v["alice"]))
    shapes = [[(a.dtype, a.shape) for a in view] for view in views]
    assert shapes[0] == shapes[1]
    for view in views:
        u = view[-1]
        ones = np.unpackbits(u).mean()
        assert abs(ones - 0.5) < 0.005                 # 2^19 bits: 7 sigma
        # no column of U equals the choice vector or its complement
        col_bits = np.unpackbits(u, axis=1, bitorder="little")
        assert np.all(np.abs(col_bits.mean(axis=1) - 0.5) < 0.05)


def test_session_is_kept_per_job_and_role():
    choices = random_bits(300)

    def job(ctx, c):
        if ctx.party == "alice":
            s = mpc.ot.session(ctx, "bob", "sender")
            assert mpc.ot.session(ctx, "bob", "sender") is s
            first = s.random(300)
            return first, mpc.ot.session(ctx, "bob", "sender").random(300)
        r = mpc.ot.session(ctx, "alice", "receiver")
        return r.random(c), mpc.ot.session(ctx, "alice", "receiver").random(c)

    out = run(job, bob=choices)
    for (m0, m1), mc in zip(out["alice"], out["bob"], strict=True):
        assert np.array_equal(mc, np.where(choices[:, None], m1, m0))
    assert not np.array_equal(out["alice"][0][0], out["alice"][1][0])   # fresh OTs each batch


def test_tccr_multi_is_tccr_per_tweak_and_wide_pads_unchanged():
    """The multi-tweak hash (pi(x) once) equals separate tccr calls, so _pad's wide OT pads
    (k blocks with tweaks i | k << 56) are the same bytes as before."""
    from mpc.ot.extension import _pad
    from mpc.ot.hashing import tccr_multi
    x = np.frombuffer(os.urandom(16 * 1000), np.uint8).reshape(1000, 16)
    tweaks = [np.arange(1000, dtype=np.uint64) | (np.uint64(k) << np.uint64(56)) for k in range(3)]
    want = np.concatenate([tccr(x, t) for t in tweaks], axis=1)
    assert np.array_equal(tccr_multi(x, tweaks), want)
    assert np.array_equal(_pad(x, 0, 40), want[:, :40])
    from mpc.ot.extension import pad_words
    from mpc.ot.hashing import ccr, ccr_words
    assert np.array_equal(_pad(x, 7, 16), ccr(x))              # one block: the untweaked CCR hash
    assert np.array_equal(ccr(x).view(np.uint64)[:, 0], ccr_words(x))
    assert np.array_equal(pad_words(x, 7, 2), ccr(x).view(np.uint64).T)
    assert np.array_equal(pad_words(x, 0, 5), _pad(x, 0, 40).view(np.uint64).T)


@pytest.mark.parametrize("words", [1, 2, 3, 5, 8])
def test_pad_words_is_pad_word_major(words):
    from mpc.ot.extension import _pad, pad_words
    x = np.frombuffer(os.urandom(16 * 777), np.uint8).reshape(777, 16)
    want = np.ascontiguousarray(_pad(x, 12345, 8 * words)).view(np.uint64).T
    got = pad_words(x, 12345, words)
    assert got.flags.c_contiguous and got.shape == (words, 777) and np.array_equal(got, want)


def _word_major_reference(x, tweaks, words):
    """The definition tccr_word_major pins: tccr_multi's rows (tccr per tweak, side by
    side), 64-bit words, word-major."""
    from mpc.ot.hashing import tccr_multi
    rows = np.concatenate([tccr(x, t) for t in tweaks], axis=1) if len(x) else np.zeros((0, 16 * len(tweaks)), np.uint8)
    assert np.array_equal(tccr_multi(x, tweaks), rows)
    return np.ascontiguousarray(rows.view(np.uint64).T[:words])


@pytest.mark.parametrize("n", [0, 1, 5, (1 << 15) - 1, (1 << 15) + 3, 70001])
def test_tccr_word_major_is_tccr_multi_word_major(n):
    """The tiled word-major hash (and its indexed form, the wide OT pads' tweaks
    idx | k << 56, used by pad_words) equals tccr_multi word by word, for every width,
    across tile boundaries and at the top of the 2^56 index range."""
    from mpc.ot import hashing
    from mpc.ot.hashing import tccr_indexed_word_major, tccr_word_major
    assert hashing._TILE_ROWS == 1 << 15
    x = np.frombuffer(os.urandom(16 * n), np.uint8).reshape(n, 16)
    for first in (0, 12345, (1 << 56) - n):
        tweaks = [np.arange(first, first + n, dtype=np.uint64) | (np.uint64(k) << np.uint64(56)) for k in range(4)]
        for words in range(0, 9):
            want = _word_major_reference(x, tweaks, words)
            for got in (tccr_word_major(x, tweaks, words), tccr_indexed_word_major(x, first, words)):
                assert got.flags.c_contiguous and got.shape == want.shape and np.array_equal(got, want)
    scalar = tccr_word_major(x, [np.uint64(7), np.uint64(9)], 3)       # broadcast tweaks
    assert np.array_equal(scalar, _word_major_reference(x, [np.full(n, 7, np.uint64), np.full(n, 9, np.uint64)], 3))
    with pytest.raises(ValueError):
        tccr_indexed_word_major(np.zeros((2, 16), np.uint8), (1 << 56) - 1, 3)
    from mpc.ot.hashing import ccr, ccr_word_major
    for words in range(0, 4):                      # the one-block pads: ccr's words
        want = np.ascontiguousarray(ccr(x).view(np.uint64).T[:words])
        got = ccr_word_major(x, words)
        assert got.flags.c_contiguous and got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize("n", [0, 1, 5, (1 << 15) + 3])
def test_ccr_blocks_are_ccr_of_the_row_xor_block_index(n):
    """ccr_blocks_word_major's block b is ccr(x xor c_b), c_b the block with high lane b
    (block 0: ccr itself, so its uint32 words are ccr_word_major's halves), word-major in
    uint64 or uint32, across tile boundaries; with delta, the pads of x and of x xor delta."""
    from mpc.ot.hashing import ccr, ccr_blocks_word_major, ccr_word_major
    x = np.frombuffer(os.urandom(16 * n), np.uint8).reshape(n, 16)
    delta = np.frombuffer(os.urandom(16), np.uint8)

    def c(b):
        return np.frombuffer(np.array([0, b], np.uint64).tobytes(), np.uint8)
    rows = np.concatenate([ccr(x ^ c(b)) for b in range(3)], axis=1) if n else np.zeros((0, 48), np.uint8)
    for dtype in (np.uint64, np.uint32):
        words = rows.view(dtype)
        for w in range(0, words.shape[1] + 1):
            want = np.ascontiguousarray(words.T[:w])
            got = ccr_blocks_word_major(x, w, dtype)
            assert got.flags.c_contiguous and got.dtype == dtype and np.array_equal(got, want)
            p0, p1 = ccr_blocks_word_major(x, w, dtype, delta)
            assert np.array_equal(p0, want) and np.array_equal(p1, ccr_blocks_word_major(x ^ delta, w, dtype))
    assert np.array_equal(ccr_blocks_word_major(x, 2), ccr_word_major(x, 2))
    halves = ccr_word_major(x, 2).T.reshape(-1).view(np.uint32)
    assert np.array_equal(ccr_blocks_word_major(x, 4, np.uint32).T.reshape(-1), halves)
