"""Reference engines measured in the benchmark's own run, each in a virtual environment of its own.

SecretFlow's wheels (``spu``, ``sf-heu``) pin numpy<2 and openmined-psi pins an old
protobuf, so none of them can live in gaotie's environment. ``run_in_venv`` creates
``bench/.venvs/<name>`` on first use (pip install with a timeout, under a file lock so two
benchmarks starting together do not race), runs an anchor script there as a subprocess and
returns the JSON object the script printed on its ``ANCHOR_JSON `` line.

On top of it, for the benchmarks of issues 16 and 17:

* ``spu_psi(n, protocols)``: SecretFlow spu.psi, two parties over brpc on loopback
  (``anchor_spu_psi.py``), seconds per protocol (ECDH on CURVE_25519, KKRT, RR22).
* ``spu_arith(n, protocols)``: SPU's simulator, two parties, FM64, seconds of ``a * b``,
  ``a < b`` and ``a == b`` on n float64 elements (``anchor_spu_cheetah.py``), CHEETAH and SEMI2K.

Both return ``{protocol: {timing: seconds, ..., "source": text}}``. ``source`` is
``"measured"`` when the figures come from this run; when the run fails (offline, no wheel
for this Python, a crash) it names the reason and the figures are the ones recorded on
this machine in the issues (``RECORDED_*``), or absent when none was recorded for that n.
``python bench/anchors.py psi 65536`` (or ``arith 1048576``) prints one anchor's figures.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
MARK = "ANCHOR_JSON "

SPU_REQUIREMENTS = ("spu==0.9.5", "sf-heu==0.5.2b0")
SPU_PROBE = "import spu.psi, spu.utils.simulation, heu"

# Measured on this machine, recorded in issue 16 (spu.psi, two processes over brpc) ...
RECORDED_PSI = {1 << 16: {"ECDH": 1.6, "KKRT": 0.77, "RR22": 0.46},
                1 << 20: {"ECDH": 26.8, "KKRT": 13.6, "RR22": 6.5}}
# ... and in issue 17 (SPU simulator, 2 parties, FM64, 2^20 elements).
RECORDED_ARITH = {1 << 20: {"CHEETAH": {"mul": 12.0, "lt": 32.4},
                            "SEMI2K": {"mul": 0.70, "lt": 2.45}}}


class AnchorUnavailable(RuntimeError):
    """The reference engine could not be installed or run; the message says why."""


def parse_anchor_output(stdout: str) -> dict[str, Any]:
    """The JSON object on the last ``ANCHOR_JSON `` line of an anchor's stdout.

    The engines' C++ loggers write to the same stdout, so the result line carries a prefix.
    """
    lines = [line[len(MARK):] for line in stdout.splitlines() if line.startswith(MARK)]
    if not lines:
        raise AnchorUnavailable(f"the anchor printed no {MARK.strip()} line; its output ended "
                                f"with {stdout[-300:]!r}")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise AnchorUnavailable(f"the anchor's {MARK.strip()} line is not JSON: {exc}") from None
    if not isinstance(result, dict):
        raise AnchorUnavailable(f"the anchor's {MARK.strip()} line is not a JSON object")
    return result


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def venv_python(name: str, requirements: tuple[str, ...], probe: str,
                install_timeout: float = 900) -> Path:
    """The python of ``bench/.venvs/<name>``, created and pip-installed on first use.

    ``probe`` is Python code that succeeds once the requirements are importable; pip runs
    only when it fails. Raises AnchorUnavailable naming the step that failed.
    """
    venv = VENVS / name
    py = venv / "bin" / "python"
    VENVS.mkdir(parents=True, exist_ok=True)
    with open(VENVS / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if py.exists() and subprocess.run([str(py), "-c", probe], capture_output=True).returncode == 0:
            return py
        if not py.exists():
            made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
            if made.returncode != 0:
                raise AnchorUnavailable(f"could not create the venv {venv}: {_tail(made.stderr)}")
        cmd = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
               "--timeout", "30", "--retries", "2", *requirements]
        try:
            pip = subprocess.run(cmd, capture_output=True, text=True, timeout=install_timeout)
        except subprocess.TimeoutExpired:
            raise AnchorUnavailable(f"pip install {' '.join(requirements)} into {venv} took over "
                                    f"{install_timeout:.0f} s (offline, or the registry is slow)") from None
        if pip.returncode != 0:
            raise AnchorUnavailable(
                f"pip install {' '.join(requirements)} into {venv} failed (offline, or no wheel for "
                f"Python {sys.version_info.major}.{sys.version_info.minor}?): {_tail(pip.stderr)}")
        check = subprocess.run([str(py), "-c", probe], capture_output=True, text=True)
        if check.returncode != 0:
            raise AnchorUnavailable(f"installed {' '.join(requirements)} but `{probe}` fails: "
                                    f"{_tail(check.stderr)}")
        return py


def run_in_venv(name: str, requirements: tuple[str, ...], script: Path, args: list[str], *,
                probe: str, timeout: float = 3600) -> dict[str, Any]:
    """Run ``script args`` with the python of venv ``name``; the JSON object it printed."""
    py = venv_python(name, requirements, probe)
    # its own process group: on a timeout the script's party processes are ended with it
    proc = subprocess.Popen([str(py), str(script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AnchorUnavailable(f"{script.name} {' '.join(map(str, args))} ran over {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise AnchorUnavailable(f"{script.name} exited {proc.returncode}: {_tail(stderr)}")
    return parse_anchor_output(stdout)


def merge_with_recorded(result: dict[str, Any] | None, failure: str | None, protocols: list[str],
                        recorded: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per protocol: the measured timings, else the recorded ones labelled with the reason.

    ``result`` is an anchor's JSON (``seconds``: protocol -> seconds or {op: seconds},
    ``errors``: protocol -> reason), or None when the whole run failed with ``failure``.
    """
    merged: dict[str, dict[str, Any]] = {}
    for protocol in protocols:
        measured = (result or {}).get("seconds", {}).get(protocol)
        if measured is not None:
            timings = measured if isinstance(measured, dict) else {"seconds": measured}
            merged[protocol] = {**timings, "source": "measured"}
            continue
        why = failure or (result or {}).get("errors", {}).get(protocol, "no figure in the output")
        old = recorded.get(protocol)
        if old is None:
            merged[protocol] = {"source": f"spu run failed ({why}); no recorded figure for this size"}
        else:
            timings = old if isinstance(old, dict) else {"seconds": old}
            merged[protocol] = {**timings, "source": f"recorded in the issue, spu run failed ({why})"}
    return merged


