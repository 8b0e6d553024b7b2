"""Benchmarks against named peers; run with `python -m benchmarks`."""
