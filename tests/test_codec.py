"""Codec: every value kind round-trips; unknown types and malformed bytes are refused."""

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
