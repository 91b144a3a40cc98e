#!/usr/bin/env bash
# The local cloud: moto server answering the AWS APIs on loopback, the
# Docker engine that builds the function images, and a registry standing in
# for ECR's registry endpoint.
#
#   scripts/local-cloud.sh install   install what is missing (moto server, docker.io, docker-registry,
#                                    and the contract checkers: parliament, AWS's Lambda Runtime
#                                    Interface Emulator)
#   scripts/local-cloud.sh start     start dockerd (unless one answers), the registry on
#                                    127.0.0.1:${REGISTRY_PORT:-5000} and moto on 127.0.0.1:${MOTO_PORT:-4566}
#   scripts/local-cloud.sh engine    start dockerd only, unless one answers (the image tests need it)
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
parliament_version="1.6.4"
# The AWS Lambda Runtime Interface Emulator ships inside this PyPI package;
# only the binary is taken (the `sam` command itself is never run).
sam_cli_version="1.170.0"
rie_path="/usr/local/bin/aws-lambda-rie"
registry_port="${REGISTRY_PORT:-5000}"

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
    if ! command -v parliament >/dev/null; then
        log "installing parliament==$parliament_version (IAM policy linter)"
        python3 -m pip install --quiet "parliament==$parliament_version"
    fi
    if [ ! -x "$rie_path" ]; then
        log "installing the Lambda Runtime Interface Emulator from aws-sam-cli==$sam_cli_version"
        local wheel_dir; wheel_dir="$(mktemp -d)"
        python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$wheel_dir" "aws-sam-cli==$sam_cli_version"
        python3 - "$wheel_dir" "$rie_path" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "aws_sam_cli-*.whl"))[0]
with zipfile.ZipFile(wheel) as archive:
    data = archive.read("samcli/local/rapid/aws-lambda-rie-x86_64")
with open(sys.argv[2], "wb") as out:
    out.write(data)
os.chmod(sys.argv[2], 0o755)
PY
        rm -rf "$wheel_dir"
    fi
    if ! command -v openssl >/dev/null; then
        log "installing openssl (the TLS daemon test makes its certificates with it)"
        apt-get update -qq && apt-get install -y -qq openssl >/dev/null
    fi
    if ! command -v dockerd >/dev/null || ! command -v docker-registry >/dev/null; then
        log "installing docker.io and docker-registry"
        apt-get update -qq && apt-get install -y -qq docker.io docker-registry >/dev/null
    fi
}

# dockerd, unless a daemon already answers (its pid is kept only if we started it).
engine() {
    mkdir -p "$state"
    if docker info >/dev/null 2>&1; then
        log "the Docker daemon answers"
        return 0
    fi
    log "starting dockerd"
    nohup dockerd >"$state/dockerd.log" 2>&1 &
    echo $! >"$state/dockerd.pid"
    for _ in $(seq 1 100); do
        if docker info >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    log "dockerd did not answer; see $state/dockerd.log"; exit 1
}

registry() {
    mkdir -p "$state/registry"
    if [ -f "$state/registry.pid" ] && kill -0 "$(cat "$state/registry.pid")" 2>/dev/null; then
        log "the registry already runs (pid $(cat "$state/registry.pid")) on 127.0.0.1:$registry_port"
        return 0
    fi
    cat >"$state/registry.yml" <<EOT
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $state/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$registry_port
EOT
    log "starting the registry on 127.0.0.1:$registry_port"
    nohup docker-registry serve "$state/registry.yml" >"$state/registry.log" 2>&1 &
    echo $! >"$state/registry.pid"
    wait_for "http://127.0.0.1:$registry_port/v2/" "the registry"
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
    engine
    registry
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
    for service in registry dockerd; do
        if [ -f "$state/$service.pid" ]; then
            local owned; owned="$(cat "$state/$service.pid")"
            if kill -0 "$owned" 2>/dev/null; then log "stopping $service (pid $owned)"; kill "$owned"; fi
            rm -f "$state/$service.pid"
        fi
    done
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
    if [ -f "$state/registry.pid" ] && kill -0 "$(cat "$state/registry.pid")" 2>/dev/null; then
        echo "registry: running, pid $(cat "$state/registry.pid"), 127.0.0.1:$registry_port"
    else
        echo "registry: stopped"
    fi
    if docker info >/dev/null 2>&1; then echo "docker: answers"; else echo "docker: not answering"; fi
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    engine) install; engine ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 install|start|engine|stop|status" >&2; exit 2 ;;
esac
