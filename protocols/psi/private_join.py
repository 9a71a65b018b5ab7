"""private_join: the rows whose id both parties hold, with every column secret-shared.

Two parties, A (rank 0, the *matcher*) and B. Each passes unique ids and a dict of numpy
columns (or a DataFrame). The result is a :class:`SharedTable` of the intersection rows,
in an order neither party can link to its own rows; every cell is additively shared over
Z_2^64 (a :class:`~mpc.ss.SharedTensor` per column).

1. ECDH: A sends H(a)^α in a secret order π_A; B returns them raised to β and shuffled
   by its secret σ_B. B sends H(b)^β in its secret order π_B; A raises them to α. A
   matches the two lists: pairs (i_k, q_k) where i_k is a position in σ_B order and q_k
   a position in π_B order. A fixes the output order k by sorting on the double-blinded
   points (pseudorandom) and sends B the i_k only.
2. Oblivious selection of A's columns: A encrypts its rows (π_A order, all columns of a
   row packed into one Paillier plaintext, 135-bit slots) under its own fresh key and
   sends them to B. B maps i_k to A's π_A position p_k = σ_B[i_k], takes those
   ciphertexts, adds a fresh random mask r_k (134 bits per slot: the masked value hides
   the cell to statistical distance 2^-70, 2^-40 over 2^30 cells), packs several rows into one ciphertext
   (Horner: c <- c^(2^w)·c'), re-randomises and returns them. A decrypts: its share is
   (cell + r_k) mod 2^64, B's share is -r_k mod 2^64. The layout and the masking are
   :mod:`mpc.paillier.packing` (``encrypt_rows``, ``mask_rows``, ``decrypt_rows``).
3. The same for B's columns with the roles swapped, at the same time: B encrypts, A
   selects rows q_k (both parties encrypt, then both select, then both decrypt).

Reveals (semi-honest, no collusion): both parties learn both id counts and the number
of joined rows. B learns positions p_k in A's secret order π_A and A learns positions
q_k in B's secret order π_B: uniformly random information that links no row. A learns
i_k in B's secret order σ_B. Neither party learns which of its rows (or the other's)
are in the join, nor links an output row to an input row; column names and fixed-point
scales are public. Float columns use the job's ``frac_bits`` (default 16) fixed point.

Cost: each party encrypts all its rows once (one Paillier ciphertext per row and per 15
columns) and decrypts about rows·columns/15 ciphertexts of the joined rows.
Only two parties are supported.

``method="dealer"`` replaces steps 1-3 by the job's dealer (:mod:`mpc.ss.dealer_join`):
A draws a PRF key and a mask seed per table and gives them to B; each party sends the
dealer, in a secret row order, AES-CBC-MAC tags of its ids under that key and its rows
minus the masks; the dealer intersects the tags and re-shares the matched masked rows
(in a random order) with masks of its own. No public-key operation per row: 2^20 x 2^20
ids join in seconds instead of minutes. It reveals the same to A and B as above, and
to the dealer both id counts and the number of joined rows (never ids or values);
it assumes, as every dealer protocol, that the dealer colludes with neither party.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mpc.crypto import curve
from mpc.crypto.random import SEED_BYTES
from mpc.runtime.context import Context
from protocols.psi.blocks import TEXT_ENCODING, prepare_rows
from protocols.psi.common import (
    DEFAULT_BUCKET,
    DEFAULT_COMPARE_BYTES,
    as_keys,
    exchange_header,
    prepare,
    shuffled,
)
from protocols.psi.oprf import DEFAULT_OPRF_BUCKET
from protocols.psi.two_party import _buckets, _check_points

GROUP = "x25519"


class SharedTable:
    """A secret-shared table: ``num_rows``, ``columns`` (``party.name``), ``table[name]``.

    ``row_order``: a :class:`mpc.ss.order.RowOrder` when the rows are in a uniformly random
    order unknown to each party with a secret distinct label per row (the dealer-free
    circuit join's), else None; the statistics' first selection that fits runs on it
    without a shuffle (:mod:`protocols.stats.vertical`).

    ``ranks``: after a circuit join with ``ranks=True``, qualified name -> (this party's
    shares of each joined row's rank in its owner's whole input column, their public bit
    count; with given ranks, the caller's, e.g. the bucketed join's over all buckets):
    distinct integers that order the rows like the column (ties broken by the owner's input
    order), for the selection's narrow keys (``mpc.ss.order.ranked_keys``)."""

    def __init__(self, columns: Mapping[str, Any], num_rows: int, row_order: Any = None,
                 ranks: Mapping[str, tuple[Any, int]] | None = None) -> None:
        self._columns = dict(columns)
        self.num_rows = int(num_rows)
        self.row_order = row_order
        self.ranks = dict(ranks or {})

    @property
    def columns(self) -> list[str]:
        """Qualified column names ``party.name``, in party order then input order."""
        return list(self._columns)

    def __len__(self) -> int:
        return self.num_rows

    def __contains__(self, name: object) -> bool:
        try:
            self._resolve(name)  # type: ignore[arg-type]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def _resolve(self, name: str) -> str:
        if name in self._columns:
            return name
        matches = [q for q in self._columns if q.split(".", 1)[1] == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise KeyError(f"column {name!r} is held by several parties; use one of {matches}")
        raise KeyError(f"no column {name!r}; columns are {self.columns}")

    def __getitem__(self, name: str):
        """The SharedTensor of column ``name`` (unqualified when only one party has it)."""
        return self._columns[self._resolve(name)]

    def __repr__(self) -> str:
        return f"SharedTable(num_rows={self.num_rows}, columns={self.columns})"


def _as_columns(columns: Any, n_rows: int) -> dict[str, np.ndarray]:
    if columns is None:
        return {}
    if hasattr(columns, "columns") and hasattr(columns, "to_numpy"):  # pandas DataFrame
        columns = {str(c): columns[c].to_numpy() for c in columns.columns}
    if not isinstance(columns, Mapping):
        raise TypeError(f"columns must be a dict of arrays or a DataFrame, not {type(columns).__name__}")
    out = {}
    for name, col in columns.items():
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"column name {name!r} must be a non-empty str without '.'")
        arr = np.asarray(col)
        if arr.ndim != 1 or len(arr) != n_rows:
            raise ValueError(f"column {name!r} has shape {arr.shape}; expected one value per id ({n_rows})")
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"column {name!r} has dtype {arr.dtype}; only numbers can be shared")
        out[name] = arr
    return out


