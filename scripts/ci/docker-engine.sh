#!/usr/bin/env bash
# Start (or reuse) a Docker engine for CI, or stop the one this script started.
#   scripts/ci/docker-engine.sh start   # reuse a running engine, else start dockerd in the background
#   scripts/ci/docker-engine.sh stop    # stop the dockerd `start` started (its pid file), if any
# CI machines have no bridge networking: dockerd runs with --bridge=none, so containers and
# build steps use `--network host` or `--network none`.
set -euo pipefail
# shellcheck source=scripts/ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ENGINE_LOG="$BLOCKSERVE_CI_STATE/dockerd.log"
ENGINE_PID="$BLOCKSERVE_CI_STATE/dockerd.pid"
ENGINE_TIMEOUT="${BLOCKSERVE_ENGINE_TIMEOUT:-90}"

engine_up() { docker info >/dev/null 2>&1; }

start_engine() {
    if engine_up; then
        log "docker engine already running: reusing it"
        return
    fi
    command -v dockerd >/dev/null || die "dockerd not installed (run scripts/ci/docker-env.sh)"
    log "starting dockerd (log: $ENGINE_LOG)"
    rm -f "$ENGINE_PID"
    # setsid: the engine outlives the shell that started it; dockerd writes its own pid file.
    "${AS_ROOT[@]}" setsid dockerd --pidfile "$ENGINE_PID" \
        --bridge=none --iptables=false --ip-masq=false >>"$ENGINE_LOG" 2>&1 </dev/null &
    wait_for "$ENGINE_TIMEOUT" "docker engine (see $ENGINE_LOG)" docker info
    log "docker engine up (pid $(<"$ENGINE_PID"))"
}

stop_engine() {
    [[ -f $ENGINE_PID ]] || { log "no dockerd started by these scripts: nothing to stop"; return; }
    local pid
    pid=$(<"$ENGINE_PID")
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping dockerd (pid $pid)"
        "${AS_ROOT[@]}" kill -TERM "$pid"
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "dockerd did not stop in 30s: killing it"
            "${AS_ROOT[@]}" kill -KILL "$pid"
        fi
    fi
    rm -f "$ENGINE_PID"
}

case "${1:-start}" in
    start) start_engine ;;
    stop) stop_engine ;;
    *) die "usage: $0 start|stop" ;;
esac
