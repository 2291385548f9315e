#!/usr/bin/env bash
# A throwaway PostgreSQL 15 + pgvector cluster for the pgvector vector store and its tests.
#
#   scripts/pg.sh start [DIR]   install if needed, start a cluster in DIR (default run/pg) on a
#                               free loopback port, print its URL (also kept in DIR/url)
#   scripts/pg.sh stop  [DIR]   stop that cluster (its files stay; delete DIR to forget it)
#   scripts/pg.sh url   [DIR]   print the URL of a running cluster
#   scripts/pg.sh install       only install PostgreSQL 15 and pgvector
#
# Exit status 3 means "cannot install here" (not root, or apt-get failed): the contract tests
# skip the pgvector cases on that status alone, and fail on any other.
#
# PostgreSQL 15 comes from Debian 12's own packages. Debian 12 has no pgvector package, so
# unless a configured source offers postgresql-15-pgvector, pgvector is built from Debian's
# pgvector source package (PGVECTOR_SUITE, default trixie: the oldest suite that has one),
# fetched through a private apt configuration that reuses the system's own Debian mirror and
# keyring: the system's sources stay untouched and apt checks the signature and hashes.
set -euo pipefail

PG_MAJOR=15
PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin
PGVECTOR_SUITE=${PGVECTOR_SUITE:-trixie}
CANNOT_INSTALL=3
ROOT=$(cd "$(dirname "$0")/.." && pwd)

say() { echo "pg.sh: $*" >&2; }
cannot_install() { say "cannot install: $*"; exit "$CANNOT_INSTALL"; }
is_root() { [ "$(id -u)" = 0 ]; }

