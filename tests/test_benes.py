"""Benes routing (mpc.ss.benes): the control bits route every permutation, checked by
evaluating the network in the clear against numpy's scatter."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.ss import benes


def _scatter(dest, x):
    out = np.empty_like(x)
    np.put_along_axis(out, dest, x, axis=-1)
    return out


def test_every_permutation_of_eight_wires_is_routed():
    perms = np.array(list(itertools.permutations(range(8))))      # 40320 rows at once
    bits = benes.route(perms)
    assert len(bits) == benes.layers(8) == 5 and all(b.shape == (len(perms), 4) for b in bits)
    x = np.tile(np.arange(8), (len(perms), 1))
    assert np.array_equal(benes.evaluate(bits, x), _scatter(perms, x))


@pytest.mark.parametrize("n", [2, 4, 16, 256, 1 << 12])
def test_random_permutations_rows_at_once(n):
    rng = np.random.default_rng(n)
    dest = np.stack([rng.permutation(n) for _ in range(5)])
    bits = benes.route(dest)
    x = rng.integers(0, 1 << 62, (5, n)).astype(np.uint64)
    assert np.array_equal(benes.evaluate(bits, x), _scatter(dest, x))


def test_one_network_carries_many_rows():
    """Bits of one row (1, n/2) broadcast over all rows: one permutation of a table."""
    rng = np.random.default_rng(1)
    dest = rng.permutation(64)[None]
    x = rng.integers(0, 100, (4, 64))
    assert np.array_equal(benes.evaluate(benes.route(dest), x), x[:, np.argsort(dest[0])])


def test_identity_and_reversal():
    n = 1024
    for dest in (np.arange(n), np.arange(n)[::-1].copy()):
        x = np.arange(n)[None]
        assert np.array_equal(benes.evaluate(benes.route(dest[None]), x), _scatter(dest[None], x))


def test_sizes():
    assert [benes.padded_size(n) for n in (0, 1, 2, 3, 5, 1024, 1025)] == [2, 2, 2, 4, 8, 1024, 2048]
    with pytest.raises(ValueError, match="power-of-two"):
        benes.route(np.zeros((1, 6), np.int64))
    with pytest.raises(ValueError, match="rows, n"):
        benes.route(np.arange(4))


def _check_arbitrary(n, dest_real):
    """Route n real wires in the padded layout; check the permutation and that every switch
    that is not real has its public state, so only real switches need an OT."""
    width = benes.padded_size(n)
    rows = len(dest_real)
    dest = np.concatenate([dest_real, np.tile(np.arange(n, width), (rows, 1))], axis=1)
    bits = benes.route(dest, n)
    x = np.tile(np.arange(width), (rows, 1))
    assert np.array_equal(benes.evaluate(bits, x), _scatter(dest, x))
    for b, real, fixed in zip(bits, benes.real_switches(n, width), benes.fixed_bits(n, width), strict=True):
        assert np.array_equal(b[:, ~real], np.broadcast_to(fixed[~real], (rows, int((~real).sum()))))
        assert not fixed[real].any()


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_every_permutation_of_n_wires_arbitrary_size(n):
    _check_arbitrary(n, np.array(list(itertools.permutations(range(n)))))


@pytest.mark.parametrize("n", [9, 11, 13, 17, 31, 33, 63, 65, 99, 127, 129, 255, 257, 1000, 1023, 1025, 3001])
def test_random_permutations_arbitrary_size(n):
    rng = np.random.default_rng(n)
    _check_arbitrary(n, np.stack([rng.permutation(n) for _ in range(6)]))


def _switches(n):
    """The recursion of the arbitrary-size network (Chang-Melhem 1997): floor(n/2) input and
    output switches, sub-networks of floor(n/2) and ceil(n/2) wires."""
    if n < 2:
        return 0
    if n == 2:
        return 1
    return 2 * (n // 2) + _switches(n // 2) + _switches(n - n // 2)


def test_switch_count_is_the_arbitrary_size_recursion():
    for n in list(range(0, 70)) + [1000, 1025, 348651, int(1.33 * 2 ** 20)]:
        assert benes.switch_count(n) == _switches(n)
    for k in range(1, 12):
        assert benes.switch_count(1 << k) == (2 * k - 1) << (k - 1)     # the Benes network
    n = int(1.33 * 2 ** 20)
    assert benes.switch_count(n) < 0.65 * benes.layers(benes.padded_size(n)) * benes.padded_size(n) // 2
    with pytest.raises(ValueError, match="do not fit"):
        benes.route(np.arange(4)[None], 5)


def _orbit_min_walk(g, key):
    """The smallest key on every orbit of g, by walking each cycle (the plain definition)."""
    label = np.full(len(g), -1, dtype=np.int64)
    for start in range(len(g)):
        if label[start] >= 0:
            continue
        cycle, i = [start], int(g[start])
        while i != start:
            cycle.append(i)
            i = int(g[i])
        label[cycle] = key[cycle].min()
    return label


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 3000), st.integers(1, 40), st.integers(0, 2 ** 32 - 1))
def test_orbit_min_is_the_smallest_key_of_every_cycle(size, cycle, seed):
    """Both paths of orbit_min (pointer jumping; the ruling set from 4 * _RULER wires and
    orbits over _JUMP): random permutations (long cycles), and products of short cycles of
    up to ``cycle`` wires in random places (orbits that hold no ruler), random distinct keys."""
    rng = np.random.default_rng(seed)
    key = rng.permutation(size * 3)[:size].astype(np.int32) - size
    g = rng.permutation(size).astype(np.int32)
    short = np.arange(size, dtype=np.int32)
    places, start = rng.permutation(size), 0
    while start < size:                                  # cycles of 1..cycle wires
        c = places[start:start + int(rng.integers(1, cycle + 1))]
        short[c] = np.roll(c, 1)
        start += len(c)
    for perm in (g, short):
        expect = _orbit_min_walk(perm, key)
        assert np.array_equal(benes.orbit_min(perm, key), expect)
        if size:
            assert np.array_equal(benes.orbit_min(perm, key, size), expect)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 3), st.integers(0, 2 ** 32 - 1))
def test_route_realises_random_permutations_of_any_size(n, rows, seed):
    """Any n (tiny, powers of two and not), several rows at once: the network applies exactly
    each row's permutation, and every switch that is not real has its public state."""
    rng = np.random.default_rng(seed)
    _check_arbitrary(n, np.stack([rng.permutation(n) for _ in range(rows)]))
