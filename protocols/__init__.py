"""gaotie's protocols: SPMD functions run by every party of a job over a Context.

``protocols.psi``: private set intersection family (ECDH PSI, cardinality,
intersection-sum, private join). Each module says in its docstring what every party learns.
"""
