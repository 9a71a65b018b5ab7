"""woe_iv: weight of evidence and information value per bin, label at one party and
features at another (the credit-scoring workflow), rows aligned between them.

Definitions (label 1 = event / "bad", 0 = non-event / "good"), per feature and bin i:

    good_i = rows of the bin with label 0, bad_i = rows with label 1
    WOE_i  = ln((good_i / good_total) / (bad_i / bad_total))
    IV     = sum_i (good_i / good_total - bad_i / bad_total) * WOE_i

Smoothing: a bin with good_i == 0 or bad_i == 0 gets ``smoothing`` (default 0.5) added
to both of its counts before the WOE (totals unchanged), so WOE and IV stay finite.
Bins: the feature holder bins its own features in the clear: ``bins`` an int (equal-
frequency edges from the feature's own quantiles, duplicates merged) or explicit edges
(a list, or a dict feature -> edges); bins are [lo, hi) with the last one closed, like
numpy.histogram; values outside the edges go to the first / last bin.

Methods:

* ``"paillier"`` (default): the label holder encrypts the labels under a fresh key and
  sends them; the feature holder multiplies the ciphertexts of each bin (homomorphic sum
  of labels), re-randomises and returns them with the bin sizes; the label holder decrypts.
* ``"ss"``: the labels and the bin indicator matrices are secret-shared and one Beaver
  matrix product gives the per-bin event counts, opened to the label holder. The
  indicator matrix has the requested number of bins (empty rows pad merged edges), so the
  dealer learns the number of rows and the requested bins only.

Reveals: the label holder learns the bin edges and, per bin, its size and number of
events (exactly what the WOE table shows); the feature holder learns nothing but the
number of rows and the key (paillier). ``reveal_to`` parties get the table from the
label holder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

import mpc.tables  # noqa: F401  (registers DataFrame as a codec value)
from mpc.runtime.context import Context
from protocols.stats import _common as cm

DEFAULT_SMOOTHING = 0.5


def _edges(values: np.ndarray, bins: Any, name: str) -> np.ndarray:
    if np.ndim(bins) == 0:
        k = int(bins)
        if k < 1:
            raise ValueError(f"feature {name!r}: bins must be >= 1")
        edges = np.unique(np.quantile(values, np.linspace(0, 1, k + 1)))
        if len(edges) == 1:
            edges = np.array([edges[0], edges[0]])
        return edges
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"feature {name!r}: bin edges must be strictly increasing, at least 2")
    return edges


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value ([lo, hi), last bin closed; outside values clipped)."""
    nb = max(len(edges) - 1, 1)
    idx = np.searchsorted(edges, values, side="right") - 1
    return np.clip(idx, 0, nb - 1)


def woe_table(events: np.ndarray, sizes: np.ndarray, smoothing: float = DEFAULT_SMOOTHING) -> pd.DataFrame:
    """WOE and IV contributions from per-bin event counts and sizes (plain; used by the
    label holder and by the tests' reference)."""
    bad = np.asarray(events, dtype=np.float64)
    good = np.asarray(sizes, dtype=np.float64) - bad
    b_tot, g_tot = bad.sum(), good.sum()
    if b_tot == 0 or g_tot == 0:
        raise ValueError("the label has a single class: WOE needs both events and non-events")
    fix = (good == 0) | (bad == 0)
    g_s = np.where(fix, good + smoothing, good)
    b_s = np.where(fix, bad + smoothing, bad)
    woe = np.log((g_s / g_tot) / (b_s / b_tot))
    iv = (good / g_tot - bad / b_tot) * woe
    return pd.DataFrame({"count": np.asarray(sizes, dtype=np.int64), "events": bad.astype(np.int64),
                         "non_events": good.astype(np.int64), "woe": woe, "iv": iv})


def _features_view(ctx: Context, table: Any, features: Sequence[str]) -> dict[str, np.ndarray]:
    if isinstance(table, pd.DataFrame):
        table = {str(c): table[c].to_numpy() for c in table.columns}
    if table is None:
        table = {}
    if not isinstance(table, Mapping):
        raise TypeError(f"table must be a dict of columns or a DataFrame, not {type(table).__name__}")
    return {f: table[f] for f in features if table.get(f) is not None}


