"""mpc.paillier.packing row layout of private_join: encrypt_rows, mask_rows, decrypt_rows."""

from __future__ import annotations

import numpy as np
import pytest

from mpc.paillier import generate_keypair, packing


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(512, insecure=True)


@pytest.mark.parametrize("width,count", [(1, 7), (2, 5), (3, 4), (1, 0)])
def test_masked_rows_share_the_cells(keys, width, count):
    pk, sk = keys
    rng = np.random.default_rng(width)
    cells = [rng.integers(0, 2**63, count, dtype=np.uint64) * np.uint64(2) + np.uint64(1) for _ in range(width)]
    rows = packing.encrypt_rows(pk, cells)
    assert len(rows) == count
    masked, selector = packing.mask_rows(rows, width)
    per = packing.rows_per_ciphertext(pk, width)
    assert per == max(1, packing.row_slots(pk) // width)
    assert len(masked) == -(-count // per) and masked.fresh
    owner = packing.decrypt_rows(sk, masked, count, width)
    for j in range(width):
        assert owner[j].dtype == selector[j].dtype == np.uint64
        assert np.array_equal(owner[j] + selector[j], cells[j])      # additive shares mod 2^64
        if count:
            assert not np.array_equal(owner[j], cells[j])           # masked


def test_parameters_and_layout(keys):
    pk, _ = keys
    assert (packing.ROW_MASK_BITS, packing.ROW_SLOT_BITS) == (134, 135)
    assert packing.row_slots(pk) == 511 // 135
    assert packing.row_groups(pk, 7) == [range(0, 3), range(3, 6), range(6, 7)]
    big, _ = generate_keypair(2048)
    assert packing.row_slots(big) == 15
    with pytest.raises(ValueError, match="exceed"):
        packing.encrypt_rows(pk, [np.zeros(2, np.uint64)] * 4)


def test_decrypt_rows_checks_key_and_length(keys):
    pk, sk = keys
    other, _ = generate_keypair(512, insecure=True)
    masked, _ = packing.mask_rows(packing.encrypt_rows(other, [np.arange(3, dtype=np.uint64)]), 1)
    with pytest.raises(ValueError, match="malformed"):
        packing.decrypt_rows(sk, masked, 3, 1)
    masked, _ = packing.mask_rows(packing.encrypt_rows(pk, [np.arange(3, dtype=np.uint64)]), 1)
    with pytest.raises(ValueError, match="malformed"):
        packing.decrypt_rows(sk, masked, 7, 1)
