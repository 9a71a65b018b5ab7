"""Benes permutation networks: routing (control bits for a given permutation) and evaluation.

A Benes network on n = 2^k wires (Benes 1964; Waksman, JACM 1968) has 2k - 1 layers of
n/2 two-input switches and realises every permutation of n wires; the dealer-free shuffle
(:mod:`mpc.ss.ot_shuffle`) evaluates one obliviously, one OT per switch. This module is
plain numpy on public-to-its-owner data: it sees one party's own permutation, nothing else.

Layout (recursive): at recursion level l (blocks of m = n / 2^l consecutive wires), the
input layer switches the pairs (2s, 2s + 1) of each block and sends the top output to
input s of the block's upper half-network, the bottom one to input m/2 + s of the lower
(an "unshuffle" of the block); after the two half-networks, the output layer takes output t
of each half into the switch of outputs (2t, 2t + 1) (a "shuffle"). Layers in order:
input layers of levels 0..k-2, the middle layer (blocks of 2), output layers of levels
k-2..0. Switch bit 1 = crossed.

Routing is the looping algorithm, vectorised over all blocks of one level at once: in a
block with destinations d (input i goes to output d[i]), inputs i and i^1 share an input
switch and inputs i and s(i) = d^-1(d(i) ^ 1) share an output switch, so each must go to
different halves. The map g(i) = s(i ^ 1) keeps the half (two differing steps); the two
colour classes of every constraint cycle are one g-orbit each, {g^j(i)} and {g^j(i) ^ 1}.
Each orbit is labelled by its smallest element (:func:`orbit_min`), and the orbit with the
smaller label goes up. Orbits at most _JUMP long (blocks of m <= 256) take pointer jumping,
``label = min(label, label[h]); h = h[h]``; longer ones a ruling set (every 16th wire walks
to the next, then pointer jumping on the 1/16 as many rulers), O(n) work per level instead
of O(n log m). So routing costs O(n log n) numpy work in O(log^2 n) vectorised steps plus
the rulers' walks: no Python loop over switches or cycles. The bits are those of pointer
jumping at every level (same labels), only faster: CPU at n = 2^20 (one row) 1.0 -> 0.55 s,
at width 2^21 3.4 -> 1.6 s (same window, loaded 2-core machine). The number of vectorised
steps (the rulers' longest segment, the first round that changes no label) depends on the
permutation's cycles (pointer jumping before ran a fixed number of rounds): local work on
the party's own uniform permutation, which a peer could at most time; timing is outside
the model (docs/security.md, "Not covered").

Arbitrary n (Chang and Melhem, "Arbitrary size Benes networks", Parallel Processing
Letters 1997; Waksman's floor/ceil split): n real wires occupy the first n of width
2^k = :func:`padded_size` (n), the rest are dummies each permutation fixes. The routing
keeps every block's dummies at its end: a block of r real wires sends floor(r/2) to its
upper half and ceil(r/2) to the lower (an odd block's last real wire shares a switch with
its first dummy; that dummy's orbit gets key -1, so it goes up and the real wire down).
Then every switch touching a dummy has a state fixed by n alone (:func:`fixed_bits`),
and so does the input switch of a block of two real wires above the middle (uncrossed:
one output switch suffices). The remaining :func:`real_switches` are the arbitrary-size
network's, floor(r/2) input and output switches per block of r > 2 and one for r = 2:
:func:`switch_count` (n) of them, about n log2 n - n/2 (27.4M at n = 1.33 * 2^20, against
43.0M for the padded Benes network; Waksman's further saving of one switch per
subnetwork, n log2 n - n + 1 in all, is not taken). Evaluation and routing run on the full width (plain
numpy); only the oblivious evaluation skips the public switches.
"""

from __future__ import annotations

import numpy as np


def log2_size(n: int) -> int:
    """k with 2^k = n (n a power of two, at least 2)."""
    if n < 2 or n & (n - 1):
        raise ValueError(f"a Benes network needs a power-of-two width >= 2, got {n}")
    return n.bit_length() - 1


def padded_size(n: int) -> int:
    """The network width for n wires: the next power of two (at least 2)."""
    return max(2, 1 << (max(n, 1) - 1).bit_length())


def layers(n: int) -> int:
    """Number of switch layers of the network on n = 2^k wires: 2k - 1."""
    return 2 * log2_size(n) - 1


