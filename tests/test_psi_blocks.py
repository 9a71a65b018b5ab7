"""protocols.psi.blocks: the distinct-row sort's fast paths (one word constant, few ties,
a shared first word) give exactly the rows and map of a plain lexicographic unique, on
ints (sorted, shuffled, negative, beyond 2^64 and 2^119), strings (ASCII, non-ASCII, long,
common prefixes) and bytes with duplicates; prepare_rows keeps input order."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.psi.blocks import distinct, prepare_blocks, prepare_rows

RNG = np.random.default_rng(5)           # test data only


def reference(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The general path: distinct rows by a lexicographic row unique (word 0, then word 1)."""
    rows, inverse = np.unique(words, axis=0, return_inverse=True)
    return rows, inverse.ravel()


def check(items) -> None:
    prepared = prepare_blocks(items)
    words = prepared.digests.view(np.uint64)[prepared.inverse]           # every row's block
    rows, inverse = reference(words)
    assert np.array_equal(prepared.digests.view(np.uint64), rows)
    assert np.array_equal(prepared.inverse, inverse)
    assert len({tuple(r) for r in words.tolist()}) == len(rows)
    # the blocks are the items': equal blocks exactly for equal items
    values = items.tolist() if isinstance(items, np.ndarray) else list(items)
    first = {}
    for v, i in zip(values, prepared.inverse.tolist(), strict=True):
        assert first.setdefault(v, i) == i
    assert len(first) == len(rows)


def with_repeats(values: list) -> list:
    picks = RNG.integers(0, len(values), len(values) // 3)
    out = values + [values[i] for i in picks.tolist()]
    return [out[i] for i in RNG.permutation(len(out)).tolist()]


INTS = {
    "sorted": list(range(5000)),
    "shuffled": RNG.permutation(5000).tolist(),
    "negative": (RNG.permutation(6000) - 3000).tolist(),
    "wide": RNG.integers(-2**63, 2**63 - 1, 3000, dtype=np.int64).tolist(),
    "uint64": [2**64 - 1 - i for i in range(0, 3000, 3)] + list(range(100)),
    "big": [(1 << 64) + i for i in range(500)] + [-(1 << 70) - i for i in range(500)] + list(range(-50, 50)),
    "huge": [(1 << 119) + i for i in range(300)] + [-(1 << 119) - 1 - i for i in range(300)]
            + [(1 << 119) - 1 - i for i in range(300)] + [7, -7],
}


@pytest.mark.parametrize("case", sorted(INTS))
def test_ints_with_duplicates_match_the_general_path(case):
    values = with_repeats(INTS[case])
    check(values)
    if case in ("sorted", "shuffled", "negative", "wide"):
        check(np.array(values, dtype=np.int64))


def test_uint64_and_int64_arrays_give_the_same_blocks():
    a = prepare_blocks(np.array([3, 2**64 - 1, 3, 0], dtype=np.uint64))
    b = prepare_blocks([0, 2**64 - 1, 3])
    assert np.array_equal(a.digests, b.digests)
    check(np.array([3, 2**64 - 1, 3, 0], dtype=np.uint64))


STRINGS = {
    "shared prefix": [f"cust-{i:08d}" for i in range(3000)],            # word 0 constant
    "two prefixes": [f"cust-{i:08d}" for i in range(995_000, 1_003_000)],   # word 0 mostly tied
    "varied": [f"{i * 7919 % 10**9}x" for i in range(4000)],
    "few ties": [f"{i:07d}" for i in RNG.permutation(10**6)[:3000].tolist()]
                + ["abcdefgh" + s for s in ("", "1", "2", "\x00", "x" * 6)],
    "non-ascii": ["straße", "naïve", "日本語", "€", "é" * 7, "é" * 8, "ab\x00", "ab", "", "a" * 14, "a" * 15]
                 + [f"ü-{i}" for i in range(500)] + [f"long-{i}-" + "z" * 20 for i in range(500)],
}


@pytest.mark.parametrize("case", sorted(STRINGS))
def test_strings_with_duplicates_match_the_general_path(case):
    values = with_repeats(STRINGS[case])
    check(values)
    if case != "non-ascii":
        check(np.array(values))


def test_bytes_and_edge_sizes():
    check(with_repeats([b"", b"\x00", b"\x00\x00", b"x" * 14, b"x" * 15, b"\xff" * 8 + b"a", b"\xff" * 8 + b"b"]))
    check([5])
    check([5, 5, 5])
    check(["only"])
    empty = prepare_blocks([])
    assert empty.digests.shape == (0, 16) and empty.n_rows == 0


def test_random_words_with_planted_ties_on_word_0():
    words = RNG.integers(0, 2**64, (20000, 2), dtype=np.uint64)
    words[1000:1400, 0] = words[:400, 0]                   # tied first words, different second
    words[5000:5100] = words[6000:6100]                    # whole duplicates
    words[7000:12000, 0] = 42                              # one long run of ties (> 1/4 rows)
    for w in (words, words[:4000], words[7000:12000], np.ascontiguousarray(words[::-1])):
        rows, inverse = distinct(w)
        ref_rows, ref_inverse = reference(w)
        assert np.array_equal(rows, ref_rows) and np.array_equal(inverse, ref_inverse)


def test_prepare_rows_keeps_input_order_or_reports_repeats():
    ids = RNG.permutation(4000) - 2000
    rows = prepare_rows(ids, "ids")
    blocks = prepare_blocks(ids, "ids")
    assert rows.n_rows == 4000 and np.array_equal(rows.inverse, np.arange(4000))
    assert np.array_equal(rows.digests, blocks.digests[blocks.inverse])
    assert np.array_equal(rows.digests[:1], prepare_blocks(ids[:1], "ids").digests)
    dup = prepare_rows(["a", "b", "a"], "ids")
    assert len(dup.digests) == 2 and dup.inverse.tolist()[0] == dup.inverse.tolist()[2]


def test_many_ties_on_many_first_words_take_the_lexsort():
    words = RNG.integers(0, 2**64, (1 << 18, 2), dtype=np.uint64)
    words[:, 0] = RNG.integers(0, 1 << 17, 1 << 18).astype(np.uint64)   # > 2^16 first words, most tied
    words[100:200] = words[300:400]
    rows, inverse = distinct(words)
    ref_rows, ref_inverse = reference(words)
    assert np.array_equal(rows, ref_rows) and np.array_equal(inverse, ref_inverse)
