"""Private set intersection family: ECDH PSI (2 and N parties), cardinality,
intersection-sum (Private Join and Compute) and private join with secret-shared columns.

Every function is an SPMD protocol run by every party with its own Context. Each module's
docstring states exactly what every party learns.
"""

from __future__ import annotations

from typing import Any

from protocols.psi.common import PsiResult
from protocols.psi.ecdh import ecdh_psi, psi_cardinality

_LAZY = {"intersection_sum": "protocols.psi.intersection_sum",
         "private_join": "protocols.psi.private_join",
         "SharedTable": "protocols.psi.private_join"}

__all__ = ["PsiResult", "ecdh_psi", "psi_cardinality", *_LAZY]


def __getattr__(name: str) -> Any:
    import importlib
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'protocols.psi' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
