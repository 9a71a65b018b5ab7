"""The committed generated code in mpc/_proto matches what proto/ generates."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_in_sync(tmp_path):
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    fresh = gen.generate(tmp_path)
    assert fresh
    for path in fresh:
        committed = ROOT / "mpc" / "_proto" / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} missing: run python scripts/gen_proto.py"
        assert committed.read_text() == path.read_text(), f"{committed} is stale: run python scripts/gen_proto.py"
