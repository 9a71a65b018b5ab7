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
Each orbit is labelled by its smallest element with pointer jumping (log2 m rounds of
``label = min(label, label[h]); h = h[h]``), and the orbit with the smaller label goes up.
So routing costs O(n log^2 n) numpy work in O(log^2 n) vectorised steps: no Python loop
over switches or cycles (about a second at n = 2^20).
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


def route(dest: np.ndarray) -> list[np.ndarray]:
    """Control bits realising each row of ``dest`` ((B, n), n = 2^k; input i of row b goes
    to output ``dest[b, i]``): 2k - 1 bool arrays of shape (B, n/2), in layer order."""
    dest = np.asarray(dest)
    if dest.ndim != 2:
        raise ValueError(f"route needs a (rows, n) array of destinations, got shape {dest.shape}")
    rows, n = dest.shape
    log2_size(n)
    idx_t = np.int32 if n * rows < 2 ** 31 else np.int64
    d = dest.astype(idx_t)
    ins: list[np.ndarray] = []
    outs: list[np.ndarray] = []
    m = n
    while m > 2:
        blocks = d.shape[0]
        local = np.arange(m, dtype=idx_t)
        dinv = np.empty_like(d)
        np.put_along_axis(dinv, d, np.broadcast_to(local, d.shape), axis=1)
        # g(i) = d^-1(d(i ^ 1) ^ 1): the next input of the same colour
        g = np.take_along_axis(dinv, d[:, local ^ 1] ^ 1, axis=1)
        g += (np.arange(blocks, dtype=idx_t) * m)[:, None]
        h = g.ravel()
        label = np.arange(blocks * m, dtype=idx_t)
        for _ in range(m.bit_length() - 1):          # orbits have at most m/2 elements
            np.minimum(label, label[h], out=label)
            h = h[h]
        label = label.reshape(blocks, m)
        colour = label > label[:, local ^ 1]          # True: to the lower half-network
        cin = colour[:, 0::2]
        top = 2 * np.arange(m // 2, dtype=idx_t) + cin  # the input each switch sends up
        up = np.take_along_axis(d, top, axis=1) >> 1
        low = np.take_along_axis(d, top ^ 1, axis=1) >> 1
        outs.append(np.take_along_axis(colour, dinv[:, 0::2], axis=1).reshape(rows, n // 2))
        ins.append(cin.reshape(rows, n // 2))
        d = np.stack([up, low], axis=1).reshape(2 * blocks, m // 2)
        m //= 2
    middle = (d[:, 0] == 1).reshape(rows, n // 2)
    return ins + [middle] + outs[::-1]


def wire(x: np.ndarray, layer: int, n: int) -> np.ndarray:
    """The fixed wiring after switch layer ``layer`` applied to the last axis of ``x``
    (width n): unshuffle blocks after an input layer, shuffle them before an output layer
    (so the wiring after layer j is the one before layer j + 1); identity after the last."""
    k = log2_size(n)
    lead = x.shape[:-1]
    if layer < k - 1:                       # after the input layer of level `layer`
        m = n >> layer
        return x.reshape(*lead, n // m, m // 2, 2).swapaxes(-1, -2).reshape(*lead, n)
    if layer < 2 * k - 2:                   # before the output layer of level 2k - 3 - layer
        m = n >> (2 * k - 3 - layer)
        return x.reshape(*lead, n // m, 2, m // 2).swapaxes(-1, -2).reshape(*lead, n)
    return x


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