def woe_iv(ctx: Context, table: Any, label: str, features: Sequence[str], bins: Any = 10, *,
           method: str = "paillier", smoothing: float = DEFAULT_SMOOTHING, key_bits: int = 2048,
           reveal_to: str | None = None) -> tuple[pd.DataFrame, pd.Series] | None:
    """WOE per bin and IV per feature.

    Args:
        table: this party's columns (dict or DataFrame): the label holder has ``label``
            (0/1), the feature holder has ``features``; rows aligned.
        bins: int (equal-frequency) or edges, or a dict feature -> int / edges.
        method: "paillier" or "ss".
        key_bits: Paillier modulus size (< 2048 only for tests).

    Returns to ``reveal_to`` (all when None): (bins DataFrame with columns feature, bin,
    lower, upper, count, events, non_events, woe, iv; IV Series indexed by feature).
    """
    if method not in ("paillier", "ss"):
        raise ValueError(f"method must be 'paillier' or 'ss', not {method!r}")
    if len(ctx.parties) < 2:
        raise ValueError("woe_iv needs the label holder and a feature holder")
    to = cm.receivers(ctx, reveal_to)
    features = [str(f) for f in features]
    if not features:
        raise ValueError("woe_iv needs at least one feature")
    view = table if isinstance(table, Mapping) else (
        {str(c): table[c].to_numpy() for c in table.columns} if isinstance(table, pd.DataFrame) else {})
    has_label = view.get(label) is not None
    mine = _features_view(ctx, table, features)
    info = ctx.gather({"label": has_label, "features": sorted(mine)})
    label_holders = [p for p, i in zip(ctx.parties, info, strict=True) if i["label"]]
    if len(label_holders) != 1:
        raise ValueError(f"exactly one party must hold the label column {label!r}; found {label_holders}")
    lh = label_holders[0]
    feat_owner: dict[str, str] = {}
    for p, i in zip(ctx.parties, info, strict=True):
        for f in i["features"]:
            if f in feat_owner:
                raise ValueError(f"feature {f!r} is held by both {feat_owner[f]!r} and {p!r}")
            feat_owner[f] = p
    missing = [f for f in features if f not in feat_owner]
    if missing:
        raise KeyError(f"no party holds feature(s) {missing}")

    if ctx.party == lh:
        y = np.asarray(view[label])
        if y.dtype.kind not in "iufb" or (y.dtype.kind == "f" and np.isnan(y).any()):
            raise TypeError(f"label {label!r} must be numeric 0/1 without NaN")
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"label {label!r} must contain only 0 and 1")
        y = y.astype(np.int64)
    lengths = ctx.gather({f: len(mine[f]) for f in mine} | ({label: len(y)} if ctx.party == lh else {}))
    allen = {k: v for d in lengths for k, v in d.items()}
    if len(set(allen.values())) > 1:
        desc = ", ".join(f"{k!r} ({v} rows)" for k, v in allen.items())
        raise ValueError(f"columns have different lengths: {desc}")
    n = next(iter(allen.values()))

    # feature holders bin their own features (own data, in the clear)
    binned: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for f, x in mine.items():
        arr = cm.float_column(x, f"party {ctx.party!r}: feature {f!r}")
        b = bins.get(f, 10) if isinstance(bins, Mapping) else bins
        edges = _edges(arr, b, f)
        binned[f] = (edges, _bin_index(arr, edges))

    per_feature: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}   # edges, events, sizes
    if method == "paillier":
        per_feature = _paillier_counts(ctx, lh, feat_owner, features, binned, y if ctx.party == lh else None,
                                       n, key_bits)
    else:
        per_feature = _ss_counts(ctx, lh, feat_owner, features, binned, y if ctx.party == lh else None, n,
                                 bins)

    return woe_result(ctx, lh, to, features, per_feature, smoothing)


def woe_result(ctx: Context, lh: str, to: Sequence[str], features: Sequence[str],
               per_feature: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
               smoothing: float = DEFAULT_SMOOTHING) -> tuple[pd.DataFrame, pd.Series] | None:
    """The WOE table and IVs from each feature's (edges, events, sizes) at the label holder
    ``lh`` (``per_feature`` is only read there), sent to the other ``to`` parties: the one
    reveal of :func:`woe_iv`, shared with its bucketed form (:mod:`protocols.bucketed_woe`)."""
    if ctx.party == lh:
        rows, ivs = [], {}
        for f in features:
            edges, events, sizes = per_feature[f]
            t = woe_table(events, sizes, smoothing)
            t.insert(0, "upper", edges[1:])
            t.insert(0, "lower", edges[:-1])
            t.insert(0, "bin", np.arange(len(sizes)))
            t.insert(0, "feature", f)
            rows.append(t)
            ivs[f] = float(t["iv"].sum())
        result = (pd.concat(rows, ignore_index=True), pd.Series(ivs, name="iv"))
        for p in to:
            if p != lh:
                ctx.send(p, {"bins": result[0], "iv": result[1].to_numpy(), "features": features})
        return result if lh in to else None
    if ctx.party in to:
        msg = ctx.recv(lh)
        if not isinstance(msg, dict) or not isinstance(msg.get("bins"), pd.DataFrame):
            raise ValueError(f"party {lh!r} sent a malformed WOE table")
        return msg["bins"], pd.Series(np.asarray(msg["iv"], dtype=np.float64), index=msg["features"], name="iv")
    return None


