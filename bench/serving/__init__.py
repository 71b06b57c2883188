"""Helpers of bench/serve.py: images, load generation, servers under test, ceiling, report."""
