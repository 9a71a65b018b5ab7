"""Value codec: Python values <-> gaotie.v1.Value protobuf messages.

The only way values cross the wire. Known kinds: None, bool, int (any size), float, str,
bytes, numpy arrays (dtype + shape + raw bytes, object dtypes refused), lists/tuples of
those, dicts with str keys, and extension types registered by name with
:func:`register_extension` (e.g. Paillier ciphertext vectors). Anything else raises
``TypeError`` at the sender. Decoding never imports or evaluates anything named by a
peer: an extension kind unknown to the receiver's own registry is an error.

Large values skip protobuf's copies: :func:`dump_parts` writes the wire format of a
``Value`` holding arrays itself, as a list of buffers with the array data as views of the
arrays (the transport copies each chunk once, into its envelope), and :func:`loads` with
``copy=False`` reads it field by field and returns arrays that are views of the received
buffer. Small parts, and containers of many items, go through protobuf messages
(:func:`encode` / :func:`decode`), which is faster for them. Either way the bytes are a
valid serialized ``gaotie.v1.Value``: the same message protobuf itself would write.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from mpc._proto.gaotie.v1 import value_pb2
from mpc.runtime.errors import describe
from mpc.runtime.wire import TAGS, WireError, fields, read_varint, varint

Value = value_pb2.Value

# kind name -> (python class, to-wire function, from-wire function)
_EXTENSIONS: dict[str, tuple[type, Callable[[Any], Any], Callable[[Any], Any]]] = {}
_EXTENSION_BY_TYPE: dict[type, str] = {}

# Numpy kinds that are plain fixed-width numbers: b(ool) i(nt) u(int) f(loat) c(omplex),
# plus fixed-width bytes (S). Object ("O") arrays could hold anything and are refused.
_ARRAY_KINDS = frozenset("biufcSU")   # U: fixed-width text (UCS-4), checked on decode
MAX_NESTING = 64
_F64 = struct.Struct("<d")
_FEW = 64  # containers up to this many items are written and read field by field
_SMALL = 1 << 16  # values under this many bytes are parsed by protobuf in one go


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


# -- writing -------------------------------------------------------------------------
# Value field numbers (value.proto): none 1, array 2, bytes_value 3, bytes_list 4,
# int_value 5, str_value 6, list_value 7, map_value 8, float_value 9, bool_value 10,
# extension 11. A tag is (field number << 3) | wire type (0 varint, 1 fixed64, 2 length).

def encode(value: Any, _depth: int = 0) -> Value:
    """Encode ``value`` as a ``gaotie.v1.Value`` message; ``TypeError`` for unknown types."""
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


def _array_layout(dtype_name: str, shape: Any, nbytes: int) -> tuple[np.dtype, tuple[int, ...], int]:
    """Check a received array's dtype, shape and data size; (dtype, shape, element count)."""
    try:
        dtype = np.dtype(dtype_name)
    except TypeError as exc:
        raise CodecError(f"bad array dtype {dtype_name!r}") from exc
    if (dtype.kind not in _ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None
            or dtype.itemsize == 0):
        raise CodecError(f"array dtype {dtype_name!r} is not allowed")
    shape = tuple(shape)
    if any(d < 0 for d in shape):
        raise CodecError(f"negative array dimension in shape {shape}")
    count = 1
    for d in shape:
        count *= d
    if count * dtype.itemsize != nbytes:
        raise CodecError(f"array of shape {shape} and dtype {dtype} needs "
                         f"{count * dtype.itemsize} bytes, got {nbytes}")
    return dtype, shape, count


def _decode_array(arr: value_pb2.Array) -> np.ndarray:
    dtype, shape, _ = _array_layout(arr.dtype, arr.shape, len(arr.data))
    # frombuffer gives a read-only view of the message bytes; copy to own writable memory.
    out = np.frombuffer(arr.data, dtype=dtype).reshape(shape).copy()
    if dtype.kind == "U" and out.size and int(out.view(np.uint32).max()) > 0x10FFFF:
        raise CodecError("text array holds a code point above U+10FFFF")
    return out


