"""The seed's run manifest: `RunManifest(args=..., device=...)` and `write_manifest(path, man)`.

The fields are the seed's, plus `server` and `timings`. On writing, a manifest whose `models`
is empty gets the server's: each model's version, weight source, licence and readiness, as the
server states them; a server that cannot be reached is recorded (`server["error"]`), not
raised, so a finished run still gets its manifest. `ended_at` left None is the time of writing.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import numpy as np

from clients.errors import FacetClientError
from clients.gfpp.session import SessionSource, open_session

PACKAGES: Final = ("facet", "numpy", "opencv-python-headless", "pillow", "httpx", "tritonclient")
GIT_TIMEOUT_S: Final = 2.0


def collect_env() -> dict[str, Any]:
    """Python, platform and client package versions, and the git commit when run in a
    checkout. No torch: the models run on the server."""
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "git": git_commit(),
    }


def git_commit() -> str | None:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip() or None if found.returncode == 0 else None


@dataclass
class RunManifest:
    args: dict[str, Any]
    device: str
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    metrics_file: str | None = None
    env: dict[str, Any] = field(default_factory=collect_env)
    server: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def record(self, result: Any, **extra: Any) -> None:
        """Append one RestoreResult's paths and metrics (not its pixels) to `results`."""
        self.results.append(
            {
                "input_path": getattr(result, "input_path", None),
                "restored_path": getattr(result, "restored_path", None),
                "metrics": dict(getattr(result, "metrics", {}) or {}),
                **extra,
            }
        )


def write_manifest(
    path: str | os.PathLike[str],
    man: RunManifest,
    *,
    server: SessionSource = None,
    describe_server: bool = True,
) -> Path:
    """Write `man` as JSON (parents created, written aside then renamed); returns the path."""
    data = asdict(man)
    if describe_server and not man.models:
        facts, models = server_state(server)
        data["server"], data["models"] = {**facts, **man.server}, models
    ended = man.ended_at if man.ended_at is not None else time.time()
    data["ended_at"] = ended
    data["timings"] = {**man.timings, "elapsed_s": round(ended - man.started_at, 3)}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        partial.write_text(json.dumps(data, indent=2, default=json_value) + "\n")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def server_state(server: SessionSource) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Where the run was served and the server's models; the error instead when unreachable."""
    where: dict[str, Any] = {}
    try:
        with open_session(server) as session:
            where = dict(session.server.describe())
            served = session.served_models()
    except FacetClientError as exc:
        return {**where, "error": str(exc)}, []
    return where, [model.as_dict() for model in served.values()]


def json_value(value: Any) -> Any:
    """numpy scalars and arrays, paths: what results' metrics may hold besides JSON types."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
