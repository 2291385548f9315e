"""Fixtures the unit tests share: a PostgreSQL with pgvector for the stores' contract.

pgvector: the server at FACET_TEST_POSTGRES_URL when that is set; otherwise scripts/pg.sh starts
a throwaway cluster for the session (installing PostgreSQL 15 and pgvector first when they are
missing, as on a fresh CI machine, where it runs as root). Cases that use it are skipped only
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

ROOT = Path(__file__).resolve().parents[2]
PG_SCRIPT = ROOT / "scripts" / "pg.sh"
CANNOT_INSTALL = 3  # scripts/pg.sh's status for "cannot install here"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if url := os.environ.get("FACET_TEST_POSTGRES_URL"):
        yield url
        return
    # Under /tmp, not pytest's tmp_path: that one is private to root and the cluster runs as
    # the postgres user.
    folder = Path(tempfile.mkdtemp(prefix="facet-pg-"))
    started = subprocess.run(
        ["bash", str(PG_SCRIPT), "start", str(folder)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if started.returncode == CANNOT_INSTALL:
        shutil.rmtree(folder, ignore_errors=True)
        reason = started.stderr.strip().splitlines()[-1]
        pytest.skip(f"PGVECTOR CONTRACT CASES NOT RUN: scripts/pg.sh says: {reason}")
    assert started.returncode == 0, f"scripts/pg.sh start failed:\n{started.stderr[-4000:]}"
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(
            ["bash", str(PG_SCRIPT), "stop", str(folder)],
            capture_output=True,
            check=False,
            timeout=120,
        )
        shutil.rmtree(folder, ignore_errors=True)
