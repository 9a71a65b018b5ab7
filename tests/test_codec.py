"""Codec: every value kind round-trips; unknown types and malformed bytes are refused."""

from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mpc.runtime import codec

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**4100), max_value=2**4100),
                    st.floats(allow_nan=False), st.text(), st.binary())
arrays = hnp.arrays(dtype=st.sampled_from([np.uint64, np.int64, np.int32, np.uint8, np.float64, np.bool_, "S7"]),
                    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
values = st.recursive(scalars | arrays | st.lists(st.binary(), min_size=1),
                      lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                      max_leaves=12)


def assert_same(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    else:
        assert a == b


@given(values)
def test_round_trip(value):
    assert_same(codec.loads(codec.dumps(value)), value)


@given(st.integers(min_value=-(2**5000), max_value=2**5000))
def test_big_ints_exact(n):
    assert codec.loads(codec.dumps(n)) == n


def test_numpy_scalars_become_python_values():
    assert codec.loads(codec.dumps(np.int64(-5))) == -5
    assert codec.loads(codec.dumps(np.float32(0.5))) == 0.5


def test_decoded_arrays_are_writable():
    arr = codec.loads(codec.dumps(np.arange(4)))
    arr[0] = 7
    assert arr[0] == 7


@pytest.mark.parametrize("bad", [object(), {1: "x"}, np.array([object()]), {1, 2}, lambda: 0,
                                 [1, object()]])
def test_unknown_types_raise_type_error(bad):
    with pytest.raises(TypeError):
        codec.dumps(bad)


def test_malformed_bytes_raise_codec_error():
    with pytest.raises(codec.CodecError):
        codec.loads(b"\xff\xff\xff\xff")


def test_array_size_mismatch_refused():
    msg = codec.encode(np.arange(4, dtype=np.int64))
    msg.array.shape[0] = 5
    with pytest.raises(codec.CodecError, match="needs 40 bytes"):
        codec.decode(msg)


def test_object_dtype_refused_on_receive():
    msg = codec.encode(np.arange(2, dtype=np.int64))
    msg.array.dtype = "|O"
    with pytest.raises(codec.CodecError):
        codec.decode(msg)


def test_unknown_extension_refused():
    msg = codec.Value()
    msg.extension.kind = "os.system"
    msg.extension.payload.str_value = "echo hi"
    with pytest.raises(codec.CodecError, match="unknown extension"):
        codec.decode(msg)


def test_deep_nesting_refused():
    v: list = []
    for _ in range(codec.MAX_NESTING + 5):
        v = [v]
    with pytest.raises(TypeError):
        codec.dumps(v)


@given(values)
def test_round_trip_field_by_field(value):
    """With every size counted as large, the codec writes and reads every container and
    array itself (not through protobuf messages): same values, and protobuf parses its
    bytes into the message its own encoder makes."""
    with mock.patch.object(codec, "_SMALL", 0):
        data = codec.dumps(value)
        assert_same(codec.loads(data), value)
        assert_same(codec.loads(bytearray(data), copy=False), value)
    assert codec.Value.FromString(data) == codec.encode(value)


def test_large_arrays_are_views_of_the_buffer_only_when_given_away():
    arr = np.arange(200_000, dtype=np.uint64)
    data = codec.dumps(arr)
    raw = np.empty(len(data) + 64, np.uint8)  # placed so the array data is 64-byte aligned
    start = -(raw.ctypes.data + codec.array_data_offset(data)) % 64
    buf = raw[start:start + len(data)]
    buf[:] = np.frombuffer(data, np.uint8)
    got = codec.loads(buf, copy=False)
    assert np.shares_memory(got, buf) and got.flags.writeable and got.flags.aligned
    assert_same(got, arr)
    own = codec.loads(data)  # read-only bytes: arrays get memory of their own
    assert not np.shares_memory(own, buf) and own.flags.writeable
    assert not np.shares_memory(codec.loads(buf, copy=True), buf)
    nested = (arr, {"b": arr[::2], "n": 7}, b"tail")  # nested arrays: views or aligned copies
    got = codec.loads(bytearray(codec.dumps(nested)), copy=False)
    assert got[0].flags.writeable and got[0].flags.aligned and got[1]["b"].flags.aligned
    assert_same(got, (arr, {"b": arr[::2].copy(), "n": 7}, b"tail"))


def test_unaligned_array_data_is_copied_to_aligned_memory():
    data = codec.dumps(np.arange(100_000, dtype=np.uint64))
    buf = np.empty(len(data) + 1, np.uint8)[1:]  # odd address: the data cannot be aligned
    buf[:] = np.frombuffer(data, np.uint8)
    got = codec.loads(buf, copy=False)
    assert got.flags.aligned and got[-1] == 99_999
    assert codec.array_data_offset(data[:40]) == data.index(np.arange(2, dtype=np.uint64).tobytes())
    assert codec.array_data_offset(codec.dumps([1])) == 0 and codec.array_data_offset(b"\x12") == 0


def test_containers_of_many_items_go_through_protobuf_and_round_trip():
    big = [np.full(10_000, i, dtype=np.int32) for i in range(codec._FEW + 1)]  # > _SMALL bytes
    value = {"many": big, "ints": list(range(5000)), "few": (big[0], big[1])}
    assert_same(codec.loads(codec.dumps(value)), value)


def test_malformed_large_values_are_refused():
    good = bytearray(codec.dumps((np.arange(20_000, dtype=np.uint64), "x")))
    for bad in (good[:-1], good[:len(good) // 2], b"\x12" + good[1:], good + b"\x0f", good + b"\x12\x00"):
        with pytest.raises(codec.CodecError):
            codec.loads(bytes(bad))
