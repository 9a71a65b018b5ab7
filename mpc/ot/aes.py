"""AES-128 in bulk without holding the GIL: OpenSSL's EVP through ctypes, else pyca.

pyca/cryptography's ``update_into`` keeps the GIL for the whole call (measured here: two
threads encrypting take twice as long as one), so the two directions of OT extension, a
party's transport threads and, in ``run_local``, the other party all wait on AES. The
same OpenSSL routines called through :mod:`ctypes` (which releases the GIL around foreign
calls) run in parallel. Both backends compute the same function: AES-128-ECB of each
16-byte block, and AES-128-CTR with a zero IV (a big-endian 128-bit counter from 0), the
keystream of :class:`mpc.crypto.random.PRG`. The ctypes backend is used when the
process can load ``libcrypto`` (the library Python's own ``ssl`` module links), with
``GAOTIE_AES=pyca`` to force pyca. One exception: :func:`fill_rows` (an OT batch's PRG
rows, 256 calls of a few microseconds each) calls through :class:`ctypes.PyDLL`, keeping
the GIL, for rows under ``_SHORT_CALL`` bytes: with both parties of ``run_local`` in one
process, each release and re-take of the GIL is a hand-off to the other party's thread
(and on a loaded machine a wake-up), which cost more than such a row's AES.

Buffers are numpy arrays; every call checks that they are C-contiguous uint8 of the right
sizes before handing pointers to OpenSSL.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_MAX_CALL = 1 << 30   # bytes per EVP_EncryptUpdate (its length is a C int)


def _load() -> ctypes.CDLL | None:
    if os.environ.get("GAOTIE_AES", "").lower() == "pyca":
        return None
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.EVP_CIPHER_CTX_new.restype = ctypes.c_void_p
        lib.EVP_CIPHER_CTX_free.argtypes = [ctypes.c_void_p]
        lib.EVP_aes_128_ecb.restype = ctypes.c_void_p
        lib.EVP_aes_128_ctr.restype = ctypes.c_void_p
        lib.EVP_EncryptInit_ex.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                           ctypes.c_char_p, ctypes.c_char_p]
        lib.EVP_CIPHER_CTX_set_padding.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.EVP_EncryptUpdate.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int),
                                          ctypes.c_void_p, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return lib


_LIB = _load()


def _load_holding() -> ctypes.CDLL | None:
    """``EVP_EncryptUpdate`` through :class:`ctypes.PyDLL`, which keeps the GIL: for the many
    short calls of :func:`fill_rows`, where releasing and re-taking the GIL around each
    (a hand-off to the other party's thread in ``run_local``, a wake-up on a busy machine)
    costs more than the call."""
    if _LIB is None:
        return None
    try:
        lib = ctypes.PyDLL(_LIB._name)
        lib.EVP_EncryptUpdate.argtypes = _LIB.EVP_EncryptUpdate.argtypes
    except (OSError, AttributeError):
        return None
    return lib


_HOLDING = _load_holding()
_SHORT_CALL = 1 << 16   # bytes per row below which fill_rows keeps the GIL (about 8 us of AES)


def backend() -> str:
    """``"evp"`` (OpenSSL through ctypes, GIL released) or ``"pyca"``."""
    return "evp" if _LIB is not None else "pyca"


def _check(data: np.ndarray, out: np.ndarray, blocks: bool) -> None:
    for a in (data, out):
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or not a.flags.c_contiguous:
            raise TypeError("AES buffers must be C-contiguous uint8 numpy arrays")
    if out.size < data.size or (blocks and data.size % 16):
        raise ValueError(f"AES: {data.size} input bytes{' (a multiple of 16)' if blocks else ''} "
                         f"into {out.size}")
    if not out.flags.writeable:
        raise ValueError("AES output buffer is read-only")


class _Evp:
    """One OpenSSL cipher context (ECB or CTR stream), freed with the object."""

    def __init__(self, key: bytes, ctr: bool) -> None:
        if len(key) != 16:
            raise ValueError(f"AES-128 key must be 16 bytes, got {len(key)}")
        self._ctx = _LIB.EVP_CIPHER_CTX_new()
        if not self._ctx:
            raise MemoryError("EVP_CIPHER_CTX_new failed")
        cipher = _LIB.EVP_aes_128_ctr() if ctr else _LIB.EVP_aes_128_ecb()
        if _LIB.EVP_EncryptInit_ex(self._ctx, cipher, None, key, bytes(16) if ctr else None) != 1:
            raise RuntimeError("EVP_EncryptInit_ex failed")
        _LIB.EVP_CIPHER_CTX_set_padding(self._ctx, 0)
        self._blocks = not ctr

    def update(self, data: np.ndarray, out: np.ndarray) -> None:
        _check(data, out, self._blocks)
        data, out = data.reshape(-1), out.reshape(-1)   # views: both are C-contiguous
        n = ctypes.c_int(0)
        for pos in range(0, data.size, _MAX_CALL):
            size = min(_MAX_CALL, data.size - pos)
            if _LIB.EVP_EncryptUpdate(self._ctx, out.ctypes.data + pos, ctypes.byref(n),
                                      data.ctypes.data + pos, size) != 1 or n.value != size:
                raise RuntimeError("EVP_EncryptUpdate failed")

    def __del__(self) -> None:
        if getattr(self, "_ctx", None) and _LIB is not None:
            _LIB.EVP_CIPHER_CTX_free(self._ctx)
            self._ctx = None


class _Pyca:
    def __init__(self, key: bytes, ctr: bool) -> None:
        mode = modes.CTR(bytes(16)) if ctr else modes.ECB()
        self._enc = Cipher(algorithms.AES(key), mode).encryptor()
        self._blocks = not ctr

    def update(self, data: np.ndarray, out: np.ndarray) -> None:
        _check(data, out, self._blocks)
        data, out = data.reshape(-1), out.reshape(-1)   # views: both are C-contiguous
        if data.size == 0:
            return
        if out.size >= data.size + 16:
            self._enc.update_into(memoryview(data).cast("B"), memoryview(out).cast("B"))
        else:   # update_into wants one spare block
            spare = np.empty(data.size + 16, np.uint8)
            self._enc.update_into(memoryview(data).cast("B"), spare)
            out[:data.size] = spare[:data.size]


def _cipher(key: bytes, ctr: bool) -> _Evp | _Pyca:
    return _Evp(key, ctr) if _LIB is not None else _Pyca(key, ctr)


class Ecb:
    """AES-128-ECB under ``key``: ``encrypt(data, out)`` fills ``out[:len]`` (uint8 arrays)."""

    def __init__(self, key: bytes) -> None:
        self._c = _cipher(key, ctr=False)

    def encrypt(self, data: np.ndarray, out: np.ndarray) -> np.ndarray:
        self._c.update(data, out)
        return out


_ZEROS = np.zeros(0, np.uint8)


class CtrStream:
    """The AES-128-CTR keystream of ``key`` (zero IV), continuing across calls: the same
    bytes as :class:`mpc.crypto.random.PRG` of that seed."""

    def __init__(self, key: bytes) -> None:
        self._c = _cipher(key, ctr=True)

    def fill(self, out: np.ndarray) -> np.ndarray:
        """Write the next ``out.size`` bytes of the stream into ``out`` (C-contiguous uint8)."""
        global _ZEROS
        zeros = _ZEROS
        if zeros.size < out.size:
            zeros = _ZEROS = np.zeros(max(out.size, 2 * zeros.size), np.uint8)
        self._c.update(zeros[:out.size], out)
        return out


def fill_rows(streams: list[CtrStream], out: np.ndarray) -> np.ndarray:
    """Row j of the (len(streams), nbytes) uint8 ``out`` = the next nbytes of stream j
    (one check and one pointer for the whole matrix: the per-row cost is the C call)."""
    global _ZEROS
    if out.ndim != 2 or len(out) != len(streams):
        raise ValueError(f"fill_rows: {len(streams)} streams into a {out.shape} matrix")
    nbytes = out.shape[1]
    zeros = _ZEROS
    if zeros.size < nbytes:
        zeros = _ZEROS = np.zeros(max(nbytes, 2 * zeros.size), np.uint8)
    _check(zeros[:nbytes], out, False)
    if _LIB is None or not streams or nbytes == 0:
        for row, stream in zip(out, streams, strict=True):
            stream.fill(row)
        return out
    base, src, n = out.ctypes.data, zeros.ctypes.data, ctypes.c_int(0)
    lib = _HOLDING if _HOLDING is not None and nbytes < _SHORT_CALL else _LIB
    update, ref = lib.EVP_EncryptUpdate, ctypes.byref(n)
    for j, stream in enumerate(streams):
        if nbytes > _MAX_CALL or update(stream._c._ctx, base + j * nbytes, ref, src, nbytes) != 1:
            stream.fill(out[j])   # (never for IKNP's sizes) the checked path
    return out