# postgres refuses to run as root; a root caller hands the cluster to the postgres user.
as_owner() {
    if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

installed() {
    [ -x "$PGBIN/postgres" ] && [ -x "$PGBIN/pg_config" ] &&
        [ -f "$("$PGBIN/pg_config" --sharedir)/extension/vector.control" ]
}

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

# The system's own Debian mirror, read from its sources (deb822 or one-line format): the stanza
# or line for this release's main suite, so no mirror is named here.
debian_mirror() {
    local codename uri
    # shellcheck source=/dev/null
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    uri=$(awk -v suite="$codename" '
        function flush() { if (hit && uris != "") { print uris; exit } uris = ""; hit = 0 }
        /^[[:space:]]*$/ { flush(); next }
        $1 == "URIs:" { uris = $2 }
        $1 == "Suites:" { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
        END { flush() }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [ -z "$uri" ]; then
        uri=$(awk -v suite="$codename" '$1 == "deb" {
            for (i = 2; i < NF; i++) if ($i ~ /:\/\// && $(i + 1) == suite) { print $i; exit } }' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
    fi
    [ -n "$uri" ] || cannot_install "no Debian package source for '$codename' is configured"
    echo "$uri"
}

fetch_pgvector_source() {
    local work=$1 conf=$1/apt mirror
    mirror=$(debian_mirror)
    mkdir -p "$conf/parts" "$conf/lists/partial"
    cat >"$conf/parts/pgvector-src.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: $PGVECTOR_SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    local opts=(-o "Dir::Etc::sourcelist=/dev/null" -o "Dir::Etc::sourceparts=$conf/parts"
        -o "Dir::State::Lists=$conf/lists" -o "APT::Sandbox::User=root")
    apt-get "${opts[@]}" update -q >&2 ||
        cannot_install "apt-get update for the pgvector source failed"
    (cd "$work" && apt-get "${opts[@]}" source --download-only -q pgvector >&2) ||
        cannot_install "no pgvector source package in $PGVECTOR_SUITE"
    tar -xzf "$work"/pgvector_*.orig.tar.gz -C "$work"
}

# with_llvm=no: the JIT bitcode would need clang at build time and buys nothing for pgvector.
build_pgvector() {
    local work src
    work=$(mktemp -d)
    fetch_pgvector_source "$work"
    src=$(find "$work" -maxdepth 1 -type d -name 'pgvector-*' | head -n 1)
    make -C "$src" -s -j"$(nproc)" with_llvm=no PG_CONFIG="$PGBIN/pg_config" >&2
    make -C "$src" -s with_llvm=no PG_CONFIG="$PGBIN/pg_config" install >&2
    say "built pgvector ${src##*/pgvector-} from Debian's source package ($PGVECTOR_SUITE)"
    rm -rf "$work"
}

install_now() {
    command -v apt-get >/dev/null || cannot_install "no apt-get on this machine"
    apt-get update -q >&2 || cannot_install "apt-get update failed"
    if apt-cache show "postgresql-$PG_MAJOR-pgvector" >/dev/null 2>&1; then
        apt_install "postgresql-$PG_MAJOR" "postgresql-$PG_MAJOR-pgvector" ||
            cannot_install "apt-get install failed"
    else
        apt_install "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" make gcc ||
            cannot_install "apt-get install failed"
        build_pgvector
    fi
    installed || cannot_install "pgvector is still missing after the install"
}

# One installer at a time: two test sessions starting together would fight over apt's lock.
ensure_installed() {
    installed && return 0
    is_root ||
        cannot_install "PostgreSQL $PG_MAJOR with pgvector is missing; only root can apt-get install it"
    exec 9>"${TMPDIR:-/tmp}/facet-pg-install.lock"
    flock 9
    installed || install_now
    exec 9>&-
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running() {
    [ -f "$1/data/postmaster.pid" ] && as_owner "$PGBIN/pg_ctl" -D "$1/data" status >/dev/null 2>&1
}

# Loopback TCP only with a random password; no Unix socket, so no other local user gets in.
# fsync and friends are off: the cluster is throwaway and a test run should not wait on disks.
init_cluster() {
    local dir=$1 password=$2
    mkdir -p "$dir"
    if is_root; then chown postgres: "$dir"; fi
    as_owner test -w "$dir" ||
        { say "the postgres user cannot write $dir: pick a DIR it can reach (e.g. in /tmp)"; exit 1; }
    (umask 077 && printf '%s\n' "$password" >"$dir/password")
    if is_root; then chown postgres: "$dir/password"; fi
    as_owner "$PGBIN/initdb" -D "$dir/data" -U facet --pwfile="$dir/password" -E UTF8 \
        --auth-host=scram-sha-256 --auth-local=reject >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

# The port is the fourth line of postmaster.pid, so the URL is right after any restart.
cluster_url() {
    local port
    port=$(sed -n 4p "$1/data/postmaster.pid")
    echo "postgresql://facet:$(cat "$1/password")@127.0.0.1:$port/facet"
}

prepare_database() {
    local admin=${1%/facet}/postgres
    "$PGBIN/psql" -qAt "$admin" -c "SELECT 1 FROM pg_database WHERE datname = 'facet'" |
        grep -q 1 ||
        "$PGBIN/psql" -q "$admin" -c "CREATE DATABASE facet" >&2
    PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -q "$1" \
        -c "CREATE EXTENSION IF NOT EXISTS vector" >&2
}

start() {
    local dir=$1 url
    if running "$dir"; then cluster_url "$dir"; return 0; fi
    ensure_installed
    [ -f "$dir/data/PG_VERSION" ] ||
        init_cluster "$dir" "$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
    as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w -t 60 \
        -o "-p $(free_port)" start >&2 || { tail -n 20 "$dir/data/server.log" >&2; exit 1; }
    url=$(cluster_url "$dir")
    prepare_database "$url"
    (umask 077 && echo "$url" >"$dir/url")
    echo "$url"
}

stop() {
    local dir=$1
    if running "$dir"; then as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >&2; fi
    rm -f "$dir/url"
}

url() {
    running "$1" || { say "no cluster running in $1"; exit 1; }
    cluster_url "$1"
}

main() {
    local command=${1:-}
    local dir=${2:-$ROOT/run/pg}
    case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
    case $command in
        start) start "$dir" ;;
        stop) stop "$dir" ;;
        url) url "$dir" ;;
        install) ensure_installed ;;
        *) echo "usage: $0 start|stop|url [DIR] | install" >&2; exit 2 ;;
    esac
}

main "$@"
