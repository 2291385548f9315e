"""The FaceFusion API's job ids and output names. A result is kept as a finished job whose
result id is the output's file name (`<uuid>.<ext>`), so /download/{filename} finds it through
the job store and nothing a client sends becomes a path."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, Final

from gateway.imageio import media_type_for
from gateway.jobs.store import Job, JobStore
from gateway.storage import EXTENSIONS, FileStore

OUTPUT_DIR: Final = ".api_outputs"  # the seed's output_path prefix, kept as a plain name
SWAP_KINDS: Final = ("swap_image", "swap_video")


def new_job_id(now: datetime | None = None) -> str:
    """`api_YYYYMMDD_HHMMSS_xxxxxx`, the seed's shape (six random hex digits)."""
    moment = now or datetime.now(UTC)
    return f"api_{moment:%Y%m%d_%H%M%S}_{secrets.token_hex(3)}"


def output_path(filename: str) -> str:
    return f"{OUTPUT_DIR}/{filename}"


def store_image_output(
    store: JobStore,
    files: FileStore,
    encoded: bytes,
    fmt: str,
    parameters: dict[str, Any],
    original_filename: str,
    outcome: dict[str, Any],
) -> Job:
    """Keep one processed image as a completed `swap_image` job; returns the job."""
    job = store.create("swap_image", parameters, original_filename, "", job_id=new_job_id())
    store.claim(job.id)
    try:
        name, path = files.save_output(encoded, EXTENSIONS[fmt])
        store.set_outcome(job.id, outcome)
        store.complete(job.id, name, str(path), media_type_for(fmt))
    finally:
        store.release(job.id)
    done = store.get(job.id)
    assert done is not None
    return done
