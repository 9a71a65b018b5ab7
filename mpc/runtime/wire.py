"""Protobuf wire format primitives: varints and the fields of a serialized message.

The codec and the gRPC transport write and read large messages with these instead of
protobuf's message classes, to keep big payloads as views instead of copies. Readers
check every length against the buffer and raise :class:`WireError` on anything
malformed; they never allocate more than the buffer they read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

_U64 = (1 << 64) - 1


class WireError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


TAGS = [bytes([i]) for i in range(128)]  # one-byte varints, e.g. the tags of fields 1..15


def varint(n: int) -> bytes:
    """The varint encoding of ``n`` (0 <= n < 2**64)."""
    if n < 0x80:
        return TAGS[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(mv: memoryview, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``mv[pos:end]`` (truncated to 64 bits, as protobuf does) and the position after it."""
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated value")
        b = mv[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _U64, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


MAX_FIELD_NUMBER = (1 << 29) - 1  # protobuf's largest field number; its parser refuses larger tags


def fields(mv: memoryview, pos: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """Yield (field number, wire type, value) of the message in ``mv[pos:end]`` (a memoryview
    of bytes); value is an int for varints, a memoryview of the 8 or 4 bytes of fixed64
    and fixed32 fields, and (start, stop) for length-delimited fields. Groups are refused."""
    while pos < end:
        tag, pos = read_varint(mv, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0 or number > MAX_FIELD_NUMBER:
            raise WireError(f"field number {number} out of range")
        if wire == 0:
            value, pos = read_varint(mv, pos, end)
        elif wire == 2:
            n, pos = read_varint(mv, pos, end)
            if n > end - pos:
                raise WireError("field longer than its message")
            value, pos = (pos, pos + n), pos + n
        elif wire == 1 or wire == 5:
            n = 8 if wire == 1 else 4
            if n > end - pos:
                raise WireError("truncated value")
            value, pos = mv[pos:pos + n], pos + n
        else:
            raise WireError(f"unsupported wire type {wire}")
        yield number, wire, value
