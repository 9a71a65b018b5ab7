"""SharedTensor: an additively secret-shared array over Z_2^64, with numpy-like operators.

Each computing party holds a numpy uint64 array; the value is the sum of all parties'
arrays mod 2^64 (wrap-around arithmetic comes free with uint64). ``frac_bits`` says how
to read it: 0 for integers, f > 0 for fixed point with f fractional bits.

What operations reveal: ``+ - neg``, sums, indexing, reshape and products with public
values are local; ``* @`` open Beaver-masked values and comparisons open edaBit-masked
values (uniform, independent of the data); only ``reveal`` discloses a value, and only
to the parties it names. Shapes and ``frac_bits`` are public.

The dealer (when the job uses it) sees the shapes and the truncation shifts of the
products: frac_x + frac_y - f, with f the tensor's ``working_bits`` (its ``precision``
when set by ``at_precision``, else the job's frac_bits), which public parameters fix for
tensors made by ``share`` and public values. A tensor whose ``frac_bits`` came from data
(the owner's per-column scale, :mod:`protocols.stats.scaling`) would tell the dealer that
scale when multiplied with ``*``, ``@`` or divided: the statistics in
:mod:`protocols.stats` never do (they read its ring integers, ``with_frac_bits(0)``, with
shifts fixed by public parameters); do the same, or bring such a tensor to a public scale
with ``rshift_hidden`` first.

Fixed-point products are truncated back to f fractional bits (dealer: a truncation pair;
Paillier: the two-party wrap-bit protocol), with error at most 1 unit in the last place
(2^-f) and no failure probability, provided |x * y| < 2^(62-2f) (about 1.07e9 for
f = 16), see :mod:`mpc.ss.fixed` and :func:`mpc.ss.beaver.truncate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mpc.crypto.random import PRG, new_seed
from mpc.runtime.context import Context
from mpc.ss import beaver, compare, fixed


def _contiguous(a: np.ndarray) -> np.ndarray:
    """``a`` C-contiguous (copied if it is not), of the same shape: unlike
    np.ascontiguousarray, a 0-d array (a scalar tensor, e.g. a sum) stays 0-d."""
    return np.require(a, requirements="C")


class SharedTensor:
    """This party's share of a secret array (see module docstring)."""

    __array_priority__ = 1000  # numpy array (op) SharedTensor defers to our operators
    __hash__ = None  # type: ignore[assignment]  # == is elementwise

    def __init__(self, ctx: Context, share: np.ndarray, frac_bits: int, precision: int | None = None) -> None:
        self.ctx = ctx
        self.share = np.asarray(share, dtype=np.uint64)
        self.frac_bits = int(frac_bits)
        self.precision = None if precision is None else int(precision)

    def __repr__(self) -> str:
        return (f"SharedTensor(party={self.ctx.party!r}, shape={self.shape}, "
                f"frac_bits={self.frac_bits})")

    # -- metadata ---------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.share.shape)

    @property
    def ndim(self) -> int:
        return self.share.ndim

    @property
    def size(self) -> int:
        return int(self.share.size)

    def __len__(self) -> int:
        return len(self.share)

    @property
    def is_fixed(self) -> bool:
        return self.frac_bits > 0

    @property
    def working_bits(self) -> int:
        """Fractional bits of fixed-point results: products are truncated back to it and
        public floats encoded with it. The tensor's ``precision`` when set (see
        ``at_precision``), else the job's ``frac_bits`` option. Public, like the shape."""
        return fixed.frac_bits(self.ctx) if self.precision is None else self.precision

    def _new(self, share: np.ndarray, frac_bits: int | None = None) -> SharedTensor:
        return SharedTensor(self.ctx, share, self.frac_bits if frac_bits is None else frac_bits,
                            self.precision)

    def with_frac_bits(self, frac_bits: int) -> SharedTensor:
        """The same shares read with ``frac_bits`` fractional bits (local, no truncation):
        ``with_frac_bits(0)`` gives the ring integers of the encoding, and an integer
        tensor of values scaled by 2^s becomes the fixed-point value with ``frac_bits=s``."""
        return self._new(self.share, frac_bits)

    def at_precision(self, bits: int) -> SharedTensor:
        """The same value, with fixed-point results computed at ``bits`` fractional bits
        instead of the job's ``frac_bits`` (products, public floats, reciprocal, sqrt...
        of this tensor and of what is derived from it). ``bits`` is public: the dealer sees
        it in truncation requests, so it must not come from the data."""
        if not 0 <= int(bits) <= 30:
            raise ValueError(f"precision must be between 0 and 30 fractional bits, got {bits}")
        return SharedTensor(self.ctx, self.share, self.frac_bits, int(bits))

    # -- coercion ---------------------------------------------------------------------
    def _check_job(self, other: SharedTensor) -> None:
        if other.ctx is not self.ctx and (other.ctx.job_id != self.ctx.job_id
                                          or other.ctx.party != self.ctx.party):
            raise ValueError(f"cannot mix SharedTensors of different jobs "
                             f"({self.ctx.job_id} and {other.ctx.job_id})")

    def _public(self, value: Any) -> SharedTensor:
        """A public value as a SharedTensor (party 0 holds it, others hold zeros); floats
        at this tensor's working precision."""
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"cannot combine a SharedTensor with {type(value).__name__}")
        if arr.dtype.kind != "f":
            fixed.encode_int(arr, "public operand")          # |x| < 2^61, or ValueError
        out = public(self.ctx, arr, self.working_bits)
        out.precision = self.precision
        return out

    def _coerce(self, other: Any) -> SharedTensor:
        if isinstance(other, SharedTensor):
            self._check_job(other)
            if other.precision is None and self.precision is not None:
                return other.at_precision(self.precision)
            return other
        return self._public(other)

    def _lift(self, frac: int) -> SharedTensor:
        """The same value with ``frac`` >= self.frac_bits fractional bits (local)."""
        if frac == self.frac_bits:
            return self
        return self._new(self.share * (np.uint64(1) << np.uint64(frac - self.frac_bits)), frac)

    def _aligned(self, other: Any) -> tuple[SharedTensor, SharedTensor]:
        o = self._coerce(other)
        if self.precision is None and o.precision is not None:
            return self.at_precision(o.precision)._aligned(o)
        frac = max(self.frac_bits, o.frac_bits)
        a, b = self._lift(frac), o._lift(frac)
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"shape mismatch: {self.shape} and {o.shape}") from None
        return (a._new(np.broadcast_to(a.share, shape)), b._new(np.broadcast_to(b.share, shape)))

    # -- linear, local ------------------------------------------------------------------
    def __add__(self, other: Any) -> SharedTensor:
        a, b = self._aligned(other)
        return a._new(a.share + b.share)

    __radd__ = __add__

    def __sub__(self, other: Any) -> SharedTensor:
        a, b = self._aligned(other)
        return a._new(a.share - b.share)

    def __rsub__(self, other: Any) -> SharedTensor:
        a, b = self._aligned(other)
        return a._new(b.share - a.share)

    def __neg__(self) -> SharedTensor:
        return self._new(np.uint64(0) - self.share)

    def __abs__(self) -> SharedTensor:
        """|x| (one comparison and one product)."""
        return self * (1 - 2 * (self < 0))

    def __pow__(self, exponent: int) -> SharedTensor:
        """x ** k for a public integer k >= 1 (square-and-multiply: about log2(k) rounds)."""
        if isinstance(exponent, bool) or not isinstance(exponent, (int, np.integer)) or exponent < 1:
            raise ValueError(f"SharedTensor ** k needs a public integer k >= 1, got {exponent!r}")
        result, base, k = None, self, int(exponent)
        while True:
            if k & 1:
                result = base if result is None else result * base
            k >>= 1
            if not k:
                return result
            base = base * base

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> SharedTensor:
        """Sum of elements (local; wraps mod 2^64 like every share)."""
        return self._new(np.sum(self.share, axis=axis, dtype=np.uint64, keepdims=keepdims))

    def mean(self, axis: int | None = None) -> SharedTensor:
        """Mean (sum times the public 1/count)."""
        count = self.size if axis is None else self.shape[axis]
        s = self.sum(axis)
        if not s.is_fixed:
            s = s._lift(self.working_bits)
        return s / float(count)

    def __getitem__(self, index: Any) -> SharedTensor:
        if isinstance(index, SharedTensor):
            raise TypeError("indexing with a secret index is not supported; use ss.where")
        return self._new(self.share[index])

    def __setitem__(self, index: Any, value: Any) -> None:
        v = self._coerce(value)._lift(self.frac_bits)
        if v.frac_bits != self.frac_bits:
            raise ValueError("cannot store a fixed-point value into an integer SharedTensor")
        share = self.share.copy()
        share[index] = v.share
        self.share = share

    def __lshift__(self, bits: Any) -> SharedTensor:
        """x * 2^bits on the encoded ring integers (``bits`` a public int or an integer
        array broadcastable to the shape, >= 0); local. The caller keeps |x| 2^bits < 2^62."""
        b = np.asarray(bits, dtype=np.uint64)
        return self._new(np.broadcast_to(self.share, np.broadcast_shapes(self.shape, b.shape)) << b)

    def __rshift__(self, bits: Any) -> SharedTensor:
        """floor(x / 2^bits) + {0 or 1} on the encoded ring integers (``frac_bits`` is kept),
        for a public ``bits`` (int or integer array broadcastable to the shape, 0..62) fixed
        by public parameters: the dealer sees it (:func:`mpc.ss.beaver.truncate`). One round."""
        b = np.asarray(bits, dtype=np.uint64)
        share = _contiguous(np.broadcast_to(self.share, np.broadcast_shapes(self.shape, b.shape)))
        return self._new(beaver.truncate(self.ctx, share, b))

    def rshift_hidden(self, bits: Any, limit: int) -> SharedTensor:
        """``x >> bits`` for a ``bits`` in [0, limit] that may come from opened data: the
        dealer is asked for a truncation by the public ``limit`` only
        (:func:`mpc.ss.beaver.truncate_hidden`; needs |x| 2^(limit - bits) < 2^62)."""
        b = np.asarray(bits, dtype=np.int64)
        share = _contiguous(np.broadcast_to(self.share, np.broadcast_shapes(self.shape, b.shape)))
        return self._new(beaver.truncate_hidden(self.ctx, share, b, limit))

    def rshift_private(self, bits: Any) -> SharedTensor:
        """``x >> bits`` for a ``bits`` that may come from opened data, with no bound on |x|
        needed: a bit-decomposed pair whose request names no shift
        (:func:`mpc.ss.beaver.truncate_private`; 65 words per element, for small tensors)."""
        b = np.asarray(bits, dtype=np.uint64)
        shape = np.broadcast_shapes(self.shape, b.shape)
        share = _contiguous(np.broadcast_to(self.share, shape))
        return self._new(beaver.truncate_private(self.ctx, share, np.broadcast_to(b, shape).copy()))

    def top_bit_onehot(self) -> SharedTensor:
        """Integer 0/1 tensor of shape (62, *shape): row k is 1 iff the highest set bit of
        x (>= 0, read as a ring integer below 2^62) is bit k; all rows 0 where x == 0.
        Bit decomposition, suffix OR and daBits (:func:`mpc.ss.compare.msb_onehot`);
        reveals nothing."""
        oh = compare.msb_onehot(self.ctx, _contiguous(self.share), positions=62)
        return self._new(oh, 0)

    def bit_length(self) -> SharedTensor:
        """Shares of the bit length of each ring integer x >= 0 (0 for x == 0), from
        ``top_bit_onehot``; secret until revealed."""
        oh = self.top_bit_onehot()
        weights = np.arange(1, 63, dtype=np.uint64).reshape((-1,) + (1,) * self.ndim)
        return oh._new(np.sum(oh.share * weights, axis=0, dtype=np.uint64), 0)

    def reshape(self, *shape: Any) -> SharedTensor:
        return self._new(self.share.reshape(*shape))

    def flatten(self) -> SharedTensor:
        return self._new(self.share.reshape(-1))

    def transpose(self, *axes: Any) -> SharedTensor:
        return self._new(np.transpose(self.share, *axes) if axes else self.share.T)

    @property
    def T(self) -> SharedTensor:  # noqa: N802 - numpy's name
        return self.transpose()

    # -- products -------------------------------------------------------------------------
    def _rescale(self, share: np.ndarray, frac: int) -> SharedTensor:
        f = self.working_bits
        if frac > f:
            return self._new(beaver.truncate(self.ctx, share, frac - f), f)
        return self._new(share, frac)

    def _adopt_precision(self, other: Any) -> SharedTensor:
        """self, at ``other``'s precision when only ``other`` has one."""
        if isinstance(other, SharedTensor) and self.precision is None and other.precision is not None:
            return self.at_precision(other.precision)
        return self

    def __mul__(self, other: Any) -> SharedTensor:
        if self._adopt_precision(other) is not self:
            return self._adopt_precision(other) * other
        b, frac_b, shared = self._operand(other)
        try:
            shape = np.broadcast_shapes(self.shape, b.shape)
        except ValueError:
            raise ValueError(f"shape mismatch: {self.shape} * {b.shape}") from None
        a = _contiguous(np.broadcast_to(self.share, shape))
        if shared:
            extra = self.frac_bits + frac_b - self.working_bits
            if extra > 0:
                beaver.prefetch_mul_trunc(self.ctx, shape, extra)
            prod = beaver.mul(self.ctx, a, _contiguous(np.broadcast_to(b, shape)))
        else:  # public factor: every party scales its own share
            prod = a * np.broadcast_to(b, shape)
        return self._rescale(prod, self.frac_bits + frac_b)

    __rmul__ = __mul__

    def _public_raw(self, value: Any) -> np.ndarray:
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            return fixed.encode(arr, self.working_bits, "public operand")
        return fixed.encode_int(arr, "public operand")

    def __rtruediv__(self, other: Any) -> SharedTensor:
        from mpc.ss.functions import divide
        return divide(other, self)

    def __truediv__(self, other: Any) -> SharedTensor:
        if isinstance(other, SharedTensor):
            from mpc.ss.functions import divide
            return divide(self, other)
        arr = np.asarray(other, dtype=np.float64)
        if np.any(arr == 0) or not np.all(np.isfinite(arr)):
            raise ZeroDivisionError("division of a SharedTensor by a public zero or non-finite value")
        x = self if self.is_fixed else self._lift(self.working_bits)
        # |d| >= 1: x / d = (x / 2^k) * (2^k / d) with 2^k <= |d| < 2^(k+1): the first
        # factor is a truncation (error 2^k ulp before dividing by d, so <= 1 ulp after) and
        # the constant 2^k/d in (0.5, 1] keeps full relative precision in fixed point.
        k = np.where(np.abs(arr) >= 1, np.floor(np.log2(np.abs(arr))), 0).astype(np.int64)
        k = np.minimum(k, 40)
        if np.any(k > 0):
            kb = np.broadcast_to(k, np.broadcast_shapes(k.shape, x.shape)).astype(np.uint64)
            share = np.broadcast_to(x.share, kb.shape)
            x = x._new(beaver.truncate(self.ctx, _contiguous(share), kb))
        return x * (np.exp2(k.astype(np.float64)) / arr)

    def _operand(self, other: Any) -> tuple[np.ndarray, int, bool]:
        """(raw array, frac bits, is_shared): shares of a SharedTensor or a public value."""
        if isinstance(other, SharedTensor):
            self._check_job(other)
            return other.share, other.frac_bits, True
        f = self.working_bits if np.asarray(other).dtype.kind == "f" else 0
        return self._public_raw(other), f, False

    def __matmul__(self, other: Any) -> SharedTensor:
        if self._adopt_precision(other) is not self:
            return self._adopt_precision(other) @ other
        b, frac_b, shared = self._operand(other)
        return _matmul(self, self.share, self.frac_bits, b, frac_b, shared)

    def __rmatmul__(self, other: Any) -> SharedTensor:
        a, frac_a, _ = self._operand(other)
        return _matmul(self, a, frac_a, self.share, self.frac_bits, False)

    # -- comparisons ------------------------------------------------------------------------
    def _ltz_of(self, diffs: list[SharedTensor]) -> list[SharedTensor]:
        flat = np.concatenate([d.share.ravel() for d in diffs])
        bits = compare.ltz(self.ctx, flat)
        out, pos = [], 0
        for d in diffs:
            out.append(self._new(bits[pos:pos + d.size].reshape(d.shape), 0))
            pos += d.size
        return out

    def __lt__(self, other: Any) -> SharedTensor:
        a, b = self._aligned(other)
        return self._ltz_of([a - b])[0]

    def __gt__(self, other: Any) -> SharedTensor:
        a, b = self._aligned(other)
        return self._ltz_of([b - a])[0]

    def __le__(self, other: Any) -> SharedTensor:
        return 1 - (self > other)

    def __ge__(self, other: Any) -> SharedTensor:
        return 1 - (self < other)

    def __eq__(self, other: Any) -> SharedTensor:  # type: ignore[override]
        """[self == other] as 0/1 shares: a zero test of the difference
        (:func:`mpc.ss.compare.eqz`), not two comparisons."""
        a, b = self._aligned(other)
        diff = a - b
        return self._new(compare.eqz(self.ctx, _contiguous(diff.share)).reshape(diff.shape), 0)

    def __ne__(self, other: Any) -> SharedTensor:  # type: ignore[override]
        return 1 - (self == other)

    # -- functions (see mpc.ss.functions) -----------------------------------------------------
    def max(self, axis: int | None = None) -> SharedTensor:
        from mpc.ss.functions import max_
        return max_(self, axis)

    def min(self, axis: int | None = None) -> SharedTensor:
        from mpc.ss.functions import min_
        return min_(self, axis)

    def argmax(self, axis: int | None = None) -> SharedTensor:
        from mpc.ss.functions import argmax
        return argmax(self, axis)

    def argmin(self, axis: int | None = None) -> SharedTensor:
        from mpc.ss.functions import argmin
        return argmin(self, axis)

    # -- output ---------------------------------------------------------------------------------
    def reveal(self, to: str | Sequence[str] | None = None) -> np.ndarray | None:
        """The value (float64 for fixed point, int64 otherwise) on the parties in ``to``
        (all computing parties when None); None on the others. Every party must call it."""
        ctx = self.ctx
        receivers = list(ctx.parties) if to is None else ([to] if isinstance(to, str) else list(to))
        unknown = [p for p in receivers if p not in ctx.parties]
        if unknown or not receivers:
            raise ValueError(f"cannot reveal to {unknown or receivers!r}: the computing parties "
                             f"are {ctx.parties}")
        share = _contiguous(self.share).reshape(self.shape)
        for p in receivers:
            if p != ctx.party:
                ctx.send(p, share)
        if ctx.party not in receivers:
            return None
        total = share.copy()
        for p in ctx.peers:
            other = ctx.recv(p)
            if not isinstance(other, np.ndarray) or other.shape != share.shape:
                raise ValueError(f"party {p!r} sent a share of the wrong shape")
            total += other.astype(np.uint64)
        return fixed.decode(total, self.frac_bits)