def block_sizes(n: int, width: int) -> list[np.ndarray]:
    """Real wires per block at each recursion level of the width-``width`` layout carrying
    n real wires (the first n): [n] at level 0, then each block's r split as floor(r/2)
    (upper half) and ceil(r/2) (lower), ending with the blocks of 2 (the middle layer)."""
    log2_size(width)
    if not 0 <= n <= width:
        raise ValueError(f"{n} real wires do not fit a network of width {width}")
    out, r = [], np.array([n], dtype=np.int64)
    while len(out) < log2_size(width):
        out.append(r)
        r = np.stack([r // 2, (r + 1) // 2], axis=1).reshape(-1)
    return out


def real_switches(n: int, width: int) -> list[np.ndarray]:
    """Which switches of each layer (bool (width/2,) per layer, in layer order) have two real
    wires: the switches of the arbitrary-size network on n wires. The rest are fixed by n
    alone (see :func:`fixed_bits`) and cost nothing in the oblivious evaluation."""
    ins, outs = [], []
    for r in block_sizes(n, width):
        half = width // (2 * len(r))
        real = np.arange(half)[None, :] < (r // 2)[:, None]
        outs.append(real.reshape(-1))
        # a block of two real wires above the middle needs one switch, not three: its input
        # switch stays uncrossed (:func:`route` sends wire 0, the smallest key, up)
        real = real & (r != 2)[:, None] if half > 1 else real
        ins.append(real.reshape(-1))
    return ins + outs[-2::-1]


def fixed_bits(n: int, width: int) -> list[np.ndarray]:
    """The public state of every switch that is not real (:func:`real_switches`), as
    :func:`route` sets it for n real wires (bool (width/2,) per layer; False at real
    switches): crossed exactly at the switch pairing an odd block's last real wire with its
    first dummy (the real wire goes to the lower half, which has ceil(r/2) wires), outside
    the middle layer; everything else uncrossed."""
    per_level = []
    sizes = block_sizes(n, width)
    for level, r in enumerate(sizes):
        half = width // (2 * len(r))
        mixed = (np.arange(half)[None, :] == (r // 2)[:, None]) & (r % 2 == 1)[:, None]
        per_level.append(mixed.reshape(-1) if level < len(sizes) - 1 else np.zeros(width // 2, bool))
    return per_level + per_level[-2::-1]


def switch_count(n: int) -> int:
    """Switches of the arbitrary-size network on n wires (about n log2 n - n + 1)."""
    if n < 2:
        return 0
    width = padded_size(n)
    return int(sum(m.sum() for m in real_switches(n, width)))


def route(dest: np.ndarray, n: int | None = None) -> list[np.ndarray]:
    """Control bits realising each row of ``dest`` ((B, width), width = 2^k; input i of row b
    goes to output ``dest[b, i]``): 2k - 1 bool arrays of shape (B, width/2), in layer order.
    With ``n`` (default width) only the first n wires are real: ``dest`` must fix the rest,
    and the bits of every switch that is not real (:func:`real_switches`) are then the
    public :func:`fixed_bits`, so the network is the arbitrary-size one on n wires."""
    dest = np.asarray(dest)
    if dest.ndim != 2:
        raise ValueError(f"route needs a (rows, n) array of destinations, got shape {dest.shape}")
    rows, width = dest.shape
    n = width if n is None else n
    sizes = block_sizes(n, width)
    idx_t = np.int32 if width * rows < 2 ** 31 else np.int64
    d = dest.astype(idx_t).ravel()              # all blocks of a level, flat: block b at b * m
    total = len(d)
    ins: list[np.ndarray] = []
    outs: list[np.ndarray] = []
    key = np.arange(total, dtype=idx_t)
    m, level = width, 0
    while m > 2:
        blocks = total // m
        base = np.repeat(np.arange(0, total, m, dtype=idx_t), m)
        gd = d + base                                           # destinations, flat
        dinv = np.empty_like(d)
        dinv[gd] = np.arange(total, dtype=idx_t)                # flat input of each flat output
        # g(i) = d^-1(d(i ^ 1) ^ 1): the next input of the same colour (flat; stays in the block)
        g = dinv[(gd ^ 1).reshape(-1, 2)[:, ::-1]].ravel()        # the gather's result is contiguous
        # orbit keys: the flat wire index, but the first dummy of an odd block gets one less
        # than the block's first wire, so its orbit goes up and the block's last real wire
        # (its switch partner) down
        r = np.tile(sizes[level], rows)
        odd = np.flatnonzero((r % 2 == 1) & (r < m))
        key[odd * m + r[odd]] = odd * m - 1
        label = orbit_min(g, key, m // 2)
        key[odd * m + r[odd]] = odd * m + r[odd]
        pair = label.reshape(-1, 2)
        cin = pair[:, 0] > pair[:, 1]                           # the input switches: True = crossed
        colour = np.stack([cin, ~cin], axis=1).ravel()          # True: to the lower half-network
        top = np.arange(0, total, 2, dtype=idx_t) + cin         # the input each switch sends up
        up = d[top] >> 1
        low = d[top ^ 1] >> 1
        outs.append(colour[dinv[0::2]].reshape(rows, width // 2))
        ins.append(cin.reshape(rows, width // 2))
        d = np.stack([up.reshape(blocks, m // 2), low.reshape(blocks, m // 2)], axis=1).ravel()
        m //= 2
        level += 1
    middle = (d[0::2] == 1).reshape(rows, width // 2)
    return ins + [middle] + outs[::-1]


_RULER = 16      # orbit_min: one ruler per this many wires
_JUMP = 1 << 7   # orbit_min: pointer jumping alone for orbits at most this long (cache-local, few rounds)


def orbit_min(g: np.ndarray, key: np.ndarray, longest: int | None = None) -> np.ndarray:
    """``label[i]`` = the smallest ``key`` on the orbit of i under the permutation ``g`` (flat,
    int; keys distinct on every orbit); ``longest``: a bound on the orbits' length (routing:
    m / 2 on blocks of m; default len(g)), which bounds the rounds of pointer jumping.

    Short orbits (``longest`` <= _JUMP): pointer jumping, ``label = min(label, label[h]);
    h = h[h]``, O(len(g) log longest). Longer ones: a ruling set (the contraction of
    parallel list ranking), O(len(g)) work: every wire whose index is a multiple of _RULER
    is a ruler; all rulers walk g at once until the next ruler, marking the wires they pass
    with their ruler; each segment's smallest key (one ``np.minimum.at``) then takes
    pointer jumping along the rulers' contracted cycles (1/_RULER of the wires), and every
    wire its ruler's result. Orbits without a ruler take pointer jumping on their own.
    Pointer jumping stops at the first round that changes no label, which happens only
    once every orbit is covered (with an orbit longer than 2^j, the wire 2^j steps before
    its minimum still changes in round j). The result depends only on g and key."""
    size = len(g)
    bound = size if longest is None else longest
    if bound <= _JUMP or size < 4 * _RULER:
        return _jump_min(g, key.copy(), bound)
    rulers = np.arange(0, size, _RULER, dtype=g.dtype)
    count = len(rulers)
    owner = np.full(size, count, dtype=g.dtype)        # each wire's ruler (its number); count: none
    owner[rulers] = np.arange(count, dtype=g.dtype)
    nxt = np.empty(count, dtype=g.dtype)               # the next ruler on the orbit (its number)
    walking = np.arange(count, dtype=g.dtype)
    cur = g[rulers]
    while len(walking):
        home = (cur & (_RULER - 1)) == 0
        if home.any():
            nxt[walking[home]] = cur[home] // _RULER
            on = ~home
            walking, cur = walking[on], cur[on]
        owner[cur] = walking
        cur = g[cur]
    seg = np.full(count + 1, np.iinfo(g.dtype).max, dtype=g.dtype)
    np.minimum.at(seg, owner, key)                     # each segment's smallest key
    label = np.append(_jump_min(nxt, seg[:count], min(bound, count)), 0)[owner]
    alone = np.flatnonzero(owner == count)             # orbits without a ruler (closed under g)
    if len(alone):
        where = np.empty(size, dtype=g.dtype)
        where[alone] = np.arange(len(alone), dtype=g.dtype)
        label[alone] = _jump_min(where[g[alone]], key[alone], bound)
    return label


def _jump_min(h: np.ndarray, label: np.ndarray, bound: int) -> np.ndarray:
    """Pointer jumping: ``label`` (overwritten) becomes its minimum over the orbits of the
    permutation h, orbits at most ``bound`` long (see :func:`orbit_min` for the stop)."""
    spare = np.empty_like(label)
    for j in range(max(bound - 1, 1).bit_length()):
        np.take(label, h, out=spare)
        if not (spare < label).any():
            break
        np.minimum(label, spare, out=label)
        if (1 << (j + 1)) < bound:
            h = h[h]
    return label


def wire(x: np.ndarray, layer: int, n: int, axis: int = -1) -> np.ndarray:
    """The fixed wiring after switch layer ``layer`` applied to ``axis`` of ``x`` (width n,
    the last axis by default): unshuffle blocks after an input layer, shuffle them before an
    output layer (so the wiring after layer j is the one before layer j + 1); identity after
    the last."""
    k = log2_size(n)
    axis %= x.ndim
    lead, tail = x.shape[:axis], x.shape[axis + 1:]
    if layer < k - 1:                       # after the input layer of level `layer`
        m = n >> layer
        split = (n // m, m // 2, 2)
    elif layer < 2 * k - 2:                 # before the output layer of level 2k - 3 - layer
        m = n >> (2 * k - 3 - layer)
        split = (n // m, 2, m // 2)
    else:
        return x
    a = len(lead)
    return x.reshape(*lead, *split, *tail).swapaxes(a + 1, a + 2).reshape(x.shape)


def switch(x: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """One switch layer on the last axis: pairs (2s, 2s + 1) swapped where ``bits[..., s]``."""
    out = x.copy()
    b = np.broadcast_to(bits, x[..., 0::2].shape)
    out[..., 0::2] = np.where(b, x[..., 1::2], x[..., 0::2])
    out[..., 1::2] = np.where(b, x[..., 0::2], x[..., 1::2])
    return out


def evaluate(bits: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """The network with control bits ``bits`` applied in the clear to the last axis of ``x``
    (rows of ``x`` broadcast against the bits' rows): a test oracle and the specification of
    what :mod:`mpc.ss.ot_shuffle` computes on shares."""
    n = x.shape[-1]
    for j, b in enumerate(bits):
        x = wire(switch(x, b), j, n)
    return x
