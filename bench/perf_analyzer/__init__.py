"""NVIDIA perf_analyzer, unmodified, against blockserve and Triton side by side.

For each model and protocol it runs perf_analyzer once per server over a few concurrency
levels (its own stability rule decides when a level is measured), parses the CSV it writes
(`-f`) and prints infer/s and latencies with blockserve ÷ Triton ratios; `--write-docs` puts
the table into docs/benchmarks.md.
"""
