"""Uploaded inputs and produced results on disk, addressed by opaque random ids.

A client never names a path: results are looked up by a random token in the job store, and the
path comes from there."""

from __future__ import annotations

import os
import secrets
import uuid
from pathlib import Path

EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


class FileStore:
    def __init__(self, uploads_dir: Path, results_dir: Path) -> None:
        self.uploads_dir = uploads_dir
        self.results_dir = results_dir
        uploads_dir.mkdir(parents=True, exist_ok=True)
        results_dir.mkdir(parents=True, exist_ok=True)

    def new_upload_path(self) -> Path:
        """A fresh path in the uploads folder, for an upload streamed to disk."""
        return self.uploads_dir / secrets.token_hex(16)

    def save_upload(self, data: bytes) -> Path:
        return _write_atomically(self.uploads_dir / secrets.token_hex(16), data)

    def save_result(self, data: bytes, fmt: str) -> tuple[str, Path]:
        result_id = secrets.token_urlsafe(24)
        path = self.results_dir / f"{result_id}{EXTENSIONS[fmt]}"
        return result_id, _write_atomically(path, data)

    def allocate_output(self, extension: str) -> tuple[str, Path]:
        """A fresh result file name (a UUID with `extension`, as the FaceFusion API names its
        outputs) and its path; the caller writes it, e.g. a video encoder streaming frames."""
        name = f"{uuid.uuid4()}{extension}"
        return name, self.results_dir / name

    def save_output(self, data: bytes, extension: str) -> tuple[str, Path]:
        name, path = self.allocate_output(extension)
        return name, _write_atomically(path, data)

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