def _text(s: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TypeError(f"cannot send a str that is not valid unicode: {exc.reason}") from None


def _len_field(tag: int, parts: list, size: int) -> tuple[list, int]:
    """Wrap an encoded message body (``parts``, ``size`` bytes) as length-delimited field ``tag``."""
    head = TAGS[tag] + varint(size)
    parts.insert(0, head)
    return parts, len(head) + size


def _bytes_field(tag: int, data: bytes) -> bytes:
    return TAGS[tag] + varint(len(data)) + data


def _array_parts(value: np.ndarray) -> tuple[list, int]:
    if value.dtype.kind not in _ARRAY_KINDS:
        raise TypeError(f"cannot send numpy arrays of dtype {value.dtype}")
    parts = [_bytes_field(0x0A, value.dtype.str.encode())]
    if value.shape:
        parts.append(_bytes_field(0x12, b"".join(varint(d) for d in value.shape)))
    size = sum(len(p) for p in parts)
    if value.nbytes:
        data = memoryview(np.ascontiguousarray(value).reshape(-1).view(np.uint8))
        head = b"\x1a" + varint(value.nbytes)
        parts += [head, data]
        size += len(head) + value.nbytes
    return _len_field(0x12, parts, size)


# Types encode() takes as what they are before looking at extensions (subclasses included).
_PLAIN_KINDS = (type(None), bool, np.bool_, int, np.integer, float, np.floating, str, bytes, bytearray,
                memoryview, np.ndarray, list, tuple, dict)


def dump_parts(value: Any, _depth: int = 0) -> tuple[list, int]:
    """The encoding of ``value`` as (buffers, total size); ``TypeError`` for unknown types.

    Arrays, and lists, tuples, dicts and extensions of at most ``_FEW`` items, are written
    here with array data as views of the arrays (join or copy the buffers before an array
    may change); everything else is one buffer serialized by protobuf, which is faster
    for many small items.
    """
    if _depth > MAX_NESTING:
        raise TypeError(f"value nested deeper than {MAX_NESTING} levels")
    if isinstance(value, np.ndarray):
        return _array_parts(value)
    if isinstance(value, (list, tuple)) and len(value) <= _FEW and not (
            value and all(isinstance(v, bytes) for v in value) and not isinstance(value, tuple)):
        parts: list = []
        size = 0
        for v in value:
            p, s = dump_parts(v, _depth + 1)
            head = b"\x0a" + varint(s)
            parts.append(head)
            parts += p
            size += len(head) + s
        if isinstance(value, tuple):
            parts.append(b"\x10\x01")
            size += 2
        return _len_field(0x3A, parts, size)
    if isinstance(value, dict) and len(value) <= _FEW:
        parts, size = [], 0
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"dict keys must be str, not {type(k).__name__}")
            key = _bytes_field(0x0A, _text(k))
            p, s = dump_parts(v, _depth + 1)
            head = b"\x12" + varint(s)
            entry = len(key) + len(head) + s
            lead = b"\x0a" + varint(entry)
            parts += [lead, key, head]
            parts += p
            size += len(lead) + entry
        return _len_field(0x42, parts, size)
    if type(value) in _EXTENSION_BY_TYPE and not isinstance(value, _PLAIN_KINDS):
        kind = _EXTENSION_BY_TYPE[type(value)]
        p, s = dump_parts(_EXTENSIONS[kind][1](value), _depth + 1)
        name = _bytes_field(0x0A, kind.encode())
        head = b"\x12" + varint(s)
        return _len_field(0x5A, [name, head, *p], len(name) + len(head) + s)
    data = encode(value, _depth).SerializeToString()
    return [data], len(data)


def dumps(value: Any) -> bytes:
    """Serialize ``value`` to bytes (a serialized ``gaotie.v1.Value``); ``TypeError`` for unknown types."""
    parts, _ = dump_parts(value)
    return b"".join(parts)


# -- reading -------------------------------------------------------------------------

def _str(mv: memoryview, span: tuple[int, int]) -> str:
    try:
        return str(mv[span[0]:span[1]], "utf-8")
    except UnicodeDecodeError:
        raise CodecError("string field is not valid UTF-8") from None


def _span(wire: int, value: Any) -> tuple[int, int]:
    if wire != 2:
        raise CodecError("expected a length-delimited field")
    return value


class _ManyItems(Exception):
    """A container has more than ``_FEW`` items: protobuf reads it faster in one go."""


