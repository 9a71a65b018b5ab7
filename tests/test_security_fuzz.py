"""Codec fuzzing: whatever bytes a peer sends, decoding returns a value or raises CodecError.

Hypothesis generates every value kind (scalars, arrays of each allowed dtype, lists,
tuples, dicts, and the registered extensions: tables and Paillier vectors), then feeds
the decoder random bytes, bit flips, truncations and splices of valid encodings, and
hand-made Value messages no encoder would produce. If atheris is installed, a short
coverage-guided run (in a subprocess) does the same: ``pytest -m slow tests/test_security_fuzz.py``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mpc.tables  # noqa: F401 - registers the table kind
from mpc._proto.gaotie.v1 import value_pb2
from mpc.runtime import codec

DTYPES = [np.uint64, np.int64, np.int32, np.int8, np.uint8, np.float64, np.float32, np.bool_,
          np.complex128, "S1", "S9"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**300), max_value=2**300),
                    st.floats(), st.text(max_size=20), st.binary(max_size=40))
arrays = hnp.arrays(dtype=st.sampled_from(DTYPES),
                    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
tables = st.integers(0, 5).map(lambda n: pd.DataFrame({"id": [f"x{i}" for i in range(n)],
                                                       "v": np.arange(n, dtype=np.float64)}))


def _paillier_values():
    try:
        from mpc.paillier import wire  # noqa: F401 - registers the Paillier kinds
        from mpc.paillier.keys import generate_keypair
        from mpc.paillier.packing import encrypt_packed
    except ImportError:  # pragma: no cover - Paillier not there
        return st.nothing()
    public, _ = generate_keypair(512, insecure=True)
    ints = st.lists(st.integers(-1000, 1000), min_size=1, max_size=3)
    return (ints.map(public.encrypt) | ints.map(lambda xs: encrypt_packed(public, np.array(xs, np.int64)))
            | st.just(public))


leaves = scalars | arrays | tables | _paillier_values() | st.lists(st.binary(max_size=8), min_size=1, max_size=3)
values = st.recursive(leaves,
                      lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
                      | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                      max_leaves=8)


def decodes_or_refuses(data: bytes) -> None:
    """The one property: a value, or CodecError; never any other exception."""
    try:
        codec.loads(data)
    except codec.CodecError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes(data):
    decodes_or_refuses(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values, st.data())
def test_mutated_encodings(value, data):
    raw = bytearray(codec.dumps(value))
    kind = data.draw(st.sampled_from(["flip", "truncate", "splice", "insert"]))
    if kind == "flip" and raw:
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw)))]
    elif kind == "splice":
        other = codec.dumps(data.draw(values))
        i = data.draw(st.integers(0, len(raw)))
        raw = raw[:i] + other[data.draw(st.integers(0, len(other))):]
    else:
        i = data.draw(st.integers(0, len(raw)))
        raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    decodes_or_refuses(bytes(raw))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values, st.data())
def test_mutated_encodings_read_field_by_field(value, data):
    """The same, with every size counted as large: the codec's own wire reader (used for
    large values, arrays as views of the buffer) sees every mutation, not protobuf."""
    with mock.patch.object(codec, "_SMALL", 0):
        raw = bytearray(codec.dumps(value))
        i = data.draw(st.integers(0, len(raw)))
        kind = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
        if kind == "flip" and raw:
            raw[min(i, len(raw) - 1)] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "truncate":
            raw = raw[:i]
        else:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        try:
            codec.loads(raw, copy=False)
        except codec.CodecError:
            pass


array_fields = st.fixed_dictionaries({
    "dtype": st.sampled_from(["<i8", "S0", "|S0", "V8", "O", "<U3", "i8,i8", "(2,)i8", "<M8[ns]", "?", "b0",
                              "f16", "S99999999999", "", "garbage", "<f8", "|u1"]),
    "shape": st.lists(st.integers(0, 2**40), max_size=4),
    "data": st.binary(max_size=64)})


@settings(max_examples=300, deadline=None)
@given(array_fields)
def test_hand_made_arrays(fields):
    decodes_or_refuses(value_pb2.Value(array=fields).SerializeToString())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["table", "paillier.PublicKey", "paillier.EncryptedVector",
                        "paillier.PackedEncryptedVector", "nope", ""]), values)
def test_extensions_with_wrong_payloads(kind, payload):
    """Every registered extension's validator sees payloads of the wrong shape."""
    try:
        import mpc.paillier.wire  # noqa: F401
    except ImportError:  # pragma: no cover
        pass
    msg = value_pb2.Value()
    msg.extension.kind = kind
    msg.extension.payload.CopyFrom(codec.encode(payload))
    decodes_or_refuses(msg.SerializeToString())


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


@pytest.mark.parametrize("depth", [65, 100, 5000])
def test_deep_nesting_is_refused_not_a_crash(depth):
    """Value{list_value: ValueList{items: [Value{...}]}} nested by hand, past every limit."""
    data = value_pb2.Value(none=True).SerializeToString()
    for _ in range(depth):
        inner = b"\x0a" + _varint(len(data)) + data      # ValueList.items = 1
        data = b"\x3a" + _varint(len(inner)) + inner     # Value.list_value = 7
    with pytest.raises(codec.CodecError):
        codec.loads(data)


def test_huge_claimed_shape_allocates_nothing():
    msg = value_pb2.Value(array={"dtype": "<f8", "shape": [2**31, 2**31], "data": b"12345678"})
    with pytest.raises(codec.CodecError, match="needs"):
        codec.loads(msg.SerializeToString())


ATHERIS_HARNESS = textwrap.dedent("""
    import sys
    import atheris
    with atheris.instrument_imports():
        from mpc.runtime import codec
        import mpc.tables
        try:
            import mpc.paillier.wire
        except ImportError:
            pass

    def one(data):
        try:
            codec.loads(data)
        except codec.CodecError:
            pass

    atheris.Setup(sys.argv, one)
    atheris.Fuzz()
""")


@pytest.mark.slow
def test_atheris_coverage_guided_codec_fuzzing(tmp_path):
    pytest.importorskip("atheris")
    script = tmp_path / "fuzz_codec.py"
    script.write_text(ATHERIS_HARNESS)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, value in enumerate([None, 1, -(2**70), 1.5, "x", b"y", [1, (2, 3)], {"a": np.arange(3)},
                               np.zeros((2, 2), "S3"), pd.DataFrame({"a": [1.0]})]):
        (corpus / f"seed{i}").write_bytes(codec.dumps(value))
    proc = subprocess.run([sys.executable, str(script), "-runs=30000", "-max_len=512", str(corpus)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
