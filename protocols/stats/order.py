"""The order-statistics engine the statistics use, :mod:`mpc.ss.order` (shuffle +
quickselect with opened outcomes, and the secret bitwise search), under its historical
name. What it reveals: see :mod:`mpc.ss.order`."""

from __future__ import annotations

from mpc.ss.order import available, fits, key_bits, keys_of, select, shuffled, values_of

__all__ = ["available", "fits", "key_bits", "keys_of", "select", "shuffled", "values_of"]
