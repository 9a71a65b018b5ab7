"""Seed-compressed trusted dealer: the ``dealer`` helper party and the client side.

At the start of a job the dealer sends every computing party a fresh 16-byte seed (OS
CSPRNG) for an AES-CTR PRG (:class:`mpc.crypto.random.PRG`). For every request each
computing party expands its own shares locally from its PRG, in the same call order; the
dealer expands all of them too and sends the LAST party only the correction that makes
the shares satisfy the relation (c = a*b, ...). So only the last party talks to the
dealer, and dealer traffic is about 1/N of sending every share.

Reveals: the dealer learns the shapes of the requests and the shift a truncation request
names (never data, never opened values); parties learn uniformly random shares. Callers
name only shifts fixed by public parameters (frac_bits, row counts, constants); a shift
that comes from opened data goes through :func:`mpc.ss.beaver.truncate_hidden` (the
request names a public limit) or :func:`~mpc.ss.beaver.truncate_private` (a
bit-decomposed pair, ``trunc_bits``, that names no shift). Security assumes the dealer
colludes with no computing party (semi-honest, as everywhere in gaotie).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from mpc.crypto.random import PRG, new_seed, row_permutations
from mpc.runtime.context import Context
from mpc.runtime.helpers import register_helper
from mpc.ss import provider
from mpc.ss.dealer_join import serve_match
from mpc.ss.provider import DEALER
from mpc.ss.triples import Shape, check_shape, matmul_shape

_LOW63 = np.uint64((1 << 63) - 1)


def _draw(prg: PRG, op: str, req: dict[str, Any], rank: int, parties: int) -> dict[str, np.ndarray | None]:
    """The pieces party ``rank`` (of ``parties``) expands from its PRG for a request (same
    order everywhere). Pieces a party gets from the dealer instead are None for it.
    """
    shape = tuple(req["shape"])
    last = rank == parties - 1
    out: dict[str, np.ndarray | None] = {}
    if op in ("arith", "bool"):
        out["a"] = prg.uint64(shape)
        out["b"] = prg.uint64(shape)
        out["c"] = None if last else prg.uint64(shape)
    elif op == "matmul":
        shape_b = tuple(req["shape_b"])
        out["a"] = prg.uint64(shape)
        out["b"] = prg.uint64(shape_b)
        shape_c = matmul_shape(shape, shape_b)
        out["c"] = None if last else prg.uint64(shape_c)
    elif op == "trunc":
        out["r"] = prg.uint64(shape)
        out["top"] = None if last else prg.uint64(shape)
        out["low"] = None if last else prg.uint64(shape)
    elif op == "trunc_bits":
        out["r"] = prg.uint64(shape)
        out["top"] = None if last else prg.uint64(shape)
        out["bits"] = None if last else prg.uint64((63,) + shape)
    elif op == "edabit":
        out["r"] = prg.uint64(shape)
        out["rb"] = None if last else prg.uint64(shape)
    elif op == "dabit":
        out["bb"] = prg.uint64(shape) & np.uint64(1)
        out["ba"] = None if last else prg.uint64(shape)
    elif op == "shuffle":
        out.update(_draw_shuffle(prg, shape, rank, parties, bool(req.get("joint", False))))
    else:
        raise ValueError(f"unknown dealer request {op!r}")
    return out


def _permutations(prg: PRG, shape: Shape) -> np.ndarray:
    """One uniformly random permutation per row of a (rows, n) shape from the dealer PRG
    (:func:`mpc.crypto.random.row_permutations`: argsort of 128-bit keys)."""
    return row_permutations(shape, prg)


def _shuffle_fixer(j: int, parties: int) -> int:
    """The party that receives the dealer's correction in shuffle round j: the last party,
    except in the round the last party permutes, where it is the first."""
    return 0 if j == parties - 1 else parties - 1


def _draw_shuffle(prg: PRG, shape: Shape, rank: int, parties: int,
                  joint: bool = False) -> dict[str, np.ndarray | None]:
    """Round j of the shuffle: party j draws its permutations (one per row, see
    ``_permutations``; ``joint``: one permutation, shape (1, n), for all rows) and the mask s it adds to its permuted
    share (without s, the party fixing the round would receive its own masks permuted,
    and so learn the permutation); every other party draws the mask r it sends, and its
    new share q (None for the party that gets the dealer's correction)."""
    out: dict[str, np.ndarray | None] = {}
    for j in range(parties):
        if j == rank:
            out[f"perm{j}"] = _permutations(prg, (1, shape[1]) if joint else shape)
            out[f"s{j}"] = prg.uint64(shape)
        else:
            out[f"r{j}"] = prg.uint64(shape)
            out[f"q{j}"] = None if rank == _shuffle_fixer(j, parties) else prg.uint64(shape)
    return out


def _shuffle_corrections(pieces: list[dict]) -> dict[int, np.ndarray]:
    """Round j -> the new share of its fixer: perm_j applied to the masks the others sent,
    minus party j's mask s and the others' fresh shares, so that the new shares add up to
    the permuted value (s keeps the correction uniform to the fixer)."""
    n = len(pieces)
    out = {}
    for j in range(n):
        masks = _add([pieces[i][f"r{j}"] for i in range(n) if i != j])
        perm = np.broadcast_to(pieces[j][f"perm{j}"], masks.shape)
        fix = np.take_along_axis(masks, perm, axis=-1) - pieces[j][f"s{j}"]
        for i in range(n):
            if i != j and i != _shuffle_fixer(j, n):
                fix -= pieces[i][f"q{j}"]
        out[j] = fix
    return out


def _add(arrays: list[np.ndarray]) -> np.ndarray:
    total = arrays[0].copy()
    for a in arrays[1:]:
        total += a
    return total


def _xor(arrays: list[np.ndarray]) -> np.ndarray:
    total = arrays[0].copy()
    for a in arrays[1:]:
        total ^= a
    return total


def _corrections(op: str, req: dict[str, Any], pieces: list[dict]) -> list[np.ndarray]:
    """What the last party needs so that all parties' shares satisfy the op's relation."""
    others = pieces[:-1]

    def fix_add(name: str, value: np.ndarray) -> np.ndarray:
        return value - _add([p[name] for p in others]) if others else value

    def fix_xor(name: str, value: np.ndarray) -> np.ndarray:
        return value ^ _xor([p[name] for p in others]) if others else value

    if op == "arith":
        a, b = _add([p["a"] for p in pieces]), _add([p["b"] for p in pieces])
        return [fix_add("c", a * b)]
    if op == "matmul":
        a, b = _add([p["a"] for p in pieces]), _add([p["b"] for p in pieces])
        return [fix_add("c", np.matmul(a, b))]
    if op == "bool":
        a, b = _xor([p["a"] for p in pieces]), _xor([p["b"] for p in pieces])
        return [fix_xor("c", a & b)]
    if op == "trunc":
        r = _add([p["r"] for p in pieces])
        bits = np.asarray(req["bits"], dtype=np.uint64)
        return [fix_add("top", r >> np.uint64(63)), fix_add("low", (r & _LOW63) >> bits)]
    if op == "trunc_bits":
        r = _add([p["r"] for p in pieces])
        j = np.arange(63, dtype=np.uint64).reshape((63,) + (1,) * r.ndim)
        return [fix_add("top", r >> np.uint64(63)), fix_add("bits", (r >> j) & np.uint64(1))]
    if op == "edabit":
        return [fix_xor("rb", _add([p["r"] for p in pieces]))]
    if op == "dabit":
        return [fix_add("ba", _xor([p["bb"] for p in pieces]))]
    raise ValueError(f"unknown dealer request {op!r}")


def _check_request(msg: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
        raise ValueError("malformed dealer request")
    req = dict(msg)
    req["shape"] = check_shape(req.get("shape", ()))
    if req["op"] == "matmul":
        req["shape_b"] = check_shape(req.get("shape_b", ()))
    if req["op"] == "shuffle" and len(req["shape"]) != 2:
        raise ValueError("shuffle request needs a 2-D shape (rows, length)")
    if req["op"] == "shuffle" and not isinstance(req.get("joint", False), bool):
        raise ValueError("shuffle request's 'joint' must be a bool")
    if req["op"] == "trunc_bits":
        check_shape((64,) + req["shape"])        # 65 words per element: bound the memory
    if req["op"] == "trunc":
        bits = np.asarray(req.get("bits", 0))
        if bits.dtype.kind not in "iu" or bits.size == 0 or bits.min() < 0 or bits.max() > 62:
            raise ValueError("truncation request needs 0 <= bits <= 62")
        np.broadcast_shapes(bits.shape, req["shape"])
    return req["op"], req


def run_dealer(ctx: Context) -> dict[str, list[int]] | None:
    """The dealer helper party: seed every computing party, then answer the last one.

    Runs until the last computing party sends ``{"op": "done"}``; uses only ``ctx``, so it
    runs the same in-process (run_local) and as a party server. Returns what the dealer
    learned about the data, for its audit log: None, or ``{"join_sizes": [...]}`` (rows of
    each party and matched rows per dealer join).
    """
    seeds = {p: new_seed() for p in ctx.parties}
    for p in ctx.parties:
        ctx.send(p, seeds[p])
    prgs = [PRG(seeds[p]) for p in ctx.parties]
    last = ctx.parties[-1]
    n = len(prgs)
    learned: dict[str, list[int]] = {}
    while True:
        msg = ctx.recv(last)
        ctx.renew_deadline()     # a request is progress: a long job's timeout bounds the silences only
        if isinstance(msg, dict) and msg.get("op") == "done":
            break
        if isinstance(msg, dict) and msg.get("op") == "match":
            learned.setdefault("join_sizes", []).extend(serve_match(ctx, prgs, msg))
            continue
        op, req = _check_request(msg)
        pieces = [_draw(prg, op, req, i, n) for i, prg in enumerate(prgs)]
        if op == "shuffle":   # the last party fixes every round but its own, which the first fixes
            fixes = _shuffle_corrections(pieces)
            ctx.send(last, [fixes[j] for j in range(n - 1)])
            ctx.send(ctx.parties[0], fixes[n - 1])
        else:
            ctx.send(last, _corrections(op, req, pieces))
    for p in ctx.parties[:-1]:
        msg = ctx.recv(p)
        if not (isinstance(msg, dict) and msg.get("op") == "done"):
            raise ValueError(f"party {p!r} sent the dealer something other than 'done'")
    return learned or None


class DealerSource(provider.RandomnessProvider):
    """Client side of the dealer: expand own shares from the PRG; the last party asks."""

    name = DEALER
    capabilities = frozenset({provider.ARITHMETIC, provider.MATMUL, provider.BOOLEAN, provider.TRUNC_PAIR,
                              provider.TRUNC_PAIR_BITS, provider.EDABIT, provider.DABIT, provider.SHUFFLE,
                              provider.DEALER_JOIN, provider.PREFETCH})

    def __init__(self, ctx: Context) -> None:
        if DEALER not in ctx.helpers:
            raise ValueError(f"triples={DEALER!r} needs the helper party {DEALER!r} in the job")
        self.ctx = ctx
        self.last = ctx.party == ctx.parties[-1]
        seed = ctx.recv(DEALER)
        if not isinstance(seed, bytes):
            raise ValueError("the dealer sent a malformed seed")
        self.prg = PRG(seed)
        self._pending: deque[tuple] = deque()  # requests sent ahead of use (last party)

    @property
    def idle(self) -> bool:
        """No request sent ahead of use is waiting for its answer."""
        return not self._pending

    @staticmethod
    def _key(op: str, req: dict[str, Any]) -> tuple:
        return (op,) + tuple((k, np.asarray(v).tobytes(), np.shape(v)) for k, v in sorted(req.items()))

    def _send_request(self, op: str, req: dict[str, Any]) -> None:
        msg = {"op": op, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in req.items()}}
        self.ctx.send(DEALER, msg)
        self._pending.append(self._key(op, req))

    def _pieces(self, op: str, req: dict[str, Any]) -> dict[str, np.ndarray | None]:
        """All of this party's pieces of a request; the last party's come partly from the dealer."""
        pieces = _draw(self.prg, op, req, self.ctx.rank, len(self.ctx.parties))
        if self.last:
            if not self._pending:
                self._send_request(op, req)
            if self._pending.popleft() != self._key(op, req):
                raise RuntimeError("dealer requests were prefetched in a different order than used")
            fixes = self.ctx.recv(DEALER)
            missing = [k for k, v in pieces.items() if v is None]
            if not isinstance(fixes, list) or len(fixes) != len(missing):
                raise ValueError("the dealer sent a malformed correction")
            for k, v in zip(missing, fixes, strict=True):
                if not isinstance(v, np.ndarray) or v.dtype != np.uint64:
                    raise ValueError("the dealer sent a malformed correction")
                pieces[k] = v
        return pieces

    def _get(self, op: str, req: dict[str, Any], names: list[str]) -> list[np.ndarray]:
        pieces = self._pieces(op, req)
        return [pieces[k] for k in names]

    def prefetch(self, requests: list[tuple[str, Shape, Any]]) -> None:
        """Send the dealer the requests of the NEXT calls now (last party only), so that it
        computes the later ones while the parties use the earlier ones. ``requests`` are
        ("arith", shape, None) or ("trunc", shape, bits), in the order they will be used."""
        if not self.last:
            return
        for op, shape, bits in requests:
            req: dict[str, Any] = {"shape": check_shape(shape)}
            if op == "trunc":
                req["bits"] = np.asarray(bits, dtype=np.int64)
            elif op != "arith":
                raise ValueError(f"cannot prefetch {op!r}")
            self._send_request(op, req)

    def arithmetic(self, shape: Shape):
        return tuple(self._get("arith", {"shape": check_shape(shape)}, ["a", "b", "c"]))

    def matmul(self, shape_a: Shape, shape_b: Shape):
        req = {"shape": check_shape(shape_a), "shape_b": check_shape(shape_b)}
        return tuple(self._get("matmul", req, ["a", "b", "c"]))

    def boolean(self, shape: Shape):
        return tuple(self._get("bool", {"shape": check_shape(shape)}, ["a", "b", "c"]))

    def trunc_pair(self, shape: Shape, bits: Any):
        req = {"shape": check_shape(shape), "bits": np.asarray(bits, dtype=np.int64)}
        return tuple(self._get("trunc", req, ["r", "top", "low"]))

    def trunc_pair_bits(self, shape: Shape):
        """Shares of (r, r >> 63, the 63 low bits of r as a (63, *shape) array) for uniform r:
        a truncation pair for any shift, the request naming none."""
        return tuple(self._get("trunc_bits", {"shape": check_shape(shape)}, ["r", "top", "bits"]))

    def edabit(self, shape: Shape):
        return tuple(self._get("edabit", {"shape": check_shape(shape)}, ["r", "rb"]))

    def dabit(self, shape: Shape):
        return tuple(self._get("dabit", {"shape": check_shape(shape)}, ["ba", "bb"]))

    def shuffle_pieces(self, shape: Shape, jointly: bool = False) -> list[dict[str, np.ndarray]]:
        """This party's pieces of a dealer shuffle of a (rows, length) array, one dict per
        round j (the round in which party j permutes): ``{"perm": p, "mask": s}`` for party j
        itself, else ``{"mask": r, "share": q}``. ``jointly``: ``p`` is one permutation of
        shape (1, length) for every row. See :mod:`mpc.ss.shuffle`."""
        shape = check_shape(shape)
        if len(shape) != 2:
            raise ValueError(f"shuffle needs a 2-D shape (rows, length), got {shape}")
        n, me = len(self.ctx.parties), self.ctx.rank
        req: dict[str, Any] = {"shape": shape}
        if jointly:
            req["joint"] = True
        pieces = self._pieces("shuffle", req)
        if me == 0 and n > 1:       # the first party fixes the round in which the last permutes
            fix = self.ctx.recv(DEALER)
            if not isinstance(fix, np.ndarray) or fix.shape != shape or fix.dtype != np.uint64:
                raise ValueError("the dealer sent a malformed shuffle correction")
            pieces[f"q{n - 1}"] = fix
        return [{"perm": pieces[f"perm{j}"], "mask": pieces[f"s{j}"]} if j == me
                else {"mask": pieces[f"r{j}"], "share": pieces[f"q{j}"]} for j in range(n)]

    def shuffle(self, x: np.ndarray, jointly: bool = False) -> np.ndarray:
        """Shares of the (rows, length) ``x`` obliviously permuted, one round per computing
        party (see :mod:`mpc.ss.shuffle`): each row by its own permutation, or all rows by
        one (``jointly``)."""
        rounds = self.shuffle_pieces(x.shape, jointly)
        ctx = self.ctx
        for j, party in enumerate(ctx.parties):
            piece = rounds[j]
            if party == ctx.party:
                total = x.copy()
                for peer in ctx.peers:
                    got = ctx.recv(peer)
                    if not isinstance(got, np.ndarray) or got.shape != x.shape or got.dtype != np.uint64:
                        raise ValueError(f"party {peer!r} sent a shuffle share of the wrong shape or type")
                    total += got
                perm = np.broadcast_to(piece["perm"], x.shape)
                x = np.take_along_axis(total, perm, axis=-1) + piece["mask"]
            else:
                ctx.send(party, x - piece["mask"])
                x = piece["share"]
        return x

    def dealer_join(self, request: dict[str, np.ndarray]) -> Any:
        """Send the dealer this party's join request (see :mod:`mpc.ss.dealer_join`) and
        return its answer, unchecked."""
        msg = dict(request)
        if self.last:
            if not self.idle:
                raise RuntimeError("dealer requests are pending: the join must not run inside a prefetch")
            msg["op"] = "match"
        self.ctx.send(DEALER, msg)
        return self.ctx.recv(DEALER)

    def join_mask(self, shape: Shape) -> np.ndarray:
        """The mask M of the join just answered: the next words of this party's dealer PRG."""
        return self.prg.uint64(check_shape(shape))


register_helper("triples", DEALER, DEALER, run_dealer, default=True)
