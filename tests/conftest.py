"""Fixtures every test folder shares: real PostgreSQL (with pgvector) and Redis servers, started
by the project's own scripts (scripts/pg.sh, scripts/redis.sh).

Each fixture uses the server its FACET_TEST_* variable names when set; otherwise the script
starts a throwaway one for the session, installing it from Debian's packages first when it is
missing, as on a fresh CI machine (where it runs as root). Cases that use it are skipped only
when the script answers that it cannot install here (exit status 3); any other failure fails
them."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CANNOT_INSTALL = 3  # the scripts' status for "cannot install here"


def _throwaway_server(script: str, variable: str, what: str) -> Iterator[str]:
    if url := os.environ.get(variable):
        yield url
        return
    # Under /tmp, not pytest's tmp_path: that one is private to root and PostgreSQL runs as
    # the postgres user.
    folder = Path(tempfile.mkdtemp(prefix=f"facet-{what}-"))
    path = ROOT / "scripts" / script
    started = subprocess.run(
        ["bash", str(path), "start", str(folder)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if started.returncode == CANNOT_INSTALL:
        shutil.rmtree(folder, ignore_errors=True)
        reason = started.stderr.strip().splitlines()[-1]
        pytest.skip(f"{what.upper()} CASES NOT RUN: scripts/{script} says: {reason}")
    assert started.returncode == 0, f"scripts/{script} start failed:\n{started.stderr[-4000:]}"
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(
            ["bash", str(path), "stop", str(folder)],
            capture_output=True,
            check=False,
            timeout=120,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    yield from _throwaway_server("pg.sh", "FACET_TEST_POSTGRES_URL", "postgres")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    yield from _throwaway_server("redis.sh", "FACET_TEST_REDIS_URL", "redis")
