"""The correlated-randomness provider interface: declared capabilities, checked at job start."""

import numpy as np
import pytest

import mpc
from mpc.runtime import helpers
from mpc.ss import provider
from mpc.ss.dealer import DealerSource
from mpc.ss.paillier_triples import PaillierSource
from mpc.ss.provider import MissingCapability, RandomnessProvider
from mpc.ss.shuffle import shuffle
from mpc.ss.triples import get_source
from protocols import registry

PAILLIER = {"triples": "paillier", "paillier_bits": 512}


def test_every_capability_is_a_method_of_the_interface():
    for cap in provider.CAPABILITIES:
        assert callable(getattr(RandomnessProvider, cap))
    assert DealerSource.capabilities <= provider.CAPABILITIES
    assert PaillierSource.capabilities <= provider.CAPABILITIES


def test_sources_declare_what_they_have():
    assert DealerSource.supports(provider.SHUFFLE) and DealerSource.supports(provider.DEALER_JOIN)
    assert not DealerSource.supports(provider.TRUNCATE)
    assert PaillierSource.supports(provider.TRUNCATE)
    assert not PaillierSource.supports(provider.SHUFFLE)
    assert not PaillierSource.supports(provider.TRUNC_PAIR_BITS)
    with pytest.raises(ValueError, match="unknown capability 'teleport'"):
        DealerSource.supports("teleport")


def test_a_missing_capability_names_itself_and_the_source():
    class Bare(RandomnessProvider):
        name = "bare"

    with pytest.raises(MissingCapability, match="'shuffle'.*'bare'"):
        Bare().shuffle(np.zeros((1, 2), np.uint64))
    with pytest.raises(MissingCapability, match="'arithmetic'"):
        Bare().arithmetic((3,))


def test_run_local_refuses_a_job_its_source_cannot_serve_before_it_starts():
    started = []

    @provider.needs(provider.SHUFFLE)
    def job(ctx):
        started.append(ctx.party)
        return shuffle(ctx, np.zeros((1, 4), np.uint64))

    with pytest.raises(MissingCapability, match="needs 'shuffle'.*'paillier'") as info:
        mpc.run_local(job, ["a", "b"], **PAILLIER)
    assert "provides: " in str(info.value) and started == []
    with pytest.raises(MissingCapability, match="no randomness source"):
        mpc.run_local(job, ["a", "b"], triples=None)
    out = mpc.run_local(job, ["a", "b"])          # the dealer has it
    assert sorted(started) == ["a", "b"]
    assert np.array_equal(out["a"] + out["b"], np.zeros((1, 4), np.uint64))


def test_a_protocol_without_declared_needs_still_fails_clearly_at_run_time():
    def job(ctx):
        return shuffle(ctx, np.zeros((1, 4), np.uint64))

    with pytest.raises(mpc.JobFailed, match="oblivious shuffle needs 'shuffle'.*'paillier'"):
        mpc.run_local(job, ["a", "b"], timeout=60, **PAILLIER)


def test_source_answers_supports_at_run_time():
    def job(ctx):
        src = get_source(ctx)
        return isinstance(src, RandomnessProvider), src.supports(provider.SHUFFLE)

    assert mpc.run_local(job, ["a", "b"]) == {"a": (True, True), "b": (True, True)}
    assert mpc.run_local(job, ["a", "b"], timeout=60, **PAILLIER) == {"a": (True, False), "b": (True, False)}


def test_registry_entries_declare_their_needs():
    params = {"ids": ["a.d.id", "b.d.id"], "columns": ["a.d.x"], "join": "dealer"}
    spec = registry.get("join.stats")
    assert provider.DEALER_JOIN in spec.needs(spec.validate(params))
    assert provider.DEALER_JOIN not in spec.needs(spec.validate({**params, "join": "ecdh"}))
    provider.check(spec.needs(spec.validate(params)), helpers.options_for(spec.helpers))
    with pytest.raises(MissingCapability, match="protocol 'join.stats' needs"):
        provider.check(spec.needs(spec.validate(params)), helpers.options_for([]), "protocol 'join.stats'")


