"""The `batch` job: fetch each URL safely, restore its faces, keep each result; every URL's
outcome is recorded as it finishes, and one URL's failure never fails the batch."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Any

from gateway.errors import FacetError, JobCancelled, Unavailable
from gateway.faces.service import RestoreOptions, RestoreService
from gateway.fetch import FetchPolicy, fetch_image
from gateway.imageio import decode_upload, output_format_for
from gateway.jobs.restorations import store_restoration
from gateway.jobs.store import Job, JobStore
from gateway.settings import Settings
from gateway.storage import FileStore
from gateway.weights import synthetic_warning

log = logging.getLogger(__name__)


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        max_bytes=settings.max_upload_bytes,
        timeout_s=settings.fetch_timeout_s,
        max_redirects=settings.fetch_max_redirects,
        allow_hosts=frozenset(settings.fetch_allow_hosts),
    )


class BatchRestoreJob:
    def __init__(
        self, settings: Settings, store: JobStore, files: FileStore, faces: RestoreService
    ) -> None:
        self._settings = settings
        self._store = store
        self._files = files
        self._faces = faces
        self._policy = fetch_policy(settings)

    async def __call__(self, job: Job) -> None:
        urls: list[str] = list(job.parameters["image_urls"])
        options = RestoreOptions(**job.parameters["settings"])
        # A run again after an outage (the runner waits Triton's restart out) resumes here.
        results = await self._results_so_far(job.id)
        for index, url in enumerate(urls):
            if index < len(results):
                continue
            if not await asyncio.to_thread(self._store.holds, job.id):
                raise JobCancelled("batch cancelled")
            results.append(await self._restore_one(url, options))
            await asyncio.to_thread(self._store.set_outcome, job.id, {"results": results})
            await asyncio.to_thread(
                self._store.set_progress, job.id, int(99 * (index + 1) / len(urls))
            )
        if any(result["status"] == "completed" for result in results):
            await asyncio.to_thread(self._store.complete, job.id, None, None, None)
        else:  # nothing to download: the batch failed, each item keeps its own reason
            reason = f"none of the {len(urls)} images could be restored"
            await asyncio.to_thread(self._store.fail, job.id, reason)

    async def _results_so_far(self, job_id: str) -> list[dict[str, Any]]:
        current = await asyncio.to_thread(self._store.get, job_id)
        outcome = current.outcome if current is not None else None
        return list((outcome or {}).get("results", []))

    async def _restore_one(self, url: str, options: RestoreOptions) -> dict[str, Any]:
        try:
            data = await fetch_image(url, self._policy)
            decoded = await asyncio.to_thread(decode_upload, data, self._settings)
            outcome = await self._faces.restore(decoded.rgb, options)
            fmt = output_format_for(decoded, outscale=options.upscale)
            restored = await asyncio.to_thread(
                store_restoration,
                self._store,
                self._files,
                outcome.image,
                decoded.alpha,
                fmt,
                asdict(options),
                url.rsplit("/", 1)[-1][:255] or "image",
            )
        except Unavailable:
            raise  # Triton, not this URL: the whole batch waits for it (see JobRunner)
        except FacetError as exc:
            return {"url": url, "status": "failed", "error": exc.detail}
        except Exception:  # a bug must fail this item only, never the batch and its other URLs
            log.exception("restoring a batch item failed unexpectedly")
            return {"url": url, "status": "failed", "error": "internal error restoring this image"}
        result: dict[str, Any] = {
            "url": url,
            "status": "completed",
            "restoration_id": restored.id,
            "download_url": f"/download/{restored.id}",
            "faces_detected": outcome.detected_count,
            "faces_restored": outcome.restored_count,
        }
        synthetic = self._faces.synthetic_models(options)
        if synthetic:
            result["synthetic_models"] = synthetic
            result["warning"] = synthetic_warning(synthetic)
        return result
