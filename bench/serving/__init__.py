"""Helpers of the serving benchmark (`python -m bench.serve`): images, request bodies, load
generation, servers under test, ceiling, targets, results and report."""