def _matmul(ref: SharedTensor, x: np.ndarray, frac_x: int, y: np.ndarray, frac_y: int,
            both_shared: bool) -> SharedTensor:
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError("matmul needs at least 1-D operands; use * for scalars")
    a = x[None, :] if x.ndim == 1 else x
    b = y[:, None] if y.ndim == 1 else y
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"shape mismatch for @: {x.shape} @ {y.shape}")
    if both_shared:
        prod = beaver.matmul(ref.ctx, _contiguous(a), _contiguous(b))
    else:  # one operand public: local
        prod = np.matmul(a, b)
    if x.ndim == 1:
        prod = prod[..., 0, :]
    if y.ndim == 1:
        prod = prod[..., 0]
    return ref._rescale(prod, frac_x + frac_y)


def share(ctx: Context, value: Any, owner: str) -> SharedTensor:
    """Secret-share ``value`` (a numpy array, given by ``owner``; others pass None).

    Float arrays become fixed point with the job's ``frac_bits``; integer and bool arrays
    stay integers. The owner sends every other party a 16-byte PRG seed plus the shape:
    the other parties' shares are PRG expansions and the owner keeps the difference.
    """
    if owner not in ctx.parties:
        raise ValueError(f"unknown owner {owner!r}; the computing parties are {ctx.parties}")
    if ctx.party == owner:
        if value is None:
            raise ValueError(f"party {owner!r} is the owner and must pass a value to share")
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            frac = fixed.frac_bits(ctx)
            enc = fixed.encode(arr, frac, f"value shared by {owner!r}")
        elif arr.dtype.kind in "biu":
            frac = 0
            enc = fixed.encode_int(arr, f"value shared by {owner!r}")
        else:
            raise TypeError(f"party {owner!r} cannot share an array of dtype {arr.dtype}")
        mine = enc.copy()
        for p in ctx.peers:
            seed = new_seed()
            ctx.send(p, {"seed": seed, "shape": list(enc.shape), "frac": frac})
            mine -= PRG(seed).uint64(enc.shape)
        return SharedTensor(ctx, mine, frac)
    msg = ctx.recv(owner)
    if not isinstance(msg, dict) or not isinstance(msg.get("seed"), bytes):
        raise ValueError(f"party {owner!r} sent a malformed share")
    shape = tuple(int(d) for d in msg["shape"])
    return SharedTensor(ctx, PRG(msg["seed"]).uint64(shape), int(msg["frac"]))


