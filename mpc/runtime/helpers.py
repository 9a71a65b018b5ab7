"""Helper parties and start checks, registered by the engines that need them.

A helper party (e.g. the dealer of :mod:`mpc.ss.dealer`) runs no protocol code: it serves
the computing parties of a job. The engine that needs one registers it here with the
runtime option that calls for it, so the runtime names no engine: ``run_local`` adds the
helpers the job's options select, and a party server runs the function registered for
its own name. An option whose value is ``"auto"`` (the default of every option a helper
registers with ``default=True``) resolves per job: to that helper's value when the job's
deployment has the helper (run_local always has it; a party server has it when its config
lists the helper as a peer), otherwise to the fallback the engine registers with
:func:`register_fallback` (e.g. ``triples="ot"`` for two parties). Engines also register
checks that ``run_local`` runs before any party starts (e.g. that the job's randomness
source has what the function needs). The engines that register are listed in
``mpc.ENGINES`` (the package's configuration, like entry points) and imported the first
time a job asks, so a job's helpers never depend on whether its protocol happened to
import an engine yet.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mpc.runtime.context import Context

HelperFunction = Callable[["Context"], Any]
StartCheck = Callable[[Callable[..., Any], Mapping[str, Any], Sequence[str]], None]
Fallback = Callable[[Sequence[str]], Any]

AUTO = "auto"   # an option's value that resolves per job (see resolve_options)


@dataclass(frozen=True)
class Helper:
    option: str
    value: Any
    name: str
    function: HelperFunction
    default: bool


_lock = threading.Lock()
_HELPERS: dict[str, Helper] = {}
_CHECKS: list[StartCheck] = []
_FALLBACKS: dict[str, Fallback] = {}
_loaded = False


def _load_engines() -> None:
    """Import the engines listed in ``mpc.ENGINES`` once (each registers what it needs)."""
    global _loaded
    if _loaded:
        return
    import mpc

    for name in mpc.ENGINES:
        importlib.import_module(name)
    _loaded = True


def register_helper(option: str, value: Any, name: str, function: HelperFunction,
                    default: bool = False) -> None:
    """Add helper party ``name`` running ``function(ctx)`` to every job whose runtime option
    ``option`` is ``value``; with ``default``, the option defaults to ``"auto"``, which
    resolves to ``value`` wherever the deployment has the helper."""
    helper = Helper(option, value, name, function, default)
    with _lock:
        old = _HELPERS.get(name)
        if old is not None and old != helper:
            raise ValueError(f"helper party {name!r} is registered twice")
        _HELPERS[name] = helper


def register_start_check(check: StartCheck) -> None:
    """Run ``check(fn, options, parties)`` in ``run_local`` before any party starts; it raises
    to refuse the job."""
    with _lock:
        if check not in _CHECKS:
            _CHECKS.append(check)


def register_fallback(option: str, fallback: Fallback) -> None:
    """``option="auto"`` resolves to ``fallback(parties)`` in a job whose deployment lacks the
    option's default helper (the fallback raises to refuse, or returns None: no value)."""
    with _lock:
        old = _FALLBACKS.get(option)
        if old is not None and old is not fallback:
            raise ValueError(f"option {option!r} has a fallback already")
        _FALLBACKS[option] = fallback


def default_options() -> dict[str, Any]:
    """The runtime options' defaults that registered helpers declare (``"auto"``)."""
    _load_engines()
    return {h.option: AUTO for h in _HELPERS.values() if h.default}


def resolve_options(options: Mapping[str, Any], parties: Sequence[str],
                    available: Sequence[str]) -> dict[str, Any]:
    """``options`` with each ``"auto"`` resolved for a job of computing ``parties`` whose
    deployment has the helper parties ``available``: the default helper's value if it is
    available, else the option's fallback (None without one)."""
    _load_engines()
    out = dict(options)
    for option, value in options.items():
        if value != AUTO:
            continue
        chosen = [h.value for h in _HELPERS.values() if h.option == option and h.default and h.name in available]
        if chosen:
            out[option] = chosen[0]
        else:
            fallback = _FALLBACKS.get(option)
            out[option] = None if fallback is None else fallback(list(parties))
    return out


def helper_parties(options: Mapping[str, Any]) -> list[tuple[str, HelperFunction]]:
    """The helper parties (name, function) that runtime ``options`` call for."""
    _load_engines()
    return [(h.name, h.function) for h in _HELPERS.values() if options.get(h.option) == h.value]


def options_for(helpers: Sequence[str]) -> dict[str, Any]:
    """The runtime options that select exactly the helper parties ``helpers`` (a party
    server's job names its helpers; options of helpers it lacks are None)."""
    _load_engines()
    out: dict[str, Any] = {}
    for h in _HELPERS.values():
        if h.name in helpers:
            out[h.option] = h.value
        else:
            out.setdefault(h.option, None)
    return out


def registered_helpers() -> list[str]:
    """Every registered helper party's name (the helpers run_local can start)."""
    _load_engines()
    return list(_HELPERS)


def helper_function(name: str) -> HelperFunction:
    """The function a helper party called ``name`` runs."""
    _load_engines()
    if name not in _HELPERS:
        raise ValueError(f"no helper party called {name!r}")
    return _HELPERS[name].function


def start_checks(fn: Callable[..., Any], options: Mapping[str, Any], parties: Sequence[str]) -> None:
    """Run every registered start check (each raises to refuse the job)."""
    _load_engines()
    for check in list(_CHECKS):
        check(fn, options, parties)
