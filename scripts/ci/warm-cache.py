"""Serve once until every configured model is READY, then stop: fills the bundle cache.

    python warm-cache.py [--port 8765] [--timeout 900] [--silence-timeout 120]

The Dockerfile runs it at build time (config from $BLOCKSERVE_CONFIG) so that the image holds
the exported bundles of its config. It goes through `blockserve serve` itself, so the cache
entries are exactly the ones serving looks up, and a container is ready in seconds. Exits
non-zero naming the model and its reason when one fails, when the timeout passes, or when the
server stops answering (accepting connections but reading no request, say) for the silence
timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request


def model_states(base_url: str) -> dict[str, dict]:
    with urllib.request.urlopen(f"{base_url}/models", timeout=5) as response:
        return {entry["name"]: entry for entry in json.load(response)["models"]}


def wait_all_ready(
    server: subprocess.Popen, base_url: str, timeout: float, silence_timeout: float
) -> None:
    """Until every model is READY; fails at `timeout`, or once the server has not answered
    for `silence_timeout` (it answers `/models` while models load)."""
    deadline = time.monotonic() + timeout
    last = "server not answering yet"
    last_answer = time.monotonic()
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"blockserve serve exited with code {server.returncode}")
        try:
            models = model_states(base_url)
        except (urllib.error.URLError, OSError) as error:
            last = str(error)
            if time.monotonic() - last_answer > silence_timeout:
                silent = f"no answer from {base_url} for {silence_timeout:.0f}s ({last})"
                raise SystemExit(silent) from error
        else:
            last_answer = time.monotonic()
            failed = {name: m.get("reason") for name, m in models.items() if m["state"] == "FAILED"}
            if failed:
                raise SystemExit(f"models failed to load: {failed}")
            if all(m["state"] == "READY" for m in models.values()):
                print(f"warm-cache: all ready: {', '.join(models)}", flush=True)
                return
            last = ", ".join(f"{name} {m['state']}" for name, m in models.items())
        time.sleep(1)
    raise SystemExit(f"models not ready after {timeout:.0f}s ({last})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--silence-timeout", type=float, default=120.0)
    args = parser.parse_args()
    command = ["blockserve", "serve", "--host", "127.0.0.1", "--port", str(args.port)]
    command += ["--grpc-port", "0"]  # REST is all this needs
    # A throwaway API token: without one the server would write a generated token file into
    # the image, one token shared by every container made from it.
    env = {**os.environ, "BLOCKSERVE_API_TOKEN": secrets.token_urlsafe(32)}
    server = subprocess.Popen(command, stdout=sys.stdout, stderr=sys.stderr, env=env)
    try:
        wait_all_ready(server, f"http://127.0.0.1:{args.port}", args.timeout, args.silence_timeout)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
