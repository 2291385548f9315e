#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/browser): prints the browser's path.
#
#   scripts/chromium.sh        install chromium if needed (apt-get, root), print /usr/bin/chromium
#
# Exit status 3 means "cannot install here" (not root, or apt-get failed), as scripts/pg.sh's.
# Playwright drives this browser through its executable path: no browser is downloaded.
set -euo pipefail

CANNOT_INSTALL=3
BROWSER=/usr/bin/chromium

say() { echo "chromium.sh: $*" >&2; }
cannot_install() { say "cannot install: $*"; exit "$CANNOT_INSTALL"; }

if [ ! -x "$BROWSER" ]; then
    [ "$(id -u)" = 0 ] || cannot_install "chromium is missing; only root can apt-get install it"
    command -v apt-get >/dev/null || cannot_install "no apt-get on this machine"
    exec 9>"${TMPDIR:-/tmp}/facet-chromium-install.lock"
    flock 9
    if [ ! -x "$BROWSER" ]; then
        apt-get update -q >&2 || cannot_install "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            chromium fonts-dejavu-core >&2 || cannot_install "apt-get install failed"
    fi
    exec 9>&-
fi
"$BROWSER" --version >&2
echo "$BROWSER"