def test_the_dealer_registers_itself_with_the_runtime():
    assert helpers.default_options() == {"triples": "auto"}
    assert [name for name, _ in helpers.helper_parties({"triples": provider.DEALER})] == [provider.DEALER]
    assert helpers.helper_parties({"triples": "paillier"}) == []
    assert helpers.options_for([]) == {"triples": None}
    with pytest.raises(ValueError, match="registered twice"):
        helpers.register_helper("triples", "other", provider.DEALER, lambda ctx: None)
    with pytest.raises(ValueError, match="no helper party called 'nobody'"):
        helpers.helper_function("nobody")


def test_auto_means_the_dealer_where_there_is_one_else_ot():
    auto = helpers.default_options()
    assert helpers.resolve_options(auto, ["a", "b", "c"], [provider.DEALER]) == {"triples": provider.DEALER}
    assert helpers.resolve_options(auto, ["a", "b"], []) == {"triples": "ot"}
    assert helpers.resolve_options({"triples": "paillier"}, ["a", "b"], [provider.DEALER]) == {"triples": "paillier"}
    three = helpers.resolve_options(auto, ["a", "b", "c"], [])
    assert three == {"triples": "ot"}           # three parties: mpc.ss.ot_parties.OtParties
    provider.check(provider.SECRET_SHARING + (provider.SHUFFLE,), three)
    assert provider.source_class("ot", 3).__name__ == "OtParties"
    assert provider.source_class("ot", 3).capabilities == provider.source_class("ot").capabilities
    with pytest.raises(MissingCapability, match="no randomness source"):
        provider.check(provider.SECRET_SHARING, {"triples": None})


def test_run_local_auto_starts_the_dealer_and_ot_starts_none():
    def which(ctx):
        return get_source(ctx).name, list(ctx.helpers)

    assert mpc.run_local(which, ["a", "b"])["a"] == (provider.DEALER, [provider.DEALER])
    assert mpc.run_local(which, ["a", "b"], triples="ot")["a"] == ("ot", [])


def test_helpers_do_not_depend_on_whether_the_protocol_imported_the_engine_yet():
    """A fresh process: the runtime alone, a protocol that imports mpc.ss only when it runs."""
    import subprocess
    import sys

    code = ("import sys\nfrom mpc.runtime.local import run_local\n"
            "assert 'mpc.ss' not in sys.modules\n"
            "def job(ctx):\n    from mpc.ss.triples import get_source\n"
            "    return get_source(ctx).name, ctx.helpers\n"
            "print(run_local(job, ['a', 'b']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'a': ('dealer', ['dealer']), 'b': ('dealer', ['dealer'])}"


class ToySource(RandomnessProvider):
    """A source with one capability, to show a new source (e.g. issue 17's OT source) plugs
    in by registration alone. INSECURE: all-zero triples open the inputs; tests only."""

    name = "toy"
    capabilities = frozenset({provider.ARITHMETIC})

    def __init__(self, ctx):
        self.ctx = ctx

    def arithmetic(self, shape):
        zero = np.zeros(shape, np.uint64)
        return zero, zero.copy(), zero.copy()


def test_a_registered_source_is_selected_by_name_and_checked_by_its_capabilities():
    from mpc.ss import beaver

    provider.register_source("toy", __name__, "ToySource")
    assert "toy" in provider.source_kinds() and provider.source_class("toy") is ToySource

    def job(ctx):
        x = np.array([3, 5], np.uint64) if ctx.rank == 0 else np.zeros(2, np.uint64)
        y = np.array([7, 11], np.uint64) if ctx.rank == 1 else np.zeros(2, np.uint64)
        return beaver.open_arith(ctx, beaver.mul(ctx, x, y))

    out = mpc.run_local(job, ["a", "b"], triples="toy")
    assert out["a"].tolist() == [21, 55] and out["b"].tolist() == [21, 55]
    with pytest.raises(MissingCapability, match="needs 'boolean'.*'toy'.*provides: arithmetic"):
        mpc.run_local(provider.needs(provider.BOOLEAN)(job), ["a", "b"], triples="toy")
    with pytest.raises(ValueError, match="registered twice"):
        provider.register_source("toy", __name__, "Other")
