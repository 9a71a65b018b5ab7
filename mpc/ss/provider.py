"""Correlated-randomness providers: the one interface every triple source implements.

A provider hands each computing party its *shares* of random values with a known
relation (Beaver triples, truncation pairs, edaBits...) or runs a small protocol with a
third party that needs no data (the dealer's shuffle and join). As CrypTen's
``TupleProvider``, the base class declares every capability; a source says which ones
it has in ``capabilities``, and calling one it lacks raises :class:`MissingCapability`
naming the capability and the source. Callers ask ``supports(cap)``, never ``hasattr``.

Which source a job uses is the runtime option ``triples``: ``"dealer"``, ``"ot"``,
``"paillier"`` (:func:`register_source` adds more) or ``"auto"``, the default, which the
runtime resolves per job (:func:`mpc.runtime.helpers.resolve_options`): the dealer when the
job's deployment has one (``run_local`` always does unless told ``triples="ot"``; a party
server when its config lists a ``dealer`` peer), otherwise ``"ot"``, for any
number of computing parties: two run :class:`mpc.ss.ot_triples.OtSource`, three or more
:class:`mpc.ss.ot_parties.OtParties` (the same capabilities: an N-party shuffle, the rest on
the first two parties; that module says what it does not protect against). The Paillier
source is two-party. What a job needs is
declared up front, so that a job that needs a capability its source lacks fails at start:
registry entries declare it (``ProtocolSpec.needs``, checked by every party server when it
prepares the job) and SPMD functions with :func:`needs` (checked by ``run_local`` before
any party starts). :func:`require` checks at the start of a protocol whose need depends on
its arguments (``private_join(method="dealer")``).

Reveals: nothing by itself; each source's module says what its helper (if any) learns.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from mpc.runtime.helpers import AUTO, register_fallback, register_start_check

if TYPE_CHECKING:
    from mpc.runtime.context import Context

Shape = tuple[int, ...]
Shares3 = tuple[np.ndarray, np.ndarray, np.ndarray]

# Capabilities: the names of the provider methods below.
ARITHMETIC = "arithmetic"          # Beaver triples (a, b, a*b), elementwise
MATMUL = "matmul"                  # matrix Beaver triples (A, B, A @ B)
BOOLEAN = "boolean"                # AND triples on 64-bit words
TRUNC_PAIR = "trunc_pair"          # truncation pairs for a named shift
TRUNC_PAIR_BITS = "trunc_pair_bits"  # bit-decomposed truncation pairs: the request names no shift
TRUNCATE = "truncate"              # the source's own truncation protocol (no pair)
EDABIT = "edabit"                  # r shared arithmetically and bitwise
DABIT = "dabit"                    # a bit shared arithmetically and bitwise
SHUFFLE = "shuffle"                # oblivious permutation of shared rows (per row, or one for all)
DEALER_JOIN = "dealer_join"        # a third party matches keyed tags and re-shares rows
PREFETCH = "prefetch"              # requests may be sent ahead of use
MSB_XOR = "msb_xor"                # the source's own two-party top-bit circuit on the two shares
EQZ_XOR = "eqz_xor"                # the source's own two-party zero test on the two shares
MUL = "mul"                        # the source multiplies two shared arrays itself (no triple, no opening)
CAPABILITIES = frozenset({ARITHMETIC, MATMUL, BOOLEAN, TRUNC_PAIR, TRUNC_PAIR_BITS, TRUNCATE, EDABIT,
                          DABIT, SHUFFLE, DEALER_JOIN, PREFETCH, MSB_XOR, EQZ_XOR, MUL})
# What SharedTensor arithmetic and comparisons use on every source.
SECRET_SHARING = (ARITHMETIC, BOOLEAN, EDABIT, DABIT)

DEALER = "dealer"   # the dealer helper party's name, and its value of the runtime option triples
DEFAULT_SOURCE = AUTO   # resolved per job: the dealer if the deployment has one, else "ot"
NO_DEALER_SOURCE = "ot"


class MissingCapability(ValueError):
    """A job needs a capability its randomness source does not provide."""

    def __init__(self, capability: str, source: str | None, what: str = "this job") -> None:
        if source is None:
            text = (f"{what} needs correlated randomness ({capability!r}), but the job has no "
                    f"randomness source (runtime option triples=None: pass triples='ot' for the "
                    f"dealer-free OT source, or add a 'dealer' peer)")
        else:
            have = ", ".join(sorted(source_class(source).capabilities)) if source in _SOURCES else "?"
            text = (f"{what} needs {capability!r}, which the randomness source {source!r} "
                    f"(runtime option triples={source!r}) does not provide (it provides: {have})")
        super().__init__(text)
        self.capability = capability
        self.source = source


class RandomnessProvider:
    """Base class of the correlated-randomness sources; every method returns this party's
    shares (numpy uint64: arithmetic shares sum to the value mod 2^64, boolean ones XOR to
    it). A subclass lists what it implements in ``capabilities``; the rest raise
    :class:`MissingCapability`."""

    name: ClassVar[str] = "?"
    capabilities: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def supports(cls, capability: str) -> bool:
        """Whether this source provides ``capability`` (one of :data:`CAPABILITIES`)."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}; known: {', '.join(sorted(CAPABILITIES))}")
        return capability in cls.capabilities

    def _missing(self, capability: str) -> MissingCapability:
        return MissingCapability(capability, self.name)

    def arithmetic(self, shape: Shape) -> Shares3:
        """Shares of (a, b, a*b) with a, b uniform in Z_2^64."""
        raise self._missing(ARITHMETIC)

    def matmul(self, shape_a: Shape, shape_b: Shape) -> Shares3:
        """Shares of (A, B, A @ B) for uniform matrices A, B."""
        raise self._missing(MATMUL)

    def boolean(self, shape: Shape) -> Shares3:
        """XOR shares of (a, b, a & b) for uniform 64-bit words a, b."""
        raise self._missing(BOOLEAN)

    def trunc_pair(self, shape: Shape, bits: Any) -> Shares3:
        """Arithmetic shares of (r, r >> 63, (r mod 2^63) >> bits) for uniform r."""
        raise self._missing(TRUNC_PAIR)

    def trunc_pair_bits(self, shape: Shape) -> Shares3:
        """Shares of (r, r >> 63, the 63 low bits of r as a (63, *shape) array) for uniform
        r: a truncation pair for any shift, the request naming none."""
        raise self._missing(TRUNC_PAIR_BITS)

    def truncate(self, x: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Shares of floor(x / 2^bits) + {0 or 1} for signed |x| < 2^62, by the source's own
        protocol between the computing parties (no third party sees any shift)."""
        raise self._missing(TRUNCATE)

    def edabit(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """Shares of a uniform r: arithmetic and boolean (bitwise XOR)."""
        raise self._missing(EDABIT)

    def dabit(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """Shares of a uniform bit b: arithmetic and boolean (XOR, in bit 0)."""
        raise self._missing(DABIT)

    def msb_xor(self, x: np.ndarray, bits: int = 64) -> np.ndarray:
        """XOR shares (bit 0) of the top bit of the arithmetically shared ``x``, by a circuit
        over the two parties' shares themselves (two-party sources; no edaBit needed).
        ``bits``: x is known to be a signed integer of that many bits (public), so the
        circuit may work on fewer bits."""
        raise self._missing(MSB_XOR)

    def mul(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Shares of x * y (elementwise, flat uint64 shares of one shape) by the source's own
        two-party protocol on the shares themselves (cross products, no Beaver triple)."""
        raise self._missing(MUL)

    def eqz_xor(self, x: np.ndarray, bits: int = 64) -> np.ndarray:
        """XOR shares (bit 0) of [x == 0] for the arithmetically shared ``x`` (only its low
        ``bits`` bits count, public), by a protocol over the two parties' shares themselves
        (two-party sources)."""
        raise self._missing(EQZ_XOR)

    def shuffle(self, x: np.ndarray, jointly: bool = False) -> np.ndarray:
        """Fresh shares of the (rows, length) uint64 share array ``x`` obliviously permuted:
        each row by its own uniformly random permutation, or (``jointly``) every row by one,
        that no single computing party knows (see :mod:`mpc.ss.shuffle`)."""
        raise self._missing(SHUFFLE)

    def dealer_join(self, request: dict[str, np.ndarray]) -> Any:
        """Send a join request (keyed tags and masked rows) to the third party and return
        its answer, unchecked (see :mod:`mpc.ss.dealer_join`)."""
        raise self._missing(DEALER_JOIN)

    def join_mask(self, shape: Shape) -> np.ndarray:
        """This party's mask M of the join just answered (for the peer's columns)."""
        raise self._missing(DEALER_JOIN)

    def prefetch(self, requests: list[tuple[str, Shape, Any]]) -> None:
        """Announce the requests of the next calls, in order (("arith", shape, None) or
        ("trunc", shape, bits)); a no-op for sources without :data:`PREFETCH`."""


# -- sources by name ----------------------------------------------------------------------
# kind -> (module, class), imported on first use (the Paillier source needs gmpy2).
_SOURCES: dict[str, tuple[str, str]] = {
    DEALER: ("mpc.ss.dealer", "DealerSource"),
    "paillier": ("mpc.ss.paillier_triples", "PaillierSource"),
    "ot": ("mpc.ss.ot_triples", "OtSource"),
}
# kind -> (module, class) for three or more computing parties, where it differs
_MULTI_SOURCES: dict[str, tuple[str, str]] = {
    "ot": ("mpc.ss.ot_parties", "OtParties"),
}


def register_source(kind: str, module: str, cls: str) -> None:
    """Make ``triples=kind`` select the provider class ``module.cls`` (a module of gaotie)."""
    if kind in _SOURCES and _SOURCES[kind] != (module, cls):
        raise ValueError(f"randomness source {kind!r} is registered twice")
    _SOURCES[kind] = (module, cls)


def source_kinds() -> list[str]:
    return sorted(_SOURCES)


def source_class(kind: str, parties: int = 2) -> type[RandomnessProvider]:
    """The provider class that the runtime option ``triples=kind`` selects for a job of
    ``parties`` computing parties (``"ot"``: a different class for three or more, with the
    same capabilities)."""
    if kind not in _SOURCES:
        raise ValueError(f"unknown triple source {kind!r}; use triples="
                         + " or ".join(repr(k) for k in source_kinds()))
    module, name = _MULTI_SOURCES[kind] if parties > 2 and kind in _MULTI_SOURCES else _SOURCES[kind]
    return getattr(importlib.import_module(module), name)


def source_kind(options: Mapping[str, Any]) -> str | None:
    """The job's source kind from its (resolved) runtime options (None: the job has none).
    Options that still say ``"auto"`` (built by hand, not by the runtime) mean the dealer."""
    kind = options.get("triples", DEFAULT_SOURCE)
    return DEALER if kind == AUTO else kind


def without_dealer(parties: Sequence[str]) -> str | None:
    """What ``triples="auto"`` means in a deployment without a dealer: ``"ot"``, for any
    number of computing parties (:func:`source_class`)."""
    return NO_DEALER_SOURCE


def check(capabilities: Iterable[str], options: Mapping[str, Any], what: str = "this job") -> None:
    """Raise :class:`MissingCapability` unless the job's source provides every capability."""
    capabilities = list(capabilities)
    if not capabilities:
        return
    kind = source_kind(options)
    cls = None if kind is None else source_class(kind)
    for cap in capabilities:
        if cls is None or not cls.supports(cap):
            raise MissingCapability(cap, kind, what)


def require(ctx: Context, capability: str, what: str = "this protocol") -> None:
    """Check at the start of a protocol that the job's source provides ``capability``."""
    check([capability], ctx.options, what)


F = TypeVar("F", bound=Callable[..., Any])
_NEEDS_ATTR = "__gaotie_needs__"


def needs(*capabilities: str) -> Callable[[F], F]:
    """Declare the capabilities an SPMD function needs; ``run_local`` checks them at start."""
    unknown = set(capabilities) - CAPABILITIES
    if unknown:
        raise ValueError(f"unknown capability {sorted(unknown)[0]!r}")

    def mark(fn: F) -> F:
        setattr(fn, _NEEDS_ATTR, tuple(getattr(fn, _NEEDS_ATTR, ())) + capabilities)
        return fn
    return mark


def declared_needs(fn: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(getattr(fn, _NEEDS_ATTR, ()))


def check_job(fn: Callable[..., Any], options: Mapping[str, Any], parties: Sequence[str]) -> None:
    """The check ``run_local`` runs before any party starts (registered with the runtime):
    the job's source provides what ``fn`` declared with :func:`needs`."""
    if len(parties) > 1:
        check(declared_needs(fn), options, getattr(fn, "__qualname__", "this job"))


register_start_check(check_job)
register_fallback("triples", without_dealer)