class _Reader:
    """Decodes a Value from one buffer: large arrays, and the lists, dicts and extensions
    holding them, field by field (arrays as views of the buffer unless ``copy``); every
    smaller part by protobuf and :func:`decode`."""

    def __init__(self, data: Any, copy: bool) -> None:
        self.mv = memoryview(data).cast("B")
        self.copy = copy or self.mv.readonly

    def proto(self, pos: int, end: int, depth: int) -> Any:
        try:
            msg = Value.FromString(bytes(self.mv[pos:end]))
        except Exception as exc:  # protobuf raises DecodeError (and sometimes others)
            raise CodecError(f"malformed value message: {exc}") from exc
        return decode(msg, depth)

    def value(self, pos: int, end: int, depth: int) -> Any:
        if depth > MAX_NESTING:
            raise CodecError(f"value nested deeper than {MAX_NESTING} levels")
        if end - pos < _SMALL:
            return self.proto(pos, end, depth)
        kinds = [(n, w, x) for n, w, x in fields(self.mv, pos, end) if n in _KINDS]
        if len(kinds) != 1:
            raise CodecError("value has no kind set" if not kinds else "value has more than one kind set")
        number, wire, span = kinds[0]
        if number not in (2, 7, 8, 11):
            return self.proto(pos, end, depth)
        span = _span(wire, span)
        try:
            if number == 2:
                return self.array(*span)
            if number == 7:
                return self.items(*span, depth)
            if number == 8:
                return self.entries(*span, depth)
            return self.extension(*span, depth)
        except _ManyItems:
            return self.proto(pos, end, depth)

    def items(self, pos: int, end: int, depth: int) -> list | tuple:
        items, is_tuple = [], False
        for n, w, x in fields(self.mv, pos, end):
            if n == 1:
                if len(items) == _FEW:
                    raise _ManyItems
                items.append(self.value(*_span(w, x), depth + 1))
            elif n == 2:
                if w != 0:
                    raise CodecError("is_tuple is not a varint")
                is_tuple = bool(x)
        return tuple(items) if is_tuple else items

    def entries(self, pos: int, end: int, depth: int) -> dict:
        out, count = {}, 0
        for n, w, entry in fields(self.mv, pos, end):
            if n != 1:
                continue
            count += 1
            if count > _FEW:
                raise _ManyItems
            key, item = "", None
            for m, w2, x in fields(self.mv, *_span(w, entry)):
                if m == 1:
                    key = _str(self.mv, _span(w2, x))
                elif m == 2:
                    item = _span(w2, x)
            if item is None:
                raise CodecError("value has no kind set")
            out[key] = self.value(*item, depth + 1)
        return out

    def extension(self, pos: int, end: int, depth: int) -> Any:
        kind, payload = "", None
        for n, w, x in fields(self.mv, pos, end):
            if n == 1:
                kind = _str(self.mv, _span(w, x))
            elif n == 2:
                payload = _span(w, x)
        ext = _EXTENSIONS.get(kind)
        if ext is None:
            raise CodecError(f"unknown extension kind {kind!r}")
        if payload is None:
            raise CodecError("value has no kind set")
        return ext[2](self.value(*payload, depth + 1))

    def array(self, pos: int, end: int) -> np.ndarray:
        mv = self.mv
        dtype_name, shape, data = "", [], (pos, pos)
        for n, w, x in fields(mv, pos, end):
            if n == 1:
                dtype_name = _str(mv, _span(w, x))
            elif n == 2:  # repeated int64, packed or not
                if w == 0:
                    shape.append(x)
                else:
                    a, b = _span(w, x)
                    while a < b:
                        d, a = read_varint(mv, a, b)
                        shape.append(d)
            elif n == 3:
                data = _span(w, x)
        shape = [d - (1 << 64) if d >> 63 else d for d in shape]  # int64 two's complement
        dtype, shape, count = _array_layout(dtype_name, shape, data[1] - data[0])
        if count == 0:
            return np.empty(shape, dtype=dtype)
        arr = np.frombuffer(mv, dtype=dtype, count=count, offset=data[0]).reshape(shape)
        # A view of the buffer only when the caller gave it away (copy=False) and it is
        # writable and aligned; otherwise own writable memory.
        return arr.copy() if self.copy or not arr.flags.aligned else arr


# Value's kind field numbers (value.proto)
_KINDS = frozenset(range(1, 12))


def loads(data: Any, copy: bool = True) -> Any:
    """Parse what :func:`dumps` made; ``CodecError`` if it is malformed.

    ``data`` is any buffer. With ``copy=False`` (and writable ``data``) large arrays in
    the result are views of ``data``: the caller hands the buffer over for good.
    """
    try:
        reader = _Reader(data, copy)
    except TypeError as exc:
        raise CodecError(f"cannot read a value from {type(data).__name__}") from exc
    try:
        return reader.value(0, len(reader.mv), 0)
    except CodecError:
        raise
    except WireError as exc:
        raise CodecError(f"malformed value message: {exc}") from None
    except Exception as exc:  # an extension's validator (or numpy) refused what a peer sent
        raise CodecError(f"malformed value ({describe(exc)})") from exc


def array_data_offset(head: Any) -> int:
    """Where the data of a top-level array starts in an encoding beginning with ``head``
    (0 if ``head`` is not the start of an array, or too short to tell). Receivers use it
    to place the array data at an aligned address."""
    mv = memoryview(head).cast("B")
    try:
        tag, pos = read_varint(mv, 0, len(mv))
        if tag != 0x12:
            return 0
        _, pos = read_varint(mv, pos, len(mv))  # the Array's length
        while True:
            tag, pos = read_varint(mv, pos, len(mv))
            n, pos = read_varint(mv, pos, len(mv)) if tag & 7 == 2 else (0, pos)
            if tag == 0x1A:
                return pos
            if tag not in (0x0A, 0x12):
                return 0
            pos += n
    except WireError:
        return 0
