"""Benes routing (mpc.ss.benes): the control bits route every permutation, checked by
evaluating the network in the clear against numpy's scatter."""

import itertools

import numpy as np
import pytest

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
