"""Bundled sample data for `gaotie demo` and the examples (synthetic, deterministic)."""