def _paillier_counts(ctx: Context, lh, feat_owner, features, binned, y, n, key_bits):
    from mpc.paillier import EncryptedVector, PublicKey, generate_keypair
    out = {}
    holders = sorted({feat_owner[f] for f in features if feat_owner[f] != lh})
    if ctx.party == lh:
        pk, sk = generate_keypair(key_bits, insecure=key_bits < 2048)
        enc = pk.encrypt(y) if holders else None
        for p in holders:
            ctx.send(p, pk)
            ctx.send(p, enc)
        for f in features:
            if feat_owner[f] == lh:            # own feature: plain counts
                edges, idx = binned[f]
                nb = len(edges) - 1
                out[f] = (edges, np.bincount(idx, weights=y, minlength=nb).astype(np.int64),
                          np.bincount(idx, minlength=nb))
        for p in holders:
            out.update(receive_bin_sums(ctx, p, pk, sk))
        return out
    if ctx.party in holders:
        pk = ctx.recv(lh)
        if not isinstance(pk, PublicKey):
            raise ValueError(f"party {lh!r} sent no Paillier public key")
        enc = ctx.recv(lh)
        if not isinstance(enc, EncryptedVector) or enc.public_key != pk or len(enc) != n:
            raise ValueError(f"party {lh!r} sent malformed encrypted labels")
        mine = [f for f in features if feat_owner[f] == ctx.party]
        sums, edges_l, sizes_l = [], [], []
        for f in mine:
            edges, idx = binned[f]
            nb = len(edges) - 1
            order = np.argsort(idx, kind="stable")
            bounds = np.searchsorted(idx[order], np.arange(nb + 1))
            for b in range(nb):
                rows = order[bounds[b]:bounds[b + 1]]
                sums.append(enc[rows].sum() if len(rows) else pk.encrypt(np.zeros(1, np.int64)))
            edges_l.append(edges)
            sizes_l.append(np.bincount(idx, minlength=nb).astype(np.int64))
        vec = EncryptedVector.concat(sums).rerandomise()
        ctx.send(lh, {"sums": vec, "features": mine, "edges": edges_l, "sizes": sizes_l})
    return out


def receive_bin_sums(ctx: Context, p: str, pk: Any, sk: Any) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """At the label holder: party ``p``'s encrypted per-bin label sums (under ``pk``), its
    features, edges and bin sizes, decrypted to feature -> (edges, events, sizes)."""
    from mpc.paillier import EncryptedVector
    msg = ctx.recv(p)
    if not isinstance(msg, dict) or not isinstance(msg.get("sums"), EncryptedVector):
        raise ValueError(f"party {p!r} sent malformed bin sums")
    if msg["sums"].public_key != pk:
        raise ValueError(f"party {p!r} sent bin sums under another key")
    events = np.asarray(sk.decrypt(msg["sums"]), dtype=np.int64)
    out, pos = {}, 0
    for f, edges, sizes in zip(msg["features"], msg["edges"], msg["sizes"], strict=True):
        nb = len(sizes)
        out[f] = (np.asarray(edges, dtype=np.float64), events[pos:pos + nb], np.asarray(sizes, np.int64))
        pos += nb
    if pos != len(events):
        raise ValueError(f"party {p!r} sent {len(events)} bin sums for {pos} bins")
    return out


def _requested_bins(bins: Any, feature: str) -> int:
    """The number of bins the job asks for (public): an int, or the number of given edges."""
    b = bins.get(feature, 10) if isinstance(bins, Mapping) else bins
    return int(b) if np.ndim(b) == 0 else max(len(np.asarray(b)) - 1, 1)


def _ss_counts(ctx: Context, lh, feat_owner, features, binned, y, n, bins):
    from mpc import ss
    ys = ss.share(ctx, y, lh)
    out = {}
    for f in features:
        owner = feat_owner[f]
        if owner == lh:                         # the label holder's own feature: plain counts
            if ctx.party == lh:
                edges, idx = binned[f]
                nb = len(edges) - 1
                out[f] = (edges, np.bincount(idx, weights=y, minlength=nb).astype(np.int64),
                          np.bincount(idx, minlength=nb))
            continue
        width = _requested_bins(bins, f)
        if ctx.party == owner:
            edges, idx = binned[f]
            nb = len(edges) - 1
            # padded to the requested number of bins with empty rows: merged duplicate edges
            # would otherwise show in the shape of the dealer's matmul request
            h = (idx[None, :] == np.arange(max(nb, width))[:, None]).astype(np.int64)
            meta = {"edges": edges, "sizes": h[:nb].sum(axis=1)}
            ctx.send(lh, meta)
        else:
            h = None
            meta = ctx.recv(owner) if ctx.party == lh else None
            if ctx.party == lh and (not isinstance(meta, dict) or not isinstance(meta.get("sizes"), np.ndarray)):
                raise ValueError(f"party {owner!r} sent malformed bin metadata")
        hs = ss.share(ctx, h, owner)
        events = (hs @ ys).reveal(lh)
        if ctx.party == lh:
            sizes = np.asarray(meta["sizes"], np.int64)
            out[f] = (np.asarray(meta["edges"], np.float64), np.asarray(events, np.int64)[:len(sizes)], sizes)
    return out