def public(ctx: Context, value: Any, frac_bits: int | None = None) -> SharedTensor:
    """A public value as a SharedTensor (party 0 holds it, the others zeros): floats as
    fixed point with ``frac_bits`` (the job's when None), integers (int64 or uint64) as
    the ring integers they are mod 2^64 (a protocol's constants and thresholds)."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        f = fixed.frac_bits(ctx) if frac_bits is None else int(frac_bits)
        enc, frac = fixed.encode(arr, f, "public operand"), f
    elif arr.dtype.kind in "biu":
        enc, frac = from_shares(ctx, arr.astype(np.int64) if arr.dtype.kind == "b" else arr).share, 0
    else:
        raise TypeError(f"cannot make a SharedTensor of a public {type(value).__name__}")
    return SharedTensor(ctx, enc if ctx.rank == 0 else np.zeros(enc.shape, np.uint64), frac)


_ZERO_SHARING = "mpc.ss.zero_sharing"


def sum_of_locals(ctx: Context, local: Any, frac_bits: int = 0) -> SharedTensor:
    """Shares of the sum over parties of each party's own integer array ``local`` (ring
    integers, read with ``frac_bits``), without a message per call: each party adds a
    zero-sharing to its array, from pairwise PRG streams whose seeds the lower rank of
    each pair picks once per job. Reveals nothing; every party calls it with the same
    shape in the same order."""
    prgs = ctx.state.get(_ZERO_SHARING)
    if prgs is None:
        prgs = {}
        for peer in ctx.peers:
            if ctx.parties.index(peer) > ctx.rank:
                seed = new_seed()
                ctx.send(peer, seed)
            else:
                seed = ctx.recv(peer)
                if not isinstance(seed, bytes) or len(seed) != 16:
                    raise ValueError(f"party {peer!r} sent a malformed seed")
            prgs[peer] = PRG(seed)
        ctx.state[_ZERO_SHARING] = prgs
    out = from_shares(ctx, local).share.copy()
    for peer, prg in prgs.items():
        z = prg.uint64(out.shape)
        if ctx.parties.index(peer) > ctx.rank:
            out += z
        else:
            out -= z
    return SharedTensor(ctx, out, frac_bits)


def from_shares(ctx: Context, local_share: np.ndarray, frac_bits: int = 0) -> SharedTensor:
    """The SharedTensor whose shares are ``local_share`` (each party passes its own uint64
    words, as an engine returned them: Paillier row masking, the dealer join). The public
    constructor for shares made outside this engine; protocols never build the words."""
    arr = np.asarray(local_share)
    if arr.dtype != np.uint64:
        if arr.dtype.kind not in "iu":
            raise TypeError(f"shares must be integer arrays, got dtype {arr.dtype}")
        arr = arr.astype(np.int64).view(np.uint64) if arr.dtype.kind == "i" else arr.astype(np.uint64)
    return SharedTensor(ctx, arr, frac_bits)


def _combine(join: Any, tensors: Sequence[SharedTensor], axis: int) -> SharedTensor:
    """``join`` (np.concatenate / np.stack) the shares of SharedTensors of one job, lifting
    integer ones to the largest fixed-point scale if they are mixed."""
    if not tensors:
        raise ValueError(f"{join.__name__} needs at least one SharedTensor")
    first = tensors[0]
    for t in tensors[1:]:
        first._check_job(t)
    frac = max(t.frac_bits for t in tensors)
    return first._new(join([t._lift(frac).share for t in tensors], axis=axis), frac)


def concatenate(tensors: Sequence[SharedTensor], axis: int = 0) -> SharedTensor:
    """Concatenate SharedTensors of one job (integer ones are lifted to fixed if mixed)."""
    return _combine(np.concatenate, tensors, axis)


def stack(tensors: Sequence[SharedTensor], axis: int = 0) -> SharedTensor:
    """Stack SharedTensors of one job along a new axis."""
    return _combine(np.stack, tensors, axis)
