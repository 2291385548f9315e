#!/usr/bin/env bash
# A throwaway Redis for the shared job queue and rate-limit counters (FACET_REDIS_URL).
#
#   scripts/redis.sh start [DIR]   install if needed, start redis-server with its files in DIR
#                                  (default run/redis) on a free loopback port, print its URL
#                                  (also kept in DIR/url)
#   scripts/redis.sh stop  [DIR]   stop it (its files stay; delete DIR to forget it)
#   scripts/redis.sh url   [DIR]   print the URL of a running server
#
# Exit status 3 means "cannot install here" (not root, or apt-get failed), as scripts/pg.sh's.
# Redis comes from Debian 12's own redis-server package. The server listens on 127.0.0.1 only,
# asks for a random password, and keeps an append-only file, as a production queue should.
set -euo pipefail

CANNOT_INSTALL=3
ROOT=$(cd "$(dirname "$0")/.." && pwd)

say() { echo "redis.sh: $*" >&2; }
cannot_install() { say "cannot install: $*"; exit "$CANNOT_INSTALL"; }

installed() { command -v redis-server >/dev/null && command -v redis-cli >/dev/null; }

ensure_installed() {
    installed && return 0
    [ "$(id -u)" = 0 ] || cannot_install "redis-server is missing; only root can apt-get install it"
    command -v apt-get >/dev/null || cannot_install "no apt-get on this machine"
    exec 9>"${TMPDIR:-/tmp}/facet-redis-install.lock"
    flock 9
    if ! installed; then
        apt-get update -q >&2 || cannot_install "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            redis-server redis-tools >&2 || cannot_install "apt-get install failed"
        # Debian's package starts a system-wide server on 6379; this script runs its own.
        if [ -d /run/systemd/system ]; then systemctl disable --now redis-server >&2 || true; fi
    fi
    exec 9>&-
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running() {
    [ -f "$1/redis.pid" ] && kill -0 "$(cat "$1/redis.pid")" 2>/dev/null
}

server_url() {
    echo "redis://:$(cat "$1/password")@127.0.0.1:$(cat "$1/port")/0"
}

start() {
    local dir=$1 port
    if running "$dir"; then server_url "$dir"; return 0; fi
    ensure_installed
    mkdir -p "$dir"
    [ -f "$dir/password" ] ||
        (umask 077 && head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$dir/password")
    port=$(free_port)
    echo "$port" >"$dir/port"
    (umask 077 && cat >"$dir/redis.conf" <<CONF
bind 127.0.0.1
port $port
protected-mode yes
requirepass $(cat "$dir/password")
dir $dir
pidfile $dir/redis.pid
logfile $dir/redis.log
daemonize yes
appendonly yes
appendfsync everysec
save ""
CONF
    )
    redis-server "$dir/redis.conf" >&2
    for _ in $(seq 100); do
        if REDISCLI_AUTH=$(cat "$dir/password") redis-cli -p "$port" ping 2>/dev/null | grep -q PONG
        then
            (umask 077 && server_url "$dir" >"$dir/url")
            server_url "$dir"
            return 0
        fi
        sleep 0.1
    done
    say "redis-server did not answer on port $port"
    tail -n 20 "$dir/redis.log" >&2 || true
    exit 1
}

stop() {
    local dir=$1 pid
    if running "$dir"; then
        pid=$(cat "$dir/redis.pid")
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$dir/url"
}

url() {
    running "$1" || { say "no server running in $1"; exit 1; }
    server_url "$1"
}

main() {
    local command=${1:-}
    local dir=${2:-$ROOT/run/redis}
    case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
    case $command in
        start) start "$dir" ;;
        stop) stop "$dir" ;;
        url) url "$dir" ;;
        *) sed -n '2,12p' "$0" >&2; exit 2 ;;
    esac
}

main "$@"
