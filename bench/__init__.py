"""Benchmarks: each module runs with `python -m bench.<name>`; results go to docs/BENCHMARKS.md."""
