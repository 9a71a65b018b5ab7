"""Private set intersection family: ECDH PSI (2 and N parties), OPRF PSI (2 parties,
KKRT), cardinality, intersection-sum (Private Join and Compute) and private join with
secret-shared columns.

Every function is an SPMD protocol run by every party with its own Context. Each module's
docstring states exactly what every party learns. Paillier and secret sharing are
imported only when intersection_sum / private_join run.
"""

from __future__ import annotations

from protocols.psi.common import PsiResult
from protocols.psi.ecdh import ecdh_psi, psi_cardinality
from protocols.psi.intersection_sum import intersection_sum
from protocols.psi.oprf import oprf_psi
from protocols.psi.private_join import SharedTable, private_join

__all__ = ["PsiResult", "SharedTable", "ecdh_psi", "intersection_sum", "oprf_psi", "private_join", "psi_cardinality"]