def _encode_columns(ctx: Context, cols: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    from mpc.ss import fixed
    rings, fracs = [], []
    f = fixed.frac_bits(ctx)
    for name, arr in cols.items():
        if arr.dtype.kind == "f":
            rings.append(fixed.encode(arr, f, f"column {name!r}"))
            fracs.append(f)
        else:
            rings.append(fixed.encode_int(arr, f"column {name!r}"))
            fracs.append(0)
    return rings, fracs


def _given_ranks(given: Mapping[str, Any], names: list[str], n: int, rows: Any) -> list[np.ndarray]:
    """The caller's owner ranks (one array of n per column of ``names``, below ``rows``) as
    ring words, checked (:func:`private_join`'s ``ranks`` mapping)."""
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < n:
        raise ValueError(f"rank_rows must be an int of at least the {n} rows, got {rows!r}")
    if set(given) != set(names):
        raise ValueError(f"ranks are given for {sorted(given)}, the columns are {names}")
    from mpc import ss
    return [ss.order.rank_words(given[name], n, rows, f"column {name!r}") for name in names]


class _Selector:
    """Selector side: keep the peer's encrypted rows ``wanted`` as its buckets stream in, then
    return them masked and packed (in output order). ``finish`` gives this party's shares."""

    def __init__(self, ctx: Context, peer: str, wanted: np.ndarray, n_rows: int, n_cols: int) -> None:
        from mpc.paillier import PublicKey, packing
        self.ctx, self.peer = ctx, peer
        self.pk = ctx.recv(peer)
        if not isinstance(self.pk, PublicKey):
            raise ValueError(f"party {peer!r} sent no Paillier public key")
        self.groups = packing.row_groups(self.pk, n_cols)
        # Only the wanted rows are kept (memory: joined rows, not the peer's whole table).
        self.slot_of = np.full(n_rows, -1, dtype=np.int64)
        self.slot_of[wanted] = np.arange(len(wanted))
        self.kept: list[list[Any]] = [[] for _ in self.groups]   # per group: EncryptedVectors
        self.order: list[np.ndarray] = []                        # their output positions

    def take(self, s: slice) -> None:
        from mpc.paillier import EncryptedVector
        here = self.slot_of[s]
        keep = np.nonzero(here >= 0)[0]
        self.order.append(here[keep])
        for g in range(len(self.groups)):
            ev = self.ctx.recv(self.peer)
            if not isinstance(ev, EncryptedVector) or ev.public_key != self.pk or len(ev) != s.stop - s.start:
                raise ValueError(f"party {self.peer!r} sent a malformed ciphertext bucket")
            self.kept[g].append(ev[keep])

    def finish(self) -> list[np.ndarray]:
        from mpc.paillier import EncryptedVector, packing
        order = np.concatenate(self.order) if self.order else np.zeros(0, np.int64)
        rank = np.argsort(order, kind="stable")   # kept rows -> output order
        shares: list[np.ndarray] = []
        for g, cols in enumerate(self.groups):
            rows = EncryptedVector.concat(self.kept[g])[rank] if self.kept[g] else self.pk.encrypt([])
            self.kept[g] = []
            masked, mine = packing.mask_rows(rows, len(cols))
            self.ctx.send(self.peer, masked)
            shares.extend(mine)
        return shares


def _owner_start(ctx: Context, peer: str, key_bits: int):
    """Owner side: a fresh Paillier key pair; the public key (n and its DJN base) goes to the peer."""
    from mpc.paillier import generate_keypair
    pk, sk = generate_keypair(key_bits, insecure=key_bits < 2048)
    ctx.send(peer, pk)
    return pk, sk


def _owner_send(ctx: Context, peer: str, pk, rings: list[np.ndarray], rows: np.ndarray) -> None:
    """Owner side: encrypt one bucket of own rows (all columns of a row packed) and send it."""
    from mpc.paillier import packing
    for cols in packing.row_groups(pk, len(rings)):
        ctx.send(peer, packing.encrypt_rows(pk, [rings[c][rows] for c in cols]))


def _owner_receive(ctx: Context, peer: str, keys, n_cols: int, m: int) -> list[np.ndarray]:
    """Owner side, second half: decrypt the masked joined rows into this party's shares."""
    from mpc.paillier import EncryptedVector, packing
    pk, sk = keys
    shares: list[np.ndarray] = []
    for cols in packing.row_groups(pk, n_cols):
        ev = ctx.recv(peer)
        if not isinstance(ev, EncryptedVector):
            raise ValueError(f"party {peer!r} sent a malformed joined-rows vector")
        try:
            shares.extend(packing.decrypt_rows(sk, ev, m, len(cols)))
        except ValueError:
            raise ValueError(f"party {peer!r} sent a malformed joined-rows vector") from None
    return shares


def _recv_buckets(ctx: Context, peer: str, rows: int, bucket: int, width: int) -> np.ndarray:
    parts = [_check_points(ctx, peer, ctx.recv(peer), s.stop - s.start, width)
             for s in _buckets(rows, bucket)]
    return np.concatenate(parts) if parts else np.zeros((0, width), np.uint8)


def _ecdh_join(ctx: Context, prepared, rings: list[np.ndarray], peer_n: int, peer_cols: int,
               params: dict[str, Any]) -> tuple[int, list[np.ndarray], list[np.ndarray]]:
    """ECDH matching and Paillier oblivious selection (steps 1-3 of the module docstring)."""
    key_bits, compare_bytes, bucket_size = params["key_bits"], params["compare_bytes"], params["bucket_size"]
    peer = ctx.peers[0]
    key = curve.new_key(GROUP)
    matcher = ctx.rank == 0
    n = prepared.n_rows
    ctx.report_progress(phase="private join: matching ids (ECDH)")
    pi = shuffled(n)
    mine = curve.hash_to_group(GROUP, prepared.digests[pi], key)

    if matcher:
        for s in _buckets(n, bucket_size):
            ctx.send(peer, mine[s])
        del mine
        mine_ab = _recv_buckets(ctx, peer, n, bucket_size, compare_bytes)
        theirs = _recv_buckets(ctx, peer, peer_n, bucket_size, curve.POINT_BYTES)
        theirs_ab = curve.scalar_mul(GROUP, key, theirs)[:, :compare_bytes]
        keys_a, keys_b = as_keys(mine_ab, compare_bytes), as_keys(theirs_ab, compare_bytes)
        common, i_pos, q_pos = np.intersect1d(keys_a, keys_b, assume_unique=True, return_indices=True)
        # intersect1d returns pairs sorted by the double-blinded value: a pseudorandom order.
        ctx.send(peer, i_pos.astype(np.int64))
        m = len(common)
        wanted = q_pos
    else:
        got = _recv_buckets(ctx, peer, peer_n, bucket_size, curve.POINT_BYTES)
        theirs_ab = curve.scalar_mul(GROUP, key, got)[:, :compare_bytes]
        sigma = shuffled(peer_n)
        theirs_ab = np.ascontiguousarray(theirs_ab[sigma])
        for s in _buckets(peer_n, bucket_size):
            ctx.send(peer, theirs_ab[s])
        del theirs_ab
        for s in _buckets(n, bucket_size):
            ctx.send(peer, mine[s])
        del mine
        i_pos = ctx.recv(peer)
        if (not isinstance(i_pos, np.ndarray) or i_pos.dtype.kind != "i" or i_pos.ndim != 1
                or (len(i_pos) and (i_pos.min() < 0 or i_pos.max() >= peer_n))
                or len(np.unique(i_pos)) != len(i_pos) or len(i_pos) > min(n, peer_n)):
            raise ValueError(f"party {peer!r} sent malformed join positions")
        m = len(i_pos)
        wanted = sigma[i_pos]

    # Both tables at once, bucket by bucket (memory stays bounded): each party encrypts and
    # sends its rows (in its order pi) while keeping the joined rows of the peer's table;
    # then it returns those masked and decrypts its own masked joined rows.
    keys = _owner_start(ctx, peer, key_bits) if rings else None
    selector = _Selector(ctx, peer, wanted, peer_n, peer_cols) if peer_cols else None
    own_b = _buckets(n, bucket_size) if rings else []
    peer_b = _buckets(peer_n, bucket_size) if peer_cols else []
    steps = max(len(own_b), len(peer_b))
    for i in range(steps):
        if i < len(own_b):
            _owner_send(ctx, peer, keys[0], rings, pi[own_b[i]])
        if i < len(peer_b):
            selector.take(peer_b[i])
        ctx.report_progress(phase="private join: encrypting rows (Paillier)", done=i + 1, total=steps, unit="batches")
    ctx.report_progress(phase="private join: masking and decrypting the joined rows (Paillier)")
    their_shares = selector.finish() if selector else []
    my_shares = _owner_receive(ctx, peer, keys, len(rings), m) if rings else []
    return m, my_shares, their_shares


def _tags(key: bytes, digests: np.ndarray) -> np.ndarray:
    """Keyed tags of 32-byte digests: AES-CBC-MAC over the two blocks (a PRF on fixed-length
    input), 16 bytes per item, vectorised."""
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    n = len(digests)
    first = np.frombuffer(enc.update(np.ascontiguousarray(digests[:, :16]).tobytes()), np.uint8)
    chained = first.reshape(n, 16) ^ digests[:, 16:]
    return np.frombuffer(enc.update(chained.tobytes()), np.uint8).reshape(n, 16)


def _dealer_join(ctx: Context, prepared, rings: list[np.ndarray], peer_n: int, peer_cols: int,
                 params: dict[str, Any]) -> tuple[int, list[np.ndarray], list[np.ndarray]]:
    """The dealer matches keyed tags and re-shares the masked rows (see the module docstring)."""
    from mpc.ss.dealer_join import join_tables
    peer = ctx.peers[0]
    if ctx.rank == 0:                      # the PRF key and both tables' mask seeds, never seen by the dealer
        secret = secrets.token_bytes(16 + 2 * SEED_BYTES)
        ctx.send(peer, secret)
    else:
        secret = ctx.recv(peer)
        if not isinstance(secret, bytes) or len(secret) != 16 + 2 * SEED_BYTES:
            raise ValueError(f"party {peer!r} sent a malformed join key")
    seeds = [secret[16:16 + SEED_BYTES], secret[16 + SEED_BYTES:]]
    ctx.report_progress(phase="private join: matching keyed tags (dealer)")
    n = prepared.n_rows
    pi = shuffled(n)
    tags = _tags(secret[:16], prepared.digests[pi])
    return join_tables(ctx, tags, [r[pi] for r in rings], (seeds[0], seeds[1]), peer_n, peer_cols)


def _circuit_join(ctx: Context, prepared, rings: list[np.ndarray], peer_n: int, peer_cols: int,
                  params: dict[str, Any]) -> tuple[int, list[np.ndarray], list[np.ndarray], Any]:
    """Circuit PSI on cuckoo bins, no third party (:mod:`protocols.psi.circuit_join`); also
    the rows' RowOrder (without a dealer; else None)."""
    from protocols.psi.circuit_join import circuit_join
    return circuit_join(ctx, prepared, rings, peer_n, peer_cols, params)


# method name -> matching and selection: (rows, own shares, the peer's shares[, RowOrder or None])
JOINS = {"ecdh": _ecdh_join, "dealer": _dealer_join, "circuit": _circuit_join}


def resolve_method(ctx: Context, method: str) -> str:
    """``"auto"``: the dealer join when the job's randomness source is the dealer (the
    deployment has one and the job may use it), else the circuit join when the source
    deals what it needs (triples, daBits and the joint shuffle: the dealer-free ``"ot"``
    source of two companies alone), else ECDH (a job with no randomness source,
    ``triples=None``). Other names unchanged."""
    if method != "auto":
        return method
    from mpc.ss import provider
    kind = provider.source_kind(ctx.options)
    source = None if kind is None else provider.source_class(kind)
    if source is not None and source.supports(provider.DEALER_JOIN):
        return "dealer"
    from mpc.ss import circuit_join
    if source is not None and all(source.supports(c) for c in circuit_join.NEEDS):
        return "circuit"
    return "ecdh"


def private_join(ctx: Context, ids: Any, columns: Any = None, *, key_bits: int = 2048,
                 compare_bytes: int = DEFAULT_COMPARE_BYTES,
                 bucket_size: int = DEFAULT_BUCKET, method: str = "auto",
                 oprf_bucket_size: int = DEFAULT_OPRF_BUCKET, ranks: bool | Mapping[str, np.ndarray] = False,
                 rank_rows: int | None = None) -> SharedTable:
    """Join two parties' tables on their ids, keeping every cell secret-shared.

    Args:
        ids: this party's ids (str, bytes or int; must be unique: a duplicate raises).
        columns: dict of name -> 1-D numeric array aligned with ``ids``, or a DataFrame.
        key_bits: Paillier modulus bits for the oblivious selection (< 2048: tests only).
        bucket_size, oprf_bucket_size: ids per bucket of the ECDH and of the circuit join
            (bound memory; the same on both parties).
        method: ``"auto"`` (default: see :func:`resolve_method`), ``"circuit"`` (circuit
            PSI on cuckoo bins, OT only, no third party: :mod:`protocols.psi.circuit_join`),
            ``"dealer"`` (the job's dealer matches keyed tags and re-shares masked rows:
            the fastest, and the dealer learns both table sizes and the number of joined
            rows) or ``"ecdh"`` (ECDH matching and Paillier selection: no third party and
            no randomness source needed, but ~10x slower than the circuit join).
        ranks: with ``method="circuit"``, each party also sends every column's ranks in its
            own whole column (0..n-1 by value, ties by input order) through the join as
            extra shared columns (``SharedTable.ranks``): order statistics of the joined
            columns then compare the ranks' log2 n bits instead of the values' (about a
            third of the OTs; :mod:`mpc.ss.order`, "Owner ranks"). Both parties pass the
            same; ignored by the other methods. Reveals nothing more: the ranks are
            secret-shared like every cell. Or a mapping column name -> this party's ranks
            of each row (aligned with ``ids``, one per column) in a column longer than this
            call's, ``rank_rows`` rows (its owner's whole column; the bucketed join's,
            :mod:`protocols.bucketed_ranks`): they ride along instead, their public bit
            count key_bits(rank_rows); rows that cannot join (a bucket's dummies) may carry
            any value.

    Returns:
        :class:`SharedTable` (the same shape on both parties): ``num_rows`` joined rows,
        ``table["alice.income"]`` (or ``table["income"]`` when only one party has it) a
        SharedTensor. Only the number of rows is revealed. After the dealer-free circuit
        join its ``row_order`` is set (see :class:`SharedTable`).
    """
    from mpc import ss
    if len(ctx.parties) != 2:
        raise ValueError(f"private_join runs between exactly 2 parties, got {ctx.parties}")
    method = resolve_method(ctx, method)
    if method not in JOINS:
        raise ValueError(f"unknown private_join method {method!r}; use one of {['auto', *JOINS]}")
    # the circuit join's ids only enter keyed AES (cuckoo layout, KKRT), so distinct 16-byte
    # blocks do (protocols.psi.blocks: injective, no BLAKE2b per id); the others need digests
    prepared = prepare_rows(ids, "ids") if method == "circuit" else prepare(ids, "ids")
    if len(prepared.digests) != prepared.n_rows:
        dup = int(np.nonzero(np.bincount(prepared.inverse) > 1)[0][0])
        pos = np.nonzero(prepared.inverse == dup)[0][:2].tolist()
        raise ValueError(f"ids must be unique for private_join: positions {pos[0]} and {pos[1]} "
                         "hold the same id (aggregate duplicates first)")
    cols = _as_columns(columns, prepared.n_rows)
    rings, fracs = _encode_columns(ctx, cols)
    given = ranks if isinstance(ranks, Mapping) else None
    ranks = (given is not None or bool(ranks)) and method == "circuit"
    rank_bits = ss.order.key_bits(prepared.n_rows)
    if ranks and given is not None:          # ranks in a longer column (a bucketed join's whole column)
        rings = rings + _given_ranks(given, list(cols), prepared.n_rows, rank_rows)
        rank_bits = ss.order.key_bits(int(rank_rows))
    elif ranks:                # each column's ranks in this party's column, as extra columns
        rings = rings + [ss.order.owner_ranks(r) for r in rings]
    if not isinstance(oprf_bucket_size, int) or isinstance(oprf_bucket_size, bool) or oprf_bucket_size < 1:
        raise ValueError(f"oprf_bucket_size must be a positive int, got {oprf_bucket_size!r}")
    if method == "dealer":
        from mpc.ss import provider
        provider.require(ctx, provider.DEALER_JOIN, "private_join(method='dealer')")
    params = {"key_bits": key_bits, "compare_bytes": compare_bytes, "bucket_size": bucket_size, "method": method,
              "oprf_bucket": oprf_bucket_size}
    if method == "circuit":
        params["encoding"] = TEXT_ENCODING
    headers = exchange_header(ctx, "private_join", prepared.kind, prepared.n_rows, params)
    meta = ctx.gather({"names": list(cols), "fracs": fracs, "ranks": ranks, "rank_bits": rank_bits,
                       "given": ranks and given is not None})
    for party, md in zip(ctx.parties, meta, strict=True):
        if (not isinstance(md, dict) or not isinstance(md.get("names"), list)
                or not isinstance(md.get("fracs"), list) or len(md["names"]) != len(md["fracs"])):
            raise ValueError(f"party {party!r} sent malformed column metadata")
        if md.get("ranks") is not ranks or md.get("given") is not (ranks and given is not None):
            raise ValueError(f"party {party!r} asked for ranks={md.get('ranks')!r} (given: {md.get('given')!r}), "
                             f"this party for ranks={ranks!r} (given: {ranks and given is not None!r}) "
                             "(both must pass the same)")
        bits = md.get("rank_bits")
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 32:
            raise ValueError(f"party {party!r} sent a malformed rank bit count")
    peer = ctx.peers[0]
    peer_n = headers[ctx.parties.index(peer)]["size"]
    peer_cols = len(meta[ctx.parties.index(peer)]["names"]) * (2 if ranks else 1)
    if ranks and given is None:    # A's ranks of its first column: distinct labels for the row order, no extra
        params = {**params, "label_column": len(meta[0]["names"])} if meta[0]["names"] else params   # column
    m, my_shares, their_shares, *rest = JOINS[method](ctx, prepared, rings, peer_n, peer_cols, params)

    table: dict[str, Any] = {}
    rank_shares: dict[str, tuple[Any, int]] = {}
    for party, md in zip(ctx.parties, meta, strict=True):
        shares = my_shares if party == ctx.party else their_shares
        k = len(md["names"])
        for j, (name, frac) in enumerate(zip(md["names"], md["fracs"], strict=True)):
            table[f"{party}.{name}"] = ss.from_shares(ctx, shares[j], int(frac))
            if ranks:
                rank_shares[f"{party}.{name}"] = (ss.from_shares(ctx, shares[k + j], 0), int(md["rank_bits"]))
    ctx.report_progress(1.0)
    return SharedTable(table, m, rest[0] if rest else None, rank_shares)

