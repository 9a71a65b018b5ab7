"""mpc.ss.ot_corrections: the low bytes of correlated-OT corrections, and the one message per
batch and direction ([corrections, next U]) that OtSource's cross products send."""

import numpy as np
import pytest

from mpc.runtime.errors import ProtocolViolation
from mpc.runtime.views import flatten, record_views
from mpc.ss import ot_corrections, ot_triples
from mpc.ss.triples import get_source

RNG = np.random.default_rng(17)


def _low(values: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
    """numpy reference: each word at position p masked to its low nbytes[p] bytes."""
    bits = np.asarray(nbytes, dtype=np.uint64) * np.uint64(8)
    mask = np.where(bits >= 64, np.uint64(2**64 - 1), (np.uint64(1) << (bits % np.uint64(64))) - np.uint64(1))
    return values & mask.reshape(1, -1, 1)


def test_widths_are_whole_bytes_of_the_bits_that_matter():
    got = ot_corrections.widths(np.arange(70))
    want = [max(0, -(-(64 - s) // 8)) for s in range(70)]
    assert got.tolist() == want
    assert int(got[:64].sum()) == 288                       # bytes per 64-bit Gilboa product


@pytest.mark.parametrize("width", range(9))
def test_round_trip_at_every_width(width):
    """Every width 0..8 bytes, alone and mixed with others, several (A, P, B) shapes: what
    arrives is exactly the low bytes of what was packed, the rest 0."""
    for a, b in ((1, 1), (5, 3), (257, 1)):
        for nbytes in (np.full(4, width), np.array([8, width, 1, width, width, 3])):
            values = RNG.integers(0, 2**64, (a, len(nbytes), b), dtype=np.uint64)
            data = ot_corrections.pack(values, nbytes)
            assert data.dtype == np.uint8 and data.shape == (ot_corrections.packed_size(a, b, nbytes),)
            assert data.size == a * b * int(nbytes.sum())
            back = ot_corrections.unpack("bob", data, a, b, nbytes, "test corrections")
            np.testing.assert_array_equal(back, _low(values, nbytes))


def test_gilboa_weights_make_the_dropped_bytes_irrelevant():
    """sum_l 2^l tau_l from the unpacked bytes equals the one from whole words (mod 2^64)."""
    shifts = np.arange(64)
    nbytes = ot_corrections.widths(shifts)
    tau = RNG.integers(0, 2**64, (300, 64, 2), dtype=np.uint64)
    back = ot_corrections.unpack("bob", ot_corrections.pack(tau, nbytes), 300, 2, nbytes, "test")
    w = shifts.astype(np.uint64).reshape(1, 64, 1)
    np.testing.assert_array_equal(np.sum(back << w, axis=1, dtype=np.uint64),
                                  np.sum(tau << w, axis=1, dtype=np.uint64))


def test_malformed_corrections_name_the_peer():
    nbytes = ot_corrections.widths(np.arange(64))
    good = ot_corrections.pack(np.zeros((2, 64, 1), np.uint64), nbytes)
    for bad in (good[:-1], good.view(np.uint16), [good], b"\x00" * good.size):
        with pytest.raises(ProtocolViolation, match="bob"):
            ot_corrections.unpack("bob", bad, 2, 1, nbytes, "test corrections")


def test_one_message_per_batch_and_direction():
    """Over several IKNP batches each party receives U_0 alone, then [tau_k, U_k+1] for
    every batch but the last, then the last tau alone: one message per batch; and the
    product is right."""
    per = ot_triples._CHUNK_OTS // 64
    n = 2 * per + 5                                       # three batches, the last one short
    x, y, x0, y0 = (RNG.integers(0, 2**64, n, dtype=np.uint64) for _ in range(4))
    shares = {"alice": (x0, y0), "bob": (x - x0, y - y0)}
    out, views = record_views(lambda ctx, a, b: get_source(ctx).mul(a, b), ["alice", "bob"],
                              args=shares, triples="ot")
    np.testing.assert_array_equal(out["alice"] + out["bob"], x * y)
    sizes = [per, per, 5]
    for party in views:
        ot_msgs = [v for _, v in views[party]][-(len(sizes) + 1):]
        u0, *middle, last = ot_msgs
        assert isinstance(u0, np.ndarray) and u0.shape == (64, 64 * per // 8)
        for k, msg in enumerate(middle):
            tau, u = msg
            assert tau.shape == (288 * sizes[k],) and tau.dtype == np.uint8
            assert u.shape == (64, -(-64 * sizes[k + 1] // 128) * 128 // 8) and u.dtype == np.uint8
        assert isinstance(last, np.ndarray) and last.shape == (288 * sizes[-1],)
        assert all(v.dtype == np.uint8 for v in flatten(views[party][-(len(sizes) + 1):]))


@pytest.mark.parametrize("width", range(5))
def test_uint32_round_trip_and_into_a_slice(width):
    """uint32 values (widths up to 4) and uint64 ones packed into slices of one message:
    each part unpacks to its low bytes; a width beyond the dtype is refused."""
    nb32, nb64 = np.array([4, width, 3, width]), np.array([8, 5, width])
    v32 = RNG.integers(0, 2**32, (3, 4, 5), dtype=np.uint32)
    v64 = RNG.integers(0, 2**64, (3, 3, 5), dtype=np.uint64)
    split = ot_corrections.packed_size(3, 5, nb64)
    msg = np.empty(split + ot_corrections.packed_size(3, 5, nb32), np.uint8)
    ot_corrections.pack(v64, nb64, out=msg[:split])
    ot_corrections.pack(v32, nb32, out=msg[split:])
    np.testing.assert_array_equal(ot_corrections.unpack("bob", msg[:split], 3, 5, nb64, "t"), _low(v64, nb64))
    back = ot_corrections.unpack("bob", msg[split:], 3, 5, nb32, "t", np.uint32)
    assert back.dtype == np.uint32
    np.testing.assert_array_equal(back.astype(np.uint64), _low(v32.astype(np.uint64), nb32))
    with pytest.raises(ValueError):
        ot_corrections.pack(v32, np.array([5, 1, 1, 1]))


def test_pieces_describe_the_packed_layout():
    """pieces(): reading each piece in place (UINT[size] at its offset) and shifting it by
    8 off rebuilds the low bytes, as the Gram matrix's receiver does without unpacking."""
    nbytes = np.array([8, 7, 7, 6, 5, 3, 1])
    values = RNG.integers(0, 2**64, (3, len(nbytes), 4), dtype=np.uint64)
    data = ot_corrections.pack(values, nbytes)
    back, pos = np.zeros_like(values), 0
    for s, e, off, size in ot_corrections.pieces(nbytes):
        n = 3 * (e - s) * 4 * size
        piece = data[pos:pos + n].view(ot_corrections.UINT[size]).reshape(3, e - s, 4)
        back[:, s:e] += piece.astype(np.uint64) << np.uint64(8 * off)
        pos += n
    assert pos == data.size
    np.testing.assert_array_equal(back, _low(values, nbytes))
