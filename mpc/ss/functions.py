"""Non-linear functions on SharedTensors: where, max/min/argmax, sort, power-of-two
scaling by a secret exponent, reciprocal, sqrt and inverse sqrt.

Everything here is built from the operators of :mod:`mpc.ss.tensor` and the bit
protocols of :mod:`mpc.ss.compare`, so it reveals nothing but shapes (and what the
caller reveals at the end).

Numerics (f = fractional bits):

- ``reciprocal`` and ``divide`` (``x / y``): sign by comparison, then the secret position m of |x|'s top bit
  (bit decomposition, suffix OR, one-hot), z = |x| * 2^-(m+1) in [0.5, 1) by a secret
  power-of-two scaling (one-hot times publicly shifted copies), 3 Newton steps
  y <- y(2 - zy) from y0 = 2.9142 - 2z, and 1/x = y 2^-(m+1). Relative error about
  2^-(f-2) where 1/|x| >> 2^-f, absolute error a few 2^-f otherwise. ``reciprocal(0)`` = 0.
  ``x / y`` scales x by 2^-(m+1) before multiplying by y: absolute error a few 2^-f.
- ``inv_sqrt`` / ``sqrt`` (x >= 0; negative inputs give meaningless results): z = x 2^-2j
  in [0.25, 1), 3 Newton steps y <- y(1.5 - (z/2) y^2) from a linear start, then
  1/sqrt(x) = y 2^-j and sqrt(x) = (z y) 2^j, so both keep good relative precision over
  the whole range. Both return 0 for x = 0.
- ``sort``: bitonic network, vectorised per stage (log^2 n / 2 comparison rounds).
  Quantiles: :mod:`mpc.ss.order`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mpc.ss import beaver
from mpc.ss.tensor import SharedTensor, _contiguous, concatenate, stack


def _as_tensor(ref: SharedTensor, value: Any) -> SharedTensor:
    return ref._coerce(value)


def where(cond: SharedTensor, a: Any, b: Any) -> SharedTensor:
    """Elementwise ``a if cond else b`` for a 0/1 SharedTensor ``cond``: b + cond*(a - b)."""
    if not isinstance(cond, SharedTensor):
        raise TypeError("where: cond must be a SharedTensor of 0/1 values")
    if cond.is_fixed:
        raise ValueError("where: cond must be an integer 0/1 SharedTensor (a comparison result)")
    a_t, b_t = _as_tensor(cond, a), _as_tensor(cond, b)
    return b_t + cond * (a_t - b_t)


def maximum(a: SharedTensor, b: Any) -> SharedTensor:
    """Elementwise maximum."""
    return where(a < b, b, a)


def minimum(a: SharedTensor, b: Any) -> SharedTensor:
    """Elementwise minimum."""
    return where(a < b, a, b)


def _tree_max(x: SharedTensor, axis: int | None, want_index: bool):
    if axis is None:
        x = x.flatten()
        axis = 0
    vals = x._new(np.moveaxis(x.share, axis, -1))
    n = vals.shape[-1]
    if n == 0:
        raise ValueError("max/argmax of an empty SharedTensor")
    idx_pub = np.broadcast_to(np.arange(n, dtype=np.uint64), vals.shape)
    idx = x._new(idx_pub.copy() if x.ctx.rank == 0 else np.zeros(vals.shape, np.uint64), 0)
    while vals.shape[-1] > 1:
        half = vals.shape[-1] // 2
        lo, hi = vals[..., 0:2 * half:2], vals[..., 1:2 * half:2]
        ilo, ihi = idx[..., 0:2 * half:2], idx[..., 1:2 * half:2]
        gt = hi > lo                       # ties keep the earlier index (numpy's argmax)
        dv, di = (hi - lo).share, (ihi - ilo).share
        if want_index:
            prod = beaver.mul(x.ctx, np.concatenate([gt.share, gt.share], axis=-1),
                              np.concatenate([dv, di], axis=-1))
            pv, pi = prod[..., :half], prod[..., half:]
        else:
            pv = beaver.mul(x.ctx, gt.share, np.ascontiguousarray(dv))
            pi = np.zeros_like(pv)
        new_v, new_i = lo._new(lo.share + pv), ilo._new(ilo.share + pi)
        if vals.shape[-1] % 2:
            new_v = concatenate([new_v, vals[..., -1:]], axis=-1)
            new_i = concatenate([new_i, idx[..., -1:]], axis=-1)
        vals, idx = new_v, new_i
    return vals[..., 0], idx[..., 0]


def max_(x: SharedTensor, axis: int | None = None) -> SharedTensor:
    """Maximum over ``axis`` (all elements when None): log2(n) comparison rounds."""
    return _tree_max(x, axis, want_index=False)[0]


def min_max(x: SharedTensor, axis: int | None = None) -> tuple[SharedTensor, SharedTensor]:
    """(minimum, maximum) over ``axis`` (all elements when None) in 1.5 n comparisons
    instead of 2 n: one comparison per pair (x_0, x_1), (x_2, x_3), ... splits the elements
    into larger and smaller halves (the smaller is x_a + x_b - larger, free), then one
    comparison tree runs over both halves at once."""
    if axis is None:
        x, axis = x.flatten(), 0
    v = x._new(np.moveaxis(x.share, axis, -1))
    n = v.shape[-1]
    if n == 0:
        raise ValueError("min/max of an empty SharedTensor")
    h = n // 2
    hi = lo = v
    if h:
        a, b = v[..., 0:2 * h:2], v[..., 1:2 * h:2]
        hi = maximum(a, b)
        lo = a + b - hi
        if n % 2:
            hi, lo = concatenate([hi, v[..., -1:]], axis=-1), concatenate([lo, v[..., -1:]], axis=-1)
    ext = max_(stack([hi, -lo]), axis=-1)
    return -ext[1], ext[0]


def min_(x: SharedTensor, axis: int | None = None) -> SharedTensor:
    """Minimum over ``axis``."""
    return -_tree_max(-x, axis, want_index=False)[0]


def argmax(x: SharedTensor, axis: int | None = None) -> SharedTensor:
    """Secret index of the (first) maximum, as an integer SharedTensor."""
    return _tree_max(x, axis, want_index=True)[1]


def argmin(x: SharedTensor, axis: int | None = None) -> SharedTensor:
    """Secret index of the (first) minimum."""
    return _tree_max(-x, axis, want_index=True)[1]


def _bitonic_stages(n: int):
    k = 2
    while k <= n:
        j = k // 2
        while j >= 1:
            i = np.arange(n)
            partner = i ^ j
            keep = partner > i
            i, partner = i[keep], partner[keep]
            asc = (i & k) == 0
            yield np.where(asc, i, partner), np.where(asc, partner, i)
            j //= 2
        k *= 2


def sort(x: SharedTensor) -> SharedTensor:
    """Sort along the last axis (ascending) with a bitonic network."""
    if x.ndim == 0:
        raise ValueError("sort needs at least a 1-D SharedTensor")
    n = x.shape[-1]
    size = 1 << max(0, (n - 1).bit_length())
    share = x.share
    if size > n:  # pad with a value above the range: sorts to the end, then dropped
        pad = np.full(x.shape[:-1] + (size - n,), (1 << 61) if x.ctx.rank == 0 else 0, np.uint64)
        share = np.concatenate([share, pad], axis=-1)
    v = x._new(share.copy())
    for lo_idx, hi_idx in _bitonic_stages(size):
        a, b = v[..., lo_idx], v[..., hi_idx]
        gt = a > b
        m = gt * (b - a)
        new = v.share.copy()
        new[..., lo_idx] = (a + m).share
        new[..., hi_idx] = (b - m).share
        v = v._new(new)
    return v[..., :n]


def _fixed(x: SharedTensor) -> SharedTensor:
    return x if x.is_fixed else x._lift(x.working_bits)


def scale_pow2(x: SharedTensor, onehot: SharedTensor, exps: Sequence[int]) -> SharedTensor:
    """x * 2^exps[m] on the encoded ring integers, where m is the secret row set in the
    0/1 tensor ``onehot`` (shape (P, *s), s broadcastable with x's shape; e.g.
    ``top_bit_onehot``), and the public ``exps`` has P entries. Every candidate shift is
    applied publicly (left shifts locally, right shifts in one truncation by the public
    constants -exps) and the one-hot selects one with one multiplication; one or two rounds.
    The dealer sees the constants ``exps`` only."""
    exps = [int(e) for e in exps]
    if onehot.shape[0] != len(exps):
        raise ValueError(f"scale_pow2: {onehot.shape[0]} one-hot rows for {len(exps)} exponents")
    shape = np.broadcast_shapes(x.shape, onehot.shape[1:])
    share = np.broadcast_to(x.share, shape)
    rows: list[np.ndarray | None] = [None] * len(exps)
    neg = [k for k, e in enumerate(exps) if e < 0]
    for k, e in enumerate(exps):
        if e >= 0:
            rows[k] = share << np.uint64(e)
    if neg:
        stacked = np.broadcast_to(share, (len(neg),) + shape)
        bits = np.array([-exps[k] for k in neg], dtype=np.uint64).reshape((-1,) + (1,) * len(shape))
        cut = beaver.truncate(x.ctx, np.ascontiguousarray(stacked), bits)
        for i, k in enumerate(neg):
            rows[k] = cut[i]
    oh = np.ascontiguousarray(np.broadcast_to(
        onehot.share.reshape(onehot.shape[:1] + (1,) * (len(shape) + 1 - onehot.ndim) + onehot.shape[1:]),
        (len(exps),) + shape))
    prod = beaver.mul(x.ctx, oh, np.stack(rows))
    return x._new(np.sum(prod, axis=0, dtype=np.uint64))


def _normalised_reciprocal(y: SharedTensor):
    """(sign, onehot, exps, w): y = sign * z * 2^(m+1-f) with z in [0.5, 1) and w ~ 1/z."""
    y = _fixed(y)
    f = y.frac_bits
    sign = 1 - 2 * (y < 0)
    ay = y * sign
    oh = ay.top_bit_onehot()
    exps = [f - m - 1 for m in range(oh.shape[0])]
    z = scale_pow2(ay, oh, exps)
    w = 2.9142 - 2 * z
    for _ in range(3):
        w = w * (2 - z * w)
    return sign, oh, exps, w


CHUNK = 1 << 16  # elements per pass of the bit-level functions (they use ~62x memory)


def _chunked(fn, *tensors: SharedTensor) -> SharedTensor:
    """Apply an elementwise fn to same-shape tensors in chunks of CHUNK elements."""
    first = tensors[0]
    if first.size <= CHUNK:
        return fn(*tensors)
    flat = [t.flatten() for t in tensors]
    parts = [fn(*[t[i:i + CHUNK] for t in flat]) for i in range(0, first.size, CHUNK)]
    return concatenate(parts).reshape(first.shape)


def reciprocal(x: SharedTensor) -> SharedTensor:
    """1/x elementwise (fixed point; 0 for x == 0); see module docstring for precision."""
    return _chunked(_reciprocal, x)


def _reciprocal(x: SharedTensor) -> SharedTensor:
    sign, oh, exps, w = _normalised_reciprocal(x)
    return scale_pow2(w, oh, exps) * sign


def divide(x: Any, y: SharedTensor) -> SharedTensor:
    """x / y for a SharedTensor y (0 where y == 0): x is scaled by y's secret power of two
    first, so the absolute error stays a few ulp whatever the magnitude of y."""
    xt = _fixed(y._coerce(x))
    try:
        shape = np.broadcast_shapes(xt.shape, y.shape)
    except ValueError:
        raise ValueError(f"shape mismatch: {xt.shape} / {y.shape}") from None
    xt = xt._new(_contiguous(np.broadcast_to(xt.share, shape)))
    yt = y._new(_contiguous(np.broadcast_to(y.share, shape)))
    return _chunked(_divide, xt, yt)


def _divide(xt: SharedTensor, y: SharedTensor) -> SharedTensor:
    sign, oh, exps, w = _normalised_reciprocal(y)
    return (scale_pow2(xt, oh, exps) * w) * sign


def _sqrt_pair(x: SharedTensor) -> tuple[SharedTensor, SharedTensor]:
    x = _fixed(x)
    f = x.frac_bits
    oh = x.top_bit_onehot()
    js = [-((f - m - 1) // 2) for m in range(oh.shape[0])]   # ceil((m + 1 - f) / 2)
    z = scale_pow2(x, oh, [-2 * j for j in js])
    y = 2.2 - z * 1.25
    h = z * 0.5
    for _ in range(3):
        y = y * (1.5 - h * (y * y))
    inv = scale_pow2(y, oh, [-j for j in js])
    root = scale_pow2(z * y, oh, js)
    return inv, root


def inv_sqrt(x: SharedTensor) -> SharedTensor:
    """1/sqrt(x) for x > 0 (0 for x == 0)."""
    return _chunked(lambda t: _sqrt_pair(t)[0], x)


def sqrt(x: SharedTensor) -> SharedTensor:
    """sqrt(x) for x >= 0."""
    return _chunked(lambda t: _sqrt_pair(t)[1], x)
