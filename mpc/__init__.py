"""gaotie's primitives and runtime.

``run_local``, ``LocalCluster``, ``Client`` and ``Context`` are loaded lazily, so that
``import mpc`` stays cheap and never starts or imports the party server.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "run_local": "mpc.runtime.local",
    "Context": "mpc.runtime.context",
    "JobFailed": "mpc.runtime.errors",
    "JobTimeout": "mpc.runtime.errors",
    "PeerFailed": "mpc.runtime.errors",
    "GaotieError": "mpc.runtime.errors",
    "LocalCluster": "mpc.cluster",
    "Client": "mpc.client",
}

# Engines that register their helper parties and start checks with the runtime, which
# names no engine: mpc.runtime.helpers imports these the first time a job asks for helpers.
ENGINES = ("mpc.ss",)

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mpc' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
