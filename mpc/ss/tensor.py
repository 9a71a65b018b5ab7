"""SharedTensor: an additively secret-shared array over Z_2^64, with numpy-like operators.

Each computing party holds a numpy uint64 array; the value is the sum of all parties'
arrays mod 2^64 (wrap-around arithmetic comes free with uint64). ``frac_bits`` says how
to read it: 0 for integers, f > 0 for fixed point with f fractional bits.

What operations reveal: ``+ - neg``, sums, indexing, reshape and products with public
values are local; ``* @`` open Beaver-masked values and comparisons open edaBit-masked
values (uniform, independent of the data); only ``reveal`` discloses a value, and only
to the parties it names. Shapes and ``frac_bits`` are public.

The dealer (when the job uses it) sees the shapes and the truncation shifts of the
products: frac_x + frac_y - f, which the job's frac_bits fixes for tensors made by
``share`` and public values. A tensor whose ``frac_bits`` came from data (the owner's
per-column scale, :mod:`protocols.stats.scaling`) would tell the dealer that scale when
multiplied with ``*``, ``@`` or divided: the statistics in :mod:`protocols.stats` never do
(they work on its ring integers with shifts fixed by public parameters); do the same, or
bring such a tensor to the job's frac_bits with ``beaver.truncate_hidden`` first.

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
from mpc.ss import beaver, compare, fixed


class SharedTensor:
    """This party's share of a secret array (see module docstring)."""

    __array_priority__ = 1000  # numpy array (op) SharedTensor defers to our operators
    __hash__ = None  # type: ignore[assignment]  # == is elementwise

    def __init__(self, ctx: Any, share: np.ndarray, frac_bits: int) -> None:
        self.ctx = ctx
        self.share = np.asarray(share, dtype=np.uint64)
        self.frac_bits = int(frac_bits)

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

    def _new(self, share: np.ndarray, frac_bits: int | None = None) -> SharedTensor:
        return SharedTensor(self.ctx, share, self.frac_bits if frac_bits is None else frac_bits)

    # -- coercion ---------------------------------------------------------------------
    def _check_job(self, other: SharedTensor) -> None:
        if other.ctx is not self.ctx and (other.ctx.job_id != self.ctx.job_id
                                          or other.ctx.party != self.ctx.party):
            raise ValueError(f"cannot mix SharedTensors of different jobs "
                             f"({self.ctx.job_id} and {other.ctx.job_id})")

    def _public(self, value: Any) -> SharedTensor:
        """A public value as a SharedTensor (party 0 holds it, others hold zeros)."""
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            f = fixed.frac_bits(self.ctx)
            enc, frac = fixed.encode(arr, f, "public operand"), f
        elif arr.dtype.kind in "biu":
            enc, frac = fixed.encode_int(arr, "public operand"), 0
        else:
            raise TypeError(f"cannot combine a SharedTensor with {type(value).__name__}")
        share = enc if self.ctx.rank == 0 else np.zeros(enc.shape, np.uint64)
        return SharedTensor(self.ctx, share, frac)

    def _coerce(self, other: Any) -> SharedTensor:
        if isinstance(other, SharedTensor):
            self._check_job(other)
            return other
        return self._public(other)

    def _lift(self, frac: int) -> SharedTensor:
        """The same value with ``frac`` >= self.frac_bits fractional bits (local)."""
        if frac == self.frac_bits:
            return self
        return self._new(self.share * (np.uint64(1) << np.uint64(frac - self.frac_bits)), frac)

    def _aligned(self, other: Any) -> tuple[SharedTensor, SharedTensor]:
        o = self._coerce(other)
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
            s = s._lift(fixed.frac_bits(self.ctx))
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
        f = fixed.frac_bits(self.ctx)
        if frac > f:
            return self._new(beaver.truncate(self.ctx, share, frac - f), f)
        return self._new(share, frac)

    def __mul__(self, other: Any) -> SharedTensor:
        b, frac_b, shared = self._operand(other)
        try:
            shape = np.broadcast_shapes(self.shape, b.shape)
        except ValueError:
            raise ValueError(f"shape mismatch: {self.shape} * {b.shape}") from None
        a = np.ascontiguousarray(np.broadcast_to(self.share, shape))
        if shared:
            extra = self.frac_bits + frac_b - fixed.frac_bits(self.ctx)
            if extra > 0:
                beaver.prefetch_mul_trunc(self.ctx, shape, extra)
            prod = beaver.mul(self.ctx, a, np.ascontiguousarray(np.broadcast_to(b, shape)))
        else:  # public factor: every party scales its own share
            prod = a * np.broadcast_to(b, shape)
        return self._rescale(prod, self.frac_bits + frac_b)

    __rmul__ = __mul__

    def _public_raw(self, value: Any) -> np.ndarray:
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            return fixed.encode(arr, fixed.frac_bits(self.ctx), "public operand")
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
        x = self if self.is_fixed else self._lift(fixed.frac_bits(self.ctx))
        # |d| >= 1: x / d = (x / 2^k) * (2^k / d) with 2^k <= |d| < 2^(k+1): the first
        # factor is a truncation (error 2^k ulp before dividing by d, so <= 1 ulp after) and
        # the constant 2^k/d in (0.5, 1] keeps full relative precision in fixed point.
        k = np.where(np.abs(arr) >= 1, np.floor(np.log2(np.abs(arr))), 0).astype(np.int64)
        k = np.minimum(k, 40)
        if np.any(k > 0):
            kb = np.broadcast_to(k, np.broadcast_shapes(k.shape, x.shape)).astype(np.uint64)
            share = np.broadcast_to(x.share, kb.shape)
            x = x._new(beaver.truncate(self.ctx, np.ascontiguousarray(share), kb))
        return x * (np.exp2(k.astype(np.float64)) / arr)

    def _operand(self, other: Any) -> tuple[np.ndarray, int, bool]:
        """(raw array, frac bits, is_shared): shares of a SharedTensor or a public value."""
        if isinstance(other, SharedTensor):
            self._check_job(other)
            return other.share, other.frac_bits, True
        f = fixed.frac_bits(self.ctx) if np.asarray(other).dtype.kind == "f" else 0
        return self._public_raw(other), f, False

    def __matmul__(self, other: Any) -> SharedTensor:
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
        a, b = self._aligned(other)
        lt, gt = self._ltz_of([a - b, b - a])
        return 1 - lt - gt

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
        share = np.ascontiguousarray(self.share).reshape(self.shape)
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
        prod = beaver.matmul(ref.ctx, np.ascontiguousarray(a), np.ascontiguousarray(b))
    else:  # one operand public: local
        prod = np.matmul(a, b)
    if x.ndim == 1:
        prod = prod[..., 0, :]
    if y.ndim == 1:
        prod = prod[..., 0]
    return ref._rescale(prod, frac_x + frac_y)


def share(ctx: Any, value: Any, owner: str) -> SharedTensor:
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


def from_shares(ctx: Any, local_share: np.ndarray, frac_bits: int = 0) -> SharedTensor:
    """Wrap shares a protocol built itself (each party passes its own uint64 share)."""
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
