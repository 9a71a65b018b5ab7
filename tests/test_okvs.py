"""mpc.crypto.okvs: the garbled cuckoo table decodes every key to its value, its positions
fall one per third, a 2-core is reported, and a table of uniform values is uniform."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from mpc.crypto import okvs


def _keys(n: int, cells: int) -> np.ndarray:
    return okvs.positions(np.frombuffer(os.urandom(16 * n), np.uint64).reshape(n, 2), cells)


@pytest.mark.parametrize("n, width", [(1, 1), (7, 2), (1000, 3), (200_000, 2)])
def test_every_key_decodes_to_its_value(n, width):
    cells = okvs.num_cells(n)
    for _ in range(16):                     # a retry with new positions, as the OPPRF does
        pos = _keys(n, cells)
        values = np.frombuffer(os.urandom(8 * n * width), np.uint64).reshape(n, width)
        try:
            table = okvs.encode(pos, values, cells)
            break
        except okvs.OkvsError:
            continue
    assert table.shape == (cells, width) and table.dtype == np.uint64
    assert (okvs.decode(table, pos) == values).all()
    third = cells // 3
    for j in range(3):
        assert ((pos[:, j] >= j * third) & (pos[:, j] < (j + 1) * third)).all()


def test_a_two_core_is_reported():
    pos = np.array([[0, 3, 6], [0, 3, 6], [1, 4, 7]])
    with pytest.raises(okvs.OkvsError, match="2 of 3 keys"):
        okvs.encode(pos, np.zeros((3, 1), np.uint64), 9)


def test_uniform_values_give_a_uniform_table():
    n = 50_000
    cells = okvs.num_cells(n)
    values = np.frombuffer(os.urandom(8 * n), np.uint64).reshape(n, 1)
    table = okvs.encode(_keys(n, cells), values, cells).ravel()
    bits = ((table[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).mean(axis=0)
    assert np.abs(bits - 0.5).max() < 6 / math.sqrt(len(table))
    # all-zero values too: the pivots are minus sums of uniform free cells
    table = okvs.encode(_keys(n, cells), np.zeros((n, 1), np.uint64), cells).ravel()
    bits = ((table[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).mean(axis=0)
    assert np.abs(bits - 0.5).max() < 6 / math.sqrt(len(table))
