#!/usr/bin/env bash
# The local cloud: moto server answering the AWS APIs on loopback.
#
#   scripts/local-cloud.sh install   install what is missing (moto server)
#   scripts/local-cloud.sh start     start moto on 127.0.0.1:${MOTO_PORT:-4566}
#   scripts/local-cloud.sh stop      stop what `start` started
#   scripts/local-cloud.sh status    say what runs
#
# Tests do not need `start`: the test harness gives each test its own moto
# server on a free port. `start` is for the demo and for trying the
# controller by hand (config/local.toml points at port 4566).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
state="$here/.local-cloud"
moto_port="${MOTO_PORT:-4566}"
moto_version="5.2.1"

log() { printf '==> %s\n' "$*" >&2; }

install() {
    if ! command -v python3 >/dev/null; then
        log "installing python3"
        apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null
    fi
    if ! command -v moto_server >/dev/null || ! python3 -c 'import flask, flask_cors' 2>/dev/null; then
        log "installing moto[server]==$moto_version"
        python3 -m pip install --quiet "moto[server]==$moto_version"
    fi
    command -v moto_server >/dev/null || { log "moto_server is not on PATH after install"; exit 1; }
}

wait_for() {
    local url="$1" what="$2"
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "$what did not answer on $url"; exit 1
}

start() {
    install
    mkdir -p "$state"
    if [ -f "$state/moto.pid" ] && kill -0 "$(cat "$state/moto.pid")" 2>/dev/null; then
        log "moto already runs (pid $(cat "$state/moto.pid")) on 127.0.0.1:$moto_port"
    else
        log "starting moto on 127.0.0.1:$moto_port"
        nohup moto_server -H 127.0.0.1 -p "$moto_port" >"$state/moto.log" 2>&1 &
        echo $! >"$state/moto.pid"
    fi
    wait_for "http://127.0.0.1:$moto_port/moto-api/" "moto"
}

stop() {
    if [ -f "$state/moto.pid" ]; then
        local pid; pid="$(cat "$state/moto.pid")"
        if kill -0 "$pid" 2>/dev/null; then log "stopping moto (pid $pid)"; kill "$pid"; fi
        rm -f "$state/moto.pid"
    fi
}

status() {
    if [ -f "$state/moto.pid" ] && kill -0 "$(cat "$state/moto.pid")" 2>/dev/null; then
        echo "moto: running, pid $(cat "$state/moto.pid"), http://127.0.0.1:$moto_port"
    else
        echo "moto: stopped"
    fi
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