def _spu(script: str, n: int, protocols: list[str], recorded: dict[str, Any],
         timeout: float) -> dict[str, dict[str, Any]]:
    try:
        result, failure = run_in_venv("spu", SPU_REQUIREMENTS, HERE / script, [n, *protocols],
                                      probe=SPU_PROBE, timeout=timeout), None
    except AnchorUnavailable as exc:
        result, failure = None, str(exc)
    return merge_with_recorded(result, failure, protocols, recorded)


def spu_psi(n: int, protocols: tuple[str, ...] = ("ECDH", "KKRT", "RR22"),
            timeout: float = 3600) -> dict[str, dict[str, Any]]:
    """SecretFlow spu.psi on n x n ids, half in common: ``{protocol: {"seconds", "source"}}``."""
    return _spu("anchor_spu_psi.py", n, list(protocols), RECORDED_PSI.get(n, {}), timeout)


def spu_arith(n: int = 1 << 20, protocols: tuple[str, ...] = ("CHEETAH", "SEMI2K"),
              timeout: float = 3600) -> dict[str, dict[str, Any]]:
    """SPU ``a * b``, ``a < b`` and ``a == b`` on n float64 elements, two parties, FM64.

    ``{protocol: {"mul": s, "lt": s, "eq": s, "mul_8": s, ..., "source": text}}``; ``*_8`` is
    the warm-up call on 8 elements (each simulated call starts fresh runtimes, so CHEETAH's
    OT and HE set-up is inside every timing, as in the issue's figures), absent when the
    figures are the recorded ones.
    The recorded fallback has no ``eq`` (not measured in the issue).
    """
    return _spu("anchor_spu_cheetah.py", n, list(protocols), RECORDED_ARITH.get(n, {}), timeout)


def describe(label: str, entry: dict[str, Any], gaotie_seconds: float, key: str = "seconds") -> str:
    """One printout line: the anchor's ``entry[key]``, the ratio to gaotie's time, the source.

    The ratio is anchor seconds / gaotie seconds: above 1 means gaotie is faster.
    """
    value = entry.get(key)
    if value is None:
        return f"  {label:22s}      n/a    ({entry['source']})"
    return (f"  {label:22s} {value:8.2f} s  ratio {label}/gaotie = {value / gaotie_seconds:.2f}"
            f"  ({entry['source']})")


if __name__ == "__main__":
    # python bench/anchors.py psi 65536 | arith 1048576: the anchors alone, as JSON
    kind, size = sys.argv[1], int(sys.argv[2])
    print(json.dumps((spu_psi if kind == "psi" else spu_arith)(size), indent=1))
