"""Checks on what an OT peer sent: wrong types or sizes raise ProtocolViolation naming the peer."""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc.runtime.errors import ProtocolViolation


def expect(peer: str, value: Any, dtype: type, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``value`` if it is a numpy array of ``dtype`` and ``shape``; ProtocolViolation otherwise."""
    if not isinstance(value, np.ndarray) or value.dtype != np.dtype(dtype) or value.shape != shape:
        desc = (f"an array {value.dtype} {value.shape}" if isinstance(value, np.ndarray)
                else f"a {type(value).__name__}")
        raise ProtocolViolation(f"party {peer!r} sent {desc} as {what}, expected "
                                f"{np.dtype(dtype)} {shape}")
    return value
