"""Serving benchmark: blockserve against its in-process ceiling, against peer servers (Triton,
MLServer, LitServe, TorchServe) and against blockserve before the request-path work.

    .venv/bin/python -m bench.serve --quick                      # seconds per point: a smoke run
    .venv/bin/python -m bench.serve --targets request-path       # only those targets (< 15 min)
    .venv/bin/python -m bench.serve --write-docs                 # the run behind docs/benchmarks.md

A run first sweeps every selected server, one at a time, over its workloads, body kinds and
concurrencies (wrk, closed loop), then measures each selected target's ratio head to head in
alternating rounds with every other server paused. The method: bench/README.md.
"""
