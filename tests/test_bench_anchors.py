"""bench/anchors.py's pure logic: reading an anchor's output and falling back to recorded figures.

The anchors themselves (spu, openmined-psi in their own venvs) run only in the benchmarks.
"""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("anchors", Path(__file__).parents[1] / "bench" / "anchors.py")
anchors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(anchors)


def test_parse_takes_the_last_marked_line_among_engine_logs():
    stdout = ('[info] [psi.cc:12] {"not": "ours"}\n'
              'ANCHOR_JSON {"n": 1, "seconds": {"KKRT": 9.0}}\n'
              '[info] link stopped\n'
              'ANCHOR_JSON {"n": 2, "seconds": {"KKRT": 0.5}, "errors": {}}\n'
              '[info] bye\n')
    assert anchors.parse_anchor_output(stdout) == {"n": 2, "seconds": {"KKRT": 0.5}, "errors": {}}


@pytest.mark.parametrize("stdout, why", [
    ("[info] only logs\n", "no ANCHOR_JSON line"),
    ("ANCHOR_JSON {truncated\n", "not JSON"),
    ("ANCHOR_JSON [1, 2]\n", "not a JSON object"),
])
def test_parse_rejects_output_without_a_result(stdout, why):
    with pytest.raises(anchors.AnchorUnavailable, match=why):
        anchors.parse_anchor_output(stdout)


def test_merge_keeps_measured_and_labels_recorded_fallbacks():
    result = {"seconds": {"KKRT": 0.9, "CHEETAH": {"mul": 11.0, "lt": 30.0}},
              "errors": {"RR22": "RuntimeError: RR22 party 1 exited 1"}}
    recorded = {"KKRT": 0.77, "RR22": 0.46}
    merged = anchors.merge_with_recorded(result, None, ["KKRT", "RR22", "CHEETAH", "ECDH"], recorded)
    assert merged["KKRT"] == {"seconds": 0.9, "source": "measured"}
    assert merged["CHEETAH"] == {"mul": 11.0, "lt": 30.0, "source": "measured"}
    assert merged["RR22"]["seconds"] == 0.46
    assert merged["RR22"]["source"].startswith("recorded") and "party 1 exited 1" in merged["RR22"]["source"]
    assert "seconds" not in merged["ECDH"] and "no recorded figure" in merged["ECDH"]["source"]


def test_merge_after_a_failed_run_uses_recorded_figures_with_the_reason():
    merged = anchors.merge_with_recorded(None, "pip install spu failed (offline?)", ["CHEETAH"],
                                         anchors.RECORDED_ARITH[1 << 20])
    assert merged["CHEETAH"]["mul"] == 12.0 and merged["CHEETAH"]["lt"] == 32.4
    assert "offline" in merged["CHEETAH"]["source"] and merged["CHEETAH"]["source"].startswith("recorded")


def test_describe_prints_the_ratio_anchor_over_gaotie():
    line = anchors.describe("spu.psi KKRT", {"seconds": 2.0, "source": "measured"}, 1.0)
    assert "2.00 s" in line and "= 2.00" in line and "(measured)" in line
    assert "n/a" in anchors.describe("spu.psi ECDH", {"source": "failed"}, 1.0)
