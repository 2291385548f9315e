"""Stored restorations: a restored image is kept as a finished job of kind `restore`, so
/download/{restoration_id} finds it by an opaque id and it expires like any other result."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.imageio import ImageFormat, encode_image, fit_alpha, media_type_for
from gateway.jobs.store import Job, JobStore
from gateway.storage import FileStore


def store_restoration(
    store: JobStore,
    files: FileStore,
    image: npt.NDArray[np.uint8],
    alpha: npt.NDArray[np.uint8] | None,
    fmt: ImageFormat,
    parameters: dict[str, Any],
    original_filename: str,
) -> Job:
    """Encode and keep one restored image with the upload's alpha (resized to the result);
    returns its completed job (id = restoration_id)."""
    encoded = encode_image(image, fit_alpha(alpha, image.shape), fmt)
    job = store.create("restore", parameters, original_filename, "")
    store.claim(job.id)
    try:
        result_id, path = files.save_result(encoded, fmt)
        store.complete(job.id, result_id, str(path), media_type_for(fmt))
    finally:
        store.release(job.id)
    done = store.get(job.id)
    assert done is not None
    return done
