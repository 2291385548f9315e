"""Uploaded inputs and produced results on disk, addressed by opaque random ids.

A client never names a path: results are looked up by a random token in the job store, and the
path comes from there."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


class FileStore:
    def __init__(self, uploads_dir: Path, results_dir: Path) -> None:
        self.uploads_dir = uploads_dir
        self.results_dir = results_dir
        uploads_dir.mkdir(parents=True, exist_ok=True)
        results_dir.mkdir(parents=True, exist_ok=True)

    def save_upload(self, data: bytes) -> Path:
        return _write_atomically(self.uploads_dir / secrets.token_hex(16), data)

    def save_result(self, data: bytes, fmt: str) -> tuple[str, Path]:
        result_id = secrets.token_urlsafe(24)
        path = self.results_dir / f"{result_id}{EXTENSIONS[fmt]}"
        return result_id, _write_atomically(path, data)

    @staticmethod
    def remove(path: str | Path | None) -> None:
        if path:
            Path(path).unlink(missing_ok=True)


def _write_atomically(path: Path, data: bytes) -> Path:
    partial = path.with_name(path.name + ".part")
    with partial.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)
    return path
