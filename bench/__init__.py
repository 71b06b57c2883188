"""Benchmarks (never tests): `python -m bench.serve` and `bench/runtimes.py`."""
