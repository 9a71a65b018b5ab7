"""Value codec: Python values <-> gaotie.v1.Value protobuf messages.

The only way values cross the wire. Known kinds: None, bool, int (any size), float, str,
bytes, numpy arrays (dtype + shape + raw bytes, object dtypes refused), lists/tuples of
those, dicts with str keys, and extension types registered by name with
:func:`register_extension` (e.g. Paillier ciphertext vectors). Anything else raises
``TypeError`` at the sender. Decoding never imports or evaluates anything named by a
peer: an extension kind unknown to the receiver's own registry is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mpc._proto.gaotie.v1 import value_pb2
from mpc.runtime.errors import describe

Value = value_pb2.Value

# kind name -> (python class, to-wire function, from-wire function)
_EXTENSIONS: dict[str, tuple[type, Callable[[Any], Any], Callable[[Any], Any]]] = {}
_EXTENSION_BY_TYPE: dict[type, str] = {}

# Numpy kinds that are plain fixed-width numbers: b(ool) i(nt) u(int) f(loat) c(omplex),
# plus fixed-width bytes (S). Object ("O") arrays could hold anything and are refused.
_ARRAY_KINDS = frozenset("biufcSU")   # U: fixed-width text (UCS-4), checked on decode
MAX_NESTING = 64


class CodecError(ValueError):
    """A received value is malformed (bad dtype, size mismatch, unknown extension...)."""


def register_extension(kind: str, cls: type, to_wire: Callable[[Any], Any],
                       from_wire: Callable[[Any], Any]) -> None:
    """Teach the codec a new value type under the wire name ``kind``.

    ``to_wire(obj)`` must return a value the codec already knows (typically a dict of
    arrays/bytes/ints); ``from_wire(value)`` rebuilds the object and must validate it.
    """
    _EXTENSIONS[kind] = (cls, to_wire, from_wire)
    _EXTENSION_BY_TYPE[cls] = kind


def _int_to_bytes(v: int) -> bytes:
    return v.to_bytes((v + (v < 0)).bit_length() // 8 + 1, "big", signed=True)


def encode(value: Any, _depth: int = 0) -> Value:
    """Encode ``value`` as a ``gaotie.v1.Value``; ``TypeError`` for unknown types."""
    if _depth > MAX_NESTING:
        raise TypeError(f"value nested deeper than {MAX_NESTING} levels")
    msg = Value()
    if value is None:
        msg.none = True
    elif isinstance(value, (bool, np.bool_)):
        msg.bool_value = bool(value)
    elif isinstance(value, (int, np.integer)):
        msg.int_value = _int_to_bytes(int(value))
    elif isinstance(value, (float, np.floating)):
        msg.float_value = float(value)
    elif isinstance(value, str):
        msg.str_value = value
    elif isinstance(value, (bytes, bytearray, memoryview)):
        msg.bytes_value = bytes(value)
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"cannot send numpy arrays of dtype {value.dtype}")
        msg.array.dtype = value.dtype.str
        msg.array.shape.extend(value.shape)
        msg.array.data = value.tobytes(order="C")
    elif isinstance(value, (list, tuple)):
        if value and all(isinstance(v, bytes) for v in value) and not isinstance(value, tuple):
            msg.bytes_list.items.extend(value)
        else:
            msg.list_value.SetInParent()
            msg.list_value.is_tuple = isinstance(value, tuple)
            msg.list_value.items.extend(encode(v, _depth + 1) for v in value)
    elif isinstance(value, dict):
        msg.map_value.SetInParent()
        entries = msg.map_value.entries
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"dict keys must be str, not {type(k).__name__}")
            entries[k].CopyFrom(encode(v, _depth + 1))
    elif type(value) in _EXTENSION_BY_TYPE:
        kind = _EXTENSION_BY_TYPE[type(value)]
        msg.extension.kind = kind
        msg.extension.payload.CopyFrom(encode(_EXTENSIONS[kind][1](value), _depth + 1))
    else:
        raise TypeError(f"gaotie cannot send values of type {type(value).__name__}")
    return msg


def decode(msg: Value, _depth: int = 0) -> Any:
    """Decode a ``gaotie.v1.Value``; ``CodecError`` if it is malformed."""
    if _depth > MAX_NESTING:
        raise CodecError(f"value nested deeper than {MAX_NESTING} levels")
    kind = msg.WhichOneof("kind")
    if kind == "none":
        return None
    if kind == "bool_value":
        return msg.bool_value
    if kind == "int_value":
        if not msg.int_value:
            raise CodecError("empty integer encoding")
        return int.from_bytes(msg.int_value, "big", signed=True)
    if kind == "float_value":
        return msg.float_value
    if kind == "str_value":
        return msg.str_value
    if kind == "bytes_value":
        return msg.bytes_value
    if kind == "bytes_list":
        return list(msg.bytes_list.items)
    if kind == "array":
        return _decode_array(msg.array)
    if kind == "list_value":
        items = [decode(v, _depth + 1) for v in msg.list_value.items]
        return tuple(items) if msg.list_value.is_tuple else items
    if kind == "map_value":
        return {k: decode(v, _depth + 1) for k, v in msg.map_value.entries.items()}
    if kind == "extension":
        ext = _EXTENSIONS.get(msg.extension.kind)
        if ext is None:
            raise CodecError(f"unknown extension kind {msg.extension.kind!r}")
        return ext[2](decode(msg.extension.payload, _depth + 1))
    raise CodecError("value has no kind set")


def _decode_array(arr: value_pb2.Array) -> np.ndarray:
    try:
        dtype = np.dtype(arr.dtype)
    except TypeError as exc:
        raise CodecError(f"bad array dtype {arr.dtype!r}") from exc
    if (dtype.kind not in _ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None
            or dtype.itemsize == 0):
        raise CodecError(f"array dtype {arr.dtype!r} is not allowed")
    shape = tuple(arr.shape)
    if any(d < 0 for d in shape):
        raise CodecError(f"negative array dimension in shape {shape}")
    count = 1
    for d in shape:
        count *= d
    if count * dtype.itemsize != len(arr.data):
        raise CodecError(f"array of shape {shape} and dtype {dtype} needs "
                         f"{count * dtype.itemsize} bytes, got {len(arr.data)}")
    # frombuffer gives a read-only view of the message bytes; copy to own writable memory.
    out = np.frombuffer(arr.data, dtype=dtype).reshape(shape).copy()
    if dtype.kind == "U" and out.size and int(out.view(np.uint32).max()) > 0x10FFFF:
        raise CodecError("text array holds a code point above U+10FFFF")
    return out


def dumps(value: Any) -> bytes:
    """Serialize ``value`` to bytes (a serialized ``gaotie.v1.Value``)."""
    return encode(value).SerializeToString()


def loads(data: bytes) -> Any:
    """Parse bytes made by :func:`dumps`; ``CodecError`` if they are malformed."""
    msg = Value()
    try:
        msg.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError (and sometimes others)
        raise CodecError(f"malformed value message: {exc}") from exc
    try:
        return decode(msg)
    except CodecError:
        raise
    except Exception as exc:  # an extension's validator (or numpy) refused what a peer sent
        raise CodecError(f"malformed value ({describe(exc)})") from exc
