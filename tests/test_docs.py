"""Docs stay true to the code: the README's reveal table is the registry's."""

from pathlib import Path

from protocols import registry

ROOT = Path(__file__).resolve().parent.parent


def test_readme_reveal_table_matches_registry():
    table = registry.reveal_table()
    assert table in (ROOT / "README.md").read_text(), (
        "README.md's 'What each protocol reveals' table is stale; replace it with:\n" + table)


def test_every_protocol_says_what_it_reveals():
    for name in registry.names():
        spec = registry.get(name)
        assert spec.reveals and spec.doc, name
