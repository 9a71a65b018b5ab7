"""SecretFlow spu.psi anchor: two-party PSI (ECDH, KKRT, RR22) timed on this machine.

Runs inside the spu virtual environment (``bench/anchors.py`` makes it), never in gaotie's:
spu pins numpy<2. Usage: ``python anchor_spu_psi.py N [PROTOCOL ...]`` with protocols among
ECDH, KKRT, RR22 (all three by default). Prints one JSON object on a stdout line prefixed ``ANCHOR_JSON ``:
``{"n": N, "seconds": {"KKRT": s, ...}, "errors": {"RR22": "why", ...}, "spu": version}``.

Per protocol: two party processes (rank 0 and rank 1, this script re-run with ``--party``)
over brpc on loopback, each with N ids in a CSV file, half of them in common (the same ids
as gaotie's benchmarks: 0..N-1 and N/2..3N/2-1); ECDH on CURVE_25519; rank 0 receives and
checks the intersection count. The time is the slower party's wall time of
``psi.psi_execute`` (reading the CSV, the protocol, writing the result), after both links
are up and a barrier has passed; it excludes process start and link setup.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROTOCOLS = ("ECDH", "KKRT", "RR22")
MARK = "ANCHOR_JSON "  # spu's C++ logs share stdout: results are the lines with this prefix


def _marked(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith(MARK)]
    if not lines:
        raise RuntimeError(f"no {MARK.strip()} line in the output: {stdout[-300:]!r}")
    return lines[-1][len(MARK):]


def _free_ports(k: int) -> list[int]:
    socks = [socket.socket() for _ in range(k)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _party(rank: int, protocol: str, ports: list[int], inp: str, out: str) -> None:
    """One party: link up, barrier, psi_execute, print its seconds and intersection count."""
    import spu.libspu as libspu
    import spu.psi as psi

    desc = libspu.link.Desc()
    for r, port in enumerate(ports):
        desc.add_party(f"party{r}", f"127.0.0.1:{port}")
    desc.connect_retry_times = 120
    desc.connect_retry_interval_ms = 500
    desc.recv_timeout_ms = 3600 * 1000
    desc.http_timeout_ms = 3600 * 1000
    lctx = libspu.link.create_brpc(desc, rank)
    config = psi.PsiExecuteConfig(
        protocol_conf=psi.PsiProtocolConfig(
            protocol=psi.parse_protocol(f"PROTOCOL_{protocol}"),
            receiver_rank=0,
            broadcast_result=False,
            ecdh_params=psi.EcdhParams(curve=psi.EllipticCurveType.CURVE_25519),
        ),
        input_params=psi.InputParams(path=inp, selected_keys=["id"], keys_unique=True),
        output_params=psi.OutputParams(path=out, disable_alignment=True),
    )
    lctx.barrier()
    t0 = time.perf_counter()
    report = psi.psi_execute(config, lctx)
    seconds = time.perf_counter() - t0
    lctx.stop_link()
    print(MARK + json.dumps({"seconds": seconds, "intersection": report.intersection_count}), flush=True)


def run_protocol(n: int, protocol: str, workdir: Path, timeout: float = 3600) -> float:
    """Seconds of one two-party run of ``protocol`` on n x n ids; raises with the reason."""
    inputs = []
    for rank, start in enumerate((0, n // 2)):
        path = workdir / f"{protocol}_in{rank}.csv"
        path.write_text("id\n" + "\n".join(map(str, range(start, start + n))) + "\n")
        inputs.append(path)
    ports = _free_ports(2)
    procs = [subprocess.Popen([sys.executable, __file__, "--party", str(rank), protocol,
                               ",".join(map(str, ports)), str(inputs[rank]),
                               str(workdir / f"{protocol}_out{rank}.csv")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in range(2)]
    results = []
    try:
        for rank, proc in enumerate(procs):
            stdout, stderr = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                tail = " | ".join(stderr.strip().splitlines()[-3:])
                raise RuntimeError(f"{protocol} party {rank} exited {proc.returncode}: {tail}")
            results.append(json.loads(_marked(stdout)))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    if results[0]["intersection"] != n - n // 2:
        raise RuntimeError(f"{protocol}: intersection {results[0]['intersection']} != {n - n // 2}")
    return max(r["seconds"] for r in results)


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--party":
        rank, protocol, ports, inp, out = argv[1:6]
        _party(int(rank), protocol, [int(p) for p in ports.split(",")], inp, out)
        return
    import spu

    n = int(argv[0])
    protocols = [p.upper() for p in argv[1:]] or list(PROTOCOLS)
    seconds, errors = {}, {}
    with tempfile.TemporaryDirectory(prefix="spu_psi_") as tmp:
        for protocol in protocols:
            try:
                seconds[protocol] = run_protocol(n, protocol, Path(tmp))
            except Exception as exc:  # reported in the JSON, the caller decides
                errors[protocol] = f"{type(exc).__name__}: {exc}"
    print(MARK + json.dumps({"n": n, "seconds": seconds, "errors": errors, "spu": spu.__version__}))


if __name__ == "__main__":
    main(sys.argv[1:])
