"""SecretFlow SPU anchor: two-party fixed-point ``a * b``, ``a < b`` and ``a == b`` timed on this machine.

Runs inside the spu virtual environment (``bench/anchors.py`` makes it), never in gaotie's:
spu pins numpy<2. Usage: ``python anchor_spu_cheetah.py N [PROTOCOL ...]`` with protocols
among CHEETAH (dealer-free: OT and HE, two parties) and SEMI2K (a trusted first party
deals the Beaver triples, like gaotie's dealer path); both by default. Prints one JSON
object on a stdout line prefixed ``ANCHOR_JSON ``:
``{"n": N, "seconds": {"CHEETAH": {"mul": s, "lt": s, "eq": s, "mul_8": s, ...}, ...},
"errors": {...}, "spu": version}`` (``*_8``: the warm-up call on 8 elements).

Per protocol: ``spu.utils.simulation.Simulator(2, RuntimeConfig(protocol, field=FM64))``
(two parties as threads over spu's in-memory link, 18 fraction bits, the default), the
operations warmed up on 8 elements, then each timed once on N float64 elements: the time
of the simulated call (compilation for the new shape, secret sharing of both inputs, the
protocol, reconstruction of the output), and the output checked against numpy. Each
simulated call starts fresh runtimes, so CHEETAH's set-up (OT and HE keys) is inside every
timing, as in issue 17's figures; the warm-up's time is reported too (``*_8``).
"""

from __future__ import annotations

import json
import sys
import time

PROTOCOLS = ("CHEETAH", "SEMI2K")
MARK = "ANCHOR_JSON "  # spu's C++ logs share stdout: results are the lines with this prefix


def time_ops(protocol: str, n: int) -> dict[str, float]:
    """Seconds of ``a * b``, ``a < b`` and ``a == b`` (a quarter of the pairs equal) on n
    float64 elements under ``protocol``."""
    import numpy as np
    import spu.libspu as libspu
    import spu.utils.simulation as spsim

    config = libspu.RuntimeConfig(protocol=getattr(libspu.ProtocolKind, protocol),
                                  field=libspu.FieldType.FM64)
    sim = spsim.Simulator(2, config)
    # the op, and its check against numpy (fixed point: 2^-18 resolution, |a * b| < 10^4)
    rng = np.random.default_rng(1)  # public benchmark data, not a secret
    a, b = rng.uniform(-100, 100, n), rng.uniform(-100, 100, n)
    b_eq = np.where(np.arange(n) % 4 == 0, a, b)      # a quarter of the pairs equal, for ==
    ops = {"mul": (lambda a, b: a * b, b, lambda out: np.allclose(out, a * b, atol=0.1)),
           "lt": (lambda a, b: a < b, b, lambda out: np.array_equal(out.astype(bool), a < b)),
           "eq": (lambda a, b: a == b, b_eq, lambda out: np.array_equal(out.astype(bool), a == b_eq))}
    seconds = {}
    for name, (fn, other, check) in ops.items():
        call = spsim.sim_jax(sim, fn)
        t0 = time.perf_counter()
        call(a[:8], other[:8])  # warm-up: jax, the compiler, the runtimes
        seconds[f"{name}_8"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = np.asarray(call(a, other))
        seconds[name] = time.perf_counter() - t0
        if not check(out):
            raise RuntimeError(f"{protocol} {name}: output differs from numpy")
    return seconds


def main(argv: list[str]) -> None:
    import spu

    n = int(argv[0])
    protocols = [p.upper() for p in argv[1:]] or list(PROTOCOLS)
    seconds, errors = {}, {}
    for protocol in protocols:
        try:
            seconds[protocol] = time_ops(protocol, n)
        except Exception as exc:  # reported in the JSON, the caller decides
            errors[protocol] = f"{type(exc).__name__}: {exc}"
    print(MARK + json.dumps({"n": n, "seconds": seconds, "errors": errors, "spu": spu.__version__}))


if __name__ == "__main__":
    main(sys.argv[1:])
